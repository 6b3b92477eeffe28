"""Model files for the scikit-learn estimators: save, load, and continue exactly."""
import zipfile

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp.optimizers import RMSProp  # noqa: E402
from fastmlp.schedules import StepDecay  # noqa: E402

FITTED = ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "validation_scores_",
          "best_validation_score_", "n_outputs_", "n_layers_", "out_activation_",
          "n_features_in_")


def iris():
    X, y = datasets.load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def assert_same_estimator(a, b, X):
    assert type(a) is type(b) and repr(a.get_params()) == repr(b.get_params())
    for name in FITTED:
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p, q)
    out = "predict_proba" if hasattr(a, "predict_proba") else "predict"
    np.testing.assert_array_equal(getattr(a, out)(X), getattr(b, out)(X))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("make", [
    lambda: MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=15, random_state=0),
    lambda: MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", learning_rate="invscaling",
                          early_stopping=True, max_iter=15, random_state=1),
    lambda: MLPClassifier(hidden_layer_sizes=(6,), solver=RMSProp(), activation=("elu", 0.5),
                          learning_rate=StepDecay(step_size=3, gamma=0.5), dropout=0.1,
                          batch_norm=True, max_iter=10, random_state=2, dtype=np.float32),
    lambda: MLPRegressor(hidden_layer_sizes=(7,), solver="lbfgs", max_iter=30, random_state=0),
    lambda: MLPRegressor(hidden_layer_sizes=(7,), loss="huber", n_iter_no_change=np.inf,
                         max_iter=12, random_state=3),
])
def test_a_saved_estimator_loads_exactly_and_continues_exactly(make, tmp_path):
    X, y = iris()
    est = make()
    target = y if isinstance(est, MLPClassifier) else X[:, 0] - X[:, 1]
    if isinstance(est, MLPClassifier):
        target = np.array(["setosa", "versicolor", "virginica"])[y]
    est.fit(X, target)
    path = tmp_path / "est.npz"
    est.save(path)
    loaded = fastmlp.load(path)
    assert_same_estimator(est, loaded, X)
    if est.solver == "lbfgs":
        return
    # partial_fit and a warm-started fit continue as the saved estimator would have.
    if not est.early_stopping:
        for model in (est, loaded):
            model.partial_fit(X[:50], target[:50])
        assert_same_estimator(est, loaded, X)
    for model in (est, loaded):
        model.set_params(warm_start=True, max_iter=3).fit(X, target)
    assert_same_estimator(est, loaded, X)


def test_feature_names_and_io_save_and_no_pickle(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = iris()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(frame, y)
    path = tmp_path / "clf.npz"
    fastmlp.io.save(clf, path)
    loaded = fastmlp.load(path)
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    with zipfile.ZipFile(path) as archive:          # arrays and JSON only
        assert all(name.endswith(".npy") for name in archive.namelist())
    with np.load(path, allow_pickle=False) as archive:
        assert "estimator_classes" in archive.files


def test_what_cannot_be_saved(tmp_path):
    X, y = iris()
    with pytest.raises(ValueError, match="unfitted MLPClassifier"):
        MLPClassifier().save(tmp_path / "a.npz")
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2,
                        random_state=np.random.RandomState(0)).fit(X, y)
    with pytest.raises(ValueError, match="RandomState"):
        clf.save(tmp_path / "b.npz")
    assert not (tmp_path / "b.npz").exists()


def test_an_edited_estimator_entry_is_refused(tmp_path):
    X, y = iris()
    path = tmp_path / "clf.npz"
    MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y).save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    arrays["estimator_classes"] = np.array([0, 1, 5])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        fastmlp.load(path)
