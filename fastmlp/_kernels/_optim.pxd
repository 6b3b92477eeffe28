from cython cimport floating

# Update-rule ids: the contract with fastmlp/optimizers.py (which reads them from
# fastmlp._kernels._optim.OPTIMIZER_IDS) and with fastmlp/reference.py (by name).
cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    OPT_ADAMW = 6

cdef void add_penalty_gradient(floating* g, const floating* w, Py_ssize_t n,
                               double l1, double l2) noexcept nogil

cdef double penalty_value(const floating* w, Py_ssize_t n, double l1, double l2) noexcept nogil

cdef void sgd_step(floating* theta, const floating* g, Py_ssize_t n, floating lr) noexcept nogil

cdef void optimizer_step(int opt, const double* hyper, floating* theta, const floating* g,
                         floating* state, Py_ssize_t n, double lr, long long t) noexcept nogil

cdef void decay_weights(floating* w, Py_ssize_t n, double factor) noexcept nogil

cdef double squared_norm(const floating* g, Py_ssize_t n) noexcept nogil

cdef void scale_vector(floating* g, Py_ssize_t n, double factor) noexcept nogil

cdef void clip_values(floating* g, Py_ssize_t n, double limit) noexcept nogil
