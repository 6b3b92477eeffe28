"""The engine: the one place that drives the training kernels, for every face.

``MLP.train``, the scikit-learn estimators and any later face hand the engine a model, the
checked data, and three things only they know: the order in which each epoch visits the rows,
the learning rate of each epoch, and how many epochs may run before Python must look again (a
stopping rule, a validation pass, a progress line). The engine owns everything else about a
fit: the workspace (allocated once), the bounded buffers of orders and losses, the BLAS thread
limit, Ctrl-C, and what happens when training diverges.

The kernel call is ``_train.train_epochs``; it runs a block of epochs with the GIL released.
Nothing here does per-batch arithmetic.
"""
import contextlib
import threading

import numpy as np
import scipy.sparse

from . import _threads
from ._kernels import _sparse, _train

__all__ = ["TrainingDiverged", "EpochRunner", "MAX_ORDER_ENTRIES"]

# Largest number of sample indices handed to one kernel call: bounds the order buffer whatever
# the number of epochs.
MAX_ORDER_ENTRIES = 1 << 13


class TrainingDiverged(ValueError):
    """Training produced a NaN or infinite loss or parameter.

    Attributes
    ----------
    epoch : int
        The epoch (from 1, counted over the runner's life) in which it happened; the model
        keeps the state of the end of epoch ``epoch - 1``.
    what : str
        "loss" or "weights".
    rate : float
        The learning rate of that epoch.
    """

    def __init__(self, message, epoch, what, rate):
        super().__init__(message)
        self.epoch, self.what, self.rate = epoch, what, rate


class EpochRunner:
    """Runs blocks of epochs of one model on one training set.

    Use it as a context manager: entering takes the BLAS thread limit and, in the main thread,
    the Ctrl-C handler; leaving gives both back however the block of code ends.

    Parameters
    ----------
    model : fastmlp.MLP
        Its ``params``, ``_opt_state``, ``bn_state`` and ``_step`` are trained in place.
    X : ndarray (n_rows, n_features), C-contiguous, the model's dtype, or scipy.sparse CSR
        A sparse X (values of the model's dtype, as ``MLP._check_X`` returns it) is used
        without copying: the kernels read its rows' non-zeros (see ``_kernels/_sparse.pyx``).
    Y : ndarray (n_rows, n_outputs), C-contiguous, the model's dtype
    sample_weight : ndarray (n_rows,) or None
        Already normalized by the caller.
    batch_size : int
        Rows per gradient step, at most the number of rows an epoch visits.
    dropout_seed : int
        Seed of the dropout masks (0 when there is no dropout).
    """

    def __init__(self, model, X, Y, sample_weight, batch_size, dropout_seed):
        self.model = model
        if scipy.sparse.issparse(X):
            X = _sparse.CSR(X)
        self.X, self.Y, self.w = X, Y, sample_weight
        self.batch_size = batch_size
        self.seed = dropout_seed
        self.net = model._network(batch_size, sparse_input=isinstance(X, _sparse.CSR))
        self.workspace = np.empty(self.net.workspace_size, dtype=model.dtype)
        self.epochs_done = 0
        self.interrupted = False
        self._cleanup = None

    def __enter__(self):
        self._cleanup = contextlib.ExitStack()
        self._cleanup.enter_context(
            _threads.blas_threads(self.model._blas_work(self.batch_size)))
        if threading.current_thread() is threading.main_thread() and _train.catch_interrupts():
            self._cleanup.callback(_train.release_interrupts)
        return self

    def __exit__(self, *exc_info):
        cleanup, self._cleanup = self._cleanup, None
        return cleanup.__exit__(*exc_info)

    def epochs_per_call(self, n_visit):
        """The most epochs one kernel call may take so that its orders fit the buffer bound."""
        return max(1, MAX_ORDER_ENTRIES // max(1, n_visit))

    def run(self, orders, rates, losses_out):
        """Train ``len(orders)`` epochs, epoch ``e`` visiting the rows ``orders[e]`` at rate
        ``rates[e]``; write each epoch's loss into ``losses_out[e]``.

        Returns the number of epochs done: all of them, or fewer when Ctrl-C stopped training
        (``self.interrupted`` is then True and the model keeps the last epoch's weights).

        Raises
        ------
        TrainingDiverged
            When the loss or the weights became non-finite; the model is back at the state of
            the end of the last finite epoch.
        """
        m = self.model
        status, done = _train.train_epochs(
            self.net, m.params, m._opt_state, m.bn_state, m._step, self.X, self.Y, self.w,
            orders, rates, self.batch_size, self.seed, self.workspace, losses_out)
        self.epochs_done += done
        if status in (_train.Status.NONFINITE_LOSS, _train.Status.NONFINITE_PARAMS):
            what = "loss" if status == _train.Status.NONFINITE_LOSS else "weights"
            epoch = self.epochs_done + 1
            raise TrainingDiverged(
                f"training diverged in epoch {epoch}: the {what} became NaN or infinite. The "
                f"model keeps the state of the end of epoch {epoch - 1}. Lower the learning "
                f"rate (now {rates[done]:g}), clip gradients or standardize X.",
                epoch, what, float(rates[done]))
        if status == _train.Status.INTERRUPTED:
            self.interrupted = True
        return done


class StackRunner(EpochRunner):
    """Runs blocks of epochs of a stack of K models on shared batches (``fastmlp.stack``).

    As ``EpochRunner`` for the thread limit and Ctrl-C. A model that diverges leaves the stack
    without stopping the others: ``diverged`` maps its index to the message, and its buffers
    hold the state of the end of its last finite epoch. A caller's stopping rule takes a model
    out between two calls with ``stop(k)``: its status becomes ``STOPPED`` and the kernel
    leaves it alone (the kernel trains only models whose status is OK).
    """

    # Status of a model that the caller stopped (not one of the kernel's statuses).
    STOPPED = 16
    # The kernel's statuses of a model that diverged: every one but OK and INTERRUPTED.
    NONFINITE = [int(s) for s in _train.Status
                 if s not in (_train.Status.OK, _train.Status.INTERRUPTED)]

    def __init__(self, stack, X, Y, sample_weight, weight_scale, weighted, batch_size, seeds,
                 n_threads=1):
        models = stack._models
        self.n_threads = n_threads
        self.stack = stack
        self.model = models[0]
        if scipy.sparse.issparse(X):
            X = _sparse.CSR(X)
        self.X, self.Y, self.w = X, Y, sample_weight
        self.weight_scale, self.weighted = weight_scale, weighted
        self.batch_size = batch_size
        self.seeds = seeds
        self.nets = [m._network(batch_size, sparse_input=isinstance(X, _sparse.CSR))
                     for m in models]
        width = max(net.workspace_size for net in self.nets)
        self.workspaces = np.empty((len(models), width), dtype=self.model.dtype)
        self.status = np.full(len(models), int(_train.Status.OK), dtype=np.intc)
        self.epochs_done = np.zeros(len(models), dtype=np.intp)
        self.diverged = {}
        self.interrupted = False
        self._cleanup = None

    def active(self):
        """Whether any model is still training."""
        return bool(np.any(self.status == _train.Status.OK))

    def stop(self, k):
        """Take model ``k`` out of training: later calls leave its buffers alone."""
        if self.status[k] == _train.Status.OK:
            self.status[k] = self.STOPPED

    def run(self, orders, rates, losses_out):
        """Train ``len(orders)`` epochs at ``rates[e, k]`` for model k; return each model's
        number of epochs done in this call (shape (K,)).

        The models are split into ``self.n_threads`` contiguous groups, each trained by its own
        kernel call in its own thread (the kernel releases the GIL); a model's arithmetic does
        not depend on its group, so the results do not depend on the thread count."""
        s = self.stack
        K = len(self.nets)
        done = np.zeros(K, dtype=np.intp)
        bounds = np.linspace(0, K, min(self.n_threads, K) + 1).astype(int)
        results = [None] * (len(bounds) - 1)
        errors = []

        def train_group(g):
            try:
                _train_group(g)
            except BaseException as error:      # raised in the caller's thread below
                errors.append(error)

        def _train_group(g):
            a, b = bounds[g], bounds[g + 1]
            w = self.w if self.w is None or self.w.shape[0] == 1 else self.w[a:b]
            results[g] = _train.train_stack_epochs(
                self.nets[a:b], s.params[a:b], s.opt_state[a:b], s.bn_state[a:b],
                s.steps[a:b], self.X, self.Y, w, self.weight_scale[a:b], self.weighted[a:b],
                orders, rates[:, a:b].copy(), self.batch_size, self.seeds[a:b],
                self.workspaces[a:b], losses_view[g], self.status[a:b], done[a:b])

        losses_view = [np.empty((len(orders), bounds[g + 1] - bounds[g]))
                       for g in range(len(bounds) - 1)]
        if len(results) == 1:
            _train_group(0)
        else:
            workers = [threading.Thread(target=train_group, args=(g,))
                       for g in range(1, len(results))]
            for worker in workers:
                worker.start()
            try:
                train_group(0)
            finally:
                for worker in workers:
                    worker.join()
            if errors:
                raise errors[0]
        for g in range(len(results)):
            losses_out[:len(orders), bounds[g]:bounds[g + 1]] = losses_view[g]
        for k in np.flatnonzero(np.isin(self.status, self.NONFINITE)):
            if k not in self.diverged:
                what = "loss" if self.status[k] == _train.Status.NONFINITE_LOSS else "weights"
                epoch = int(self.epochs_done[k] + done[k] + 1)
                self.diverged[int(k)] = (
                    f"model {k} diverged in epoch {epoch}: the {what} became NaN or infinite; "
                    f"it keeps the state of the end of epoch {epoch - 1}")
        self.epochs_done += done
        if any(r == _train.Status.INTERRUPTED for r in results):
            self.interrupted = True
        return done
