"""Batch normalization of a hidden layer's pre-activations, forward and backward.

Shapes (row-major): Z (m, n), m rows of a batch and n units; gamma, beta and the running
statistics (n,). Per unit j, with batch mean mu_j and biased variance var_j:

    Zhat = (Z - mu) / sqrt(var + eps),    Y = gamma * Zhat + beta

and at prediction the running averages take the place of mu and var. The backward pass, with
dY = dJ/dY, is

    dbeta = sum_rows(dY),   dgamma = sum_rows(dY * Zhat),
    dZ = gamma / sqrt(var + eps) / m * (m * dY - dbeta - Zhat * dgamma).

Nothing is allocated: the per-unit sums are accumulated in double (for float32 too) in small
arrays on the stack, ``BLOCK`` units at a time, and every pass over a block runs along the rows,
so the inner loops read contiguous memory. Callers must pass eps > 0 and m >= 1.
"""
from libc.math cimport sqrt

from cython cimport floating

cdef enum:
    BLOCK = 64      # units per pass: the per-unit double sums live in stack arrays of this size


cdef void bn_forward_train(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                           const floating* beta, double eps, double momentum,
                           floating* running_mean, floating* running_var,
                           floating* Zhat_out, floating* inv_std_out) noexcept nogil:
    """Z := gamma * Zhat + beta with batch statistics; keep Zhat_out (m, n) and inv_std_out (n,).

    running_mean := momentum * running_mean + (1 - momentum) * mu and
    running_var := momentum * running_var + (1 - momentum) * var * m / (m - 1) (the unbiased
    variance; the biased one, 0, when m == 1). Zhat_out must not overlap Z.
    """
    cdef double mu[BLOCK]
    cdef double inv[BLOCK]      # holds the sum of squares, then the variance, then 1/std
    cdef double d, correction = (<double> m) / (m - 1) if m > 1 else 1.0
    cdef Py_ssize_t i, j, jb, j0, nb
    cdef floating* z
    cdef floating* zh
    for jb in range((n + BLOCK - 1) // BLOCK):
        j0 = jb * BLOCK
        nb = min(<Py_ssize_t> BLOCK, n - j0)
        for j in range(nb):
            mu[j] = 0
            inv[j] = 0
        for i in range(m):
            z = Z + i * n + j0
            for j in range(nb):
                mu[j] += z[j]
        for j in range(nb):
            mu[j] /= m
        # Second pass about the mean: no cancellation as in E[z^2] - E[z]^2.
        for i in range(m):
            z = Z + i * n + j0
            for j in range(nb):
                d = z[j] - mu[j]
                inv[j] += d * d
        for j in range(nb):
            inv[j] /= m
            running_mean[j0 + j] = <floating> (momentum * running_mean[j0 + j]
                                               + (1 - momentum) * mu[j])
            running_var[j0 + j] = <floating> (momentum * running_var[j0 + j]
                                              + (1 - momentum) * inv[j] * correction)
            inv[j] = 1 / sqrt(inv[j] + eps)
            inv_std_out[j0 + j] = <floating> inv[j]
        for i in range(m):
            z = Z + i * n + j0
            zh = Zhat_out + i * n + j0
            for j in range(nb):
                d = (z[j] - mu[j]) * inv[j]
                zh[j] = <floating> d
                z[j] = <floating> (gamma[j0 + j] * d + beta[j0 + j])


cdef void bn_forward_eval(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                          const floating* beta, const floating* running_mean,
                          const floating* running_var, double eps) noexcept nogil:
    """Z := gamma * (Z - running_mean) / sqrt(running_var + eps) + beta"""
    cdef double inv[BLOCK]
    cdef Py_ssize_t i, j, jb, j0, nb
    cdef floating* z
    for jb in range((n + BLOCK - 1) // BLOCK):
        j0 = jb * BLOCK
        nb = min(<Py_ssize_t> BLOCK, n - j0)
        for j in range(nb):
            inv[j] = 1 / sqrt(running_var[j0 + j] + eps)
        for i in range(m):
            z = Z + i * n + j0
            for j in range(nb):
                z[j] = <floating> (gamma[j0 + j] * ((z[j] - running_mean[j0 + j]) * inv[j])
                                   + beta[j0 + j])


cdef void bn_backward(floating* dY, Py_ssize_t m, Py_ssize_t n, const floating* Zhat,
                      const floating* inv_std, const floating* gamma,
                      floating* dgamma_out, floating* dbeta_out) noexcept nogil:
    """dgamma_out := sum_rows(dY * Zhat), dbeta_out := sum_rows(dY) (overwritten), then
    dY := gamma * inv_std / m * (m * dY - dbeta - Zhat * dgamma), the gradient with respect to Z.
    """
    cdef double sg[BLOCK]       # dgamma
    cdef double sb[BLOCK]       # dbeta
    cdef double c[BLOCK]        # gamma * inv_std / m
    cdef double g
    cdef Py_ssize_t i, j, jb, j0, nb
    cdef floating* dy
    cdef const floating* zh
    for jb in range((n + BLOCK - 1) // BLOCK):
        j0 = jb * BLOCK
        nb = min(<Py_ssize_t> BLOCK, n - j0)
        for j in range(nb):
            sg[j] = 0
            sb[j] = 0
        for i in range(m):
            dy = dY + i * n + j0
            zh = Zhat + i * n + j0
            for j in range(nb):
                g = dy[j]
                sb[j] += g
                sg[j] += g * zh[j]
        for j in range(nb):
            dgamma_out[j0 + j] = <floating> sg[j]
            dbeta_out[j0 + j] = <floating> sb[j]
            c[j] = <double> gamma[j0 + j] * inv_std[j0 + j] / m
        for i in range(m):
            dy = dY + i * n + j0
            zh = Zhat + i * n + j0
            for j in range(nb):
                dy[j] = <floating> (c[j] * (m * <double> dy[j] - sb[j] - zh[j] * sg[j]))


def _check_shape(name, array, shape):
    if tuple(array.shape) != shape:
        raise ValueError(f"arrays have incompatible shapes: {name} has shape {tuple(array.shape)}, "
                         f"expected {shape} to match Z's (m, n)")


def _check_Z(Z):
    if Z.shape[0] < 1 or Z.shape[1] < 1:
        raise ValueError(f"Z has shape {(Z.shape[0], Z.shape[1])}; batch normalization needs at "
                         "least one row and one unit")


def _check_eps(double eps):
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (it keeps 1/sqrt(var + eps) finite), got {eps}")


def bn_forward_train_py(floating[:, ::1] Z, const floating[::1] gamma, const floating[::1] beta,
                        double eps, double momentum, floating[::1] running_mean,
                        floating[::1] running_var, floating[:, ::1] Zhat_out,
                        floating[::1] inv_std_out):
    """Python twin of ``bn_forward_train`` (tests).

    Parameters
    ----------
    Z : ndarray of shape (m, n), float32 or float64, C-contiguous
        Pre-activations; overwritten with ``Y = gamma * Zhat + beta``.
    gamma, beta : ndarray of shape (n,)
        Scale and shift.
    eps : float
        Added to the variance, > 0.
    momentum : float
        Weight of the old running statistics, in [0, 1].
    running_mean, running_var : ndarray of shape (n,)
        Updated in place.
    Zhat_out : ndarray of shape (m, n)
        Receives the normalized Z; must not be Z itself.
    inv_std_out : ndarray of shape (n,)
        Receives ``1 / sqrt(var + eps)``.

    Raises
    ------
    ValueError
        On incompatible shapes, an empty Z, eps <= 0, momentum outside [0, 1], or Zhat_out is Z.
    """
    _check_Z(Z)
    cdef Py_ssize_t m = Z.shape[0], n = Z.shape[1]
    for name, array in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                        ("running_var", running_var), ("inv_std_out", inv_std_out)):
        _check_shape(name, array, (n,))
    _check_shape("Zhat_out", Zhat_out, (m, n))
    _check_eps(eps)
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if &Zhat_out[0, 0] == &Z[0, 0]:
        raise ValueError("Zhat_out must be a separate array from Z (Z is overwritten with Y)")
    with nogil:
        bn_forward_train(&Z[0, 0], m, n, &gamma[0], &beta[0], eps, momentum, &running_mean[0],
                         &running_var[0], &Zhat_out[0, 0], &inv_std_out[0])


def bn_forward_eval_py(floating[:, ::1] Z, const floating[::1] gamma, const floating[::1] beta,
                       const floating[::1] running_mean, const floating[::1] running_var,
                       double eps):
    """Python twin of ``bn_forward_eval`` (tests): Z (m, n) is overwritten with
    ``gamma * (Z - running_mean) / sqrt(running_var + eps) + beta``; the others have shape (n,).

    Raises
    ------
    ValueError
        On incompatible shapes, an empty Z or eps <= 0.
    """
    _check_Z(Z)
    cdef Py_ssize_t m = Z.shape[0], n = Z.shape[1]
    for name, array in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                        ("running_var", running_var)):
        _check_shape(name, array, (n,))
    _check_eps(eps)
    with nogil:
        bn_forward_eval(&Z[0, 0], m, n, &gamma[0], &beta[0], &running_mean[0], &running_var[0],
                        eps)


def bn_backward_py(floating[:, ::1] dY, const floating[:, ::1] Zhat, const floating[::1] inv_std,
                   const floating[::1] gamma, floating[::1] dgamma_out, floating[::1] dbeta_out):
    """Python twin of ``bn_backward`` (tests).

    dY (m, n) is overwritten with dJ/dZ; dgamma_out and dbeta_out (n,) receive dJ/dgamma and
    dJ/dbeta. Zhat and inv_std are those the training forward pass kept.

    Raises
    ------
    ValueError
        On incompatible shapes or an empty dY.
    """
    _check_Z(dY)
    cdef Py_ssize_t m = dY.shape[0], n = dY.shape[1]
    _check_shape("Zhat", Zhat, (m, n))
    for name, array in (("inv_std", inv_std), ("gamma", gamma), ("dgamma_out", dgamma_out),
                        ("dbeta_out", dbeta_out)):
        _check_shape(name, array, (n,))
    with nogil:
        bn_backward(&dY[0, 0], m, n, &Zhat[0, 0], &inv_std[0], &gamma[0], &dgamma_out[0],
                    &dbeta_out[0])
