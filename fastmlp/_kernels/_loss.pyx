"""Losses computed from the output layer's logits, and the output deltas dJ/dZ.

Each loss is paired with its canonical output activation, which makes the delta simple and lets
the loss be computed stably from the logits z. Per-sample losses (summed over the outputs):

=========================  ==========  ===============================================  =================
loss                       output      per-sample loss                                  dl/dz
=========================  ==========  ===============================================  =================
binary_crossentropy        sigmoid     sum_k max(z,0) - y z + log(1 + exp(-|z|))        sigmoid(z) - y
categorical_crossentropy   softmax     logsumexp(z) - sum_k t_k z_k                     softmax(z) - t
squared_error              identity    0.5 * sum_k (z - y)^2                            z - y
absolute_error             identity    sum_k |z - y|                                    sign(z - y)
huber                      identity    sum_k 0.5 r^2 if |r| <= d else d (|r| - d / 2)   clamp(r, -d, d)
poisson                    exp         sum_k exp(z) - y z + y log(y) - y                exp(z) - y
=========================  ==========  ===============================================  =================

Z, Y and the deltas are feature-major, (n_out, m): output k of the m samples is one contiguous
row (see ``_dense``); the Python twins take row-major (m, n_out) arrays.

For the categorical loss Y is one-hot and t = (1 - eps) y + eps / K is the label-smoothed
target (eps = ``param``); for Huber r = z - y and d = ``param``. The Poisson loss is half the
Poisson deviance of the mean exp(z) (log link), ``y log(y / mu) - y + mu`` with ``0 log 0 = 0``,
as scikit-learn's MLPRegressor(loss="poisson") reports it; its targets must be >= 0.
"""
import numpy as np

from cython cimport floating
from libc.math cimport fabs, log

from fastmlp._kernels._activations cimport _exp, sigmoid
from fastmlp._kernels._dense cimport bce_loss_delta, ce_loss_delta

LOSS_IDS = {"binary_crossentropy": LOSS_BCE, "categorical_crossentropy": LOSS_CE,
            "squared_error": LOSS_MSE, "absolute_error": LOSS_MAE, "huber": LOSS_HUBER,
            "poisson": LOSS_POISSON}


cdef inline floating column_max(const floating* Z, Py_ssize_t r, Py_ssize_t m,
                                Py_ssize_t n_out) noexcept nogil:
    """The largest of sample r's outputs Z[0, r], ..., Z[n_out - 1, r] (softmax's shift)."""
    cdef Py_ssize_t k
    cdef floating best = Z[r]
    for k in range(1, n_out):
        if Z[k * m + r] > best:
            best = Z[k * m + r]
    return best


cdef double loss_delta(int loss, double param, const floating* Z, const floating* Y,
                       const floating* w, Py_ssize_t m, Py_ssize_t n_out, floating scale,
                       floating* delta_out) noexcept nogil:
    """Return sum_r w_r l_r over the m samples (w_r = 1 when w is NULL), Z and Y (n_out, m).

    When delta_out is not NULL, delta_out[k, r] := scale * w_r * dl_r/dz_kr; with scale = 1/m
    that is the gradient of the batch's weighted mean loss.
    """
    cdef Py_ssize_t r, k, i
    cdef double total = 0, part, res, d = param
    cdef floating z, y, s, e
    if loss == LOSS_CE:
        # shift by the column's maximum, exp, log of the sum, on registers per CPU target
        # (``loss_ce`` in _simd_body.h)
        return ce_loss_delta(Z, Y, w, m, n_out, <floating> (1 - param),
                             <floating> (param / n_out), scale, delta_out)
    if loss == LOSS_BCE:
        # max(z,0) - y z + log1p(e) and sigmoid(z) - y from one e = exp(-|z|), on registers,
        # per CPU target (``loss_bce`` in _simd_body.h)
        return bce_loss_delta(Z, Y, w, m, n_out, scale, delta_out)
    # Element-wise losses: one pass over the (n_out, m) block.
    for k in range(n_out):
        for r in range(m):
            i = k * m + r
            z = Z[i]
            y = Y[i]
            s = scale * (w[r] if w != NULL else 1)
            if loss == LOSS_MSE:
                res = z - y
                part = 0.5 * res * res
                if delta_out != NULL:
                    delta_out[i] = <floating> res * s
            elif loss == LOSS_MAE:
                res = z - y
                part = fabs(res)
                if delta_out != NULL:
                    delta_out[i] = s if res > 0 else (-s if res < 0 else 0)
            elif loss == LOSS_POISSON:
                e = _exp(z)
                part = e - y * <double> z + (y * log(y) - y if y > 0 else 0)
                if delta_out != NULL:
                    delta_out[i] = (e - y) * s
            else:   # LOSS_HUBER
                res = z - y
                if fabs(res) <= d:
                    part = 0.5 * res * res
                else:
                    part = d * (fabs(res) - 0.5 * d)
                if delta_out != NULL:
                    delta_out[i] = <floating> (res if fabs(res) <= d else (d if res > 0 else -d)) * s
            total += part * (w[r] if w != NULL else 1)
    return total


cdef void output_activation(int loss, floating* Z, Py_ssize_t m, Py_ssize_t n_out) noexcept nogil:
    """Z (n_out, m) := the output activation paired with the loss, in place (per sample for
    softmax)."""
    cdef Py_ssize_t r, k
    cdef floating zmax
    cdef double total
    if loss == LOSS_BCE:
        for r in range(m * n_out):
            Z[r] = sigmoid(Z[r])
    elif loss == LOSS_POISSON:
        for r in range(m * n_out):
            Z[r] = _exp(Z[r])
    elif loss == LOSS_CE:
        for r in range(m):
            zmax = column_max(Z, r, m, n_out)
            total = 0
            for k in range(n_out):
                Z[k * m + r] = _exp(<floating> (Z[k * m + r] - zmax))
                total += Z[k * m + r]
            for k in range(n_out):
                Z[k * m + r] = <floating> (Z[k * m + r] / total)


def loss_delta_py(int loss, const floating[:, ::1] Z, const floating[:, ::1] Y,
                  const floating[::1] sample_weight=None, double param=0.0,
                  floating[:, ::1] delta_out=None):
    """Python twin of ``loss_delta`` (tests), on row-major (m, n_out) arrays: return
    sum_r w_r l_r / m and, unless delta_out is None, fill it with the gradient of that value
    with respect to Z."""
    if Z.shape[0] != Y.shape[0] or Z.shape[1] != Y.shape[1] or Z.shape[0] == 0:
        raise ValueError(f"Z {(Z.shape[0], Z.shape[1])} and Y {(Y.shape[0], Y.shape[1])} must "
                         "have one non-empty shape")
    if loss not in LOSS_IDS.values():
        raise ValueError(f"unknown loss id {loss}; valid ids: {LOSS_IDS}")
    cdef Py_ssize_t m = Z.shape[0], n_out = Z.shape[1]
    if delta_out is not None and (delta_out.shape[0] != m or delta_out.shape[1] != n_out):
        raise ValueError("delta_out must have Z's shape")
    if sample_weight is not None and sample_weight.shape[0] != m:
        raise ValueError(f"sample_weight must have {m} entries")
    cdef floating[:, ::1] Zt = np.array(np.asarray(Z).T, order="C")
    cdef floating[:, ::1] Yt = np.array(np.asarray(Y).T, order="C")
    cdef floating[:, ::1] dt = None if delta_out is None else np.empty_like(Zt)
    cdef floating* d = NULL if delta_out is None else &dt[0, 0]
    cdef const floating* w = NULL if sample_weight is None else &sample_weight[0]
    cdef double total
    with nogil:
        total = loss_delta(loss, param, &Zt[0, 0], &Yt[0, 0], w, m, n_out,
                           <floating> (1.0 / m), d)
    if delta_out is not None:
        np.asarray(delta_out)[...] = np.asarray(dt).T
    return total / m


def output_activation_py(int loss, floating[:, ::1] Z):
    """Python twin of ``output_activation`` (tests), in place on a row-major (m, n_out) Z."""
    if loss not in LOSS_IDS.values():
        raise ValueError(f"unknown loss id {loss}; valid ids: {LOSS_IDS}")
    if Z.shape[0] == 0:
        return
    cdef floating[:, ::1] Zt = np.array(np.asarray(Z).T, order="C")
    with nogil:
        output_activation(loss, &Zt[0, 0], Z.shape[0], Z.shape[1])
    np.asarray(Z)[...] = np.asarray(Zt).T
