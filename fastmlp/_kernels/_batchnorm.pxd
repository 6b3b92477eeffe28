from cython cimport floating

cdef void bn_forward_train(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                           const floating* beta, double eps, double momentum,
                           floating* running_mean, floating* running_var,
                           floating* Zhat_out, floating* inv_std_out) noexcept nogil

cdef void bn_forward_eval(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                          const floating* beta, const floating* running_mean,
                          const floating* running_var, double eps) noexcept nogil

cdef void bn_backward(floating* dY, Py_ssize_t m, Py_ssize_t n, const floating* Zhat,
                      const floating* inv_std, const floating* gamma,
                      floating* dgamma_out, floating* dbeta_out) noexcept nogil
