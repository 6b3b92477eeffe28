"""The first layer on sparse input: a batch of CSR rows times W, and the weight gradient.

One-hot categories and TF-IDF features give inputs that are wide and almost empty. A batch's
input is then never formed: sample i's pre-activations are the bias plus a sum over its
non-zeros x_ij of the rows W[j, :], each a contiguous axpy of n_out values (W is (n_in, n_out),
row-major), accumulated in a row buffer and written into the feature-major Z (n_out, m) of the
other kernels (see ``_dense``). The weight gradient ``X_batch.T @ delta.T`` touches only the rows
of W that appear in the batch: for each sample, its delta column is read once into the row
buffer and added, times x_ij, to row j of the gradient. The work is O(nnz * n_out) per batch
instead of O(m * n_in * n_out).

When the caller applies plain SGD inside the product (``beta_w = 1``, see ``_dense``), rows of W
that the batch does not touch are not visited at all; an L2 factor ``beta_w != 1`` scales every
row (what the maths says), and ``beta_w = 0`` (a gradient buffer) clears it first.

``CSR`` holds a ``scipy.sparse`` CSR matrix's arrays for the kernels, after checking their
types and structure once; the kernels then trust it.
"""
import numpy as np

from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

from fastmlp._kernels._activations cimport activate
from fastmlp._kernels._dense cimport bias_gradient
from fastmlp._kernels._dense import default_activation_param

ctypedef fused index_t:
    int32_t
    int64_t


cdef bint valid_structure(const index_t* indptr, const index_t* indices, Py_ssize_t n_rows,
                          Py_ssize_t n_cols, Py_ssize_t n_stored) noexcept nogil:
    """indptr[0] == 0 <= indptr[1] <= ... <= indptr[n_rows] <= n_stored and every index of
    those values in [0, n_cols)."""
    cdef Py_ssize_t r, p
    cdef bint ok = indptr[0] == 0 and indptr[n_rows] <= n_stored
    for r in range(n_rows):
        ok &= indptr[r] <= indptr[r + 1]
    if not ok:
        return False
    for p in range(indptr[n_rows]):
        ok &= (indices[p] >= 0) & (indices[p] < n_cols)
    return ok


cdef inline const void* _address(a):
    return <const void*> <size_t> a.__array_interface__["data"][0]


cdef class CSR:
    """A ``scipy.sparse`` CSR matrix (or array) as the kernels take it.

    Parameters
    ----------
    X : scipy.sparse CSR matrix or array of shape (n_rows, n_cols)
        float32 or float64 values; int32 or int64 indices and indptr (the same type). Indices
        need not be sorted nor unique (duplicates add up), but must lie in ``[0, n_cols)``.
        ``X`` is not copied; keep it unchanged while the kernels use this object.

    Attributes
    ----------
    data, indices, indptr : ndarray
        X's arrays (C-contiguous views).
    shape : (int, int)
    dtype : numpy.dtype
        The values' type.
    nnz : int
        The number of stored values.

    Raises
    ------
    TypeError
        If X is not a CSR matrix, or its arrays have other types.
    ValueError
        If its structure is inconsistent (indptr not non-decreasing from 0, an index out of
        range).

    Examples
    --------
    >>> import numpy as np, scipy.sparse
    >>> from fastmlp._kernels._sparse import CSR
    >>> CSR(scipy.sparse.csr_matrix(np.eye(3))).nnz
    3
    """

    def __init__(self, X):
        if getattr(X, "format", None) != "csr" or len(X.shape) != 2:
            raise TypeError(f"CSR needs a 2-D scipy.sparse CSR matrix or array; got "
                            f"{type(X).__name__}. Convert it with X.tocsr().")
        data = np.ascontiguousarray(X.data)
        indices = np.ascontiguousarray(X.indices)
        indptr = np.ascontiguousarray(X.indptr)
        cdef Py_ssize_t n_rows = X.shape[0], n_cols = X.shape[1]
        if data.dtype not in (np.float32, np.float64):
            raise TypeError(f"the values must be float32 or float64; got {data.dtype}")
        if indices.dtype != indptr.dtype or indices.dtype not in (np.int32, np.int64):
            raise TypeError(f"indices and indptr must both be int32 or both int64; got "
                            f"{indices.dtype} and {indptr.dtype}")
        if data.ndim != 1 or indices.ndim != 1 or indptr.shape != (n_rows + 1,):
            raise ValueError(f"inconsistent CSR arrays: data {data.shape}, indices "
                             f"{indices.shape}, indptr {indptr.shape} for shape {X.shape}")
        cdef Py_ssize_t stored = min(data.shape[0], indices.shape[0])
        self.rows.data = _address(data)
        self.rows.indices = _address(indices)
        self.rows.indptr = _address(indptr)
        self.rows.idx64 = indices.dtype == np.int64
        self.rows.rows = NULL
        self.rows.first = 0
        cdef bint ok
        with nogil:
            if self.rows.idx64:
                ok = valid_structure(<const int64_t*> self.rows.indptr,
                                     <const int64_t*> self.rows.indices, n_rows, n_cols, stored)
            else:
                ok = valid_structure(<const int32_t*> self.rows.indptr,
                                     <const int32_t*> self.rows.indices, n_rows, n_cols, stored)
        if not ok:
            raise ValueError("invalid CSR structure: indptr must rise from 0 to at most the "
                             f"number of stored values, and every index lie in [0, {n_cols})")
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = (n_rows, n_cols)
        self.dtype = data.dtype
        self.nnz = int(indptr[n_rows])

    def __repr__(self):
        return f"CSR(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype.name})"


cdef void forward_rows(const floating* data, const index_t* indices, const index_t* indptr,
                       const Py_ssize_t* rows, Py_ssize_t first, Py_ssize_t m,
                       const floating* W, const floating* b, Py_ssize_t n_out,
                       floating* Z_out, floating* row_buf) noexcept nogil:
    """Z_out[:, i] := b + sum_p data[p] W[indices[p], :] over row r_i's values, for i < m;
    four values per pass over the row buffer, added in their stored order."""
    cdef Py_ssize_t i, r, p, end, o
    cdef floating x0, x1, x2, x3
    cdef const floating* w0
    cdef const floating* w1
    cdef const floating* w2
    cdef const floating* w3
    for i in range(m):
        r = rows[i] if rows != NULL else first + i
        memcpy(row_buf, b, n_out * sizeof(floating))
        p = indptr[r]
        end = indptr[r + 1]
        while p + 4 <= end:
            x0, x1, x2, x3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            w0 = W + <Py_ssize_t> indices[p] * n_out
            w1 = W + <Py_ssize_t> indices[p + 1] * n_out
            w2 = W + <Py_ssize_t> indices[p + 2] * n_out
            w3 = W + <Py_ssize_t> indices[p + 3] * n_out
            for o in range(n_out):
                row_buf[o] = (((row_buf[o] + x0 * w0[o]) + x1 * w1[o]) + x2 * w2[o]) + x3 * w3[o]
            p += 4
        while p < end:
            x0 = data[p]
            w0 = W + <Py_ssize_t> indices[p] * n_out
            for o in range(n_out):
                row_buf[o] += x0 * w0[o]
            p += 1
        for o in range(n_out):
            Z_out[o * m + i] = row_buf[o]


cdef void weight_gradient_rows(const floating* data, const index_t* indices,
                               const index_t* indptr, const Py_ssize_t* rows, Py_ssize_t first,
                               Py_ssize_t m, const floating* delta, Py_ssize_t n_out,
                               floating alpha, floating* gW_out,
                               floating* row_buf) noexcept nogil:
    """gW_out[indices[p], :] += data[p] * alpha * delta[:, i] for every value p of row r_i."""
    cdef Py_ssize_t i, r, p, end, o
    cdef floating x
    cdef floating* g
    for i in range(m):
        r = rows[i] if rows != NULL else first + i
        p = indptr[r]
        end = indptr[r + 1]
        if p == end:
            continue
        for o in range(n_out):
            row_buf[o] = alpha * delta[o * m + i]
        while p < end:
            x = data[p]
            g = gW_out + <Py_ssize_t> indices[p] * n_out
            for o in range(n_out):
                g[o] += x * row_buf[o]
            p += 1


cdef void sparse_forward(const SparseRows* X, Py_ssize_t m, const floating* W, const floating* b,
                         Py_ssize_t n_out, int act, floating param, floating* Z_out,
                         floating* D_out, floating* row_buf) noexcept nogil:
    """Z_out := f(W.T @ X_batch.T + b) and, when D_out is not NULL, D_out := f'(.), both
    feature-major (n_out, m), where X_batch is the m rows ``X.rows`` (or ``X.first``, ...);
    row_buf: n_out scratch values. As ``_dense.dense_forward`` with A = X_batch.T."""
    if X.idx64:
        forward_rows(<const floating*> X.data, <const int64_t*> X.indices,
                     <const int64_t*> X.indptr, X.rows, X.first, m, W, b, n_out, Z_out, row_buf)
    else:
        forward_rows(<const floating*> X.data, <const int32_t*> X.indices,
                     <const int32_t*> X.indptr, X.rows, X.first, m, W, b, n_out, Z_out, row_buf)
    activate(act, param, Z_out, D_out, m * n_out)


cdef void sparse_backward(const SparseRows* X, Py_ssize_t m, const floating* delta,
                          Py_ssize_t n_in, Py_ssize_t n_out, floating alpha, floating beta_w,
                          floating beta_b, floating* gW_out, floating* gb_out,
                          floating* row_buf) noexcept nogil:
    """gW_out := alpha * X_batch.T @ delta.T + beta_w * gW_out (n_in, n_out) and gb_out :=
    alpha * (row sums of delta) + beta_b * gb_out; delta (n_out, m). As
    ``_dense.dense_backward`` with A = X_batch.T and no delta for a previous layer: with
    beta_w = 1 only the rows of gW_out in the batch's columns are visited."""
    cdef Py_ssize_t q, size = n_in * n_out
    bias_gradient(delta, m, n_out, alpha, beta_b, gb_out)
    if beta_w == 0:
        memset(gW_out, 0, size * sizeof(floating))
    elif beta_w != 1:
        for q in range(size):
            gW_out[q] *= beta_w
    if X.idx64:
        weight_gradient_rows(<const floating*> X.data, <const int64_t*> X.indices,
                             <const int64_t*> X.indptr, X.rows, X.first, m, delta, n_out, alpha,
                             gW_out, row_buf)
    else:
        weight_gradient_rows(<const floating*> X.data, <const int32_t*> X.indices,
                             <const int32_t*> X.indptr, X.rows, X.first, m, delta, n_out, alpha,
                             gW_out, row_buf)


def _as_csr(X, dtype):
    X = X if isinstance(X, CSR) else CSR(X)
    if X.dtype != dtype:
        raise TypeError(f"X holds {X.dtype} values; the other arrays are {np.dtype(dtype)}")
    return X


def sparse_forward_py(X, const floating[:, ::1] W, const floating[::1] b, int act,
                      floating[:, ::1] Z_out, floating[:, ::1] D_out=None, param=None):
    """Python twin of ``sparse_forward`` (tests): X a ``CSR`` or scipy CSR matrix (m, n_in) of
    W's dtype; fills Z_out (m, n_out) := f(X @ W + b) (and D_out := f'(...) unless None) in
    place. ``param`` defaults to the activation's default."""
    cdef CSR Xc = _as_csr(X, np.asarray(W).dtype)
    cdef Py_ssize_t m = Xc.shape[0], n_out = W.shape[1]
    if Xc.shape[1] != W.shape[0] or b.shape[0] != n_out or Z_out.shape[0] != m \
            or Z_out.shape[1] != n_out or (D_out is not None and (
                D_out.shape[0] != m or D_out.shape[1] != n_out)):
        raise ValueError(f"arrays have incompatible shapes: X {Xc.shape}, W "
                         f"{(W.shape[0], W.shape[1])}, b {(b.shape[0],)}, Z_out "
                         f"{(Z_out.shape[0], Z_out.shape[1])}")
    cdef floating p = default_activation_param(act) if param is None else param
    cdef floating[:, ::1] Zt = np.empty((n_out, m), dtype=np.asarray(Z_out).dtype)
    cdef floating[:, ::1] Dt = None if D_out is None else np.empty_like(Zt)
    cdef floating[::1] row_buf = np.empty(n_out, dtype=np.asarray(Z_out).dtype)
    cdef floating* d = NULL if D_out is None else &Dt[0, 0]
    if m == 0:
        return
    with nogil:
        sparse_forward(&Xc.rows, m, &W[0, 0], &b[0], n_out, act, p, &Zt[0, 0], d, &row_buf[0])
    np.asarray(Z_out)[...] = np.asarray(Zt).T
    if D_out is not None:
        np.asarray(D_out)[...] = np.asarray(Dt).T


def sparse_backward_py(X, const floating[:, ::1] delta, floating[:, ::1] gW_out,
                       floating[::1] gb_out, double alpha=1, double beta_w=0, double beta_b=0):
    """Python twin of ``sparse_backward`` (tests), on row-major arrays: gW_out := alpha * X.T @
    delta + beta_w * gW_out and gb_out := alpha * delta.sum(axis=0) + beta_b * gb_out, in
    place; X a ``CSR`` or scipy CSR matrix (m, n_in), delta (m, n_out)."""
    cdef CSR Xc = _as_csr(X, np.asarray(delta).dtype)
    cdef Py_ssize_t m = Xc.shape[0], n_in = Xc.shape[1], n_out = delta.shape[1]
    if delta.shape[0] != m or gW_out.shape[0] != n_in or gW_out.shape[1] != n_out \
            or gb_out.shape[0] != n_out:
        raise ValueError(f"arrays have incompatible shapes: X {Xc.shape}, delta "
                         f"{(delta.shape[0], delta.shape[1])}, gW_out "
                         f"{(gW_out.shape[0], gW_out.shape[1])}, gb_out {(gb_out.shape[0],)}")
    if m == 0:
        raise ValueError("X has no rows")
    cdef floating[:, ::1] deltat = np.array(np.asarray(delta).T, order="C")
    cdef floating[::1] row_buf = np.empty(n_out, dtype=np.asarray(delta).dtype)
    with nogil:
        sparse_backward(&Xc.rows, m, &deltat[0, 0], n_in, n_out, <floating> alpha,
                        <floating> beta_w, <floating> beta_b, &gW_out[0, 0], &gb_out[0],
                        &row_buf[0])
