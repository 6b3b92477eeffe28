"""Initializers: the lecture's draws bit for bit, and each scheme's spread."""
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.initializers import INITIALIZERS, initial_parameters

# name -> (kind, variance or squared limit as a function of fan_in, fan_out)
SCALES = {
    "he_normal": ("normal", lambda i, o: 2 / i), "he_uniform": ("uniform", lambda i, o: 6 / i),
    "xavier_normal": ("normal", lambda i, o: 2 / (i + o)),
    "xavier_uniform": ("uniform", lambda i, o: 6 / (i + o)),
    "glorot_normal": ("normal", lambda i, o: 2 / (i + o)),
    "glorot_uniform": ("uniform", lambda i, o: 6 / (i + o)),
    "lecun_normal": ("normal", lambda i, o: 1 / i), "lecun_uniform": ("uniform", lambda i, o: 3 / i),
}


def test_every_initializer_has_a_documented_scale():
    assert set(INITIALIZERS) == set(SCALES)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_initializer_spread(name):
    kind, scale = SCALES[name]
    fan_in, fan_out = 300, 200
    W = INITIALIZERS[name](np.random.default_rng(0), fan_in, fan_out)
    assert W.shape == (fan_in, fan_out)
    if kind == "normal":
        # 60 000 draws: the sample std is within 2% of sqrt(variance).
        assert W.std() == pytest.approx(np.sqrt(scale(fan_in, fan_out)), rel=0.02)
    else:
        limit = np.sqrt(scale(fan_in, fan_out))
        assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
        assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_lecture_rule_and_explicit_init():
    rng = np.random.default_rng(7)
    W, b = initial_parameters(rng, [3, 5, 1], "he_normal")
    model = MLP([3, 5, 1], seed=7)                       # relu: He normal, as the lecture
    for k in range(2):
        np.testing.assert_array_equal(model.W[k], W[k])
        np.testing.assert_array_equal(model.b[k], 0)
    uniform = MLP([3, 5, 1], seed=7, init="lecun_uniform")
    assert np.abs(uniform.W[0]).max() <= np.sqrt(3 / 3)
    assert not np.array_equal(uniform.W[0], model.W[0])
    with pytest.raises(ValueError, match="he_normal"):
        MLP([3, 5, 1], init="orthogonal")
