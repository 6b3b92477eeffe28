from cython cimport floating

cdef struct SparseRows:
    const void* data        # the CSR's values, float or double as the model
    const void* indices     # the column of each value, int32 or int64 (idx64)
    const void* indptr      # row r's values are data[indptr[r]:indptr[r + 1]]; indices' type
    bint idx64
    const Py_ssize_t* rows  # the batch's rows; NULL for first, first + 1, ...
    Py_ssize_t first

cdef class CSR:
    cdef SparseRows rows
    cdef readonly object data, indices, indptr, shape, dtype
    cdef readonly Py_ssize_t nnz

cdef void sparse_forward(const SparseRows* X, Py_ssize_t m, const floating* W, const floating* b,
                         Py_ssize_t n_out, int act, floating param, floating* Z_out,
                         floating* D_out, floating* row_buf) noexcept nogil

cdef void sparse_backward(const SparseRows* X, Py_ssize_t m, const floating* delta,
                          Py_ssize_t n_in, Py_ssize_t n_out, floating alpha, floating beta_w,
                          floating beta_b, floating* gW_out, floating* gb_out,
                          floating* row_buf) noexcept nogil
