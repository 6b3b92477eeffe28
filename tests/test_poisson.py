"""``loss="poisson"``: the log link and half Poisson deviance of scikit-learn's MLPRegressor.

The gradient (finite differences) and parity with the reference across optimizers are in
test_toolkit_gradients.py and test_toolkit_parity.py (their "poisson" cases); here: the loss
kernel against scikit-learn's own ``poisson_loss`` and the reference, the predictions, and the
checks of the targets.
"""
import numpy as np
import pytest
import scipy.sparse
from sklearn.neural_network._base import poisson_loss

from fastmlp import MLP
from fastmlp import reference
from fastmlp._kernels import _loss
from fastmlp.losses import resolve_loss

POISSON = _loss.LOSS_IDS["poisson"]


def logits_and_counts(n=12, k=2, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(scale=1.5, size=(n, k))
    Y = rng.poisson(np.exp(Z)).astype(float)
    Y[:3] = 0                                   # 0 log 0 = 0
    return Z, Y


def test_resolve_loss():
    assert resolve_loss("poisson", 2) == ("poisson", POISSON, "regression")


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_value_is_scikit_learns(weighted):
    """The kernel's mean loss is scikit-learn's poisson_loss(y, exp(z)): half the deviance,
    summed over outputs, (weighted) mean over samples; its delta is exp(z) - y."""
    Z, Y = logits_and_counts()
    w = np.random.default_rng(1).uniform(0.5, 2, size=len(Z)) if weighted else None
    w_mean1 = None if w is None else w / w.mean()
    delta = np.empty_like(Z)
    value = _loss.loss_delta_py(POISSON, Z, Y, w_mean1, delta_out=delta)
    assert value == pytest.approx(poisson_loss(Y, np.exp(Z), sample_weight=w), rel=1e-13)
    scale = (np.ones(len(Z)) if w is None else w_mean1)[:, None] / len(Z)
    np.testing.assert_allclose(delta, (np.exp(Z) - Y) * scale, rtol=1e-14)
    losses, ref_delta = reference.loss_and_delta("poisson", Z, Y)
    np.testing.assert_allclose(losses.mean(), poisson_loss(Y, np.exp(Z)), rtol=1e-13)
    np.testing.assert_allclose(ref_delta, np.exp(Z) - Y, rtol=1e-15)
    # At the optimum exp(z) = y > 0 the loss is 0 (the constant is included).
    positive = np.array([[1.0, 3.0]])
    assert _loss.loss_delta_py(POISSON, np.log(positive), positive) == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_output_activation_is_exp(dtype):
    Z, _ = logits_and_counts()
    Z = Z.astype(dtype)
    out = Z.copy()
    _loss.output_activation_py(POISSON, out)
    np.testing.assert_allclose(out, np.exp(Z), rtol=1e-15 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(reference.output_activation("poisson", Z), np.exp(Z))


def test_mlp_predicts_the_mean_and_learns_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    mean = np.exp(0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.5)
    y = rng.poisson(mean)
    model = MLP([2, 8, 1], lr=0.02, seed=0, loss="poisson", optimizer="adam")
    assert model.loss_name == "poisson" and model._task == "regression"
    model.train(X, y, epochs=60, batch_size=32, verbose=False)
    pred = model.predict(X)
    assert pred.shape == (400,) and np.all(pred > 0)
    logits = reference.ReferenceMLP(model.sizes, loss="poisson", W=model.W, b=model.b) \
        ._forward_full(X)[0][-1]
    np.testing.assert_allclose(pred, np.exp(logits[:, 0]), rtol=1e-12)
    # Learned the mean: its deviance is close to the true mean's, far below a constant's.
    assert model.loss(X, y) < poisson_loss(y, np.full_like(mean, y.mean())) * 0.6
    assert model.loss(X, y) == pytest.approx(poisson_loss(y, pred), rel=1e-12)
    with pytest.raises(ValueError, match="predict_proba is for classification"):
        model.predict_proba(X)


def test_negative_targets_are_refused():
    X = np.random.default_rng(0).normal(size=(6, 2))
    model = MLP([2, 3, 1], seed=0, loss="poisson")
    before = model.params.copy()
    with pytest.raises(ValueError, match="non-negative targets.*1 negative values, the smallest -2"):
        model.train(X, [0, 1, 2, -2, 3, 0], epochs=1, verbose=False)
    np.testing.assert_array_equal(model.params, before)
    with pytest.raises(ValueError, match="non-negative"):
        model.loss(X, [0, 1, 2, -0.5, 3, 0])
    model.train(X, [0, 1, 2, 0, 3, 0.5], epochs=1, verbose=False)     # rates are fine


def test_poisson_on_sparse_input():
    rng = np.random.default_rng(0)
    X = scipy.sparse.random(40, 30, density=0.1, format="csr", random_state=0)
    y = rng.poisson(2.0, size=40)
    runs = [MLP([30, 5, 1], lr=0.05, seed=1, loss="poisson", optimizer="adam")
            .fit(data, y, epochs=5, batch_size=7, verbose=False, shuffle_seed=2)
            for data in (X, X.toarray())]
    np.testing.assert_allclose(runs[0].params, runs[1].params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(runs[0].predict(X), runs[1].predict(X.toarray()), rtol=1e-12)
