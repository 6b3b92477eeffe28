from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil
