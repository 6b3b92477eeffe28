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
from ._kernels._dense import ACTIVATION_IDS

__all__ = ["TrainingDiverged", "EpochRunner", "StackRunner", "MAX_ORDER_ENTRIES",
           "interrupt_count", "check_state_finite", "draws_in_kernel"]

# Largest number of sample indices handed to one kernel call: bounds the order buffer whatever
# the number of epochs.
MAX_ORDER_ENTRIES = 1 << 13


# Whether the kernel's draw of the batch orders (``_train.shuffle_rows``, NumPy's shuffle written
# again) reproduces this NumPy's own, by the generator's class: checked once per process, at first
# use, against NumPy itself. A NumPy whose shuffle draws differently some day gets False, and the
# faces then draw the orders with NumPy as before (bit-identical either way).
_KERNEL_DRAWS = {}
# Sizes of the check: the edge cases, both sides of powers of two (the mask of the rejection
# sampling); drawn in turn from one seeded stream, then three epochs of 140.
_CHECK_SIZES = (1, 2, 3, 5, 8, 9, 33, 257)


def draws_in_kernel(generator):
    """Whether ``EpochRunner.run`` may draw the orders from ``generator`` in the kernel.

    True for a ``numpy.random.Generator`` or ``RandomState`` (exactly those classes; a subclass
    may shuffle otherwise) when the kernel's shuffle was found, once per process, to give what
    this NumPy's ``permutation`` gives and to leave the generator in the same state.
    """
    kind = type(generator)
    ok = _KERNEL_DRAWS.get(kind)
    if ok is None:
        ok = _KERNEL_DRAWS[kind] = _kernel_draws_match(kind)
    return ok


def _kernel_draws_match(kind):
    """The check of ``draws_in_kernel`` for one class (False for any other class): orders of
    every size of ``_CHECK_SIZES`` and three epochs' orders as the faces draw them (the next
    epochs at once with ``Generator.permuted``; scikit-learn's composed shuffles with a
    ``RandomState``), then the same next draws."""
    if kind is np.random.Generator:
        ours, numpys = np.random.default_rng(20260), np.random.default_rng(20260)
    elif kind is np.random.RandomState:
        ours, numpys = (np.random.RandomState(np.random.MT19937(20260)),
                        np.random.RandomState(np.random.MT19937(20260)))
    else:
        return False
    try:
        drawn = [_train.shuffle_rows(ours, n, 1).ravel() for n in _CHECK_SIZES]
        expected = [numpys.permutation(n) for n in _CHECK_SIZES]
        base = np.arange(140, dtype=np.intp)
        if kind is np.random.Generator:
            drawn.append(_train.shuffle_rows(ours, base, 3).ravel())
            expected.append(numpys.permuted(np.tile(base, (3, 1)), axis=1).ravel())
        else:
            drawn.append(_train.shuffle_rows(ours, base, 3, carry=True).ravel())
            for _ in range(3):
                base = base[numpys.permutation(140)]
                expected.append(base)
        # The generators in the same state: the same next 32-bit draws (a Generator's PCG64
        # may hold half of a 64-bit draw back for the next one).
        drawn.append(ours.integers(0, 2**32, size=4, dtype=np.uint32) if kind is
                     np.random.Generator else ours.randint(0, 2**32, size=4, dtype=np.uint32))
        expected.append(numpys.integers(0, 2**32, size=4, dtype=np.uint32) if kind is
                        np.random.Generator
                        else numpys.randint(0, 2**32, size=4, dtype=np.uint32))
        return bool(np.array_equal(np.concatenate(drawn, dtype=np.int64),
                                   np.concatenate(expected, dtype=np.int64)))
    except Exception:       # a NumPy without the bit generators' C interface
        return False


# What diverged, by the kernel's status.
_DIVERGED = {_train.Status.NONFINITE_LOSS: "loss",
             _train.Status.NONFINITE_PARAMS: "weights",
             _train.Status.NONFINITE_OPT_STATE: "optimizer state",
             _train.Status.NONFINITE_BN_STATE: "batch-norm running statistics"}


def interrupt_count():
    """How many Ctrl-C presses fastmlp has caught so far.

    A face that runs several fits as one task (a search over hyperparameters) notes it when the
    task starts and passes it as ``EpochRunner(..., interrupt_mark=...)``, so that one Ctrl-C
    stops the fits of the task that start later too.
    """
    return _train.interrupt_count()


class TrainingDiverged(ValueError):
    """Training produced a NaN or infinite value.

    The check runs at the end of every epoch over everything training writes (the loss, the
    parameters, the optimizer's state, the batch-norm running statistics) and at the end of the
    fit over the network's outputs on the training rows. After it the model holds the state of
    the end of epoch ``epoch - 1`` (its start, for ``epoch == 1``): parameters, optimizer state,
    running statistics and step count, every one of them finite.

    Attributes
    ----------
    epoch : int
        The epoch (from 1, counted over the runner's life) in which it happened.
    what : str
        "loss", "weights", "optimizer state", "batch-norm running statistics" or "outputs".
    rate : float
        The learning rate of that epoch.
    """

    def __init__(self, message, epoch, what, rate):
        super().__init__(message)
        self.epoch, self.what, self.rate = epoch, what, rate


class EpochRunner:
    """Runs blocks of epochs of one model on one training set.

    Use it as a context manager: entering takes the model's lock (``model._lock``, when it has
    one), the BLAS thread limit and a share of the Ctrl-C handler, from any thread; leaving
    gives them back however the block of code ends. When the block ends normally after at least
    one epoch (and no ``TrainingDiverged``), leaving also checks that the network's outputs on
    the training rows are finite (see ``TrainingDiverged``).

    Ctrl-C stops the runner at the end of the epoch in which it was pressed, if the press came
    after ``interrupt_mark`` (by default: after the runner was entered), whatever thread runs it
    and however many fits run at once or inside one another.

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
    interrupt_mark : int or None
        ``interrupt_count()`` when the task this fit belongs to began; None: when the runner
        is entered.
    x_bound : float or None
        max |X| when the caller already has it (``MLP._check_X_bound``) and X cannot change
        while the runner runs; None: computed when the outputs check needs it.

    Raises
    ------
    ValueError
        If the model's parameters, optimizer state or running statistics already hold a NaN
        or an infinity (written into them in place): training from them would be meaningless.
    """

    # Whether entering takes ``model._lock`` (a stack's runner does not, see StackRunner).
    takes_model_lock = True

    def __init__(self, model, X, Y, sample_weight, batch_size, dropout_seed,
                 interrupt_mark=None, x_bound=None):
        self.model = model
        if scipy.sparse.issparse(X):
            X = _sparse.CSR(X)
        self.X, self.Y, self.w = X, Y, sample_weight
        self.batch_size = batch_size
        self.seed = dropout_seed
        check_state_finite(model)
        self.net = model._network(batch_size, sparse_input=isinstance(X, _sparse.CSR))
        self.workspace = np.empty(self.net.workspace_size, dtype=model.dtype)
        self.epochs_done = 0
        self.interrupted = False
        self.diverged = False
        self.interrupt_mark = interrupt_mark
        self._steps_per_epoch = 0
        self._x_bound = x_bound     # max |X|, for outputs_provably_finite
        self._cleanup = None

    def __enter__(self):
        self._cleanup = contextlib.ExitStack()
        with self._cleanup as cleanup:
            lock = getattr(self.model, "_lock", None) if self.takes_model_lock else None
            if lock is not None:
                cleanup.enter_context(lock)
            cleanup.enter_context(_threads.blas_threads(self.model._blas_work(self.batch_size)))
            if _train.catch_interrupts():
                cleanup.callback(_train.release_interrupts)
            if self.interrupt_mark is None:
                self.interrupt_mark = _train.interrupt_count()
            self._cleanup = cleanup.pop_all()
        return self

    def __exit__(self, *exc_info):
        cleanup, self._cleanup = self._cleanup, None
        with cleanup:
            if exc_info[0] is None:
                self._check_outputs()
        return False

    def _check_outputs(self):
        """TrainingDiverged, with the state of the start of the last epoch restored, when the
        network's outputs on the training rows are not all finite: the last updates can make
        them overflow while every parameter stays finite."""
        m = self.model
        if not self.epochs_done or self.diverged:
            return
        if _proof_pays(m, self.X):
            if self._x_bound is None:
                self._x_bound = _max_abs(self.X)
            proved = outputs_provably_finite(m, self._x_bound)
        else:
            proved = False
        if proved or _train.outputs_finite(self.net, m.params, m.bn_state, self.X,
                                           self.workspace):
            return
        _train.restore_epoch_start(self.net, m.params, m._opt_state, m.bn_state, self.workspace)
        m._step[0] -= self._steps_per_epoch
        epoch = self.epochs_done
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: the network's outputs on the training data "
            f"became NaN or infinite although every weight is finite. The model keeps the state "
            f"of the end of epoch {epoch - 1}. Lower the learning rate, clip gradients or "
            f"standardize X.", epoch, "outputs", float(self._last_rate))

    def epochs_per_call(self, n_visit):
        """The most epochs one kernel call may take so that its orders fit the buffer bound
        (for a 2-D ``orders``; an order drawn in the kernel needs no buffer)."""
        return max(1, MAX_ORDER_ENTRIES // max(1, n_visit))

    def run(self, orders, rates, losses_out, generator=None, carry=False):
        """Train ``len(rates)`` epochs at rate ``rates[e]`` in epoch ``e``; write each epoch's
        loss into ``losses_out[e]``.

        ``orders`` is either 2-D, ``(len(rates), n_visit)``: epoch ``e`` visits the rows
        ``orders[e]``; or 1-D, ``(n_visit,)``, a base order: every epoch visits it or, with a
        ``generator`` (a ``numpy.random.Generator``, ``RandomState`` or bit generator), an
        order that the kernel draws from it at the epoch's start, as NumPy's shuffle draws it
        (see ``_train.shuffle_rows``): the base order shuffled (for ``arange(n)``: the next
        ``generator.permutation(n)``), or with ``carry`` the previous epoch's order shuffled
        again, and then ``orders`` receives the last epoch's order (to carry into the next
        call; scikit-learn's ``sample_idx = shuffle(sample_idx)``). Check the generator with
        ``draws_in_kernel`` first. The generator advances only for the epochs begun.

        Returns the number of epochs done: all of them, or fewer when Ctrl-C stopped training
        (``self.interrupted`` is then True and the model keeps the last epoch's weights).

        Raises
        ------
        TrainingDiverged
            When the loss, the weights, the optimizer state or the running statistics became
            non-finite; the model is back at the state of the end of the last finite epoch.
        """
        m = self.model
        if _train.interrupt_count() != self.interrupt_mark:   # pressed between two calls
            self.interrupted = True
            return 0
        if orders.ndim == 1:
            status, done = _train.train_epochs(
                self.net, m.params, m._opt_state, m.bn_state, m._step, self.X, self.Y, self.w,
                orders.reshape(1, -1), rates, self.batch_size, self.seed, self.workspace,
                losses_out, self.interrupt_mark, len(rates), generator, carry,
                orders if carry and generator is not None else None)
        else:
            status, done = _train.train_epochs(
                self.net, m.params, m._opt_state, m.bn_state, m._step, self.X, self.Y, self.w,
                orders, rates, self.batch_size, self.seed, self.workspace, losses_out,
                self.interrupt_mark)
        self.epochs_done += done
        if done:
            self._steps_per_epoch = -(-orders.shape[-1] // self.batch_size)
            self._last_rate = rates[done - 1]
        if status in _DIVERGED:
            self.diverged = True
            what = _DIVERGED[status]
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
    leaves it alone (the kernel trains only models whose status is OK); scikit-learn's rule on
    the training loss can also run inside the kernel, after every epoch (``run``'s ``rule``).

    The stack gives ``_models`` (the structure of model k: its sizes, activations, dtype; the
    values are read from row k of ``params`` and ``bn_state``), the row buffers ``params``,
    ``opt_state``, ``bn_state``, ``steps`` and ``diverged_``, and may give ``_nets``, the
    models' kernel networks, built beforehand (the search shares them between folds). No
    model's lock is taken: the rows are the stack's own.
    """

    # Without a model's lock: the stack's buffers are its own (the search's stacks share
    # template networks between threads, which must not serialize them).
    takes_model_lock = False

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
        # A stack may give its networks (the search's, built once per candidate and shared by
        # its folds); else one per model.
        nets = getattr(stack, "_nets", None)
        self.nets = list(nets) if nets is not None else [
            m._network(batch_size, sparse_input=isinstance(X, _sparse.CSR)) for m in models]
        width = max(net.workspace_size for net in self.nets)
        self.workspaces = np.empty((len(models), width), dtype=self.model.dtype)
        self.status = np.full(len(models), int(_train.Status.OK), dtype=np.intc)
        K = len(models)
        self._bounds = np.linspace(0, K, min(n_threads, K) + 1).astype(int).tolist()
        self.epochs_done = np.zeros(len(models), dtype=np.intp)
        self.diverged = {}
        self.interrupted = False
        self.interrupt_mark = None
        self._steps_per_epoch = 0
        self._cleanup = None

    class _RowModel:
        """A stack's model k as ``outputs_provably_finite`` reads it (``_row_model``)."""

    def _row_model(self, k):
        """Model k's structure with W, b, gamma, beta and running statistics as views of row
        k of the stack's buffers (what ``outputs_provably_finite`` reads)."""
        s, net, m = self.stack, self.nets[k], self.stack._models[k]
        params, bn = s.params[k], s.bn_state[k]
        sizes = [int(n) for n in net.sizes]
        widths = [(n,) for n in sizes[1:-1]]

        def views(buffer, offsets, shapes):
            return [buffer[o:o + int(np.prod(shape))].reshape(shape) if o >= 0 else None
                    for o, shape in zip(offsets, shapes)]

        row = self._RowModel()
        row.W = views(params, net.w_off, list(zip(sizes[:-1], sizes[1:])))
        row.b = views(params, net.b_off, [(n,) for n in sizes[1:]])
        row.gamma = views(params, net.g_off, widths)
        row.beta = views(params, net.be_off, widths)
        row.running_mean = views(bn, net.rm_off, widths)
        row.running_var = views(bn, net.rv_off, widths)
        row.batch_norm, row._act_ids, row._act_params = m.batch_norm, m._act_ids, m._act_params
        row.dtype = m.dtype
        return row

    def _check_outputs(self):
        """As ``EpochRunner``'s, model by model: a model whose outputs on the training rows are
        not all finite goes back to the start of its last epoch and joins ``diverged`` (and
        the stack's ``diverged_``); the others are left alone."""
        s = self.stack
        x_bound = None
        for k, net in enumerate(self.nets):
            if k in self.diverged or not self.epochs_done[k]:
                continue
            proved = False
            # (model k's structure: a search's template; its values: row k, _row_model)
            if _proof_pays(s._models[k], self.X):
                x_bound = _max_abs(self.X) if x_bound is None else x_bound
                proved = outputs_provably_finite(self._row_model(k), x_bound)
            if proved or _train.outputs_finite(net, s.params[k], s.bn_state[k], self.X,
                                               self.workspaces[k]):
                continue
            _train.restore_epoch_start(net, s.params[k], s.opt_state[k, :net.n_state],
                                       s.bn_state[k], self.workspaces[k])
            s.steps[k] -= self._steps_per_epoch
            epoch = int(self.epochs_done[k])
            self.diverged[k] = s.diverged_[k] = (
                f"model {k} diverged in epoch {epoch}: its outputs on the training data became "
                f"NaN or infinite; it keeps the state of the end of epoch {epoch - 1}")

    def active(self):
        """Whether any model is still training."""
        return bool(np.any(self.status == _train.Status.OK))

    def stop(self, k):
        """Take model ``k`` out of training: later calls leave its buffers alone."""
        if self.status[k] == _train.Status.OK:
            self.status[k] = self.STOPPED

    def run(self, orders, rates, losses_out, rule=None):
        """Train ``len(orders)`` epochs at ``rates[e, k]`` for model k; return each model's
        number of epochs done in this call (shape (K,)).

        The models are split into ``self.n_threads`` contiguous groups, each trained by its own
        kernel call in its own thread (the kernel releases the GIL); a model's arithmetic does
        not depend on its group, so the results do not depend on the thread count.

        ``rule``: None, or the five (K,) arrays ``(tol, patience, best, count, left)`` of
        scikit-learn's stopping rule on the training loss, run by the kernel after every epoch
        (see ``_train.train_stack_epochs``; ``best``, ``count`` and ``left`` are updated): a
        model it stops gets the status ``STOPPED`` within the call."""
        rule = () if rule is None else tuple(rule)
        s = self.stack
        K = len(self.nets)
        done = np.zeros(K, dtype=np.intp)
        if _train.interrupt_count() != self.interrupt_mark:   # pressed between two calls
            self.interrupted = True
            return done
        bounds = self._bounds
        results = [None] * (len(bounds) - 1)
        errors = []
        if len(results) == 1:
            # One kernel call on the caller's buffers (C-contiguous rows of epochs).
            if not rates.flags.c_contiguous:
                rates = np.ascontiguousarray(rates)
            out = (losses_out if losses_out.flags.c_contiguous and losses_out.shape[1] == K
                   else np.empty((len(orders), K)))
            results[0] = _train.train_stack_epochs(
                self.nets, s.params, s.opt_state, s.bn_state, s.steps, self.X, self.Y, self.w,
                self.weight_scale, self.weighted, orders, rates, self.batch_size, self.seeds,
                self.workspaces, out, self.status, done, self.interrupt_mark, *rule)
            if out is not losses_out:
                losses_out[:len(orders)] = out
            return self._after_run(done, orders, results)

        def train_group(g):
            try:
                # In a worker thread this counts as one more fit for the thread policy.
                with _threads.blas_threads(self.model._blas_work(self.batch_size)):
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
                self.workspaces[a:b], losses_view[g], self.status[a:b], done[a:b],
                self.interrupt_mark, *(r[a:b] for r in rule))

        losses_view = [np.empty((len(orders), bounds[g + 1] - bounds[g]))
                       for g in range(len(bounds) - 1)]
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
        return self._after_run(done, orders, results)

    def _after_run(self, done, orders, results):
        status = self.status
        for k in np.flatnonzero((status != _train.Status.OK) & (status != self.STOPPED)
                                & (status != _train.Status.INTERRUPTED)):
            if k not in self.diverged:
                what = _DIVERGED[int(self.status[k])]
                epoch = int(self.epochs_done[k] + done[k] + 1)
                self.diverged[int(k)] = (
                    f"model {k} diverged in epoch {epoch}: the {what} became NaN or infinite; "
                    f"it keeps the state of the end of epoch {epoch - 1}")
        self.epochs_done += done
        self._steps_per_epoch = -(-orders.shape[1] // self.batch_size)
        if any(r == _train.Status.INTERRUPTED for r in results):
            self.interrupted = True
        return done


def check_state_finite(model):
    """ValueError unless every entry of the model's parameters, optimizer state and batch-norm
    running statistics is finite."""
    for name, buffer in (("params", model.params), ("optimizer state", model._opt_state),
                         ("bn_state", model.bn_state)):
        if buffer.size and not _train.all_finite(buffer.reshape(1, -1)):
            raise ValueError(f"the model's {name} holds NaN or infinity (written into it in "
                             f"place?); training from it is meaningless. Write finite values "
                             f"into it or build a new model")


# |f(z)| <= slope * |z| + offset for every hidden activation (parameter p where it has one),
# so that a bound on a layer's inputs bounds its outputs.
_GROWTH = {"identity": lambda p: (1.0, 0.0), "relu": lambda p: (1.0, 0.0),
           "leaky_relu": lambda p: (max(1.0, abs(p)), 0.0), "elu": lambda p: (1.0, abs(p)),
           "gelu": lambda p: (1.0, 0.0), "gelu_tanh": lambda p: (1.0, 0.0),
           "silu": lambda p: (1.0, 0.0), "swish": lambda p: (1.0, 0.0),
           "mish": lambda p: (1.0, 0.0),
           "softplus": lambda p: (1.0, 0.7),
           "sigmoid": lambda p: (0.0, 1.0), "tanh": lambda p: (0.0, 1.0)}


# Below this many multiply-adds (rows times weights), a pass of the network over the training
# rows takes less time than the proof of outputs_provably_finite, whose NumPy calls cost some
# microseconds each however small the layers (measured: the lecture's 2-4-4-1 network on 140
# rows, 3920 multiply-adds, 5 us for the pass against 25 us for the proof).
_PASS_BEFORE_PROOF = 1 << 16


def _proof_pays(model, X):
    """Whether to try ``outputs_provably_finite`` before the pass over the rows of X."""
    sizes = model.sizes
    weights = sum([a * b for a, b in zip(sizes[:-1], sizes[1:])])
    return X.shape[0] * weights > _PASS_BEFORE_PROOF


def _max_abs(X):
    """max |X| (of the stored values of a sparse X): one pass of the kernel over X, no copy."""
    data = X.data.reshape(1, -1) if isinstance(X, _sparse.CSR) else X
    return _train.max_abs(data)


# Ufunc reductions called directly: np.max and friends add a Python layer that costs more than
# the reduction itself on the small arrays of a small network.
_largest, _sum = np.maximum.reduce, np.add.reduce
# A tenth of a millionth of each dtype's largest number: logits below it are finite, with room
# to spare for the arithmetic that follows them (softmax, the loss).
_LIMITS = {np.dtype(np.float64): 1e-6 * float(np.finfo(np.float64).max),
           np.dtype(np.float32): 1e-6 * float(np.finfo(np.float32).max)}
_ACTIVATION_NAMES = {v: k for k, v in ACTIVATION_IDS.items()}


def outputs_provably_finite(model, x_bound, bn_eps=1e-5):
    """Whether the network's logits are finite for every input with entries in
    [-x_bound, x_bound], by interval arithmetic on the weights (``O(n_params)``, no pass over
    the data): ``|z_j| <= sum_i |W_ij| bound + |b_j|`` per layer, through each activation's
    growth and batch normalization's prediction-mode scaling.

    True is a proof; False only means the bound is too loose to tell (then the engine runs
    the network over the training rows). With finite weights the bound stays far below the
    dtype's range for every sensibly trained network, so the pass is rarely needed."""
    limit = _LIMITS[model.dtype]
    bound = float(x_bound)
    last = len(model.W) - 1
    with np.errstate(over="ignore", invalid="ignore"):
        for k, (W, b) in enumerate(zip(model.W, model.b)):
            z = _sum(np.abs(W), axis=0, dtype=np.float64)
            z *= bound
            z += np.abs(b)
            if k == last:
                return bool(_largest(z) < limit)
            if model.batch_norm[k]:
                mean, var = model.running_mean[k], model.running_var[k]
                z = ((z + np.abs(mean)) / np.sqrt(var.astype(np.float64) + bn_eps)
                     * np.abs(model.gamma[k]) + np.abs(model.beta[k]))
            slope, offset = _GROWTH[_ACTIVATION_NAMES[model._act_ids[k]]](model._act_params[k])
            bound = float(_largest(z)) * slope + offset
            if not bound < limit:
                return False
    return False
