"""Seed and bagging ensembles of fastmlp estimators, trained as one stack.

``MLPEnsembleClassifier`` averages the class probabilities of ``n_members`` copies of a fastmlp
``MLPClassifier``, ``MLPEnsembleRegressor`` the predictions of ``MLPRegressor`` copies. Each
member draws its own initial weights (its own ``random_state``); with ``bootstrap=True`` each is
trained on a bootstrap sample, given as per-row counts (sample weights), so no resampled copy of
X is made; ``max_samples`` sets the sample size (without ``bootstrap``, a subsample without
replacement, as 0/1 weights). All members train together in one ``MLPStack``: every batch is
gathered once and each member's step on it runs in the same kernel call.

The members visit the same batches, in the order the first member's ``random_state`` shuffles
them: member 0 is exactly ``clone(estimator).set_params(random_state=random_states_[0])
.fit(X, y, sample_weight=its counts)``, the others differ from their own lone fit only in that
order. Each member stops by scikit-learn's rule (``tol``, ``n_iter_no_change``, ``max_iter``) on
its own. Estimators that cannot train in a stack (``solver="lbfgs"``, ``early_stopping=True``,
whose validation splits differ between members) are fitted one after the other, each with its
own order.
"""
import numbers

import numpy as np

try:
    from joblib import effective_n_jobs
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import _num_samples, check_is_fitted
except ImportError as error:                       # pragma: no cover - depends on the install
    raise ImportError("fastmlp.ensemble needs scikit-learn >= 1.3: "
                      "pip install 'fastmlp[sklearn]'") from error

from . import estimators as _estimators
from .model_selection import _Fit, _train_group

__all__ = ["MLPEnsembleClassifier", "MLPEnsembleRegressor"]


class _BaseEnsemble(BaseEstimator):

    _default = None

    def __init__(self, estimator=None, n_members=5, *, bootstrap=False, max_samples=None,
                 random_state=None, n_jobs=None):
        self.estimator = estimator
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _member_draws(self, n_samples):
        """Each member's ``random_state`` and its row counts (None: every row once)."""
        if not isinstance(self.n_members, numbers.Integral) or isinstance(self.n_members, bool) \
                or self.n_members < 1:
            raise ValueError(f"n_members must be an integer >= 1; got {self.n_members!r}")
        if not isinstance(self.bootstrap, (bool, np.bool_)):
            raise ValueError(f"bootstrap must be True or False; got {self.bootstrap!r}")
        size = n_samples
        if self.max_samples is not None:
            m = self.max_samples
            if isinstance(m, numbers.Integral) and not isinstance(m, bool) and 1 <= m:
                size = int(m) if self.bootstrap else min(int(m), n_samples)
                if not self.bootstrap and m > n_samples:
                    raise ValueError(f"max_samples={m} is more than the {n_samples} samples; "
                                     f"without bootstrap it must be at most that")
            elif isinstance(m, numbers.Real) and not isinstance(m, bool) and 0 < m <= 1:
                size = max(1, int(round(m * n_samples)))
            else:
                raise ValueError(f"max_samples must be None, an int >= 1 or a float in (0, 1]; "
                                 f"got {m!r}")
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_members)
        counts = []
        for _ in range(self.n_members):
            if self.bootstrap:
                counts.append(np.bincount(rng.randint(0, n_samples, size),
                                          minlength=n_samples).astype(np.float64))
            elif size < n_samples:
                row = np.zeros(n_samples)
                row[rng.choice(n_samples, size, replace=False)] = 1.0
                counts.append(row)
            else:
                counts.append(None)
        return [int(s) for s in seeds], counts

    def fit(self, X, y, sample_weight=None):
        """Train every member.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Multiplies each member's bootstrap counts.

        Returns
        -------
        self
        """
        base = self._default() if self.estimator is None else self.estimator
        if not isinstance(base, self._member_type):
            raise TypeError(f"{type(self).__name__} takes a fastmlp "
                            f"{self._member_type.__name__} as estimator; got "
                            f"{type(base).__name__}")
        n_samples = _num_samples(X)
        seeds, counts = self._member_draws(n_samples)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            counts = [sample_weight if c is None else c * sample_weight for c in counts]
        members = [clone(base).set_params(random_state=s) for s in seeds]
        rows = np.arange(n_samples)
        cache = {}
        fits = [None if base.early_stopping else _Fit.start(m, X, y, rows, cache, c)
                for m, c in zip(members, counts)]
        if all(f is not None for f in fits) and len({f.key[:-1] for f in fits}) == 1:
            errors = _train_group(fits, max(1, effective_n_jobs(self.n_jobs)))
            for error in errors:
                if error is not None:
                    raise error
        else:
            for member, c in zip(members, counts):
                member.fit(X, y, sample_weight=c)
        self.estimators_ = members
        self.random_states_ = seeds
        first = members[0]
        self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True              # the members read sparse X as it is
        return tags

    def _mean(self, method, X):
        check_is_fitted(self, "estimators_")
        total = None
        for member in self.estimators_:
            out = getattr(member, method)(X)
            total = out.astype(np.float64) if total is None else total + out
        return total / len(self.estimators_)


class MLPEnsembleClassifier(ClassifierMixin, _BaseEnsemble):
    """An ensemble of fastmlp ``MLPClassifier`` members (seeds, optionally bagged) trained as
    one stack; it predicts the class of highest mean probability.

    Parameters
    ----------
    estimator : fastmlp.MLPClassifier, default MLPClassifier()
        The members' settings (its ``random_state`` is replaced by each member's).
    n_members : int, default 5
    bootstrap : bool, default False
        Train each member on a bootstrap sample (row counts as sample weights).
    max_samples : int, float or None, default None
        Rows per member's sample (a float: a fraction of the rows); None: all of them.
    random_state : int, RandomState instance or None, default None
        Draws the members' seeds and samples.
    n_jobs : int or None, default None
        Threads to train in (joblib's meaning: None is 1, -1 every core).

    Attributes
    ----------
    estimators_ : list of fastmlp.MLPClassifier
        The fitted members, ordinary estimators.
    random_states_ : list of int
        Each member's ``random_state``.
    classes_ : ndarray
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.ensemble import MLPEnsembleClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> ens = MLPEnsembleClassifier(MLPClassifier((8,), max_iter=300), n_members=4,
    ...                             bootstrap=True, random_state=0).fit(X, y)
    >>> ens.predict_proba(X[:2]).shape, len(ens.estimators_)
    ((2, 3), 4)
    """

    _default = _estimators.MLPClassifier
    _member_type = _estimators.MLPClassifier

    @property
    def classes_(self):
        check_is_fitted(self, "estimators_")
        return self.estimators_[0].classes_

    def predict_proba(self, X):
        """The members' mean class probabilities, shape (n_samples, n_classes)."""
        return self._mean("predict_proba", X)

    def predict(self, X):
        """The class of highest mean probability (multi-label: each label whose mean
        probability is at least 0.5; fitted on one class: that class, as the members
        predict it)."""
        proba = self.predict_proba(X)
        first = self.estimators_[0]
        if first._label_binarizer.y_type_ == "multilabel-indicator":
            return (proba >= 0.5).astype(int)
        if len(self.classes_) == 1:
            # (the members' probabilities then have two columns, as scikit-learn's)
            return np.repeat(self.classes_, proba.shape[0])
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPEnsembleRegressor(RegressorMixin, _BaseEnsemble):
    """An ensemble of fastmlp ``MLPRegressor`` members (seeds, optionally bagged) trained as one
    stack; it predicts the members' mean.

    Parameters and attributes as ``MLPEnsembleClassifier`` (``estimator`` an
    ``MLPRegressor``, default ``MLPRegressor()``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor
    >>> from fastmlp.ensemble import MLPEnsembleRegressor
    >>> X = np.linspace(-1, 1, 60).reshape(-1, 1)
    >>> ens = MLPEnsembleRegressor(MLPRegressor(hidden_layer_sizes=(16,), max_iter=200),
    ...                            n_members=3, random_state=0).fit(X, X.ravel() ** 2)
    >>> ens.predict(X).shape
    (60,)
    """

    _default = _estimators.MLPRegressor
    _member_type = _estimators.MLPRegressor

    def predict(self, X):
        """The members' mean prediction."""
        return self._mean("predict", X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
