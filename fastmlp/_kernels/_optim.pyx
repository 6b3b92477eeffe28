"""Update rules and penalties over flat parameter buffers: one loop over one vector each."""


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
