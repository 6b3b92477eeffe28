"""MLPEnsembleClassifier / MLPEnsembleRegressor: members trained as one stack."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp.ensemble import MLPEnsembleClassifier, MLPEnsembleRegressor  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("bootstrap,max_samples", [(False, None), (True, None), (True, 0.5),
                                                   (False, 100)])
def test_first_member_is_the_estimators_own_fit(bootstrap, max_samples):
    """Member 0 visits its own shuffles: it is exactly its estimator's fit with its counts as
    sample weights; the others share its batches and differ in seed and sample."""
    X, y = _iris()
    base = MLPClassifier((6,), max_iter=40, learning_rate_init=0.01, batch_size=32,
                         n_iter_no_change=3, tol=1e-3)
    ens = MLPEnsembleClassifier(base, n_members=4, bootstrap=bootstrap, max_samples=max_samples,
                                random_state=0, n_jobs=2).fit(X, y)
    seeds, counts = ens._member_draws(len(y))
    assert ens.random_states_ == seeds and len(set(seeds)) == 4
    if bootstrap:
        assert all(c.sum() == (75 if max_samples else 150) for c in counts)
    elif max_samples:
        assert all(set(np.unique(c)) == {0.0, 1.0} and c.sum() == 100 for c in counts)
    alone = clone(base).set_params(random_state=seeds[0]).fit(X, y, sample_weight=counts[0])
    first = ens.estimators_[0]
    assert first.n_iter_ == alone.n_iter_ and first.loss_curve_ == alone.loss_curve_
    np.testing.assert_array_equal(first.model_.params, alone.model_.params)
    params = np.stack([m.model_.params for m in ens.estimators_])
    assert len({p.tobytes() for p in params}) == 4           # independent members
    proba = np.mean([m.predict_proba(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), proba, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ens.predict(X), ens.classes_[proba.argmax(1)])
    assert ens.score(X, y) > 0.8
    for member in ens.estimators_:                            # ordinary fitted estimators
        assert type(member) is MLPClassifier and member.predict(X[:3]).shape == (3,)


def test_regressor_averages_and_beats_a_lone_member_on_average():
    X, y = make_regression(300, 6, noise=10.0, random_state=0)
    X, y = StandardScaler().fit_transform(X), y / y.std()
    base = MLPRegressor(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01)
    ens = MLPEnsembleRegressor(base, n_members=5, bootstrap=True, random_state=1).fit(
        X[:200], y[:200])
    np.testing.assert_allclose(ens.predict(X), np.mean([m.predict(X) for m in ens.estimators_],
                                                       axis=0), rtol=0, atol=1e-12)
    member_scores = [m.score(X[200:], y[200:]) for m in ens.estimators_]
    assert ens.score(X[200:], y[200:]) >= np.mean(member_scores)


def test_stackless_members_are_fitted_one_by_one():
    X, y = _iris()
    for base in (MLPClassifier((5,), solver="lbfgs", max_iter=50),
                 MLPClassifier((5,), early_stopping=True, max_iter=20)):
        ens = MLPEnsembleClassifier(base, n_members=2, random_state=0).fit(X, y)
        for seed, member in zip(ens.random_states_, ens.estimators_):
            alone = clone(base).set_params(random_state=seed).fit(X, y)
            np.testing.assert_array_equal(member.model_.params, alone.model_.params)


def test_bad_arguments():
    X, y = _iris()
    for kwargs, match in [({"n_members": 0}, "n_members"), ({"max_samples": 1.5}, "max_samples"),
                          ({"max_samples": 200}, "max_samples"), ({"bootstrap": "yes"},
                                                                  "bootstrap")]:
        with pytest.raises(ValueError, match=match):
            MLPEnsembleClassifier(MLPClassifier((3,), max_iter=2), **kwargs).fit(X, y)
    with pytest.raises(TypeError, match="MLPClassifier"):
        MLPEnsembleClassifier(MLPRegressor(max_iter=2)).fit(X, y)


SMALL = dict(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01)


@parametrize_with_checks([MLPEnsembleClassifier(MLPClassifier(**SMALL), n_members=2),
                          MLPEnsembleRegressor(MLPRegressor(**SMALL), n_members=2,
                                               bootstrap=True)],
                         expected_failed_checks=lambda est: {
                             f"check_sample_weight_equivalence_on_{kind}_data":
                             "bootstrap samples draw rows by position: a repeated row changes "
                             "the number of rows, and so every member's sample"
                             for kind in ("dense", "sparse")}
                         if est.bootstrap else {})
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("label", [7, "a"])
def test_single_class_y_predicts_that_class_as_the_members_do(label):
    """MLPClassifier fitted on one class predicts it (as scikit-learn's does); the ensemble
    raised IndexError, its mean probabilities having two columns for the one class."""
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = np.full(30, label)
    ens = MLPEnsembleClassifier(MLPClassifier((4,), max_iter=5), n_members=2,
                                random_state=0).fit(X, y)
    assert list(ens.classes_) == [label]
    predicted = ens.predict(X)
    assert predicted.dtype == ens.classes_.dtype
    np.testing.assert_array_equal(predicted, y)
    for member in ens.estimators_:
        np.testing.assert_array_equal(member.predict(X), predicted)
    assert ens.score(X, y) == 1.0
