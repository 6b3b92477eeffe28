"""Losses computed from the output layer's logits, and the output deltas dJ/dZ.

Pairing each loss with its canonical output activation makes the delta the simple ``p - y`` and
lets the loss be computed stably from logits.
"""
from libc.math cimport fabs, log1p

from cython cimport floating

from fastmlp._kernels._activations cimport _exp, sigmoid

LOSS_IDS = {"binary_crossentropy": LOSS_BCE}


cdef double loss_delta(int loss, const floating* Z, const floating* Y, Py_ssize_t m,
                       Py_ssize_t n_out, floating scale, floating* delta_out) noexcept nogil:
    """Return the sum over the m rows of the per-sample loss of logits Z against targets Y.

    When delta_out is not NULL, delta_out := scale * dJ_i/dZ_i for each row i; with
    scale = 1/m that is the gradient of the batch mean.
    Binary cross-entropy: loss = max(z, 0) - y z + log(1 + exp(-|z|)), delta = sigmoid(z) - y.
    """
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating z, y
    if loss == LOSS_BCE:
        for i in range(m * n_out):
            z = Z[i]
            y = Y[i]
            total += (z if z > 0 else 0) - y * z + log1p(_exp(-fabs(z)))
            if delta_out != NULL:
                delta_out[i] = (sigmoid(z) - y) * scale
    return total


cdef void output_activation(int loss, floating* Z, Py_ssize_t m, Py_ssize_t n_out) noexcept nogil:
    """Z := the output activation paired with the loss (sigmoid for BCE), in place."""
    cdef Py_ssize_t i
    if loss == LOSS_BCE:
        for i in range(m * n_out):
            Z[i] = sigmoid(Z[i])


def loss_delta_py(int loss, const floating[:, ::1] Z, const floating[:, ::1] Y,
                  floating[:, ::1] delta_out=None):
    """Python twin of ``loss_delta`` (tests): return the mean loss over the rows and, unless
    delta_out is None, fill it with the gradient of that mean with respect to Z."""
    if Z.shape[0] != Y.shape[0] or Z.shape[1] != Y.shape[1] or Z.shape[0] == 0:
        raise ValueError(f"Z {(Z.shape[0], Z.shape[1])} and Y {(Y.shape[0], Y.shape[1])} must have one "
                         "non-empty shape")
    if loss not in LOSS_IDS.values():
        raise ValueError(f"unknown loss id {loss}; valid ids: {LOSS_IDS}")
    cdef floating* d = NULL
    cdef double total
    cdef Py_ssize_t m = Z.shape[0]
    if delta_out is not None:
        if delta_out.shape[0] != m or delta_out.shape[1] != Z.shape[1]:
            raise ValueError("delta_out must have Z's shape")
        d = &delta_out[0, 0]
    with nogil:
        total = loss_delta(loss, &Z[0, 0], &Y[0, 0], m, Z.shape[1], <floating> (1.0 / m), d)
    return total / m
