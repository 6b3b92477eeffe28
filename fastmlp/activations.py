"""Hidden-layer activations: names users write, mapped to the kernels' ids.

The functions themselves live in ``_kernels/_activations.pxd`` (compiled) and in
``reference.py`` (NumPy); this module only validates names and picks each one's default
initializer.
"""
from ._kernels._dense import ACTIVATION_IDS
from .initializers import DEFAULT_INIT

__all__ = ["HIDDEN_ACTIVATIONS", "activation_id"]

HIDDEN_ACTIVATIONS = tuple(sorted(DEFAULT_INIT))


def activation_id(name):
    """Return the kernel id of the hidden activation ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of ``HIDDEN_ACTIVATIONS``; the message lists them.
    """
    if not isinstance(name, str) or name not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown hidden_activation {name!r}; choose one of "
                         f"{', '.join(map(repr, HIDDEN_ACTIVATIONS))}")
    return ACTIVATION_IDS[name]
