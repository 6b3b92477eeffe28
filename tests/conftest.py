"""Shared fixtures: small random binary datasets and the lecture's circles experiment.

On CI (environment variable ``CI`` set) the session refuses to run against the source tree: the
tests must exercise the installed package (``pip install .``), so that a packaging mistake (a
missing extension module, a ``.pxd`` left out of the wheel) fails the build instead of hiding
behind the in-place build of the checkout.
"""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Hypothesis profiles (tests/test_properties.py). "ci", the default: a fixed seed and a budget
# that keeps the file to some seconds. "long": ten times the examples, for a search before a
# release; select it with FASTMLP_HYPOTHESIS_PROFILE=long.
settings.register_profile("ci", max_examples=150, derandomize=True, database=None,
                          deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=1500)
settings.load_profile(os.environ.get("FASTMLP_HYPOTHESIS_PROFILE", "ci"))


def pytest_sessionstart(session):
    if not os.environ.get("CI"):
        return
    import fastmlp

    location = Path(fastmlp.__file__).resolve()
    if location.is_relative_to(REPO_ROOT):
        pytest.exit(
            f"CI must test the installed fastmlp, but it was imported from the checkout "
            f"({location}, inside {REPO_ROOT}). Install it with `pip install .` and run the "
            f"`pytest` command (`python -m pytest` puts the current directory, the checkout, "
            f"first on sys.path), or run from outside the repository.",
            returncode=1,
        )


def make_binary(n=40, n_features=3, seed=0, scale=1.0):
    """A random binary problem: ``X`` standard normal (times ``scale``), ``y`` in {0, 1} from a
    noisy linear rule, with both classes present."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)) * scale
    w = rng.normal(size=n_features)
    y = ((X / scale) @ w + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    y[:2] = [0, 1]
    return X, y


@pytest.fixture
def binary_data():
    """``make_binary`` as a fixture: call it with the size, width and seed you need."""
    return make_binary


@pytest.fixture
def small_data():
    """40 samples, 3 features, both classes."""
    return make_binary(40, 3, seed=0)


@pytest.fixture(scope="session")
def circles():
    """The lecture's data: ``make_circles(200, factor=0.5, noise=0.08, random_state=1)``, a
    stratified 70/30 split, standardized with the training set's mean and scale.

    Returns ``X_train, X_test, y_train, y_test``.
    """
    # scikit-learn is a test dependency (pyproject's [test] extra): a missing one is an error.
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = datasets.make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.fixture
def peak_during():
    """A function ``peak_during(fn)``: the peak bytes traced by tracemalloc while ``fn`` runs,
    above what was traced when it started (NumPy reports its arrays to tracemalloc)."""
    import tracemalloc

    def measure(fn):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            fn()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    return measure
