"""One dense layer on one batch: the forward pass and the backward pass.

The kernels store a batch **feature-major**: unit j of the m samples is one contiguous row, so
the layer's input A is (n_in, m), its pre-activations Z = (A.T @ W + b).T and deltas
dJ/dZ are (n_out, m), while W keeps the user's (n_in, n_out) shape. Every inner loop then runs
over the batch, which is long and contiguous whatever the layer widths: a network of 2, 4 or 10
units vectorizes as well as a wide one.

Each product either goes to BLAS or to hand-written loops; the loops win on small layers, where
a BLAS call costs more than its arithmetic. The caller decides per layer (see ``Network``). The
Python twins take and return the usual row-major (m, n) arrays and transpose at the boundary.
"""
import numpy as np
from libc.string cimport memcpy, memset

from cython cimport floating

from fastmlp._kernels._activations cimport (
    ACT_ELU, ACT_GELU, ACT_GELU_TANH, ACT_IDENTITY, ACT_LEAKY_RELU, ACT_MISH, ACT_RELU,
    ACT_SIGMOID, ACT_SILU, ACT_SOFTPLUS, ACT_TANH, activate)
from fastmlp._kernels._blas cimport gemm

# Hidden activation names -> kernel ids ("swish" is another name for silu).
ACTIVATION_IDS = {
    "identity": ACT_IDENTITY, "sigmoid": ACT_SIGMOID, "relu": ACT_RELU,
    "tanh": ACT_TANH, "leaky_relu": ACT_LEAKY_RELU, "elu": ACT_ELU,
    "gelu": ACT_GELU, "gelu_tanh": ACT_GELU_TANH, "silu": ACT_SILU,
    "swish": ACT_SILU, "softplus": ACT_SOFTPLUS, "mish": ACT_MISH,
}
# Default of each activation's parameter: leaky_relu's negative slope, elu's alpha, else unused.
ACTIVATION_DEFAULT_PARAMS = {name: 0.0 for name in ACTIVATION_IDS}
ACTIVATION_DEFAULT_PARAMS.update(leaky_relu=0.01, elu=1.0)
_DEFAULT_PARAM_BY_ID = {ACTIVATION_IDS[name]: p for name, p in ACTIVATION_DEFAULT_PARAMS.items()}


def default_activation_param(int act):
    """The default parameter of the activation with kernel id ``act`` (0.0 where unused)."""
    if act not in _DEFAULT_PARAM_BY_ID:
        raise ValueError(f"unknown activation id {act}; valid ids: {ACTIVATION_IDS}")
    return _DEFAULT_PARAM_BY_ID[act]


cdef inline floating dot(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    """sum_i x[i] y[i], in four interleaved partial sums (vectorizes without reassociation)."""
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        i += 4
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline floating row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum_i x[i], in four interleaved partial sums."""
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        i += 4
    while i < n:
        s0 += x[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void axpy_rows(floating* out, const floating* W, Py_ssize_t stride,
                           const floating* X, Py_ssize_t k, Py_ssize_t m) noexcept nogil:
    """out[r] += sum_p W[p * stride] X[p * m + r] over p < k, for r < m: four rows of X per pass
    (out stays in registers), in the order p = 0, 1, 2, ... for every r."""
    cdef Py_ssize_t p = 0, r
    cdef floating w0, w1, w2, w3
    cdef const floating* x0
    cdef const floating* x1
    cdef const floating* x2
    cdef const floating* x3
    while p + 4 <= k:
        w0, w1, w2, w3 = W[p * stride], W[(p + 1) * stride], W[(p + 2) * stride], W[(p + 3) * stride]
        x0, x1, x2, x3 = X + p * m, X + (p + 1) * m, X + (p + 2) * m, X + (p + 3) * m
        for r in range(m):
            out[r] = (((out[r] + w0 * x0[r]) + w1 * x1[r]) + w2 * x2[r]) + w3 * x3[r]
        p += 4
    while p < k:
        w0 = W[p * stride]
        x0 = X + p * m
        for r in range(m):
            out[r] += w0 * x0[r]
        p += 1


cdef void bias_gradient(const floating* delta, Py_ssize_t m, Py_ssize_t n_out, floating alpha,
                        floating beta_b, floating* gb_out) noexcept nogil:
    """gb_out := alpha * (row sums of delta) + beta_b * gb_out; delta (n_out, m). A beta_b of
    0 ignores what gb_out held."""
    cdef Py_ssize_t j
    for j in range(n_out):
        gb_out[j] = alpha * row_sum(delta + j * m, m) + (beta_b * gb_out[j] if beta_b != 0 else 0)


cdef void dense_forward(const floating* A, const floating* W, const floating* b,
                        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, int act, floating param,
                        bint use_blas, floating* Z_out, floating* D_out) noexcept nogil:
    """Z_out := f(W.T @ A + b) and, when D_out is not NULL, D_out := f'(W.T @ A + b), all
    feature-major (A (n_in, m), Z_out and D_out (n_out, m)); ``param`` is the activation's
    parameter (see ``_activations.activate``).

    The bias is written first and the product accumulated onto it, so bias and product are one
    pass; the activation then runs over Z_out while it is still in cache.
    """
    cdef Py_ssize_t j, r
    cdef floating* z
    cdef floating bj
    for j in range(n_out):
        z = Z_out + j * m
        bj = b[j]
        for r in range(m):
            z[r] = bj
    if use_blas:
        gemm(True, False, <int> n_out, <int> m, <int> n_in, <floating> 1, W, <int> n_out,
             A, <int> m, <floating> 1, Z_out, <int> m)
    else:
        for j in range(n_out):
            axpy_rows(Z_out + j * m, W + j, n_out, A, n_in, m)
    activate(act, param, Z_out, D_out, m * n_out)


cdef void dense_backward(const floating* A, const floating* W, const floating* delta,
                         const floating* D, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                         bint use_blas, floating alpha, floating beta_w, floating beta_b,
                         floating* gW_out, floating* gb_out,
                         floating* delta_prev_out) noexcept nogil:
    """First, when delta_prev_out is not NULL, delta_prev_out := (W @ delta) * D (n_in, m), the
    delta of the previous layer (D = its f'); then gW_out := alpha * A @ delta.T + beta_w *
    gW_out (n_in, n_out) and gb_out := alpha * (row sums of delta) + beta_b * gb_out, all
    feature-major. A beta of 0 ignores what the output held.

    With alpha = 1 and betas 0 that is the gradient. With gW_out = W, gb_out = b, alpha = -lr,
    beta_w = 1 - lr * l2 and beta_b = 1 it is the SGD step itself, fused into the product: W is
    read for delta_prev before it is updated.

    delta already carries the 1/m of the batch mean (the loss kernel puts it there).
    """
    cdef Py_ssize_t j, p, r
    cdef floating* out
    cdef floating* g
    cdef const floating* d
    if delta_prev_out != NULL:
        if use_blas:
            gemm(False, False, <int> n_in, <int> m, <int> n_out, <floating> 1, W, <int> n_out,
                 delta, <int> m, <floating> 0, delta_prev_out, <int> m)
            for r in range(m * n_in):
                delta_prev_out[r] *= D[r]
        else:
            for p in range(n_in):
                out = delta_prev_out + p * m
                memset(out, 0, m * sizeof(floating))
                axpy_rows(out, W + p * n_out, 1, delta, n_out, m)
                d = D + p * m
                for r in range(m):
                    out[r] *= d[r]
    bias_gradient(delta, m, n_out, alpha, beta_b, gb_out)
    if use_blas:
        gemm(False, True, <int> n_in, <int> n_out, <int> m, alpha, A, <int> m,
             delta, <int> m, beta_w, gW_out, <int> n_out)
        return
    for p in range(n_in):
        g = gW_out + p * n_out
        for j in range(n_out):
            g[j] = alpha * dot(A + p * m, delta + j * m, m) + (beta_w * g[j] if beta_w != 0 else 0)


def _check_shapes(A, W, b=None, delta=None):
    if A.shape[1] != W.shape[0] or (b is not None and b.shape[0] != W.shape[1]) \
            or (delta is not None and (delta.shape[0] != A.shape[0] or delta.shape[1] != W.shape[1])):
        raise ValueError(f"arrays have incompatible shapes: A {(A.shape[0], A.shape[1])}, "
                         f"W {(W.shape[0], W.shape[1])}" + ("" if b is None else f", b {(b.shape[0],)}")
                         + ("" if delta is None else f", delta {(delta.shape[0], delta.shape[1])}"))


def _feature_major(X):
    """A row-major (m, n) array as a new, writable, C-contiguous (n, m) one."""
    return np.array(np.asarray(X).T, order="C")


def dense_forward_py(const floating[:, ::1] A, const floating[:, ::1] W, const floating[::1] b,
                     int act, bint use_blas, floating[:, ::1] Z_out, floating[:, ::1] D_out=None,
                     param=None):
    """Python twin of ``dense_forward`` (tests), on row-major arrays: fills Z_out (m, n_out)
    := f(A @ W + b) (and D_out := f'(...) unless None) in place. ``param`` defaults to the
    activation's ``ACTIVATION_DEFAULT_PARAMS`` entry."""
    _check_shapes(A, W, b)
    if Z_out.shape[0] != A.shape[0] or Z_out.shape[1] != W.shape[1] or \
            (D_out is not None and (D_out.shape[0] != Z_out.shape[0] or D_out.shape[1] != Z_out.shape[1])):
        raise ValueError("Z_out and D_out must have shape (A.shape[0], W.shape[1])")
    default = default_activation_param(act)
    cdef floating p = default if param is None else param
    cdef Py_ssize_t m = A.shape[0], n_in = A.shape[1], n_out = W.shape[1]
    cdef floating[:, ::1] At = _feature_major(A)
    cdef floating[:, ::1] Zt = np.empty((n_out, m), dtype=np.asarray(Z_out).dtype)
    cdef floating[:, ::1] Dt = None if D_out is None else np.empty_like(Zt)
    cdef floating* d = NULL if D_out is None else &Dt[0, 0]
    with nogil:
        dense_forward(&At[0, 0], &W[0, 0], &b[0], m, n_in, n_out, act, p, use_blas, &Zt[0, 0], d)
    np.asarray(Z_out)[...] = np.asarray(Zt).T
    if D_out is not None:
        np.asarray(D_out)[...] = np.asarray(Dt).T


def dense_backward_py(const floating[:, ::1] A, const floating[:, ::1] W,
                      const floating[:, ::1] delta, const floating[:, ::1] D, bint use_blas,
                      floating[:, ::1] gW_out, floating[::1] gb_out,
                      floating[:, ::1] delta_prev_out=None):
    """Python twin of ``dense_backward`` (tests), on row-major arrays: fills gW_out := A.T @
    delta, gb_out and, unless None, delta_prev_out := (delta @ W.T) * D (D of A's shape)."""
    _check_shapes(A, W, delta=delta)
    if gW_out.shape[0] != W.shape[0] or gW_out.shape[1] != W.shape[1] or gb_out.shape[0] != W.shape[1]:
        raise ValueError("gW_out must have W's shape and gb_out shape (W.shape[1],)")
    if delta_prev_out is not None and ((delta_prev_out.shape[0], delta_prev_out.shape[1]) != (A.shape[0], A.shape[1])
                                       or (D.shape[0], D.shape[1]) != (A.shape[0], A.shape[1])):
        raise ValueError("delta_prev_out and D must have A's shape")
    cdef Py_ssize_t m = A.shape[0], n_in = A.shape[1], n_out = W.shape[1]
    cdef floating[:, ::1] At = _feature_major(A)
    cdef floating[:, ::1] deltat = _feature_major(delta)
    cdef floating[:, ::1] Dt = _feature_major(D)
    cdef floating[:, ::1] dpt = None if delta_prev_out is None else np.empty_like(At)
    cdef floating* dp = NULL if delta_prev_out is None else &dpt[0, 0]
    with nogil:
        dense_backward(&At[0, 0], &W[0, 0], &deltat[0, 0], &Dt[0, 0], m, n_in, n_out, use_blas,
                       1, 0, 0, &gW_out[0, 0], &gb_out[0], dp)
    if delta_prev_out is not None:
        np.asarray(delta_prev_out)[...] = np.asarray(dpt).T
