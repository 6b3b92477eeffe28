"""Model files for the scikit-learn estimators: save, load, and continue exactly."""
import json
import warnings
import zipfile

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.io import _digest  # noqa: E402
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


# --------------------------------------------------------------------------------------------
# Crafted estimator entries (checksum recomputed): refused at load, one line naming the file
# --------------------------------------------------------------------------------------------

def _members(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _reseal(path, members, metadata):
    members = dict(members)
    members["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    members.pop("sha256")
    members["sha256"] = np.array(_digest(members))
    np.savez(path, **members)


@pytest.fixture(scope="module")
def saved_estimators(tmp_path_factory):
    """Saved estimators by name: their files' members (path -> members)."""
    X, y = iris()
    folder = tmp_path_factory.mktemp("estimators")
    fitted = {
        "multiclass": MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
        .fit(X, np.array(["a", "b", "c"])[y]),
        "binary": MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                                solver="sgd", learning_rate="invscaling").fit(X, y > 0),
        "early_stopping": MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                                        early_stopping=True).fit(X, y),
        "regressor": MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
        .fit(X, X[:, 0]),
        "lbfgs": MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3,
                              random_state=0).fit(X, X[:, 0]),
    }
    saved = {}
    for name, est in fitted.items():
        path = folder / f"{name}.npz"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.save(path)
        saved[name] = _members(path)
    return saved


def _fitted(name, value):
    return lambda entry, members: entry["fitted"].__setitem__(name, value)


def _drop_fitted(name):
    return lambda entry, members: entry["fitted"].pop(name)


def _classes(*labels):
    return lambda entry, members: members.__setitem__("estimator_classes", np.array(labels))


def _entry(key, value):
    return lambda entry, members: entry.__setitem__(key, value)


# name: (saved estimator, edit of (entry, members), the message expected)
CRAFTED = {
    "classes_unsorted": ("multiclass", _classes("b", "a", "c"),
                         "estimator_classes must be distinct and sorted"),
    "classes_repeated": ("multiclass", _classes("a", "a", "c"),
                         "estimator_classes must be distinct and sorted"),
    "classes_too_few_for_the_outputs": ("multiclass", _classes("a", "b"),
                                        "2 classes .* 'multiclass' .* 3 outputs"),
    "classes_nan": ("multiclass", _classes(0.0, 1.0, np.nan),
                    "estimator_classes must be distinct and sorted"),
    "classes_three_for_binary": ("binary", _classes(0, 1, 2),
                                 r": the stored estimator is inconsistent: estimator_classes of "
                                 r"dtype int64 and shape \(3,\) does not fit"),
    "classes_missing": ("multiclass", lambda e, m: m.pop("estimator_classes"),
                        "an MLPClassifier's file must hold estimator_classes"),
    "classes_of_a_regressor": ("regressor", _classes(0.5), "an MLPRegressor has no classes"),
    "y_type_unknown": ("multiclass", _entry("y_type", "continuous"),
                       "y_type must be one of 'binary', 'multiclass', 'multilabel-indicator'"),
    "y_type_not_a_string": ("multiclass", _entry("y_type", 3), "y_type must be one of"),
    "y_type_missing": ("multiclass", lambda e, m: e.pop("y_type"), "y_type must be one of"),
    "y_type_binary_for_three_outputs": ("multiclass", _entry("y_type", "binary"),
                                        "3 classes .* 'binary'"),
    "y_type_multiclass_for_a_binary_network": ("binary", _entry("y_type", "multiclass"),
                                               "2 classes .* 'multiclass' .* 1 outputs"),
    "loss_curve_not_a_list": ("multiclass", _fitted("loss_curve_", 0.5),
                              "loss_curve_ must be a list of numbers"),
    "loss_curve_of_strings": ("multiclass", _fitted("loss_curve_", ["a"]),
                              "loss_curve_ must be a list of numbers"),
    "loss_curve_nested": ("multiclass", _fitted("loss_curve_", [[0.5]]),
                          "loss_curve_ must be a list of numbers"),
    "loss_curve_minus_infinity": ("multiclass", _fitted("loss_curve_", [0.5, -np.inf]),
                                  r"loss_curve_ must be a list of numbers \(NaN or inf for "
                                  r"diverged epochs\), not -inf; got -inf"),
    "loss_curve_a_bool": ("multiclass", _fitted("loss_curve_", [True]),
                          "loss_curve_ must be a list of numbers"),
    "best_loss_nan": ("multiclass", _fitted("best_loss_", float("nan")), "best_loss_ must be"),
    "best_loss_a_list": ("multiclass", _fitted("best_loss_", [0.5]), "best_loss_ must be"),
    "best_loss_with_early_stopping": ("early_stopping", _fitted("best_loss_", 0.5),
                                      "best_loss_ must be None"),
    "best_loss_missing": ("multiclass", _drop_fitted("best_loss_"),
                          "fitted attributes .* come together"),
    "loss_string": ("multiclass", _fitted("loss_", "low"), "loss_ must be"),
    "loss_minus_infinity": ("multiclass", _fitted("loss_", -np.inf), "loss_ must be"),
    "validation_scores_infinite": ("early_stopping", _fitted("validation_scores_", [np.inf]),
                                   "validation_scores_ must be a list of scores"),
    "validation_scores_nested": ("early_stopping", _fitted("validation_scores_", [[1]]),
                                 "validation_scores_ must be"),
    "validation_scores_without_early_stopping": (
        "multiclass", _fitted("validation_scores_", [0.5]), "best_validation_score_ must be"),
    "best_validation_score_nan": ("early_stopping", _fitted("best_validation_score_", np.nan),
                                  "best_validation_score_ must be"),
    "n_iter_negative": ("multiclass", _fitted("n_iter_", -1), "n_iter_ must be an integer >= 0"),
    "n_iter_float": ("multiclass", _fitted("n_iter_", 2.5), "n_iter_ must be an integer >= 0"),
    "t_negative": ("binary", _fitted("t_", -7), "t_ must be an integer >= 0"),
    "t_a_string": ("binary", _fitted("t_", "7"), "t_ must be an integer >= 0"),
    "no_improvement_count_negative": ("multiclass", _fitted("_no_improvement_count", -3),
                                      "_no_improvement_count must be an integer >= 0"),
    "n_layers_wrong": ("multiclass", _fitted("n_layers_", 7), "n_layers_ must be 3"),
    "n_outputs_a_float": ("multiclass", _fitted("n_outputs_", 3.0), "n_outputs_ must be 3"),
    "n_features_missing": ("multiclass", _drop_fitted("n_features_in_"),
                           "the fitted attribute n_features_in_ is missing"),
    "out_activation_wrong": ("multiclass", _fitted("out_activation_", "identity"),
                             "out_activation_ must be 'softmax'"),
    "unknown_fitted_attribute": ("multiclass", _fitted("coefs_", [1]),
                                 r"unknown fitted attributes \['coefs_'\]"),
    "fitted_not_an_object": ("multiclass", _entry("fitted", [1]), "fitted must be an object"),
    "params_not_an_object": ("multiclass", _entry("params", "x"), "params must be an object"),
    "entry_not_an_object": ("multiclass", None, "the estimator entry must be an object"),
    "rate_nan": ("binary", lambda e, m: e["rate"].__setitem__("rate", float("nan")),
                 "the learning-rate state's rate must be a finite number >= 0; got nan"),
    "rate_infinite": ("binary", lambda e, m: e["rate"].__setitem__("rate", float("inf")),
                      "rate.* must be a finite number >= 0"),
    "rate_negative": ("binary", lambda e, m: e["rate"].__setitem__("rate", -0.1),
                      "rate.* must be a finite number >= 0"),
    "rate_epoch_negative": ("binary", lambda e, m: e["rate"].__setitem__("epoch", -1),
                            "epoch must be an integer >= 0"),
    "rate_not_an_object": ("binary", _entry("rate", 0.1), "the learning-rate state"),
    "seed_negative": ("multiclass", _entry("seed", -1), "seed must be an integer"),
    "seed_a_float": ("multiclass", _entry("seed", 1.5), "seed must be an integer"),
    "regressor_loss_other_than_the_network": (
        "regressor", lambda e, m: e["params"].__setitem__("loss", "poisson"),
        "the network's loss 'squared_error' does not fit"),
    "lbfgs_with_a_loss_curve": ("lbfgs", _fitted("loss_curve_", [0.5]),
                                "fitted attributes .* come together"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_estimator_entry_is_refused_at_load(case, saved_estimators, tmp_path):
    name, edit, message = CRAFTED[case]
    members = {k: v.copy() for k, v in saved_estimators[name].items()}
    metadata = json.loads(members["metadata"].tobytes())
    if edit is None:
        metadata["estimator"] = [1]
    else:
        edit(metadata["estimator"], members)
    path = tmp_path / "est.npz"
    _reseal(path, members, metadata)
    with pytest.raises(ValueError, match=message) as excinfo:
        fastmlp.load(path)
    text = str(excinfo.value)
    assert "\n" not in text and text.startswith(f"cannot load {str(path)!r}: "), text


@pytest.mark.parametrize("name", ["multiclass", "binary", "early_stopping", "regressor",
                                  "lbfgs"])
def test_the_saved_estimators_of_the_crafted_cases_load(name, saved_estimators, tmp_path):
    path = tmp_path / "est.npz"
    np.savez(path, **saved_estimators[name])
    assert fastmlp.load(path).n_features_in_ == 4


@pytest.mark.parametrize("early_stopping", [True, False])
def test_an_estimator_whose_fit_diverged_saves_and_loads(early_stopping, tmp_path):
    """Training records a diverging epoch's loss (inf) and, with early stopping, the diverged
    epochs after it (NaN loss and score): the checks at load accept what training leaves."""
    X, y = iris()
    est = MLPRegressor(hidden_layer_sizes=(3,), solver="sgd", learning_rate_init=1e3,
                       early_stopping=early_stopping, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X * 1e6, X[:, 0] * 1e150)
        except ValueError:
            assert not early_stopping
    assert np.isinf(est.loss_curve_[0])
    est.save(tmp_path / "est.npz")
    loaded = fastmlp.load(tmp_path / "est.npz")
    np.testing.assert_array_equal(loaded.loss_curve_, est.loss_curve_)
    assert (loaded.validation_scores_ is None) == (not early_stopping)
