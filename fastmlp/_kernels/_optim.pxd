from cython cimport floating

cdef void add_penalty_gradient(floating* g, const floating* w, Py_ssize_t n,
                               double l1, double l2) noexcept nogil

cdef double penalty_value(const floating* w, Py_ssize_t n, double l1, double l2) noexcept nogil

cdef void sgd_step(floating* theta, const floating* g, Py_ssize_t n, floating lr) noexcept nogil
