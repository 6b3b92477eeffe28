from cython cimport floating

cdef void dense_forward(const floating* A, const floating* W, const floating* b,
                        Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, int act, floating param,
                        bint use_blas, bint sample_major, floating* Z_out,
                        floating* D_out) noexcept nogil

cdef void dense_backward(const floating* A, const floating* W, const floating* delta,
                         const floating* D, Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                         bint use_blas, floating alpha, floating beta_w, floating beta_b,
                         floating* gW_out, floating* gb_out,
                         floating* delta_prev_out) noexcept nogil

cdef void bias_gradient(const floating* delta, Py_ssize_t m, Py_ssize_t n_out, floating alpha,
                        floating beta_b, floating* gb_out) noexcept nogil

cdef double bce_loss_delta(const floating* Z, const floating* Y, const floating* w,
                           Py_ssize_t m, Py_ssize_t n_out, floating scale,
                           floating* delta_out) noexcept nogil

cdef void apply_activation(int act, floating param, floating* Z, floating* D,
                           Py_ssize_t n) noexcept nogil

cdef double ce_loss_delta(const floating* Z, const floating* Y, const floating* w,
                          Py_ssize_t m, Py_ssize_t n_out, floating t_on, floating t_off,
                          floating scale, floating* delta_out) noexcept nogil
