"""The training engine: whole-network forward and backward passes and the epoch loop.

A ``Network`` describes the topology and the penalties once per fit, and where each buffer lives
in one flat workspace the caller allocates once. ``train_epochs`` then runs any number of epochs
in one call with the GIL released: for every batch it gathers the rows in the given order, runs
the forward pass, the loss and its delta, the backward pass, the penalty gradients and the
update. Nothing is allocated inside; trouble (a non-finite loss or parameter) restores the
parameters of the start of the failing epoch and is reported through the return status.
"""
import numpy as np

from cython cimport floating

from libc.math cimport isfinite
from libc.string cimport memcpy

from fastmlp._kernels._activations cimport ACT_IDENTITY
from fastmlp._kernels._dense cimport dense_backward, dense_forward
from fastmlp._kernels._dense import default_activation_param
from fastmlp._kernels._loss cimport loss_delta, output_activation
from fastmlp._kernels._optim cimport add_penalty_gradient, penalty_value, sgd_step

# Return statuses of train_epochs.
cpdef enum Status:
    OK = 0
    NONFINITE_LOSS = 1
    NONFINITE_PARAMS = 2

# A layer goes to BLAS when n_in * n_out reaches this; below it the hand-written loops win.
DEFAULT_BLAS_MIN_WORK = 4096


cdef struct Net:
    int n_layers
    Py_ssize_t max_batch
    Py_ssize_t n_params
    const Py_ssize_t* sizes       # n_layers + 1 widths
    const Py_ssize_t* w_off       # offset of W[k] in theta
    const Py_ssize_t* b_off       # offset of b[k] in theta
    const int* act                # activation of layer k's output (identity for the last)
    const double* act_param       # its parameter (leaky_relu slope, elu alpha; else unused)
    const unsigned char* blas     # whether layer k's products go to BLAS
    int loss
    double l1, l2
    # workspace offsets
    const Py_ssize_t* a_off       # A[k], k = 0..n_layers: batch input, hidden outputs, logits
    const Py_ssize_t* d_off       # D[k], k = 1..n_layers-1: f'(Z) of hidden layer outputs
    Py_ssize_t delta_off0, delta_off1, y_off, grad_off, backup_off


cdef class Network:
    """Topology, penalties and workspace layout of one model, for batches of up to ``max_batch``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_inputs, hidden..., n_outputs]``.
    activations : sequence of int
        Activation ids (``fastmlp._kernels._dense.ACTIVATION_IDS``) of the hidden layers.
    loss : int
        Loss id (``fastmlp._kernels._loss.LOSS_IDS``).
    l1, l2 : float
        Penalty strengths on the weights (not the biases).
    max_batch : int
        The largest number of rows one forward pass handles.
    blas_min_work : int
        Layers with ``n_in * n_out`` at least this use BLAS, smaller ones the loops.
    activation_params : sequence of float, optional
        One parameter per hidden layer (leaky_relu's negative slope, elu's alpha; ignored by
        the other activations). By default each activation's
        ``fastmlp._kernels._dense.ACTIVATION_DEFAULT_PARAMS`` entry.
    """
    cdef Net net
    cdef readonly object sizes, w_off, b_off, a_off, d_off, act, act_param, blas
    cdef readonly Py_ssize_t n_params, workspace_size
    cdef Py_ssize_t[::1] _sizes, _w_off, _b_off, _a_off, _d_off
    cdef int[::1] _act
    cdef double[::1] _act_param
    cdef unsigned char[::1] _blas

    def __init__(self, sizes, activations, int loss, double l1, double l2, Py_ssize_t max_batch,
                 Py_ssize_t blas_min_work=DEFAULT_BLAS_MIN_WORK, activation_params=None):
        cdef Py_ssize_t L = len(sizes) - 1, k, pos = 0
        if L < 1 or len(activations) != L - 1 or max_batch < 1 or min(sizes) < 1:
            raise ValueError("Network needs >= 2 positive sizes, one activation per hidden "
                             "layer and max_batch >= 1")
        self.sizes = np.asarray(sizes, dtype=np.intp)
        self.act = np.asarray(list(activations) + [ACT_IDENTITY], dtype=np.intc)
        if activation_params is None:
            activation_params = [default_activation_param(a) for a in activations]
        if len(activation_params) != L - 1 or not np.all(np.isfinite(activation_params)):
            raise ValueError("activation_params needs one finite number per hidden layer")
        self.act_param = np.asarray(list(activation_params) + [0.0], dtype=np.float64)
        self.blas = np.array([self.sizes[k] * self.sizes[k + 1] >= blas_min_work
                              for k in range(L)], dtype=np.uint8)
        self.w_off = np.empty(L, dtype=np.intp)
        self.b_off = np.empty(L, dtype=np.intp)
        for k in range(L):
            self.w_off[k] = pos
            pos += self.sizes[k] * self.sizes[k + 1]
            self.b_off[k] = pos
            pos += self.sizes[k + 1]
        self.n_params = pos
        # Workspace: A[0..L], D[1..L-1], two delta buffers, the batch targets, the gradient and a
        # backup of the parameters.
        pos = 0
        self.a_off = np.empty(L + 1, dtype=np.intp)
        for k in range(L + 1):
            self.a_off[k] = pos
            pos += max_batch * self.sizes[k]
        self.d_off = np.zeros(L + 1, dtype=np.intp)
        for k in range(1, L):
            self.d_off[k] = pos
            pos += max_batch * self.sizes[k]
        widest = max_batch * int(self.sizes[1:].max())
        self.net.delta_off0 = pos
        self.net.delta_off1 = pos + widest
        pos += 2 * widest
        self.net.y_off = pos
        pos += max_batch * self.sizes[L]
        self.net.grad_off = pos
        self.net.backup_off = pos + self.n_params
        self.workspace_size = pos + 2 * self.n_params

        self._sizes, self._w_off, self._b_off = self.sizes, self.w_off, self.b_off
        self._a_off, self._d_off, self._act, self._blas = self.a_off, self.d_off, self.act, self.blas
        self._act_param = self.act_param
        self.net.n_layers = <int> L
        self.net.max_batch = max_batch
        self.net.n_params = self.n_params
        self.net.sizes = &self._sizes[0]
        self.net.w_off = &self._w_off[0]
        self.net.b_off = &self._b_off[0]
        self.net.a_off = &self._a_off[0]
        self.net.d_off = &self._d_off[0]
        self.net.act = &self._act[0]
        self.net.act_param = &self._act_param[0]
        self.net.blas = &self._blas[0]
        self.net.loss = loss
        self.net.l1 = l1
        self.net.l2 = l2


cdef void forward(const Net* net, const floating* theta, const floating* A0, floating* ws,
                  Py_ssize_t m, bint keep_derivatives) noexcept nogil:
    """A[k+1] := f_k(A[k] @ W[k] + b[k]) for every layer; A[0] is A0 (m rows), and the last
    layer's output is its logits. D[k] := f'(Z) of the hidden layers when keep_derivatives."""
    cdef int k
    cdef const floating* A_in = A0
    cdef floating* D
    for k in range(net.n_layers):
        D = ws + net.d_off[k + 1] if keep_derivatives and k + 1 < net.n_layers else NULL
        dense_forward(A_in, theta + net.w_off[k], theta + net.b_off[k], m, net.sizes[k],
                      net.sizes[k + 1], net.act[k], <floating> net.act_param[k], net.blas[k],
                      ws + net.a_off[k + 1], D)
        A_in = ws + net.a_off[k + 1]


cdef void backward(const Net* net, const floating* theta, const floating* A0, floating* ws,
                   Py_ssize_t m, floating* grad) noexcept nogil:
    """grad := dJ/dtheta for the batch whose forward pass is in ws and whose output delta is in
    the first delta buffer, then the penalty gradients on every W."""
    cdef int k
    cdef floating* delta = ws + net.delta_off0
    cdef floating* delta_prev = ws + net.delta_off1
    cdef floating* swap
    for k in range(net.n_layers - 1, -1, -1):
        dense_backward(A0 if k == 0 else ws + net.a_off[k], theta + net.w_off[k], delta,
                       ws + net.d_off[k], m, net.sizes[k], net.sizes[k + 1], net.blas[k],
                       grad + net.w_off[k], grad + net.b_off[k],
                       delta_prev if k > 0 else NULL)
        swap = delta
        delta = delta_prev
        delta_prev = swap
    if net.l1 != 0 or net.l2 != 0:
        for k in range(net.n_layers):
            add_penalty_gradient(grad + net.w_off[k], theta + net.w_off[k],
                                 net.sizes[k] * net.sizes[k + 1], net.l1, net.l2)


cdef double penalty(const Net* net, const floating* theta) noexcept nogil:
    cdef int k
    cdef double total = 0
    if net.l1 == 0 and net.l2 == 0:
        return 0
    for k in range(net.n_layers):
        total += penalty_value(theta + net.w_off[k], net.sizes[k] * net.sizes[k + 1],
                               net.l1, net.l2)
    return total


cdef void gather_rows(const floating* src, const Py_ssize_t* rows, Py_ssize_t m,
                      Py_ssize_t width, floating* out) noexcept nogil:
    """out[i, :] := src[rows[i], :] for i < m."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(out + i * width, src + rows[i] * width, width * sizeof(floating))


cdef bint all_finite_ptr(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating s = 0
    for i in range(n):
        s += x[i] * 0     # stays 0 unless some x[i] is inf or nan
    return s == 0


cdef int train_epochs_nogil(const Net* net, floating* theta, const floating* X,
                            const floating* Y, Py_ssize_t n, const Py_ssize_t* orders,
                            const double* rates, Py_ssize_t n_epochs, Py_ssize_t batch_size,
                            floating* ws, double* loss_out, Py_ssize_t* epochs_done) noexcept nogil:
    cdef Py_ssize_t e, start, m
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[net.n_layers]
    cdef const Py_ssize_t* order
    cdef floating* A0 = ws + net.a_off[0]
    cdef floating* Yb = ws + net.y_off
    cdef floating* grad = ws + net.grad_off
    cdef floating* backup = ws + net.backup_off
    cdef double batch_loss, total
    for e in range(n_epochs):
        epochs_done[0] = e
        memcpy(backup, theta, net.n_params * sizeof(floating))
        order = orders + e * n
        total = 0
        start = 0
        while start < n:
            m = batch_size if start + batch_size <= n else n - start
            gather_rows(X, order + start, m, n_in, A0)
            gather_rows(Y, order + start, m, n_out, Yb)
            forward(net, theta, A0, ws, m, True)
            batch_loss = loss_delta(net.loss, ws + net.a_off[net.n_layers], Yb, m, n_out,
                                    <floating> (1.0 / m), ws + net.delta_off0)
            if not isfinite(batch_loss):
                memcpy(theta, backup, net.n_params * sizeof(floating))
                return NONFINITE_LOSS
            total += batch_loss
            backward(net, theta, A0, ws, m, grad)
            sgd_step(theta, grad, net.n_params, <floating> rates[e])
            start += m
        if not all_finite_ptr(theta, net.n_params):
            memcpy(theta, backup, net.n_params * sizeof(floating))
            return NONFINITE_PARAMS
        loss_out[e] = total / n + penalty(net, theta)
    epochs_done[0] = n_epochs
    return OK


def train_epochs(Network network, floating[::1] theta, const floating[:, ::1] X,
                 const floating[:, ::1] Y, const Py_ssize_t[:, ::1] orders,
                 const double[::1] rates, Py_ssize_t batch_size, floating[::1] workspace,
                 double[::1] loss_out):
    """Run ``len(orders)`` epochs of mini-batch SGD with the GIL released.

    Parameters
    ----------
    network : Network
        Built with ``max_batch >= batch_size``.
    theta : 1-D array, IN/OUT
        The flat parameters, updated in place.
    X : (n, sizes[0]) array, IN
    Y : (n, sizes[-1]) array of targets, IN
    orders : (n_epochs, n) int array, IN
        Epoch e visits rows ``orders[e]`` in batches of ``batch_size`` (the last may be smaller).
    rates : (n_epochs,) float64 array, IN
        The learning rate of each epoch.
    batch_size : int
    workspace : 1-D array of ``network.workspace_size``, scratch
    loss_out : (n_epochs,) float64 array, OUT
        Per epoch: the mean of the batch losses plus the penalty at the epoch's end.

    Returns
    -------
    status, epochs_done : int, int
        ``OK`` after all epochs, else ``NONFINITE_LOSS`` or ``NONFINITE_PARAMS`` with theta
        restored to its value at the start of epoch ``epochs_done`` (counted from 0).
    """
    cdef Py_ssize_t n = X.shape[0], n_epochs = orders.shape[0], done = 0
    cdef int status
    _check_network_arrays(network, theta, X, Y, workspace)
    if orders.shape[1] != n or rates.shape[0] < n_epochs or loss_out.shape[0] < n_epochs:
        raise ValueError("orders must be (n_epochs, n) and rates, loss_out (n_epochs,)")
    if not 1 <= batch_size <= network.net.max_batch:
        raise ValueError(f"batch_size must be in [1, {network.net.max_batch}], got {batch_size}")
    if n_epochs == 0:
        return OK, 0
    with nogil:
        status = train_epochs_nogil(&network.net, &theta[0], &X[0, 0], &Y[0, 0], n,
                                    &orders[0, 0], &rates[0], n_epochs, batch_size,
                                    &workspace[0], &loss_out[0], &done)
    return status, done


def loss_and_gradient(Network network, const floating[::1] theta, const floating[:, ::1] X,
                      const floating[:, ::1] Y, floating[::1] workspace, floating[::1] grad_out):
    """The objective J on (X, Y) as one batch, and its gradient into ``grad_out``.

    The same forward, loss and backward code as training; ``network.max_batch`` must be at
    least ``len(X)``.
    """
    cdef Py_ssize_t m = X.shape[0]
    cdef double total
    _check_network_arrays(network, theta, X, Y, workspace)
    if not 1 <= m <= network.net.max_batch or grad_out.shape[0] != network.n_params:
        raise ValueError("X must have 1..max_batch rows and grad_out n_params entries")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    with nogil:
        forward(net, &theta[0], &X[0, 0], ws, m, True)
        total = loss_delta(net.loss, ws + net.a_off[net.n_layers], &Y[0, 0], m,
                           net.sizes[net.n_layers], <floating> (1.0 / m), ws + net.delta_off0)
        backward(net, &theta[0], &X[0, 0], ws, m, &grad_out[0])
        total = total / m + penalty(net, &theta[0])
    return total


def predict(Network network, const floating[::1] theta, const floating[:, ::1] X,
            floating[::1] workspace, floating[:, ::1] out, bint logits=False):
    """``out := `` the network's outputs on X (probabilities, or logits when ``logits``),
    computed ``network.max_batch`` rows at a time with the GIL released."""
    cdef Py_ssize_t n = X.shape[0], n_out = network.sizes[-1], start, m
    _check_network_arrays(network, theta, X, None, workspace)
    if out.shape[0] != n or out.shape[1] != n_out:
        raise ValueError(f"out must have shape ({n}, {n_out})")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    cdef floating* last = ws + net.a_off[net.n_layers]
    if n == 0:
        return
    with nogil:
        start = 0
        while start < n:
            m = net.max_batch if start + net.max_batch <= n else n - start
            forward(net, &theta[0], &X[start, 0], ws, m, False)
            if not logits:
                output_activation(net.loss, last, m, n_out)
            memcpy(&out[start, 0], last, m * n_out * sizeof(floating))
            start += m


def objective(Network network, const floating[::1] theta, const floating[:, ::1] X,
              const floating[:, ::1] Y, floating[::1] workspace):
    """The objective J = mean loss over (X, Y) + penalty, in chunks of ``max_batch`` rows."""
    cdef Py_ssize_t n = X.shape[0], n_out = network.sizes[-1], start, m
    cdef double total = 0
    _check_network_arrays(network, theta, X, Y, workspace)
    if n == 0:
        raise ValueError("the objective of no samples is undefined")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    with nogil:
        start = 0
        while start < n:
            m = net.max_batch if start + net.max_batch <= n else n - start
            forward(net, &theta[0], &X[start, 0], ws, m, False)
            total += loss_delta(net.loss, ws + net.a_off[net.n_layers], &Y[start, 0], m, n_out,
                                <floating> 1, <floating*> NULL)
            start += m
        total = total / n + penalty(net, &theta[0])
    return total


def all_finite(const floating[:, ::1] X):
    """Whether every entry of X is finite; no temporary array, GIL released."""
    cdef bint ok
    if X.shape[0] == 0 or X.shape[1] == 0:
        return True
    with nogil:
        ok = all_finite_ptr(&X[0, 0], X.shape[0] * X.shape[1])
    return ok


def _check_network_arrays(Network network, theta, X, Y, workspace):
    if theta.shape[0] != network.n_params:
        raise ValueError(f"theta has {theta.shape[0]} entries, the network {network.n_params}")
    if X.shape[1] != network.sizes[0]:
        raise ValueError(f"X has {X.shape[1]} columns, the network {network.sizes[0]} inputs")
    if Y is not None and (Y.shape[0] != X.shape[0] or Y.shape[1] != network.sizes[-1]):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {network.sizes[-1]})")
    if workspace.shape[0] < network.workspace_size:
        raise ValueError(f"workspace needs {network.workspace_size} entries")
