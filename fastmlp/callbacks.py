"""Callbacks: Python code that runs between epochs.

Training calls ``on_train_begin(model)`` once, ``on_epoch_end(model, epoch, logs)`` after every
epoch (``epoch`` counted from 1, ``logs`` a dict with ``"loss"``, ``"lr"`` and, when there is
validation data, ``"val_loss"`` and ``"val_metric"``) and ``on_train_end(model)`` once, also
when training stops early. ``on_epoch_end`` returning True stops training after that epoch.
A plain function ``fn(model, epoch, logs)`` can stand for a callback.
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
    """Stop when a monitored quantity has stopped improving, and restore the best weights.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs; lower is better.
    patience : int, default 10
        Epochs without improvement before stopping.
    min_delta : float, default 0.0
        A value counts as an improvement when it is below the best so far minus ``min_delta``.
    restore_best_weights : bool, default True
        At the end of training, put back the parameters (and batch-norm statistics) of the
        best epoch.

    Attributes
    ----------
    best : float
        The best monitored value seen.
    best_epoch : int
        The epoch it was seen at (0 before any).
    stopped_epoch : int
        The epoch training stopped at, 0 if it ran to the end.

    Examples
    --------
    >>> from fastmlp import MLP
    >>> from fastmlp.callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="loss", patience=3)
    >>> model = MLP([2, 4, 1], seed=0)
    >>> model.train([[0., 0.], [1., 1.]], [0, 1], epochs=5, verbose=False, callbacks=[stop])
    >>> stop.best_epoch >= 1
    True
    """

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0,
                 restore_best_weights=True):
        if not isinstance(patience, (int, np.integer)) or isinstance(patience, bool) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1; got {patience!r}")
        if not np.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0; got {min_delta!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, restore_best_weights={self.restore_best_weights})")

    def on_train_begin(self, model):
        self.best = np.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self._wait = 0
        self._best_state = None

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this training does "
                             f"not log (it logs {sorted(logs)}); pass validation data or monitor "
                             f"'loss'")
        value = logs[self.monitor]
        if value < self.best - self.min_delta:
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
