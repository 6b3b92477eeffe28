"""Row-major matrix products over SciPy's BLAS (the same OpenBLAS NumPy uses)."""
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C, all row-major; C is (m, n), op(A) (m, k).

    BLAS is column-major, and a row-major matrix is its transpose seen column-major, so we ask
    for C.T = op(B).T @ op(A).T: swap the operands and their flags.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)


def gemm_py(bint trans_a, bint trans_b, double alpha,
            const floating[:, ::1] A, const floating[:, ::1] B,
            double beta, floating[:, ::1] C):
    """Python twin of ``gemm`` for tests: C := alpha * op(A) @ op(B) + beta * C in place."""
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    if (A.shape[1] if trans_a else A.shape[0]) != m or (B.shape[0] if trans_b else B.shape[1]) != n \
            or (B.shape[1] if trans_b else B.shape[0]) != k:
        raise ValueError(f"arrays have incompatible shapes: A {(A.shape[0], A.shape[1])}, "
                         f"B {(B.shape[0], B.shape[1])}, C {(C.shape[0], C.shape[1])}")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], A.shape[1], &B[0, 0],
             B.shape[1], <floating> beta, &C[0, 0], n)
