"""The NumPy reference is the oracle of every parity test, so it is checked first against
calculus: its backpropagated gradients against central finite differences of its own loss, and
its activation and loss helpers against overflow."""
import warnings

import numpy as np
import pytest

from fastmlp.reference import ReferenceMLP, bce_from_logits, relu, sigmoid

STEP = 1e-5
FLOOR = 1e-4


def relative_errors(analytic, numeric, floor=FLOOR):
    """Per entry ``|a - n| / max(|a|, |n|, floor)``: the relative error, except that entries whose
    gradient is about zero (below ``floor``) are judged by their absolute error over ``floor``."""
    return np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)),
                                                    floor)


def reference_with_biases(sizes, activation, l2, seed=3):
    """A float64 ReferenceMLP with nonzero biases (so bias gradients are not all alike)."""
    ref = ReferenceMLP(sizes, lr=0.1, seed=seed, l2=l2, hidden_activation=activation)
    rng = np.random.default_rng(seed + 100)
    for bk in ref.b:
        bk[:] = 0.3 * rng.normal(size=bk.shape)
    return ref


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_reference_gradients_match_finite_differences(activation, l2, binary_data):
    X, y = binary_data(30, 5, seed=1)
    ref = reference_with_biases([5, 7, 6, 1], activation, l2)
    zs = ref._forward_full(X)[1]
    if activation == "relu":
        # No pre-activation within reach of the step: the loss is smooth around every probe.
        assert min(np.abs(z).min() for z in zs[:-1]) > 100 * STEP

    grads_W, grads_b = ref.gradients(X, y)
    for params, grads in ((ref.W, grads_W), (ref.b, grads_b)):
        for p, g in zip(params, grads):
            assert g.shape == p.shape
            numeric = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                original = p[idx]
                p[idx] = original + STEP
                up = ref.loss(X, y)
                p[idx] = original - STEP
                down = ref.loss(X, y)
                p[idx] = original
                numeric[idx] = (up - down) / (2 * STEP)
            assert relative_errors(g, numeric).max() < 1e-6


def test_reference_loss_is_mean_bce_plus_l2_penalty(binary_data):
    X, y = binary_data(20, 3, seed=2)
    ref = reference_with_biases([3, 4, 1], "relu", l2=0.2)
    p = ref.forward(X)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    penalty = 0.5 * 0.2 * sum((W ** 2).sum() for W in ref.W)
    assert ref.loss(X, y) == pytest.approx(bce + penalty, rel=1e-12)


# Overflow, division by zero and invalid operations raise; underflow to 0 (exp(-1000)) is the
# intended result, as in NumPy's defaults.
STRICT = dict(over="raise", divide="raise", invalid="raise")
Z_EXTREME = np.array([-1000.0, -745.0, -710.0, -50.0, -1e-300, 0.0, 1e-300, 50.0, 710.0, 745.0,
                      1000.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    z = Z_EXTREME.astype(dtype)
    with warnings.catch_warnings(), np.errstate(**STRICT):
        warnings.simplefilter("error")
        s = sigmoid(z)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s) >= 0)
    assert s[0] == 0.0 and s[-1] == 1.0
    assert s[Z_EXTREME == 0.0][0] == 0.5
    # Away from saturation it is the textbook formula.
    mid = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(sigmoid(mid), 1 / (1 + np.exp(-mid)), rtol=1e-14)


def test_bce_from_logits_is_stable_for_large_inputs():
    with warnings.catch_warnings(), np.errstate(**STRICT):
        warnings.simplefilter("error")
        for z in Z_EXTREME:
            for label in (0.0, 1.0):
                value = bce_from_logits(np.array([z]), np.array([label]))
                assert np.isfinite(value)
                # Per sample: -log(sigmoid(z)) for y=1, -log(1 - sigmoid(z)) for y=0; for large
                # |z| these are |z| (confidently wrong) and ~exp(-|z|) (confidently right).
                wrong = (label == 1.0 and z < 0) or (label == 0.0 and z > 0)
                if abs(z) >= 50:
                    expected = abs(z) if wrong else np.exp(-abs(z))
                    assert value == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert bce_from_logits(np.zeros(4), np.array([0.0, 1.0, 0.0, 1.0])) == \
            pytest.approx(np.log(2), rel=1e-15)


def test_bce_from_logits_matches_the_naive_formula_where_that_is_accurate():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=4, size=200)
    y = (rng.random(200) < 0.5).astype(float)
    p = 1 / (1 + np.exp(-z))
    naive = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert bce_from_logits(z, y) == pytest.approx(naive, rel=1e-10)


def test_relu():
    z = np.array([-1000.0, -1.0, 0.0, 2.5, 1000.0])
    np.testing.assert_array_equal(relu(z), [0.0, 0.0, 0.0, 2.5, 1000.0])


@pytest.mark.parametrize("softmax,activation", [(False, "relu"), (True, "relu"),
                                                (False, "sigmoid"), (True, "sigmoid")])
def test_simple_mlp_baseline_computes_what_mlp_does(softmax, activation):
    """The benchmark baseline (the lecture's SimpleMLP written for speed) trains the same
    weights as MLP from the same start, batches and rates."""
    from fastmlp import MLP
    from fastmlp.reference import SimpleMLP
    rng = np.random.default_rng(0)
    X = rng.normal(size=(45, 3))
    y = (X[:, 0] > 0).astype(int) + (softmax & (X[:, 1] > 0.5)).astype(int)
    n_out = 3 if softmax else 1
    model = MLP([3, 5, 4, n_out], lr=0.2, seed=1, hidden_activation=activation,
                lr_decay=0.9, **({"loss": "categorical_crossentropy"} if softmax else {}))
    twin = SimpleMLP(model.W, model.b, activation, softmax)
    model.train(X, y, epochs=6, batch_size=8, shuffle_seed=2, verbose=False)
    shuffles = np.random.default_rng(2)
    orders = [shuffles.permutation(45) for _ in range(6)]
    Y = np.eye(3)[y] if softmax else y[:, None]
    twin.train(X, Y, orders, [0.2 * 0.9 ** e for e in range(6)], batch_size=8)
    for a, b in zip(twin.W + twin.b, model.W + model.b):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    assert np.array_equal(twin.predict(X), model.predict(X))
