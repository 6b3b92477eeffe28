"""Weight initializers.

Weights are drawn layer by layer from one ``numpy.random.Generator``; the normal ones as
``rng.normal(0, std, size=(fan_in, fan_out))``, exactly as the lecture's ``SimpleMLP`` does, so a
given seed gives the lecture's initial weights bit for bit. Biases start at zero.

==============  ====================================  ==============================
name            normal: std                           uniform: limit (U(-l, l))
==============  ====================================  ==============================
he              sqrt(2 / fan_in)                      sqrt(6 / fan_in)
xavier/glorot   sqrt(2 / (fan_in + fan_out))          sqrt(6 / (fan_in + fan_out))
lecun           sqrt(1 / fan_in)                      sqrt(3 / fan_in)
==============  ====================================  ==============================
"""
import math

import numpy as np

__all__ = ["INITIALIZERS", "DEFAULT_INIT", "initial_parameters", "initial_weights", "he_normal",
           "xavier_normal"]


def he_normal(rng, fan_in, fan_out):
    """He normal: ``N(0, 2 / fan_in)``, for ReLU layers."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def xavier_normal(rng, fan_in, fan_out):
    """Glorot/Xavier normal: ``N(0, 2 / (fan_in + fan_out))``, for sigmoid and tanh layers."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def lecun_normal(rng, fan_in, fan_out):
    """LeCun normal: ``N(0, 1 / fan_in)``."""
    return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=(fan_in, fan_out))


def _uniform(scale):
    def draw(rng, fan_in, fan_out):
        limit = math.sqrt(scale(fan_in, fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out))
    return draw


INITIALIZERS = {
    "he_normal": he_normal,
    "he_uniform": _uniform(lambda fan_in, fan_out: 6.0 / fan_in),
    "xavier_normal": xavier_normal,
    "xavier_uniform": _uniform(lambda fan_in, fan_out: 6.0 / (fan_in + fan_out)),
    "glorot_normal": xavier_normal,
    "glorot_uniform": _uniform(lambda fan_in, fan_out: 6.0 / (fan_in + fan_out)),
    "lecun_normal": lecun_normal,
    "lecun_uniform": _uniform(lambda fan_in, fan_out: 3.0 / fan_in),
}

# The lecture's rule: He for ReLU-like layers, Xavier otherwise.
DEFAULT_INIT = {
    "relu": "he_normal", "leaky_relu": "he_normal", "elu": "he_normal", "gelu": "he_normal",
    "gelu_tanh": "he_normal", "silu": "he_normal", "swish": "he_normal", "mish": "he_normal",
    "softplus": "he_normal",
    "sigmoid": "xavier_normal", "tanh": "xavier_normal", "identity": "xavier_normal",
}


def initial_weights(rng, layer_sizes, inits):
    """Draw the float64 weights of every layer (see ``initial_parameters``, which adds the
    biases).

    Examples
    --------
    >>> import numpy as np
    >>> [W.shape for W in initial_weights(np.random.default_rng(0), [2, 3, 1], "he_normal")]
    [(2, 3), (3, 1)]
    """
    if isinstance(inits, str):
        inits = [inits] * (len(layer_sizes) - 1)
    return [INITIALIZERS[init](rng, fan_in, fan_out)
            for init, fan_in, fan_out in zip(inits, layer_sizes[:-1], layer_sizes[1:])]


def initial_parameters(rng, layer_sizes, inits):
    """Draw float64 weights and zero biases for every layer.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness; consumed layer by layer.
    layer_sizes : sequence of int
        ``[n_inputs, hidden..., n_outputs]``.
    inits : str or sequence of str
        Keys of ``INITIALIZERS``: one for every layer, or one per layer.

    Returns
    -------
    W, b : list of ndarray
        ``W[k]`` has shape ``(layer_sizes[k], layer_sizes[k+1])``, ``b[k]`` shape
        ``(layer_sizes[k+1],)``.
    """
    W = initial_weights(rng, layer_sizes, inits)
    b = [np.zeros(fan_out) for fan_out in layer_sizes[1:]]
    return W, b
