"""One dense layer on one batch: the forward pass and the backward pass.

The kernels store a batch **feature-major**: unit j of the m samples is one contiguous row, so
the layer's input A is (n_in, m), its pre-activations Z = (A.T @ W + b).T and deltas
dJ/dZ are (n_out, m), while W keeps the user's (n_in, n_out) shape. Every inner loop then runs
over the batch, which is long and contiguous whatever the layer widths: a network of 2, 4 or 10
units vectorizes as well as a wide one.

Each product either goes to BLAS or to hand-written loops; the loops win on small layers, where
a BLAS call costs more than its arithmetic. The loops themselves are C, in ``_simd_body.h``,
compiled there for several CPU targets (baseline x86-64, AVX2+FMA, AVX-512) and chosen at import
(``cpu_target``, ``set_cpu_target``, environment variable ``FASTMLP_CPU``; see ``_simd.h``). The caller decides per layer (see ``Network``). The
Python twins take and return the usual row-major (m, n) arrays and transpose at the boundary.
"""
import numpy as np

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


cdef extern from "_simd.h" nogil:
    # The batch loops, compiled once per CPU target from one source (_simd_body.h); fm_loops
    # holds the versions chosen by _select_cpu_target. See _simd.h for why.
    ctypedef struct fm_table_t:
        void (*forward_layer_d)(double*, double*, const double*, const double*, const double*,
                                Py_ssize_t, Py_ssize_t, Py_ssize_t, int, double) noexcept nogil
        void (*forward_layer_f)(float*, float*, const float*, const float*, const float*,
                                Py_ssize_t, Py_ssize_t, Py_ssize_t, int, float) noexcept nogil
        void (*delta_prev_d)(double*, const double*, const double*, const double*, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t) noexcept nogil
        void (*delta_prev_f)(float*, const float*, const float*, const float*, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t) noexcept nogil
        void (*grad_w_d)(double*, double*, const double*, const double*, Py_ssize_t, Py_ssize_t,
                         Py_ssize_t, double, double, double) noexcept nogil
        void (*grad_w_f)(float*, float*, const float*, const float*, Py_ssize_t, Py_ssize_t,
                         Py_ssize_t, float, float, float) noexcept nogil
        void (*grad_b_d)(double*, const double*, Py_ssize_t, Py_ssize_t, double, double) noexcept nogil
        void (*grad_b_f)(float*, const float*, Py_ssize_t, Py_ssize_t, float, float) noexcept nogil
        double (*loss_bce_d)(const double*, const double*, const double*, Py_ssize_t, Py_ssize_t,
                             double, double*) noexcept nogil
        double (*loss_bce_f)(const float*, const float*, const float*, Py_ssize_t, Py_ssize_t,
                             float, float*) noexcept nogil
        double (*loss_ce_d)(const double*, const double*, const double*, Py_ssize_t, Py_ssize_t,
                            double, double, double, double*) noexcept nogil
        double (*loss_ce_f)(const float*, const float*, const float*, Py_ssize_t, Py_ssize_t,
                            float, float, float, float*) noexcept nogil
        int (*activate_smooth_d)(int, double*, double*, Py_ssize_t) noexcept nogil
        int (*activate_smooth_f)(int, float*, float*, Py_ssize_t) noexcept nogil
    fm_table_t fm_loops
    int fm_level
    int fm_cpu_max() noexcept
    int fm_select(int level) noexcept

# The CPU targets of the hand-written loops, slowest first; FASTMLP_CPU names one to force.
CPU_TARGETS = ("baseline", "avx2", "avx512")


def supported_cpu_targets():
    """The CPU targets this machine (and this build) can run, slowest first.

    Examples
    --------
    >>> from fastmlp._kernels._dense import supported_cpu_targets
    >>> supported_cpu_targets()[0]
    'baseline'
    """
    return CPU_TARGETS[:fm_cpu_max() + 1]


def cpu_target():
    """The CPU target whose loops the kernels run now: 'baseline', 'avx2' or 'avx512'.

    Examples
    --------
    >>> from fastmlp._kernels._dense import cpu_target
    >>> cpu_target() in ('baseline', 'avx2', 'avx512')
    True
    """
    return CPU_TARGETS[fm_level]


def set_cpu_target(name=None):
    """Run the loops built for CPU target ``name`` ('baseline', 'avx2', 'avx512'; None: the
    widest this CPU supports) from now on, in every kernel. Not while a fit runs.

    Raises ValueError for an unknown name or one this CPU cannot run.

    Examples
    --------
    >>> from fastmlp._kernels._dense import cpu_target, set_cpu_target
    >>> old = cpu_target()
    >>> set_cpu_target("baseline"); cpu_target()
    'baseline'
    >>> set_cpu_target(old)
    """
    supported = supported_cpu_targets()
    if name is None:
        name = supported[len(supported) - 1]
    if name not in CPU_TARGETS:
        raise ValueError(f"unknown CPU target {name!r}; choose one of {CPU_TARGETS}")
    if name not in supported:
        raise ValueError(f"this CPU (or this build) cannot run the {name!r} loops; it supports "
                         f"{supported}: choose one of those")
    if fm_select(CPU_TARGETS.index(name)) != 0:
        raise RuntimeError(f"could not select the {name!r} loops")


def _select_cpu_target_from_environment():
    import os
    forced = os.environ.get("FASTMLP_CPU", "").strip().lower()
    try:
        set_cpu_target(forced or None)
    except ValueError as error:
        raise ValueError(f"FASTMLP_CPU={forced!r}: {error} (or unset FASTMLP_CPU to let fastmlp "
                         f"choose)") from None


_select_cpu_target_from_environment()


cdef void bias_gradient(const floating* delta, Py_ssize_t m, Py_ssize_t n_out, floating alpha,
                        floating beta_b, floating* gb_out) noexcept nogil:
    """gb_out := alpha * (row sums of delta) + beta_b * gb_out; delta (n_out, m). A beta_b of
    0 ignores what gb_out held."""
    if floating is double:
        fm_loops.grad_b_d(gb_out, delta, m, n_out, alpha, beta_b)
    else:
        fm_loops.grad_b_f(gb_out, delta, m, n_out, alpha, beta_b)


cdef double ce_loss_delta(const floating* Z, const floating* Y, const floating* w,
                          Py_ssize_t m, Py_ssize_t n_out, floating t_on, floating t_off,
                          floating scale, floating* delta_out) noexcept nogil:
    """The categorical cross-entropy part of ``_loss.loss_delta`` on this CPU target's loops
    (``loss_ce`` in _simd_body.h): softmax of the (n_out, m) logits Z against the targets
    t_on * Y + t_off; returns sum_r w_r l_r and, unless delta_out is NULL, sets delta_out :=
    scale * w_r * (softmax(Z) - t)."""
    if floating is double:
        return fm_loops.loss_ce_d(Z, Y, w, m, n_out, t_on, t_off, scale, delta_out)
    else:
        return fm_loops.loss_ce_f(Z, Y, w, m, n_out, t_on, t_off, scale, delta_out)


cdef void apply_activation(int act, floating param, floating* Z, floating* D,
                           Py_ssize_t n) noexcept nogil:
    """``_activations.activate`` (Z := f(Z), D := f'(Z) unless NULL, over n entries), with
    sigmoid and tanh on this CPU target's registers (``activate_smooth`` in _simd_body.h)."""
    cdef int done
    if floating is double:
        done = fm_loops.activate_smooth_d(act, Z, D, n)
    else:
        done = fm_loops.activate_smooth_f(act, Z, D, n)
    if not done:
        activate(act, param, Z, D, n)


cdef void dense_forward(const floating* A, const floating* W, const floating* b,
                        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, int act, floating param,
                        bint use_blas, bint sample_major, floating* Z_out,
                        floating* D_out) noexcept nogil:
    """Z_out := f(W.T @ A + b) and, when D_out is not NULL, D_out := f'(W.T @ A + b), all
    feature-major (A (n_in, m), Z_out and D_out (n_out, m)); ``param`` is the activation's
    parameter (see ``_activations.activate``). With ``sample_major`` (BLAS only), A is instead
    the batch's rows as the user holds them, (m, n_in) row-major: BLAS reads it transposed at
    the same rate, so a first layer needs no transposing gather (see ``_train.batch_rows``).

    On the hand-written loops, bias, product and the piecewise-linear activations (identity,
    relu, leaky_relu) with their derivative are one pass (``forward_layer`` in _simd_body.h):
    Z_out is written once. Other activations, and the BLAS path (bias first, the product
    accumulated onto it), run ``apply_activation`` over Z_out afterwards, while it is still in
    cache.
    """
    cdef Py_ssize_t j, r
    cdef floating* z
    cdef floating bj
    cdef bint fused = act == ACT_IDENTITY or act == ACT_RELU or act == ACT_LEAKY_RELU
    if not use_blas:
        if floating is double:
            fm_loops.forward_layer_d(Z_out, D_out if fused else NULL, W, b, A, m, n_in, n_out,
                                     act if fused else ACT_IDENTITY, param)
        else:
            fm_loops.forward_layer_f(Z_out, D_out if fused else NULL, W, b, A, m, n_in, n_out,
                                     act if fused else ACT_IDENTITY, param)
        if not fused:
            apply_activation(act, param, Z_out, D_out, m * n_out)
        return
    for j in range(n_out):
        z = Z_out + j * m
        bj = b[j]
        for r in range(m):
            z[r] = bj
    gemm(True, sample_major, <int> n_out, <int> m, <int> n_in, <floating> 1, W, <int> n_out,
         A, <int> (n_in if sample_major else m), <floating> 1, Z_out, <int> m)
    apply_activation(act, param, Z_out, D_out, m * n_out)


cdef double bce_loss_delta(const floating* Z, const floating* Y, const floating* w,
                           Py_ssize_t m, Py_ssize_t n_out, floating scale,
                           floating* delta_out) noexcept nogil:
    """The binary cross-entropy part of ``_loss.loss_delta`` on this CPU target's loops:
    returns sum_r w_r sum_k l_kr over the (n_out, m) logits Z and targets Y (w_r = 1 when w
    is NULL) and, unless delta_out is NULL, sets delta_out := scale * w_r * (sigmoid(Z) - Y)."""
    if floating is double:
        return fm_loops.loss_bce_d(Z, Y, w, m, n_out, scale, delta_out)
    else:
        return fm_loops.loss_bce_f(Z, Y, w, m, n_out, scale, delta_out)


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
    cdef Py_ssize_t r
    if delta_prev_out != NULL:
        if use_blas:
            gemm(False, False, <int> n_in, <int> m, <int> n_out, <floating> 1, W, <int> n_out,
                 delta, <int> m, <floating> 0, delta_prev_out, <int> m)
            for r in range(m * n_in):
                delta_prev_out[r] *= D[r]
        elif floating is double:
            fm_loops.delta_prev_d(delta_prev_out, W, delta, D, m, n_in, n_out)
        else:
            fm_loops.delta_prev_f(delta_prev_out, W, delta, D, m, n_in, n_out)
    if use_blas:
        bias_gradient(delta, m, n_out, alpha, beta_b, gb_out)
        gemm(False, True, <int> n_in, <int> n_out, <int> m, alpha, A, <int> m,
             delta, <int> m, beta_w, gW_out, <int> n_out)
        return
    # the bias gradient rides along the weight gradient's first pass over delta
    if floating is double:
        fm_loops.grad_w_d(gW_out, gb_out, A, delta, m, n_in, n_out, alpha, beta_w, beta_b)
    else:
        fm_loops.grad_w_f(gW_out, gb_out, A, delta, m, n_in, n_out, alpha, beta_w, beta_b)


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
                     param=None, bint sample_major=False):
    """Python twin of ``dense_forward`` (tests), on row-major arrays: fills Z_out (m, n_out)
    := f(A @ W + b) (and D_out := f'(...) unless None) in place. ``param`` defaults to the
    activation's ``ACTIVATION_DEFAULT_PARAMS`` entry. With ``sample_major`` (needs
    ``use_blas``) the kernel reads A as given instead of a feature-major copy."""
    _check_shapes(A, W, b)
    if sample_major and not use_blas:
        raise ValueError("sample_major input needs use_blas=True: the hand-written loops read "
                         "the batch feature-major")
    if Z_out.shape[0] != A.shape[0] or Z_out.shape[1] != W.shape[1] or \
            (D_out is not None and (D_out.shape[0] != Z_out.shape[0] or D_out.shape[1] != Z_out.shape[1])):
        raise ValueError("Z_out and D_out must have shape (A.shape[0], W.shape[1])")
    default = default_activation_param(act)
    cdef floating p = default if param is None else param
    cdef Py_ssize_t m = A.shape[0], n_in = A.shape[1], n_out = W.shape[1]
    cdef const floating[:, ::1] At = A if sample_major else _feature_major(A)
    cdef floating[:, ::1] Zt = np.empty((n_out, m), dtype=np.asarray(Z_out).dtype)
    cdef floating[:, ::1] Dt = None if D_out is None else np.empty_like(Zt)
    cdef floating* d = NULL if D_out is None else &Dt[0, 0]
    with nogil:
        dense_forward(&At[0, 0], &W[0, 0], &b[0], m, n_in, n_out, act, p, use_blas,
                      sample_major, &Zt[0, 0], d)
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
