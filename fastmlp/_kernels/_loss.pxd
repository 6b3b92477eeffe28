from cython cimport floating

cdef enum:
    LOSS_BCE = 0      # sigmoid output + binary cross-entropy

cdef double loss_delta(int loss, const floating* Z, const floating* Y, Py_ssize_t m,
                       Py_ssize_t n_out, floating scale, floating* delta_out) noexcept nogil

cdef void output_activation(int loss, floating* Z, Py_ssize_t m, Py_ssize_t n_out) noexcept nogil
