"""MLPSearchCV: the results of GridSearchCV / RandomizedSearchCV, with the fits trained as stacks."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from scipy.stats import loguniform  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp.model_selection import MLPSearchCV, _Fit, _train_group  # noqa: E402


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _assert_same_results(ours, theirs, atol=1e-10):
    theirs_keys = {k for k in theirs.cv_results_ if "time" not in k}
    ours_keys = {k for k in ours.cv_results_ if "time" not in k}
    assert ours_keys == theirs_keys
    for key in theirs_keys:
        a, b = ours.cv_results_[key], theirs.cv_results_[key]
        if key.startswith(("split", "mean_", "std_")):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=key)
        else:
            assert list(a) == list(b), key
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"):
        assert ours.cv_results_[key].shape == theirs.cv_results_[key].shape
        assert np.all(ours.cv_results_[key] >= 0)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=atol)
    assert ours.n_splits_ == theirs.n_splits_


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_every_fit_ends_where_gridsearchcv_fit_ends():
    """Several groups (widths, batch sizes, solvers), early stopping, adaptive and invscaling
    rates, per-model stopping: every split score and train score equal GridSearchCV's."""
    X, y = _scaled(load_iris)
    est = MLPClassifier((6,), max_iter=40, random_state=0, tol=1e-3, n_iter_no_change=3)
    grid = [{"learning_rate_init": [0.01, 0.1], "alpha": [1e-4, 1e-1],
             "hidden_layer_sizes": [(6,), (5, 3)], "early_stopping": [False, True]},
            {"solver": ["sgd"], "learning_rate": ["constant", "invscaling", "adaptive"],
             "momentum": [0.0, 0.9], "batch_size": [16, 200], "learning_rate_init": [0.2]}]
    ours = MLPSearchCV(est, grid, cv=3, return_train_score=True, n_jobs=2).fit(X, y)
    theirs = GridSearchCV(est, grid, cv=3, return_train_score=True).fit(X, y)
    _assert_same_results(ours, theirs, atol=0)
    assert 3 <= ours.n_stacks_ < len(ours.cv_results_["params"]) * 3
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    assert ours.score(X, y) == theirs.score(X, y)
    assert type(ours.best_estimator_) is MLPClassifier
    assert ours.refit_time_ > 0


def test_each_stacked_fit_equals_the_estimators_own_fit():
    """Per model: n_iter_ (the stopping rule), loss curve, weights, validation scores."""
    X, y = _scaled(load_breast_cancer)
    train = np.arange(0, len(y), 2)
    settings = [dict(learning_rate_init=lr, alpha=a, early_stopping=es, n_iter_no_change=n)
                for lr, a, es, n in [(1e-3, 1e-4, False, 10), (0.05, 1e-2, False, 2),
                                     (0.3, 0.0, False, 5), (0.01, 1e-3, True, 3),
                                     (0.1, 1e-3, True, 1)]]
    base = MLPClassifier((8, 4), max_iter=60, random_state=3, tol=1e-3, batch_size=50)
    fits = [_Fit.start(base.__class__(**{**base.get_params(), **s}), X, y, train, {})
            for s in settings]
    for key in ("simple", "early"):
        group = [f for f in fits if f.simple == (key == "simple")]
        assert len(group) >= 2
        assert all(f.key == group[0].key for f in group) or key == "early"
    for f in fits:
        _train_group([f], n_jobs=1) if f.est.early_stopping else None
    plain = [f for f in fits if not f.est.early_stopping]
    assert _train_group(plain, n_jobs=2) == [None] * len(plain)
    for f, s in zip(fits, settings):
        alone = base.__class__(**{**base.get_params(), **s}).fit(X[train], y[train])
        assert f.est.n_iter_ == alone.n_iter_
        assert f.est.loss_curve_ == alone.loss_curve_
        assert f.est.validation_scores_ == alone.validation_scores_
        np.testing.assert_array_equal(f.est.model_.params, alone.model_.params)
    assert len({f.est.n_iter_ for f in fits}) > 2      # the models stopped at different epochs


def test_regressor_and_randomized_search():
    X, y = make_regression(150, 5, noise=5.0, random_state=0)
    y = y / y.std()
    est = MLPRegressor(hidden_layer_sizes=(7,), max_iter=30, random_state=1)
    dists = {"learning_rate_init": loguniform(1e-3, 1e-1), "alpha": [1e-4, 1e-2],
             "batch_size": [32, 64]}
    ours = MLPSearchCV(est, param_distributions=dists, n_iter=6, random_state=0,
                       cv=KFold(4, shuffle=True, random_state=0), scoring="neg_mean_squared_error")
    theirs = RandomizedSearchCV(est, dists, n_iter=6, random_state=0,
                                cv=KFold(4, shuffle=True, random_state=0),
                                scoring="neg_mean_squared_error")
    _assert_same_results(ours.fit(X, y), theirs.fit(X, y))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_multimetric_fallbacks_and_pipelines():
    """lbfgs fits and Pipelines are fitted one by one, with GridSearchCV's results."""
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier((5,), max_iter=30, random_state=0)
    grid = {"solver": ["lbfgs", "adam"], "alpha": [1e-4, 1.0]}
    scoring = {"acc": "accuracy", "nll": "neg_log_loss"}
    ours = MLPSearchCV(est, grid, cv=3, scoring=scoring, refit="nll").fit(X, y)
    theirs = GridSearchCV(est, grid, cv=3, scoring=scoring, refit="nll").fit(X, y)
    _assert_same_results(ours, theirs)
    assert ours.multimetric_ and set(ours.scorer_) == {"acc", "nll"}
    pipe = make_pipeline(StandardScaler(), est)
    grid = {"mlpclassifier__alpha": [1e-4, 1.0]}
    ours = MLPSearchCV(pipe, grid, cv=3).fit(X, y)
    _assert_same_results(ours, GridSearchCV(pipe, grid, cv=3).fit(X, y))
    assert ours.n_stacks_ == 0


def test_failed_fits_score_error_score():
    X, y = make_regression(100, 4, random_state=0)
    X, y = X / X.std(), y / y.std()
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", max_iter=20, random_state=0)
    grid = {"learning_rate_init": [1e-3, 1e4]}
    with pytest.warns(FitFailedWarning):
        ours = MLPSearchCV(est, grid, cv=3).fit(X, y)
    assert np.isnan(ours.cv_results_["mean_test_score"][1])
    assert np.isfinite(ours.cv_results_["mean_test_score"][0])
    assert ours.best_index_ == 0
    with pytest.raises(ValueError, match="non-finite"):
        MLPSearchCV(est, grid, cv=3, error_score="raise").fit(X, y)


@pytest.mark.parametrize("loader,grid", [
    (load_iris, {"learning_rate_init": [1e-3, 1e-2, 0.1], "alpha": [1e-4, 1.0]}),
    (load_breast_cancer, {"learning_rate_init": [1e-4, 1e-2], "alpha": [1e-4, 10.0]}),
    (load_digits, {"learning_rate_init": [1e-3, 1e-2], "hidden_layer_sizes": [(8,), (32,)]}),
])
def test_ranking_as_gridsearchcv(loader, grid):
    """Same best candidate, mean test scores within 0.01 (they are equal: the fits are)."""
    X, y = _scaled(loader)
    est = MLPClassifier(max_iter=15, random_state=0)
    ours = MLPSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)
    theirs = GridSearchCV(est, grid, cv=3).fit(X, y)
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               theirs.cv_results_["mean_test_score"], atol=0.01)
    np.testing.assert_array_equal(ours.cv_results_["rank_test_score"],
                                  theirs.cv_results_["rank_test_score"])


def test_bad_arguments():
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier((4,), max_iter=5)
    for kwargs in ({}, {"param_grid": {"alpha": [1]}, "param_distributions": {"alpha": [1]}}):
        with pytest.raises(ValueError, match="exactly one of param_grid"):
            MLPSearchCV(est, **kwargs).fit(X, y)
    with pytest.raises(ValueError, match="n_iter"):
        MLPSearchCV(est, param_distributions={"alpha": [1]}, n_iter=0).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPSearchCV(est, {"hidden_layer_sizes": [(0,)]}, error_score="raise").fit(X, y)


# scikit-learn's estimator checks, as for GridSearchCV. A meta-estimator's checks run on the
# estimator it wraps: here a small fastmlp classifier and regressor.
_EXPECTED_FAILURES = {}


@parametrize_with_checks(
    [MLPSearchCV(MLPClassifier((16,), max_iter=100, learning_rate_init=0.01, random_state=0),
                 {"alpha": [1e-4, 1e-2]}, cv=2),
     MLPSearchCV(MLPRegressor(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01,
                              random_state=0),
                 param_distributions={"alpha": [1e-4, 1e-2]}, n_iter=2, random_state=0, cv=2)],
    expected_failed_checks=lambda est: _EXPECTED_FAILURES)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_sparse_X_and_float32():
    """A sparse X is checked once and read by index (never densified), in float32 too."""
    import scipy.sparse
    X, y = _scaled(load_iris)
    X[np.abs(X) < 0.5] = 0.0
    Xs = scipy.sparse.csr_matrix(X)
    est = MLPClassifier((6,), max_iter=20, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "dtype": [np.float64, np.float32]}
    ours = MLPSearchCV(est, grid, cv=3).fit(Xs, y)
    _assert_same_results(ours, GridSearchCV(est, grid, cv=3).fit(Xs, y))
    assert ours.n_stacks_ == 6                       # 3 folds x 2 dtypes


def test_unseeded_estimator_still_stacks():
    """random_state=None: one seed per search, so each fold's candidates share a stack; two
    searches draw different seeds."""
    X, y = _scaled(load_iris)
    est = MLPClassifier((6,), max_iter=20)
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 1e-2]}
    first = MLPSearchCV(est, grid, cv=3).fit(X, y)
    second = MLPSearchCV(est, grid, cv=3).fit(X, y)
    assert first.n_stacks_ == second.n_stacks_ == 3
    assert first.best_estimator_.random_state is None
    assert not np.array_equal(first.cv_results_["split0_test_score"],
                              second.cv_results_["split0_test_score"]) or \
        first.cv_results_["split0_test_score"].std() == 0


def test_lean_stacks_stop_and_diverge_as_gridsearchcv():
    """The search's lean stacks (the kernel's stopping rule, shared initial networks and
    shuffles, scoring from the stack's rows): candidates differing in the rate, the penalty,
    tol, n_iter_no_change and max_iter, some diverging after a few epochs, on folds of unequal
    sizes, end where GridSearchCV's fits end."""
    from sklearn.exceptions import FitFailedWarning
    X, y = make_regression(130, 4, noise=1.0, random_state=0)
    X, y = X / X.std(), y / y.std()
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", momentum=0.9, batch_size=16,
                       random_state=0)
    grid = {"learning_rate_init": [0.05, 0.5], "alpha": [1e-4, 1e-2], "max_iter": [9, 40],
            "n_iter_no_change": [2, 10], "tol": [1e-4, 1e-2]}
    with pytest.warns(FitFailedWarning):
        ours = MLPSearchCV(est, grid, cv=4, n_jobs=2).fit(X, y)
    with pytest.warns(FitFailedWarning):
        theirs = GridSearchCV(est, grid, cv=4).fit(X, y)
    _assert_same_results(ours, theirs, atol=0)
    scores = ours.cv_results_["mean_test_score"]
    assert np.isnan(scores).sum() == 16 and np.isfinite(scores).sum() == 16
    assert ours.n_stacks_ == 4                       # one per fold: every candidate lean
    # The refit (a stack of one, from the search's checked data and draws) is est.fit's.
    a, b = ours.best_estimator_, theirs.best_estimator_
    assert set(a.__dict__) == set(b.__dict__)
    for name in ("n_iter_", "t_", "loss_curve_", "best_loss_", "loss_", "n_features_in_"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("params", "bn_state", "_opt_state", "_step"):
        np.testing.assert_array_equal(getattr(a.model_, name), getattr(b.model_, name))
    assert (a.model_.lr, a.model_.base_lr, a.model_.l2) == (b.model_.lr, b.model_.base_lr,
                                                            b.model_.l2)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_lean_fits_scored_by_a_scorer_get_the_estimators_own_network():
    """With a scorer other than the estimator's score, a lean fit's estimator is given its
    own network (``_Fit.materialize``), equal to the one its own fit trains."""
    X, y = _scaled(load_iris)
    est = MLPClassifier((5,), solver="sgd", max_iter=25, random_state=0, batch_size=32)
    train = np.arange(0, len(y), 2)
    models, cache = {}, {}
    fits = [_Fit.start(est.__class__(**{**est.get_params(), "alpha": a}), X, y, train, cache,
                       models=models, lean=True) for a in (1e-4, 1e-1)]
    assert all(f.lean and "model_" not in f.est.__dict__ for f in fits)
    assert fits[0].template is fits[1].template is not None    # one draw for both
    assert _train_group(fits, n_jobs=1) == [None, None]
    for f, a in zip(fits, (1e-4, 1e-1)):
        f.materialize()
        alone = est.__class__(**{**est.get_params(), "alpha": a}).fit(X[train], y[train])
        assert f.est.n_iter_ == alone.n_iter_ and f.est.loss_curve_ == alone.loss_curve_
        assert f.est.t_ == alone.t_ and f.est.best_loss_ == alone.best_loss_
        for name in ("params", "bn_state", "_opt_state", "_step"):
            np.testing.assert_array_equal(getattr(f.est.model_, name),
                                          getattr(alone.model_, name))
        assert f.est.model_.lr == alone.model_.lr and f.est.model_.l2 == alone.model_.l2
        np.testing.assert_array_equal(f.est.predict_proba(X), alone.predict_proba(X))
        np.testing.assert_array_equal(f.est._decode(f.outputs(X)), alone.predict(X))


def test_memory_does_not_grow_with_candidates_times_rows(peak_during):
    """Eight times the candidates: the peak grows by their networks and bookkeeping only,
    never by a copy of the rows per fit (the folds are read by index, the scores from the
    stacks' rows)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 40))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    est = MLPClassifier((4,), solver="sgd", max_iter=2, batch_size=100, random_state=0)

    def search(n_candidates):
        grid = {"learning_rate_init": list(np.linspace(0.01, 0.1, n_candidates))}
        return lambda: MLPSearchCV(est, grid, cv=2, refit=False).fit(X, y)

    search(2)()                                      # imports and caches out of the way
    few, many = peak_during(search(2)), peak_during(search(16))
    assert many - few < 0.25 * X.nbytes, (few, many, X.nbytes)


@pytest.mark.parametrize("in_kernel", [True, False])
def test_composed_shuffles_are_scikit_learns(monkeypatch, in_kernel):
    # scikit-learn's epochs: sample_idx = sample_idx[rs.permutation(n)], then the same next
    # draws (the random state left where scikit-learn leaves it), in the kernel and in NumPy.
    from fastmlp import model_selection
    monkeypatch.setattr(model_selection, "draws_in_kernel", lambda rs: in_kernel)
    for n, count in [(1, 3), (2, 5), (160, 150), (257, 4)]:
        ours, theirs = np.random.RandomState(7), np.random.RandomState(7)
        start = theirs.permutation(n)
        ours.permutation(n)
        before, sample_idx, expected = start.copy(), start.copy(), []
        for _ in range(count):
            sample_idx = sample_idx[theirs.permutation(n)]
            expected.append(sample_idx)
        drawn = model_selection._composed_shuffles(ours, start, count)
        assert drawn.shape == (count, n)
        np.testing.assert_array_equal(drawn, expected)
        np.testing.assert_array_equal(start, before)            # the caller's, untouched
        assert ours.randint(0, 2**31, size=3).tolist() == theirs.randint(0, 2**31, size=3).tolist()


def _same_results(ours, theirs):
    keys = [k for k in theirs.cv_results_ if k.startswith(("split", "mean_test", "mean_train"))]
    assert keys
    for key in keys:
        np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=0,
                                   atol=1e-12, err_msg=key)
    assert ours.best_params_ == theirs.best_params_


@pytest.mark.parametrize("scoring", [None, "accuracy", "neg_log_loss"])
def test_sample_weight_reaches_fit_and_scorer_as_gridsearchcv_routes_it(scoring):
    # scikit-learn 1.9 on: fit's sample_weight is also given to a scorer that accepts it
    # (weighted accuracy, weighted log loss), for the test and the train scores.
    X, y = load_iris(return_X_y=True)
    w = np.linspace(0.5, 2.0, len(y))
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    grid = {"learning_rate_init": [0.01, 0.1], "alpha": [1e-4, 1e-2]}
    kwargs = dict(cv=3, scoring=scoring, return_train_score=True)
    _same_results(MLPSearchCV(est, grid, **kwargs).fit(X, y, sample_weight=w),
                  GridSearchCV(est, grid, **kwargs).fit(X, y, sample_weight=w))


def test_metadata_routing_as_gridsearchcv():
    import sklearn
    if not hasattr(GridSearchCV, "_get_routed_params_for_fit"):
        pytest.skip("scikit-learn before 1.4 routes no metadata in its searches")
    from sklearn.metrics import accuracy_score, make_scorer
    from sklearn.model_selection import GroupKFold
    X, y = load_iris(return_X_y=True)
    w = np.linspace(2.0, 0.5, len(y))
    groups = np.arange(len(y)) % 4
    grid = {"learning_rate_init": [0.01, 0.1]}
    with sklearn.config_context(enable_metadata_routing=True):
        est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0)
        for fit_request, score_request in [(True, True), (True, False), (False, True)]:
            kwargs = dict(cv=GroupKFold(2), return_train_score=True,
                          scoring=make_scorer(accuracy_score).set_score_request(
                              sample_weight=score_request))
            fitted = est.set_fit_request(sample_weight=fit_request)
            _same_results(MLPSearchCV(fitted, grid, **kwargs).fit(X, y, sample_weight=w,
                                                                  groups=groups),
                          GridSearchCV(fitted, grid, **kwargs).fit(X, y, sample_weight=w,
                                                                   groups=groups))


def test_other_estimators_go_through_scikit_learns_search():
    # A pipeline: scikit-learn's own machinery, the same results as GridSearchCV's; a failed
    # fit leaves the search as unfitted as it was.
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(6,), max_iter=20,
                                                         random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-2]}
    ours = MLPSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    _same_results(ours, GridSearchCV(pipe, grid, cv=3).fit(X, y))
    assert ours.n_stacks_ == 0
    failing = MLPSearchCV(pipe, {"mlpclassifier__nope": [1]}, cv=3)
    with pytest.raises(ValueError, match="nope"):
        failing.fit(X, y)
    assert not hasattr(failing, "n_stacks_") and not hasattr(failing, "cv_results_")


@pytest.mark.parametrize("verbose", [1, 2, 3, 10])
@pytest.mark.parametrize("scoring, train", [(None, False), (None, True),
                                            (["accuracy", "neg_log_loss"], True)])
def test_verbose_lines_as_gridsearchcv(capsys, verbose, scoring, train):
    """Per fit, the line GridSearchCV prints (verbose > 1: parameters and time; > 2: split and
    scores; > 9: candidate too), with only the times differing."""
    import re
    X, y = _scaled(load_iris)
    est = MLPClassifier((5,), max_iter=20, random_state=0)
    grid = {"learning_rate_init": [0.01, 0.1], "alpha": [1e-4, 1e-1]}
    refit = "accuracy" if isinstance(scoring, list) else True
    kwargs = dict(cv=3, scoring=scoring, return_train_score=train, refit=refit,
                  verbose=verbose)
    MLPSearchCV(est, grid, n_jobs=2, **kwargs).fit(X, y)
    ours = capsys.readouterr().out.splitlines()
    GridSearchCV(est, grid, **kwargs).fit(X, y)
    theirs = capsys.readouterr().out.splitlines()

    def ends(lines):
        # The time, and the dots that right-align it, differ; the rest must not.
        return sorted(re.sub(r"\.* total time=.*$", "", re.sub(r"END \.+", "END ", line))
                      for line in lines if "] END " in line)
    assert ends(ours) == ends(theirs)
    assert len(ends(ours)) == (12 if verbose > 1 else 0)
    assert all(len(line) >= 80 for line in ours if "] END " in line)
    assert any(line.startswith("Fitting 3 folds for each of 4 candidates") for line in ours)


@pytest.mark.parametrize("losses", [["squared_error", "poisson"], ["poisson", "squared_error"]])
def test_poisson_targets_are_checked_per_candidate_and_fold_as_gridsearchcv(losses):
    """y >= 0 is a condition of loss="poisson" on a fit's own training rows: a poisson
    candidate whose fold sees a negative target fails (error_score) however the candidates
    are ordered, a fold without one trains, and the other candidates are untouched."""
    from sklearn.exceptions import FitFailedWarning
    X, y = make_regression(90, 4, noise=1.0, random_state=0)
    X, y = X / X.std(), np.abs(y) / y.std()
    y[0] = -0.5                    # in the training rows of folds 1 and 2, not of fold 0
    est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=15, random_state=0)
    grid = {"loss": losses, "alpha": [1e-4, 1e-2]}
    with pytest.warns(FitFailedWarning):
        ours = MLPSearchCV(est, grid, cv=3).fit(X, y)
    with pytest.warns(FitFailedWarning):
        theirs = GridSearchCV(est, grid, cv=3).fit(X, y)
    _assert_same_results(ours, theirs, atol=0)
    poisson = np.array([p["loss"] == "poisson" for p in ours.cv_results_["params"]])
    assert np.all(np.isfinite(ours.cv_results_["split0_test_score"]))
    for s in (1, 2):
        scores = ours.cv_results_[f"split{s}_test_score"]
        assert np.all(np.isnan(scores[poisson])) and np.all(np.isfinite(scores[~poisson]))
    with pytest.raises(ValueError, match="negative"):
        MLPSearchCV(est, grid, cv=3, error_score="raise").fit(X, y)
    # Every poisson fit fails: GridSearchCV's "all fits failed" error.
    y_negative = y.copy()
    y_negative[[1, 40, 80]] = -1.0
    for search in (MLPSearchCV, GridSearchCV):
        with pytest.raises(ValueError, match="All the 6 fits failed"):
            search(est, {"loss": ["poisson"], "alpha": [1e-4, 1e-2]}, cv=3).fit(X, y_negative)


def test_cv_splits_index_rows_as_gridsearchcv_indexes_them():
    """A cv iterable's train/test sets select rows as GridSearchCV's _safe_indexing selects
    them: boolean masks (arrays or lists) pick the rows that are True (they trained on rows 0
    and 1), negative indices count from the end (they failed inside the engine), and an index
    out of range raises GridSearchCV's IndexError."""
    X, y = make_regression(120, 4, noise=1.0, random_state=0)
    X, y = X / X.std(), y / y.std()
    mask = np.random.default_rng(0).random(120) < 0.7
    rows = np.arange(120)
    est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=30, random_state=0)
    grid = {"alpha": [1e-4, 1e-1]}
    for cv in ([(mask, ~mask), (~mask, mask)], [(list(mask), list(~mask))],
               [(rows[:80] - 120, rows[80:]), (rows[40:], list(rows[:40] - 120))]):
        ours = MLPSearchCV(est, grid, cv=cv).fit(X, y)
        theirs = GridSearchCV(est, grid, cv=cv).fit(X, y)
        _assert_same_results(ours, theirs, atol=0)
        assert ours.n_stacks_ == len(cv)
    for search in (MLPSearchCV, GridSearchCV):
        with pytest.raises(IndexError, match="out of bounds"):
            search(est, grid, cv=[(rows[:100] + 30, rows[:20])]).fit(X, y)
