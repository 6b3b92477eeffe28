"""The benchmark problems: one row per network and data set, and the speed targets.

Every data set is split 70/30 (stratified, ``random_state=0``) and standardized with the
training set's statistics, as in the lecture. The data come from scikit-learn's generators and
loaders; without scikit-learn every configuration is skipped.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Config", "CONFIGS", "TARGETS", "MATMUL_SHARE_TARGETS", "Unavailable", "flops_per_sample",
           "load_data"]


class Unavailable(Exception):
    """A configuration or a variant cannot run here; the message says why (shown in the table)."""


@dataclass(frozen=True)
class Config:
    """One benchmark problem: data, network, and the SGD schedule."""
    name: str
    description: str
    make_data: Callable
    layer_sizes: tuple
    batch_size: int
    epochs: int
    lr: float
    lr_decay: float = None
    hidden_activation: str = "relu"
    seed: int = 42

    @property
    def multiclass(self):
        return self.layer_sizes[-1] > 1

    @property
    def loss(self):
        return "categorical_crossentropy" if self.multiclass else "binary_crossentropy"


def _lecture_circles():
    from sklearn.datasets import make_circles
    return make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)


def _big_circles():
    from sklearn.datasets import make_circles
    return make_circles(n_samples=100_000, factor=0.5, noise=0.08, random_state=1)


def _digits():
    from sklearn.datasets import load_digits
    return load_digits(return_X_y=True)


def _wide():
    from sklearn.datasets import make_classification
    return make_classification(n_samples=60_000, n_features=784, n_informative=100,
                               n_classes=10, random_state=0)


CONFIGS = {c.name: c for c in [
    Config("lecture", "the lecture's circles (200 points, 140 to train)", _lecture_circles,
           (2, 4, 4, 1), batch_size=32, epochs=150, lr=0.3, lr_decay=0.95),
    Config("circles_big", "make_circles(100_000), as the lecture's but larger", _big_circles,
           (2, 32, 32, 1), batch_size=64, epochs=5, lr=0.1),
    Config("digits", "scikit-learn's digits, softmax", _digits,
           (64, 128, 64, 10), batch_size=32, epochs=50, lr=0.1),
    Config("wide", "make_classification(60_000, 784 features, 10 classes), softmax", _wide,
           (784, 512, 256, 10), batch_size=128, epochs=1, lr=0.1),
]}

# (config, dtype, peer) -> minimum ratio peer time / fastmlp time, from the speed issue. Every
# other (config, dtype, peer) measured must simply be slower than fastmlp (ratio > 1).
TARGETS = {
    ("lecture", "float64", "jax_epoch"): 10.0,
    ("lecture", "float64", "jax_fit"): 3.0,
    ("lecture", "float64", "numpy"): 40.0,
    **{(config, dtype, peer): 1.25 for config in ("circles_big", "digits")
       for dtype in ("float64", "float32") for peer in ("jax_epoch", "jax_fit")},
    ("wide", "float32", "jax_epoch"): 1.0,
    ("wide", "float32", "jax_fit"): 1.0,
}
# (config, dtype) -> the share of the machine's matrix-multiply rate fastmlp must reach.
MATMUL_SHARE_TARGETS = {("wide", "float32"): 0.70}


def load_data(config):
    """Split and standardize a configuration's data set.

    Returns
    -------
    X_train, X_test : ndarray of float64
    y_train, y_test : ndarray of int64, labels 0..K-1

    Raises
    ------
    Unavailable
        If scikit-learn, which provides the data sets, is not installed.
    """
    try:
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise Unavailable("needs scikit-learn for the data (pip install scikit-learn)") from None
    X, y = config.make_data()
    X_train, X_test, y_train, y_test = train_test_split(
        np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64),
        test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def flops_per_sample(layer_sizes):
    """Floating-point operations of one training step, per sample, counting the products only.

    Per layer with ``n_in`` inputs and ``n_out`` outputs: ``2 n_in n_out`` for the forward
    product, as many for the weight gradient, and as many again for the delta sent back to the
    previous layer, which the first layer does not compute.
    """
    total = 0
    for k, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        total += (4 if k == 0 else 6) * n_in * n_out
    return total
