"""Learning-rate schedules: the rate of each epoch, decided in Python between epochs.

Before epoch ``e`` (counted from 1) the training loop asks ``schedule.rate(e, base_lr)`` for
that epoch's rate; after it, it tells the schedule the monitored loss with
``schedule.observe(e, loss)``, which only adaptive schedules (``schedule.adaptive``) use. The
rates of a schedule that is not adaptive do not depend on the losses, so
``schedule.rates(base_lr, epochs)`` gives a whole block of epochs at once and one kernel call can
run them all (DESIGN.md, principle 3). Schedules change the rate from one epoch to the next,
never within an epoch; this module holds no per-batch code and nothing of the kernels.

The rate of epoch ``e``, with ``b = base_lr``:

``Constant()``, name ``"constant"``
    ``b``.
``ExponentialDecay(decay)``, name ``"exponential"``
    ``b * decay ** (e - 1)``: the lecture's ``lr_decay``.
``StepDecay(step_size, gamma=0.1)``, name ``"step"``
    ``b * gamma ** ((e - 1) // step_size)``.
``InverseScaling(power_t=0.5)``, name ``"invscaling"``
    ``b / e ** power_t``: scikit-learn's ``"invscaling"`` with epochs as time.
``Cosine(total_epochs, min_lr=0.0, warmup_epochs=0)``, name ``"cosine"``
    With ``w = warmup_epochs`` and ``T = max(1, total_epochs - w - 1)``: ``b * e / w`` while
    ``e <= w``, then ``min_lr + 0.5 * (b - min_lr) * (1 + cos(pi * t / T))`` with
    ``t = min(e - w - 1, T)``, which reaches ``min_lr`` at epoch ``total_epochs`` (one epoch
    later if ``total_epochs == w + 1``) and stays there. When ``min_lr == 0`` that end point
    would be a rate of 0, so ``t`` stops at ``T - 1/2`` instead: half a step before the curve
    touches zero. (Computed as ``min_lr + (b - min_lr) * cos(pi * t / (2 T)) ** 2``, the same
    curve without the cancellation that would round the last rates of a long schedule to 0.)
``ReduceOnPlateau(factor, patience, min_delta, min_lr, cooldown)``, name ``"plateau"``
    Adaptive. ``b``, multiplied by ``factor`` (but never below ``min_lr``) each time the
    observed loss has gone ``patience`` epochs without falling below ``best - min_delta``;
    the ``cooldown`` epochs after a reduction are not counted. Details in its docstring.
``LambdaSchedule(fn)``
    ``fn(e)``: any callable from the epoch to the rate itself (not a multiplier of ``b``).

Every rate a schedule returns is a finite ``float`` > 0; a schedule whose formula gives
anything else for some epoch (a decay that underflows to 0 after thousands of epochs, a
function that returns NaN) raises ``ValueError`` naming the epoch. ``get_schedule`` turns what a
user writes (``None``, a name and its parameters, a schedule, a function) into a schedule.
"""
import abc
import functools
import inspect
import math
import numbers
from types import MappingProxyType

import numpy as np

from ._validation import check_int as _check_int, check_real as _check_real

__all__ = ["Schedule", "Constant", "ExponentialDecay", "StepDecay", "InverseScaling", "Cosine",
           "ReduceOnPlateau", "LambdaSchedule", "SCHEDULES", "get_schedule"]


_smallest, _largest = np.minimum.reduce, np.maximum.reduce


@functools.lru_cache(maxsize=None)
def _parameters(cls):
    """The parameters of the constructor of ``cls`` (``inspect.signature``, which parses the
    text signature of a builtin at every call: cached, it is a property of the class)."""
    return MappingProxyType(dict(inspect.signature(cls).parameters))


def _check_min_lr(min_lr, base_lr):
    if min_lr > base_lr:
        raise ValueError(f"min_lr ({min_lr!r}) exceeds the base learning rate ({base_lr!r}); "
                         f"choose min_lr <= lr")


class Schedule(abc.ABC):
    """Base class of learning-rate schedules.

    A subclass implements ``_rate(epoch, base_lr)``, the formula; ``rate`` checks the
    arguments and that the result is a finite number > 0. Adaptive subclasses set
    ``adaptive = True`` and override ``observe`` and ``reset``.

    Attributes
    ----------
    adaptive : bool
        True when the rates depend on the losses passed to ``observe`` (then ``rates`` is not
        available and the trainer must ask ``rate`` epoch by epoch).
    name : str or None
        The schedule's name in ``SCHEDULES`` (None for ``LambdaSchedule``).

    Examples
    --------
    >>> class Halving(Schedule):
    ...     def _rate(self, epoch, base_lr):
    ...         return base_lr / 2 ** (epoch - 1)
    >>> Halving().rates(1.0, 3)
    array([1.  , 0.5 , 0.25])
    """

    adaptive = False
    name = None

    @abc.abstractmethod
    def _rate(self, epoch, base_lr):
        """The formula: the rate of ``epoch`` (>= 1) given ``base_lr`` (> 0), unchecked."""

    def rate(self, epoch, base_lr):
        """Return the learning rate of epoch ``epoch`` (counted from 1).

        Parameters
        ----------
        epoch : int
            The epoch about to run, >= 1.
        base_lr : float
            The model's learning rate (``lr``), finite and > 0.

        Returns
        -------
        float
            Finite and > 0.

        Raises
        ------
        TypeError, ValueError
            On an invalid argument, or when the schedule's formula gives a rate that is not a
            finite number > 0 for this epoch (the message names the epoch).
        """
        epoch = _check_int("epoch", epoch, 1)
        base_lr = _check_real("base_lr", base_lr, low=0, low_open=True)
        try:
            value = self._rate(epoch, base_lr)
        except (OverflowError, ZeroDivisionError) as error:     # e.g. epoch ** power_t
            raise ValueError(f"{self!r} cannot compute the rate of epoch {epoch} ({error}); "
                             f"every rate must be a finite number > 0: choose parameters that "
                             f"keep it so for all the epochs trained") from None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self!r} gave {value!r} as the rate of epoch {epoch}; "
                            f"a rate must be a real number")
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{self!r} gave the rate {value!r} for epoch {epoch}; every rate "
                             f"must be a finite number > 0: choose parameters that keep it so "
                             f"for all the epochs trained")
        return value

    def rates(self, base_lr, epochs, start=1):
        """Return the rates of epochs ``start, ..., start + epochs - 1`` as one array.

        Equal, element for element, to ``[self.rate(e, base_lr) for e in range(start,
        start + epochs)]``; lets the trainer hand the kernel a block of epochs at once.

        Parameters
        ----------
        base_lr : float
            Finite and > 0.
        epochs : int
            How many epochs, >= 0.
        start : int, default 1
            The first epoch of the block, >= 1.

        Returns
        -------
        numpy.ndarray of float64, shape (epochs,)

        Raises
        ------
        TypeError
            If the schedule is adaptive: its future rates depend on losses not yet observed.
        ValueError
            As ``rate``.
        """
        if self.adaptive:
            raise TypeError(f"{self!r} is adaptive: its rates depend on the losses it observes, "
                            f"so ask rate(epoch, base_lr) before each epoch instead of rates()")
        epochs = _check_int("epochs", epochs, 0)
        start = _check_int("start", start, 1)
        base_lr = _check_real("base_lr", base_lr, low=0, low_open=True)
        try:
            values = np.array(self._block(start, start + epochs, base_lr), dtype=np.float64)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError):
            values = None
        # min > 0 and max < inf: every value finite and > 0 (a NaN fails both comparisons).
        if values is None or (epochs and not (_smallest(values) > 0
                                              and _largest(values) < math.inf)):
            # Some rate is bad: let rate() find the first and say which epoch.
            values = np.array([self.rate(e, base_lr) for e in range(start, start + epochs)],
                              dtype=np.float64)
        return values

    def _block(self, start, stop, base_lr):
        """``[self._rate(e, base_lr) for e in range(start, stop)]``, unchecked; a subclass may
        compute the same values with less Python per epoch."""
        formula = self._rate
        return [formula(e, base_lr) for e in range(start, stop)]

    def observe(self, epoch, loss):
        """Take note of the monitored loss at the end of epoch ``epoch``.

        Adaptive schedules use it to choose later rates; for the others this does nothing.

        Parameters
        ----------
        epoch : int
            The epoch just finished, >= 1.
        loss : float
            The monitored loss after that epoch.
        """

    def reset(self):
        """Forget what was observed (call at the start of a new fit); no-op unless adaptive."""

    def __repr__(self):
        names = _parameters(type(self))
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"


class Constant(Schedule):
    """The same rate every epoch: ``base_lr``.

    Examples
    --------
    >>> Constant().rates(0.1, 3)
    array([0.1, 0.1, 0.1])
    """

    name = "constant"

    def _rate(self, epoch, base_lr):
        return base_lr


class ExponentialDecay(Schedule):
    """The lecture's ``lr_decay``: ``base_lr * decay ** (epoch - 1)``.

    Parameters
    ----------
    decay : float in (0, 1]
        Factor applied once per epoch; 1 keeps the rate constant.

    Examples
    --------
    >>> ExponentialDecay(0.5).rates(0.1, 4)
    array([0.1   , 0.05  , 0.025 , 0.0125])
    """

    name = "exponential"

    def __init__(self, decay):
        self.decay = _check_real("decay", decay, low=0, high=1, low_open=True)

    def _rate(self, epoch, base_lr):
        return base_lr * self.decay ** (epoch - 1)

    def _block(self, start, stop, base_lr):
        if type(self)._rate is not ExponentialDecay._rate:      # a subclass's own formula
            return super()._block(start, stop, base_lr)
        decay = self.decay
        return [base_lr * decay ** (e - 1) for e in range(start, stop)]


class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` epochs: ``base_lr * gamma ** ((epoch - 1) //
    step_size)``.

    Parameters
    ----------
    step_size : int
        Epochs per step, >= 1.
    gamma : float, default 0.1
        Factor applied at each step, > 0 (values above 1 make the rate grow).

    Examples
    --------
    >>> StepDecay(2, gamma=0.5).rates(1.0, 5)
    array([1.  , 1.  , 0.5 , 0.5 , 0.25])
    """

    name = "step"

    def __init__(self, step_size, gamma=0.1):
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = _check_real("gamma", gamma, low=0, low_open=True)

    def _rate(self, epoch, base_lr):
        return base_lr * self.gamma ** ((epoch - 1) // self.step_size)


class InverseScaling(Schedule):
    """scikit-learn's inverse scaling with epochs as time: ``base_lr / epoch ** power_t``.

    Parameters
    ----------
    power_t : float, default 0.5
        Exponent, >= 0 (0 keeps the rate constant).

    Examples
    --------
    >>> InverseScaling(power_t=1.0).rates(1.0, 4)
    array([1.        , 0.5       , 0.33333333, 0.25      ])
    """

    name = "invscaling"

    def __init__(self, power_t=0.5):
        self.power_t = _check_real("power_t", power_t, low=0)

    def _rate(self, epoch, base_lr):
        return base_lr / epoch ** self.power_t


class Cosine(Schedule):
    """Linear warmup, then cosine annealing from ``base_lr`` to ``min_lr``.

    With ``w = warmup_epochs`` and ``T = max(1, total_epochs - w - 1)``, the rate of epoch
    ``e`` is

    - ``base_lr * e / w`` for ``e <= w`` (reaching ``base_lr`` at epoch ``w``);
    - ``min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(pi * t / T))`` for ``e > w``, with
      ``t = min(e - w - 1, T)``: ``base_lr`` at epoch ``w + 1``, ``min_lr`` from epoch
      ``w + 1 + T`` on. That is epoch ``total_epochs``, except when ``total_epochs == w + 1``
      (no room to anneal), where it is the epoch after.

    With ``min_lr == 0`` the end point would be a rate of 0, an epoch that does not train (and
    the trainer requires rates > 0); ``t`` then stops at ``T - 1/2`` instead, so from epoch
    ``w + 1 + T`` on the rate is ``0.5 * base_lr * (1 + cos(pi * (T - 0.5) / T))``, the curve
    half a step before it touches zero (``base_lr / 2`` when ``T == 1``). The rates after
    warmup then still decrease strictly down to that floor.

    The curve is computed as ``min_lr + (base_lr - min_lr) * cos(pi * t / (2 T)) ** 2``, equal
    to the formula above but free of its cancellation near ``t = T``, which would round the
    last rates of a long schedule (``total_epochs`` in the millions) to 0.

    Parameters
    ----------
    total_epochs : int
        Length of warmup plus annealing, >= 1; usually the ``epochs`` of the fit.
    min_lr : float, default 0.0
        The final rate, >= 0 and at most ``base_lr`` (checked when a rate is asked for).
    warmup_epochs : int, default 0
        Epochs of linear warmup, >= 0 and < ``total_epochs``.

    Examples
    --------
    >>> Cosine(5, min_lr=0.1).rates(1.1, 5)
    array([1.1       , 0.95355339, 0.6       , 0.24644661, 0.1       ])
    >>> Cosine(4, warmup_epochs=2).rates(1.0, 4)
    array([0.5, 1. , 1. , 0.5])
    """

    name = "cosine"

    def __init__(self, total_epochs, min_lr=0.0, warmup_epochs=0):
        self.total_epochs = _check_int("total_epochs", total_epochs, 1)
        self.min_lr = _check_real("min_lr", min_lr, low=0)
        self.warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 0)
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs must be less than total_epochs "
                             f"({self.total_epochs}); got {self.warmup_epochs}")

    def _rate(self, epoch, base_lr):
        _check_min_lr(self.min_lr, base_lr)
        w = self.warmup_epochs
        if epoch <= w:
            return base_lr * epoch / w
        T = max(1, self.total_epochs - w - 1)
        t = min(epoch - w - 1, T if self.min_lr > 0 else T - 0.5)
        # 0.5 * (1 + cos(x)) written as cos(x / 2) ** 2, which does not cancel to 0 near the
        # end of a long schedule (x close to pi).
        return self.min_lr + (base_lr - self.min_lr) * math.cos(0.5 * math.pi * t / T) ** 2


class ReduceOnPlateau(Schedule):
    """Divide the rate when the monitored loss stops improving (adaptive).

    The rate starts at ``base_lr``. After each epoch the trainer calls ``observe(epoch, loss)``:

    1. If the epoch is one of the ``cooldown`` epochs that follow a reduction, it is not
       counted: only ``best`` is updated if ``loss < best - min_delta``.
    2. Otherwise, if ``loss < best - min_delta`` (an absolute improvement; ``best`` starts at
       infinity, so the first finite loss improves), ``best = loss`` and ``wait = 0``.
    3. Otherwise ``wait += 1``, and when ``wait`` reaches ``patience`` the rate is reduced,
       ``rate = max(rate * factor, min_lr)``, ``wait = 0``, and the cooldown starts.

    So with no cooldown and a loss that stops improving after epoch ``k``, the rate of epochs
    ``1 .. k + patience`` is ``base_lr`` and epoch ``k + patience + 1`` runs at
    ``base_lr * factor``. ``patience = 0`` reduces after every epoch that does not improve
    (the same as 1). A NaN loss never counts as an improvement. A reduction that would
    underflow the rate to 0 (possible only with ``min_lr == 0``) leaves it unchanged.
    ``rate(epoch, base_lr)`` returns ``base_lr`` after ``num_reductions`` reductions, whatever
    ``epoch``; ``reset()`` forgets everything observed.

    Parameters
    ----------
    factor : float in (0, 1), default 0.1
        Multiplies the rate at each reduction.
    patience : int, default 10
        Non-improving epochs (outside cooldown) before a reduction, >= 0.
    min_delta : float, default 1e-4
        How much the loss must fall below the best so far to count as an improvement, >= 0.
    min_lr : float, default 0.0
        Floor of the rate, >= 0 and at most ``base_lr`` (checked when a rate is asked for).
    cooldown : int, default 0
        Epochs after a reduction that are not counted as non-improving, >= 0.

    Attributes
    ----------
    best : float
        The lowest loss that counted as an improvement (infinity before any).
    wait : int
        Non-improving epochs counted since the last improvement or reduction.
    cooldown_left : int
        Epochs of cooldown still to come.
    num_reductions : int
        How many reductions have been triggered.

    Examples
    --------
    >>> schedule = ReduceOnPlateau(factor=0.5, patience=2)
    >>> for epoch, loss in enumerate([1.0, 0.8, 0.8, 0.8, 0.8], start=1):
    ...     print(epoch, schedule.rate(epoch, 0.1))
    ...     schedule.observe(epoch, loss)
    1 0.1
    2 0.1
    3 0.1
    4 0.1
    5 0.05
    """

    adaptive = True
    name = "plateau"

    def __init__(self, factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0, cooldown=0):
        self.factor = _check_real("factor", factor, low=0, high=1, low_open=True, high_open=True)
        self.patience = _check_int("patience", patience, 0)
        self.min_delta = _check_real("min_delta", min_delta, low=0)
        self.min_lr = _check_real("min_lr", min_lr, low=0)
        self.cooldown = _check_int("cooldown", cooldown, 0)
        self.reset()

    def reset(self):
        """Forget the observed losses: the rate is ``base_lr`` again."""
        self.best = math.inf
        self.wait = 0
        self.cooldown_left = 0
        self.num_reductions = 0

    def observe(self, epoch, loss):
        """Count the loss at the end of ``epoch`` and reduce the rate when due (see above).

        Parameters
        ----------
        epoch : int
            The epoch just finished, >= 1.
        loss : float
            The monitored loss (training or validation) after that epoch.
        """
        _check_int("epoch", epoch, 1)
        if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, numbers.Real):
            raise TypeError(f"the loss of epoch {epoch} must be a real number; got {loss!r}")
        loss = float(loss)
        improved = loss < self.best - self.min_delta
        if improved:
            self.best = loss
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
        elif improved:
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.num_reductions += 1
                self.wait = 0
                self.cooldown_left = self.cooldown

    def _rate(self, epoch, base_lr):
        _check_min_lr(self.min_lr, base_lr)
        rate = base_lr
        for _ in range(self.num_reductions):
            reduced = max(rate * self.factor, self.min_lr)
            if reduced == rate or reduced == 0:
                break
            rate = reduced
        return rate


class LambdaSchedule(Schedule):
    """Any function of the epoch: the rate of epoch ``e`` is ``fn(e)``.

    ``fn`` returns the rate itself, not a multiplier of ``base_lr`` (which it does not see).
    Each result is checked: it must be a real number (else ``TypeError``), finite and > 0
    (else ``ValueError``); both messages name the epoch.

    Parameters
    ----------
    fn : callable
        ``fn(epoch: int) -> float``, called with epochs counted from 1.

    Examples
    --------
    >>> LambdaSchedule(lambda epoch: 0.1 if epoch < 3 else 0.01).rates(1.0, 4)
    array([0.1 , 0.1 , 0.01, 0.01])
    """

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"fn must be a callable epoch -> rate; got {fn!r}")
        self.fn = fn

    def _rate(self, epoch, base_lr):
        return self.fn(epoch)

    def __repr__(self):
        return f"LambdaSchedule({getattr(self.fn, '__qualname__', None) or repr(self.fn)})"


SCHEDULES = MappingProxyType({cls.name: cls for cls in (
    Constant, ExponentialDecay, StepDecay, InverseScaling, Cosine, ReduceOnPlateau)})
"""Read-only mapping from each schedule's name to its class."""


def get_schedule(spec=None, **params):
    """Return the schedule that ``spec`` describes.

    Parameters
    ----------
    spec : None, str, Schedule or callable
        ``None`` or ``"constant"``: ``Constant()``. A name in ``SCHEDULES``: that class,
        constructed with ``params``. A ``Schedule`` instance: itself. Any other callable:
        ``LambdaSchedule(spec)``, a function from the epoch (from 1) to its rate.
    **params
        The schedule's parameters, only with a name, e.g.
        ``get_schedule("step", step_size=10, gamma=0.5)``.

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or a parameter value out of
        range (the message says what is allowed).
    TypeError
        For parameters that the schedule does not take or a required one left out, parameters
        given without a name, or a ``spec`` of another kind.

    Examples
    --------
    >>> get_schedule("cosine", total_epochs=100, warmup_epochs=5)
    Cosine(total_epochs=100, min_lr=0.0, warmup_epochs=5)
    >>> get_schedule(None)
    Constant()
    >>> get_schedule(lambda epoch: 0.5 ** epoch).rate(2, base_lr=0.1)
    0.25
    """
    if spec is None:
        if not params:
            return Constant()
        spec = "constant"
    if isinstance(spec, str):
        if spec not in SCHEDULES:
            raise ValueError(f"unknown schedule {spec!r}; choose one of "
                             f"{', '.join(map(repr, SCHEDULES))}, or pass a Schedule or a "
                             f"function epoch -> rate")
        cls = SCHEDULES[spec]
        accepted = _parameters(cls)
        unexpected = [name for name in params if name not in accepted]
        missing = [name for name, p in accepted.items()
                   if p.default is p.empty and name not in params]
        if unexpected or missing:
            takes = ", ".join(accepted) if accepted else "no parameters"
            problem = (f"unexpected {', '.join(map(repr, unexpected))}" if unexpected
                       else f"missing {', '.join(map(repr, missing))}")
            raise TypeError(f"schedule {spec!r} takes {takes}; {problem}")
        return cls(**params)
    if isinstance(spec, type) and issubclass(spec, Schedule):
        raise TypeError(f"got the class {spec.__name__}; pass an instance such as "
                        f"{spec.__name__}(...)" + (f" or the name {spec.name!r}" if spec.name
                                                   else ""))
    if params:
        raise TypeError(f"parameters ({', '.join(params)}) can only be given with a schedule "
                        f"name; set them when constructing the schedule instead")
    if isinstance(spec, Schedule):
        return spec
    if callable(spec):
        return LambdaSchedule(spec)
    raise TypeError(f"schedule must be None, one of the names {', '.join(map(repr, SCHEDULES))}, "
                    f"a Schedule or a function epoch -> rate; got {spec!r}")
