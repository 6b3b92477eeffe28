"""Optimizers: the update rules users choose, as small configuration objects.

Each class holds one rule's hyperparameters, checks them, and tells the engine what the kernel
needs: ``kernel_id`` (from ``fastmlp._kernels._optim.OPTIMIZER_IDS``), ``n_state`` (how many
blocks of optimizer state, each the size of the parameter vector) and ``hyper`` (a float64 array
in the kernel's order). The arithmetic lives in ``_kernels/_optim.pyx`` and, written for reading,
in ``reference.optimizer_step``; nothing here touches parameters.

In every formula ``theta`` is the parameter vector, ``g`` the gradient of the objective, ``lr``
the current learning rate and ``t`` the number of the update, counted from 1. Optimizer state
starts at zero at the start of training.
"""
import math
import numbers

import numpy as np

from ._kernels._optim import OPTIMIZER_IDS, OPTIMIZER_STATE_SIZES

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW",
           "OPTIMIZERS", "get_optimizer"]

# Allowed intervals: (low, high, low_open, high_open).
_FRACTION = (0.0, 1.0, False, True)           # [0, 1)
_UNIT = (0.0, 1.0, False, False)              # [0, 1]: momentum 1 never damps the velocity
_POSITIVE = (0.0, math.inf, True, True)       # (0, inf)
_NON_NEGATIVE = (0.0, math.inf, False, True)  # [0, inf)


def _interval_text(low, high, low_open, high_open):
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


class Optimizer:
    """Base class of the optimizers: a rule's name and its checked hyperparameters.

    Subclasses set ``name`` (a key of ``OPTIMIZER_IDS``) and ``_params``, the pairs
    ``(parameter, allowed interval)`` in the order the kernel reads ``hyper``.

    Attributes
    ----------
    name : str
        The rule's name, as accepted by :func:`get_optimizer`.
    kernel_id : int
        The rule's id in the compiled kernel.
    n_state : int
        Blocks of optimizer state, each the size of the parameter vector.
    hyper : ndarray of float64
        The hyperparameters in the kernel's order (a new array on each access, checked again).
    weight_decay : float
        Decoupled weight decay rate; 0.0 except for :class:`AdamW`.
    squares_block : int or None
        The block of state that accumulates squared gradients (never negative in a state that
        training produced), or None.
    """

    name = None
    _params = ()
    weight_decay = 0.0
    squares_block = None

    @property
    def kernel_id(self):
        return OPTIMIZER_IDS[self.name]

    @property
    def n_state(self):
        return OPTIMIZER_STATE_SIZES[self.kernel_id]

    @property
    def hyper(self):
        return np.array(self._values(), dtype=np.float64)

    def _values(self):
        """The hyperparameters in the kernel's order, as a tuple of floats, checked again."""
        self._check()
        return tuple([getattr(self, p) for p, _ in self._params])

    def _check(self):
        """Turn every parameter into a float, or raise if it is outside its interval."""
        for param, (low, high, low_open, high_open) in self._params:
            value = getattr(self, param)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise TypeError(f"{type(self).__name__}: {param} must be a real number; "
                                f"got {value!r}")
            value = float(value)
            inside = (low < value if low_open else low <= value) and \
                     (value < high if high_open else value <= high)
            if not inside:
                raise ValueError(f"{type(self).__name__}: {param} must be a finite number in "
                                 f"{_interval_text(low, high, low_open, high_open)}; "
                                 f"got {value!r}")
            setattr(self, param, value)

    def __repr__(self):
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p, _ in self._params)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and \
            all(getattr(self, p) == getattr(other, p) for p, _ in self._params)

    __hash__ = None


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``theta -= lr * g``.

    No hyperparameters, no state.

    Examples
    --------
    >>> from fastmlp.optimizers import SGD
    >>> SGD()
    SGD()
    >>> SGD().n_state
    0
    """

    name = "sgd"

    def __init__(self):
        self._check()


class Momentum(Optimizer):
    """Gradient descent with (heavy-ball) momentum.

    ``v = momentum * v - lr * g;  theta += v``, with the velocity ``v`` as state.

    Parameters
    ----------
    momentum : float, default 0.9
        In [0, 1); 0 is plain SGD.

    Raises
    ------
    TypeError
        If ``momentum`` is not a real number.
    ValueError
        If ``momentum`` is outside [0, 1] (scikit-learn's range; at 1 the velocity is never
        damped).

    Examples
    --------
    >>> from fastmlp.optimizers import Momentum
    >>> Momentum(momentum=0.5).hyper
    array([0.5])
    """

    name = "momentum"
    _params = (("momentum", _UNIT),)

    def __init__(self, momentum=0.9):
        self.momentum = momentum
        self._check()


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient in Sutskever's form, as in scikit-learn.

    ``v = momentum * v - lr * g;  theta += momentum * v - lr * g``, with the velocity ``v`` as
    state: the step looks ahead along the new velocity.

    Parameters
    ----------
    momentum : float, default 0.9
        In [0, 1).

    Raises
    ------
    TypeError
        If ``momentum`` is not a real number.
    ValueError
        If ``momentum`` is outside [0, 1] (scikit-learn's range; at 1 the velocity is never
        damped).

    Examples
    --------
    >>> from fastmlp.optimizers import Nesterov
    >>> Nesterov()
    Nesterov(momentum=0.9)
    """

    name = "nesterov"
    _params = (("momentum", _UNIT),)

    def __init__(self, momentum=0.9):
        self.momentum = momentum
        self._check()


class AdaGrad(Optimizer):
    """AdaGrad: per-parameter rates that shrink with the sum of squared gradients.

    ``G += g**2;  theta -= lr * g / (sqrt(G) + eps)``, with the sum ``G`` as state.

    Parameters
    ----------
    eps : float, default 1e-10
        Positive; keeps the step finite where ``G`` is 0.

    Raises
    ------
    TypeError
        If ``eps`` is not a real number.
    ValueError
        If ``eps`` is not positive and finite.

    Examples
    --------
    >>> from fastmlp.optimizers import AdaGrad
    >>> AdaGrad(eps=1e-8).hyper
    array([1.e-08])
    """

    name = "adagrad"
    _params = (("eps", _POSITIVE),)
    squares_block = 0

    def __init__(self, eps=1e-10):
        self.eps = eps
        self._check()


class RMSProp(Optimizer):
    """RMSProp: rates scaled by a moving average of squared gradients.

    ``s = rho * s + (1 - rho) * g**2;  theta -= lr * g / (sqrt(s) + eps)``, with ``s`` as state.

    Parameters
    ----------
    rho : float, default 0.9
        Decay of the moving average, in [0, 1).
    eps : float, default 1e-8
        Positive.

    Raises
    ------
    TypeError
        If a parameter is not a real number.
    ValueError
        If ``rho`` is outside [0, 1) or ``eps`` is not positive and finite.

    Examples
    --------
    >>> from fastmlp.optimizers import RMSProp
    >>> RMSProp(rho=0.5, eps=0.25).hyper          # [rho, eps]
    array([0.5 , 0.25])
    """

    name = "rmsprop"
    squares_block = 0
    _params = (("rho", _FRACTION), ("eps", _POSITIVE))

    def __init__(self, rho=0.9, eps=1e-8):
        self.rho = rho
        self.eps = eps
        self._check()


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): bias-corrected moving averages of the gradient and its square.

    ``m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g**2;``
    ``theta -= lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)``,
    with ``m`` and ``v`` as state.

    Parameters
    ----------
    beta1 : float, default 0.9
        Decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second moment, in [0, 1).
    eps : float, default 1e-8
        Positive.

    Raises
    ------
    TypeError
        If a parameter is not a real number.
    ValueError
        If a beta is outside [0, 1) or ``eps`` is not positive and finite.

    Examples
    --------
    >>> from fastmlp.optimizers import Adam
    >>> opt = Adam(beta1=0.5, beta2=0.75, eps=0.125)
    >>> opt.hyper                                 # [beta1, beta2, eps]
    array([0.5  , 0.75 , 0.125])
    >>> opt.n_state                               # m and v
    2
    """

    name = "adam"
    squares_block = 1
    _params = (("beta1", _FRACTION), ("beta2", _FRACTION), ("eps", _POSITIVE))

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self._check()


class AdamW(Optimizer):
    """AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay, as in PyTorch.

    Before each Adam step (see :class:`Adam`) the weight matrices, not the biases, shrink by
    ``theta *= 1 - lr * weight_decay``. Unlike an L2 penalty, this decay does not pass through
    Adam's per-parameter scaling.

    Parameters
    ----------
    beta1 : float, default 0.9
        Decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second moment, in [0, 1).
    eps : float, default 1e-8
        Positive.
    weight_decay : float, default 0.01
        Decoupled decay rate, >= 0 (0 is Adam).

    Raises
    ------
    TypeError
        If a parameter is not a real number.
    ValueError
        If a beta is outside [0, 1), ``eps`` is not positive or ``weight_decay`` is negative.

    Examples
    --------
    >>> from fastmlp.optimizers import AdamW
    >>> opt = AdamW(weight_decay=0.5)
    >>> opt.hyper                                 # [beta1, beta2, eps, weight_decay]
    array([9.00e-01, 9.99e-01, 1.00e-08, 5.00e-01])
    >>> opt.weight_decay
    0.5
    """

    name = "adamw"
    squares_block = 1
    _params = (("beta1", _FRACTION), ("beta2", _FRACTION), ("eps", _POSITIVE),
               ("weight_decay", _NON_NEGATIVE))

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self._check()


#: Optimizer classes by name.
OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW)}


def get_optimizer(spec, **params):
    """Return the optimizer that ``spec`` describes.

    Parameters
    ----------
    spec : str, Optimizer or Optimizer subclass
        A name from ``OPTIMIZERS`` (any case), an instance (returned as is) or a class.
    **params
        Parameters of the named class, e.g. ``momentum=0.8``; not allowed with an instance.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        If ``spec`` is an unknown name; the message lists the valid ones.
    TypeError
        If ``spec`` is neither a name, an instance nor a class, or a parameter does not belong
        to the optimizer (the message lists those that do).

    Examples
    --------
    >>> from fastmlp.optimizers import get_optimizer
    >>> get_optimizer("Nesterov", momentum=0.8)
    Nesterov(momentum=0.8)
    """
    if isinstance(spec, Optimizer):
        if params:
            raise TypeError(f"parameters {sorted(params)} can only be given with a name, "
                            f"not with the instance {spec!r}; set them in its constructor")
        return spec
    if isinstance(spec, type) and issubclass(spec, Optimizer) and spec.name in OPTIMIZERS:
        cls = spec
    elif isinstance(spec, str):
        cls = OPTIMIZERS.get(spec.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {spec!r}; choose one of "
                             f"{', '.join(map(repr, OPTIMIZERS))}")
    else:
        raise TypeError(f"optimizer must be a name ({', '.join(map(repr, OPTIMIZERS))}) or an "
                        f"instance such as Adam(); got {spec!r}")
    allowed = [p for p, _ in cls._params]
    unknown = sorted(set(params) - set(allowed)) if params else None
    if unknown:
        raise TypeError(f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; "
                        f"its parameters are: {', '.join(allowed) if allowed else 'none'}")
    return cls(**params)
