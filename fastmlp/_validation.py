"""Checks of user-given numbers, shared by the public modules: one wording for every error.

Each check takes a fast path for the plain Python type it expects (``type(value) is float``
excludes ``bool`` and every subclass), since a model's constructor runs a dozen of them and
``isinstance`` against the ``numbers`` ABCs costs several times the rest of a check.
"""
import math
import numbers

import numpy as np

__all__ = ["check_int", "check_real", "check_flag", "immutable"]


def check_int(name, value, minimum):
    """``value`` as an int >= ``minimum``; TypeError for non-integers (bools included)."""
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float in the interval; TypeError for non-numbers (bools included)."""
    if type(value) is not float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {value!r}")
        value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        interval = (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                    + ("inf" if high is None else f"{high:g}") + (")" if high_open else "]"))
        raise ValueError(f"{name} must be a finite number in {interval}; got {value!r}")
    return value


def check_flag(name, value):
    """``value`` as a bool; TypeError unless it is True or False."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def immutable(value):
    """Whether a setting's value is immutable, so that copies may share it: None, strings,
    numbers, dtypes, classes, and tuples of such values."""
    return isinstance(value, (str, numbers.Number, type(None), np.dtype, type)) or (
        isinstance(value, tuple) and all(map(immutable, value)))
