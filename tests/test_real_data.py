"""``fastmlp.MLP`` on scikit-learn's bundled real datasets.

Each test splits 75/25 with ``train_test_split(..., test_size=0.25, random_state=0)``,
standardizes the inputs with a ``StandardScaler`` fit on the training part, trains with fixed
seeds and requires a test score that a well-working multilayer perceptron reaches on that data.
The scores are printed (``pytest -s`` shows them).
"""
import numpy as np
import pytest

from fastmlp import MLP

datasets = pytest.importorskip("sklearn.datasets")
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def split_and_scale(X, y):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def test_digits_classification():
    X_train, X_test, y_train, y_test = split_and_scale(*datasets.load_digits(return_X_y=True))
    model = MLP([64, 128, 64, 10], lr=1e-3, seed=0, optimizer="adam", l2=1e-4)
    model.train(X_train, y_train, epochs=40, batch_size=32, verbose=False)
    accuracy = model.score(X_test, y_test)
    print(f"digits: test accuracy {accuracy:.4f}")
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    assert accuracy == np.mean(model.predict(X_test) == y_test)
    assert accuracy >= 0.97


def test_diabetes_regression():
    # The target is standardized for training (mean 152, scale 77 would need a tiny rate) and
    # the predictions put back on the original scale; ridge regression scores 0.36 here.
    X_train, X_test, y_train, y_test = split_and_scale(*datasets.load_diabetes(return_X_y=True))
    mean, scale = y_train.mean(), y_train.std()
    model = MLP([10, 16, 1], lr=1e-3, seed=0, loss="squared_error", optimizer="adam", l2=0.1)
    model.train(X_train, (y_train - mean) / scale, epochs=100, batch_size=32, verbose=False)
    pred = model.predict(X_test) * scale + mean
    r2 = 1 - ((y_test - pred) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
    print(f"diabetes: test R^2 {r2:.4f}")
    # R^2 is invariant under the affine map of the target.
    assert model.score(X_test, (y_test - mean) / scale) == pytest.approx(r2, rel=1e-10)
    assert r2 >= 0.35


def test_breast_cancer_classification():
    X_train, X_test, y_train, y_test = split_and_scale(
        *datasets.load_breast_cancer(return_X_y=True))
    model = MLP([30, 16, 1], lr=1e-3, seed=0, optimizer="adam", l2=1e-2)
    model.train(X_train, y_train, epochs=100, batch_size=32, verbose=False)
    accuracy = model.score(X_test, y_test)
    print(f"breast cancer: test accuracy {accuracy:.4f}")
    assert accuracy == np.mean(model.predict(X_test) == y_test)
    assert accuracy >= 0.95
