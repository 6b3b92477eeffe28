"""``MLP``: configuration, input checks, initialization and the loop over epochs.

All per-batch arithmetic happens in the compiled kernels (``fastmlp._kernels``); this module
validates what the user gives it, lays the parameters out in one flat buffer, encodes the targets,
draws the batch orders, and calls the engine once per epoch when Python has work between epochs
(progress lines, validation, callbacks, an adaptive schedule) and once for all epochs otherwise.
"""
import contextlib
import copy
import functools
import math
import numbers
import os
import sys
import threading
import time
import warnings

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, DTypeLike

from . import _engine
from . import _seeding
from . import _threads
from . import optimizers as _optimizers
from . import schedules as _schedules
from ._kernels import _sparse, _train
from .activations import resolve_activations
from .callbacks import Callback, EarlyStopping, as_callback
from .initializers import INITIALIZERS, initial_weights
from ._validation import check_flag as _check_flag
from ._validation import check_int as _check_int
from ._validation import check_real as _check_real
from .losses import resolve_loss

__all__ = ["MLP"]

# A hidden activation: its name, or (name, parameter), e.g. ("leaky_relu", 0.2).
ActivationSpec = Union[str, tuple[str, float]]

# Rows per kernel call when predicting: bounds the workspace, not the input size. Wide layers
# get fewer rows, so that the per-row buffers stay within _PREDICT_BUDGET entries.
_PREDICT_CHUNK = 4096
_PREDICT_BUDGET = 1 << 24

# Schedules whose rates depend on nothing but the epoch and the base rate, and the most epochs
# whose rates a train call computes at once (without Python work between its kernel calls).
_PURE_SCHEDULES = frozenset({_schedules.Constant, _schedules.ExponentialDecay,
                             _schedules.StepDecay, _schedules.InverseScaling,
                             _schedules.Cosine})
_MAX_RATES = 1 << 16
_RATES = {}     # (schedule's class and settings, base rate, epochs) -> read-only rates


def _pure_rates(schedule, base_lr, epochs):
    """``schedule.rates(base_lr, epochs)`` of a schedule in ``_PURE_SCHEDULES``, read-only and
    kept for the next fit of the same settings; None when some rate is bad (the block that
    holds it then raises, as without this shortcut)."""
    key = (type(schedule), tuple(vars(schedule).items()), base_lr, epochs)
    try:
        rates = _RATES.get(key)
    except TypeError:               # a setting replaced by an unhashable value: not kept
        key, rates = None, None
    if rates is None:
        try:
            rates = schedule.rates(base_lr, epochs)
        except ValueError:
            return None
        rates.flags.writeable = False
        if key is not None:
            if len(_RATES) >= 64:
                _RATES.clear()
            _RATES[key] = rates
    return rates

# The engine's descriptions of networks (``_train.Network``), shared by every model of the same
# configuration: read-only once built, and costly to build (tens of microseconds) next to the
# rest of a small model's construction. Settings -> Network, the oldest dropped beyond
# _NETWORKS_KEPT.
_NETWORKS = {}
_NETWORKS_KEPT = 64
_NETWORKS_LOCK = threading.Lock()
_NO_NETWORKS = {}       # a model's networks before its first (never written)


class _FrozenList(list):
    """A list that cannot change: the structural settings of a model (``sizes``, ``dropout``,
    ``batch_norm``, a per-layer ``hidden_activation``). It still equals and prints as the list
    the user gave."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a model's structure is fixed at construction; build a new MLP with "
                        "the settings you want")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = __iadd__ = __imul__ = _refuse

    def __reduce__(self):
        return type(self), (list(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class _ParamList(list):
    """The list behind ``MLP.W``, ``MLP.b`` (and ``gamma``, ``beta``, ``running_mean``,
    ``running_var``): views into the model's flat buffers.

    Reading ``model.W[k]`` gives the view; assigning ``model.W[k] = array`` copies the values
    into the model (the shape must match, and every value must be finite in the model's dtype),
    so the model never loses track of its parameters.
    """

    def __init__(self, views, lock=None, minimum=None):
        super().__init__(views)
        self._lock = lock if lock is not None else threading.RLock()
        self._minimum = minimum

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError("assign one layer at a time, e.g. model.W[0] = new_weights")
        target = list.__getitem__(self, index)
        if target is None:
            raise ValueError(f"layer {index} has no such parameter (no batch normalization)")
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(f"layer {index} has shape {target.shape}; got {value.shape}")
        if value.dtype.kind not in "biuf":
            raise ValueError(f"the new values of layer {index} must be real numbers; got dtype "
                             f"{value.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            converted = value.astype(target.dtype)
        if not np.all(np.isfinite(converted)):
            beyond = np.all(np.isfinite(value)) if value.dtype.kind == "f" else True
            raise ValueError(f"the new values of layer {index} must be finite real numbers "
                             f"(no NaN or infinity)" +
                             (f"; some exceed the range of the model's dtype {target.dtype}"
                              if beyond else ""))
        if self._minimum is not None and np.any(converted < self._minimum):
            raise ValueError(f"the new values of layer {index} must be >= {self._minimum:g}")
        with self._lock:
            np.copyto(target, converted)

    def __delitem__(self, index):
        raise TypeError("the layers of a model cannot be removed")

    def _refuse(self, *args, **kwargs):
        raise TypeError("the number of layers is fixed by layer_sizes")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse


def _locked(method):
    """Run ``method`` holding the model's lock (see ``MLP``, "One model, many threads")."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


# Attributes fixed at construction: they decide the layout of the flat buffers, or the kernels
# read them only when the model is built (so a new value would be ignored by training yet
# written by save).
_STRUCTURAL = frozenset({
    "sizes", "dtype", "params", "bn_state", "_opt_state", "_step", "W", "b", "gamma", "beta",
    "running_mean", "running_var", "hidden_activation", "loss_name", "batch_norm", "dropout",
    "optimizer", "init", "_act_ids", "_act_params", "_loss_id", "_task", "_lock"})


def _per_hidden(name, value, n_hidden, check):
    """One setting per hidden layer, from a single value or a list of them."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n_hidden
    if len(values) != n_hidden:
        raise ValueError(f"{name} needs one value per hidden layer ({n_hidden}); got {len(values)}")
    return [check(name, v) for v in values]


def _check_dropout(name, value):
    return _check_real(name, value, 0, 1, high_open=True)


def _scaled_to_max_one(w):
    """Non-negative finite weights divided by their largest (float64), so that sums cannot
    overflow; all zeros stay zeros."""
    w = np.asarray(w, dtype=np.float64)
    top = w.max()
    return w / top if top > 0 else w


def _mean_one(w):
    """Non-negative float64 weights, not all zero, scaled to mean 1: ``w * (n / w.sum())``, or
    the same through ``w / max(w)`` when the sum or the factor overflows (weights near
    float64's largest or smallest numbers, which would otherwise all become 0 or inf)."""
    n = len(w)
    with np.errstate(over="ignore"):
        scale = n / w.sum()
    if not (np.isfinite(scale) and scale > 0):
        w = _scaled_to_max_one(w)
        scale = n / w.sum()
    return w * scale


def _kernel_input(X):
    """X as the kernels take it: the checked array, or a sparse matrix's arrays."""
    return _sparse.CSR(X) if scipy.sparse.issparse(X) else X


def _take_rows(X, rows):
    """The rows ``rows`` (indices or a mask) of a checked X, in the same form."""
    return X[rows] if scipy.sparse.issparse(X) else np.ascontiguousarray(X[rows])


_FLOAT64 = np.dtype(np.float64)
# A ufunc reduction called directly, without the Python layer of np.max.
_largest = np.maximum.reduce
_UNSIGNED = {size: np.dtype(f"u{size}") for size in (1, 2, 4, 8)}


def _check_dtype(dtype):
    if dtype is np.float64:         # the default, without NumPy's conversion
        return _FLOAT64
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float64, np.float32):
        raise TypeError(f"dtype must be numpy.float64 or numpy.float32; got {dtype!r}")
    return dt


class MLP:
    """A multilayer perceptron trained by backpropagation in compiled kernels.

    A drop-in replacement for the lecture's ``SimpleMLP`` (the first seven parameters, with the
    same defaults and the same initial weights for a seed), extended to every common task,
    activation, optimizer, regularizer and schedule.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden_1, ..., n_outputs]``: at least two positive widths.
    lr : float, default 0.1
        Base learning rate, > 0.
    seed : int, numpy.random.Generator or None, default None
        Seeds the generator that draws the initial weights, then the validation split, the
        dropout seed and each epoch's shuffle order. With a seed, training is repeatable bit for
        bit (same dtype, same BLAS thread count).
    l2 : float, default 0.0
        L2 penalty: adds ``0.5 * l2 * sum(W**2)`` to the objective (biases not penalized).
    hidden_activation : str, (str, float) or list of them, default "relu"
        Activation of the hidden layers, one for all or one per layer: "identity", "sigmoid",
        "tanh", "relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu" (or "swish"),
        "softplus", "mish". A pair sets the activation's parameter: ("leaky_relu", 0.2) is the
        negative slope, ("elu", 0.5) alpha.
    lr_decay : float in (0, 1] or None, default None
        The lecture's schedule: epoch ``e`` (from 1) of each ``train`` call uses
        ``lr * lr_decay ** (e - 1)``. Shorthand for ``schedule="exponential"``.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        The dtype of the parameters and of all arithmetic. Inputs are converted to it.
    loss : str, default "auto"
        "binary_crossentropy" (sigmoid outputs: binary, or multi-label when there are several
        outputs), "categorical_crossentropy" (softmax, multi-class), "squared_error",
        "absolute_error" or "huber" (identity outputs: regression), "poisson" (regression of
        non-negative targets with a log link, as scikit-learn's: the outputs are ``exp`` of the
        last layer, the loss half the Poisson deviance). "auto" picks binary cross-entropy for
        one output and categorical cross-entropy for several.
    l1 : float, default 0.0
        L1 penalty: adds ``l1 * sum(|W|)`` to the objective.
    optimizer : str or fastmlp.optimizers optimizer, default "sgd"
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", or an instance
        such as ``fastmlp.optimizers.Adam(beta1=0.9)`` for non-default parameters.
    schedule : str, callable or fastmlp.schedules.Schedule, optional
        The learning-rate schedule between epochs: "constant", "invscaling", "plateau",
        "cosine" (annealed over each ``train`` call's epochs), a ``fastmlp.schedules``
        instance (``StepDecay(10)``, ``Cosine(100, warmup_epochs=5)``, ...; needed for
        schedules with required parameters), or a function ``epoch -> rate``. Default:
        constant (or exponential when ``lr_decay`` is set).
    clip_norm, clip_value : float or None, default None
        Clip the gradient to this global L2 norm, and/or every entry to ``[-clip_value,
        clip_value]``, before each update.
    dropout : float or list of float, default 0.0
        Inverted-dropout rate of each hidden layer's output, in [0, 1); off at prediction.
    batch_norm : bool or list of bool, default False
        Batch-normalize each hidden layer's pre-activations (learnable scale ``gamma`` and shift
        ``beta``; batch statistics in training, running averages at prediction).
    init : str or None, default None
        Weight initializer for every layer (``fastmlp.initializers.INITIALIZERS``); by default
        the lecture's rule, He normal after ReLU-like layers and Xavier normal otherwise.
    label_smoothing : float in [0, 1), default 0.0
        For categorical cross-entropy: targets become ``(1 - s) y + s / n_classes``.
    huber_delta : float, default 1.0
        Where the Huber loss turns from quadratic to linear.
    early_stopping : bool, default False
        Stop when the validation loss has not improved by ``min_delta`` for ``patience``
        epochs, and restore the best weights. Validation data comes from ``train``'s
        ``validation_data`` or, when not given, a ``validation_fraction`` of the training set.
    validation_fraction : float in (0, 1), default 0.1
    patience : int, default 10
    min_delta : float, default 0.0

    Attributes
    ----------
    W, b : list of ndarray
        ``W[k]`` of shape ``(layer_sizes[k], layer_sizes[k+1])`` and ``b[k]`` of shape
        ``(layer_sizes[k+1],)``: views of ``params``, so in-place writes change the model.
    gamma, beta : list of ndarray or None
        Per hidden layer, the batch-norm scale and shift (views of ``params``), None where
        batch normalization is off.
    running_mean, running_var : list of ndarray or None
        Per hidden layer, the batch-norm statistics used at prediction.
    params : ndarray
        The flat buffer holding every trainable parameter.
    classes_ : ndarray or None
        For categorical cross-entropy, the labels the outputs stand for (set by the first
        ``train``).
    lr : float
        The rate of the last epoch trained (``base_lr`` before any training). Assigning it
        sets the base rate of later ``train`` calls, as does assigning ``lr_decay`` its decay
        (the lecture's SimpleMLP reads both in ``train``).
    history : dict
        After ``train``, lists with one value per epoch: "loss" (mean batch loss plus the
        penalty at the epoch's end), "lr", and with validation data "val_loss" and
        "val_accuracy" (classification) or "val_r2" (regression). With early stopping, also
        "best_epoch", a number: the same as the attribute ``best_epoch``.
    best_epoch : int or None
        With early stopping (``early_stopping=True`` or an ``EarlyStopping`` callback), the
        epoch of the last ``train`` call (counted from 1) with the best monitored value: the
        one whose weights the model holds when ``restore_best_weights`` is on. None without.

    Raises
    ------
    ValueError, TypeError
        On an invalid parameter; the message says which and what is allowed, or when
        ``layer_sizes`` need more memory than the machine can give.

    Notes
    -----
    **Structure is read-only.** ``sizes``, ``dtype``, ``params``, ``bn_state``, ``W``, ``b``,
    ``gamma``, ``beta``, ``running_mean``, ``running_var``, ``hidden_activation``,
    ``loss_name``, ``batch_norm``, ``dropout``, ``optimizer`` and ``init`` fix the layout of the
    buffers and what the kernels compute: assigning one raises ``AttributeError`` (build a new
    model instead). The values in the buffers may change: ``model.W[k] = array`` (checked:
    right shape, finite in the model's dtype) or in-place writes such as
    ``model.params[...] = theta``. The hyperparameters (``lr``, ``l1``, ``l2``, ``lr_decay``,
    ``schedule``, ``huber_delta``, ``label_smoothing``, ``clip_norm``, ``clip_value``,
    ``early_stopping``, ``validation_fraction``, ``patience``, ``min_delta`` and the optimizer's
    own, e.g. ``model.optimizer.beta1``) may be assigned between calls; each is checked again
    where it is used, with the same message as in the constructor.

    **One model, many threads: calls are serialized by a lock.** ``train``, ``fit``,
    ``forward``, ``predict``, ``predict_proba``, ``score``, ``loss``, ``loss_and_gradient``,
    ``save`` (and pickling, copying, ``W[k] = ...``) hold the model's reentrant lock, so using
    one model from several threads at once is safe: each call sees the model between two fits,
    never half-trained, and a file saved meanwhile always loads. Calls on one model therefore
    run one after the other (a ``predict`` waits for a running ``train`` to finish); to predict
    in parallel, use copies (``copy.deepcopy(model)``). Callbacks run inside ``train`` and may
    call the model's own methods; they must not wait for another thread that uses the same
    model. In-place writes into the arrays bypass the lock.

    **Divergence.** When training produces a NaN or an infinity (in the loss, the parameters,
    the optimizer's state, the running statistics, or the network's outputs on the training
    data after the last epoch), ``train`` raises ``ValueError`` (a
    ``fastmlp._engine.TrainingDiverged``) and the model keeps the state of the end of the last
    epoch whose every value was finite (its state before the call if that was the first):
    parameters, optimizer state, running statistics, all finite.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> model = MLP([2, 16, 16, 1], lr=0.3, seed=0)
    >>> model.train(X, y, epochs=200, batch_size=32, verbose=False)
    >>> bool((model.predict(X) == y).mean() > 0.9)
    True
    """

    def __init__(self, layer_sizes: Sequence[int], lr: float = 0.1,
                 seed: int | np.random.Generator | None = None, l2: float = 0.0,
                 hidden_activation: ActivationSpec | list[ActivationSpec] = "relu",
                 lr_decay: float | None = None, dtype: DTypeLike = np.float64, *,
                 loss: str = "auto", l1: float = 0.0,
                 optimizer: str | _optimizers.Optimizer = "sgd",
                 schedule: str | _schedules.Schedule | Callable[[int], float] | None = None,
                 clip_norm: float | None = None, clip_value: float | None = None,
                 dropout: float | Sequence[float] = 0.0,
                 batch_norm: bool | Sequence[bool] = False, init: str | None = None,
                 label_smoothing: float = 0.0, huber_delta: float = 1.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 patience: int = 10, min_delta: float = 0.0) -> None:
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError(f"layer_sizes must be a sequence of ints like [2, 4, 4, 1]; "
                            f"got {layer_sizes!r}")
        sizes = [_check_int("every entry of layer_sizes", s, 1) for s in layer_sizes]
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output width; got {sizes}")
        n_hidden = len(sizes) - 2
        # Every setting is checked first, in the order of the signature, then written straight
        # into __dict__: __setattr__'s guard of the structure has nothing to guard yet.
        dtype = _check_dtype(dtype)
        act_ids, act_params, inits = resolve_activations(hidden_activation, n_hidden)
        loss_name, loss_id, task = resolve_loss(loss, sizes[-1])
        lr = _check_real("lr", lr, low=0, low_open=True)
        l2 = _check_real("l2", l2, low=0)
        l1 = _check_real("l1", l1, low=0)
        if lr_decay is not None:
            lr_decay = _check_real("lr_decay", lr_decay, low=0, high=1, low_open=True)
        if schedule is not None and lr_decay is not None:
            raise ValueError("give either lr_decay or schedule, not both "
                             "(lr_decay=d is schedule=ExponentialDecay(d))")
        schedule = (schedule if isinstance(schedule, str) and schedule == "cosine"
                    else _schedules.get_schedule(schedule))
        optimizer = _optimizers.get_optimizer(optimizer)
        if clip_norm is not None:
            clip_norm = _check_real("clip_norm", clip_norm, 0, low_open=True)
        if clip_value is not None:
            clip_value = _check_real("clip_value", clip_value, 0, low_open=True)
        dropout = _per_hidden("dropout", dropout, n_hidden, _check_dropout)
        batch_norm = _per_hidden("batch_norm", batch_norm, n_hidden, _check_flag)
        if init is not None and init not in INITIALIZERS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(map(repr, INITIALIZERS))}")
        label_smoothing = _check_real("label_smoothing", label_smoothing, 0, 1, high_open=True)
        huber_delta = _check_real("huber_delta", huber_delta, 0, low_open=True)
        early_stopping = _check_flag("early_stopping", early_stopping)
        validation_fraction = _check_real("validation_fraction", validation_fraction, 0, 1,
                                          low_open=True, high_open=True)
        patience = _check_int("patience", patience, 1)
        min_delta = _check_real("min_delta", min_delta, 0)
        rng = _seeding.generator(seed)

        d = self.__dict__
        d.update(
            _lock=threading.RLock(), dtype=dtype, sizes=_FrozenList(sizes),
            hidden_activation=(_FrozenList(hidden_activation)
                               if isinstance(hidden_activation, list) else hidden_activation),
            _act_ids=act_ids, _act_params=act_params, loss_name=loss_name, _loss_id=loss_id,
            _task=task, lr=lr, base_lr=lr, l2=l2, l1=l1, lr_decay=lr_decay, _schedule=schedule,
            _lr_set=lr, optimizer=optimizer, clip_norm=clip_norm, clip_value=clip_value,
            dropout=_FrozenList(dropout), batch_norm=_FrozenList(batch_norm), init=init,
            label_smoothing=label_smoothing, huber_delta=huber_delta,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, min_delta=min_delta, _rng=rng)
        # Checks the layout before anything is allocated (the settings were checked above).
        layout = self._network(max_batch=1, _checked=True)
        try:
            params = np.zeros(layout.n_params, dtype=dtype)
            d["params"] = params
            d["bn_state"] = np.zeros(layout.bn_state_size, dtype=dtype)
            d["_opt_state"] = np.zeros(layout.n_state, dtype=dtype)
            W = initial_weights(rng, sizes, init if init is not None else inits)
        except MemoryError:
            raise ValueError(f"layer_sizes {sizes} need {layout.n_params:,} parameters "
                             f"({layout.n_params * dtype.itemsize / 2**30:,.1f} GiB, "
                             f"twice that with the optimizer's state), more memory than this "
                             f"machine can allocate; use smaller layers") from None
        d["_step"] = np.zeros(1, dtype=np.int64)
        self._bind_views(layout)
        # The drawn weights are finite (normal or uniform draws of a finite scale), so they
        # are copied without the checks of W[k] = ...
        for target, values in zip(d["W"], W):
            target[...] = values
        for k in range(n_hidden):
            if batch_norm[k]:
                d["gamma"][k][:] = 1
                d["running_var"][k][:] = 1
        d["classes_"] = None
        d["history"] = {"loss": [], "lr": []}
        d["best_epoch"] = None

    @property
    def schedule(self):
        """The learning-rate schedule (see the class docstring). Assigning it resolves the new
        value as the constructor does; "cosine" alone anneals over each ``train`` call's
        epochs."""
        return self._schedule

    @schedule.setter
    def schedule(self, value):
        self._schedule = (value if isinstance(value, str) and value == "cosine"
                          else _schedules.get_schedule(value))

    def _bind_views(self, layout=None):
        """Make W, b, gamma, beta, running_mean and running_var views of the flat buffers, and
        note the figures of the layer sizes that each prediction reads (``_blas_work``,
        ``_predict_rows``)."""
        if layout is None:
            layout = self._network(max_batch=1)
        sizes, widths = self.sizes, self.sizes[1:-1]
        d = self.__dict__        # these attributes are read-only (see __setattr__)
        d["_widest"] = max([a * b for a, b in zip(sizes[:-1], sizes[1:])])
        # Entries per row of a prediction pass: activations, derivatives, deltas, targets (and
        # the batch input, for dense X).
        d["_row_entries"] = 4 * sum(sizes[1:])

        def views(buffer, offsets, shapes, minimum=None):
            # The offsets as plain ints: a NumPy array is slow to read one entry at a time.
            return _ParamList([buffer[o:o + math.prod(shape)].reshape(shape) if o >= 0
                               else None for o, shape in zip(offsets.tolist(), shapes)],
                              self._lock, minimum)

        d["W"] = views(self.params, layout.w_off, zip(sizes[:-1], sizes[1:]))
        d["b"] = views(self.params, layout.b_off, zip(sizes[1:]))
        if any(self.batch_norm):
            d["gamma"] = views(self.params, layout.g_off, zip(widths))
            d["beta"] = views(self.params, layout.be_off, zip(widths))
            d["running_mean"] = views(self.bn_state, layout.rm_off, zip(widths))
            d["running_var"] = views(self.bn_state, layout.rv_off, zip(widths), minimum=0)
        else:                    # nothing of batch normalization in the buffers
            for name in ("gamma", "beta", "running_mean", "running_var"):
                d[name] = _ParamList([None] * len(widths), self._lock,
                                     0 if name == "running_var" else None)

    def __setattr__(self, name, value):
        if name in _STRUCTURAL and name in self.__dict__:
            raise AttributeError(
                f"cannot set {name!r}: it fixes the model's structure (the layout of its buffers "
                f"and what the kernels compute), so it is read-only after construction: build a "
                f"new MLP(...) with the setting you want" +
                ("; write into the arrays in place (model.params[...] = ..., "
                 "model.W[k] = ...) to change their values" if name in
                 ("params", "bn_state", "W", "b", "gamma", "beta", "running_mean",
                  "running_var") else
                 "; change its hyperparameters in place (e.g. model.optimizer.beta1 = 0.8)"
                 if name == "optimizer" else ""))
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name in _STRUCTURAL:
            raise AttributeError(f"cannot delete {name!r}: it is part of the model's structure")
        object.__delattr__(self, name)

    def __deepcopy__(self, memo):
        # As copy.deepcopy through pickling's state (``__getstate__``/``__setstate__``),
        # without copying the buffers twice, deep-copying the dtype (immutable) or pickling the
        # generator (see ``_seeding.copy_generator``): a quarter of the time.
        state = self.__getstate__()              # the buffers copied, under the lock
        new = object.__new__(type(self))
        memo[id(self)] = new
        fresh = {name: state.pop(name) for name in ("params", "bn_state", "_opt_state", "_step",
                                                    "dtype")}
        fresh["_rng"] = _seeding.copy_generator(state.pop("_rng"), memo)
        fresh.update(copy.deepcopy(state, memo))
        new.__setstate__(fresh)
        return new

    def __getstate__(self):
        # The views, the lock and the engine's cached layouts are rebuilt on unpickling, so that
        # W and b stay views of params in the copy. The buffers are copied under the lock, so
        # a copy made while another thread trains is the state between two epochs, not a mix.
        views = ("W", "b", "gamma", "beta", "running_mean", "running_var", "_networks", "_lock",
                 "_widest", "_row_entries", "_structure")
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in views}
            for name in ("params", "bn_state", "_opt_state", "_step"):
                state[name] = state[name].copy()
        return state

    def __setstate__(self, state):
        state = dict(state)
        if "schedule" in state:             # pickled before schedule became a property
            state["_schedule"] = state.pop("schedule")
        for name in ("sizes", "dropout", "batch_norm"):
            state[name] = _FrozenList(state[name])
        if isinstance(state.get("hidden_activation"), list):
            state["hidden_activation"] = _FrozenList(state["hidden_activation"])
        for name in ("params", "bn_state", "_opt_state", "_step"):
            # Unpickled buffers may be read-only (e.g. joblib's memory maps): own writable ones.
            if not state[name].flags.writeable:
                state[name] = np.array(state[name])
        self.__dict__.update(state)
        self.__dict__["_lock"] = threading.RLock()
        self._bind_views()

    def __repr__(self):
        return (f"MLP({self.sizes}, lr={self.base_lr:g}, loss={self.loss_name!r}, "
                f"hidden_activation={self.hidden_activation!r}, optimizer={self.optimizer!r}, "
                f"schedule={self.schedule!r}, dtype={self.dtype.name})")

    # -- checks at the boundary -------------------------------------------------------------

    def _check_rates(self):
        _check_real("lr", self.lr, low=0, low_open=True)
        _check_real("base_lr", self.base_lr, low=0, low_open=True)
        _check_real("l2", self.l2, low=0)
        _check_real("l1", self.l1, low=0)
        if self.lr_decay is not None:
            _check_real("lr_decay", self.lr_decay, low=0, high=1, low_open=True)

    def _check_hyperparameters(self):
        """Check every setting that may be assigned between calls, where training uses it."""
        self._check_rates()
        _check_flag("early_stopping", self.early_stopping)
        _check_real("validation_fraction", self.validation_fraction, 0, 1, low_open=True,
                    high_open=True)
        _check_int("patience", self.patience, 1)
        _check_real("min_delta", self.min_delta, 0)
        self._check_network_settings()

    def _check_network_settings(self):
        """Check the settings the kernels read (see ``_network``)."""
        _check_real("l2", self.l2, low=0)
        _check_real("l1", self.l1, low=0)
        _check_real("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        _check_real("huber_delta", self.huber_delta, 0, low_open=True)
        for name in ("clip_norm", "clip_value"):
            if getattr(self, name) is not None:
                _check_real(name, getattr(self, name), 0, low_open=True)
        self.optimizer._values()        # checks the optimizer's hyperparameters

    def _check_X(self, X):
        """X as a C-contiguous 2-D array of the model's dtype (not copied when it already is),
        or for a ``scipy.sparse`` X, as ``_check_sparse_X``."""
        return self._check_X_bound(X)[0]

    def _check_X_bound(self, X):
        """``_check_X``, and max |X| from the same pass over a dense X that checks it is
        finite (None for a sparse X)."""
        if type(X) is not np.ndarray:
            if scipy.sparse.issparse(X):
                return self._check_sparse_X(X), None
            if not hasattr(X, "dtype"):
                X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers; got dtype {X.dtype}. Convert it with "
                            f"numpy.asarray(X, dtype=float).")
        if X.ndim != 2:
            hint = " For one sample use X.reshape(1, -1)." if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}.{hint}")
        if X.shape[0] == 0:
            raise ValueError("X is empty: it has 0 samples")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has {X.shape[1]} features but the model's layer_sizes[0] is "
                             f"{self.sizes[0]}")
        if X.dtype != self.dtype:
            with np.errstate(over="ignore"):     # values beyond float32's range: reported below
                X = np.ascontiguousarray(X, dtype=self.dtype)
        elif type(X) is not np.ndarray or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X)
        bound = _train.max_abs(X)           # NaN when X holds a NaN or an infinity
        if bound != bound:
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise ValueError(f"X contains NaN or infinity (first at row {row}"
                             + (", after conversion to float32" if self.dtype == np.float32 else "")
                             + "); remove or impute those values")
        return X, bound

    def _check_sparse_X(self, X):
        """A ``scipy.sparse`` X (any format, matrix or array) as a CSR matrix in canonical
        form (sorted indices, no duplicates) with values of the model's dtype and indices and
        indptr of one integer type; never densified. X itself is returned when it already is
        one; otherwise one copy is made: the conversion to CSR or to the dtype, or, for a CSR
        X with unsorted or duplicate indices, a copy on which the duplicates are summed
        (``sum_duplicates``), so the caller's matrix is never changed."""
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers; got dtype {X.dtype}. Convert it with "
                            f"X.astype(float).")
        if X.shape[0] == 0:
            raise ValueError("X is empty: it has 0 samples")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has {X.shape[1]} features but the model's layer_sizes[0] is "
                             f"{self.sizes[0]}")
        copied = False
        if X.format != "csr":
            X, copied = X.tocsr(), True
        if X.dtype != self.dtype:
            with np.errstate(over="ignore"):     # values beyond float32's range: reported below
                X, copied = X.astype(self.dtype), True
        if X.indices.dtype != X.indptr.dtype:
            X = X if copied else X.copy()
            X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
            copied = True
        if not X.has_canonical_format:
            X = X if copied else X.copy()
            X.sum_duplicates()
        if not _train.all_finite(X.data.reshape(1, -1)):
            first = int(np.flatnonzero(~np.isfinite(X.data))[0])
            row = int(np.searchsorted(X.indptr, first, side="right")) - 1
            raise ValueError(f"X contains NaN or infinity (first at row {row}"
                             + (", after conversion to float32" if self.dtype == np.float32 else "")
                             + "); remove or impute those values")
        return X

    def _encode_targets(self, y, n, classes=None):
        """Return the target matrix (n, n_outputs) in the model's dtype, the class index of each
        row for multi-class models (None otherwise: see ``_class_rows``) and, for
        categorical cross-entropy, the classes (``classes`` if given, else ``classes_``, else
        found in y)."""
        y = np.asarray(y)
        n_out = self.sizes[-1]
        if y.shape[:1] != (n,):
            raise ValueError(f"X has {n} samples but y has {y.shape[0] if y.ndim else 'no'} "
                             f"rows; they must have one target per sample")
        if self._task == "regression":
            if y.dtype.kind not in "biuf":
                raise TypeError(f"regression targets must be real numbers; got dtype {y.dtype}")
            Y = y.reshape(n, -1)
            if Y.shape[1] != n_out:
                raise ValueError(f"y has {Y.shape[1]} target columns but the model has "
                                 f"{n_out} outputs")
            if not np.all(np.isfinite(Y)):
                raise ValueError("y contains NaN or infinity; remove or impute those values")
            if self.loss_name == "poisson" and np.any(Y < 0):
                raise ValueError(f"loss='poisson' needs non-negative targets (counts or rates); "
                                 f"y has {int(np.sum(Y < 0))} negative values, the smallest "
                                 f"{Y.min():g}. Use another loss, or shift or clip y.")
            return np.ascontiguousarray(Y, dtype=self.dtype), None, None
        if self._task in ("binary", "multilabel"):
            if y.dtype.kind not in "biuf":
                raise TypeError(f"y must hold the numeric labels 0 and 1; got dtype {y.dtype}")
            Y = y.reshape(n, -1)
            if Y.shape[1] != n_out:
                what = "1-D (one 0/1 label per sample)" if n_out == 1 else f"(n, {n_out}) 0/1 labels"
                raise ValueError(f"y must be {what} for {self._task} classification; got shape "
                                 f"{y.shape}")
            if Y.dtype.kind == "b":
                binary = True
            elif Y.dtype.kind in "iu" and Y.dtype.isnative:
                # One reduction, no temporary: read as unsigned, a negative label is huge.
                binary = _largest(Y.view(_UNSIGNED[Y.dtype.itemsize]), axis=None) <= 1
            else:
                binary = not ((Y != 0) & (Y != 1)).any()
            if not binary:
                labels = np.unique(Y)
                unknown = labels[(labels != 0) & (labels != 1)]
                raise ValueError(f"y must contain only the labels 0 and 1 for {self._task} "
                                 f"classification; found {unknown[:5].tolist()}")
            return np.ascontiguousarray(Y, dtype=self.dtype), None, None
        # categorical cross-entropy: labels, or probability rows
        if y.ndim == 2 and y.shape[1] == n_out and y.dtype.kind in "biuf" and n_out > 1:
            if not (np.all(np.isfinite(y)) and np.all(y >= 0)
                    and np.allclose(y.sum(axis=1), 1.0, atol=1e-6)):
                raise ValueError("2-D targets for categorical cross-entropy must be "
                                 "probability rows (non-negative, summing to 1)")
            classes = next(c for c in (classes, self.classes_, np.arange(n_out)) if c is not None)
            return np.ascontiguousarray(y, dtype=self.dtype), y.argmax(axis=1), classes
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels (or ({n}, {n_out}) probability rows); "
                             f"got shape {y.shape}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity")
        classes = classes if classes is not None else self.classes_
        if classes is None:
            found = np.unique(y)
            if y.dtype.kind in "iub" and found.size and found.min() >= 0 and found.max() < n_out:
                classes = np.arange(n_out)
            elif found.size == n_out:
                classes = found
            else:
                raise ValueError(f"y has {found.size} classes {found[:10].tolist()} but the "
                                 f"output layer has {n_out} units; make layer_sizes[-1] equal "
                                 f"to the number of classes (or use labels 0..{n_out - 1})")
        try:
            rows = np.searchsorted(classes, y)
            rows = np.minimum(rows, len(classes) - 1)
            known = classes[rows] == y
        except TypeError:
            raise TypeError(f"y's labels ({y.dtype}) cannot be compared with the classes the "
                            f"model was trained on ({classes.dtype})") from None
        if not np.all(known):
            raise ValueError(f"y contains labels the model does not know: "
                             f"{np.unique(y[~known])[:5].tolist()}; known classes: "
                             f"{classes[:10].tolist()}")
        Y = np.zeros((n, n_out), dtype=self.dtype)
        Y[np.arange(n), rows] = 1
        return Y, rows, classes

    def _class_rows(self, Y, rows):
        """The class index of each row for class weights and stratification: ``rows`` for
        multi-class models, the 0/1 labels for binary ones, None otherwise."""
        if rows is None and self._task == "binary":
            return Y[:, 0].astype(np.intp)
        return rows

    def _sample_weights(self, sample_weight, class_weight, rows, n, classes=None):
        """Per-sample weights normalized to mean 1, or None when all are equal; ``rows`` as
        ``_class_rows``."""
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf" or w.shape != (n,):
                raise ValueError(f"sample_weight must be {n} real numbers; got shape {w.shape}, "
                                 f"dtype {w.dtype}")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
                raise ValueError("sample_weight must be finite, non-negative and not all zero")
            w = w.astype(np.float64)
        if class_weight is not None:
            if rows is None:
                raise ValueError("class_weight is for binary and multi-class classification")
            classes = classes if self._task == "multiclass" else np.array([0, 1])
            counts = np.bincount(rows, minlength=len(classes))
            if isinstance(class_weight, str) and class_weight == "balanced":
                per_class = np.where(counts > 0, n / (len(classes) * np.maximum(counts, 1)), 0.0)
            elif isinstance(class_weight, dict):
                unknown = [c for c in class_weight if not np.any(classes == c)]
                if unknown:
                    raise ValueError(f"class_weight names unknown classes {unknown}; classes are "
                                     f"{classes.tolist()}")
                per_class = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
                if not np.all(np.isfinite(per_class)) or np.any(per_class < 0):
                    raise ValueError("class weights must be finite and non-negative")
            else:
                raise TypeError("class_weight must be a dict {class: weight} or 'balanced'")
            if not np.any(per_class > 0):
                raise ValueError("the class and sample weights give every sample weight 0")
            cw = per_class[rows]
            if w is not None:
                with np.errstate(over="ignore", under="ignore"):
                    product = w * cw
                if not (np.all(np.isfinite(product)) and np.any(product > 0)):
                    # Products beyond float64's range: the same weights up to a factor.
                    product = _scaled_to_max_one(w) * _scaled_to_max_one(cw)
                cw = product
            w = cw
            if not np.any(w > 0):
                raise ValueError("the class and sample weights give every sample weight 0")
        if w is None or np.all(w == w[0]):
            return None
        return np.ascontiguousarray(_mean_one(w), dtype=self.dtype)

    # -- the engine ---------------------------------------------------------------------------

    def _network(self, max_batch, sparse_input=False, _checked=False):
        """The engine's description of this model for batches of up to ``max_batch`` rows
        (of a sparse X when ``sparse_input``), built once per configuration (hyperparameters
        may be changed between calls) and shared by the models of the same configuration.
        The settings are checked whenever this model meets a new configuration, unless the
        caller has just checked them (``_checked``); the optimizer's at every call."""
        opt = self.optimizer
        loss_param = (self.label_smoothing if self._task == "multiclass" else
                      self.huber_delta if self.loss_name == "huber" else 0.0)
        try:
            key = (max_batch, loss_param, self.l1, self.l2, opt._values(), opt.weight_decay,
                   self.clip_norm, self.clip_value, sparse_input)
            net = self.__dict__.get("_networks", _NO_NETWORKS).get(key)
        except TypeError:               # an unhashable setting: let the checks say which
            self._check_network_settings()
            raise
        if net is not None:
            return net
        if not _checked:
            self._check_network_settings()      # a setting assigned since the last build
        cache = self.__dict__.setdefault("_networks", {})
        if len(cache) >= 8:
            cache.clear()
        structure = self.__dict__.get("_structure")
        if structure is None:           # the settings no assignment can change
            structure = self.__dict__["_structure"] = (
                tuple(self.sizes), tuple(self._act_ids), tuple(self._act_params), self._loss_id,
                tuple(self.batch_norm), tuple(self.dropout), opt.kernel_id)
        shared = (structure, key)
        net = _NETWORKS.get(shared)
        if net is None:
            net = _train.Network(
                self.sizes, self._act_ids, self._act_params, self._loss_id, loss_param,
                self.l1, self.l2, max_batch, batch_norm=self.batch_norm, dropout=self.dropout,
                optimizer=opt.kernel_id, hyper=opt.hyper, weight_decay=opt.weight_decay,
                clip_norm=self.clip_norm or 0.0, clip_value=self.clip_value or 0.0,
                sparse_input=sparse_input)
            with _NETWORKS_LOCK:
                while len(_NETWORKS) >= _NETWORKS_KEPT:
                    del _NETWORKS[next(iter(_NETWORKS))]
                _NETWORKS[shared] = net
        cache[key] = net
        return net

    def _blas_work(self, rows):
        """The largest product (m * n_in * n_out) of a pass over ``rows`` rows."""
        return rows * self._widest

    def _predict_rows(self, n, sparse=False):
        """Rows per prediction pass: ``_PREDICT_CHUNK``, fewer for very wide layers."""
        per_row = self._row_entries if sparse else self._row_entries + self.sizes[0]
        return max(1, min(n, _PREDICT_CHUNK, _PREDICT_BUDGET // per_row))

    def _predict_raw(self, X):
        """The kernels' outputs (probabilities, or values for regression), shape (n, n_out)."""
        sparse = type(X) is not np.ndarray and scipy.sparse.issparse(X)
        rows = self._predict_rows(X.shape[0], sparse)
        if sparse:
            X = _sparse.CSR(X)
        net = self._network(rows, sparse_input=sparse)
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        work = self._blas_work(rows)
        if work < _threads.OPENBLAS_THREADING_MIN:      # a block that would limit nothing
            _train.predict(net, self.params, self.bn_state, X, workspace, out)
        else:
            with _threads.blas_threads(work):
                _train.predict(net, self.params, self.bn_state, X, workspace, out)
        return out

    def _objective(self, X, Y, w, out=None):
        rows = self._predict_rows(X.shape[0], scipy.sparse.issparse(X))
        X = _kernel_input(X)
        net = self._network(rows, sparse_input=isinstance(X, _sparse.CSR))
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        with _threads.blas_threads(self._blas_work(rows)):
            return _train.objective(net, self.params, self.bn_state, X, Y, w, workspace, out)

    def _val_metric_key(self):
        """The name of the validation metric in logs and history: "val_r2" for regression,
        "val_accuracy" for classification (exact match of all labels for multi-label)."""
        return "val_r2" if self._task == "regression" else "val_accuracy"

    def _evaluate(self, X, Y, rows):
        """The objective and the metric (see ``_metric``) on encoded targets, from one pass."""
        out = np.empty_like(Y)
        loss = self._objective(X, Y, None, out)
        return loss, self._metric(X, Y, rows, out)

    @_locked
    def _snapshot(self):
        return self.params.copy(), self.bn_state.copy()

    @_locked
    def _restore(self, state):
        self.params[:], self.bn_state[:] = state

    def _metric(self, X, Y, rows, out=None):
        """Accuracy for classification, R^2 for regression (on encoded targets); ``out``: the
        model's outputs on X when already computed."""
        out = self._predict_raw(X) if out is None else out
        if self._task == "regression":
            with np.errstate(over="ignore", invalid="ignore"):    # targets near the dtype's edge
                ss_res = ((Y - out) ** 2).sum(axis=0)
                ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
                return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, 1)))
        if self._task == "multiclass":
            return float(np.mean(out.argmax(axis=1) == Y.argmax(axis=1)))
        return float(np.mean(np.all((out >= 0.5) == (Y >= 0.5), axis=1)))

    def _split_validation(self, X, Y, w, rows):
        """Hold out ``validation_fraction`` of the samples (stratified for classification)."""
        n = X.shape[0]
        groups = [np.arange(n)] if rows is None else [np.flatnonzero(rows == r) for r in np.unique(rows)]
        held = np.concatenate([self._rng.permutation(g)[:int(round(self.validation_fraction * len(g)))]
                               for g in groups])
        if held.size == 0 or held.size == n:
            raise ValueError(f"validation_fraction={self.validation_fraction} of {n} samples leaves "
                             f"an empty training or validation set; pass validation_data or use "
                             f"more samples")
        mask = np.zeros(n, dtype=bool)
        mask[held] = True
        keep = ~mask
        if w is not None and not np.any(w[keep] > 0):
            raise ValueError("every sample left for training after the validation split has "
                             "weight 0; pass validation_data or give those samples weight")
        # Back to mean 1 over the kept rows, in the model's dtype (a NumPy scalar factor would
        # promote float32 weights to float64).
        w_train = None if w is None else np.ascontiguousarray(
            w[keep] * (keep.sum() / w[keep].sum()), dtype=w.dtype)
        return (_take_rows(X, keep), np.ascontiguousarray(Y[keep]), w_train,
                None if rows is None else rows[keep], _take_rows(X, mask), Y[mask],
                rows[mask] if rows is not None else None)

    @_locked
    def train(self, X: ArrayLike, y: ArrayLike, epochs: int = 30, batch_size: int | None = None,
              verbose: bool = True, shuffle: bool = True, shuffle_seed: int | None = None, *,
              sample_weight: ArrayLike | None = None,
              class_weight: Mapping[Any, float] | str | None = None,
              validation_data: tuple[ArrayLike, ArrayLike] | None = None,
              callbacks: Sequence[Callback | Callable[..., Any]] | None = None,
              progress: bool = False) -> None:
        """Train by mini-batch gradient descent with backpropagation.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        y : array-like
            Binary: labels 0 and 1, shape (n_samples,). Multi-class: any labels (encoded by
            the model, see ``classes_``), or probability rows. Multi-label: a 0/1 matrix
            (n_samples, n_outputs). Regression: values, shape (n_samples,) or
            (n_samples, n_outputs).
        epochs : int, default 30
            Passes over the data, >= 1.
        batch_size : int or None, default None
            Samples per gradient step; None means the full batch. Values above n_samples are
            clipped to n_samples. The last batch of an epoch may be smaller.
        verbose : bool, default True
            Print one line per epoch with the loss, the validation loss and metric, the rate and
            the elapsed time.
        shuffle : bool, default True
            Visit the samples in a new random order each epoch, ``rng.permutation(n_samples)``
            drawn from the model's generator; else in their given order.
        shuffle_seed : int or None, default None
            Draw the orders from ``numpy.random.default_rng(shuffle_seed)`` instead: runs that
            differ only in their batch order, from the same initial weights.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of each sample's loss; normalized to mean 1.
        class_weight : dict or "balanced", optional
            Weights per class (classification); multiplied into ``sample_weight``. "balanced"
            weighs each class by ``n_samples / (n_classes * count)``.
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch (``history["val_loss"]`` and ``["val_accuracy"]`` or
            ``["val_r2"]``) and used by early stopping.
        callbacks : list of fastmlp.callbacks.Callback or functions, optional
            Called after every epoch; see ``fastmlp.callbacks``.
        progress : bool, default False
            Show a progress bar over the epochs (needs ``tqdm``; without it, a warning and the
            ``verbose`` lines instead).

        Notes
        -----
        A ``scipy.sparse`` X (CSR, CSC, COO, ..., matrix or array) is never densified: it is
        converted once to CSR when it is in another format (sorted, duplicates summed, on a
        copy), and the first layer's products run over the non-zeros of each batch's rows, so
        memory grows with the non-zeros and time with them rather than with the width of X
        (see ``fastmlp/_kernels/_sparse.pyx``). Every method that takes X accepts it too.

        Ctrl-C during training stops it cleanly at the end of the current epoch: ``train``
        returns normally and the model keeps that epoch's weights. This holds in any thread
        and for fits inside fits (a callback that trains another model): one Ctrl-C stops
        every fit running at that moment, and none that starts later. A second Ctrl-C
        interrupts as usual.

        Raises
        ------
        ValueError, TypeError
            On invalid data or parameters (the model is left unchanged), or when training
            diverges (a NaN or an infinity in the loss, the parameters, the optimizer state, the
            running statistics or, at the end, the outputs; the model keeps the state of the
            end of the last finite epoch, see the class's Notes).
        """
        X, x_bound = self._check_X_bound(X)
        n = X.shape[0]
        Y, rows, classes = self._encode_targets(y, n)
        epochs = _check_int("epochs", epochs, 1)
        _check_flag("verbose", verbose)
        _check_flag("progress", progress)
        _check_flag("shuffle", shuffle)
        if shuffle_seed is not None:
            _check_int("shuffle_seed", shuffle_seed, 0)
        self._check_hyperparameters()
        _engine.check_state_finite(self)
        if class_weight is not None or self.early_stopping:
            rows = self._class_rows(Y, rows)
        w = self._sample_weights(sample_weight, class_weight, rows, n, classes)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, y_val)")
            X_val = self._check_X(validation_data[0])
            Y_val, rows_val, _ = self._encode_targets(validation_data[1], X_val.shape[0], classes)
            validation = (X_val, Y_val, rows_val)
        callbacks = [as_callback(c) for c in (callbacks or [])]
        batch = n if batch_size is None else min(_check_int("batch_size", batch_size, 1), n)
        schedule = self._resolve_schedule(epochs)
        if not schedule.adaptive:
            # The first and the last rate, before anything changes: a decay that underflows to
            # 0 within the epochs asked for is refused now, not after training part of them.
            base_lr = self._next_base_lr()
            schedule.rate(1, base_lr)
            schedule.rate(epochs, base_lr)
        if self.early_stopping:
            if validation is None:
                state = self._rng.bit_generator.state
                try:
                    X, Y, w, rows, X_val, Y_val, rows_val = self._split_validation(X, Y, w, rows)
                except ValueError:
                    self._rng.bit_generator.state = state
                    raise
                validation = (X_val, Y_val, rows_val)
                n = X.shape[0]
            callbacks.append(EarlyStopping("val_loss", self.patience, self.min_delta))
            batch = min(batch, n)
        # Every check has passed: from here on the model changes.
        self.classes_ = classes
        self.base_lr = self._next_base_lr()

        rng = (self._rng if shuffle_seed is None or not shuffle
               else _seeding.seeded_generator(int(shuffle_seed)))
        seed = int(self._rng.integers(2**63)) if any(r > 0 for r in self.dropout) else 0
        schedule.reset()
        bar = self._progress_bar(epochs) if progress else None
        verbose = verbose or (progress and bar is None)
        per_epoch = (verbose or callbacks or validation is not None or schedule.adaptive
                     or bar is not None)
        history = {"loss": [], "lr": []}
        if validation is not None:
            history.update({"val_loss": [], self._val_metric_key(): []})
        self.history = history
        self.best_epoch = None
        # A callback could change X in place between epochs: then the runner measures it again.
        runner = _engine.EpochRunner(self, X, Y, w, batch, seed,
                                     x_bound=None if callbacks else x_bound)
        with contextlib.ExitStack() as cleanup:
            # Undone in reverse order however training ends: callbacks' on_train_end, the
            # progress bar, the engine's Ctrl-C handler and BLAS thread limit.
            cleanup.enter_context(runner)
            if rng is not self._rng:
                cleanup.callback(_seeding.spare_generator, rng)
            if bar is not None:
                cleanup.callback(bar.close)
            begun = []          # on_train_end, in order, for the callbacks that began
            cleanup.callback(lambda: [c.on_train_end(self) for c in begun])
            for c in callbacks:
                c.on_train_begin(self)
                begun.append(c)
            self._run_epochs(runner, epochs, shuffle, rng, schedule, per_epoch, validation,
                             callbacks, bar, verbose)
        self._record_early_stopping(callbacks, verbose or bar is not None)

    def _record_early_stopping(self, callbacks, verbose):
        """Set ``best_epoch`` and ``history["best_epoch"]`` from the early stopping of the run
        (the ``EarlyStopping`` that stopped it, else the last one) and, when verbose, print
        what each one did."""
        stoppers = [c for c in callbacks if isinstance(c, EarlyStopping)]
        if not stoppers:
            return
        chosen = next((c for c in stoppers if c.stopped_epoch), stoppers[-1])
        if chosen.best_epoch:
            self.best_epoch = self.history["best_epoch"] = chosen.best_epoch
        for c in stoppers if verbose else ():
            message = c.summary()
            if message is not None:
                print(message, file=sys.stdout, flush=True)

    def _run_epochs(self, runner, epochs, shuffle, rng, schedule, per_epoch, validation,
                    callbacks, bar, verbose):
        """The loop over epochs: blocks of epochs in the engine, Python work in between.

        The kernel draws each epoch's order itself from ``rng`` (``rng.permutation(n)``'s
        stream, see ``_engine.draws_in_kernel``), so that a fit with no Python work between
        its epochs is one kernel call; else (a NumPy whose shuffle the kernel does not
        reproduce) the orders are drawn here with NumPy, a bounded block at a time. Rates and
        losses are kept one block at a time too: memory does not grow with ``epochs``."""
        n = runner.X.shape[0]
        identity = np.arange(n, dtype=np.intp)
        all_rates = None
        if not per_epoch and type(schedule) in _PURE_SCHEDULES and epochs <= _MAX_RATES:
            # Nothing can change the base rate between the blocks: every rate at once.
            all_rates = _pure_rates(schedule, self.base_lr, epochs)
        # Blocks of epochs: one epoch when Python looks after each; every epoch when their
        # rates are known (then one kernel call); else as many as the bound on the orders
        # allows (a schedule's rates asked block by block: a bad one stops training there).
        per_call = (1 if per_epoch else epochs if all_rates is not None
                    else min(epochs, runner.epochs_per_call(n)))
        in_kernel = not shuffle or _engine.draws_in_kernel(rng)
        if in_kernel:
            # One base order; the kernel shuffles it at every epoch's start (when shuffling).
            generator = rng if shuffle else None
            orders = identity
        else:
            per_call = min(per_call, runner.epochs_per_call(n))
            generator = None
            order_buffer = np.empty((per_call, n), dtype=np.intp)
            order_buffer[:] = identity
        losses = np.empty(per_call)
        history = self.history
        d = self.__dict__       # lr is not structural: no need of __setattr__'s guard
        start_time = time.perf_counter()
        stop = False
        first = 0
        while first < epochs and not stop:
            count = min(per_call, epochs - first)
            if not in_kernel:   # the same stream as count calls of rng.permutation(n)
                orders = order_buffer[:count]
                if first:
                    orders[:] = identity
                rng.permuted(orders, axis=1, out=orders)
            rates = (all_rates[first:first + count] if all_rates is not None else
                     np.array([schedule.rate(first + 1, self.base_lr)]) if schedule.adaptive
                     else schedule.rates(self.base_lr, count, start=first + 1))
            try:
                done = runner.run(orders, rates, losses, generator)
            finally:
                done_now = runner.epochs_done - first
                history["loss"] += losses[:done_now].tolist()
                history["lr"] += rates[:done_now].tolist()
                if done_now:
                    d["lr"] = d["_lr_set"] = float(rates[done_now - 1])
            first += done
            if runner.interrupted:
                stop = True
                print(f"Training interrupted (Ctrl-C) after epoch {first}/{epochs}; the "
                      f"model keeps the weights of that epoch.", file=sys.stderr, flush=True)
            if not per_epoch or done == 0:
                continue
            logs = {"loss": losses[done - 1], "lr": rates[done - 1]}
            if validation is not None:
                metric = self._val_metric_key()
                logs["val_loss"], logs[metric] = self._evaluate(*validation)
                history["val_loss"].append(logs["val_loss"])
                history[metric].append(logs[metric])
            schedule.observe(first, logs.get("val_loss", logs["loss"]))
            for c in callbacks:
                stop |= bool(c.on_epoch_end(self, first, logs))
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
            elif verbose:
                self._print_epoch(first, epochs, logs, time.perf_counter() - start_time)

    @staticmethod
    def _progress_bar(epochs):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            warnings.warn("progress=True needs tqdm (pip install tqdm); printing one line per "
                          "epoch instead", stacklevel=3)
            return None
        return tqdm(total=epochs, unit="epoch", leave=True)

    def _next_base_lr(self):
        """The base rate of the next ``train``: an ``lr`` assigned since the last train (as in
        the lecture, setting ``model.lr`` sets the rate the schedule starts from), else the
        base rate the model had."""
        return self.lr if self.lr != self._lr_set else self.base_lr

    def _resolve_schedule(self, epochs):
        """The schedule of a train call: ``lr_decay`` (read at every call, as the lecture's
        SimpleMLP does) or ``schedule``."""
        if self.lr_decay is not None:
            if not isinstance(self.schedule, _schedules.Constant):
                raise ValueError("give either lr_decay or schedule, not both "
                                 "(lr_decay=d is schedule=ExponentialDecay(d))")
            return _schedules.ExponentialDecay(self.lr_decay)
        if self.schedule == "cosine":
            return _schedules.Cosine(total_epochs=epochs)
        return self.schedule

    def _print_epoch(self, epoch, epochs, logs, elapsed):
        width = len(str(epochs))
        line = f"Epoch {epoch:{width}d}/{epochs} | loss {logs['loss']:.5f}"
        if "val_loss" in logs:
            metric = self._val_metric_key()
            line += f" | val_loss {logs['val_loss']:.5f} | {metric} {logs[metric]:.4f}"
        line += f" | lr {logs['lr']:.4g} | {elapsed:.2f}s"
        print(line, file=sys.stdout, flush=True)

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 30, batch_size: int | None = None,
            verbose: bool = True, shuffle: bool = True, shuffle_seed: int | None = None,
            **kwargs: Any) -> "MLP":
        """Same as ``train``, returning the model so calls can be chained.

        Returns
        -------
        self : MLP

        Examples
        --------
        >>> import numpy as np
        >>> from fastmlp import MLP
        >>> X = np.array([[0., 0.], [1., 1.]]); y = np.array([0, 1])
        >>> MLP([2, 1], lr=1.0, seed=0).fit(X, y, epochs=50, verbose=False).predict(X).tolist()
        [0, 1]
        """
        self.train(X, y, epochs=epochs, batch_size=batch_size, verbose=verbose,
                   shuffle=shuffle, shuffle_seed=shuffle_seed, **kwargs)
        return self

    @_locked
    def forward(self, X: ArrayLike) -> np.ndarray:
        """The network's outputs: probabilities for classification, values for regression.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray
            Shape ``(n_samples,)`` for one binary or regression output (the lecture's
            interface), else ``(n_samples, n_outputs)``; in the model's dtype.

        Raises
        ------
        ValueError, TypeError
            If X is not a finite 2-D numeric array with ``layer_sizes[0]`` columns.
        """
        out = self._predict_raw(self._check_X(X))
        return out.ravel() if self.sizes[-1] == 1 else out

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities: ``(n_samples,)`` of class 1 for binary models (the lecture's
        interface), ``(n_samples, n_classes)`` for multi-class, ``(n_samples, n_labels)`` for
        multi-label.

        Raises
        ------
        ValueError
            For a regression model, which has no probabilities.
        """
        if self._task == "regression":
            raise ValueError("predict_proba is for classification; this model does regression "
                             "(loss {!r}): use predict".format(self.loss_name))
        return self.forward(X)

    @_locked
    def predict(self, X: ArrayLike, threshold: float = 0.5) -> np.ndarray:
        """Predictions: labels for classification, values for regression.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        threshold : float in [0, 1], default 0.5
            Binary and multi-label: predict 1 where the probability is at least this.

        Returns
        -------
        ndarray
            Binary: ints 0/1, shape (n_samples,). Multi-class: elements of ``classes_``.
            Multi-label: ints 0/1, (n_samples, n_labels). Regression: as ``forward``.
        """
        threshold = _check_real("threshold", threshold, low=0, high=1)
        out = self.forward(X)
        if self._task == "regression":
            return out
        if self._task == "multiclass":
            if self.classes_ is None:
                raise ValueError("this multi-class model has not been trained yet, so it does "
                                 "not know its classes; call train first")
            return self.classes_[out.argmax(axis=1)]
        return (out >= threshold).astype(int)

    @_locked
    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy (classification; exact match of all labels for multi-label) or the
        coefficient of determination R^2 averaged over outputs (regression)."""
        X = self._check_X(X)
        Y, rows, _ = self._encode_targets(y, X.shape[0])
        return self._metric(X, Y, rows)

    @_locked
    def loss(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """The objective J on (X, y): the (weighted) mean loss plus the penalties.

        Computed from the logits (no clipping), with batch normalization's running statistics
        and without dropout, so it is the exact function whose gradient training follows.

        Returns
        -------
        float
        """
        X = self._check_X(X)
        Y, rows, _ = self._encode_targets(y, X.shape[0])
        return self._objective(X, Y, self._sample_weights(sample_weight, None, rows, X.shape[0]))

    @_locked
    def save(self, path: str | os.PathLike) -> None:
        """Save the model to ``path``: an ``.npz`` of arrays plus JSON metadata, no pickle,
        written atomically; ``fastmlp.load(path)`` reads it back exactly (see ``fastmlp.io``).

        Raises
        ------
        ValueError
            If the model holds something the format cannot store (a schedule given as a
            function, labels of object dtype); nothing is written then.
        """
        from .io import save      # io imports this module
        save(self, path)

    @_locked
    def loss_and_gradient(self, X: ArrayLike, y: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> tuple[float, np.ndarray]:
        """The objective J on (X, y) taken as one batch, and its gradient by backpropagation.

        Batch-norm layers use the batch's statistics here (as in training; the running ones are
        left unchanged) and dropout is off.

        Returns
        -------
        loss : float
        grad : ndarray, shaped and laid out like ``params``
        """
        X = self._check_X(X)
        Y, rows, _ = self._encode_targets(y, X.shape[0])
        w = self._sample_weights(sample_weight, None, rows, X.shape[0])
        X = _kernel_input(X)
        net = self._network(X.shape[0], sparse_input=isinstance(X, _sparse.CSR))
        grad = np.empty_like(self.params)
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        loss = _train.loss_and_gradient(net, self.params, self.bn_state.copy(), X, Y, w,
                                        workspace, grad)
        return loss, grad
