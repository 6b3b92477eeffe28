"""``fastmlp.MLPClassifier`` / ``MLPRegressor``: scikit-learn's estimator checks, parity with
``sklearn.neural_network`` and the scikit-learn tools they must work in.

The parity tests rely on the estimators following scikit-learn's algorithm step for step (the
same initial weights, validation split and shuffles from the same ``random_state``, the same
updates): with plain or momentum SGD on batches that divide the training set, the weights agree
to 1e-10 with scikit-learn's; Adam differs only by where epsilon enters, L-BFGS not at all.
"""
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse
from joblib import parallel_backend
from sklearn import datasets
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelBinarizer as SkLabelBinarizer
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.schedules import StepDecay

PARITY_ATOL = 1e-10

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """These problems are tiny: BLAS threads only add contention (on a shared, loaded machine
    they slow both libraries down by an order of magnitude)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def iris():
    X, y = datasets.load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def max_difference(a, b):
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))


# -- scikit-learn's estimator checks --------------------------------------------------------

SMALL = dict(hidden_layer_sizes=(16,), max_iter=100)
ESTIMATORS = [
    MLPClassifier(learning_rate_init=0.01, **SMALL),
    MLPRegressor(learning_rate_init=0.01, **SMALL),
    MLPClassifier(solver="lbfgs", **SMALL),
    MLPRegressor(solver="lbfgs", **SMALL),
    MLPRegressor(solver="rmsprop", learning_rate_init=0.01, activation="gelu", dropout=0.1,
                 batch_norm=True, l1=1e-4, dtype=np.float32, **SMALL),
]


def expected_failed_checks(estimator):
    if estimator.dropout:
        reason = ("dropout masks and batch-norm statistics depend on which rows share a batch, "
                  "so a weight of 2 cannot equal a repeated row")
        # The sparse twin runs since the estimators take sparse X; same reason.
        return {"check_sample_weight_equivalence_on_dense_data": reason,
                "check_sample_weight_equivalence_on_sparse_data": reason}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- parity with scikit-learn ---------------------------------------------------------------

@pytest.mark.parametrize("load", [datasets.load_digits, datasets.load_breast_cancer])
def test_default_accuracy_matches_sklearn(load):
    X, y = load(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scores = {}
    for cls in (MLPClassifier, SkMLPClassifier):
        pipe = make_pipeline(StandardScaler(), cls(random_state=0)).fit(X_train, y_train)
        scores[cls] = pipe.score(X_test, y_test)
    assert scores[MLPClassifier] > 0.9
    assert abs(scores[MLPClassifier] - scores[SkMLPClassifier]) <= 0.01, scores


@pytest.mark.parametrize("params", [
    dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate_init=0.05),
    dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling",
         learning_rate_init=0.2, power_t=0.25),
    dict(solver="sgd", momentum=0.0, learning_rate="adaptive", learning_rate_init=0.1,
         n_iter_no_change=2, tol=1e-2),
    dict(solver="sgd", momentum=0.9, early_stopping=True, validation_fraction=0.2,
         learning_rate_init=0.05),
])
def test_sgd_classifier_matches_sklearn_step_for_step(params):
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8, 6), batch_size=30, max_iter=40, alpha=1e-3,
              random_state=3, **params)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkMLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) < PARITY_ATOL
    # Losses differ only by where the penalty is evaluated (epoch end, not each batch).
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_loss_ is None and theirs.best_loss_ is None
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-3)


def test_sgd_multioutput_regressor_matches_sklearn():
    X, _ = iris()
    Y = np.c_[X[:, 0] * X[:, 1], X[:, 2] - X[:, 3]]
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=50, max_iter=30,
              random_state=0)
    ours, theirs = MLPRegressor(**kw).fit(X, Y), SkMLPRegressor(**kw).fit(X, Y)
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) < PARITY_ATOL
    # loss_ is on scikit-learn's scale: the squared error averaged over the two outputs.
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-9)


def test_adam_matches_sklearn_up_to_epsilon():
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, max_iter=30, random_state=0)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkMLPClassifier(**kw).fit(X, y)
    assert 0 < max_difference(ours.coefs_, theirs.coefs_) < 1e-5


def test_lbfgs_matches_sklearn():
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, alpha=0.1,
              random_state=0)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkMLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 20
    assert ours.loss_ == pytest.approx(theirs.loss_, abs=1e-12)
    assert max_difference(ours.coefs_, theirs.coefs_) < 1e-9
    assert not hasattr(ours, "loss_curve_") and not hasattr(ours, "partial_fit")


def test_partial_fit_matches_sklearn():
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=25, random_state=0)
    ours, theirs = MLPClassifier(**kw), SkMLPClassifier(**kw)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(**kw).partial_fit(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    for batch in np.array_split(order, 6):
        # The first batch holds only some of the classes; `classes` names them all.
        for model in (ours, theirs):
            model.partial_fit(X[batch], y[batch], classes=np.unique(y))
    assert ours.n_iter_ == 1 and ours.t_ == len(y)
    assert max_difference(ours.coefs_, theirs.coefs_) < PARITY_ATOL
    with pytest.raises(ValueError, match="not in classes_"):
        ours.partial_fit(X[:3], [0, 1, 7])


def test_warm_start_matches_sklearn():
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=30, max_iter=5,
              random_state=0, warm_start=True)
    ours, theirs = MLPClassifier(**kw), SkMLPClassifier(**kw)
    for model in (ours, theirs):
        model.fit(X, y)
    first = [W.copy() for W in ours.coefs_]
    for model in (ours, theirs):
        model.fit(X, y)
    assert len(ours.loss_curve_) == 10 and ours.n_iter_ == 5 and ours.t_ == 10 * len(y)
    assert max_difference(ours.coefs_, first) > 1e-3        # it moved on from the first fit
    assert max_difference(ours.coefs_, theirs.coefs_) < PARITY_ATOL
    with pytest.raises(ValueError, match="another architecture"):
        ours.set_params(hidden_layer_sizes=(9,)).fit(X, y)


def test_multilabel_matches_sklearn():
    X, y = iris()
    Y = np.c_[y == 0, y == 2, X[:, 0] > 0].astype(int)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=50, max_iter=20,
              random_state=0)
    ours, theirs = MLPClassifier(**kw).fit(X, Y), SkMLPClassifier(**kw).fit(X, Y)
    assert ours.out_activation_ == "logistic" and ours.coefs_[-1].shape == (8, 3)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
    assert ours.predict(X).shape == Y.shape


# -- the classifier's outputs and attributes ------------------------------------------------

def test_binary_probabilities_and_labels():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.where(y == 1, "benign", "malignant")
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=30).fit(X, labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 2) and clf.coefs_[-1].shape == (8, 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert list(clf.classes_) == ["benign", "malignant"]
    assert clf.n_features_in_ == 30 and clf.n_layers_ == 3 and clf.n_outputs_ == 1
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None
    # coefs_ and intercepts_ are views of the fitted network.
    assert np.shares_memory(clf.coefs_[0], clf.model_.params)


def test_feature_names_in():
    pd = pytest.importorskip("pandas")
    X, y = iris()
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_regression_loss_is_on_sklearns_scale():
    X, _ = iris()
    Y = np.c_[X[:, 0] * X[:, 1], 2 * X[:, 2]]
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", alpha=0.0, max_iter=50,
                       random_state=0).fit(X, Y)
    assert reg.loss_ == pytest.approx(0.5 * np.mean((reg.predict(X) - Y) ** 2), rel=1e-10)


# -- scikit-learn's tools --------------------------------------------------------------------

def test_clone_and_pickle():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X), clf.predict_proba(X))

    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert np.shares_memory(restored.coefs_[0], restored.model_.params)
    # The optimizer's state survives too: training on continues identically.
    for model in (clf, restored):
        model.partial_fit(X, y)
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_pipeline_and_cross_val_score():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=30,
                                                         random_state=0))
    cv = KFold(4, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=cv)
    by_hand = [clone(pipe).fit(X[tr], y[tr]).score(X[te], y[te]) for tr, te in cv.split(X)]
    np.testing.assert_array_equal(scores, by_hand)
    assert scores.mean() > 0.9


@pytest.mark.parametrize("backend", [None, "threading"])
def test_grid_search_in_parallel(backend):
    X, y = iris()
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(4,), (12,)]}
    estimator = MLPClassifier(max_iter=50, learning_rate_init=0.05, random_state=0)
    serial = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    search = GridSearchCV(estimator, grid, cv=3, n_jobs=2)
    if backend is None:
        search.fit(X, y)                              # joblib's default: worker processes
    else:
        with parallel_backend(backend, n_jobs=2):
            search.fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert search.best_params_ == serial.best_params_
    assert search.best_estimator_.score(X, y) > 0.9


# -- fastmlp's own options and the errors ---------------------------------------------------

def test_fastmlp_schedule_and_optimizer():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="rmsprop", learning_rate_init=0.01,
                        learning_rate=StepDecay(step_size=2, gamma=0.5), max_iter=5,
                        n_iter_no_change=100, random_state=0).fit(X, y)
    assert clf.model_.optimizer.name == "rmsprop"
    assert clf.model_.lr == pytest.approx(0.01 * 0.25)          # epoch 5: two halvings
    assert clf.get_params()["learning_rate"].step_size == 2     # the parameter is untouched


def test_dropout_batch_norm_float32():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(16,), dropout=0.2, batch_norm=True, l1=1e-4,
                        dtype=np.float32, learning_rate_init=0.01, max_iter=100,
                        random_state=0).fit(X, y)
    assert clf.model_.dtype == np.float32 and clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float64
    assert clf.score(X, y) > 0.9
    refit = clone(clf).fit(X, y)                                # the dropout seed is fixed
    np.testing.assert_array_equal(refit.predict_proba(X), clf.predict_proba(X))


def test_convergence_warning_and_stopping():
    X, y = iris()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=500, tol=10.0, n_iter_no_change=3,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    # tol is larger than any improvement: stopped after n_iter_no_change + 1 epochs.
    assert clf.n_iter_ == 5


@pytest.mark.parametrize("params, error, match", [
    (dict(solver="newton"), ValueError, "solver must be"),
    (dict(activation="swishy"), ValueError, "unknown activation"),
    (dict(hidden_layer_sizes=(4, 0)), ValueError, "hidden_layer_sizes"),
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(learning_rate="sometimes"), ValueError, "unknown schedule"),
    (dict(momentum=1.5, solver="sgd"), ValueError, "momentum"),
    (dict(solver="lbfgs", dropout=0.5), ValueError, "lbfgs"),
])
def test_invalid_parameters(params, error, match):
    X, y = iris()
    with pytest.raises(error, match=match):
        MLPClassifier(**params).fit(X, y)


def test_unsupported_inputs():
    X, y = iris()
    with pytest.raises(ValueError, match="not allowed for Poisson regression"):
        MLPRegressor(loss="poisson").fit(X, X[:, 0])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="loss must be one of"):
        MLPRegressor(loss="hinge").fit(X, X[:, 0])


@pytest.mark.parametrize("make", [scipy.sparse.csr_matrix, scipy.sparse.csc_array,
                                  scipy.sparse.coo_matrix])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_X_trains_as_its_dense_array(make, solver):
    X, y = iris()
    X = np.where(np.abs(X) < 0.7, 0.0, X)                  # about half zeros
    kw = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=20, random_state=0,
              early_stopping=solver == "adam")
    dense, sparse = MLPClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(make(X), y)
    assert max_difference(dense.coefs_ + dense.intercepts_,
                          sparse.coefs_ + sparse.intercepts_) < 1e-10
    np.testing.assert_allclose(sparse.predict_proba(make(X)), dense.predict_proba(X),
                               atol=1e-12)
    part = MLPClassifier(**dict(kw, solver="sgd", early_stopping=False))
    part.partial_fit(make(X).astype(np.float32), y, classes=[0, 1, 2])
    assert part.coefs_[0].dtype == np.float32


def test_poisson_regressor_matches_sklearn():
    X, _ = iris()
    rate = np.exp(0.5 * X[:, 0] - 0.3 * X[:, 2])
    y = np.random.default_rng(0).poisson(rate)
    kw = dict(loss="poisson", hidden_layer_sizes=(5,), solver="sgd", batch_size=50,
              max_iter=20, learning_rate_init=0.01, random_state=0)
    ours, theirs = MLPRegressor(**kw).fit(X, y), SkMLPRegressor(**kw).fit(X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) < PARITY_ATOL
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)


def test_import_fastmlp_does_not_import_sklearn(tmp_path):
    code = ("import sys, fastmlp; assert 'sklearn' not in sys.modules; "
            "fastmlp.MLPStack([fastmlp.MLP([2, 3, 1], seed=s) for s in (0, 1)]); "
            "assert 'sklearn' not in sys.modules; "
            "fastmlp.MLPRegressor; assert 'sklearn' in sys.modules")
    # From a folder outside the checkout (whose source tree would shadow the fastmlp under
    # test), finding that fastmlp, installed or built in place, through PYTHONPATH.
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                   env=dict(os.environ, PYTHONPATH=root))
    assert "MLPClassifier" in dir(fastmlp) and fastmlp.MLPClassifier is MLPClassifier
    # The stack and the ensembles by their short names too (the ensembles lazily, as above).
    from fastmlp import ensemble, stack
    assert fastmlp.MLPStack is stack.MLPStack and "MLPStack" in fastmlp.__all__
    for name in ("MLPEnsembleClassifier", "MLPEnsembleRegressor"):
        assert name in dir(fastmlp) and getattr(fastmlp, name) is getattr(ensemble, name)
    with pytest.raises(AttributeError, match="no attribute 'MLPClassify'"):
        fastmlp.MLPClassify


# -- driving the engine ---------------------------------------------------------------------

def count_engine_calls(monkeypatch):
    """Count the engine's kernel calls (blocks of epochs) during what follows."""
    from fastmlp import _engine
    calls = []
    run = _engine.EpochRunner.run

    def counting(self, orders, rates, losses_out, *args, **kwargs):
        calls.append(len(rates))        # the epochs of the call (orders may be one base row)
        return run(self, orders, rates, losses_out, *args, **kwargs)

    monkeypatch.setattr(_engine.EpochRunner, "run", counting)
    return calls


@pytest.mark.parametrize("params", [
    dict(solver="sgd", tol=1e-2, n_iter_no_change=3),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.3, tol=0.0,
         n_iter_no_change=5),
    dict(solver="sgd", learning_rate="adaptive", tol=5e-3, n_iter_no_change=2),
    dict(solver="sgd", shuffle=False, tol=1e-2, n_iter_no_change=4),
])
def test_blocks_of_epochs_stop_where_sklearn_stops(params, monkeypatch):
    """Several epochs per kernel call, up to the first epoch at which scikit-learn's rule
    could stop: the same epochs, weights and losses as scikit-learn's epoch-by-epoch loop."""
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), batch_size=30, max_iter=60, random_state=1,
              momentum=0.5, **params)
    calls = count_engine_calls(monkeypatch)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkMLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == sum(calls)
    assert len(calls) < ours.n_iter_ / 2 and max(calls) > 1
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) < PARITY_ATOL
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)


def test_one_epoch_per_call_where_python_must_look(monkeypatch, capsys):
    X, y = iris()
    calls = count_engine_calls(monkeypatch)
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=7, verbose=True, random_state=0).fit(X, y)
    assert calls == [1] * 7 and capsys.readouterr().out.count("Iteration") == 7
    calls.clear()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=7, early_stopping=True,
                  n_iter_no_change=100, random_state=0).fit(X, y)
    assert calls == [1] * 7
    calls.clear()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=7, n_iter_no_change=np.inf,
                  random_state=0).fit(X, y)
    assert calls == [7]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_and_partial_fit_do_not_copy_X(dtype, peak_during):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 40)).astype(dtype)         # 12.8 or 6.4 MB
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    clf = MLPClassifier(**kw)
    peak = peak_during(lambda: clf.fit(X, y))
    assert clf.coefs_[0].dtype == dtype
    # Targets (one column), the order buffer and scikit-learn's index shuffles: a few
    # columns' worth, never a copy of X.
    assert peak < 0.5 * X.nbytes, (peak, X.nbytes)
    peak = peak_during(lambda: clf.partial_fit(X, y))
    assert peak < 0.5 * X.nbytes, (peak, X.nbytes)
    # The measure sees copies: X of the other dtype must be converted.
    other = X.astype(np.float32 if dtype == np.float64 else np.float64)
    assert peak_during(lambda: clf.partial_fit(other, y)) > 0.45 * X.nbytes


@pytest.mark.parametrize("labels", [
    np.array([0, 1], dtype=np.int64), np.array([3, -2, 7], dtype=np.int8),
    np.array([2, 5, 9, 4], dtype=np.uint8), np.array([10**6, 1, 5], dtype=np.int32),
    np.array([0, 4_000_000_000], dtype=np.uint32), np.array([-10**12, 10**12, 0]),
])
def test_plain_arrays_skip_sklearns_checks_with_the_same_results(labels, monkeypatch):
    """A C-contiguous float ndarray X with 1-D integer labels skips scikit-learn's validation
    and label encoding: the classes (values and dtype), the encoding and the fitted weights are
    those of scikit-learn's path, which the same data given as lists takes."""
    import fastmlp.estimators as est
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = labels[rng.integers(0, len(labels), 60)]
    kw = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    calls = []
    monkeypatch.setattr(est, "_validate_data",
                        lambda *a, _v=est._validate_data, **k: calls.append(1) or _v(*a, **k))
    plain = MLPClassifier(**kw).fit(X, y)
    assert calls == []
    checked = MLPClassifier(**kw).fit(X.tolist(), y.tolist())
    assert calls == [1]
    reference = SkLabelBinarizer().fit(y)
    assert plain.classes_.dtype == reference.classes_.dtype
    np.testing.assert_array_equal(plain.classes_, reference.classes_)
    assert plain._label_binarizer.y_type_ == reference.y_type_
    assert plain.n_features_in_ == 3
    np.testing.assert_array_equal(plain._label_binarizer.transform(y), reference.transform(y))
    np.testing.assert_array_equal(plain.classes_.astype(object), checked.classes_.astype(object))
    for a, b in zip(plain.coefs_ + plain.intercepts_, checked.coefs_ + checked.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.predict(X), checked.predict(X))
    # Continued training: partial_fit and a warm start check y against classes_.
    plain.partial_fit(X, y)
    checked.partial_fit(X.tolist(), y.tolist())
    for a, b in zip(plain.coefs_, checked.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="classes not in classes_"):
        plain.partial_fit(X[:2], np.full(2, labels.max() + 1, dtype=labels.dtype))
    if len(labels) > 2:
        plain.set_params(warm_start=True)
        with pytest.raises(ValueError, match="same classes as in the previous call"):
            plain.fit(X, np.where(y == labels[0], labels[1], y))


def test_score_is_sklearns_accuracy():
    X, y = iris()
    y = y.astype(np.int32) + 7
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    expected = accuracy_score(y, clf.predict(X))
    assert 0.2 < expected < 0.95
    assert clf.score(X, y) == expected and type(clf.score(X, y)) is float
    assert clf.score(X, list(y)) == expected
    other = y.copy()
    other[:10] = 100                                # labels the classifier does not know
    assert clf.score(X, other) == accuracy_score(other, clf.predict(X))
    w = np.linspace(0, 1, len(y))
    assert clf.score(X, y, sample_weight=w) == accuracy_score(y, clf.predict(X),
                                                               sample_weight=w)


@pytest.mark.parametrize("hidden, n, threads, chunked", [
    ((100,), 1000, "auto", True), ((100,), 3000, "auto", False), ((100,), 3000, 1, True),
    ((300,), 1000, 1, False)])
def test_predictions_in_cache_sized_chunks_equal_one_pass(hidden, n, threads, chunked):
    """Small networks predict many rows in chunks of a few rows (the activations stay in
    cache) where BLAS would run on one thread anyway: the same probabilities as the network's
    pass over all the rows at once."""
    import fastmlp.estimators as est
    X, y = datasets.load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden, max_iter=3, random_state=0).fit(X, y)
    rows = np.vstack([X] * 2)[:n]
    fastmlp.set_num_threads(threads)
    try:
        proba = clf.predict_proba(rows)
    finally:
        fastmlp.set_num_threads("auto")
    assert {key[0] for key in clf._predict_networks[1]} == ({est._CACHE_ROWS} if chunked
                                                            else {n})
    np.testing.assert_allclose(proba, clf.model_._predict_raw(rows), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(proba[:40], clf.predict_proba(rows[:40]))


def test_plain_arrays_still_meet_sklearns_errors():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2)
    X_bad = X.copy()
    X_bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(X_bad, y)
    assert not hasattr(clf, "n_features_in_")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but MLPClassifier is expecting 3"):
        clf.partial_fit(X[:, :2], y)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    y_bad = y.astype(float)
    y_bad[0] = np.inf
    with pytest.raises(ValueError, match="Input y contains infinity"):
        reg.fit(X, y_bad)
    plain = reg.fit(X, y.astype(float)).coefs_
    checked = clone(reg).fit(X.tolist(), y.astype(float).tolist()).coefs_
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)


def test_float32_input_trains_and_predicts_in_float32():
    X, y = iris()
    X32 = X.astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X32, y)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X32, X[:, 0])
    for est in (clf, reg):
        assert est.model_.dtype == np.float32
        assert all(a.dtype == np.float32 for a in est.coefs_ + est.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32 and reg.predict(X32).dtype == np.float32
    # float64 X on a float32 network gives float64 outputs, as scikit-learn's products do.
    assert clf.predict_proba(X).dtype == np.float64 and reg.predict(X).dtype == np.float64
    np.testing.assert_allclose(reg.predict(X), reg.predict(X32), rtol=1e-6)
    # Integers and float64 train in float64; dtype= forces one.
    assert MLPRegressor(max_iter=2).fit(X.astype(int), y).model_.dtype == np.float64
    assert MLPRegressor(max_iter=2, dtype=np.float64).fit(X32, y).coefs_[0].dtype == np.float64
    assert MLPRegressor(max_iter=2, dtype=np.float32).fit(X, y).predict(X).dtype == np.float64
    # Later partial_fit calls keep the network's dtype.
    part = MLPRegressor(hidden_layer_sizes=(4,)).partial_fit(X32, y).partial_fit(X, y)
    assert part.coefs_[0].dtype == np.float32


def test_divergence_with_and_without_early_stopping():
    X, y = iris()
    kw = dict(hidden_layer_sizes=(20,), activation="identity", solver="sgd",
              learning_rate_init=1.0, max_iter=15, random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights.*"
                                         "fastmlp: the network keeps"):
        MLPRegressor(**kw).fit(X, y * 100)
    reg = MLPRegressor(early_stopping=True, **kw)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y * 100)
    assert reg.n_iter_ == 15 and len(reg.validation_scores_) == 15
    assert np.isnan(reg.validation_scores_[-1]) and np.isnan(reg.loss_curve_[-1])
    assert all(np.isfinite(W).all() for W in reg.coefs_)      # the best epoch's weights
    assert np.isfinite(reg.predict(X)).all()


def test_coefs_and_intercepts_can_be_assigned():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(X, y)
    new = [np.zeros_like(W) for W in clf.coefs_]
    clf.coefs_ = new
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    np.testing.assert_allclose(clf.predict_proba(X), 1 / 3)
    assert clf.coefs_[0] is clf.model_.W[0]              # bound again to the network
    clf.coefs_[1][:] = 1.0                               # in place, through the view
    assert np.all(clf.model_.W[1] == 1.0)
    with pytest.raises(ValueError, match=r"coefs_\[0\] has shape \(2, 5\)"):
        clf.coefs_ = [np.zeros((2, 5)), new[1]]
        clf.predict(X)
    # Before the first partial_fit: training starts from the given weights, as in
    # scikit-learn (with momentum 0 one step of SGD from them is the same in both).
    start = [np.full((4, 3), 0.1), np.full((3, 3), -0.2)], [np.zeros(3), np.full(3, 0.5)]
    ours, theirs = (Est(hidden_layer_sizes=(3,), solver="sgd", momentum=0, random_state=0,
                        batch_size=150) for Est in (MLPClassifier, SkMLPClassifier))
    for est in (ours, theirs):
        est.coefs_, est.intercepts_ = [W.copy() for W in start[0]], [b.copy() for b in start[1]]
        est.n_layers_, est.n_outputs_, est.out_activation_, est.t_ = 3, 3, "softmax", 0
        est.loss_curve_, est.best_loss_, est._no_improvement_count = [], np.inf, 0
        est.partial_fit(X, y, classes=[0, 1, 2])
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) < PARITY_ATOL
    copy = pickle.loads(pickle.dumps(ours))
    assert copy.coefs_[0] is copy.model_.W[0]
    np.testing.assert_array_equal(copy.predict_proba(X), ours.predict_proba(X))


def test_ctrl_c_stops_a_fit_as_sklearn_does():
    import os
    import signal
    import threading
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 20))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100_000, n_iter_no_change=np.inf,
                        random_state=0)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.warns(UserWarning, match="Training interrupted by user."):
            clf.fit(X, y)
    finally:
        timer.cancel()
    assert 0 < clf.n_iter_ < 100_000 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.score(X, y) > 0.6


def test_ctrl_c_inside_a_sequential_grid_search_stops_that_fit_only():
    """As with scikit-learn's MLP: the interrupted fit warns and keeps its weights, and the
    search goes on with the next candidate."""
    import os
    import signal
    import threading
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 20))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    search = GridSearchCV(
        MLPClassifier(hidden_layer_sizes=(32,), n_iter_no_change=np.inf, random_state=0),
        {"max_iter": [100_000, 3]}, cv=[(np.arange(2000), np.arange(2000, 3000))],
        refit=False, n_jobs=1)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.warns(UserWarning, match="Training interrupted by user."):
            search.fit(X, y)
    finally:
        timer.cancel()
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.parametrize("params", [
    dict(),
    dict(early_stopping=True, n_iter_no_change=100),
    dict(shuffle=False),
    dict(solver="sgd", learning_rate="invscaling", tol=0.0, n_iter_no_change=5),
])
def test_kernel_drawn_shuffles_equal_the_numpy_drawn_ones(params, monkeypatch):
    """scikit-learn's shuffles drawn by the kernel (one carried row of orders, any number of
    epochs per call) give the same fit as the same shuffles drawn in Python by
    RandomState.shuffle, with or without a validation split; the RandomState ends in the same
    state."""
    from fastmlp import _engine
    X, y = iris()
    kw = dict(hidden_layer_sizes=(8,), batch_size=16, max_iter=25, random_state=3, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kernel_rs = np.random.RandomState(7)
        ours = MLPClassifier(**{**kw, "random_state": kernel_rs}).fit(X, y)
        monkeypatch.setattr(_engine, "draws_in_kernel", lambda generator: False)
        numpy_rs = np.random.RandomState(7)
        theirs = MLPClassifier(**{**kw, "random_state": numpy_rs}).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert max_difference(ours.coefs_ + ours.intercepts_,
                          theirs.coefs_ + theirs.intercepts_) == 0
    assert ours.loss_curve_ == theirs.loss_curve_
    assert kernel_rs.randint(2**31) == numpy_rs.randint(2**31)
