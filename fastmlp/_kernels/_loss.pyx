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
=========================  ==========  ===============================================  =================

For the categorical loss Y is one-hot and t = (1 - eps) y + eps / K is the label-smoothed
target (eps = ``param``); for Huber r = z - y and d = ``param``.
"""
from cython cimport floating
from libc.math cimport fabs, log, log1p

from fastmlp._kernels._activations cimport _exp, sigmoid

LOSS_IDS = {"binary_crossentropy": LOSS_BCE, "categorical_crossentropy": LOSS_CE,
            "squared_error": LOSS_MSE, "absolute_error": LOSS_MAE, "huber": LOSS_HUBER}


cdef double loss_delta(int loss, double param, const floating* Z, const floating* Y,
                       const floating* w, Py_ssize_t m, Py_ssize_t n_out, floating scale,
                       floating* delta_out) noexcept nogil:
    """Return sum_i w_i l_i over the m rows (w_i = 1 when w is NULL).

    When delta_out is not NULL, delta_out[i] := scale * w_i * dl_i/dz_i; with scale = 1/m that
    is the gradient of the batch's weighted mean loss.
    """
    cdef Py_ssize_t i, k
    cdef double total = 0, row, zmax, sumexp, lse, r, d = param
    cdef floating z, y, s, t_off, t_on
    cdef const floating* zi
    cdef const floating* yi
    cdef floating* di
    for i in range(m):
        zi = Z + i * n_out
        yi = Y + i * n_out
        di = delta_out + i * n_out if delta_out != NULL else NULL
        s = scale * (w[i] if w != NULL else 1)
        row = 0
        if loss == LOSS_BCE:
            for k in range(n_out):
                z = zi[k]
                y = yi[k]
                row += (z if z > 0 else 0) - y * z + log1p(_exp(-fabs(z)))
                if di != NULL:
                    di[k] = (sigmoid(z) - y) * s
        elif loss == LOSS_CE:
            zmax = zi[0]
            for k in range(1, n_out):
                if zi[k] > zmax:
                    zmax = zi[k]
            sumexp = 0
            for k in range(n_out):
                sumexp += _exp(<floating> (zi[k] - zmax))
            lse = zmax + log(sumexp)
            t_off = <floating> (param / n_out)
            t_on = <floating> (1 - param)
            for k in range(n_out):
                y = t_on * yi[k] + t_off
                row -= y * (zi[k] - lse)
                if di != NULL:
                    di[k] = (<floating> (_exp(<floating> (zi[k] - zmax)) / sumexp) - y) * s
        elif loss == LOSS_MSE:
            for k in range(n_out):
                r = zi[k] - yi[k]
                row += 0.5 * r * r
                if di != NULL:
                    di[k] = <floating> r * s
        elif loss == LOSS_MAE:
            for k in range(n_out):
                r = zi[k] - yi[k]
                row += fabs(r)
                if di != NULL:
                    di[k] = s if r > 0 else (-s if r < 0 else 0)
        elif loss == LOSS_HUBER:
            for k in range(n_out):
                r = zi[k] - yi[k]
                if fabs(r) <= d:
                    row += 0.5 * r * r
                else:
                    row += d * (fabs(r) - 0.5 * d)
                if di != NULL:
                    di[k] = <floating> (r if fabs(r) <= d else (d if r > 0 else -d)) * s
        total += row * (w[i] if w != NULL else 1)
    return total


cdef void output_activation(int loss, floating* Z, Py_ssize_t m, Py_ssize_t n_out) noexcept nogil:
    """Z := the output activation paired with the loss, in place (rows for softmax)."""
    cdef Py_ssize_t i, k
    cdef floating zmax
    cdef double total
    cdef floating* zi
    if loss == LOSS_BCE:
        for i in range(m * n_out):
            Z[i] = sigmoid(Z[i])
    elif loss == LOSS_CE:
        for i in range(m):
            zi = Z + i * n_out
            zmax = zi[0]
            for k in range(1, n_out):
                if zi[k] > zmax:
                    zmax = zi[k]
            total = 0
            for k in range(n_out):
                zi[k] = _exp(<floating> (zi[k] - zmax))
                total += zi[k]
            for k in range(n_out):
                zi[k] = <floating> (zi[k] / total)


def loss_delta_py(int loss, const floating[:, ::1] Z, const floating[:, ::1] Y,
                  const floating[::1] sample_weight=None, double param=0.0,
                  floating[:, ::1] delta_out=None):
    """Python twin of ``loss_delta`` (tests): return sum_i w_i l_i / m over the m rows and,
    unless delta_out is None, fill it with the gradient of that value with respect to Z."""
    if Z.shape[0] != Y.shape[0] or Z.shape[1] != Y.shape[1] or Z.shape[0] == 0:
        raise ValueError(f"Z {(Z.shape[0], Z.shape[1])} and Y {(Y.shape[0], Y.shape[1])} must "
                         "have one non-empty shape")
    if loss not in LOSS_IDS.values():
        raise ValueError(f"unknown loss id {loss}; valid ids: {LOSS_IDS}")
    cdef Py_ssize_t m = Z.shape[0]
    cdef floating* d = NULL
    cdef const floating* w = NULL
    cdef double total
    if delta_out is not None:
        if delta_out.shape[0] != m or delta_out.shape[1] != Z.shape[1]:
            raise ValueError("delta_out must have Z's shape")
        d = &delta_out[0, 0]
    if sample_weight is not None:
        if sample_weight.shape[0] != m:
            raise ValueError(f"sample_weight must have {m} entries")
        w = &sample_weight[0]
    with nogil:
        total = loss_delta(loss, param, &Z[0, 0], &Y[0, 0], w, m, Z.shape[1],
                           <floating> (1.0 / m), d)
    return total / m


def output_activation_py(int loss, floating[:, ::1] Z):
    """Python twin of ``output_activation`` (tests), in place on Z."""
    if loss not in LOSS_IDS.values():
        raise ValueError(f"unknown loss id {loss}; valid ids: {LOSS_IDS}")
    if Z.shape[0] == 0:
        return
    with nogil:
        output_activation(loss, &Z[0, 0], Z.shape[0], Z.shape[1])
