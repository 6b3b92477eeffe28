"""Batch normalization of a hidden layer's pre-activations, forward and backward.

Shapes: Z (n, m) feature-major, n units of a batch of m samples, unit j's batch one contiguous
row (see ``_dense``); gamma, beta and the running statistics (n,). The Python twins take row-major
(m, n) arrays. Per unit j, with batch mean mu_j and biased variance var_j:

    Zhat = (Z - mu) / sqrt(var + eps),    Y = gamma * Zhat + beta

and at prediction the running averages take the place of mu and var. The backward pass, with
dY = dJ/dY, is

    dbeta = sum_rows(dY),   dgamma = sum_rows(dY * Zhat),
    dZ = gamma / sqrt(var + eps) / m * (m * dY - dbeta - Zhat * dgamma).

Nothing is allocated; per-unit sums are accumulated in double (for float32 too). Callers must
pass eps > 0 and m >= 1.
"""
from libc.math cimport sqrt

import numpy as np

from cython cimport floating

cdef void bn_forward_train(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                           const floating* beta, double eps, double momentum,
                           floating* running_mean, floating* running_var,
                           floating* Zhat_out, floating* inv_std_out) noexcept nogil:
    """Z := gamma * Zhat + beta with batch statistics; keep Zhat_out (n, m) and inv_std_out (n,).

    running_mean := momentum * running_mean + (1 - momentum) * mu and
    running_var := momentum * running_var + (1 - momentum) * var * m / (m - 1) (the unbiased
    variance; the biased one, 0, when m == 1). Zhat_out must not overlap Z.
    """
    cdef double mu, var, inv, dev, g, bt, correction = (<double> m) / (m - 1) if m > 1 else 1.0
    cdef Py_ssize_t i, j
    cdef floating* z
    cdef floating* zh
    for j in range(n):
        z = Z + j * m
        zh = Zhat_out + j * m
        mu = 0
        for i in range(m):
            mu += z[i]
        mu /= m
        var = 0
        for i in range(m):       # a second pass about the mean: no cancellation
            dev = z[i] - mu
            var += dev * dev
        var /= m
        running_mean[j] = <floating> (momentum * running_mean[j] + (1 - momentum) * mu)
        running_var[j] = <floating> (momentum * running_var[j] + (1 - momentum) * var * correction)
        inv = 1 / sqrt(var + eps)
        inv_std_out[j] = <floating> inv
        g, bt = gamma[j], beta[j]
        for i in range(m):
            dev = (z[i] - mu) * inv
            zh[i] = <floating> dev
            z[i] = <floating> (g * dev + bt)


cdef void bn_forward_eval(floating* Z, Py_ssize_t m, Py_ssize_t n, const floating* gamma,
                          const floating* beta, const floating* running_mean,
                          const floating* running_var, double eps) noexcept nogil:
    """Z := gamma * (Z - running_mean) / sqrt(running_var + eps) + beta"""
    cdef double inv, mu, g, bt
    cdef Py_ssize_t i, j
    cdef floating* z
    for j in range(n):
        z = Z + j * m
        inv = 1 / sqrt(running_var[j] + eps)
        mu, g, bt = running_mean[j], gamma[j], beta[j]
        for i in range(m):
            z[i] = <floating> (g * ((z[i] - mu) * inv) + bt)


cdef void bn_backward(floating* dY, Py_ssize_t m, Py_ssize_t n, const floating* Zhat,
                      const floating* inv_std, const floating* gamma,
                      floating* dgamma_out, floating* dbeta_out) noexcept nogil:
    """dgamma_out := sum over the batch of dY * Zhat, dbeta_out := sum of dY (overwritten), then
    dY := gamma * inv_std / m * (m * dY - dbeta - Zhat * dgamma), the gradient with respect to Z.
    """
    cdef double sg, sb, c, v
    cdef Py_ssize_t i, j
    cdef floating* dy
    cdef const floating* zh
    for j in range(n):
        dy = dY + j * m
        zh = Zhat + j * m
        sg = 0
        sb = 0
        for i in range(m):
            v = dy[i]
            sb += v
            sg += v * zh[i]
        dgamma_out[j] = <floating> sg
        dbeta_out[j] = <floating> sb
        c = <double> gamma[j] * inv_std[j] / m
        for i in range(m):
            dy[i] = <floating> (c * (m * <double> dy[i] - sb - zh[i] * sg))


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
    cdef floating[:, ::1] Zt = np.array(np.asarray(Z).T, order="C")
    cdef floating[:, ::1] Zht = np.empty_like(Zt)
    with nogil:
        bn_forward_train(&Zt[0, 0], m, n, &gamma[0], &beta[0], eps, momentum, &running_mean[0],
                         &running_var[0], &Zht[0, 0], &inv_std_out[0])
    np.asarray(Z)[...] = np.asarray(Zt).T
    np.asarray(Zhat_out)[...] = np.asarray(Zht).T


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
    cdef floating[:, ::1] Zt = np.array(np.asarray(Z).T, order="C")
    with nogil:
        bn_forward_eval(&Zt[0, 0], m, n, &gamma[0], &beta[0], &running_mean[0], &running_var[0],
                        eps)
    np.asarray(Z)[...] = np.asarray(Zt).T


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
    cdef floating[:, ::1] dYt = np.array(np.asarray(dY).T, order="C")
    cdef floating[:, ::1] Zht = np.array(np.asarray(Zhat).T, order="C")
    with nogil:
        bn_backward(&dYt[0, 0], m, n, &Zht[0, 0], &inv_std[0], &gamma[0], &dgamma_out[0],
                    &dbeta_out[0])
    np.asarray(dY)[...] = np.asarray(dYt).T
