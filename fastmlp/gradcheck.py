"""Gradient checking: backpropagation's gradient against central finite differences.

For each parameter ``theta_i`` checked, the numerical derivative of the objective ``J`` is
``(J(theta_i + h) - J(theta_i - h)) / (2 h)`` (dividing by the step actually taken after
rounding), and it is compared with the analytic gradient ``a_i`` from
``MLP.loss_and_gradient`` by the relative error

    ``|a_i - n_i| / max(|a_i|, |n_i|, floor)``.

The ``floor`` keeps entries whose derivative is about zero from reporting the rounding noise of
the difference quotient as a large relative error: they are judged by their absolute error
divided by ``floor``. With ``h = 1e-5`` in float64 the quotient is accurate to about 1e-10
absolute, so a correct gradient gives errors of 1e-7 or less, and a wrong one errors near 1.

``J`` is the exact function whose gradient training follows: the mean loss plus the L1/L2
penalties, without dropout. For a model with batch normalization it is the objective with
the batch's own statistics (as in training), which is what ``loss_and_gradient`` returns;
otherwise it is ``MLP.loss``.
"""
import numbers

import numpy as np

from .io import _constructor_arguments
from .mlp import MLP

__all__ = ["check_gradients", "GradientCheckResult"]


class GradientCheckResult:
    """What :func:`check_gradients` found: the largest relative error of each parameter array.

    Index it like a dict: ``result["W[0]"]``.

    Attributes
    ----------
    errors : dict of str to float
        For each parameter array, in layer order (``"W[0]"``, ``"b[0]"``, ``"gamma[0]"``,
        ``"beta[0]"``, ``"W[1]"``, ...; ``gamma``/``beta`` only for batch-normalized layers),
        the largest relative error among its checked entries.
    max_error : float
        The largest of them.
    worst : str
        The entry with the largest error, e.g. ``"W[1][3, 0]"``.
    n_checked : int
        How many parameters were checked.
    n_params : int
        How many the model has.
    """

    def __init__(self, errors, max_error, worst, n_checked, n_params):
        self.errors = errors
        self.max_error = max_error
        self.worst = worst
        self.n_checked = n_checked
        self.n_params = n_params

    def __getitem__(self, name):
        return self.errors[name]

    def __repr__(self):
        per_array = ", ".join(f"{name!r}: {err:.3g}" for name, err in self.errors.items())
        return (f"GradientCheckResult(max_error={self.max_error:.3g}, worst={self.worst!r}, "
                f"checked {self.n_checked} of {self.n_params}, errors={{{per_array}}})")


def _check_positive(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def _parameter_arrays(model):
    """(name, offset in params, shape) of every parameter array, in layer order."""
    base = model.params.__array_interface__["data"][0]
    arrays = []
    for k in range(len(model.W)):
        for kind in ("W", "b", "gamma", "beta"):
            views = getattr(model, kind)
            view = views[k] if k < len(views) else None
            if view is not None:
                offset = (view.__array_interface__["data"][0] - base) // model.params.itemsize
                arrays.append((f"{kind}[{k}]", offset, view.shape))
    return arrays


def _float64_copy(model):
    """An equal model in float64: the same configuration, parameters, statistics and classes."""
    copy = MLP(**dict(_constructor_arguments(model), dtype=np.float64), seed=0)
    copy.params[...] = model.params
    copy.bn_state[...] = model.bn_state
    copy.classes_ = model.classes_
    return copy


def _choose(arrays, n_params, max_params, seed):
    """Indices into params: all, or ``max_params`` at random with one from every array."""
    if max_params is None or max_params >= n_params:
        return np.arange(n_params)
    rng = np.random.default_rng(seed)
    first = [offset + int(rng.integers(int(np.prod(shape)))) for _, offset, shape in arrays]
    rest = np.setdiff1d(np.arange(n_params), first)
    extra = rng.choice(rest, size=max_params - len(first), replace=False)
    return np.sort(np.concatenate([np.array(first, dtype=np.intp), extra]))


def check_gradients(model, X, y, sample_weight=None, *, step=1e-5, floor=1e-4, max_params=None,
                    seed=0):
    """Compare the model's backpropagated gradient with central finite differences.

    The same check PyTorch offers as ``torch.autograd.gradcheck``, for a fastmlp model: use it
    after changing a loss, an activation or a regularizer, or to see how far a gradient can be
    trusted near a kink (ReLU at 0, L1 at 0, the absolute error at a zero residual, where the
    derivative jumps and a difference quotient across the jump is meaningless).

    Parameters
    ----------
    model : fastmlp.MLP
        Left unchanged: its parameters are perturbed one at a time and restored exactly, also
        when an error interrupts the check. A float32 model is checked through a float64 copy
        (finite differences in float32 measure rounding, not the gradient); the compiled code
        is the same for both dtypes.
    X : array-like of shape (n_samples, n_features)
    y : array-like
        Targets as for ``MLP.loss``.
    sample_weight : array-like of shape (n_samples,), optional
    step : float, default 1e-5
        The finite-difference step ``h``, > 0.
    floor : float, default 1e-4
        The relative error is ``|a - n| / max(|a|, |n|, floor)``; see the module docstring.
    max_params : int, optional
        Check at most this many parameters, drawn at random (with ``seed``), at least one from
        every parameter array; all of them when None. Each parameter costs two evaluations of
        the objective on the whole of X.
    seed : int, default 0
        Seeds the choice of parameters when ``max_params`` is set.

    Returns
    -------
    GradientCheckResult
        ``result.errors`` maps ``"W[0]"``, ``"b[0]"``, (``"gamma[0]"``, ``"beta[0]"``,)
        ``"W[1]"``, ... to the largest relative error in that array; ``result.max_error`` is
        the overall largest and ``result.worst`` names its entry.

    Raises
    ------
    TypeError
        If ``model`` is not an ``MLP``.
    ValueError
        For an invalid option, or X, y or sample_weight that the model rejects.

    Examples
    --------
    >>> import numpy as np
    >>> import fastmlp
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 3)); y = (X[:, 0] > 0).astype(int)
    >>> model = fastmlp.MLP([3, 5, 1], hidden_activation="tanh", l2=0.01, seed=0)
    >>> result = fastmlp.check_gradients(model, X, y)
    >>> list(result.errors)
    ['W[0]', 'b[0]', 'W[1]', 'b[1]']
    >>> bool(result.max_error < 1e-6)
    True
    """
    if not isinstance(model, MLP):
        raise TypeError(f"check_gradients needs a fastmlp.MLP; got {type(model).__name__}")
    step = _check_positive("step", step)
    floor = _check_positive("floor", floor)
    arrays = _parameter_arrays(model)
    if max_params is not None:
        if isinstance(max_params, (bool, np.bool_)) or not isinstance(max_params, numbers.Integral):
            raise TypeError(f"max_params must be an integer or None; got {max_params!r}")
        if max_params < len(arrays):
            raise ValueError(f"max_params must be at least the number of parameter arrays "
                             f"({len(arrays)}), one entry of each; got {max_params}")
    if seed is not None and (isinstance(seed, (bool, np.bool_))
                             or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer or None; got {seed!r}")

    work = model if model.dtype == np.float64 else _float64_copy(model)
    _, analytic = work.loss_and_gradient(X, y, sample_weight)     # checks X, y, sample_weight
    if any(work.batch_norm):
        def objective():
            return work.loss_and_gradient(X, y, sample_weight)[0]
    else:
        def objective():
            return work.loss(X, y, sample_weight)

    theta = work.params
    indices = _choose(arrays, theta.size, max_params, seed)
    numeric = np.empty(indices.size)
    saved = theta.copy(), work.bn_state.copy()
    try:
        for j, i in enumerate(indices):
            original = theta[i]
            theta[i] = original + step
            J_up = objective()
            theta[i] = original - step
            J_down = objective()
            numeric[j] = (J_up - J_down) / ((original + step) - (original - step))
            theta[i] = original
    finally:
        theta[...], work.bn_state[...] = saved

    a = analytic[indices]
    relative = np.abs(a - numeric) / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), floor)
    errors = {}
    worst, max_error = None, -1.0
    for name, offset, shape in arrays:
        size = int(np.prod(shape))
        inside = (indices >= offset) & (indices < offset + size)
        errors[name] = float(relative[inside].max())
        j = int(np.flatnonzero(inside)[relative[inside].argmax()])
        if relative[j] > max_error:
            max_error = float(relative[j])
            where = np.unravel_index(indices[j] - offset, shape)
            worst = f"{name}[{', '.join(map(str, where))}]"
    return GradientCheckResult(errors, max_error, worst, int(indices.size), int(theta.size))
