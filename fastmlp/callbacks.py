"""Callbacks: Python code that runs between epochs.

Training calls ``on_train_begin(model)`` once, ``on_epoch_end(model, epoch, logs)`` after every
epoch (``epoch`` counted from 1, ``logs`` a dict with ``"loss"``, ``"lr"`` and, when there is
validation data, ``"val_loss"`` and ``"val_accuracy"`` (classification) or ``"val_r2"``
(regression)) and ``on_train_end(model)`` once, also when training stops early.
``on_epoch_end`` returning True stops training after that epoch. A callback may add its own
values to ``logs``; the callbacks after it in the list see them. A plain function
``fn(model, epoch, logs)`` can stand for a callback.
"""
import numpy as np

__all__ = ["Callback", "EarlyStopping", "as_callback"]


class Callback:
    """Base class: override the hooks you need; each does nothing by default."""

    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch, logs):
        return False

    def on_train_end(self, model):
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, model, epoch, logs):
        return bool(self.fn(model, epoch, logs))

    def __repr__(self):
        return f"as_callback({self.fn!r})"


def as_callback(obj):
    """Return ``obj`` if it is a ``Callback``, wrap it if it is a function ``(model, epoch,
    logs) -> stop``, else raise TypeError."""
    if isinstance(obj, Callback):
        return obj
    if callable(obj):
        return _FunctionCallback(obj)
    raise TypeError(f"a callback must be a fastmlp.callbacks.Callback or a function "
                    f"(model, epoch, logs) -> bool; got {obj!r}")


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving, and restore the best weights.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs: "loss", "lr", and with validation data "val_loss" and
        "val_accuracy" (classification) or "val_r2" (regression), or a value that a callback
        earlier in the ``callbacks`` list adds to ``logs``.
    patience : int, default 10
        Epochs without improvement before stopping.
    min_delta : float, default 0.0
        A value counts as an improvement when it beats the best so far by more than
        ``min_delta`` (is below ``best - min_delta`` for "min", above ``best + min_delta`` for
        "max").
    restore_best_weights : bool, default True
        At the end of training, put back the parameters (and batch-norm statistics) of the
        best epoch.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower ("min") or higher ("max") values are better. "auto" picks "max" for
        names that are scores (containing "accuracy", "acc", "r2", "auc", "f1", "precision",
        "recall" or "score") and "min" for everything else (losses, errors, rates).

    Attributes
    ----------
    best : float
        The best monitored value seen.
    best_epoch : int
        The epoch it was seen at, counted from 1 (0 before any).
    stopped_epoch : int
        The epoch training stopped at, 0 if it ran to the end.
    restored : bool
        Whether ``on_train_end`` put back the weights of ``best_epoch`` (an epoch before the
        last one trained).

    Raises
    ------
    ValueError
        On invalid parameters, and during training when the logs have no ``monitor`` key (the
        message lists the keys they have).

    Notes
    -----
    ``MLP.train`` records the outcome: ``model.best_epoch`` and ``model.history["best_epoch"]``
    are the ``best_epoch`` of the run's early stopping, and with ``verbose=True`` it prints
    ``summary()`` when training stopped early or earlier weights were restored.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLP
    >>> from fastmlp.callbacks import EarlyStopping
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = (X[:, 0] > 0).astype(int)
    >>> stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    >>> model = MLP([2, 4, 1], lr=0.5, seed=0)
    >>> model.train(X[:40], y[:40], epochs=100, verbose=False, callbacks=[stop],
    ...             validation_data=(X[40:], y[40:]))
    >>> model.best_epoch == stop.best_epoch == model.history["best_epoch"] >= 1
    True
    """

    _SCORE_WORDS = ("accuracy", "acc", "r2", "auc", "f1", "precision", "recall", "score")

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0,
                 restore_best_weights=True, *, mode="auto"):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a logged value, such as 'val_loss'; "
                            f"got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        if not isinstance(patience, (int, np.integer)) or isinstance(patience, bool) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1; got {patience!r}")
        if (isinstance(min_delta, bool) or not isinstance(min_delta, (int, float, np.number))
                or not np.isfinite(min_delta) or min_delta < 0):
            raise ValueError(f"min_delta must be a finite number >= 0; got {min_delta!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, "
                f"patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best_weights={self.restore_best_weights})")

    @property
    def direction(self):
        """"min" or "max": ``mode``, with "auto" resolved from the monitored name."""
        if self.mode != "auto":
            return self.mode
        name = self.monitor.lower()
        return "max" if any(word in name for word in self._SCORE_WORDS) else "min"

    def on_train_begin(self, model):
        self._sign = 1.0 if self.direction == "min" else -1.0
        self.best = self._sign * np.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.restored = False
        self._last_epoch = 0
        self._wait = 0
        self._best_state = None

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            hint = ""
            if self.monitor == "val_metric":
                hint = ("; 'val_metric' was renamed: monitor 'val_accuracy' (classification) "
                        "or 'val_r2' (regression)")
            elif self.monitor.startswith("val_"):
                hint = "; pass validation_data (or use early_stopping=True) to log val_ values"
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this training does "
                             f"not log; the logged keys are {sorted(logs)}{hint}")
        self._last_epoch = epoch
        value = float(logs[self.monitor])
        # In "min" terms: smaller signed values are better.
        if self._sign * value < self._sign * self.best - self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_state = model._snapshot()
            return False
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_state is not None:
            model._restore(self._best_state)
            self.restored = self.best_epoch != self._last_epoch

    def summary(self):
        """One sentence saying what early stopping did, or None when it did nothing visible
        (training ran to the end and kept the weights of its last epoch, which were the best).

        Returns
        -------
        str or None

        Examples
        --------
        >>> stop = EarlyStopping(patience=2)
        >>> stop.on_train_begin(None)
        >>> stop.best, stop.best_epoch, stop.stopped_epoch = 0.08412, 23, 25
        >>> stop.restored = True
        >>> print(stop.summary())  # doctest: +NORMALIZE_WHITESPACE
        Early stopping: no improvement of val_loss for 2 epochs;
        restored the weights of epoch 23 (val_loss 0.08412).
        """
        best = f"{self.monitor} {self.best:.5g}"
        if self.stopped_epoch:
            what = (f"Early stopping: no improvement of {self.monitor} for {self.patience} "
                    f"epochs; ")
        elif self.restored:
            what = f"Early stopping: not triggered in {self._last_epoch} epochs; "
        else:
            return None
        if self.restored:
            return what + f"restored the weights of epoch {self.best_epoch} ({best})."
        if not self.best_epoch:      # every value was NaN
            return what + (f"no epoch had a comparable {self.monitor}; kept the weights of "
                           f"epoch {self.stopped_epoch}.")
        return (what + f"kept the weights of epoch {self.stopped_epoch}; the best was epoch "
                f"{self.best_epoch} ({best}).")
