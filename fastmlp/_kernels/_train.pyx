"""The training engine: whole-network forward and backward passes and the epoch loop.

A ``Network`` describes a model once per fit: topology, activations, batch normalization and
dropout per hidden layer, loss, penalties, optimizer and clipping, and where each buffer lives in
the flat parameter vector ``theta``, in the optimizer state, in the batch-norm running statistics
and in one flat workspace that the caller allocates once. ``train_epochs`` then runs any number of
epochs in one call with the GIL released, drawing each epoch's order itself from a NumPy bit
generator when asked (as NumPy's shuffle draws it: ``shuffle_rows``). For every batch it gathers
the rows in the given order, transposed: the kernels hold a batch feature-major, (units, m), so
that every inner loop runs over the batch (see ``_dense``). Then it runs:

    forward    A[k+1] = dropout(f_k(bn_k(A[k] @ W[k] + b[k])))     (_dense, _batchnorm, _dropout)
    loss       delta = w_i / m * dl/dz at the output               (_loss)
    backward   dW, db, delta of the layer below; bn backward        (_dense, _batchnorm)
    penalties  + l2 W + l1 sign(W); clipping by global norm/value   (_optim)
    update     decoupled weight decay, then the optimizer's rule    (_optim)

X is a dense C-contiguous array or, for sparse input, a ``_sparse.CSR``: then the batch's rows
are never gathered, and the first layer's product and weight gradient run over the rows'
non-zeros (``_sparse``); a ``Network`` built with ``sparse_input=True`` leaves the dense batch
input out of the workspace.

Nothing is allocated inside. Trouble (a non-finite loss or parameter) restores the parameters and
all training state of the start of the failing epoch and is reported through the return status.
"""
import operator

import numpy as np

from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.pyport cimport PY_SSIZE_T_MAX
from cython cimport floating
from libc.math cimport NAN, isfinite, sqrt
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastmlp._kernels._activations cimport ACT_IDENTITY
from fastmlp._kernels._batchnorm cimport bn_backward, bn_forward_eval, bn_forward_train
from fastmlp._kernels._blas cimport gemm
from fastmlp._kernels._dense cimport (apply_activation, bias_gradient, dense_backward,
                                      dense_forward)
from fastmlp._kernels._dropout cimport dropout_apply
from fastmlp._kernels._loss cimport loss_delta, output_activation
from fastmlp._kernels._sparse cimport CSR, SparseRows, sparse_backward, sparse_forward
from fastmlp._kernels._optim cimport (OPT_SGD, add_penalty_gradient, clip_values, decay_weights,
                                      optimizer_step, penalty_value, scale_vector, squared_norm)

from fastmlp._kernels._optim import OPTIMIZER_STATE_SIZES

# Return statuses of train_epochs.
cpdef enum Status:
    OK = 0
    NONFINITE_LOSS = 1
    NONFINITE_PARAMS = 2
    INTERRUPTED = 3
    NONFINITE_OPT_STATE = 4
    NONFINITE_BN_STATE = 5

# The status train_stack_epochs' stopping rule gives a model it stops (not a return status;
# the same value as fastmlp._engine.StackRunner.STOPPED, a caller's stop).
cdef enum:
    _STACK_STOPPED = 16
STACK_STOPPED = _STACK_STOPPED

# Ctrl-C during training. Python's own handler cannot run while a kernel holds the thread (and
# only ever runs in the main thread), so a C handler counts the presses instead: every fit notes
# the count when it starts and stops at the end of the epoch in which the count has changed. A
# press therefore stops the fits running at that moment, in any thread, and no later one. The
# handler puts the previous one back as it fires, so a second Ctrl-C reaches Python as usual.
# The handler is shared: the first fit installs it, the last one to finish restores the previous
# handler (a fit that starts after a press re-arms it). Installing and releasing happen with the
# GIL held, which serializes them; signal() itself may be called from any thread.
cdef extern from *:
    """
    #include <signal.h>
    static volatile sig_atomic_t fastmlp_sigint_count = 0;
    static void (*fastmlp_previous_handler)(int) = SIG_DFL;
    static long fastmlp_handler_users = 0;
    static void fastmlp_on_sigint(int sig) {
        fastmlp_sigint_count = (sig_atomic_t) (fastmlp_sigint_count + 1);
        signal(SIGINT, fastmlp_previous_handler);
    }
    static int fastmlp_catch_sigint(void) {
        void (*current)(int) = signal(SIGINT, fastmlp_on_sigint);
        if (current == SIG_ERR) return -1;
        if (current != fastmlp_on_sigint) fastmlp_previous_handler = current;
        fastmlp_handler_users++;
        return 0;
    }
    static void fastmlp_release_sigint(void) {
        void (*current)(int);
        if (fastmlp_handler_users <= 0 || --fastmlp_handler_users > 0) return;
        current = signal(SIGINT, fastmlp_previous_handler);
        /* Someone else installed a handler meanwhile: leave theirs in place. */
        if (current != SIG_ERR && current != fastmlp_on_sigint
                && current != fastmlp_previous_handler)
            signal(SIGINT, current);
    }
    static long fastmlp_sigint_users(void) { return fastmlp_handler_users; }
    static int fastmlp_sigint_installed(void) {
    #ifdef _WIN32
        void (*current)(int) = signal(SIGINT, fastmlp_on_sigint);
        if (current != fastmlp_on_sigint && current != SIG_ERR) signal(SIGINT, current);
        return current == fastmlp_on_sigint;
    #else
        struct sigaction now;
        if (sigaction(SIGINT, NULL, &now) != 0) return 0;
        return now.sa_handler == fastmlp_on_sigint;
    #endif
    }
    """
    int fastmlp_sigint_count
    int fastmlp_catch_sigint() noexcept nogil
    void fastmlp_release_sigint() noexcept nogil
    long fastmlp_sigint_users() noexcept nogil
    int fastmlp_sigint_installed() noexcept nogil


def catch_interrupts():
    """Take a share of the Ctrl-C handler: install it unless it is already armed.

    Until the matching ``release_interrupts()``, a SIGINT increments ``interrupt_count()``
    instead of reaching Python, and ``train_epochs`` stops at the end of the epoch in which the
    count differs from the one it was given. Any thread may call this. Returns False (and takes
    no share) if the handler could not be installed."""
    return fastmlp_catch_sigint() == 0


def release_interrupts():
    """Give back a share taken by ``catch_interrupts``; the last one out puts the previous
    SIGINT handler back (unless another was installed meanwhile)."""
    fastmlp_release_sigint()


def interrupt_count():
    """How many times Ctrl-C (SIGINT) was caught by fastmlp's handler since import."""
    return fastmlp_sigint_count


def interrupt_handler_state():
    """(shares taken, whether the handler is installed now): for tests."""
    return int(fastmlp_sigint_users()), bool(fastmlp_sigint_installed())

# A layer goes to BLAS when n_in * n_out reaches this; below it the hand-written loops win.
DEFAULT_BLAS_MIN_WORK = 256
_MAX_HYPER = 8


cdef struct Net:
    int n_layers
    Py_ssize_t max_batch
    Py_ssize_t n_params, n_state, bn_state_size
    const Py_ssize_t* sizes       # n_layers + 1 widths
    const Py_ssize_t* w_off       # offset of W[k] in theta
    const Py_ssize_t* b_off       # offset of b[k] in theta
    const Py_ssize_t* g_off       # offset of gamma[k] in theta (batch-norm layers)
    const Py_ssize_t* be_off      # offset of beta[k] in theta
    const Py_ssize_t* rm_off      # offset of the running mean of layer k in bn_state
    const Py_ssize_t* rv_off      # offset of the running variance of layer k in bn_state
    const int* act                # activation of layer k's output (identity for the last)
    const double* act_param       # its parameter (leaky_relu slope, elu alpha; else unused)
    const unsigned char* bn       # whether layer k's output is batch-normalized
    const double* dropout         # dropout rate of layer k's output
    const unsigned char* blas     # whether layer k's products go to BLAS
    int loss
    double loss_param
    double l1, l2
    int optimizer
    double hyper[8]
    double weight_decay, clip_norm, clip_value
    double bn_eps, bn_momentum
    bint fused                    # plain SGD applied inside backward (see fused_sgd)
    # workspace offsets
    const Py_ssize_t* a_off       # A[k], k = 0..n_layers: batch input, hidden outputs, logits
    const Py_ssize_t* d_off       # D[k], k = 1..n_layers-1: f'(Z) of hidden layer outputs
    const Py_ssize_t* zhat_off    # normalized Z of batch-norm layer k
    const Py_ssize_t* istd_off    # 1 / sqrt(var + eps) of batch-norm layer k
    Py_ssize_t delta_off0, delta_off1, y_off, sw_off, grad_off, backup_off


def _per_hidden(name, values, n_hidden, default, dtype):
    values = [default] * n_hidden if values is None else list(values)
    if len(values) != n_hidden:
        raise ValueError(f"{name} needs one entry per hidden layer ({n_hidden}); got {len(values)}")
    return np.asarray(values + [default], dtype=dtype)


# The largest number of entries of any buffer a Network lays out: its byte size, and every
# offset and product the kernels compute inside it, then fit in a Py_ssize_t.
MAX_BUFFER_ENTRIES = PY_SSIZE_T_MAX // 16


def _check_sizes(sizes, max_batch):
    """The widths as a list of Python ints, or ValueError/TypeError before anything is built."""
    try:
        widths = [operator.index(s) for s in sizes]
    except TypeError:
        raise TypeError(f"layer sizes must be integers; got {sizes!r}") from None
    if len(widths) < 2 or min(widths) < 1 or operator.index(max_batch) < 1:
        raise ValueError("Network needs >= 2 positive sizes and max_batch >= 1")
    _check_layout(widths, max_batch, **{"a layer": max(widths)})
    return widths


def _check_layout(sizes, max_batch, **entries):
    """ValueError when a buffer of the layout would exceed MAX_BUFFER_ENTRIES."""
    for name, count in entries.items():
        if count > MAX_BUFFER_ENTRIES:
            raise ValueError(
                f"layer sizes {sizes} with batches of {max_batch} rows need {count:.3g} entries "
                f"in {name}, more than any machine can address (at most {MAX_BUFFER_ENTRIES:.3g}); "
                f"use smaller layers or batches")


cdef class Network:
    """A model's structure and hyperparameters, and the layout of its buffers.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_inputs, hidden..., n_outputs]``.
    activations : sequence of int
        Activation ids (``fastmlp._kernels._dense.ACTIVATION_IDS``) of the hidden layers.
    activation_params : sequence of float or None
        One parameter per hidden layer (leaky_relu's slope, elu's alpha); None for defaults.
    loss : int
        Loss id (``fastmlp._kernels._loss.LOSS_IDS``).
    loss_param : float
        Label smoothing (categorical cross-entropy) or delta (Huber); unused otherwise.
    l1, l2 : float
        Penalty strengths on the weights (not biases, not batch-norm scales and shifts).
    max_batch : int
        The largest number of rows one forward pass handles.
    batch_norm : sequence of bool or None
        Per hidden layer: normalize its pre-activations (learnable scale and shift).
    dropout : sequence of float or None
        Per hidden layer: inverted-dropout rate of its output, in [0, 1).
    optimizer : int
        Optimizer id (``fastmlp._kernels._optim.OPTIMIZER_IDS``); ``hyper`` its parameters.
    weight_decay : float
        Decoupled weight decay (AdamW): ``W *= 1 - lr * weight_decay`` before each update.
    clip_norm, clip_value : float
        Clip the gradient to this global norm, or each entry to [-clip_value, clip_value];
        0 disables.
    bn_eps, bn_momentum : float
        Batch-norm variance offset, and the weight of the old value in the running averages.
    blas_min_work : int
        Layers with ``n_in * n_out`` at least this use BLAS, smaller ones the loops.
    sparse_input : bool
        The input X will be a ``_sparse.CSR``: the workspace holds no dense batch input (its
        size then does not grow with ``sizes[0]``), and dense X is refused.
    """
    cdef Net net
    cdef readonly object sizes, w_off, b_off, g_off, be_off, rm_off, rv_off
    cdef readonly object act, act_param, bn, dropout, blas, a_off, d_off, zhat_off, istd_off
    cdef readonly Py_ssize_t n_params, n_state, bn_state_size, workspace_size, max_batch
    cdef readonly bint sparse_input
    cdef Py_ssize_t[::1] _sizes, _w_off, _b_off, _g_off, _be_off, _rm_off, _rv_off
    cdef Py_ssize_t[::1] _a_off, _d_off, _zhat_off, _istd_off
    cdef int[::1] _act
    cdef double[::1] _act_param, _dropout
    cdef unsigned char[::1] _bn, _blas

    def __init__(self, sizes, activations, activation_params, int loss, double loss_param,
                 double l1, double l2, Py_ssize_t max_batch, batch_norm=None, dropout=None,
                 int optimizer=OPT_SGD, hyper=(), double weight_decay=0.0, double clip_norm=0.0,
                 double clip_value=0.0, double bn_eps=1e-5, double bn_momentum=0.9,
                 Py_ssize_t blas_min_work=DEFAULT_BLAS_MIN_WORK, bint sparse_input=False):
        cdef Py_ssize_t L, k
        sizes = _check_sizes(sizes, max_batch)
        L = len(sizes) - 1
        if optimizer not in OPTIMIZER_STATE_SIZES or len(hyper) > _MAX_HYPER:
            raise ValueError(f"unknown optimizer id {optimizer} or too many hyperparameters")
        settings = dict(loss_param=loss_param, l1=l1, l2=l2, weight_decay=weight_decay,
                        clip_norm=clip_norm, clip_value=clip_value, bn_eps=bn_eps)
        for name, value in settings.items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        if not (np.all(np.isfinite(np.asarray(hyper, dtype=np.float64)))
                and 0 <= bn_momentum <= 1):
            raise ValueError("the optimizer's hyperparameters and bn_momentum must be finite")
        from fastmlp._kernels._dense import default_activation_param
        self.sizes = np.asarray(sizes, dtype=np.intp)
        self.act = _per_hidden("activations", activations, L - 1, ACT_IDENTITY, np.intc)
        self.act_param = (_per_hidden("activation_params", activation_params, L - 1, 0.0, np.float64)
                          if activation_params is not None else
                          np.asarray([default_activation_param(a) for a in self.act], dtype=np.float64))
        if not np.all(np.isfinite(self.act_param)):
            raise ValueError("activation_params must be finite numbers")
        self.bn = _per_hidden("batch_norm", batch_norm, L - 1, False, np.uint8)
        self.dropout = _per_hidden("dropout", dropout, L - 1, 0.0, np.float64)
        if not np.all((self.dropout >= 0) & (self.dropout < 1)):
            raise ValueError("dropout rates must be in [0, 1)")
        self.blas = np.array([sizes[k] * sizes[k + 1] >= blas_min_work
                              for k in range(L)], dtype=np.uint8)
        self.max_batch = max_batch
        self.sparse_input = sparse_input

        # The layout is computed with Python's integers and checked before anything is stored
        # (see _check_layout), so no offset the kernels use can wrap around.
        # theta: W[0], b[0], (gamma[0], beta[0]), W[1], b[1], ...
        w_off, b_off, g_off, be_off = [], [], [-1] * L, [-1] * L
        rm_off, rv_off = [-1] * L, [-1] * L
        pos = bn_pos = 0
        for k in range(L):
            w_off.append(pos)
            pos += sizes[k] * sizes[k + 1]
            b_off.append(pos)
            pos += sizes[k + 1]
            if self.bn[k]:
                g_off[k], be_off[k] = pos, pos + sizes[k + 1]
                pos += 2 * sizes[k + 1]
                rm_off[k], rv_off[k] = bn_pos, bn_pos + sizes[k + 1]
                bn_pos += 2 * sizes[k + 1]
        n_params = pos
        n_state = OPTIMIZER_STATE_SIZES[optimizer] * n_params

        # Workspace: A[0..L], D[1..L-1], batch-norm caches, two delta buffers, the batch's
        # targets and sample weights, the gradient, and a backup of all training state.
        pos = 0
        a_off, d_off, zhat_off, istd_off = [], [0] * (L + 1), [0] * L, [0] * L
        for k in range(L + 1):
            a_off.append(pos)
            if k > 0 or not sparse_input:
                pos += max_batch * sizes[k]
        for k in range(1, L):
            d_off[k] = pos
            pos += max_batch * sizes[k]
        for k in range(L):
            if self.bn[k]:
                zhat_off[k] = pos
                istd_off[k] = pos + max_batch * sizes[k + 1]
                pos += (max_batch + 1) * sizes[k + 1]
        widest = max_batch * max(sizes[1:])
        delta_off0, delta_off1 = pos, pos + widest
        pos += 2 * widest
        y_off = pos
        pos += max_batch * sizes[L]
        sw_off = pos
        pos += max_batch
        grad_off, backup_off = pos, pos + n_params
        workspace_size = pos + 2 * n_params + n_state + bn_pos
        _check_layout(sizes, max_batch, n_params=n_params, n_state=n_state,
                      bn_state_size=bn_pos, workspace_size=workspace_size)

        self.w_off, self.b_off, self.g_off, self.be_off, self.rm_off, self.rv_off, \
            self.a_off, self.d_off, self.zhat_off, self.istd_off = (
                np.asarray(offsets, dtype=np.intp) for offsets in
                (w_off, b_off, g_off, be_off, rm_off, rv_off, a_off, d_off, zhat_off, istd_off))
        self.n_params, self.n_state, self.bn_state_size = n_params, n_state, bn_pos
        self.workspace_size = workspace_size
        self.net.delta_off0, self.net.delta_off1 = delta_off0, delta_off1
        self.net.y_off, self.net.sw_off = y_off, sw_off
        self.net.grad_off, self.net.backup_off = grad_off, backup_off

        self._sizes, self._w_off, self._b_off = self.sizes, self.w_off, self.b_off
        self._g_off, self._be_off, self._rm_off, self._rv_off = self.g_off, self.be_off, self.rm_off, self.rv_off
        self._a_off, self._d_off, self._zhat_off, self._istd_off = self.a_off, self.d_off, self.zhat_off, self.istd_off
        self._act, self._act_param, self._bn, self._dropout, self._blas = \
            self.act, self.act_param, self.bn, self.dropout, self.blas
        self.net.n_layers = <int> L
        self.net.max_batch = max_batch
        self.net.n_params = self.n_params
        self.net.n_state = self.n_state
        self.net.bn_state_size = self.bn_state_size
        self.net.sizes = &self._sizes[0]
        self.net.w_off = &self._w_off[0]
        self.net.b_off = &self._b_off[0]
        self.net.g_off = &self._g_off[0]
        self.net.be_off = &self._be_off[0]
        self.net.rm_off = &self._rm_off[0]
        self.net.rv_off = &self._rv_off[0]
        self.net.a_off = &self._a_off[0]
        self.net.d_off = &self._d_off[0]
        self.net.zhat_off = &self._zhat_off[0]
        self.net.istd_off = &self._istd_off[0]
        self.net.act = &self._act[0]
        self.net.act_param = &self._act_param[0]
        self.net.bn = &self._bn[0]
        self.net.dropout = &self._dropout[0]
        self.net.blas = &self._blas[0]
        self.net.loss = loss
        self.net.loss_param = loss_param
        self.net.l1 = l1
        self.net.l2 = l2
        self.net.optimizer = optimizer
        for k in range(_MAX_HYPER):
            self.net.hyper[k] = hyper[k] if k < len(hyper) else 0.0
        self.net.weight_decay = weight_decay
        self.net.clip_norm = clip_norm
        self.net.clip_value = clip_value
        self.net.bn_eps = bn_eps
        self.net.bn_momentum = bn_momentum
        self.net.fused = fused_sgd(&self.net)


cdef enum Mode:
    PREDICT = 0         # running batch-norm statistics, no dropout, no derivative caches
    GRADIENT = 1        # batch statistics (running ones updated), derivative caches, no dropout
    TRAIN = 2           # as GRADIENT, with dropout


cdef void forward(const Net* net, const floating* theta, floating* bn_state, const floating* A0,
                  const floating* A0T, const SparseRows* sp, floating* ws, Py_ssize_t m,
                  Mode mode, uint64_t seed, uint64_t step) noexcept nogil:
    """A[k+1] := dropout(f_k(bn_k(W[k].T @ A[k] + b[k]))) for every layer, feature-major; A[0]
    is the sparse rows sp when sp is not NULL, else A0T, the batch sample-major (m, sizes[0]),
    when it is not NULL and the first layer is on BLAS (see ``batch_rows``), else A0
    (sizes[0], m); the last layer's output is its logits. Outside PREDICT, D[k] := f'(.) for
    backward."""
    cdef int k, act
    cdef bint sample_major
    cdef Py_ssize_t width
    cdef const floating* A_in = A0
    cdef floating* Z
    cdef floating* D
    for k in range(net.n_layers):
        width = net.sizes[k + 1]
        Z = ws + net.a_off[k + 1]
        D = ws + net.d_off[k + 1] if mode != PREDICT and k + 1 < net.n_layers else NULL
        # With batch normalization the activation comes after it, below.
        act = ACT_IDENTITY if net.bn[k] else net.act[k]
        if k == 0 and sp != NULL:
            # The delta buffers are free during the forward pass: one is the row buffer.
            sparse_forward(sp, m, theta + net.w_off[k], theta + net.b_off[k], width, act,
                           <floating> net.act_param[k], Z, NULL if net.bn[k] else D,
                           ws + net.delta_off1)
        else:
            sample_major = k == 0 and A0T != NULL and net.blas[0]
            dense_forward(A0T if sample_major else A_in, theta + net.w_off[k],
                          theta + net.b_off[k], m, net.sizes[k], width, act,
                          <floating> net.act_param[k], net.blas[k], sample_major, Z,
                          NULL if net.bn[k] else D)
        if net.bn[k]:
            if mode == PREDICT:
                bn_forward_eval(Z, m, width, theta + net.g_off[k], theta + net.be_off[k],
                                bn_state + net.rm_off[k], bn_state + net.rv_off[k], net.bn_eps)
            else:
                bn_forward_train(Z, m, width, theta + net.g_off[k], theta + net.be_off[k],
                                 net.bn_eps, net.bn_momentum, bn_state + net.rm_off[k],
                                 bn_state + net.rv_off[k], ws + net.zhat_off[k],
                                 ws + net.istd_off[k])
            apply_activation(net.act[k], <floating> net.act_param[k], Z, D, m * width)
        if mode == TRAIN and net.dropout[k] > 0:
            dropout_apply(Z, D, m, width, net.dropout[k], seed, step, k)
        A_in = Z


cdef void backward_upper(const Net* net, floating* theta, floating* ws, Py_ssize_t m,
                         floating* grad, double fused_lr, floating* delta0) noexcept nogil:
    """``backward`` for layers n_layers - 1 .. 1, the first layer's delta (after its batch
    normalization's backward, if any) into delta0 (sizes[1], m), which must not be the delta
    buffer the second layer reads; no penalties."""
    cdef int k
    cdef floating* delta = ws + net.delta_off0
    cdef floating* delta_prev = ws + net.delta_off1
    cdef floating* swap
    cdef floating alpha = 1, beta_w = 0, beta_b = 0
    if fused_lr > 0:
        alpha, beta_w, beta_b = <floating> -fused_lr, <floating> (1 - fused_lr * net.l2), 1
    for k in range(net.n_layers - 1, 0, -1):
        if k == 1:
            delta_prev = delta0
        dense_backward(ws + net.a_off[k], theta + net.w_off[k], delta, ws + net.d_off[k], m,
                       net.sizes[k], net.sizes[k + 1], net.blas[k], alpha, beta_w, beta_b,
                       (theta if fused_lr > 0 else grad) + net.w_off[k],
                       (theta if fused_lr > 0 else grad) + net.b_off[k], delta_prev)
        if net.bn[k]:
            memset(grad + net.b_off[k], 0, net.sizes[k + 1] * sizeof(floating))
        if net.bn[k - 1]:
            bn_backward(delta_prev, m, net.sizes[k], ws + net.zhat_off[k - 1],
                        ws + net.istd_off[k - 1], theta + net.g_off[k - 1],
                        grad + net.g_off[k - 1], grad + net.be_off[k - 1])
        swap = delta
        delta = delta_prev
        delta_prev = swap


cdef void backward(const Net* net, floating* theta, const floating* A0, const floating* A0T,
                   const SparseRows* sp, floating* ws, Py_ssize_t m, floating* grad,
                   double fused_lr) noexcept nogil:
    """grad := dJ/dtheta for the batch whose forward pass is in ws and whose output delta is in
    the first delta buffer: every layer's gradients, batch-norm's, then the penalties'.

    With fused_lr > 0 (plain SGD; see ``fused_sgd``), apply theta -= fused_lr * dJ/dtheta
    layer by layer instead, inside the products, and leave grad alone. The first layer's input
    is A0 (feature-major), or the sparse rows sp when sp is not NULL. A0T, when not NULL, is
    the same batch sample-major (m, sizes[0]): a first layer on BLAS then takes its weight
    gradient as A0T.T @ delta.T, which OpenBLAS runs on its small-matrix kernels (about 50
    GFLOP/s here on 64 x 64 x 200), where A0 @ delta.T, both operands contiguous along the
    batch, goes to its packing kernels (about 38); a stack gathers A0T once for its models."""
    cdef int k
    cdef Py_ssize_t n_in = net.sizes[0], h = net.sizes[1]
    # backward_upper swaps its two delta buffers once per layer above the first: the first
    # layer's delta lands in the one the layer above does not read; the other is free.
    cdef floating* delta0 = ws + (net.delta_off1 if net.n_layers % 2 == 0 else net.delta_off0)
    cdef floating* spare = ws + (net.delta_off0 if net.n_layers % 2 == 0 else net.delta_off1)
    cdef floating* gW = (theta if fused_lr > 0 else grad) + net.w_off[0]
    cdef floating* gb = (theta if fused_lr > 0 else grad) + net.b_off[0]
    cdef floating alpha = 1, beta_w = 0, beta_b = 0
    if fused_lr > 0:
        alpha, beta_w, beta_b = <floating> -fused_lr, <floating> (1 - fused_lr * net.l2), 1
    backward_upper(net, theta, ws, m, grad, fused_lr, delta0)
    if sp != NULL:
        # The first layer passes no delta down: the spare buffer holds the rows.
        sparse_backward(sp, m, delta0, n_in, h, alpha, beta_w, beta_b, gW, gb, spare)
    elif A0T != NULL and net.blas[0]:
        bias_gradient(delta0, m, h, alpha, beta_b, gb)
        gemm(True, True, <int> n_in, <int> h, <int> m, alpha, A0T, <int> n_in, delta0, <int> m,
             beta_w, gW, <int> h)
    else:
        dense_backward(A0, theta + net.w_off[0], delta0, ws + net.d_off[0], m, n_in, h,
                       net.blas[0], alpha, beta_w, beta_b, gW, gb, NULL)
    if net.bn[0]:
        # Batch normalization subtracts the batch mean, so J does not depend on this bias:
        # its exact gradient is 0 (the sum above is rounding noise, which adaptive
        # optimizers would amplify into steps); backward_upper does the same above.
        memset(grad + net.b_off[0], 0, h * sizeof(floating))
    if fused_lr == 0 and (net.l1 != 0 or net.l2 != 0):
        for k in range(net.n_layers):
            add_penalty_gradient(grad + net.w_off[k], theta + net.w_off[k],
                                 net.sizes[k] * net.sizes[k + 1], net.l1, net.l2)


cdef bint fused_sgd(const Net* net) noexcept nogil:
    """Whether the update is plain SGD, which backward can apply inside the products: no
    clipping, L1 or batch normalization (they need the whole gradient first)."""
    cdef int k
    if net.optimizer != OPT_SGD or net.clip_norm > 0 or net.clip_value > 0 or net.l1 != 0 \
            or net.weight_decay > 0:
        return False
    for k in range(net.n_layers):
        if net.bn[k]:
            return False
    return True


cdef void update(const Net* net, floating* theta, floating* grad, floating* opt_state,
                 double lr, int64_t t) noexcept nogil:
    """Clip the gradient, decay the weights (decoupled), then apply the optimizer's rule."""
    cdef int k
    cdef double norm
    if net.clip_norm > 0:
        norm = sqrt(squared_norm(grad, net.n_params))
        if norm > net.clip_norm:
            scale_vector(grad, net.n_params, net.clip_norm / norm)
    if net.clip_value > 0:
        clip_values(grad, net.n_params, net.clip_value)
    if net.weight_decay > 0:
        for k in range(net.n_layers):
            decay_weights(theta + net.w_off[k], net.sizes[k] * net.sizes[k + 1],
                          1 - lr * net.weight_decay)
    optimizer_step(net.optimizer, net.hyper, theta, grad, opt_state, net.n_params, lr, t)


cdef double penalty(const Net* net, const floating* theta) noexcept nogil:
    cdef int k
    cdef double total = 0
    if net.l1 == 0 and net.l2 == 0:
        return 0
    for k in range(net.n_layers):
        total += penalty_value(theta + net.w_off[k], net.sizes[k] * net.sizes[k + 1],
                               net.l1, net.l2)
    return total


cdef void gather_rows(const floating* src, const Py_ssize_t* rows, Py_ssize_t first,
                      Py_ssize_t m, Py_ssize_t width, floating* out) noexcept nogil:
    """out[j, i] := src[rows[i], j] for i < m, j < width: the batch's rows, feature-major.

    With rows NULL, the rows first, first + 1, ..., first + m - 1. Narrow rows (a few
    features, the targets) are copied column by column: a loop over the batch per feature
    instead of a loop of a few entries per row."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    cdef const floating* col
    cdef floating* dst
    if width <= 4 and rows != NULL:
        for j in range(width):
            col = src + j
            dst = out + j * m
            for i in range(m):
                dst[i] = col[rows[i] * width]
        return
    for i in range(m):
        row = src + (rows[i] if rows != NULL else first + i) * width
        for j in range(width):
            out[j * m + i] = row[j]


cdef void copy_rows(const floating* src, const Py_ssize_t* rows, Py_ssize_t m,
                    Py_ssize_t width, floating* out) noexcept nogil:
    """out[i, j] := src[rows[i], j] for i < m, j < width: the batch's rows, sample-major."""
    cdef Py_ssize_t i
    for i in range(m):
        memcpy(out + i * width, src + rows[i] * width, width * sizeof(floating))


cdef const floating* batch_rows(const Net* net, const floating* X, const Py_ssize_t* rows,
                                Py_ssize_t first, Py_ssize_t m, floating* A0) noexcept nogil:
    """The batch of X's rows ``rows`` (first, ..., first + m - 1 when rows is NULL) as the
    first layer reads it; returns ``forward``'s and ``backward``'s A0T.

    A first layer on BLAS reads the batch sample-major, as the user's rows are laid out (BLAS
    takes the operand transposed at the same rate): X's own rows when they are consecutive,
    nothing copied, else the rows copied one by one into A0, several times cheaper than a
    transposing gather on wide inputs. Otherwise the rows are gathered feature-major into A0
    for the hand-written loops, and NULL is returned."""
    if not net.blas[0]:
        gather_rows(X, rows, first, m, net.sizes[0], A0)
        return NULL
    if rows == NULL:
        return X + first * net.sizes[0]
    copy_rows(X, rows, m, net.sizes[0], A0)
    return A0


cdef void scatter_rows(const floating* block, Py_ssize_t m, Py_ssize_t width,
                       floating* out) noexcept nogil:
    """out[i, j] := block[j, i]: a feature-major (width, m) block back to m row-major rows."""
    cdef Py_ssize_t i, j
    for j in range(width):
        for i in range(m):
            out[i * width + j] = block[j * m + i]


cdef bint all_finite_ptr(const floating* x, Py_ssize_t n) noexcept nogil:
    """Whether no x[i] is inf or nan: ``max_abs_ptr``'s pass, which is NaN exactly then."""
    cdef double largest = max_abs_ptr(x, n)
    return largest == largest


cdef extern from *:
    """
    /* max |x[i]| over n entries (0 for none), or NaN when any entry is inf or NaN: one pass,
       maxima, minima and x * 0 sums (the sums are NaN exactly when some entry is not finite).
       On x86-64 the blocks of eight entries run on SSE2 registers (every x86-64 CPU has SSE2;
       the pass is bound by memory, not by the vector width), two registers per step for floats
       (four lanes) and four for doubles (two lanes); the rest, and other machines, in scalar
       C. Written out because compilers keep a maximum over the lanes of a plain loop scalar.
       SFX is the intrinsics' type suffix: ps (float) or pd (double). */
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    #define FM_MAX_ABS_BLOCKS(T, V, LANES, SFX)                                             \
        {                                                                                   \
            V hi0 = _mm_setzero_##SFX(), hi1 = hi0, lo0 = hi0, lo1 = hi0, z0 = hi0, z1 = hi0; \
            T hi[LANES], lo[LANES], z[LANES];                                               \
            int j;                                                                          \
            for (; i + 2 * LANES <= n; i += 2 * LANES) {                                    \
                V a = _mm_loadu_##SFX(x + i), b = _mm_loadu_##SFX(x + i + LANES);           \
                hi0 = _mm_max_##SFX(hi0, a); hi1 = _mm_max_##SFX(hi1, b);                   \
                lo0 = _mm_min_##SFX(lo0, a); lo1 = _mm_min_##SFX(lo1, b);                   \
                z0 = _mm_add_##SFX(z0, _mm_mul_##SFX(a, _mm_setzero_##SFX()));              \
                z1 = _mm_add_##SFX(z1, _mm_mul_##SFX(b, _mm_setzero_##SFX()));              \
            }                                                                               \
            _mm_storeu_##SFX(hi, _mm_max_##SFX(hi0, hi1));                                  \
            _mm_storeu_##SFX(lo, _mm_min_##SFX(lo0, lo1));                                  \
            _mm_storeu_##SFX(z, _mm_add_##SFX(z0, z1));                                     \
            for (j = 0; j < LANES; j++) {                                                   \
                best = hi[j] > best ? hi[j] : best;                                         \
                low = lo[j] < low ? lo[j] : low;                                            \
                sum += z[j];                                                                \
            }                                                                               \
        }
    #else
    #define FM_MAX_ABS_BLOCKS(T, V, LANES, SFX)
    #endif
    #define FM_MAX_ABS(NAME, T, V, LANES, SFX)                                              \
    static double NAME(const T* x, Py_ssize_t n) {                                          \
        T best = 0, low = 0, sum = 0;                                                       \
        Py_ssize_t i = 0;                                                                   \
        FM_MAX_ABS_BLOCKS(T, V, LANES, SFX)                                                 \
        for (; i < n; i++) {                                                                \
            best = x[i] > best ? x[i] : best;                                               \
            low = x[i] < low ? x[i] : low;                                                  \
            sum += x[i] * (T) 0;                                                            \
        }                                                                                   \
        if (sum != 0) return NAN;                                                           \
        return best >= -low ? best : -low;                                                  \
    }
    FM_MAX_ABS(fm_max_abs_f, float, __m128, 4, ps)
    FM_MAX_ABS(fm_max_abs_d, double, __m128d, 2, pd)
    """
    double fm_max_abs_f(const float* x, Py_ssize_t n) nogil
    double fm_max_abs_d(const double* x, Py_ssize_t n) nogil


cdef double max_abs_ptr(const floating* x, Py_ssize_t n) noexcept nogil:
    """max |x[i]| over n entries (0 for none), or NaN when any entry is inf or NaN (one
    vector pass, ``fm_max_abs_*``)."""
    if floating is float:
        return fm_max_abs_f(x, n)
    else:
        return fm_max_abs_d(x, n)


cdef void save_state(const Net* net, floating* backup, const floating* theta,
                     const floating* opt_state, const floating* bn_state, bint restore) noexcept nogil:
    """Copy theta, the optimizer state and the running statistics to backup, or back."""
    cdef floating* b2 = backup + net.n_params
    cdef floating* b3 = b2 + net.n_state
    if restore:
        memcpy(<floating*> theta, backup, net.n_params * sizeof(floating))
        memcpy(<floating*> opt_state, b2, net.n_state * sizeof(floating))
        memcpy(<floating*> bn_state, b3, net.bn_state_size * sizeof(floating))
    else:
        memcpy(backup, theta, net.n_params * sizeof(floating))
        memcpy(b2, opt_state, net.n_state * sizeof(floating))
        memcpy(b3, bn_state, net.bn_state_size * sizeof(floating))


cdef double batch_step(const Net* net, floating* theta, floating* opt_state, floating* bn_state,
                       int64_t* step, const floating* A0, const floating* A0T,
                       const SparseRows* batch, const floating* Yb, const floating* Wb,
                       Py_ssize_t m, double rate, uint64_t seed, floating* ws) noexcept nogil:
    """One mini-batch step of one model: forward (with dropout), loss and output delta,
    backward and update, on the batch A0 (feature-major; also sample-major in A0T, or NULL: see
    ``backward``) or the sparse rows ``batch``, targets
    Yb, sample weights Wb (or NULL). Returns the batch's weighted loss sum; when that is not
    finite, nothing was updated and ``step`` did not advance (the caller restores the epoch's
    start). The one step both ``train_epochs_nogil`` and ``train_stack_nogil`` take."""
    cdef double batch_loss
    forward(net, theta, bn_state, A0, A0T, batch, ws, m, TRAIN, seed, <uint64_t> step[0])
    batch_loss = loss_delta(net.loss, net.loss_param, ws + net.a_off[net.n_layers], Yb, Wb, m,
                            net.sizes[net.n_layers], <floating> (1.0 / m), ws + net.delta_off0)
    if not isfinite(batch_loss):
        return batch_loss
    step[0] += 1
    if net.fused:
        backward(net, theta, A0, A0T, batch, ws, m, ws + net.grad_off, rate)
    else:
        backward(net, theta, A0, A0T, batch, ws, m, ws + net.grad_off, 0)
        update(net, theta, ws + net.grad_off, opt_state, rate, step[0])
    return batch_loss


# --- Batch orders drawn inside the kernel -------------------------------------------------
# NumPy's bit generators (PCG64, MT19937, Philox, SFC64, and the one inside a RandomState) expose
# their C interface as a PyCapsule named "BitGenerator" holding this struct (numpy/random/bitgen.h,
# part of NumPy's C API since 1.17). Declared here rather than included: nothing is linked.
ctypedef struct bitgen_t:
    void* state
    uint64_t (*next_uint64)(void* st) noexcept nogil
    uint32_t (*next_uint32)(void* st) noexcept nogil
    double (*next_double)(void* st) noexcept nogil
    uint64_t (*next_raw)(void* st) noexcept nogil


cdef inline uint64_t random_interval(bitgen_t* bitgen, uint64_t max) noexcept nogil:
    """A uniform integer in [0, max]: NumPy's ``random_interval``
    (numpy/random/src/distributions/distributions.c), draw for draw: a 32-bit draw (64-bit when
    max does not fit 32 bits) masked by the smallest all-ones mask >= max, rejected while it
    exceeds max."""
    cdef uint64_t mask = max, value
    if max == 0:
        return 0
    mask |= mask >> 1
    mask |= mask >> 2
    mask |= mask >> 4
    mask |= mask >> 8
    mask |= mask >> 16
    mask |= mask >> 32
    if max <= 0xffffffffUL:
        value = bitgen.next_uint32(bitgen.state) & mask
        while value > max:
            value = bitgen.next_uint32(bitgen.state) & mask
    else:
        value = bitgen.next_uint64(bitgen.state) & mask
        while value > max:
            value = bitgen.next_uint64(bitgen.state) & mask
    return value


cdef void shuffle_order(bitgen_t* bitgen, Py_ssize_t* a, Py_ssize_t n) noexcept nogil:
    """Shuffle a[0:n] in place as NumPy does (``Generator.shuffle``, ``.permuted``,
    ``.permutation`` and ``RandomState.shuffle``, ``.permutation``: ``_shuffle_raw``):
    Fisher-Yates from the end, ``j = random_interval(i)`` then swap a[i] and a[j], for i from
    n - 1 down to 1. The same draws and swaps, so the same stream and the same generator state
    after it.

    One draw per pass, without a data-dependent branch: a rejected draw swaps a[i] with itself
    and leaves i where it is. NumPy's loop mispredicts the branch of its rejection sampling
    about once every four elements, which costs more than the draws (measured on 140 rows with
    PCG64: about 5 ns per element here, 8 to 10 in NumPy's loop, of which the draws take 2.5)."""
    cdef Py_ssize_t i = n - 1, j, t
    cdef uint64_t mask = <uint64_t> i, value
    cdef bint accept
    if i <= 0:
        return
    mask |= mask >> 1
    mask |= mask >> 2
    mask |= mask >> 4
    mask |= mask >> 8
    mask |= mask >> 16
    mask |= mask >> 32
    if mask > 0xffffffffUL:         # rows beyond 2**32: 64-bit draws, as random_interval
        while i > 0:
            j = <Py_ssize_t> random_interval(bitgen, <uint64_t> i)
            t = a[i]
            a[i] = a[j]
            a[j] = t
            i -= 1
        return
    while i > 0:
        # i falls by at most 1 per pass, so its mask (the smallest all-ones >= i) halves at
        # most once.
        mask >>= (<uint64_t> i <= (mask >> 1))
        value = bitgen.next_uint32(bitgen.state) & mask
        accept = value <= <uint64_t> i
        j = <Py_ssize_t> value if accept else i
        t = a[i]
        a[i] = a[j]
        a[j] = t
        i -= accept


def _bit_generator(generator):
    """The ``numpy.random.BitGenerator`` behind a ``Generator``, a ``RandomState`` or itself."""
    for name in ("bit_generator", "_bit_generator"):
        inner = getattr(generator, name, None)
        if inner is not None:
            return inner
    if hasattr(generator, "capsule") and hasattr(generator, "lock"):
        return generator
    raise TypeError(f"expected a numpy.random.Generator, RandomState or BitGenerator, got "
                    f"{type(generator).__name__}")


cdef bitgen_t* _bitgen_of(bit_generator) except NULL:
    return <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")


def shuffle_rows(generator, base, Py_ssize_t epochs, bint carry=False):
    """The orders of ``epochs`` epochs drawn from ``generator`` as ``train_epochs`` draws them.

    The Python-callable twin of the kernel's draw (the same C code): row e is ``base`` shuffled
    in place as NumPy shuffles (``carry=False``, each epoch from ``base`` again), or epoch
    e - 1's order shuffled again (``carry=True``, the orders compose). For ``base = arange(n)``
    and ``carry=False`` that is ``generator.permuted(np.tile(base, (epochs, 1)), axis=1)``, the
    same stream as ``epochs`` calls of ``generator.permutation(n)``, and the generator ends in
    the same state. The generator's lock is held while drawing, as NumPy's methods do.

    Parameters
    ----------
    generator : numpy.random.Generator, RandomState or BitGenerator
    base : (n,) intp array, or an int n for ``arange(n)``
    epochs : int >= 0
    carry : bool

    Returns
    -------
    orders : (epochs, n) intp array

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp._kernels._train import shuffle_rows
    >>> a = shuffle_rows(np.random.default_rng(0), 5, 2)
    >>> b = np.random.default_rng(0)
    >>> bool((a == [b.permutation(5), b.permutation(5)]).all())
    True
    """
    if isinstance(base, (int, np.integer)):
        if base < 0:
            raise ValueError("n must be >= 0")
        base = np.arange(base, dtype=np.intp)
    cdef const Py_ssize_t[::1] b = base
    cdef Py_ssize_t n = b.shape[0], e
    if epochs < 0:
        raise ValueError("epochs must be >= 0")
    out = np.empty((epochs, n), dtype=np.intp)
    if epochs == 0 or n == 0:
        return out
    cdef Py_ssize_t[:, ::1] o = out
    bit_generator = _bit_generator(generator)
    cdef bitgen_t* bitgen = _bitgen_of(bit_generator)
    with bit_generator.lock:
        with nogil:
            for e in range(epochs):
                memcpy(&o[e, 0], &b[0] if e == 0 or not carry else &o[e - 1, 0],
                       n * sizeof(Py_ssize_t))
                shuffle_order(bitgen, &o[e, 0], n)
    return out


cdef int train_epochs_nogil(const Net* net, floating* theta, floating* opt_state,
                            floating* bn_state, int64_t* step, const floating* X,
                            const SparseRows* sp, const floating* Y, const floating* sample_weight, Py_ssize_t n,
                            const Py_ssize_t* orders, Py_ssize_t order_stride, bitgen_t* bitgen,
                            bint carry, Py_ssize_t* drawn, const double* rates,
                            Py_ssize_t n_epochs,
                            Py_ssize_t batch_size, uint64_t seed, floating* ws, double* loss_out,
                            int interrupt_mark, Py_ssize_t* epochs_done) noexcept nogil:
    """Epoch e visits ``orders + e * order_stride`` (stride 0: the same order every epoch);
    with a bit generator, it visits ``drawn`` (n entries) instead, where the order is drawn at
    the epoch's start: ``orders`` (or, with ``carry``, after the first epoch, the last epoch's
    order) shuffled by ``shuffle_order``."""
    cdef Py_ssize_t e, start, m
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[net.n_layers]
    cdef const Py_ssize_t* order
    cdef floating* A0 = ws + net.a_off[0]
    cdef const floating* A0T = NULL
    cdef floating* Yb = ws + net.y_off
    cdef floating* Wb = ws + net.sw_off if sample_weight != NULL else NULL
    cdef floating* backup = ws + net.backup_off
    cdef double batch_loss, total
    cdef int64_t step_at_start
    cdef int status
    cdef SparseRows batch
    cdef const SparseRows* batch_ptr = NULL
    if sp != NULL:
        batch = sp[0]
        batch_ptr = &batch
    for e in range(n_epochs):
        epochs_done[0] = e
        save_state(net, backup, theta, opt_state, bn_state, False)
        step_at_start = step[0]
        if bitgen != NULL:
            if e == 0 or not carry:
                memcpy(drawn, orders, n * sizeof(Py_ssize_t))
            shuffle_order(bitgen, drawn, n)
            order = drawn
        else:
            order = orders + e * order_stride
        total = 0
        start = 0
        while start < n:
            m = batch_size if start + batch_size <= n else n - start
            if sp != NULL:
                batch.rows = order + start
            else:
                A0T = batch_rows(net, X, order + start, 0, m, A0)
            gather_rows(Y, order + start, 0, m, n_out, Yb)
            if Wb != NULL:
                gather_rows(sample_weight, order + start, 0, m, 1, Wb)
            batch_loss = batch_step(net, theta, opt_state, bn_state, step, A0, A0T, batch_ptr,
                                    Yb, Wb, m, rates[e], seed, ws)
            if not isfinite(batch_loss):
                save_state(net, backup, theta, opt_state, bn_state, True)
                step[0] = step_at_start
                return NONFINITE_LOSS
            total += batch_loss
            start += m
        # Everything the epoch wrote must be finite: the parameters, the optimizer's state (a
        # moment can overflow while the step it scales stays finite) and the running
        # statistics (which batch normalization's output does not show).
        status = (NONFINITE_PARAMS if not all_finite_ptr(theta, net.n_params) else
                  NONFINITE_OPT_STATE if not all_finite_ptr(opt_state, net.n_state) else
                  NONFINITE_BN_STATE if not all_finite_ptr(bn_state, net.bn_state_size) else OK)
        if status != OK:
            save_state(net, backup, theta, opt_state, bn_state, True)
            step[0] = step_at_start
            return status
        loss_out[e] = total / n + penalty(net, theta)
        if fastmlp_sigint_count != interrupt_mark:
            epochs_done[0] = e + 1
            return INTERRUPTED
    epochs_done[0] = n_epochs
    return OK


cdef bint indices_in_range(const Py_ssize_t* idx, Py_ssize_t count, Py_ssize_t n) noexcept nogil:
    """all(0 <= idx[i] < n): one unsigned comparison per index (a negative one wraps around
    to a huge one), the misses counted without branches."""
    cdef Py_ssize_t i
    cdef size_t bad = 0
    for i in range(count):
        bad += <size_t> idx[i] >= <size_t> n
    return bad == 0


cdef inline floating* _data(floating[::1] a) noexcept:
    return &a[0] if a is not None and a.shape[0] > 0 else NULL


cdef bint _bind_input(Network network, X, bint single, SparseRows* sp) except -1:
    """True, with sp := X's arrays, when X is a ``_sparse.CSR`` (of the model's dtype); False
    when X is dense (which a network laid out for sparse input refuses)."""
    if isinstance(X, CSR):
        if (<CSR> X).dtype != (np.float32 if single else np.float64):
            raise TypeError(f"X holds {(<CSR> X).dtype} values; the model is "
                            f"{'float32' if single else 'float64'}")
        sp[0] = (<CSR> X).rows
        return True
    if network.sparse_input:
        raise ValueError("this Network is laid out for sparse input (sparse_input=True); "
                         "X must be a fastmlp._kernels._sparse.CSR")
    return False


def train_epochs(Network network, floating[::1] theta, floating[::1] opt_state,
                 floating[::1] bn_state, int64_t[::1] step, X, const floating[:, ::1] Y, const floating[::1] sample_weight,
                 const Py_ssize_t[:, ::1] orders, const double[::1] rates,
                 Py_ssize_t batch_size, uint64_t seed, floating[::1] workspace,
                 double[::1] loss_out, interrupt_mark=None, epochs=None, generator=None,
                 bint carry=False, Py_ssize_t[::1] order_out=None):
    """Run epochs of mini-batch training with the GIL released: ``len(orders)`` epochs, or
    ``epochs`` epochs over one order, drawn in the kernel when a generator is given.

    Parameters
    ----------
    network : Network
        Built with ``max_batch >= batch_size``.
    theta : (n_params,) array, IN/OUT
        The flat parameters, updated in place.
    opt_state : (n_state,) array, IN/OUT
        The optimizer's state (zeros before the first update).
    bn_state : (bn_state_size,) array, IN/OUT
        Batch-norm running means and variances.
    step : (1,) int64 array, IN/OUT
        Updates done so far (Adam's bias correction, dropout masks' counter).
    X : (n, sizes[0]) C-contiguous array or ``_sparse.CSR``, IN
        The model's dtype. A CSR X needs no ``sparse_input`` network, but one spares memory.
    Y : (n, sizes[-1]) array of targets, IN
    sample_weight : (n,) array or None, IN
        Per-sample loss weights (the caller normalizes them to mean 1).
    orders : (n_epochs, n_visit) int array, IN
        Epoch e visits rows ``orders[e]`` (indices into X, each in ``[0, len(X))``; an epoch
        may visit a subset of the rows, e.g. a training split) in batches of ``batch_size``
        (the last may be smaller). With ``epochs``: one row, the base order (below).
    rates : (n_epochs,) float64 array, IN
        The learning rate of each epoch.
    batch_size : int
    seed : int
        Seed of the dropout masks.
    workspace : (network.workspace_size,) array, scratch
    loss_out : (n_epochs,) float64 array, OUT
        Per epoch: the mean of the batch losses plus the penalty at the epoch's end.
    interrupt_mark : int or None
        Stop at the end of the first epoch after which ``interrupt_count()`` differs from this
        (the count when the fit began); None: the count now.
    epochs : int or None
        None: one epoch per row of ``orders``. Else the number of epochs, each visiting the
        base order ``orders[0]`` (``orders`` must have one row), or with a ``generator`` an
        order drawn at the epoch's start: the base order shuffled as NumPy shuffles
        (``shuffle_rows``, the same code), so that for the base ``arange(n)`` epoch e visits
        what the e-th of successive ``generator.permutation(n)`` calls returns. No buffer of
        orders grows with the epochs.
    generator : numpy.random.Generator, RandomState or BitGenerator, or None
        Its bit generator is advanced in place (its lock held for the whole call), draw for
        draw as NumPy's own shuffles advance it: only for the epochs begun, so after a
        complete call it is in the state those ``permutation`` calls leave.
    carry : bool
        With a generator: each epoch after the first shuffles the previous epoch's order
        instead of the base order (the orders compose, as scikit-learn's
        ``sample_idx = shuffle(sample_idx)`` does).
    order_out : (n_visit,) intp array or None, OUT
        With a generator: receives the order of the last epoch begun (to carry into the next
        call). It may be the memory of ``orders[0]``.

    Returns
    -------
    status, epochs_done : int, int
        ``OK`` after all epochs; ``INTERRUPTED`` after ``epochs_done`` epochs when Ctrl-C was
        caught (see ``catch_interrupts``); else ``NONFINITE_LOSS``, ``NONFINITE_PARAMS``,
        ``NONFINITE_OPT_STATE`` or ``NONFINITE_BN_STATE`` with every buffer restored to its
        value at the start of epoch ``epochs_done`` (from 0). That value was checked finite at
        the end of the epoch before, and ``restore_epoch_start`` can restore it again until the
        next call (the workspace keeps it).
    """
    cdef Py_ssize_t n = orders.shape[1], n_epochs = orders.shape[0], done = 0
    cdef Py_ssize_t n_rows = X.shape[0], stride = n, n_checked = n_epochs * n
    cdef int status
    cdef bint in_range = True
    cdef SparseRows sp
    cdef bint sparse = _bind_input(network, X, floating is float, &sp)
    cdef const floating[:, ::1] Xd = None if sparse else X
    cdef bitgen_t* bitgen = NULL
    cdef Py_ssize_t* drawn = NULL
    bit_generator = None
    _check_arrays(network, theta, opt_state, bn_state, X, Y, sample_weight, workspace)
    if epochs is not None:
        if orders.shape[0] != 1:
            raise ValueError("with epochs, orders must hold one row: the base order")
        n_epochs = operator.index(epochs)
        if n_epochs < 0:
            raise ValueError("epochs must be >= 0")
        stride, n_checked = 0, n
        if generator is not None:
            bit_generator = _bit_generator(generator)
            bitgen = _bitgen_of(bit_generator)
    elif generator is not None:
        raise ValueError("a generator draws the orders of epochs=...; give epochs")
    if order_out is not None and (bitgen == NULL or order_out.shape[0] != n):
        raise ValueError("order_out needs a generator and one entry per row of an epoch")
    if rates.shape[0] < n_epochs or loss_out.shape[0] < n_epochs:
        raise ValueError("rates and loss_out need one entry per epoch of orders")
    if n_epochs and n:
        with nogil:
            in_range = indices_in_range(&orders[0, 0], n_checked, n_rows)
        if not in_range:
            raise ValueError(f"orders must hold row indices in [0, {n_rows})")
    if not 1 <= batch_size <= network.max_batch or step.shape[0] != 1:
        raise ValueError(f"batch_size must be in [1, {network.max_batch}] and step one int64")
    if n_epochs == 0 or n == 0:
        return OK, 0
    cdef floating* opt_ptr = _data(opt_state)
    cdef floating* bn_ptr = _data(bn_state)
    cdef const floating* sw_ptr = NULL if sample_weight is None else &sample_weight[0]
    cdef int mark = fastmlp_sigint_count if interrupt_mark is None else interrupt_mark
    if bitgen == NULL:
        with nogil:
            status = train_epochs_nogil(&network.net, &theta[0], opt_ptr, bn_ptr, &step[0],
                                        NULL if sparse else &Xd[0, 0], &sp if sparse else NULL,
                                        &Y[0, 0], sw_ptr, n, &orders[0, 0], stride, NULL, False,
                                        NULL, &rates[0], n_epochs, batch_size, seed,
                                        &workspace[0], &loss_out[0], mark, &done)
        return status, done
    drawn = <Py_ssize_t*> malloc(n * sizeof(Py_ssize_t))
    if drawn == NULL:
        raise MemoryError()
    try:
        with bit_generator.lock:
            with nogil:
                status = train_epochs_nogil(&network.net, &theta[0], opt_ptr, bn_ptr, &step[0],
                                            NULL if sparse else &Xd[0, 0],
                                            &sp if sparse else NULL, &Y[0, 0], sw_ptr, n,
                                            &orders[0, 0], 0, bitgen, carry, drawn, &rates[0],
                                            n_epochs, batch_size, seed, &workspace[0],
                                            &loss_out[0], mark, &done)
        if order_out is not None:
            memcpy(&order_out[0], drawn, n * sizeof(Py_ssize_t))
    finally:
        free(drawn)
    return status, done


def restore_epoch_start(Network network, floating[::1] theta, floating[::1] opt_state,
                        floating[::1] bn_state, floating[::1] workspace):
    """Put back the parameters, optimizer state and running statistics of the start of the
    last epoch that ``train_epochs`` ran with this workspace (steps are the caller's)."""
    if (theta.shape[0] != network.n_params or opt_state.shape[0] != network.n_state
            or bn_state.shape[0] != network.bn_state_size
            or workspace.shape[0] < network.workspace_size):
        raise ValueError("the buffers do not fit the network")
    save_state(&network.net, &workspace[0] + network.net.backup_off, &theta[0],
               _data(opt_state), _data(bn_state), True)


def outputs_finite(Network network, const floating[::1] theta, floating[::1] bn_state,
                   X, floating[::1] workspace):
    """Whether the network's logits on every row of X (dense or a ``_sparse.CSR``) are finite
    (prediction mode), computed ``network.max_batch`` rows at a time in the workspace, with the
    GIL released."""
    cdef Py_ssize_t n = X.shape[0], start = 0, m
    cdef bint ok = True
    cdef SparseRows sp
    cdef bint sparse = _bind_input(network, X, floating is float, &sp)
    cdef const floating[:, ::1] Xd = None if sparse else X
    _check_arrays(network, theta, None, bn_state, X, None, None, workspace)
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    cdef floating* bn_ptr = _data(bn_state)
    cdef floating* last = ws + net.a_off[net.n_layers]
    cdef const floating* A0T = NULL
    with nogil:
        while start < n and ok:
            m = net.max_batch if start + net.max_batch <= n else n - start
            if sparse:
                sp.first = start
            else:
                A0T = batch_rows(net, &Xd[0, 0], NULL, start, m, ws + net.a_off[0])
            forward(net, &theta[0], bn_ptr, ws + net.a_off[0], A0T, &sp if sparse else NULL,
                    ws, m, PREDICT, 0, 0)
            ok = all_finite_ptr(last, m * net.sizes[net.n_layers])
            start += m
    return ok


def loss_and_gradient(Network network, const floating[::1] theta, floating[::1] bn_state,
                      X, const floating[:, ::1] Y,
                      const floating[::1] sample_weight, floating[::1] workspace,
                      floating[::1] grad_out):
    """The objective J on (X, Y) taken as one batch, and its gradient into ``grad_out``.

    The same forward, loss and backward code as training, without dropout; batch-norm layers
    use the batch's statistics and update the running ones in ``bn_state`` (pass a copy to keep
    them). ``network.max_batch`` must be at least ``len(X)``. X is dense or a ``_sparse.CSR``.
    """
    cdef Py_ssize_t m = X.shape[0]
    cdef double total
    cdef SparseRows sp
    cdef bint sparse = _bind_input(network, X, floating is float, &sp)
    cdef const floating[:, ::1] Xd = None if sparse else X
    _check_arrays(network, theta, None, bn_state, X, Y, sample_weight, workspace)
    if not 1 <= m <= network.max_batch or grad_out.shape[0] != network.n_params:
        raise ValueError("X must have 1..max_batch rows and grad_out n_params entries")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    cdef floating* bn_ptr = _data(bn_state)
    cdef const floating* sw_ptr = NULL if sample_weight is None else &sample_weight[0]
    cdef const floating* A0T = NULL
    with nogil:
        if not sparse:
            A0T = batch_rows(net, &Xd[0, 0], NULL, 0, m, ws + net.a_off[0])
        gather_rows(&Y[0, 0], NULL, 0, m, net.sizes[net.n_layers], ws + net.y_off)
        forward(net, &theta[0], bn_ptr, ws + net.a_off[0], A0T, &sp if sparse else NULL, ws, m,
                GRADIENT, 0, 0)
        total = loss_delta(net.loss, net.loss_param, ws + net.a_off[net.n_layers],
                           ws + net.y_off, sw_ptr, m, net.sizes[net.n_layers],
                           <floating> (1.0 / m), ws + net.delta_off0)
        backward(net, <floating*> &theta[0], ws + net.a_off[0], A0T, &sp if sparse else NULL,
                 ws, m, &grad_out[0], 0)
        total = total / m + penalty(net, &theta[0])
    return total


def predict(Network network, const floating[::1] theta, floating[::1] bn_state,
            X, floating[::1] workspace, floating[:, ::1] out, bint logits=False):
    """``out :=`` the network's outputs on X (dense or a ``_sparse.CSR``): probabilities, or
    logits when ``logits``, computed ``network.max_batch`` rows at a time with the GIL
    released."""
    cdef Py_ssize_t n = X.shape[0], n_out = network.sizes[len(network.sizes) - 1], start = 0, m
    cdef SparseRows sp
    cdef bint sparse = _bind_input(network, X, floating is float, &sp)
    cdef const floating[:, ::1] Xd = None if sparse else X
    _check_arrays(network, theta, None, bn_state, X, None, None, workspace)
    if out.shape[0] != n or out.shape[1] != n_out:
        raise ValueError(f"out must have shape ({n}, {n_out})")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    cdef floating* bn_ptr = _data(bn_state)
    cdef floating* last = ws + net.a_off[net.n_layers]
    cdef const floating* A0T = NULL
    with nogil:
        while start < n:
            m = net.max_batch if start + net.max_batch <= n else n - start
            if sparse:
                sp.first = start
            else:
                A0T = batch_rows(net, &Xd[0, 0], NULL, start, m, ws + net.a_off[0])
            forward(net, &theta[0], bn_ptr, ws + net.a_off[0], A0T, &sp if sparse else NULL,
                    ws, m, PREDICT, 0, 0)
            if not logits:
                output_activation(net.loss, last, m, n_out)
            scatter_rows(last, m, n_out, &out[start, 0])
            start += m


def objective(Network network, const floating[::1] theta, floating[::1] bn_state,
              X, const floating[:, ::1] Y,
              const floating[::1] sample_weight, floating[::1] workspace,
              floating[:, ::1] out=None):
    """The objective J = sum_i w_i l_i / n + penalty on (X, Y), in prediction mode, in chunks
    of ``max_batch`` rows; when ``out`` is given, the outputs (as ``predict``) go there. X is
    dense or a ``_sparse.CSR``."""
    cdef Py_ssize_t n = X.shape[0], n_out = network.sizes[len(network.sizes) - 1], start = 0, m
    cdef double total = 0
    cdef SparseRows sp
    cdef bint sparse = _bind_input(network, X, floating is float, &sp)
    cdef const floating[:, ::1] Xd = None if sparse else X
    _check_arrays(network, theta, None, bn_state, X, Y, sample_weight, workspace)
    if n == 0:
        raise ValueError("the objective of no samples is undefined")
    cdef const Net* net = &network.net
    cdef floating* ws = &workspace[0]
    cdef floating* bn_ptr = _data(bn_state)
    cdef const floating* sw_ptr = NULL if sample_weight is None else &sample_weight[0]
    cdef const floating* A0T = NULL
    if out is not None and (out.shape[0] != n or out.shape[1] != n_out):
        raise ValueError(f"out must have shape ({n}, {n_out})")
    cdef floating* out_ptr = NULL if out is None else &out[0, 0]
    with nogil:
        while start < n:
            m = net.max_batch if start + net.max_batch <= n else n - start
            if sparse:
                sp.first = start
            else:
                A0T = batch_rows(net, &Xd[0, 0], NULL, start, m, ws + net.a_off[0])
            gather_rows(&Y[0, 0], NULL, start, m, n_out, ws + net.y_off)
            forward(net, &theta[0], bn_ptr, ws + net.a_off[0], A0T, &sp if sparse else NULL,
                    ws, m, PREDICT, 0, 0)
            total += loss_delta(net.loss, net.loss_param, ws + net.a_off[net.n_layers],
                                ws + net.y_off, sw_ptr + start if sw_ptr != NULL else NULL,
                                m, n_out, <floating> 1, <floating*> NULL)
            if out_ptr != NULL:
                output_activation(net.loss, ws + net.a_off[net.n_layers], m, n_out)
                scatter_rows(ws + net.a_off[net.n_layers], m, n_out, out_ptr + start * n_out)
            start += m
        total = total / n + penalty(net, &theta[0])
    return total


def max_abs(const floating[:, ::1] X):
    """max |X| (0.0 for an empty X), or NaN when X holds an infinity or a NaN: one pass, no
    temporary array, GIL released."""
    cdef double result
    if X.shape[0] == 0 or X.shape[1] == 0:
        return 0.0
    with nogil:
        result = max_abs_ptr(&X[0, 0], X.shape[0] * X.shape[1])
    return result


def all_finite(const floating[:, ::1] X):
    """Whether every entry of X is finite; no temporary array, GIL released."""
    cdef bint ok
    if X.shape[0] == 0 or X.shape[1] == 0:
        return True
    with nogil:
        ok = all_finite_ptr(&X[0, 0], X.shape[0] * X.shape[1])
    return ok


def _check_arrays(Network network, theta, opt_state, bn_state, X, Y, sample_weight, workspace):
    if theta.shape[0] != network.n_params:
        raise ValueError(f"theta has {theta.shape[0]} entries, the network {network.n_params}")
    if opt_state is not None and opt_state.shape[0] != network.n_state:
        raise ValueError(f"opt_state needs {network.n_state} entries")
    if (0 if bn_state is None else bn_state.shape[0]) != network.bn_state_size:
        raise ValueError(f"bn_state needs {network.bn_state_size} entries")
    if X.shape[1] != network.sizes[0]:
        raise ValueError(f"X has {X.shape[1]} columns, the network {network.sizes[0]} inputs")
    cdef Py_ssize_t n_out = network.sizes[len(network.sizes) - 1]
    if Y is not None and (Y.shape[0] != X.shape[0] or Y.shape[1] != n_out):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {n_out})")
    if sample_weight is not None and sample_weight.shape[0] != X.shape[0]:
        raise ValueError(f"sample_weight must have {X.shape[0]} entries")
    if workspace.shape[0] < network.workspace_size:
        raise ValueError(f"workspace needs {network.workspace_size} entries")


# -- many models of one architecture on shared batches ----------------------------------------

cdef bint stack_packable(const Net** nets, Py_ssize_t n_models) noexcept nogil:
    """Whether the stack's first layers can run as one product per batch (see
    ``stack_packed_step``): at least two models, each with a hidden first layer of one width,
    on BLAS, without batch normalization. The input must be dense (the caller checks)."""
    cdef Py_ssize_t k
    if n_models < 2:
        return False
    for k in range(n_models):
        if (nets[k].n_layers < 2 or nets[k].sizes[1] != nets[0].sizes[1] or not nets[k].blas[0]
                or nets[k].bn[0]):
            return False
    return True


cdef void forward_upper(const Net* net, const floating* theta, floating* bn_state, floating* ws,
                        Py_ssize_t m, uint64_t seed, uint64_t step) noexcept nogil:
    """``forward`` in TRAIN mode from layer 1 on, A[1] and D[1] already in ws."""
    cdef int k, act
    cdef Py_ssize_t width
    cdef floating* Z
    cdef floating* D
    for k in range(1, net.n_layers):
        width = net.sizes[k + 1]
        Z = ws + net.a_off[k + 1]
        D = ws + net.d_off[k + 1] if k + 1 < net.n_layers else NULL
        act = ACT_IDENTITY if net.bn[k] else net.act[k]
        dense_forward(ws + net.a_off[k], theta + net.w_off[k], theta + net.b_off[k], m,
                      net.sizes[k], width, act, <floating> net.act_param[k], net.blas[k], False,
                      Z, NULL if net.bn[k] else D)
        if net.bn[k]:
            bn_forward_train(Z, m, width, theta + net.g_off[k], theta + net.be_off[k],
                             net.bn_eps, net.bn_momentum, bn_state + net.rm_off[k],
                             bn_state + net.rv_off[k], ws + net.zhat_off[k],
                             ws + net.istd_off[k])
            apply_activation(net.act[k], <floating> net.act_param[k], Z, D, m * width)
        if net.dropout[k] > 0:
            dropout_apply(Z, D, m, width, net.dropout[k], seed, step, k)


cdef void stack_packed_step(const Net** nets, const Py_ssize_t* idx, Py_ssize_t g,
                            floating** thetas, floating** opt_states, floating** bn_states,
                            int64_t* steps, const floating* A0, const floating* Yb,
                            Py_ssize_t m, const Py_ssize_t* rows,
                            const double* sample_weight, Py_ssize_t weight_rows,
                            const double* weight_scale, const unsigned char* weighted,
                            Py_ssize_t n_rows, const double* rates, const uint64_t* seeds,
                            floating** workspaces, double* losses, floating* pack) noexcept nogil:
    """``batch_step`` of the g models idx[0..g) on one batch A0 (n_in, m), their first layers
    (one width h, see ``stack_packable``) as one product each way:

        forward    Z (g*h, m) := [W_0 .. W_g-1].T @ A0 + b     (the W_k packed side by side)
        backward   G (n_in, g*h) := A0 @ [delta_0; ..; delta_g-1].T

    and everything else per model, as ``batch_step``: activation, the layers above, loss,
    their backward, the first layer's bias gradient and its step (fused SGD) or gradient
    (then penalties and the optimizer). ``pack`` holds n_in * g * h + g * h * m entries: the
    packed weights, then G; Z, then the deltas. ``rows`` are the batch's row indices (for
    the sample weights). losses[i] := model idx[i]'s batch loss; where it is not finite,
    nothing of that model was updated nor its step advanced (the caller restores it)."""
    cdef const Net* net = nets[idx[0]]
    cdef Py_ssize_t n_in = net.sizes[0], h = net.sizes[1], H = g * h
    cdef Py_ssize_t i, j, r, k
    cdef floating* Wp = pack
    cdef floating* Zp = pack + n_in * H
    cdef floating* z
    cdef floating* Zk
    cdef floating* Wk
    cdef floating* ws
    cdef floating* Wb
    cdef floating* grad
    cdef const floating* bk
    cdef const floating* gk
    cdef floating alpha, beta_w, bj
    cdef double rate, batch_loss
    # forward: the weights side by side, each model's bias under its rows of Z, one product
    for i in range(g):
        k = idx[i]
        Wk = thetas[k] + nets[k].w_off[0]
        for r in range(n_in):
            memcpy(Wp + r * H + i * h, Wk + r * h, h * sizeof(floating))
        bk = thetas[k] + nets[k].b_off[0]
        for j in range(h):
            z = Zp + (i * h + j) * m
            bj = bk[j]
            for r in range(m):
                z[r] = bj
    gemm(True, False, <int> H, <int> m, <int> n_in, <floating> 1, Wp, <int> H, A0, <int> m,
         <floating> 1, Zp, <int> m)
    for i in range(g):
        k = idx[i]
        net = nets[k]
        ws = workspaces[k]
        Zk = ws + net.a_off[1]
        memcpy(Zk, Zp + i * h * m, h * m * sizeof(floating))
        apply_activation(net.act[0], <floating> net.act_param[0], Zk, ws + net.d_off[1], m * h)
        if net.dropout[0] > 0:
            dropout_apply(Zk, ws + net.d_off[1], m, h, net.dropout[0], seeds[k],
                          <uint64_t> steps[k], 0)
        forward_upper(net, thetas[k], bn_states[k], ws, m, seeds[k], <uint64_t> steps[k])
        Wb = NULL
        if weighted[k]:
            Wb = ws + net.sw_off
            for r in range(m):
                Wb[r] = <floating> (sample_weight[(k % weight_rows) * n_rows + rows[r]]
                                    * weight_scale[k])
        batch_loss = loss_delta(net.loss, net.loss_param, ws + net.a_off[net.n_layers], Yb, Wb,
                                m, net.sizes[net.n_layers], <floating> (1.0 / m),
                                ws + net.delta_off0)
        losses[i] = batch_loss
        if not isfinite(batch_loss):
            # its block of deltas stays as it is: its columns of G are ignored
            continue
        steps[k] += 1
        # Z's block i was copied above: it now takes model i's first-layer delta
        backward_upper(net, thetas[k], ws, m, ws + net.grad_off,
                       rates[k] if net.fused else 0, Zp + i * h * m)
    # backward: every model's first-layer weight gradient in one product
    gemm(False, True, <int> n_in, <int> H, <int> m, <floating> 1, A0, <int> m, Zp, <int> m,
         <floating> 0, Wp, <int> H)
    for i in range(g):
        if not isfinite(losses[i]):
            continue
        k = idx[i]
        net = nets[k]
        ws = workspaces[k]
        rate = rates[k]
        if net.fused:
            alpha = <floating> -rate
            beta_w = <floating> (1 - rate * net.l2)
            bias_gradient(Zp + i * h * m, m, h, alpha, 1, thetas[k] + net.b_off[0])
            Wk = thetas[k] + net.w_off[0]
            for r in range(n_in):
                gk = Wp + r * H + i * h
                for j in range(h):
                    Wk[r * h + j] = beta_w * Wk[r * h + j] + alpha * gk[j]
        else:
            grad = ws + net.grad_off
            bias_gradient(Zp + i * h * m, m, h, 1, 0, grad + net.b_off[0])
            for r in range(n_in):
                memcpy(grad + net.w_off[0] + r * h, Wp + r * H + i * h, h * sizeof(floating))
            if net.l1 != 0 or net.l2 != 0:
                for j in range(net.n_layers):
                    add_penalty_gradient(grad + net.w_off[j], thetas[k] + net.w_off[j],
                                         net.sizes[j] * net.sizes[j + 1], net.l1, net.l2)
            update(net, thetas[k], grad, opt_states[k], rate, steps[k])


cdef int train_stack_nogil(const Net** nets, Py_ssize_t n_models, floating** thetas,
                           floating** opt_states, floating** bn_states, int64_t* steps,
                           const floating* X, const SparseRows* sp, const floating* Y,
                           const double* sample_weight, Py_ssize_t weight_rows, const double* weight_scale,
                           const unsigned char* weighted, Py_ssize_t n_rows,
                           const Py_ssize_t* orders, Py_ssize_t n,
                           const double* rates, Py_ssize_t n_epochs, Py_ssize_t batch_size,
                           Py_ssize_t chunk, const uint64_t* seeds, floating** workspaces,
                           floating* shared, double* loss_out, int* status, Py_ssize_t* done,
                           int64_t* step_at_start, double* totals,
                           int interrupt_mark, const double* rule_tol,
                           const double* rule_patience, double* rule_best, double* rule_count,
                           Py_ssize_t* rule_left, Py_ssize_t pack_models, floating* pack,
                           Py_ssize_t* active, double* losses, bint sample_major) noexcept nogil:
    """Train every model whose status is OK on the same batches: each model takes the steps
    ``train_epochs_nogil`` would take for it alone (``batch_step``; with ``sample_major`` or
    ``pack_models`` the same steps, their products in another order).

    The batches are gathered once for all models, ``chunk`` consecutive batches at a time into
    ``shared`` (chunk * batch_size * (n_in + n_out) entries); then each model takes all the
    steps of the chunk in turn, its parameters and workspace staying in cache across them
    (models are independent, so this order changes no result). With sp not NULL, X is sparse:
    a batch is its rows ``order`` (nothing is gathered) and ``shared`` holds only the targets.

    With ``pack_models`` > 0 (the stack is ``stack_packable``), the chunk's batches are taken
    one at a time by all the models instead, up to ``pack_models`` at once through
    ``stack_packed_step`` (their first layers one product per batch each way), in ``pack``
    (see there); ``active`` (n_models) and ``losses`` (pack_models) are its scratch.

    With ``sample_major`` (dense X), each batch is also gathered sample-major after its targets
    (another batch_size * n_in entries per batch in ``shared``): the models whose first layer
    goes to BLAS take its forward product and weight gradient from it (see ``forward``,
    ``backward``), and when all of them do (and nothing is packed) the feature-major copy is
    not made.

    A model whose loss or weights become non-finite is restored to the start of that epoch and
    leaves the stack (its status says why, ``done`` how many epochs it finished); the others go
    on. Returns INTERRUPTED when Ctrl-C was caught (after the epoch), else OK.

    With ``rule_tol`` not NULL, scikit-learn's stopping rule on the training loss runs after
    every epoch of every model (see ``train_stack_epochs``): a model it stops gets the status
    STACK_STOPPED and is left alone from the next epoch on."""
    cdef Py_ssize_t e, start, first, end, m, i, k, b, ka, g0, g
    cdef const Net* net = nets[0]
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[net.n_layers]
    cdef Py_ssize_t x_size = batch_size * n_in if sp == NULL else 0
    cdef Py_ssize_t per_batch = x_size * (2 if sample_major else 1) + batch_size * n_out
    cdef const floating* A0T = NULL
    # The feature-major copy of a batch is read only by first layers on the hand-written
    # loops and by the packed steps: models on BLAS read the sample-major one (see forward).
    cdef bint feature_major = sp == NULL and (not sample_major or pack_models > 0)
    for k in range(n_models):
        if sp == NULL and not nets[k].blas[0]:
            feature_major = True
    cdef floating* A0
    cdef SparseRows batch
    cdef const SparseRows* batch_ptr = NULL
    cdef floating* ws
    cdef floating* Wb
    cdef const Py_ssize_t* order
    cdef double batch_loss, rate
    cdef bint any_active
    if sp != NULL:
        batch = sp[0]
        batch_ptr = &batch
    for e in range(n_epochs):
        any_active = False
        for k in range(n_models):
            if status[k] == OK:
                any_active = True
                save_state(nets[k], workspaces[k] + nets[k].backup_off, thetas[k],
                           opt_states[k], bn_states[k], False)
                step_at_start[k] = steps[k]
                totals[k] = 0
        if not any_active:
            break
        order = orders + e * n
        first = 0
        while first < n:
            # gather the chunk's batches: batch b at shared + b * per_batch (rows, then targets)
            start = first
            b = 0
            while start < n and b < chunk:
                m = batch_size if start + batch_size <= n else n - start
                A0 = shared + b * per_batch
                if feature_major:
                    gather_rows(X, order + start, 0, m, n_in, A0)
                gather_rows(Y, order + start, 0, m, n_out, A0 + x_size)
                if sample_major:
                    copy_rows(X, order + start, m, n_in, A0 + x_size + batch_size * n_out)
                start += m
                b += 1
            end = start
            if pack_models > 0:
                start = first
                b = 0
                while start < end:
                    m = batch_size if start + batch_size <= n else n - start
                    A0 = shared + b * per_batch
                    ka = 0
                    for k in range(n_models):
                        if status[k] == OK:
                            active[ka] = k
                            ka += 1
                    g0 = 0
                    while g0 < ka:
                        g = min(pack_models, ka - g0)
                        stack_packed_step(nets, active + g0, g, thetas, opt_states, bn_states,
                                          steps, A0, A0 + x_size, m, order + start,
                                          sample_weight, weight_rows, weight_scale, weighted,
                                          n_rows, rates + e * n_models, seeds, workspaces,
                                          losses, pack)
                        for i in range(g):
                            k = active[g0 + i]
                            if isfinite(losses[i]):
                                totals[k] += losses[i]
                            else:
                                save_state(nets[k], workspaces[k] + nets[k].backup_off,
                                           thetas[k], opt_states[k], bn_states[k], True)
                                steps[k] = step_at_start[k]
                                status[k] = NONFINITE_LOSS
                        g0 += g
                    start += m
                    b += 1
                first = end
                continue
            for k in range(n_models):
                if status[k] != OK:
                    continue
                net = nets[k]
                ws = workspaces[k]
                rate = rates[e * n_models + k]
                start = first
                b = 0
                while start < end:
                    m = batch_size if start + batch_size <= n else n - start
                    A0 = shared + b * per_batch
                    # the batch also sample-major, for a first layer on BLAS (see backward)
                    A0T = A0 + x_size + batch_size * n_out if sample_major else NULL
                    if sp != NULL:
                        batch.rows = order + start
                    Wb = NULL
                    if weighted[k]:
                        Wb = ws + net.sw_off
                        for i in range(m):
                            Wb[i] = <floating> (sample_weight[(k % weight_rows) * n_rows
                                                              + order[start + i]] * weight_scale[k])
                    batch_loss = batch_step(net, thetas[k], opt_states[k], bn_states[k],
                                            &steps[k], A0, A0T, batch_ptr, A0 + x_size, Wb, m,
                                            rate, seeds[k], ws)
                    if not isfinite(batch_loss):
                        save_state(net, ws + net.backup_off, thetas[k], opt_states[k],
                                   bn_states[k], True)
                        steps[k] = step_at_start[k]
                        status[k] = NONFINITE_LOSS
                        break
                    totals[k] += batch_loss
                    start += m
                    b += 1
            first = end
        for k in range(n_models):
            if status[k] != OK:
                continue
            net = nets[k]
            status[k] = (
                NONFINITE_PARAMS if not all_finite_ptr(thetas[k], net.n_params) else
                NONFINITE_OPT_STATE if not all_finite_ptr(opt_states[k], net.n_state) else
                NONFINITE_BN_STATE if not all_finite_ptr(bn_states[k], net.bn_state_size)
                else OK)
            if status[k] != OK:
                save_state(net, workspaces[k] + net.backup_off, thetas[k], opt_states[k],
                           bn_states[k], True)
                steps[k] = step_at_start[k]
                continue
            loss_out[e * n_models + k] = totals[k] / n + penalty(net, thetas[k])
            done[k] = e + 1
            if rule_tol != NULL:
                # scikit-learn's _update_no_improvement_count and its two stops.
                batch_loss = loss_out[e * n_models + k]
                if batch_loss > rule_best[k] - rule_tol[k]:
                    rule_count[k] += 1
                else:
                    rule_count[k] = 0
                if batch_loss < rule_best[k]:
                    rule_best[k] = batch_loss
                rule_left[k] -= 1
                if rule_count[k] > rule_patience[k] or rule_left[k] <= 0:
                    status[k] = _STACK_STOPPED
        if fastmlp_sigint_count != interrupt_mark:
            return INTERRUPTED
    return OK


# Bytes of gathered batches the stack keeps at once (see train_stack_nogil): a few batches of
# small inputs, one of wide inputs; well inside the L2 cache next to the models' state.
STACK_CHUNK_BYTES = 64 * 1024

# Most models whose first layers one product takes (see stack_packed_step); 0 or less: no
# packing unless train_stack_epochs is asked for it (packed=True, then two at a time). Off by
# default: on this machine's OpenBLAS the models' own first-layer products already run at the
# matrix product's rate, and the packed ones, too large for its small-matrix kernels, slower.
STACK_PACK_MODELS = 0

# Whether a stack on dense X gathers its batches also sample-major for ``backward``
# (models whose first layer goes to BLAS), unless train_stack_epochs is given packed=False.
STACK_SAMPLE_MAJOR = True


def train_stack_epochs(list networks, floating[:, ::1] thetas, floating[:, ::1] opt_states,
                       floating[:, ::1] bn_states, int64_t[::1] steps,
                       X, const floating[:, ::1] Y,
                       const double[:, ::1] sample_weight, const double[::1] weight_scale,
                       const unsigned char[::1] weighted, const Py_ssize_t[:, ::1] orders,
                       const double[:, ::1] rates, Py_ssize_t batch_size,
                       const uint64_t[::1] seeds, floating[:, ::1] workspaces,
                       double[:, ::1] loss_out, int[::1] status, Py_ssize_t[::1] done,
                       interrupt_mark=None, const double[::1] rule_tol=None,
                       const double[::1] rule_patience=None, double[::1] rule_best=None,
                       double[::1] rule_count=None, Py_ssize_t[::1] rule_left=None,
                       packed=None):
    """Train K models on shared batches for ``len(orders)`` epochs, with the GIL released.

    Model k is described by ``networks[k]`` and owns row k of ``thetas``, ``opt_states``,
    ``bn_states``, ``steps``, ``workspaces``; every model visits ``orders[e]`` (row indices
    into X) in batches of ``batch_size``, as ``train_epochs`` would train it alone, so each ends
    with the parameters it would have had alone (exactly with ``packed=False``; otherwise up to
    the products' rounding, see ``packed``).

    Parameters
    ----------
    networks : list of K Network
        Same input and output widths, parameter count and batch-norm state size; built with
        ``max_batch >= batch_size``. Hyperparameters, activations, dropout, optimizer may differ.
    thetas, opt_states, bn_states : (K, ...) arrays, IN/OUT
        Rows are the models' flat buffers (``opt_states`` at least as wide as the largest
        optimizer state).
    steps : (K,) int64, IN/OUT
    X, Y : (n_rows, ...) arrays, IN
        X may be a ``_sparse.CSR`` instead, of the models' dtype.
    sample_weight : (K, n_rows) or (1, n_rows) float64, or None, IN
        Row k (or the one row), times ``weight_scale[k]``, weighs model k's samples where
        ``weighted[k]``.
    weight_scale : (K,) float64; weighted : (K,) uint8
    orders : (n_epochs, n) int, IN
    rates : (n_epochs, K) float64, IN
    batch_size : int
    seeds : (K,) uint64
        Dropout seeds.
    workspaces : (K, >= max workspace_size) arrays, scratch
    loss_out : (n_epochs, K) float64, OUT
    status : (K,) int32, IN/OUT
        Models whose status is not OK are left alone; a model that diverges gets
        NONFINITE_LOSS, NONFINITE_PARAMS, NONFINITE_OPT_STATE or NONFINITE_BN_STATE, its
        buffers restored to the start of that epoch.
    done : (K,) intp, OUT
        Epochs each model finished in this call.
    interrupt_mark : int or None
        As for ``train_epochs``.
    rule_tol, rule_patience, rule_best, rule_count : (K,) float64, optional
        scikit-learn's stopping rule on the training loss, run after each epoch of model k:
        ``rule_count[k]`` (IN/OUT) grows by one when the epoch's loss exceeds
        ``rule_best[k] - rule_tol[k]`` and is reset to 0 otherwise, ``rule_best[k]`` (IN/OUT)
        keeps the lowest loss; the model stops (status ``STACK_STOPPED``) once
        ``rule_count[k] > rule_patience[k]``. Give all five rule arrays or none.
    rule_left : (K,) intp, optional, IN/OUT
        Epochs model k may still train (``max_iter`` minus those done); it stops at 0.
    packed : bool or None
        How the models' first layers run. False: every model takes exactly ``batch_step``'s
        steps, as ``train_epochs`` alone. None (default): on dense X, the models whose first
        layer goes to BLAS take its weight gradient from the batch also gathered sample-major
        (see ``backward``) and, where ``STACK_PACK_MODELS`` > 0 and possible (two or more models whose first
        layers are hidden, of one width, on BLAS, without batch normalization), the first
        layers run as one product per batch (``stack_packed_step``, at most
        ``STACK_PACK_MODELS`` models at once). True: packed (ValueError where impossible).
        Both change the products' rounding (about 1e-16 relative), nothing else.

    Returns
    -------
    int
        INTERRUPTED when Ctrl-C was caught (see ``catch_interrupts``), else OK.
    """
    cdef Py_ssize_t K = len(networks), k, n = orders.shape[1], n_epochs = orders.shape[0]
    cdef Py_ssize_t per_batch, chunk, pack_models = 0, h
    cdef floating* pack = NULL
    cdef Py_ssize_t* active = NULL
    cdef double* pack_losses = NULL
    cdef Py_ssize_t n_rows = X.shape[0], n_in = X.shape[1], n_out = Y.shape[1]
    cdef Network first, network
    cdef int result = OK
    cdef bint in_range = True
    cdef int mark = fastmlp_sigint_count if interrupt_mark is None else interrupt_mark
    cdef SparseRows sp
    cdef bint sparse, sample_major
    cdef const floating[:, ::1] Xd = None
    if K == 0:
        raise ValueError("a stack needs at least one model")
    first = networks[0]
    sparse = _bind_input(first, X, floating is float, &sp)
    if not sparse:
        Xd = X
    for arr_rows, name in ((thetas.shape[0], "thetas"), (opt_states.shape[0], "opt_states"),
                           (bn_states.shape[0], "bn_states"), (steps.shape[0], "steps"),
                           (seeds.shape[0], "seeds"), (workspaces.shape[0], "workspaces"),
                           (status.shape[0], "status"), (done.shape[0], "done"),
                           (weight_scale.shape[0], "weight_scale"),
                           (weighted.shape[0], "weighted"), (rates.shape[1], "rates' columns"),
                           (loss_out.shape[1], "loss_out's columns")):
        if arr_rows != K:
            raise ValueError(f"{name} must have one entry per model ({K}); got {arr_rows}")
    for network in networks:
        if (network.sizes[0] != n_in or network.sizes[len(network.sizes) - 1] != n_out
                or network.n_params != thetas.shape[1] or network.n_state > opt_states.shape[1]
                or network.bn_state_size != bn_states.shape[1]
                or network.workspace_size > workspaces.shape[1]
                or network.max_batch < batch_size):
            raise ValueError("every network must fit X, Y and the stacked buffers, with "
                             "max_batch >= batch_size")
    if Y.shape[0] != n_rows or rates.shape[0] < n_epochs or loss_out.shape[0] < n_epochs:
        raise ValueError("Y needs X's rows; rates and loss_out one row per epoch of orders")
    if sample_weight is not None and (sample_weight.shape[0] not in (1, K)
                                      or sample_weight.shape[1] != n_rows):
        raise ValueError(f"sample_weight must have shape ({K}, {n_rows}) or (1, {n_rows})")
    if sample_weight is None:
        for k in range(K):
            if weighted[k]:
                raise ValueError("weighted models need sample_weight")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    cdef int n_rule = ((rule_tol is not None) + (rule_patience is not None)
                       + (rule_best is not None) + (rule_count is not None)
                       + (rule_left is not None))
    if n_rule and (n_rule != 5 or rule_tol.shape[0] != K or rule_patience.shape[0] != K
                   or rule_best.shape[0] != K or rule_count.shape[0] != K
                   or rule_left.shape[0] != K):
        raise ValueError(f"the stopping rule needs rule_tol, rule_patience, rule_best, "
                         f"rule_count and rule_left, each of {K} entries")
    if n_epochs == 0 or n == 0:
        return OK
    with nogil:
        in_range = indices_in_range(&orders[0, 0], n_epochs * n, n_rows)
    if not in_range:
        raise ValueError(f"orders must hold row indices in [0, {n_rows})")
    nets = <const Net**> malloc(K * sizeof(Net*))
    theta_p = <floating**> malloc(K * sizeof(floating*))
    opt_p = <floating**> malloc(K * sizeof(floating*))
    bn_p = <floating**> malloc(K * sizeof(floating*))
    ws_p = <floating**> malloc(K * sizeof(floating*))
    seeds_p = <uint64_t*> malloc(K * sizeof(uint64_t))
    step_at_start = <int64_t*> malloc(K * sizeof(int64_t))
    totals = <double*> malloc(K * sizeof(double))
    sample_major = (not sparse and (packed is None or packed) and STACK_SAMPLE_MAJOR
                    and any((<Network> network).blas[0] for network in networks))
    per_batch = batch_size * ((0 if sparse else n_in) * (2 if sample_major else 1) + n_out)
    chunk = max(1, min((n + batch_size - 1) // batch_size,
                       STACK_CHUNK_BYTES // (per_batch * sizeof(floating))))
    shared = <floating*> malloc(chunk * per_batch * sizeof(floating))
    try:
        if (nets == NULL or theta_p == NULL or opt_p == NULL or bn_p == NULL or ws_p == NULL
                or seeds_p == NULL or step_at_start == NULL or totals == NULL or shared == NULL):
            raise MemoryError()
        for k in range(K):
            network = networks[k]
            nets[k] = &network.net
            theta_p[k] = &thetas[k, 0]
            opt_p[k] = &opt_states[k, 0] if opt_states.shape[1] else NULL
            bn_p[k] = &bn_states[k, 0] if bn_states.shape[1] else NULL
            ws_p[k] = &workspaces[k, 0]
            seeds_p[k] = seeds[k]
            done[k] = 0
        if packed is None or packed:
            if not sparse and stack_packable(nets, K) and (packed or STACK_PACK_MODELS > 0):
                pack_models = min(K, max(2, <Py_ssize_t> STACK_PACK_MODELS))
            elif packed:
                raise ValueError("packed=True needs dense X and two or more models whose first "
                                 "layers are hidden, of one width, on BLAS, without batch "
                                 "normalization")
        if pack_models > 0:
            h = first.sizes[1]
            pack = <floating*> malloc(pack_models * h * (n_in + batch_size) * sizeof(floating))
            active = <Py_ssize_t*> malloc(K * sizeof(Py_ssize_t))
            pack_losses = <double*> malloc(pack_models * sizeof(double))
            if pack == NULL or active == NULL or pack_losses == NULL:
                raise MemoryError()
        with nogil:
            result = train_stack_nogil(
                nets, K, theta_p, opt_p, bn_p, &steps[0], NULL if sparse else &Xd[0, 0],
                &sp if sparse else NULL, &Y[0, 0],
                NULL if sample_weight is None else &sample_weight[0, 0],
                1 if sample_weight is None else sample_weight.shape[0], &weight_scale[0],
                &weighted[0], n_rows, &orders[0, 0], n, &rates[0, 0], n_epochs, batch_size,
                chunk, seeds_p, ws_p, shared, &loss_out[0, 0], &status[0], &done[0],
                step_at_start, totals, mark, NULL if rule_tol is None else &rule_tol[0],
                NULL if rule_tol is None else &rule_patience[0],
                NULL if rule_tol is None else &rule_best[0],
                NULL if rule_tol is None else &rule_count[0],
                NULL if rule_tol is None else &rule_left[0], pack_models, pack, active,
                pack_losses, sample_major)
    finally:
        free(nets); free(theta_p); free(opt_p); free(bn_p); free(ws_p); free(seeds_p)
        free(step_at_start); free(totals); free(shared); free(pack); free(active)
        free(pack_losses)
    return result
