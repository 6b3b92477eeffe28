from cython cimport floating

cdef enum:
    LOSS_BCE = 0        # sigmoid outputs + binary cross-entropy (binary and multi-label)
    LOSS_CE = 1         # softmax + categorical cross-entropy (param: label smoothing)
    LOSS_MSE = 2        # identity + squared error
    LOSS_MAE = 3        # identity + absolute error
    LOSS_HUBER = 4      # identity + Huber (param: the transition point delta)
    LOSS_POISSON = 5    # exp (log link) + half Poisson deviance

cdef double loss_delta(int loss, double param, const floating* Z, const floating* Y,
                       const floating* w, Py_ssize_t m, Py_ssize_t n_out, floating scale,
                       floating* delta_out) noexcept nogil

cdef void output_activation(int loss, floating* Z, Py_ssize_t m, Py_ssize_t n_out) noexcept nogil
