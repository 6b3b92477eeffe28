from cython cimport floating

cdef void dropout_apply(floating* A, floating* D, Py_ssize_t m, Py_ssize_t n_units, double rate,
                        unsigned long long seed, unsigned long long step, int layer) noexcept nogil
