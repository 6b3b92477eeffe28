"""Update rules and penalties over flat parameter buffers: one loop over one vector each.

An optimizer's state (velocity, squared-gradient sums, Adam moments) is ``n_state`` consecutive
blocks of ``n`` entries, block k for ``theta[i]`` at ``state[k * n + i]``; it starts at zero.
"""
from libc.math cimport pow, sqrt, sqrtf

OPTIMIZER_IDS = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "nesterov": OPT_NESTEROV,
                 "adagrad": OPT_ADAGRAD, "rmsprop": OPT_RMSPROP, "adam": OPT_ADAM,
                 "adamw": OPT_ADAMW}
# Blocks of state per parameter, and entries of ``hyper``, for each id.
OPTIMIZER_STATE_SIZES = {OPT_SGD: 0, OPT_MOMENTUM: 1, OPT_NESTEROV: 1, OPT_ADAGRAD: 1,
                         OPT_RMSPROP: 1, OPT_ADAM: 2, OPT_ADAMW: 2}
OPTIMIZER_HYPER_SIZES = {OPT_SGD: 0, OPT_MOMENTUM: 1, OPT_NESTEROV: 1, OPT_ADAGRAD: 1,
                         OPT_RMSPROP: 2, OPT_ADAM: 3, OPT_ADAMW: 4}
_NAMES = {opt: name for name, opt in OPTIMIZER_IDS.items()}


cdef void add_penalty_gradient(floating* g, const floating* w, Py_ssize_t n,
                               double l1, double l2) noexcept nogil:
    """g := g + l2 * w + l1 * sign(w), the gradient of 0.5 * l2 * |w|^2 + l1 * |w|_1."""
    cdef Py_ssize_t i
    cdef floating c2 = <floating> l2, c1 = <floating> l1
    if l1 == 0:
        for i in range(n):
            g[i] += c2 * w[i]
    else:
        for i in range(n):
            g[i] += c2 * w[i] + (c1 if w[i] > 0 else (-c1 if w[i] < 0 else 0))


cdef double penalty_value(const floating* w, Py_ssize_t n, double l1, double l2) noexcept nogil:
    """0.5 * l2 * sum(w**2) + l1 * sum(|w|), accumulated in double."""
    cdef Py_ssize_t i
    cdef double sq = 0, ab = 0
    for i in range(n):
        sq += <double> w[i] * w[i]
        ab += w[i] if w[i] > 0 else -w[i]
    return 0.5 * l2 * sq + l1 * ab


cdef void sgd_step(floating* theta, const floating* g, Py_ssize_t n, floating lr) noexcept nogil:
    """theta := theta - lr * g"""
    cdef Py_ssize_t i
    for i in range(n):
        theta[i] -= lr * g[i]


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void optimizer_step(int opt, const double* hyper, floating* theta, const floating* g,
                         floating* state, Py_ssize_t n, double lr, long long t) noexcept nogil:
    """One update of theta (n entries) from the gradient g, at rate lr, on update t (from 1).

    SGD       (no hyper, no state):     theta -= lr g
    Momentum  (hyper mu; state v):      v = mu v - lr g;  theta += v
    Nesterov  (hyper mu; state v):      v = mu v - lr g;  theta += mu v - lr g
    AdaGrad   (hyper eps; state G):     G += g^2;  theta -= lr g / (sqrt(G) + eps)
    RMSProp   (hyper rho, eps; state s): s = rho s + (1 - rho) g^2;  theta -= lr g / (sqrt(s) + eps)
    Adam      (hyper b1, b2, eps; state m then v):
              m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
              theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW     (hyper b1, b2, eps, weight_decay; state m then v): exactly Adam here. The decoupled
              decay theta *= 1 - lr weight_decay belongs to the caller, who applies it with
              decay_weights to the weight matrices only (not the biases) before this call.

    Nesterov is Sutskever's form, as in scikit-learn. An unknown id leaves everything unchanged.
    """
    cdef Py_ssize_t i
    cdef floating a = <floating> lr, gi, mu, eps, rho, c_rho, b1, b2, c1, c2, step, inv_bc2
    cdef floating* v = state
    cdef floating* m
    if opt == OPT_SGD:
        sgd_step(theta, g, n, a)
    elif opt == OPT_MOMENTUM:
        mu = <floating> hyper[0]
        for i in range(n):
            v[i] = mu * v[i] - a * g[i]
            theta[i] += v[i]
    elif opt == OPT_NESTEROV:
        mu = <floating> hyper[0]
        for i in range(n):
            gi = a * g[i]
            v[i] = mu * v[i] - gi
            theta[i] += mu * v[i] - gi
    elif opt == OPT_ADAGRAD:
        eps = <floating> hyper[0]
        for i in range(n):
            gi = g[i]
            v[i] += gi * gi
            theta[i] -= a * gi / (_sqrt(v[i]) + eps)
    elif opt == OPT_RMSPROP:
        rho = <floating> hyper[0]
        c_rho = <floating> (1 - hyper[0])
        eps = <floating> hyper[1]
        for i in range(n):
            gi = g[i]
            v[i] = rho * v[i] + c_rho * gi * gi
            theta[i] -= a * gi / (_sqrt(v[i]) + eps)
    elif opt == OPT_ADAM or opt == OPT_ADAMW:
        b1 = <floating> hyper[0]
        b2 = <floating> hyper[1]
        c1 = <floating> (1 - hyper[0])
        c2 = <floating> (1 - hyper[1])
        eps = <floating> hyper[2]
        # the bias corrections fold into one step size and one factor under the root
        step = <floating> (lr / (1 - pow(hyper[0], <double> t)))
        inv_bc2 = <floating> (1 / (1 - pow(hyper[1], <double> t)))
        m = state
        v = state + n
        for i in range(n):
            gi = g[i]
            m[i] = b1 * m[i] + c1 * gi
            v[i] = b2 * v[i] + c2 * gi * gi
            theta[i] -= step * m[i] / (_sqrt(v[i] * inv_bc2) + eps)


cdef void decay_weights(floating* w, Py_ssize_t n, double factor) noexcept nogil:
    """w := factor * w (AdamW's decoupled decay, with factor = 1 - lr * weight_decay)"""
    scale_vector(w, n, factor)


cdef double squared_norm(const floating* g, Py_ssize_t n) noexcept nogil:
    """sum(g**2), accumulated in double"""
    cdef Py_ssize_t i
    cdef double s = 0
    for i in range(n):
        s += <double> g[i] * g[i]
    return s


cdef void scale_vector(floating* g, Py_ssize_t n, double factor) noexcept nogil:
    """g := factor * g"""
    cdef Py_ssize_t i
    cdef floating c = <floating> factor
    for i in range(n):
        g[i] *= c


cdef void clip_values(floating* g, Py_ssize_t n, double limit) noexcept nogil:
    """g := clamp(g, -limit, limit); NaN stays NaN"""
    cdef Py_ssize_t i
    cdef floating hi = <floating> limit, lo = -hi
    for i in range(n):
        if g[i] > hi:
            g[i] = hi
        elif g[i] < lo:
            g[i] = lo


def add_penalty_gradient_py(floating[::1] g, const floating[::1] w, double l1, double l2):
    """Python twin of ``add_penalty_gradient`` (tests), in place on g."""
    if g.shape[0] != w.shape[0]:
        raise ValueError(f"g ({g.shape[0]},) and w ({w.shape[0]},) must have one shape")
    with nogil:
        add_penalty_gradient(&g[0], &w[0], g.shape[0], l1, l2)


def penalty_value_py(const floating[::1] w, double l1, double l2):
    """Python twin of ``penalty_value`` (tests)."""
    return penalty_value(&w[0], w.shape[0], l1, l2)


def sgd_step_py(floating[::1] theta, const floating[::1] g, double lr):
    """Python twin of ``sgd_step`` (tests), in place on theta."""
    if theta.shape[0] != g.shape[0]:
        raise ValueError(f"theta ({theta.shape[0]},) and g ({g.shape[0]},) must have one shape")
    with nogil:
        sgd_step(&theta[0], &g[0], theta.shape[0], <floating> lr)


def optimizer_step_py(int opt, const double[::1] hyper, floating[::1] theta,
                      const floating[::1] g, floating[::1] state, double lr, long long t):
    """Python twin of ``optimizer_step`` (tests), in place on theta and state.

    ``state`` needs at least ``OPTIMIZER_STATE_SIZES[opt] * len(theta)`` entries (it may be
    empty or None for SGD) and ``hyper`` at least ``OPTIMIZER_HYPER_SIZES[opt]``; ``t >= 1``.
    """
    if opt not in OPTIMIZER_STATE_SIZES:
        raise ValueError(f"unknown optimizer id {opt}; valid ids: {OPTIMIZER_IDS}")
    cdef Py_ssize_t n = theta.shape[0]
    cdef Py_ssize_t n_state = OPTIMIZER_STATE_SIZES[opt], n_hyper = OPTIMIZER_HYPER_SIZES[opt]
    cdef Py_ssize_t state_len = 0 if state is None else state.shape[0]
    cdef Py_ssize_t hyper_len = 0 if hyper is None else hyper.shape[0]
    if g.shape[0] != n:
        raise ValueError(f"theta ({n},) and g ({g.shape[0]},) must have one shape")
    if state_len < n_state * n:
        raise ValueError(f"{_NAMES[opt]} needs a state of at least {n_state} * {n} = "
                         f"{n_state * n} entries; got {state_len}")
    if hyper_len < n_hyper:
        raise ValueError(f"{_NAMES[opt]} needs {n_hyper} hyperparameters; got {hyper_len}")
    if t < 1:
        raise ValueError(f"t counts updates from 1; got {t}")
    if n == 0:
        return
    cdef floating* s = &state[0] if n_state > 0 else NULL
    cdef const double* h = &hyper[0] if n_hyper > 0 else NULL
    with nogil:
        optimizer_step(opt, h, &theta[0], &g[0], s, n, lr, t)


def decay_weights_py(floating[::1] w, double factor):
    """Python twin of ``decay_weights`` (tests), in place on w."""
    if w.shape[0] > 0:
        decay_weights(&w[0], w.shape[0], factor)


def squared_norm_py(const floating[::1] g):
    """Python twin of ``squared_norm`` (tests): sum(g**2) as a Python float."""
    return squared_norm(&g[0], g.shape[0]) if g.shape[0] > 0 else 0.0


def scale_vector_py(floating[::1] g, double factor):
    """Python twin of ``scale_vector`` (tests), in place on g."""
    if g.shape[0] > 0:
        scale_vector(&g[0], g.shape[0], factor)


def clip_values_py(floating[::1] g, double limit):
    """Python twin of ``clip_values`` (tests), in place on g; limit must be >= 0."""
    if not limit >= 0:
        raise ValueError(f"limit must be a number >= 0; got {limit}")
    if g.shape[0] > 0:
        clip_values(&g[0], g.shape[0], limit)
