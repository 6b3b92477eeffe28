"""Hidden-layer activations: the names users write, mapped to the kernels' ids.

The functions themselves live in ``_kernels/_activations.pxd`` (compiled) and in
``reference.py`` (NumPy); this module validates names and parameters, and picks each
activation's default initializer (He for ReLU-like activations, Xavier otherwise).
"""
import numbers

from ._kernels._dense import ACTIVATION_DEFAULT_PARAMS, ACTIVATION_IDS
from .initializers import DEFAULT_INIT

__all__ = ["HIDDEN_ACTIVATIONS", "ALIASES", "resolve_activations"]

ALIASES = {"swish": "silu"}
HIDDEN_ACTIVATIONS = tuple(sorted(ACTIVATION_IDS)) + tuple(sorted(ALIASES))
# Activations that take a parameter, and what it means.
PARAMETERS = {"leaky_relu": "negative slope", "elu": "alpha"}


def _one(spec):
    name, param = (spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, None))
    if not isinstance(name, str) or name not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown hidden_activation {name!r}; choose one of "
                         f"{', '.join(map(repr, HIDDEN_ACTIVATIONS))}, or a pair like "
                         f"('leaky_relu', 0.2)")
    name = ALIASES.get(name, name)
    if param is None:
        param = ACTIVATION_DEFAULT_PARAMS[name]
    elif name not in PARAMETERS:
        raise ValueError(f"activation {name!r} takes no parameter; only "
                         f"{', '.join(f'{k} ({v})' for k, v in PARAMETERS.items())} do")
    elif isinstance(param, bool) or not isinstance(param, numbers.Real) or not param == param \
            or abs(param) == float("inf") or (name == "elu" and param <= 0):
        raise ValueError(f"the {PARAMETERS[name]} of {name} must be a finite number"
                         + (" > 0" if name == "elu" else "") + f"; got {param!r}")
    return name, float(param)


def resolve_activations(spec, n_hidden):
    """Resolve ``hidden_activation`` into kernel ids, parameters and default initializers.

    Parameters
    ----------
    spec : str, (str, float) or list of them
        One activation for every hidden layer, or one per hidden layer.
    n_hidden : int
        The number of hidden layers.

    Returns
    -------
    ids : list of int
    params : list of float
    inits : list of str
        One initializer per layer (hidden layers and the output layer); the output layer uses
        the last hidden layer's, as the lecture's SimpleMLP does.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), a bad parameter, or a list of
        the wrong length.
    """
    if isinstance(spec, str):           # the common case: one name for every layer
        resolved = _RESOLVED.get((spec, n_hidden))
        if resolved is None:
            resolved = _resolve(spec, n_hidden)
            if len(_RESOLVED) >= 256:
                _RESOLVED.clear()
            _RESOLVED[spec, n_hidden] = resolved
        return [list(r) for r in resolved]
    return _resolve(spec, n_hidden)


# (name, n_hidden) -> the tuples resolve_activations returns as lists: the same every time.
_RESOLVED = {}


def _resolve(spec, n_hidden):
    specs = list(spec) if isinstance(spec, list) else [spec] * n_hidden
    if len(specs) != n_hidden:
        raise ValueError(f"hidden_activation lists {len(specs)} activations for {n_hidden} "
                         f"hidden layers")
    resolved = [_one(s) for s in specs]
    names = [name for name, _ in resolved]
    inits = [DEFAULT_INIT[name] for name in names]
    inits.append(inits[-1] if inits else DEFAULT_INIT[_one(spec if not isinstance(spec, list) else "relu")[0]])
    return [ACTIVATION_IDS[n] for n in names], [p for _, p in resolved], inits
