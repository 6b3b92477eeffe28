"""``MLP``: configuration, input checks, initialization and the loop over epochs.

All per-batch arithmetic happens in the compiled kernels (``fastmlp._kernels``); this module
validates what the user gives it, lays the parameters out in one flat buffer, draws the batch
orders, and calls the engine once per epoch (or once for all epochs when nothing needs Python in
between).
"""
import numbers
import sys
import time

import numpy as np

from ._kernels import _train
from .activations import activation_id
from .initializers import DEFAULT_INIT, initial_parameters
from .losses import LOSS_IDS

__all__ = ["MLP"]

# Rows per kernel call when predicting: bounds the workspace, not the input size.
_PREDICT_CHUNK = 4096
# Largest number of sample indices drawn at once when all epochs run in one kernel call.
_MAX_ORDER_ENTRIES = 1 << 22


class _ParamList(list):
    """The list behind ``MLP.W`` and ``MLP.b``: views into the flat parameter buffer.

    Reading ``model.W[k]`` gives the view; assigning ``model.W[k] = array`` copies the values
    into the model (the shape must match), so the model never loses track of its parameters.
    """

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError("assign one layer at a time, e.g. model.W[0] = new_weights")
        target = list.__getitem__(self, index)
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(f"layer {index} has shape {target.shape}; got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"the new values of layer {index} contain NaN or infinity")
        np.copyto(target, value, casting="same_kind")

    def __delitem__(self, index):
        raise TypeError("the layers of a model cannot be removed")

    def _refuse(self, *args, **kwargs):
        raise TypeError("the number of layers is fixed by layer_sizes")

    append = extend = insert = pop = remove = clear = __iadd__ = __imul__ = _refuse


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def _check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        interval = (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                    + ("inf" if high is None else f"{high:g}") + (")" if high_open else "]"))
        raise ValueError(f"{name} must be a finite number in {interval}; got {value!r}")
    return value


class MLP:
    """A multilayer perceptron for binary classification, trained by mini-batch SGD.

    A drop-in replacement for the lecture's ``SimpleMLP``: hidden ReLU or sigmoid layers, a
    sigmoid output with binary cross-entropy, optional L2 penalty and exponential rate decay;
    the same seed gives the same initial weights. The training loop runs in compiled kernels.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden_1, ..., 1]``: at least two positive widths, the last one 1.
    lr : float, default 0.1
        Learning rate, > 0.
    seed : int, numpy.random.Generator or None, default None
        Seeds the generator that draws the initial weights and then each epoch's shuffle order.
        With a seed, training is repeatable bit for bit (same dtype, same BLAS threads).
    l2 : float, default 0.0
        L2 penalty: the objective is ``mean BCE + 0.5 * l2 * sum(W**2)`` (biases not penalized).
    hidden_activation : {"relu", "sigmoid"}, default "relu"
        Activation of every hidden layer. Weights are drawn He normal for ReLU and Xavier normal
        for sigmoid, layer by layer, as ``rng.normal(0, std, size=(fan_in, fan_out))``; biases 0.
    lr_decay : float in (0, 1] or None, default None
        When set, epoch ``e`` (from 1) of each ``train`` call uses ``lr * lr_decay ** (e - 1)``.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        The dtype of the parameters and of all arithmetic. Inputs are converted to it.

    Attributes
    ----------
    W, b : list of ndarray
        ``W[k]`` of shape ``(layer_sizes[k], layer_sizes[k+1])`` and ``b[k]`` of shape
        ``(layer_sizes[k+1],)``: views of ``params``, so in-place writes change the model.
    params : ndarray
        The flat buffer holding every weight and bias (``W[0], b[0], W[1], b[1], ...``).
    lr : float
        The rate of the last epoch trained (``base_lr`` before any training).
    history : dict
        After ``train``: ``"loss"`` (per epoch, the mean batch loss plus the penalty at the
        epoch's end) and ``"lr"`` (the rate of each epoch).

    Raises
    ------
    ValueError, TypeError
        On an invalid parameter; the message says which and what is allowed.

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

    def __init__(self, layer_sizes, lr=0.1, seed=None, l2=0.0, hidden_activation="relu",
                 lr_decay=None, dtype=np.float64):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError(f"layer_sizes must be a sequence of ints like [2, 4, 4, 1]; "
                            f"got {layer_sizes!r}")
        sizes = [_check_int("every entry of layer_sizes", s, 1) for s in layer_sizes]
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output width; got {sizes}")
        if sizes[-1] != 1:
            raise ValueError(f"the output width (last of layer_sizes) must be 1 for binary "
                             f"classification; got {sizes}")
        self._act_id = activation_id(hidden_activation)
        if dtype not in (np.float64, np.float32, "float64", "float32") and \
                np.dtype(dtype) not in (np.float64, np.float32):
            raise TypeError(f"dtype must be numpy.float64 or numpy.float32; got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.sizes = sizes
        self.hidden_activation = hidden_activation
        self.lr = self.base_lr = float(lr)
        self.l2 = l2
        self.lr_decay = lr_decay
        self._check_hyperparameters()
        self.l2 = float(l2)
        self.lr_decay = None if lr_decay is None else float(lr_decay)

        self._rng = np.random.default_rng(seed)
        W, b = initial_parameters(self._rng, sizes, DEFAULT_INIT[hidden_activation])
        layout = self._network(max_batch=1)
        self.params = np.empty(layout.n_params, dtype=self.dtype)
        self.W = _ParamList(self.params[o:o + Wk.size].reshape(Wk.shape)
                            for o, Wk in zip(layout.w_off, W))
        self.b = _ParamList(self.params[o:o + bk.size] for o, bk in zip(layout.b_off, b))
        for k in range(len(W)):
            self.W[k] = W[k]
            self.b[k] = b[k]
        self.history = {"loss": [], "lr": []}

    def __repr__(self):
        return (f"MLP({self.sizes}, lr={self.base_lr:g}, l2={self.l2:g}, "
                f"hidden_activation={self.hidden_activation!r}, lr_decay={self.lr_decay}, "
                f"dtype={self.dtype.name})")

    # -- checks at the boundary -------------------------------------------------------------

    def _check_hyperparameters(self):
        _check_real("lr", self.lr, low=0, low_open=True)
        _check_real("base_lr", self.base_lr, low=0, low_open=True)
        _check_real("l2", self.l2, low=0)
        if self.lr_decay is not None:
            _check_real("lr_decay", self.lr_decay, low=0, high=1, low_open=True)

    def _check_X(self, X):
        """X as a C-contiguous 2-D array of the model's dtype (not copied when it already is)."""
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
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if not _train.all_finite(X):
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise ValueError(f"X contains NaN or infinity (first at row {row}"
                             + (", after conversion to float32" if self.dtype == np.float32 else "")
                             + "); remove or impute those values")
        return X

    def _check_Xy(self, X, y):
        X = self._check_X(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (n_samples,); got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}; "
                             f"they must have one label per sample")
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must hold the numeric labels 0 and 1; got dtype {y.dtype}")
        labels = np.unique(y)
        unknown = labels[(labels != 0) & (labels != 1)]
        if unknown.size:
            raise ValueError(f"y must contain only the labels 0 and 1 for binary "
                             f"classification; found {unknown[:5].tolist()}")
        return X, np.ascontiguousarray(y, dtype=self.dtype).reshape(-1, 1)

    # -- the engine ---------------------------------------------------------------------------

    def _network(self, max_batch):
        return _train.Network(self.sizes, [self._act_id] * (len(self.sizes) - 2),
                              LOSS_IDS["binary_crossentropy"], 0.0, self.l2, max_batch)

    def _run(self, kernel, X, *args):
        net = self._network(min(X.shape[0], _PREDICT_CHUNK))
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        return kernel(net, self.params, X, *args, workspace)

    def train(self, X, y, epochs=30, batch_size=None, verbose=True, shuffle=True,
              shuffle_seed=None):
        """Train by mini-batch gradient descent with backpropagation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels 0 and 1.
        epochs : int, default 30
            Passes over the data, >= 1.
        batch_size : int or None, default None
            Samples per gradient step; None means the full batch. Values above n_samples are
            clipped to n_samples. The last batch of an epoch may be smaller.
        verbose : bool, default True
            Print one line per epoch with the loss and the rate.
        shuffle : bool, default True
            Visit the samples in a new random order each epoch, ``rng.permutation(n_samples)``,
            drawn from the model's generator (seeded by ``seed``); else in their given order.
        shuffle_seed : int or None, default None
            Draw the orders from ``numpy.random.default_rng(shuffle_seed)`` instead: runs that
            differ only in their batch order, from the same initial weights.

        Raises
        ------
        ValueError, TypeError
            On invalid data or parameters (the model is left unchanged), or when training
            diverges (the loss or a weight becomes non-finite; the model keeps the weights of
            the end of the last finite epoch).
        """
        X, Y = self._check_Xy(X, y)
        epochs = _check_int("epochs", epochs, 1)
        n = X.shape[0]
        batch = n if batch_size is None else min(_check_int("batch_size", batch_size, 1), n)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
        if shuffle_seed is not None:
            _check_int("shuffle_seed", shuffle_seed, 0)
        self._check_hyperparameters()

        rng = self._rng if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        if self.lr_decay:
            rates = self.base_lr * self.lr_decay ** np.arange(epochs, dtype=np.float64)
        else:
            rates = np.full(epochs, self.lr, dtype=np.float64)
        net = self._network(batch)
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        losses = np.full(epochs, np.nan)
        per_call = 1 if verbose else max(1, min(epochs, _MAX_ORDER_ENTRIES // n))
        self.history = {"loss": [], "lr": []}
        start_time = time.perf_counter()
        for first in range(0, epochs, per_call):
            count = min(per_call, epochs - first)
            if shuffle:
                orders = rng.permuted(np.broadcast_to(np.arange(n), (count, n)), axis=1)
            else:
                orders = np.broadcast_to(np.arange(n), (count, n))
            status, done = _train.train_epochs(
                net, self.params, X, Y, np.ascontiguousarray(orders, dtype=np.intp),
                rates[first:first + count], batch, workspace, losses[first:first + count])
            last = first + done
            self.history["loss"] += losses[first:last].tolist()
            self.history["lr"] += rates[first:last].tolist()
            if last > 0:
                self.lr = float(rates[last - 1])
            if status != _train.Status.OK:
                raise ValueError(
                    f"training diverged in epoch {last + 1}: the "
                    + ("loss" if status == _train.Status.NONFINITE_LOSS else "weights")
                    + " became NaN or infinite. The model keeps the weights of the end of epoch "
                    f"{last}. Lower the learning rate (now {rates[last]:g}) or standardize X.")
            if verbose:
                print(f"Epoch {last:4d}/{epochs} | loss {losses[last - 1]:.5f} | "
                      f"lr {rates[last - 1]:.4g} | {time.perf_counter() - start_time:.2f}s",
                      file=sys.stdout, flush=True)

    def fit(self, X, y, epochs=30, batch_size=None, verbose=True, shuffle=True,
            shuffle_seed=None):
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
                   shuffle=shuffle, shuffle_seed=shuffle_seed)
        return self

    def forward(self, X):
        """Probabilities of class 1, shape ``(n_samples,)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), in the model's dtype

        Raises
        ------
        ValueError, TypeError
            If X is not a finite 2-D numeric array with ``layer_sizes[0]`` columns.
        """
        X = self._check_X(X)
        out = np.empty((X.shape[0], 1), dtype=self.dtype)
        self._run(lambda net, theta, X, ws: _train.predict(net, theta, X, ws, out), X)
        return out.ravel()

    def predict_proba(self, X):
        """Same as ``forward``: probabilities of class 1, shape ``(n_samples,)``."""
        return self.forward(X)

    def predict(self, X, threshold=0.5):
        """Class labels: 1 where the probability is at least ``threshold``, else 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        threshold : float in [0, 1], default 0.5

        Returns
        -------
        ndarray of int, shape (n_samples,)
        """
        threshold = _check_real("threshold", threshold, low=0, high=1)
        return (self.forward(X) >= threshold).astype(int)

    def loss(self, X, y):
        """The objective J on (X, y): mean binary cross-entropy plus ``0.5 * l2 * sum(W**2)``.

        Computed from the logits (no clipping), so it is the exact function whose gradient
        training follows.

        Returns
        -------
        float
        """
        X, Y = self._check_Xy(X, y)
        return self._run(_train.objective, X, Y)

    def loss_and_gradient(self, X, y):
        """The objective J on (X, y) taken as one batch, and its gradient by backpropagation.

        Returns
        -------
        loss : float
        grad : ndarray, shaped and laid out like ``params``
        """
        X, Y = self._check_Xy(X, y)
        net = self._network(X.shape[0])
        grad = np.empty_like(self.params)
        workspace = np.empty(net.workspace_size, dtype=self.dtype)
        loss = _train.loss_and_gradient(net, self.params, X, Y, workspace, grad)
        return loss, grad
