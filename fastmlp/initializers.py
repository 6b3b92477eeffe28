"""Weight initializers.

Weights are drawn layer by layer from one ``numpy.random.Generator`` as
``rng.normal(0, std, size=(fan_in, fan_out))``, exactly as the lecture's ``SimpleMLP`` does, so a
given seed gives the lecture's initial weights bit for bit. Biases start at zero.
"""
import numpy as np

__all__ = ["he_normal", "xavier_normal", "initial_parameters", "DEFAULT_INIT"]


def he_normal(rng, fan_in, fan_out):
    """He normal: ``N(0, 2 / fan_in)``, for ReLU layers."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def xavier_normal(rng, fan_in, fan_out):
    """Glorot/Xavier normal: ``N(0, 2 / (fan_in + fan_out))``, for sigmoid and tanh layers."""
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


INITIALIZERS = {"he_normal": he_normal, "xavier_normal": xavier_normal}

# The lecture's rule: He for ReLU-like hidden layers, Xavier otherwise (every layer, output
# included, follows the hidden activation's choice).
DEFAULT_INIT = {
    "relu": "he_normal", "leaky_relu": "he_normal", "elu": "he_normal", "gelu": "he_normal",
    "gelu_tanh": "he_normal", "silu": "he_normal", "swish": "he_normal", "mish": "he_normal",
    "softplus": "he_normal",
    "sigmoid": "xavier_normal", "tanh": "xavier_normal", "identity": "xavier_normal",
}


def initial_parameters(rng, layer_sizes, init):
    """Draw float64 weights and zero biases for every layer.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness; consumed layer by layer.
    layer_sizes : sequence of int
        ``[n_inputs, hidden..., n_outputs]``.
    init : str
        A key of ``INITIALIZERS``.

    Returns
    -------
    W, b : list of ndarray
        ``W[k]`` has shape ``(layer_sizes[k], layer_sizes[k+1])``, ``b[k]`` shape
        ``(layer_sizes[k+1],)``.
    """
    draw = INITIALIZERS[init]
    W = [draw(rng, fan_in, fan_out) for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:])]
    b = [np.zeros(fan_out) for fan_out in layer_sizes[1:]]
    return W, b
