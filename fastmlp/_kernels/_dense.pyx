"""One dense layer on one batch: the forward pass and the backward pass.

Shapes (row-major): A (m, n_in) the layer's input, W (n_in, n_out), b (n_out,),
Z = A @ W + b and its activation (m, n_out), delta = dJ/dZ (m, n_out).

Each product either goes to BLAS or to a hand-written loop; the loop wins on small layers, where a
BLAS call costs more than its arithmetic. The caller decides per layer (see ``Network``).
"""
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


cdef void dense_forward(const floating* A, const floating* W, const floating* b,
                        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, int act, floating param,
                        bint use_blas, floating* Z_out, floating* D_out) noexcept nogil:
    """Z_out := f(A @ W + b) and, when D_out is not NULL, D_out := f'(A @ W + b); ``param`` is
    the activation's parameter (see ``_activations.activate``).

    The bias is written first and the product accumulated onto it, so bias and product are one
    pass; the activation then runs over Z_out while it is still in cache.
    """
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating* z
    cdef const floating* w
    for i in range(m):
        memcpy(Z_out + i * n_out, b, n_out * sizeof(floating))
    if use_blas:
        gemm(False, False, <int> m, <int> n_out, <int> n_in, <floating> 1, A, <int> n_in,
             W, <int> n_out, <floating> 1, Z_out, <int> n_out)
    else:
        for i in range(m):
            z = Z_out + i * n_out
            for p in range(n_in):
                a = A[i * n_in + p]
                w = W + p * n_out
                for j in range(n_out):
                    z[j] += a * w[j]
    activate(act, param, Z_out, D_out, m * n_out)


cdef void dense_backward(const floating* A, const floating* W, const floating* delta,
                         const floating* D, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                         bint use_blas, floating* gW_out, floating* gb_out,
                         floating* delta_prev_out) noexcept nogil:
    """gW_out := A.T @ delta, gb_out := sum of delta's rows and, when delta_prev_out is not NULL,
    delta_prev_out := (delta @ W.T) * D, the delta of the previous layer (D = its f').

    delta already carries the 1/m of the batch mean (the loss kernel puts it there).
    """
    cdef Py_ssize_t i, j, p
    cdef floating a, s
    cdef floating* g
    cdef const floating* d
    cdef const floating* w
    memset(gb_out, 0, n_out * sizeof(floating))
    for i in range(m):
        d = delta + i * n_out
        for j in range(n_out):
            gb_out[j] += d[j]
    if use_blas:
        gemm(True, False, <int> n_in, <int> n_out, <int> m, <floating> 1, A, <int> n_in,
             delta, <int> n_out, <floating> 0, gW_out, <int> n_out)
        if delta_prev_out != NULL:
            gemm(False, True, <int> m, <int> n_in, <int> n_out, <floating> 1, delta, <int> n_out,
                 W, <int> n_out, <floating> 0, delta_prev_out, <int> n_in)
            for i in range(m * n_in):
                delta_prev_out[i] *= D[i]
        return
    memset(gW_out, 0, n_in * n_out * sizeof(floating))
    for i in range(m):
        d = delta + i * n_out
        for p in range(n_in):
            a = A[i * n_in + p]
            g = gW_out + p * n_out
            for j in range(n_out):
                g[j] += a * d[j]
    if delta_prev_out != NULL:
        for i in range(m):
            d = delta + i * n_out
            for p in range(n_in):
                w = W + p * n_out
                s = 0
                for j in range(n_out):
                    s += d[j] * w[j]
                delta_prev_out[i * n_in + p] = s * D[i * n_in + p]


def _check_shapes(A, W, b=None, delta=None):
    if A.shape[1] != W.shape[0] or (b is not None and b.shape[0] != W.shape[1]) \
            or (delta is not None and (delta.shape[0] != A.shape[0] or delta.shape[1] != W.shape[1])):
        raise ValueError(f"arrays have incompatible shapes: A {(A.shape[0], A.shape[1])}, "
                         f"W {(W.shape[0], W.shape[1])}" + ("" if b is None else f", b {(b.shape[0],)}")
                         + ("" if delta is None else f", delta {(delta.shape[0], delta.shape[1])}"))


def dense_forward_py(const floating[:, ::1] A, const floating[:, ::1] W, const floating[::1] b,
                     int act, bint use_blas, floating[:, ::1] Z_out, floating[:, ::1] D_out=None,
                     param=None):
    """Python twin of ``dense_forward`` (tests): fills Z_out (and D_out unless None) in place.
    ``param`` defaults to the activation's ``ACTIVATION_DEFAULT_PARAMS`` entry."""
    _check_shapes(A, W, b)
    if Z_out.shape[0] != A.shape[0] or Z_out.shape[1] != W.shape[1] or \
            (D_out is not None and (D_out.shape[0] != Z_out.shape[0] or D_out.shape[1] != Z_out.shape[1])):
        raise ValueError("Z_out and D_out must have shape (A.shape[0], W.shape[1])")
    default = default_activation_param(act)
    cdef floating p = default if param is None else param
    cdef floating* d = NULL if D_out is None else &D_out[0, 0]
    with nogil:
        dense_forward(&A[0, 0], &W[0, 0], &b[0], A.shape[0], A.shape[1], W.shape[1], act, p,
                      use_blas, &Z_out[0, 0], d)


def dense_backward_py(const floating[:, ::1] A, const floating[:, ::1] W,
                      const floating[:, ::1] delta, const floating[:, ::1] D, bint use_blas,
                      floating[:, ::1] gW_out, floating[::1] gb_out,
                      floating[:, ::1] delta_prev_out=None):
    """Python twin of ``dense_backward`` (tests): fills gW_out, gb_out and, unless None,
    delta_prev_out (which needs D of shape A.shape) in place."""
    _check_shapes(A, W, delta=delta)
    if gW_out.shape[0] != W.shape[0] or gW_out.shape[1] != W.shape[1] or gb_out.shape[0] != W.shape[1]:
        raise ValueError("gW_out must have W's shape and gb_out shape (W.shape[1],)")
    cdef floating* dp = NULL
    if delta_prev_out is not None:
        if (delta_prev_out.shape[0], delta_prev_out.shape[1]) != (A.shape[0], A.shape[1]) or (D.shape[0], D.shape[1]) != (A.shape[0], A.shape[1]):
            raise ValueError("delta_prev_out and D must have A's shape")
        dp = &delta_prev_out[0, 0]
    with nogil:
        dense_backward(&A[0, 0], &W[0, 0], &delta[0, 0], &D[0, 0], A.shape[0], A.shape[1],
                       W.shape[1], use_blas, &gW_out[0, 0], &gb_out[0], dp)
