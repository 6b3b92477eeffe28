"""``MLPStack``: many models of one architecture trained together, in one pass over shared batches.

A hyperparameter grid, cross-validation folds (0/1 sample weights per model), bagging
(bootstrap counts as weights) and seed ensembles all train K networks of one shape on the same
data. Trained one after the other, each fit pays its own fixed costs and its own pass over the
data; trained as a stack, the engine gathers each batch once and takes every model's step on it
inside one kernel call with the GIL released, so the fixed costs are paid once.

Each model of a stack ends with exactly the parameters it would have had trained alone by
``MLP.train`` from the same initial weights, on the same batch order, with its own sample
weights: the stack runs the same per-model code on the same batches (tests check 1e-10 in
float64; in practice the results are bit for bit equal).
"""
import copy
import itertools
import os
import sys
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from . import _engine
from . import _seeding
from . import schedules as _schedules
from ._validation import check_flag as _check_flag
from ._validation import check_int as _check_int
from ._validation import immutable as _immutable
from .io import _constructor_arguments
from .mlp import MLP

__all__ = ["MLPStack"]


# Schedules whose rates are a function of their repr's parameters, the epoch and the base rate
# alone (a subclass, or a LambdaSchedule's function, may compute otherwise).
_PURE_SCHEDULES = (_schedules.Constant, _schedules.ExponentialDecay, _schedules.StepDecay,
                   _schedules.InverseScaling, _schedules.Cosine)


def _own(value):
    """``value`` for one model of ``from_grid`` alone: immutable settings, and lists of them
    (``MLP`` keeps its own copy of a list), as they are; others (optimizer and schedule
    instances) copied, so that changing one model's optimizer in place changes no other
    model, nor the base."""
    if _immutable(value) or (isinstance(value, list) and all(map(_immutable, value))):
        return value
    return copy.deepcopy(value)


def _base_seed(base):
    """The seed ``base`` was built with, as ``MLP``'s ``seed`` takes it: the seed sequence of
    its generator (an int seed as that int; a base built without a seed passes on the entropy
    it drew, so that models of its settings draw its initial weights)."""
    bit_generator = base._rng.bit_generator
    sequence = getattr(bit_generator, "seed_seq", None)
    if type(sequence) is _seeding._SeedWords:
        return sequence._seed
    if isinstance(sequence, np.random.SeedSequence):
        if (type(bit_generator) is np.random.PCG64 and isinstance(sequence.entropy, int)
                and sequence.spawn_key == () and sequence.pool_size == 4):
            return sequence.entropy            # default_rng(entropy) starts here
        return np.random.Generator(type(bit_generator)(sequence))   # copied per model (_own)
    raise ValueError("base's random generator has no seed sequence to start the models from; "
                     "give from_grid seeds=[...] or a 'seed' list in the grid")


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def _thread_count(n_jobs):
    """``n_jobs`` as a number of threads: None every core, and as joblib counts them, -1
    every core, -2 all but one, ... (at least one)."""
    if n_jobs is None:
        return _available_cores()
    n_jobs = _check_int("n_jobs", n_jobs, -sys.maxsize)
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0: give a number of threads, or None or -1 for "
                         "every core (-2 all but one, ...)")
    return max(1, _available_cores() + 1 + n_jobs) if n_jobs < 0 else n_jobs


class MLPStack:
    """K ``MLP`` models of one architecture, trained together on shared batches.

    The models may differ in every setting that does not change the shape of their buffers:
    learning rate and schedule, L1/L2, optimizer and its hyperparameters (any optimizers),
    hidden activations, dropout rates, initializer and seed, clipping. They must share
    ``layer_sizes``, ``dtype``, ``loss`` and the batch-norm layout. All their parameters,
    optimizer states and batch-norm statistics live in one flat buffer per kind, one row per
    model (``params`` has shape ``(K, n_params)``).

    Parameters
    ----------
    models : sequence of MLP
        The models to train together; the stack takes copies (the originals are not changed).

    Attributes
    ----------
    params : ndarray of shape (K, n_params)
        Row k is model k's flat parameter buffer.
    history : list of dict
        Per model, as ``MLP.history``: "loss" and "lr" per epoch trained.
    diverged_ : dict
        Model index -> the message of the divergence that stopped it (its state is that of the
        end of its last finite epoch); empty when every model trained.

    Raises
    ------
    TypeError, ValueError
        If ``models`` is empty, holds something other than ``MLP``, or models whose buffers
        differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLP
    >>> from fastmlp.stack import MLPStack
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> stack = MLPStack.from_grid(MLP([2, 16, 1], seed=0), {"lr": [0.1, 0.3], "l2": [0, 1e-3]})
    >>> stack.train(X, y, epochs=50, batch_size=32)
    >>> len(stack), stack.predict_proba(X).shape
    (4, (4, 200))
    >>> best = stack.models[int(np.argmax([m.score(X, y) for m in stack.models]))]
    """

    def __init__(self, models: Sequence[MLP], *, _copy: bool = True) -> None:
        if isinstance(models, MLP) or not isinstance(models, Sequence) or not models:
            raise TypeError("MLPStack takes a non-empty list of fastmlp.MLP models")
        for i, m in enumerate(models):
            if not isinstance(m, MLP):
                raise TypeError(f"models[{i}] is a {type(m).__name__}, not a fastmlp.MLP")
        first = models[0]
        for i, m in enumerate(models[1:], 1):
            for what, a, b in (("layer_sizes", m.sizes, first.sizes),
                               ("dtype", m.dtype, first.dtype),
                               ("loss", m.loss_name, first.loss_name),
                               ("batch_norm", list(m.batch_norm), list(first.batch_norm))):
                if a != b:
                    raise ValueError(f"every model of a stack needs the same {what}: models[0] "
                                     f"has {b!r}, models[{i}] has {a!r}")
        # _copy=False (fastmlp's own faces): the stack takes the models themselves, whose
        # buffers become views of its rows.
        self._models = [copy.deepcopy(m) for m in models] if _copy else list(models)
        K = len(self._models)
        n_state = max(m._opt_state.size for m in self._models)
        self.params = np.stack([m.params for m in self._models])
        self.opt_state = np.zeros((K, n_state), dtype=first.dtype)
        self.bn_state = np.stack([m.bn_state for m in self._models])
        self.steps = np.concatenate([m._step for m in self._models])
        for k, m in enumerate(self._models):
            self.opt_state[k, :m._opt_state.size] = m._opt_state
            self._adopt(k, m)
        self.history = [m.history for m in self._models]
        self.diverged_ = {}
        # Held while training, and while reading the models (as MLP's lock): a second thread's
        # train, predict or models waits for the first train to end.
        self._lock = threading.RLock()

    def __getstate__(self):
        # The rows copied under the lock: a copy made while another thread trains is the state
        # between two trains, not a mix (the models' own buffers become views of these rows
        # again in __setstate__).
        with self._lock:
            state = dict(self.__dict__)
            for name in ("params", "opt_state", "bn_state", "steps"):
                state[name] = state[name].copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        # Pickling, and so copy.deepcopy, stores each model's buffers apart from the stack's
        # rows (NumPy does not keep views as views): make them views of the rows again, or
        # training the copy would leave its models behind.
        self.__dict__.update(state)
        self._lock = threading.RLock()
        for k, model in enumerate(self._models):
            self._adopt(k, model)

    def _adopt(self, k, model):
        """Make model k's buffers views of row k of the stack's buffers (W, b and the other
        per-layer views follow)."""
        d = model.__dict__          # the buffers are read-only attributes (MLP.__setattr__)
        with model._lock:
            d["params"] = self.params[k]
            d["bn_state"] = self.bn_state[k]
            d["_opt_state"] = self.opt_state[k, :model._opt_state.size]
            d["_step"] = self.steps[k:k + 1]
            model._bind_views()

    @classmethod
    def from_grid(cls, base: MLP, param_grid: Mapping[str, Sequence] | Sequence[Mapping],
                  seeds: Sequence[int] | None = None) -> "MLPStack":
        """A stack of ``base``'s configuration with the settings of every grid point.

        Parameters
        ----------
        base : MLP
            Its settings are the defaults of every model: its constructor's, as they are now
            (an ``lr`` assigned since its last ``train`` is the models' base rate, as it is
            that of base's next ``train``).
        param_grid : dict of lists, or a list of such dicts
            As scikit-learn's ``ParameterGrid``: every combination of the values, for names
            of ``MLP``'s constructor (``lr``, ``l2``, ``lr_decay``, ``optimizer``, ``seed``,
            ...). A grid's ``schedule`` replaces the base's ``lr_decay``, a grid's
            ``lr_decay`` the base's ``schedule`` (a value None leaves the base's other one).
        seeds : list of int, optional
            Crossed with the grid: each grid point once per seed (a seed ensemble). Without
            it, a model's seed is its grid point's ``seed``, else the one ``base`` was built
            with (an int seed as that int; a base built without one passes on the entropy it
            drew: its models then start from base's initial weights when their settings draw
            the same, and so does every ``from_grid`` of that base).

        Returns
        -------
        MLPStack

        Raises
        ------
        TypeError
            If ``base`` is not an ``MLP``, ``param_grid`` is not a dict or a list of dicts, a
            grid's value is not a list of values, or ``seeds`` is not a list.
        ValueError
            For a name that is not a setting of ``MLP``'s constructor (``layer_sizes``
            included: a stack's models share it), an empty list of values, a value ``MLP``
            refuses, or a grid's ``seed`` together with ``seeds``.

        Examples
        --------
        >>> from fastmlp import MLP
        >>> from fastmlp.stack import MLPStack
        >>> stack = MLPStack.from_grid(MLP([2, 8, 1]), {"lr": [0.1, 0.3], "l2": [0, 1e-3]},
        ...                            seeds=[0, 1])
        >>> len(stack), sorted({m.base_lr for m in stack.models})
        (8, [0.1, 0.3])
        """
        if not isinstance(base, MLP):
            raise TypeError(f"base must be a fastmlp.MLP; got {type(base).__name__}")
        if isinstance(param_grid, Mapping):
            grids = [param_grid]
        elif isinstance(param_grid, Sequence) and not isinstance(param_grid, str) and all(
                isinstance(g, Mapping) for g in param_grid):
            grids = list(param_grid)
        else:
            raise TypeError(f"param_grid must be a dict of lists of values, or a list of such "
                            f"dicts; got {param_grid!r}")
        if seeds is not None and (isinstance(seeds, (str, bytes))
                                  or not isinstance(seeds, (Sequence, np.ndarray))):
            raise TypeError(f"seeds must be a list of ints; got {seeds!r}")
        if seeds is not None and any("seed" in grid for grid in grids):
            raise ValueError("give the seeds either in the grid (a 'seed' list) or as "
                             "seeds=, not both")
        settings = _constructor_arguments(base)
        settings.pop("layer_sizes")
        base_seed = None
        if seeds is None and any("seed" not in grid for grid in grids):
            base_seed = _base_seed(base)
        models = []
        for grid in grids:
            names = sorted(grid)
            unknown = set(names) - set(settings) - {"seed"}
            if unknown:
                raise ValueError(f"unknown MLP settings in the grid: {sorted(unknown)}"
                                 + (" (a stack's models share base's layer_sizes)"
                                    if "layer_sizes" in unknown else ""))
            for name in names:
                values = grid[name]
                if isinstance(values, (str, bytes)) or not isinstance(values,
                                                                       (Sequence, np.ndarray)):
                    raise TypeError(f"the grid's {name!r} must be a list of values; got "
                                    f"{values!r} (a single value goes in a list of one)")
                if len(values) == 0:
                    raise ValueError(f"the grid's {name!r} is an empty list: give at least "
                                     f"one value")
            for values in itertools.product(*(list(grid[n]) for n in names)):
                point = dict(zip(names, values))
                for seed in (seeds if seeds is not None else [point.get("seed", base_seed)]):
                    kwargs = {**settings, **point, "seed": seed}
                    # MLP takes lr_decay or a schedule: the grid's replaces the base's other.
                    if point.get("lr_decay") is not None and "schedule" not in point:
                        kwargs["schedule"] = None
                    if point.get("schedule") is not None and "lr_decay" not in point:
                        kwargs["lr_decay"] = None
                    models.append(MLP(base.sizes, **{name: _own(value)
                                                     for name, value in kwargs.items()}))
        # The models are new and share no setting object (_own): the stack takes them as they
        # are, without copying them again.
        return cls(models, _copy=False)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"MLPStack({len(self)} x {self._models[0].sizes}, dtype={self.params.dtype.name})"

    @property
    def models(self) -> list[MLP]:
        """Independent copies of the models, as ordinary ``MLP`` objects (changing them does
        not change the stack, nor the other way round)."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._models]

    def train(self, X, y, epochs: int = 30, batch_size: int | None = None,
              shuffle: bool = True, shuffle_seed: int | None = None, *,
              sample_weight=None, n_jobs: int | None = None) -> None:
        """Train every model for ``epochs`` epochs on the same batches.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like
            As ``MLP.train``.
        epochs : int, default 30
        batch_size : int or None, default None (full batch)
        shuffle : bool, default True
        shuffle_seed : int or None
            Orders from ``numpy.random.default_rng(shuffle_seed)`` (the same orders
            ``MLP.train(..., shuffle_seed=...)`` draws); by default from the first model's
            generator.
        sample_weight : array-like of shape (K, n_samples) or (n_samples,), optional
            Row k weighs model k's samples as ``MLP.train``'s ``sample_weight`` would
            (normalized to mean 1 per model): 0/1 rows train cross-validation folds, bootstrap
            counts train a bagged ensemble.
        n_jobs : int or None, default None
            Threads to train in: the models are split into this many groups, each trained by
            its own kernel call (the kernels release the GIL). None and -1 use every core
            this process may run on; as in joblib, -2 all but one, and so on (at least one).
            The results do not depend on it.

        Raises
        ------
        ValueError, TypeError
            On invalid data or settings (the stack is left unchanged). A model that diverges
            does not raise: it stops, keeps its last finite state and is listed in
            ``diverged_``, while the others train on.
        """
        with self._lock:
            first = self._models[0]
            X = first._check_X(X)
            n = X.shape[0]
            Y, rows, classes = first._encode_targets(y, n)
            epochs = _check_int("epochs", epochs, 1)
            _check_flag("shuffle", shuffle)
            if shuffle_seed is not None:
                _check_int("shuffle_seed", shuffle_seed, 0)
            K = len(self._models)
            weights, scale, weighted = self._weights(sample_weight, K, n)
            batch = n if batch_size is None else min(_check_int("batch_size", batch_size, 1), n)
            n_jobs = _thread_count(n_jobs)
            schedules = []
            for i, m in enumerate(self._models):
                m._check_hyperparameters()
                if m.early_stopping:
                    raise ValueError(f"models[{i}] has early_stopping=True, which a stack does not "
                                     f"run yet; train it alone with MLP.train")
                schedule = m._resolve_schedule(epochs)
                if schedule.adaptive:
                    raise ValueError(f"models[{i}] has the adaptive schedule {schedule!r}, which a "
                                     f"stack does not run yet; train it alone with MLP.train")
                schedules.append(schedule)
            # Every check has passed: from here on the models change.
            for m in self._models:
                m.classes_ = classes
                m.base_lr = m._next_base_lr()
            rng = first._rng if shuffle_seed is None else _seeding.generator(shuffle_seed)
            seeds = np.array([int(m._rng.integers(2**63)) if any(r > 0 for r in m.dropout) else 0
                              for m in self._models], dtype=np.uint64)
            for m, s in zip(self._models, schedules):
                s.reset()
                m.history = {"loss": [], "lr": []}
            self.history = [m.history for m in self._models]
            self.diverged_ = {}
            runner = _engine.StackRunner(self, X, Y, weights, scale, weighted, batch, seeds, n_jobs)
            with runner:
                self._run_epochs(runner, epochs, shuffle, rng, schedules)

    @staticmethod
    def _weights(sample_weight, K, n):
        """Per-model weights as ``MLP._sample_weights`` normalizes them: the float64 rows, the
        factor that scales each to mean 1, and whether a model is weighted at all."""
        scale = np.ones(K)
        weighted = np.zeros(K, dtype=np.uint8)
        if sample_weight is None:
            return None, scale, weighted
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "biuf" or w.shape not in ((K, n), (1, n), (n,)):
            raise ValueError(f"sample_weight must be ({K}, {n}) or ({n},) real numbers; got "
                             f"shape {w.shape}, dtype {w.dtype}")
        if w.ndim == 1:
            w = w[None, :]              # one row for every model, not copied K times
        w = np.ascontiguousarray(w, dtype=np.float64)
        for k in range(K):
            row = w[k % w.shape[0]]
            if not np.all(np.isfinite(row)) or np.any(row < 0) or not np.any(row > 0):
                # (named as given: one row for every model is "sample_weight")
                name = "sample_weight" if w.shape[0] == 1 else f"sample_weight[{k}]"
                raise ValueError(f"{name} must be finite, non-negative and not all zero")
            if not np.all(row == row[0]):
                weighted[k] = 1
                with np.errstate(over="ignore"):
                    scale[k] = n / row.sum()
                if not (np.isfinite(scale[k]) and scale[k] > 0):     # the sum overflows
                    top = row.max()
                    scale[k] = (n / top) / (row / top).sum()
        return w, scale, weighted

    def _rates(self, schedules, first, count):
        """The (count, K) rates of epochs first + 1 .. first + count: model k's schedule from
        its ``base_lr``, computed once for the models whose built-in schedules and base rates
        are equal (a grid over the penalty, or seeds, repeats them). A block at a time, as
        ``MLP.train`` computes them: ``epochs`` may be huge (trained until Ctrl-C)."""
        columns, known = [], {}
        for m, s in zip(self._models, schedules):
            key = (type(s), repr(s), m.base_lr) if type(s) in _PURE_SCHEDULES else None
            column = known.get(key) if key is not None else None
            if column is None:
                column = s.rates(m.base_lr, count, start=first + 1)
                if key is not None:
                    known[key] = column
            columns.append(column)
        return np.stack(columns, axis=1)

    def _run_epochs(self, runner, epochs, shuffle, rng, schedules):
        n = runner.X.shape[0]
        K = len(self._models)
        per_call = min(epochs, runner.epochs_per_call(n))
        identity = np.arange(n, dtype=np.intp)
        order_buffer = np.empty((per_call, n), dtype=np.intp)
        order_buffer[:] = identity
        losses = np.empty((per_call, K))
        first = 0
        while first < epochs and not runner.interrupted and runner.active():
            count = min(per_call, epochs - first)
            orders = order_buffer[:count]
            if shuffle:
                rng.permuted(np.broadcast_to(identity, (count, n)), axis=1, out=orders)
            rates = self._rates(schedules, first, count)
            done = runner.run(orders, rates, losses)
            for k, m in enumerate(self._models):
                m.history["loss"] += losses[:done[k], k].tolist()
                m.history["lr"] += rates[:done[k], k].tolist()
                if done[k]:
                    m.lr = m._lr_set = float(rates[done[k] - 1, k])
                if k in runner.diverged and k not in self.diverged_:
                    self.diverged_[k] = runner.diverged[k]
            first += count

    def _outputs(self, X, method):
        first = self._models[0]
        X = first._check_X(X)
        with self._lock:
            return np.stack([getattr(m, method)(X) for m in self._models])

    def predict_proba(self, X) -> np.ndarray:
        """Each model's ``predict_proba``: shape ``(K, n_samples)`` for binary models,
        ``(K, n_samples, n_classes)`` otherwise."""
        return self._outputs(X, "predict_proba")

    def predict(self, X) -> np.ndarray:
        """Each model's ``predict``, stacked: shape ``(K, n_samples, ...)``."""
        return self._outputs(X, "predict")

    def forward(self, X) -> np.ndarray:
        """Each model's ``forward``, stacked."""
        return self._outputs(X, "forward")
