"""Hyperparameter search whose fits train together: ``MLPSearchCV``.

``MLPSearchCV`` has the interface and the results of scikit-learn's ``GridSearchCV`` (and, with
``param_distributions``, of ``RandomizedSearchCV``), for fastmlp's ``MLPClassifier`` and
``MLPRegressor``. Instead of one fit after another, it sorts the candidate x fold fits into
groups that visit the same rows in the same order (same fold, layer widths, dtype, batch size,
loss, batch-norm layout and random state) and trains each group as one ``MLPStack``: every batch
is gathered once and each model's step on it is taken in the same kernel call, with the GIL
released, in ``n_jobs`` threads.

Each fit ends exactly where ``clone(estimator).set_params(**params).fit(X[train], y[train])``
takes it: the same initial weights, validation split, shuffles, learning rates and stopping rule
(``tol``, ``n_iter_no_change``, ``max_iter``, ``early_stopping``), model by model. The folds are
not copied: a fold's model visits its training rows of X by index. So ``cv_results_`` holds the
scores ``GridSearchCV`` computes over the same estimator (tests check 1e-10 in float64).

Fits that cannot join a stack are fitted one by one, as ``GridSearchCV`` does: ``solver="lbfgs"``,
fit parameters such as ``sample_weight``, a fold whose training rows lack a class, estimators
other than fastmlp's (a ``Pipeline``, for example).

The fixed costs are paid per candidate or per stack, not per fit. A fit with scikit-learn's
stopping rule on the training loss (no early stopping, no verbosity, no adaptive or
loss-driven rate) is *lean*: it owns no network object, only a row of its stack's buffers,
filled from one initial network drawn per candidate (shared by the candidates whose settings
differ only in the rate, the penalty or the stopping rule: they draw the same weights), and it
is scored from that row. At constant rates the kernel runs the stopping rule after every epoch
(``train_stack_epochs``' ``rule``), so a stack returns to Python once per buffer of epoch
orders, not once per ``n_iter_no_change`` epochs; the shuffles are drawn once per starting
random state and number of rows, for every fold and piece that begins there. The refit is a
stack of one on the data the search checked.
"""
import copy
import hashlib
import numbers
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse

try:
    from joblib import effective_n_jobs
    from joblib import logger as joblib_logger
    from sklearn.base import clone, is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
    from sklearn.model_selection._search import BaseSearchCV
    from sklearn.model_selection._validation import (_insert_error_scores,
                                                      _warn_or_raise_about_fit_failures)
    from sklearn.utils import _safe_indexing, check_random_state, indexable
    from sklearn.utils.validation import _num_samples
except ImportError as error:                       # pragma: no cover - depends on the install
    raise ImportError("fastmlp.model_selection needs scikit-learn >= 1.3: "
                      "pip install 'fastmlp[sklearn]'") from error

from . import _threads
from . import estimators as _estimators
from ._engine import StackRunner, TrainingDiverged, draws_in_kernel
from ._kernels import _train
from ._validation import immutable as _immutable
from .stack import MLPStack

__all__ = ["MLPSearchCV"]


# -- the one place that knows the estimators' internals ----------------------------------------

def _state_digest(state):
    """A digest of a ``RandomState``'s state (where a fit's shuffles begin)."""
    digest = hashlib.sha1(state[1].tobytes())
    digest.update(repr(state[2:]).encode())
    return digest.hexdigest()


class _Fit:
    """One fastmlp estimator set up as its ``fit`` would set itself up, up to the engine call.

    ``start`` mirrors ``fastmlp.estimators._BaseMLP._fit`` and ``_fit_stochastic`` (everything
    before ``EpochRunner``): parameter checks, the initial weights drawn from ``random_state``,
    the validation split, the batch size, the L2 coefficient, the dropout seed and the learning
    rate logic. Afterwards the estimator's own ``_epoch_ends`` (or the same rule vectorized over
    the models, ``_Bookkeeping``) decides when it stops.
    """

    # What ``_validate_input`` sets on the estimator (copied from the first fit of a search
    # whose input was checked, instead of checking X again for every fit).
    _INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_", "classes_", "_label_binarizer")

    @staticmethod
    def start(est, X, y, train, cache, sample_weight=None, models=None, lean=False):
        """Set ``est`` up for training on the rows ``train`` of (X, y); return a ``_Fit``, or
        None when this fit cannot join a stack (it is then fitted alone). ``cache`` (a dict
        kept over a search) holds X and y checked and converted once per dtype.
        ``sample_weight`` (n_samples,), over all of X: the weights ``est.fit`` would be given
        with X[train] (its ``_Fit.weights`` are then the engine's raw row and scale).
        ``models`` (a dict kept over one candidate's folds): its initial network, drawn once
        when ``random_state`` is an int (the draws are then the same for every fold).

        ``lean=True`` (a search, whose fitted estimators only score): a fit with the simple
        stopping rule gets no network of its own. Its initial state is read from a template
        network shared with the candidate's other folds, it trains as a row of a
        ``_LeanStack`` and is scored from that row; ``est.model_`` is set only if
        ``materialize`` is called."""
        if not isinstance(est, _estimators._BaseMLP) or est.solver == "lbfgs" \
                or est.warm_start:
            return None
        if models is None or "checked" not in models:
            est._check_params()
            if models is not None:
                models["checked"] = (est._hidden_sizes(), est._input_dtype(True))
        hidden, dtype = models["checked"] if models is not None else (
            est._hidden_sizes(), est._input_dtype(True))
        key = (type(est), str(dtype))
        poisson = est._task == "regression" and est.loss == "poisson"
        if key not in cache:
            # The checks of the data that hold for every candidate: a poisson candidate's own
            # condition on y (>= 0) is its fold's, below, and is not cached for the others.
            checker = est
            if poisson:
                checker = _copy_estimator(est)
                checker.loss = "squared_error"
            try:
                Xc, Y, yc = checker._validate_input(X, y, False, reset=True, dtype=dtype)
            except Exception as error:             # the data, not a candidate, is at fault
                error._fastmlp_bad_input = True
                raise
            cache[key] = (Xc, Y, yc, {name: checker.__dict__[name]
                                      for name in _Fit._INPUT_ATTRIBUTES
                                      if name in checker.__dict__})
        Xc, Y, yc, attributes = cache[key]
        est.__dict__.update(attributes)          # shared, never changed after a fit
        if poisson:
            # As est.fit(X[train], y[train]) checks it: the fit (not the search) fails.
            fold = (key, "negative", id(train))
            if fold not in cache:
                cache[fold] = (train, bool(np.any(yc[train] < 0)))   # train kept: its id
            if cache[fold][1]:
                raise ValueError("Some value(s) of y are negative which is not allowed for "
                                 "Poisson regression: its targets are counts or rates, >= 0.")
        if est._task == "classification" and yc.ndim == 1:
            fold = (key, "classes", id(train))
            if fold not in cache:
                # (y was checked: its labels are of one kind, which np.unique sorts.)
                cache[fold] = len(np.unique(yc[train])) == len(est.classes_)
            if not cache[fold]:
                return None                        # the fold's fit would see fewer classes
        sizes = [Xc.shape[1], *hidden, Y.shape[1]]
        loss = est._loss_name(Y.shape[1])
        for name in ("coefs_", "intercepts_", "loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_"):
            est.__dict__.pop(name, None)
        drawn = (tuple(sizes), loss, Xc.dtype.str)
        # The initial networks, per candidate or shared by candidates that draw the same ones.
        draws = None if models is None else models.get("draws", models)
        early = est.early_stopping
        rs = rs_state = None
        seed = None
        if draws is None or not isinstance(est.random_state, numbers.Integral):
            rs = check_random_state(est.random_state)
            model, est._mlp_init_kwargs = est._new_model(sizes, loss, rs, Xc.dtype)
            shared = False
        else:
            if drawn not in draws:
                rs = check_random_state(est.random_state)
                model, kwargs = est._new_model(sizes, loss, rs, Xc.dtype)
                state = rs.get_state()
                # The dropout seed each fold's own copy of the network would draw first.
                first_seed = (int(copy.deepcopy(model._rng).integers(2**63))
                              if any(r > 0 for r in model.dropout) else 0)
                draws[drawn] = (model, kwargs, state, first_seed, _state_digest(state))
            model, kwargs, rs_state, seed, _ = draws[drawn]
            est._mlp_init_kwargs = {**kwargs, "lr": est.learning_rate_init}
            shared = True
        est.n_iter_ = 0
        est.t_ = 0
        est.n_layers_ = len(sizes)
        est.out_activation_ = est._out_activation(Y.shape[1])
        est.n_outputs_ = Y.shape[1]
        if scipy.sparse.issparse(Xc):
            # As the estimator: a canonical CSR matrix of the network's dtype, made once.
            sparse_key = (key, "csr")
            if sparse_key not in cache:
                cache[sparse_key] = model._check_X(Xc)
            Xc = cache[sparse_key]
        est.loss_curve_ = []
        est._no_improvement_count = 0
        est.validation_scores_ = [] if early else None
        est.best_validation_score_ = -np.inf if early else None
        est.best_loss_ = None if early else np.inf
        est._rate = _estimators._LearningRate(est.learning_rate, float(est.learning_rate_init),
                                              float(est.power_t), est.solver == "sgd")
        fit = _Fit()
        fit.per_epoch = bool(early or est.verbose or est._rate.per_epoch
                             or est._loss_per_output())
        fit.simple = not fit.per_epoch and est._rate.kind != "adaptive"
        fit.lean = bool(lean and fit.simple)
        if fit.lean:
            fit.template = model
        else:
            fit.template = None
            if shared:
                model = copy.deepcopy(model)
                model.lr = model.base_lr = model._lr_set = float(est.learning_rate_init)
                if rs is None:
                    rs = np.random.RandomState()
                    rs.set_state(rs_state)
                seed = None
            est.model_ = model
            est._bind_params()
        fit.est, fit.X, fit.Y = est, Xc, Y
        fit.rs, fit.rs_state = rs, rs_state
        rows = np.asarray(train, dtype=np.intp)
        fit.val = (None, None, None)
        if early:
            Yt = Y[rows]
            stratify = Yt.astype(bool) if est._task == "classification" and Y.shape[1] == 1 \
                else None
            inner, val = _estimators.train_test_split(
                np.arange(rows.shape[0]), random_state=rs, test_size=est.validation_fraction,
                stratify=stratify)
            if val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset (or set "
                                 "early_stopping=False).")
            # The validation rows, taken from X once per stack (``_train_group``): the fits
            # of one group share them.
            fit.val = (rows[val], yc, None)
            rows = rows[inner]
        fit.rows = rows
        n_train = rows.shape[0]
        if est.batch_size == "auto":
            batch = min(200, n_train)
        else:
            if est.batch_size > n_train:
                warnings.warn(f"Got `batch_size` less than 1 or larger than sample size. It is "
                              f"going to be clipped: batch_size={est.batch_size} is larger "
                              f"than the {n_train} training samples, so {n_train} is used.")
            batch = min(est.batch_size, n_train)
        fit.batch = batch
        fit.weights = None
        if sample_weight is None:
            l2 = est.alpha / batch
        else:
            sw = est._check_sample_weight(sample_weight, Xc.shape[0])
            train_sw = sw[rows]
            if not np.any(train_sw > 0):
                raise ValueError("every training sample has weight 0; give some of them a "
                                 "positive weight")
            l2 = est.alpha / (batch * float(train_sw.mean()))
            if not np.all(train_sw == train_sw[0]):
                # The engine scales the row by n_train / sum, as the estimator does.
                fit.weights = (sw, train_sw.shape[0] / train_sw.sum())
        model.l2 = fit.l2 = l2
        fit.last_rate = None
        if fit.lean:
            # Built now, in the caller's thread: the template serves every fold's l2.
            fit.net = model._network(batch, sparse_input=scipy.sparse.issparse(Xc))
        if seed is None:
            seed = int(model._rng.integers(2**63)) if any(r > 0 for r in model.dropout) else 0
        fit.seed = seed
        if early:
            est._best_state = (model.params.copy(), model.bn_state.copy())
        if est.shuffle:
            state_digest = (draws[drawn][4] if shared and rs_state is not None
                            and not early else _state_digest(rs.get_state()))
        else:
            state_digest = ""
        rows_key = ("rows", id(train))
        if early or rows_key not in cache:
            digest = hashlib.sha1(rows.tobytes()).hexdigest()
            if early:
                rows_digest = digest
            else:
                cache[rows_key] = (train, digest)      # train kept alive: its id stays unique
        rows_digest = digest if early else cache[rows_key][1]
        # Last: what the rows and the shuffles depend on.
        fit.key = (tuple(sizes), Xc.dtype.str, loss, tuple(model.batch_norm), batch,
                   bool(est.shuffle), fit.lean, (rows_digest, state_digest))
        return fit

    def random_state(self):
        """The estimator's random state where its shuffles begin."""
        if self.rs is None:
            self.rs = np.random.RandomState()
            self.rs.set_state(self.rs_state)
        return self.rs

    def epochs_before_a_stop(self, most):
        return 1 if self.per_epoch else self.est._epochs_before_a_stop(
            self.est.max_iter - self.est.n_iter_, most)

    def rates(self, count):
        return self.est._rate.block(count, self.est.t_, self.rows.shape[0])

    def epoch_ends(self, loss):
        """The estimator's own bookkeeping of one epoch; True to stop."""
        X_val, y_val, sw_val = self.val
        return self.est._epoch_ends(loss, self.rows.shape[0], X_val, y_val, sw_val,
                                    self.est.max_iter)

    def diverged(self, runner, k):
        """As the estimator after a diverged epoch: raises ValueError without early stopping,
        else fills the remaining epochs with NaN."""
        self.est._diverged(TrainingDiverged(runner.diverged[k], 0, "loss", 0.0),
                           self.rows.shape[0], self.est.max_iter)

    def finish(self, model):
        """Give the estimator its own copy of the trained network."""
        est = self.est
        est.model_ = model
        if est.early_stopping:
            model.params[:], model.bn_state[:] = est._best_state
            del est._best_state
        est._bind_params()

    def outputs(self, X):
        """A lean fit's network outputs on X (dense, C-contiguous, of the network's dtype),
        as ``est.predict`` computes them: the same kernel on the same rows."""
        model = self.template
        rows = model._predict_rows(X.shape[0])
        net = model._network(rows)
        workspace = np.empty(net.workspace_size, dtype=model.dtype)
        out = np.empty((X.shape[0], model.sizes[-1]), dtype=model.dtype)
        work = model._blas_work(rows)
        if work < _threads.OPENBLAS_THREADING_MIN:
            _train.predict(net, self.params, self.bn_state, X, workspace, out)
        else:
            with _threads.blas_threads(work):
                _train.predict(net, self.params, self.bn_state, X, workspace, out)
        return out

    def materialize(self):
        """Give a lean fit's estimator its own network (``est.model_``), holding the trained
        state, as the estimator's own fit would have left it."""
        est = self.est
        if self.template is None or "model_" in est.__dict__:
            return
        model = copy.deepcopy(self.template)
        model.params[:] = self.params
        model.bn_state[:] = self.bn_state
        model._opt_state[:] = self.opt_state[:model._opt_state.size]
        model._step[:] = self.step
        model.l2 = self.l2
        model.base_lr = float(self.est.learning_rate_init)
        model.lr = model._lr_set = (model.base_lr if self.last_rate is None
                                    else self.last_rate)
        if any(r > 0 for r in model.dropout):
            model._rng.integers(2**63)             # the dropout seed the fit drew
        est.model_ = model
        est._bind_params()


class _LeanStack:
    """The buffers of a stack of lean fits (``_Fit.start(..., lean=True)``), one row per fit,
    filled from the fits' shared template networks: what ``StackRunner`` reads of a stack,
    without an ``MLP`` object per fit."""

    def __init__(self, fits):
        templates = [f.template for f in fits]
        first = templates[0]
        self._models = templates
        self._nets = [f.net for f in fits]
        self.params = np.stack([m.params for m in templates])
        self.bn_state = np.stack([m.bn_state for m in templates])
        self.opt_state = np.zeros((len(fits), max(m._opt_state.size for m in templates)),
                                  dtype=first.dtype)
        for k, m in enumerate(templates):
            self.opt_state[k, :m._opt_state.size] = m._opt_state
        self.steps = np.concatenate([m._step for m in templates])
        self.diverged_ = {}


class _Bookkeeping:
    """scikit-learn's stopping rule on the training loss (``_BaseMLP._epoch_ends`` without
    early stopping, verbosity or adaptive rates), vectorized over the models of a stack."""

    def __init__(self, fits):
        self.fits = fits
        self.tol = np.array([f.est.tol for f in fits], dtype=float)
        self.patience = np.array([float(f.est.n_iter_no_change) for f in fits])
        self.best = np.full(len(fits), np.inf)
        self.count = np.zeros(len(fits))
        self.reached_max = 0
        self.n_iter = np.zeros(len(fits), dtype=np.intp)     # for flush
        self.flushed = np.zeros(len(fits), dtype=bool)

    def flush(self, k, curves):
        """Write fit k's state (its ``n_iter`` epochs of ``curves[:, k]``) into its estimator,
        as ``block`` would have written it block by block."""
        if self.flushed[k]:
            return
        self.flushed[k] = True
        est = self.fits[k].est
        n = int(self.n_iter[k])
        curve = curves[:n, k].tolist()
        est.loss_curve_ += curve
        if curve:
            est.loss_ = curve[-1]
        est.best_loss_ = float(self.best[k])
        est._no_improvement_count = int(self.count[k])
        est.t_ += self.fits[k].rows.shape[0] * n
        est._rate.epoch += n
        est.n_iter_ += n

    def block(self, losses, idx):
        """Take the losses (epochs x models) of the models ``idx`` (positions in ``fits``);
        return the positions that stop."""
        best, count, tol = self.best[idx], self.count[idx], self.tol[idx]
        for row in losses:
            count = np.where(row > best - tol, count + 1, 0)
            best = np.minimum(best, row)
        self.best[idx], self.count[idx] = best, count
        n_epochs = losses.shape[0]
        stop = []
        for j, i in enumerate(idx):
            est = self.fits[i].est
            n_train = self.fits[i].rows.shape[0]
            curve = losses[:, j].tolist()
            est.loss_curve_ += curve
            est.loss_ = curve[-1]
            est.best_loss_ = float(best[j])
            est._no_improvement_count = int(count[j])
            rate = est._rate
            est.t_ += n_train * n_epochs
            rate.epoch += n_epochs             # the schedule's epoch counter
            if rate.kind == "invscaling":
                rate.rate = rate.lr_init / (est.t_ + 1) ** rate.power_t
            est.n_iter_ += n_epochs
            if count[j] > self.patience[i]:
                stop.append(i)
            elif est.n_iter_ >= est.max_iter:
                self.reached_max += 1
                stop.append(i)
        return stop


def _composed_shuffles(rs, sample_idx, count):
    """scikit-learn's shuffles of ``count`` epochs from ``sample_idx``: row e is
    ``sample_idx = sample_idx[rs.permutation(n)]`` after epoch e's draw, a (count, n) array
    (``sample_idx`` itself is left as it was). Drawn in the kernel (``_train.shuffle_rows``,
    the same swaps and the same state of ``rs`` after them) when it draws as this NumPy does,
    else with ``rs.permutation``."""
    if draws_in_kernel(rs):
        return _train.shuffle_rows(rs, np.ascontiguousarray(sample_idx, dtype=np.intp), count,
                                   carry=True)
    drawn = np.empty((count, len(sample_idx)), dtype=np.intp)
    for e in range(count):
        sample_idx = sample_idx[rs.permutation(len(sample_idx))]
        drawn[e] = sample_idx
    return drawn


class _Shuffles:
    """The shuffled positions of a search's lean stacks, drawn once per starting random state
    and number of training rows and shared by the stacks that begin there (the folds of
    equal size and the pieces of a group): scikit-learn's ``sample_idx`` after each epoch's
    ``rs.permutation``. Kept only while the draws stay below ``MAX_ENTRIES`` positions."""

    MAX_ENTRIES = 1 << 20

    def __init__(self):
        self._draws = {}
        self._lock = threading.Lock()

    def positions(self, fit, first, count):
        """Positions (count, n_train) of epochs ``first`` to ``first + count - 1`` of the
        shuffles that begin at ``fit``'s random state, or None (not kept: too many)."""
        n_train = fit.rows.shape[0]
        if fit.rs_state is None or fit.est.max_iter * n_train > self.MAX_ENTRIES:
            return None
        key = (fit.key[-1][1], n_train)
        with self._lock:
            if key not in self._draws:
                rs = np.random.RandomState()
                rs.set_state(fit.rs_state)
                drawn = np.empty((fit.est.max_iter + 1, n_train), dtype=np.intp)
                drawn[0] = np.arange(n_train)
                self._draws[key] = [rs, drawn, 1]
            entry = self._draws[key]
            rs, drawn, n_drawn = entry
            if drawn.shape[0] < first + count + 1:
                # (a larger max_iter than the first stack's; views handed out stay valid)
                grown = np.empty((first + count + 1, n_train), dtype=np.intp)
                grown[:n_drawn] = drawn[:n_drawn]
                entry[1] = drawn = grown
            if first + count + 1 > n_drawn:
                drawn[n_drawn:first + count + 1] = _composed_shuffles(
                    rs, drawn[n_drawn - 1], first + count + 1 - n_drawn)
            entry[2] = max(n_drawn, first + count + 1)
            return drawn[first + 1:first + count + 1]


def _train_group(fits, n_jobs, shuffles=None):
    """Train the fits of one group (same rows, same shuffles: those of ``fits[0]``) as one
    stack, each to its own stop. Returns, per fit, None or the exception that ended it
    (divergence).

    Lean fits (all of the group's or none) end with their trained state in ``fit.params``,
    ``fit.bn_state``, ``fit.opt_state``, ``fit.step`` (rows of the stack's buffers); the others
    with their estimator's own network."""
    K = len(fits)
    first = fits[0]
    lean = first.lean
    if first.val[0] is not None:
        rows, y_all, _ = first.val
        val = (first.X[rows], y_all[rows], None)
        for f in fits:
            f.val = val
    if lean:
        stack = _LeanStack(fits)
    else:
        stack = MLPStack([f.est.model_ for f in fits], _copy=False)
        for f in fits:
            f.est._bind_params()                   # views of the stack's rows
    n_train = first.rows.shape[0]
    scale, weighted, weights = np.ones(K), np.zeros(K, dtype=np.uint8), None
    if any(f.weights is not None for f in fits):
        # Per-model rows over all of X (the weights given: bootstrap counts, for example).
        weights = np.ones((K, first.X.shape[0]))
        for k, f in enumerate(fits):
            if f.weights is not None:
                weights[k], scale[k], weighted[k] = f.weights[0], f.weights[1], 1
    seeds = np.array([f.seed for f in fits], dtype=np.uint64)
    simple = {k for k, f in enumerate(fits) if f.simple}
    books = _Bookkeeping(fits)
    errors = [None] * K
    seen = set()
    sample_idx = np.arange(n_train)
    constant = lean and all(f.est._rate.kind == "constant" for f in fits)
    rs = None if constant else first.random_state()
    runner = StackRunner(stack, first.X, first.Y, weights, scale, weighted, first.batch, seeds,
                         n_jobs)
    status = runner.status
    with runner:
        most = runner.epochs_per_call(n_train)
        orders = np.empty((most, n_train), dtype=np.intp)
        if not first.est.shuffle:
            orders[:] = first.rows
        losses = np.empty((most, K))
        rates = np.zeros((most, K))
        active = list(range(K))
        if constant:
            sample_idx = _train_constant(fits, runner, books, orders, losses, rates, rs,
                                         shuffles)
            active = [k for k in range(K) if runner.status[k] == _train.Status.OK]
            for k in runner.diverged:
                seen.add(k)
                try:
                    fits[k].diverged(runner, k)
                except ValueError as error:
                    errors[k] = error
        while active and not runner.interrupted:
            rs = first.random_state() if rs is None else rs
            count = min(fits[k].epochs_before_a_stop(most) for k in active)
            if first.est.shuffle:
                drawn = _composed_shuffles(rs, sample_idx, count)
                sample_idx = drawn[-1].copy()
                np.take(first.rows, drawn, out=orders[:count])
            for k in active:
                rates[:count, k] = fits[k].rates(count)
            done = runner.run(orders[:count], rates[:count], losses).tolist()
            for k in active:
                if done[k]:
                    rate = float(rates[done[k] - 1, k])
                    if lean:
                        fits[k].last_rate = rate
                    else:
                        model = stack._models[k]
                        model.lr = model._lr_set = rate
            full = [k for k in active if k in simple and done[k] == count]
            for k in books.block(losses[:count, full], full) if full else ():
                runner.stop(k)
            full = set(full)
            for k in active:
                if k in full:
                    continue
                for loss in losses[:done[k], k]:
                    if fits[k].epoch_ends(loss):
                        runner.stop(k)
                        break
                if k in runner.diverged:
                    seen.add(k)
                    try:
                        fits[k].diverged(runner, k)
                    except ValueError as error:
                        errors[k] = error
                elif fits[k].est.n_iter_ >= fits[k].est.max_iter:
                    runner.stop(k)
            active = [k for k in active if status[k] == _train.Status.OK]
    for k in set(runner.diverged) - seen:
        # Found when the runner closed (the last epoch made the outputs overflow; it is
        # undone): as the estimator, scikit-learn's divergence error without early stopping,
        # the best epoch's weights (restored by ``finish``) with it.
        if not fits[k].est.early_stopping:
            try:
                fits[k].diverged(runner, k)
            except ValueError as error:
                errors[k] = error
    if runner.interrupted:
        warnings.warn("Training interrupted by user.")
    if books.reached_max and K == 1:
        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({first.est.max_iter}) "
                      f"reached and the optimization hasn't converged yet.", ConvergenceWarning)
    elif books.reached_max:
        warnings.warn(f"Stochastic Optimizer: Maximum iterations reached and the optimization "
                      f"hasn't converged yet ({books.reached_max} of {K} fits).",
                      ConvergenceWarning)
    if lean:
        for k, f in enumerate(fits):
            f.params, f.bn_state = stack.params[k], stack.bn_state[k]
            f.opt_state, f.step = stack.opt_state[k], stack.steps[k:k + 1]
    else:
        for k, f in enumerate(fits):
            f.finish(copy.deepcopy(stack._models[k]))
    return errors


# Estimator parameters that the initial network (MLP) does not depend on: the engine is given
# the rate and the L2 coefficient per fit.
_RATE_ONLY = frozenset({"learning_rate_init", "alpha", "tol", "n_iter_no_change", "max_iter"})


def _train_constant(fits, runner, books, orders, losses, rates, rs, shuffles=None):
    """The loop of ``_train_group`` for lean fits at constant rates: scikit-learn's stopping
    rule on the training loss runs inside the kernel (``StackRunner.run``'s ``rule``), so one
    kernel call trains every model as far as the order buffer reaches, each to its own stop;
    the estimators' attributes are written once, at the end (``_Bookkeeping.flush``).
    Returns the shuffled positions where a later block would continue. A model that diverges
    or is interrupted leaves with its estimator brought up to date by its own bookkeeping
    (the caller handles a divergence's error)."""
    first = fits[0]
    n_train = first.rows.shape[0]
    K = len(fits)
    shuffle = first.est.shuffle
    sample_idx = np.arange(n_train)
    rates[:] = [f.est._rate.rate for f in fits]
    max_iter = np.array([f.est.max_iter for f in fits], dtype=np.intp)
    left = max_iter.copy()
    most = orders.shape[0]
    status = runner.status
    active = np.arange(K)
    epoch = 0                                      # epochs every active model has trained
    curves = np.empty((int(max_iter.max()), K))
    rule = (books.tol, books.patience, books.best, books.count, left)
    while active.size and not runner.interrupted:
        count = int(min(most, left[active].max()))
        positions = None if shuffles is None or not shuffle else \
            shuffles.positions(first, epoch, count)
        if positions is not None:
            np.take(first.rows, positions, out=orders[:count])
        elif shuffle:
            rs = first.random_state() if rs is None else rs
            drawn = _composed_shuffles(rs, sample_idx, count)
            sample_idx = drawn[-1].copy()
            np.take(first.rows, drawn, out=orders[:count])
        best, no_improvement = books.best.copy(), books.count.copy()
        done = runner.run(orders[:count], rates[:count], losses, rule)
        curves[epoch:epoch + count, active] = losses[:count, active]
        books.n_iter[active] += done[active]
        for k in active[(status[active] != runner.STOPPED) & (done[active] < count)]:
            # Diverged (its status says so) or interrupted: the estimator is brought up to
            # the start of this call, then does its own bookkeeping of the epochs done.
            books.best[k], books.count[k] = best[k], no_improvement[k]
            books.n_iter[k] = epoch
            books.flush(k, curves)
            for loss in losses[:done[k], k]:
                if fits[k].epoch_ends(loss):
                    runner.stop(k)
                    break
        stopped = active[status[active] == runner.STOPPED]
        books.reached_max += int(np.count_nonzero(
            books.count[stopped] <= books.patience[stopped]))
        epoch += count
        active = active[status[active] == _train.Status.OK]
    for k in range(K):
        books.flush(k, curves)                     # (each fit once)
    return sample_idx


def _draw_key(est, names):
    """What an estimator's initial network depends on: its parameters but ``_RATE_ONLY``
    (None when one of them cannot be a key)."""
    key = tuple((name, est.__dict__[name]) for name in sorted(names) if name not in _RATE_ONLY)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _copy_estimator(est):
    """A copy of an unfitted estimator whose parameters are immutable values."""
    new = object.__new__(type(est))
    new.__dict__.update(est.__dict__)
    return new


def _end_message(verbose, result, parameters, split_progress, candidate_progress,
                 return_train_score):
    """The line scikit-learn's ``_fit_and_score`` prints at the end of a fit when ``verbose >
    1``: the parameters; the split's number (``verbose > 2``, and the candidate's above 9) and
    the scores (``verbose > 2``); the time fitting and scoring; right-aligned to 80
    characters."""
    progress = ""
    if verbose > 2:
        progress = f" {split_progress[0] + 1}/{split_progress[1]}"
        if verbose > 9:
            progress += f"; {candidate_progress[0] + 1}/{candidate_progress[1]}"
    params = ", ".join(f"{k}={parameters[k]}" for k in sorted(parameters))
    start = f"[CV{progress}] END "
    message = params + (";" if params else "")
    if verbose > 2:
        test, train = result["test_scores"], result.get("train_scores")
        if isinstance(test, dict):
            for name in sorted(test):
                message += f" {name}: ("
                if return_train_score:
                    message += f"train={train[name]:.3f}, "
                message += f"test={test[name]:.3f})"
        elif return_train_score:
            message += f", score=(train={train:.3f}, test={test:.3f})"
        else:
            message += f", score={test:.3f}"
    seconds = result["fit_time"] + result["score_time"]
    message += f" total time={joblib_logger.short_format_time(seconds)}"
    return start + "." * (80 - len(start) - len(message)) + message


def _pieces(groups, n_jobs, total=None):
    """The groups of fits as work for ``n_jobs`` threads: whole groups when there are enough,
    else each cut into pieces (a piece of a group shuffles as the whole group: its fits share
    the random state), about four per thread so that the threads end together. ``total``:
    the number of groups of the whole search, when ``groups`` are some of them."""
    if n_jobs == 1 or not groups:
        return groups
    cuts = -(-4 * n_jobs // (total or len(groups)))
    return [list(piece) for members in groups
            for piece in np.array_split(members, min(cuts, len(members)))]


# -- the search -----------------------------------------------------------------------------

def _routed_params(search, groups, params):
    """The estimator's fit parameters, the splitter's and the scorer's, as the installed
    scikit-learn's search routes ``params`` (``BaseSearchCV._get_routed_params_for_fit``:
    metadata routing when enabled, else everything to the estimator, ``groups`` to the
    splitter and, from scikit-learn 1.9 on, ``sample_weight`` to the scorer too when it
    accepts one). scikit-learn before 1.4 routes nothing to the scorer."""
    route = getattr(search, "_get_routed_params_for_fit", None)
    if route is None:
        return dict(params), {"groups": groups}, {}
    given = dict(params)
    if groups is not None:
        given["groups"] = groups
    routed = route(given)
    return (dict(routed.estimator.fit), dict(routed.splitter.split),
            dict(routed.scorer.score))


class MLPSearchCV(BaseSearchCV):
    """Exhaustive (``param_grid``) or randomized (``param_distributions``) search over a fastmlp
    estimator's parameters, with its candidate x fold fits trained together as stacks.

    The interface, attributes and meanings are those of scikit-learn's ``GridSearchCV``
    (``param_grid``) and ``RandomizedSearchCV`` (``param_distributions``, ``n_iter``,
    ``random_state``); give exactly one of ``param_grid`` and ``param_distributions``. Each fit
    ends exactly where ``GridSearchCV``'s fit of the same candidate on the same fold ends, so
    ``cv_results_`` holds the same scores; only the time is shorter.

    Parameters
    ----------
    estimator : fastmlp.MLPClassifier or fastmlp.MLPRegressor
        Other estimators (a pipeline, another library's) are searched by scikit-learn's own
        ``GridSearchCV`` machinery over the same candidates (``n_jobs`` is then joblib's). With
        ``random_state=None`` every fit of one search draws from the same seed, chosen once per
        ``fit`` (``GridSearchCV``'s fits would each draw their own): the candidates then start
        from the same weights and the fits of a fold train together.
    param_grid : dict or list of dicts, optional
        As ``GridSearchCV``'s.
    param_distributions : dict or list of dicts, optional
        As ``RandomizedSearchCV``'s: lists are sampled uniformly, distributions with ``rvs``.
    n_iter : int, default 10
        Candidates sampled from ``param_distributions``.
    random_state : int, RandomState instance or None, default None
        Samples the candidates from ``param_distributions`` (not the estimator's seed).
    scoring : str, callable, list, tuple, dict or None, default None
        As ``GridSearchCV``'s (scikit-learn's scorers; None uses ``estimator.score``).
    n_jobs : int or None, default None
        Threads: the stacks, cut into pieces when there are fewer than about four per
        thread, train in a pool of this many threads (each piece's kernel calls release the
        GIL), a fold's stacks while the next fold's fits are set up. None means 1, -1 every
        core (joblib's meaning). The results do not depend on it.
    refit : bool, str or callable, default True
        Refit ``best_estimator_`` on the whole data (a normal fastmlp estimator).
    cv : int, cross-validation generator or iterable, default None
        As ``GridSearchCV``'s: stratified k-fold for classifiers, 5 folds by default.
    verbose : int, default 0
        Above 0, print the number of fits and of stacks; above 1, also a line per fit as
        ``GridSearchCV`` prints it once the fits are scored (its parameters and time; above
        2, its split and scores; above 9, its candidate's number).
    pre_dispatch : str, default "2*n_jobs"
        Kept for ``GridSearchCV``'s interface; unused (no processes are dispatched).
    error_score : "raise" or float, default numpy.nan
        The score of a fit that failed (for example by diverging), as ``GridSearchCV``.
    return_train_score : bool, default False

    Attributes
    ----------
    cv_results_ : dict of ndarray
        scikit-learn's keys and meanings: ``params``, ``param_<name>``, ``split<i>_test_score``,
        ``mean_test_score``, ``std_test_score``, ``rank_test_score``, ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time`` (and train scores when asked).
        A fit trained in a stack is charged its share of the stack's time (in proportion to
        its epochs) plus its own setup.
    best_estimator_, best_score_, best_params_, best_index_, scorer_, n_splits_, refit_time_,
    multimetric_, classes_, n_features_in_, feature_names_in_
        As ``GridSearchCV``.
    n_stacks_ : int
        Number of stacks the fits were trained in (fits trained alone are not counted).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.model_selection import MLPSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = MLPSearchCV(MLPClassifier((8,), max_iter=50, random_state=0),
    ...                      {"learning_rate_init": [0.01, 0.1], "alpha": [1e-4, 1e-2]}, cv=3)
    >>> search.fit(X, y).best_params_["learning_rate_init"] in (0.01, 0.1)
    True
    >>> search.n_stacks_                     # one stack per fold: 4 candidates each
    3
    """

    _parameter_constraints = {}

    def __init__(self, estimator, param_grid=None, *, param_distributions=None, n_iter=10,
                 random_state=None, scoring=None, n_jobs=None, refit=True, cv=None, verbose=0,
                 pre_dispatch="2*n_jobs", error_score=np.nan, return_train_score=False):
        super().__init__(estimator=estimator, scoring=scoring, n_jobs=n_jobs, refit=refit,
                         cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
                         error_score=error_score, return_train_score=return_train_score)
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state

    def _candidates(self):
        if (self.param_grid is None) == (self.param_distributions is None):
            raise ValueError("give MLPSearchCV exactly one of param_grid (every combination, as "
                             "GridSearchCV) and param_distributions (n_iter samples, as "
                             "RandomizedSearchCV)")
        if self.param_grid is not None:
            return list(ParameterGrid(self.param_grid))
        if not isinstance(self.n_iter, numbers.Integral) or self.n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1; got {self.n_iter!r}")
        return list(ParameterSampler(self.param_distributions, self.n_iter,
                                     random_state=self.random_state))

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        # scikit-learn's protocol, used by its own fit (see fit); callback_ctx from
        # scikit-learn 1.9 on, as GridSearchCV's: one "search" task over the evaluations.
        candidates = self._candidates()
        if callback_ctx is None:
            evaluate_candidates(candidates)
            return
        search_ctx = callback_ctx.subcontext(
            task_name="search", max_subtasks=len(candidates) * self.n_splits_,
            sequential_subtasks=False).call_on_fit_task_begin(estimator=self)
        evaluate_candidates(candidates, callback_ctx=search_ctx)
        search_ctx.call_on_fit_task_end(estimator=self)

    def fit(self, X, y=None, groups=None, **params):
        """Fit every candidate on every fold, then refit the best on all of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        groups : array-like of shape (n_samples,), optional
            Group labels for a group-aware ``cv`` splitter.
        **params : dict
            Routed as the installed scikit-learn's ``GridSearchCV`` routes them: to the
            estimator's ``fit`` (split by fold), and ``sample_weight`` also to the scorer
            when it accepts one (scikit-learn 1.9 on), or as requested with metadata routing
            enabled. With any fit parameter, the fits run one by one.

        Returns
        -------
        self : MLPSearchCV
        """
        if (not isinstance(self.estimator, _estimators._BaseMLP) or y is None
                or getattr(self, "_skl_callbacks", None)):
            # Nothing to stack, or scikit-learn's callbacks (set_callbacks) to call on every
            # fit: scikit-learn's own search (GridSearchCV's fit, over this class's
            # candidates), with its n_jobs meaning joblib's workers.
            if groups is not None:
                params["groups"] = groups
            super().fit(X, y, **params)
            self.n_stacks_ = 0
            return self
        candidates = self._candidates()
        if not candidates:
            raise ValueError("No fits were performed: the parameter grid is empty.")
        scorers, refit_metric = self._get_scorers()
        X, y, groups = indexable(X, y, groups)
        params, split_params, score_params = _routed_params(self, groups, params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        # Each split's rows as the indices GridSearchCV's _safe_indexing selects: boolean
        # masks (their True rows) and negative indices (from the end) included; an index out
        # of range raises its IndexError.
        positions = np.arange(_num_samples(X))
        splits = [(_safe_indexing(positions, train), _safe_indexing(positions, test))
                  for train, test in cv.split(X, y, **split_params)]
        self.n_splits_ = len(splits)
        n_jobs = max(1, effective_n_jobs(self.n_jobs))
        base = clone(self.estimator)
        n_fits = len(candidates) * len(splits)
        fits, alone, setup_time = [None] * n_fits, [], np.zeros(n_fits)
        estimators, errors = [None] * n_fits, [None] * n_fits
        fit_time = np.zeros(n_fits)
        groups_by_key = defaultdict(list)
        converted = {}
        # random_state=None: one seed for the whole search, so that the fits share their
        # shuffles and train together (GridSearchCV's fits would each draw their own).
        seed = int(np.random.randint(np.iinfo(np.int32).max))
        # fastmlp's estimators whose parameters are all immutable values are copied by their
        # __dict__ (as clone would copy them, without its checks).
        names = (set(base.get_params(deep=False)) if isinstance(base, _estimators._BaseMLP)
                 and all(map(_immutable, base.__dict__.values())) else None)
        shared_draws = {}
        prepared = []
        for c, cand in enumerate(candidates):
            start = time.perf_counter()
            if names is not None and set(cand) <= names and all(map(_immutable, cand.values())):
                candidate = _copy_estimator(base)
                candidate.__dict__.update(cand)
                plain = True
            else:
                candidate = clone(base).set_params(**clone(cand, safe=False))
                plain = False
            if isinstance(candidate, _estimators._BaseMLP) and candidate.random_state is None:
                candidate.random_state = seed
            models = {}
            if plain:
                # Candidates that differ only in settings the initial network does not hold
                # (the rate, the penalty, the stopping rule) share its draw.
                same = _draw_key(candidate, names)
                if same is not None:
                    models["draws"] = shared_draws.setdefault(same, {})
            prepared.append((candidate, plain, models,
                             (time.perf_counter() - start) / len(splits)))
        shuffles = _Shuffles()
        pool = ThreadPoolExecutor(n_jobs) if n_jobs > 1 else None
        trained = []

        def train(members):
            start = time.perf_counter()
            group_errors = _train_group([fits[i] for i in members], 1 if pool else n_jobs,
                                        shuffles)
            return members, group_errors, time.perf_counter() - start

        try:
            # Fold by fold: a fold's stacks start training (in the pool's threads) while the
            # next fold's fits are set up.
            for s, (train_rows, test) in enumerate(splits):
                fold_groups = defaultdict(list)
                for c, (candidate, plain, models, shared) in enumerate(prepared):
                    i = c * len(splits) + s
                    start = time.perf_counter() - shared
                    # As clone (deep copies of the parameters; their values are immutable
                    # when plain).
                    est = _copy_estimator(candidate) if plain else copy.deepcopy(candidate)
                    estimators[i] = est
                    try:
                        fit = None if params else _Fit.start(est, X, y, train_rows, converted,
                                                             models=models, lean=True)
                    except Exception as error:      # as GridSearchCV: a failed fit scores
                        if self.error_score == "raise" or getattr(error, "_fastmlp_bad_input",
                                                                  False):
                            raise
                        errors[i], fit = error, None
                        setup_time[i] = time.perf_counter() - start
                        continue
                    setup_time[i] = time.perf_counter() - start
                    if fit is None:
                        alone.append((i, train_rows))
                    else:
                        fits[i] = fit
                        fold_groups[fit.key].append(i)
                for key, members in fold_groups.items():
                    groups_by_key[(s, *key)] = members
                for piece in _pieces(list(fold_groups.values()), n_jobs,
                                     len(fold_groups) * len(splits)):
                    trained.append(pool.submit(train, piece) if pool else train(piece))
        finally:
            if pool:
                pool.shutdown(wait=True)
        trained = [t.result() if pool else t for t in trained]
        self.n_stacks_ = len(groups_by_key)
        if self.verbose > 0:
            print(f"Fitting {len(splits)} folds for each of {len(candidates)} candidates, "
                  f"totalling {n_fits} fits: {n_fits - len(alone)} in {self.n_stacks_} stacks, "
                  f"{len(alone)} one by one")
        for members, group_errors, elapsed in trained:
            epochs = np.array([max(1, fits[i].est.n_iter_) for i in members], dtype=float)
            for i, share, error in zip(members, epochs / epochs.sum(), group_errors):
                fit_time[i] = setup_time[i] + elapsed * share
                if error is not None:
                    if self.error_score == "raise":
                        raise error
                    errors[i] = error
        for i, train in alone:
            start = time.perf_counter()
            try:
                estimators[i].fit(_safe_indexing(X, train), _safe_indexing(y, train),
                                  **self._fold_params(params, train))
            except Exception as error:
                if self.error_score == "raise":
                    raise
                errors[i] = error
            fit_time[i] = setup_time[i] + time.perf_counter() - start
        out = self._score_all(estimators, fits, errors, fit_time, splits, X, y, scorers,
                              score_params, candidates)
        _warn_or_raise_about_fit_failures(out, self.error_score)
        if callable(self.scoring):
            _insert_error_scores(out, self.error_score)
        self.multimetric_ = isinstance(out[0]["test_scores"], dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(out[0]["test_scores"])
            refit_metric = self.refit
        results = self._format_results(candidates, len(splits), out)
        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit:
            best = self.best_params_
            if names is not None and set(best) <= names and all(map(_immutable, best.values())):
                self.best_estimator_ = _copy_estimator(base)
                self.best_estimator_.__dict__.update(best)
            else:
                self.best_estimator_ = clone(base).set_params(**clone(best, safe=False))
            start = time.perf_counter()
            self._refit(self.best_estimator_, X, y, params, converted, shared_draws, names,
                        n_jobs, shuffles)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results
        return self

    @staticmethod
    def _refit(est, X, y, params, converted, shared_draws, names, n_jobs, shuffles):
        """``est.fit(X, y, **params)``, ending exactly there, trained as a stack of one with
        the search's checked data, initial networks and engine when it can be."""
        fit = None
        if not params and isinstance(est, _estimators._BaseMLP):
            models = {}
            if names is not None and isinstance(est.random_state, numbers.Integral):
                same = _draw_key(est, names)
                if same is not None and same in shared_draws:
                    models["draws"] = shared_draws[same]
            fit = _Fit.start(est, X, y, np.arange(_num_samples(X)), converted, models=models,
                             lean=True)
        if fit is None:
            est.fit(X, y, **params)
            return
        error = _train_group([fit], n_jobs, shuffles)[0]
        if error is not None:
            raise error
        if fit.lean:
            fit.materialize()

    @staticmethod
    def _fold_params(params, train):
        return {name: (_safe_indexing(value, train)
                       if hasattr(value, "__len__") and not isinstance(value, (str, dict))
                       else value) for name, value in params.items()}

    def _score_all(self, estimators, fits, errors, fit_time, splits, X, y, scorers,
                   score_params, candidates):
        """scikit-learn's per-fit result dicts (the input of ``_format_results``); with
        ``verbose > 1``, one line per fit as GridSearchCV prints it (``_end_message``)."""
        n_splits = len(splits)
        out = [None] * len(estimators)
        parts = {}            # the current split's rows of X and y, taken once for all its fits

        def part(s, which):
            # The rows of X and y, and the scorer's parameters for them (as _fit_and_score
            # splits them).
            if (s, which) not in parts:
                rows = splits[s][which]
                parts[s, which] = (_safe_indexing(X, rows), _safe_indexing(y, rows),
                                   self._fold_params(score_params, rows))
            return parts[s, which]

        # Split by split, so that one split's rows are held at a time.
        for i in sorted(range(len(estimators)), key=lambda i: (i % n_splits, i)):
            est = estimators[i]
            s = i % n_splits
            if (s, 0) not in parts and (s, 1) not in parts:
                parts.clear()                      # the previous split's
            train, test = splits[s]
            result = {"fit_time": fit_time[i], "n_test_samples": len(test),
                      "fit_error": None}
            start = time.perf_counter()
            if errors[i] is not None:
                result["fit_error"] = "".join(
                    f"{type(errors[i]).__name__}: {errors[i]}")
                score = self.error_score
                if not callable(self.scoring) and not isinstance(self.scoring, (str, type(None))):
                    score = {name: self.error_score for name in scorers._scorers}
                result["test_scores"] = score
                if self.return_train_score:
                    result["train_scores"] = score
            else:
                result["test_scores"] = self._score(scorers, est, fits[i], *part(s, 1))
                if self.return_train_score:
                    result["train_scores"] = self._score(scorers, est, fits[i], *part(s, 0))
            result["score_time"] = time.perf_counter() - start
            out[i] = result
            if self.verbose > 1:
                print(_end_message(self.verbose, result, candidates[i // n_splits],
                                   (s, n_splits), (i // n_splits, len(candidates)),
                                   self.return_train_score))
        return out

    def _score(self, scorers, est, fit, X_part, y_part, score_params):
        try:
            if self.scoring is None and type(est) is _estimators.MLPClassifier \
                    and np.ndim(y_part) == 1 and not score_params:
                # The default scorer, est.score: accuracy_score's value (the mean of the
                # matches) without its checks of the labels, which cost more than the
                # prediction here.
                if fit is not None and fit.lean and type(X_part) is np.ndarray \
                        and X_part.ndim == 2 and X_part.dtype == fit.template.dtype \
                        and X_part.flags.c_contiguous and X_part.shape[0] \
                        and "feature_names_in_" not in est.__dict__:
                    # est.predict's own computation, from the fit's row of its stack.
                    predicted = est._decode(fit.outputs(X_part))
                else:
                    if fit is not None:
                        fit.materialize()
                    predicted = est.predict(X_part)
                # (the count over the number: np.average's value, without its layers)
                matches = predicted == np.asarray(y_part)
                return (np.count_nonzero(matches) / len(matches) if len(matches)
                        else float(np.average(matches)))
            if fit is not None:
                fit.materialize()
            scores = scorers(est, X_part, y_part, **score_params)
        except Exception:
            if self.error_score == "raise":
                raise
            warnings.warn("Scoring failed. The score on this train-test partition for these "
                          "parameters will be set to nan.")
            return self.error_score
        if isinstance(scores, dict):
            return {name: float(v) if np.ndim(v) == 0 else v for name, v in scores.items()}
        return float(scores) if np.ndim(scores) == 0 else scores
