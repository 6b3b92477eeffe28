"""fastmlp's estimators on a dask cluster: a grid search under joblib's dask backend, and
dask-ml's ``Incremental`` over a chunked dask array."""
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")
dask_array = pytest.importorskip("dask.array")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

import joblib  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import MLPClassifier  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


@pytest.fixture(scope="module")
def client():
    """Two worker processes on this machine. They import the fastmlp this process imported
    (the installed one in CI, the checkout's in-place build otherwise): its folder goes first
    on their PYTHONPATH."""
    folder = str(Path(fastmlp.__file__).resolve().parent.parent)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, previous]))
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            where = client.run(lambda: __import__("fastmlp").__file__)
            assert all(Path(f).resolve().parent.parent == Path(folder) for f in where.values())
            yield client
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def digits():
    X, y = datasets.load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:600]), y[:600]


def test_grid_search_on_the_dask_backend_equals_n_jobs_1(client):
    X, y = digits()
    grid = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}
    make = lambda n_jobs: GridSearchCV(  # noqa: E731
        MLPClassifier(max_iter=15, random_state=0), grid, cv=3, n_jobs=n_jobs)
    serial = make(1).fit(X, y)
    with joblib.parallel_backend("dask"):
        on_dask = make(-1).fit(X, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == serial.best_params_
    for a, b in zip(on_dask.best_estimator_.coefs_, serial.best_estimator_.coefs_):
        np.testing.assert_array_equal(a, b)


def test_incremental_over_a_chunked_dask_array_equals_partial_fit_in_memory(client):
    X, y = digits()
    classes = np.unique(y)
    dX = dask_array.from_array(X, chunks=(150, X.shape[1]))
    dy = dask_array.from_array(y, chunks=150)
    kw = dict(hidden_layer_sizes=(24,), random_state=0, batch_size=50)
    incremental = dask_ml_wrappers.Incremental(MLPClassifier(**kw), shuffle_blocks=False)
    incremental.fit(dX, dy, classes=classes)
    in_memory = MLPClassifier(**kw)
    for start in range(0, len(y), 150):
        in_memory.partial_fit(X[start:start + 150], y[start:start + 150], classes=classes)
    fitted = incremental.estimator_
    assert fitted.t_ == in_memory.t_ == len(y)
    for a, b in zip(fitted.coefs_ + fitted.intercepts_,
                    in_memory.coefs_ + in_memory.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(incremental.predict(dX).compute(), in_memory.predict(X))
