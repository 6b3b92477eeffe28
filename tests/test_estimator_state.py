"""``fastmlp.MLPClassifier`` / ``MLPRegressor``: what a call leaves behind when it fails, and the
input checks of the scikit-learn face.

A ``fit`` or ``partial_fit`` that raises before training begins leaves the estimator exactly as
it was (DESIGN.md, principle 4): the same fitted attributes (``classes_``, the label encoding,
``n_features_in_``, ``feature_names_in_``, ``n_outputs_``, ``out_activation_``, ...), the same
network and the same predictions; an unfitted estimator stays unfitted. (A fit that diverges
keeps its last finite state instead, as documented: see ``test_estimators.py``.)
"""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def data(n=60, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)          # three classes
    return X, y3


def snapshot(est, X):
    """Everything a user can see of ``est``: its attributes (and their values, through a
    pickle of them all, the network included) and its predictions on X."""
    seen = {"keys": sorted(est.__dict__),
            "pickle": pickle.dumps(sorted(est.__getstate__().items()))}
    if "model_" in est.__dict__:
        seen["predict"] = est.predict(X)
        if hasattr(est, "predict_proba"):
            seen["predict_proba"] = est.predict_proba(X)
        seen["coefs"] = [W.copy() for W in est.coefs_ + est.intercepts_]
    return seen


def assert_unchanged(before, est, X):
    after = snapshot(est, X)
    assert after["keys"] == before["keys"]
    for name in ("predict", "predict_proba"):
        if name in before:
            np.testing.assert_array_equal(after[name], before[name])
    if "coefs" in before:
        assert len(after["coefs"]) == len(before["coefs"])
        for a, b in zip(after["coefs"], before["coefs"]):
            np.testing.assert_array_equal(a, b)
    assert after["pickle"] == before["pickle"]


def test_the_snapshot_of_an_unchanged_estimator_is_stable():
    X, y = data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    before = snapshot(clf, X)
    assert_unchanged(before, clf, X)


X0, Y0 = data()
_rng = np.random.RandomState(1)
X_NAN = X0.copy()
X_NAN[3, 1] = np.nan
WORDS = np.where(Y0 > 0, "yes", "no")
MULTILABEL = np.c_[Y0 == 0, Y0 == 1, Y0 == 2, Y0 == 1].astype(int)


def _bad_param_fit(est, **params):
    """Fit with a parameter that fails after the input checks, then set the parameters back."""
    original = est.get_params(deep=False)
    est.set_params(**params)
    try:
        est.fit(X0[:, :2], WORDS if isinstance(est, MLPClassifier) else X0[:, 0])
    finally:
        est.set_params(**original)


# Each call fails; several used to fail only after the estimator had taken the new data's
# classes, number of features or outputs.
CLASSIFIER_FAILURES = {
    "sample_weight of the wrong length, new labels":
        lambda c: c.fit(X0, WORDS, sample_weight=np.ones(5)),
    "sample_weight of the wrong length, fewer features":
        lambda c: c.fit(X0[:, :2], Y0, sample_weight=np.ones(5)),
    "negative sample_weight, new labels":
        lambda c: c.fit(X0[:, :2], WORDS, sample_weight=-np.ones(60)),
    "all-zero sample_weight":
        lambda c: c.fit(X0, Y0 + 5, sample_weight=np.zeros(60)),
    "NaN in X":
        lambda c: c.fit(X_NAN, WORDS),
    "NaN in sample_weight, multi-label y":
        lambda c: c.fit(X0, MULTILABEL, sample_weight=np.r_[np.nan, np.ones(59)]),
    "wrong sample_weight, list input":
        lambda c: c.fit(X0[:, :2].tolist(), WORDS.tolist(), sample_weight=[1.0, 2.0]),
    "a validation set too small for early stopping":
        lambda c: c.set_params(early_stopping=True).fit(X0[:8, :2], WORDS[:8]),
    "alpha = inf":
        lambda c: _bad_param_fit(c, alpha=np.inf),
    "a batch size larger than the data under warnings-as-errors":
        lambda c: _fit_with_warnings_as_errors(c, X0[:20, :2], WORDS[:20], batch_size=500),
    "partial_fit: labels not in classes_":
        lambda c: c.partial_fit(X0, Y0 + 7),
    "partial_fit: other classes":
        lambda c: c.partial_fit(X0, Y0, classes=[0, 1, 2, 3]),
    "partial_fit: sample_weight of the wrong length":
        lambda c: c.partial_fit(X0, Y0, sample_weight=np.ones(3)),
    "partial_fit: other features":
        lambda c: c.partial_fit(X0[:, :2], Y0),
    "partial_fit: early stopping":
        lambda c: c.set_params(early_stopping=True).partial_fit(X0, Y0),
}

REGRESSOR_FAILURES = {
    "sample_weight of the wrong length, fewer features":
        lambda r: r.fit(X0[:, :2], X0[:, 0], sample_weight=np.ones(3)),
    "sample_weight of the wrong length, two outputs":
        lambda r: r.fit(X0, X0[:, :2], sample_weight=np.ones(3)),
    "negative sample_weight":
        lambda r: r.fit(X0[:, :2], X0[:, :2], sample_weight=-np.ones(60)),
    "NaN in X":
        lambda r: r.fit(X_NAN[:, :2], X0[:, 0]),
    "negative targets for the Poisson loss":
        lambda r: _bad_param_fit(r, loss="poisson"),
    "alpha = inf":
        lambda r: _bad_param_fit(r, alpha=np.inf),
    "partial_fit: two outputs":
        lambda r: r.partial_fit(X0, X0[:, :2]),
    "partial_fit: other features":
        lambda r: r.partial_fit(X0[:, :2], X0[:, 0]),
    "partial_fit: sample_weight of the wrong length":
        lambda r: r.partial_fit(X0, X0[:, 0], sample_weight=np.ones(3)),
}


def _fit_with_warnings_as_errors(est, X, y, **params):
    original = est.get_params(deep=False)
    est.set_params(**params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est.fit(X, y)
    finally:
        est.set_params(**original)


def _fitted(est, how):
    if how == "fit":
        return est.fit(X0, Y0 if isinstance(est, MLPClassifier) else X0[:, 0])
    if isinstance(est, MLPClassifier):
        return est.partial_fit(X0, Y0, classes=[0, 1, 2])
    return est.partial_fit(X0, X0[:, 0])


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
@pytest.mark.parametrize("failure", sorted(CLASSIFIER_FAILURES))
def test_a_failed_classifier_call_leaves_the_fitted_classifier_as_it_was(failure, how):
    clf = _fitted(MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", max_iter=30,
                                random_state=0), how)
    before = snapshot(clf, X0)
    with pytest.raises((ValueError, TypeError, UserWarning)):
        CLASSIFIER_FAILURES[failure](clf)
    clf.set_params(early_stopping=False)
    assert_unchanged(before, clf, X0)
    assert clf.score(X0, Y0) == before["predict"].__eq__(Y0).mean()
    assert clf.predict(X0.tolist()).tolist() == before["predict"].tolist()


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
@pytest.mark.parametrize("failure", sorted(REGRESSOR_FAILURES))
def test_a_failed_regressor_call_leaves_the_fitted_regressor_as_it_was(failure, how):
    reg = _fitted(MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=30,
                               random_state=0), how)
    before = snapshot(reg, X0)
    with pytest.raises((ValueError, TypeError)):
        REGRESSOR_FAILURES[failure](reg)
    assert_unchanged(before, reg, X0)
    assert reg.n_features_in_ == 3 and reg.n_outputs_ == 1
    np.testing.assert_array_equal(reg.predict(X0.tolist()), before["predict"])


def test_a_failed_fit_keeps_the_feature_names_of_the_fitted_one():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X0, columns=["a", "b", "c"])
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(frame, Y0)
    before = snapshot(clf, frame)
    other = pd.DataFrame(X0[:, :2], columns=["u", "v"])
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(other, WORDS, sample_weight=np.ones(4))
    assert_unchanged(before, clf, frame)
    assert list(clf.feature_names_in_) == ["a", "b", "c"]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_failed_warm_started_fit_leaves_the_fitted_model_as_it_was(solver):
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, max_iter=30, warm_start=True,
                        random_state=0).fit(X0, Y0)
    before = snapshot(clf, X0)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X0, Y0, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X0, Y0 % 2)
    assert_unchanged(before, clf, X0)


@pytest.mark.parametrize("Est, y", [(MLPClassifier, Y0), (MLPRegressor, X0[:, 0])])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_failed_first_fit_leaves_the_estimator_unfitted(Est, y, solver):
    est = Est(hidden_layer_sizes=(8,), solver=solver, max_iter=30, random_state=0)
    params = dict(est.__dict__)
    with pytest.raises(ValueError, match="sample_weight"):
        est.fit(X0, y, sample_weight=np.ones(4))
    assert est.__dict__ == params
    est.fit(X0, y)                                  # and it fits as a new one does
    fresh = Est(hidden_layer_sizes=(8,), solver=solver, max_iter=30, random_state=0).fit(X0, y)
    np.testing.assert_array_equal(est.predict(X0), fresh.predict(X0))


def test_a_failed_first_partial_fit_does_not_keep_its_classes():
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    params = dict(clf.__dict__)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.partial_fit(X0, Y0, classes=[0, 1, 2, 3], sample_weight=np.ones(4))
    assert clf.__dict__ == params
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X0, Y0)


def test_a_failed_partial_fit_leaves_the_network_settings_as_they_were():
    """partial_fit trains the fitted network in place: what it set on the network before the
    failure (the penalty's scale, the dropout generator's draws) is undone too."""
    clf = MLPClassifier(hidden_layer_sizes=(8,), dropout=0.2, batch_size=10, alpha=0.3,
                        random_state=0).partial_fit(X0, Y0, classes=[0, 1, 2])
    model = clf.model_
    l2, rng_state = model.l2, model._rng.bit_generator.state
    model._opt_state[:] = np.nan             # refused when training starts, after the setup
    with pytest.raises(ValueError, match="optimizer state"):
        clf.set_params(batch_size=20).partial_fit(X0, Y0)
    assert clf.model_ is model and model.l2 == l2
    assert model._rng.bit_generator.state == rng_state


def test_a_diverged_fit_still_keeps_its_last_finite_state():
    """Divergence is not an input error: the fit keeps the weights of the last finite epoch,
    with the attributes of the data it was trained on (as documented)."""
    rng = np.random.RandomState(0)
    X = rng.randn(150, 4)
    y = X @ rng.randn(4) * 100
    reg = MLPRegressor(hidden_layer_sizes=(20,), activation="identity", solver="sgd",
                       learning_rate_init=0.01, max_iter=15, random_state=0)
    reg.fit(X0, X0[:, 0])
    old = reg.model_
    reg.set_params(learning_rate_init=1.0)
    with pytest.raises(ValueError, match="fastmlp: the network keeps"):
        reg.fit(X, y)
    assert reg.model_ is not old and reg.n_features_in_ == 4
    assert all(np.isfinite(W).all() for W in reg.coefs_)


def test_a_sparse_failure_leaves_the_fitted_model_as_it_was():
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X0, Y0)
    before = snapshot(clf, X0)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(scipy.sparse.csr_matrix(X0[:, :2]), WORDS, sample_weight=np.ones(2))
    assert_unchanged(before, clf, X0)


# -- partial_fit's classes for multi-label y --------------------------------------------------

@pytest.mark.parametrize("classes", [[0, 1, 2, 3], np.arange(4), [0, 1], [0, 1, 2],
                                     ["a", "b", "c", "d"], [5, 6, 7, 8], [0, 1, 2, 3, 4]])
def test_partial_fit_checks_the_classes_of_multilabel_y_as_sklearn_does(classes):
    """scikit-learn takes ``classes_`` from ``classes`` and refuses a y with labels (column
    indices) outside it; so does fastmlp. A longer list, which scikit-learn takes though the
    network can never output those labels (its classes_ then disagrees with predict_proba's
    columns, and a later y of that width is refused), fastmlp refuses at once."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    Y = MULTILABEL                                       # four labels: classes 0, 1, 2, 3
    ours = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    theirs = SkMLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    try:
        theirs.partial_fit(X0, Y, classes=classes)
    except ValueError:
        sklearn_refuses = True
    else:
        sklearn_refuses = False
    if sklearn_refuses or len(classes) != Y.shape[1]:
        with pytest.raises(ValueError,
                           match=r"multi-label y.*column indices.*classes=\[0, 1, 2, 3\]"):
            ours.partial_fit(X0, Y, classes=classes)
        assert not hasattr(ours, "classes_")
        with pytest.raises(ValueError, match="classes must be passed on the first call"):
            ours.partial_fit(X0, Y)
        return
    ours.partial_fit(X0, Y, classes=classes)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.predict_proba(X0).shape == (60, 4)
    ours.partial_fit(X0, Y)
    ours.partial_fit(X0, Y, classes=classes)
    with pytest.raises(ValueError, match="not the same as on the first call"):
        ours.partial_fit(X0, Y, classes=[0, 1, 2, 3, 4])


# -- X beyond float32's range for a float32 network --------------------------------------------

@pytest.mark.parametrize("Est, y", [(MLPClassifier, Y0), (MLPRegressor, X0[:, 0])])
@pytest.mark.parametrize("kind", ["ndarray", "list", "csr", "fortran"])
def test_float64_X_that_overflows_a_float32_network_is_named_as_such(Est, y, kind):
    """scikit-learn multiplies float64 X by float32 weights in float64; fastmlp's float32
    network computes in float32, so finite values beyond float32's range (|x| > 3.4e38) cannot
    enter it: a ValueError says so (not that X holds NaN or infinity) and what to do."""
    est = Est(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X0.astype(np.float32), y)
    assert est.model_.dtype == np.float32
    big = X0[:5].copy()
    big[2, 1] = -1e39
    X = {"ndarray": big, "list": big.tolist(), "csr": scipy.sparse.csr_matrix(big),
         "fortran": np.asfortranarray(big)}[kind]
    with pytest.raises(ValueError, match=r"(?s)X holds values beyond the range of float32.*"
                                         r"row 2.*float32 network.*dtype=numpy.float64"):
        est.predict(X)
    near = X0[:5].copy()
    near[2, 1] = -3e38                                   # within float32's range: predicted
    assert est.predict(near).shape[0] == 5


# -- sample_weight as a number ------------------------------------------------------------------

@pytest.mark.parametrize("weight", [2.0, np.float32(0.5), 3, np.int64(1)])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
@pytest.mark.parametrize("Est, y", [(MLPClassifier, Y0), (MLPRegressor, X0[:, 0])])
def test_a_number_as_sample_weight_weighs_every_sample_alike(Est, y, solver, weight):
    """As ``sklearn.utils.validation._check_sample_weight`` in scikit-learn's fit: a number is
    that weight for every sample. (``score``, as scikit-learn's, takes arrays only.)"""
    kw = dict(hidden_layer_sizes=(5,), solver=solver, max_iter=10, alpha=0.1, random_state=0)
    ours = Est(**kw).fit(X0, y, sample_weight=weight)
    full = Est(**kw).fit(X0, y, sample_weight=np.full(len(y), float(weight)))
    for a, b in zip(ours.coefs_ + ours.intercepts_, full.coefs_ + full.intercepts_):
        np.testing.assert_array_equal(a, b)
    if solver == "sgd":
        extra = {"classes": [0, 1, 2]} if Est is MLPClassifier else {}
        part = Est(**kw).partial_fit(X0, y, sample_weight=weight, **extra)
        whole = Est(**kw).partial_fit(X0, y, sample_weight=np.full(len(y), float(weight)),
                                      **extra)
        np.testing.assert_array_equal(part.coefs_[0], whole.coefs_[0])


@pytest.mark.parametrize("weight", [0.0, -1.0, np.nan, np.inf])
def test_a_number_as_sample_weight_is_checked_as_an_array_of_it_would_be(weight):
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="sample_weight"):
        reg.fit(X0, X0[:, 0], sample_weight=weight)
    assert not hasattr(reg, "model_")


# -- parameter errors in the estimators' words ----------------------------------------------------

PARAMETER_ERRORS = [
    (dict(alpha=np.inf), r"alpha must be a finite number in \[0, inf\); got inf"),
    (dict(alpha=np.nan), r"alpha must be a finite number in \[0, inf\); got nan"),
    (dict(alpha=-1.0), r"alpha must be a finite number in \[0, inf\); got -1.0"),
    (dict(learning_rate_init=np.inf),
     r"learning_rate_init must be a finite number in \(0, inf\); got inf"),
    (dict(learning_rate_init=0), r"learning_rate_init must be a finite number in \(0, inf\)"),
    (dict(power_t=np.inf), r"power_t must be a finite number in \[0, inf\)"),
    (dict(tol=np.inf), r"tol must be a finite number in \[0, inf\)"),
    (dict(max_iter=0), r"max_iter must be an integer in \[1, inf\); got 0"),
    (dict(batch_size=0), r"batch_size must be an integer in \[1, inf\)"),
    (dict(max_fun=0), r"max_fun must be an integer in \[1, inf\)"),
    (dict(validation_fraction=1.0), r"validation_fraction must be a finite number in \[0, 1\)"),
    (dict(beta_1=1.0), r"beta_1 must be a finite number in \[0, 1\); got 1.0"),
    (dict(beta_2=np.nan), r"beta_2 must be a finite number in \[0, 1\); got nan"),
    (dict(epsilon=0.0), r"epsilon must be a finite number in \(0, inf\); got 0.0"),
    (dict(epsilon=np.inf), r"epsilon must be a finite number in \(0, inf\); got inf"),
    (dict(l1=np.inf), r"l1 must be a finite number in \[0, inf\); got inf"),
    (dict(clip_norm=0.0), r"clip_norm must be None or a finite number in \(0, inf\); got 0.0"),
    (dict(clip_value=np.inf), r"clip_value must be None or a finite number in \(0, inf\)"),
    (dict(activation="swishy"), r"unknown activation 'swishy'"),
    (dict(activation=["relu", "tanh"]), r"activation lists 2 activations for 1 hidden layers"),
    (dict(learning_rate="sometimes"), r"learning_rate.*unknown schedule 'sometimes'"),
    (dict(learning_rate=3), r"learning_rate must be .*; got 3"),
    (dict(dropout="a"), r"dropout must be a number or one number per hidden layer; got 'a'"),
]
INTERNAL_NAMES = ("l2 ", "lr ", "beta1", "beta2", "eps ", "hidden_activation", "schedule must")


@pytest.mark.parametrize("Est, y", [(MLPClassifier, Y0), (MLPRegressor, X0[:, 0])])
@pytest.mark.parametrize("params, message", PARAMETER_ERRORS)
def test_parameter_errors_name_the_estimators_parameter_and_its_interval(Est, y, params,
                                                                         message):
    est = Est(**{"hidden_layer_sizes": (4,), "max_iter": 3, **params})
    with pytest.raises((ValueError, TypeError), match=message) as error:
        est.fit(X0, y)
    text = str(error.value)
    assert "inf]" not in text and not any(name in text for name in INTERNAL_NAMES), text


def test_the_estimator_specific_parameters_are_named_with_their_interval():
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 1\)"):
        MLPClassifier(label_smoothing=1.0, max_iter=3).fit(X0, Y0)
    with pytest.raises(ValueError, match=r"huber_delta must be a finite number in \(0, inf\); "
                                         r"got inf"):
        MLPRegressor(loss="huber", huber_delta=np.inf, max_iter=3).fit(X0, X0[:, 0])


# -- momentum = 1 ------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["adam", "lbfgs", "rmsprop"])
def test_momentum_one_is_accepted_where_it_is_unused(solver):
    """scikit-learn's constraint is momentum in [0, 1]; the solvers other than "sgd" do not
    read it, so momentum=1.0 (in a grid shared with "sgd", say) does not stop them."""
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver=solver, momentum=1.0, max_iter=5,
                        random_state=0).fit(X0, Y0)
    same = MLPClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=5,
                         random_state=0).fit(X0, Y0)
    np.testing.assert_array_equal(clf.predict_proba(X0), same.predict_proba(X0))


@pytest.mark.parametrize("nesterovs_momentum", [False, True])
def test_momentum_one_with_sgd_trains_as_scikit_learns_range_allows(nesterovs_momentum):
    """At momentum 1 the velocity is never damped; the fit is the optimizer's rule at mu = 1."""
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", momentum=1.0, max_iter=3,
                        learning_rate_init=1e-3, nesterovs_momentum=nesterovs_momentum,
                        random_state=0).fit(X0, Y0)
    assert clf.n_iter_ == 3 and np.all(np.isfinite(clf.predict_proba(X0)))
    assert clf.model_.optimizer.momentum == 1.0
    with pytest.raises(ValueError, match=r"momentum must be a finite number in \[0, 1\]"):
        MLPClassifier(solver="sgd", momentum=1.5, max_iter=3).fit(X0, Y0)
    with pytest.raises(ValueError, match=r"momentum must be a finite number in \[0, 1\]"):
        MLPClassifier(solver="adam", momentum=1.5, max_iter=3).fit(X0, Y0)


# -- saving labels a model file cannot hold ---------------------------------------------------

@pytest.mark.parametrize("labels", [
    np.array(["2020-01-01", "2021-06-01"], dtype="datetime64[D]"),
    np.array([1, 2], dtype="timedelta64[s]"),
])
def test_saving_time_labels_says_which_labels_a_file_can_hold(labels, tmp_path):
    """A classifier fitted on datetime64 / timedelta64 labels predicts them, but fastmlp's
    model file stores numbers and strings only: save says so, before writing anything (it
    used to fail its own read-back, calling the file corrupted)."""
    y = labels[(Y0 > 0).astype(int)]
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X0, y)
    assert clf.predict(X0).dtype == labels.dtype
    path = tmp_path / "clf.npz"
    with pytest.raises(ValueError, match=r"(?s)class labels are of dtype (datetime|timedelta)64.*"
                                         r"numbers.*strings.*astype\(str\)") as error:
        clf.save(path)
    assert "corrupted" not in str(error.value)
    assert not path.exists() and not list(tmp_path.iterdir())
    clf.fit(X0, y.astype(str)).save(path)                   # as the message says
    import fastmlp
    assert list(fastmlp.load(path).classes_) == sorted(set(y.astype(str)))
