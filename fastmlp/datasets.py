"""Small data helpers so the demo needs nothing but fastmlp: the lecture's two circles, a
stratified split and standardization."""
import numpy as np

__all__ = ["make_circles", "stratified_split", "standardize"]


def make_circles(n_samples=100, *, noise=None, factor=0.8, random_state=None):
    """Two concentric circles, a binary problem no line separates.

    The same algorithm and random stream as ``sklearn.datasets.make_circles`` (with
    ``shuffle=True``), so a given ``random_state`` gives the same points.

    Parameters
    ----------
    n_samples : int
        Total points; the outer circle gets ``n_samples // 2``.
    noise : float or None
        Standard deviation of Gaussian noise added to every coordinate.
    factor : float in (0, 1)
        Radius of the inner circle relative to the outer one.
    random_state : int or None
        Seed of the ``numpy.random.RandomState`` that shuffles and adds noise.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    y : ndarray of int, shape (n_samples,)
        0 for the outer circle, 1 for the inner one.

    Examples
    --------
    >>> X, y = make_circles(200, noise=0.08, factor=0.5, random_state=1)
    >>> X.shape, int(y.sum())
    ((200, 2), 100)
    """
    if not 0 < factor < 1:
        raise ValueError(f"factor must be in (0, 1); got {factor}")
    n_out = n_samples // 2
    n_in = n_samples - n_out
    rng = np.random.RandomState(random_state)
    angles_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    angles_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.append(np.cos(angles_out), np.cos(angles_in) * factor),
                   np.append(np.sin(angles_out), np.sin(angles_in) * factor)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    X, y = X[order], y[order]
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def stratified_split(X, y, test_size=0.3, seed=0):
    """Split into train and test sets keeping each class's share.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
    """
    rng = np.random.default_rng(seed)
    test = np.concatenate([
        rng.permutation(np.flatnonzero(y == label))[:int(round(test_size * np.sum(y == label)))]
        for label in np.unique(y)])
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return X[~mask], X[mask], y[~mask], y[mask]


def standardize(X_train, *others):
    """Scale every column to zero mean and unit variance using the training set's statistics."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    return tuple((X - mean) / std for X in (X_train,) + others)
