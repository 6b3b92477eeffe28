"""``MLP.loss_and_gradient`` against central finite differences, across the toolkit.

Every case is a tiny network ``[4, 5, 3, K]`` on 10 samples whose parameters have all been moved
off their initial values (random biases, batch-norm scales and shifts). Each entry ``i`` of
``model.params`` is perturbed in place and the gradient compared with
``(J(theta + h e_i) - J(theta - h e_i)) / 2h``, where J is

- ``model.loss`` (running batch-norm statistics, no dropout), which ``loss_and_gradient``'s own
  value must equal; or
- with batch normalization, the J returned by ``loss_and_gradient`` at the perturbed parameters:
  training differentiates the objective with the batch's statistics, which ``model.loss`` does
  not use.

Central differences assume a smooth J near the point, so each case asserts that the point is
away from every kink by ``KINK_MARGIN`` (a probe moves a pre-activation or an output by a few
``h`` at most): ReLU-like pre-activations (checked with ``ReferenceMLP._forward_full``),
absolute-error residuals away from 0 and Huber residuals away from 0 and from ``+-delta``, L1
weights away from 0. The data seed is the first of a few that satisfies this; the test fails if
none does.

Not the whole cross product (activations x losses x penalties x batch norm): every activation
once with the default loss, every loss with relu and with tanh, the penalties with a few losses,
and batch normalization with several activations and losses.
"""
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.reference import ReferenceMLP

FD_STEP = 1e-5
# Entries of the gradient below FD_FLOOR are judged by |error| / FD_FLOOR instead of by their
# relative error: the central difference itself carries an absolute error of about
# eps * J / h + h**2 * J''' ~ 1e-11, so the relative error of a near-zero entry (a dead ReLU's
# weights, a batch-normalized layer's bias) would measure only that noise. With RTOL = 1e-6
# such entries must still be right to 1e-10 absolutely.
FD_FLOOR = 1e-4
RTOL = 1e-6
KINK_MARGIN = 100 * FD_STEP
N_SAMPLES = 10
SEEDS = range(20)

KINKED_ACTIVATIONS = {"relu", "leaky_relu", "elu"}   # elu: f'' jumps at 0
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "gelu_tanh",
               "silu", "softplus", "mish"]

# name -> (loss, outputs, extra MLP keywords)
LOSSES = {
    "bce": ("binary_crossentropy", 1, {}),
    "bce-multilabel": ("binary_crossentropy", 3, {}),
    "cce": ("categorical_crossentropy", 3, {}),
    "cce-smoothing": ("categorical_crossentropy", 3, {"label_smoothing": 0.2}),
    "squared": ("squared_error", 1, {}),
    "squared-2-outputs": ("squared_error", 2, {}),
    "absolute": ("absolute_error", 1, {}),
    "huber": ("huber", 1, {"huber_delta": 0.7}),
    "poisson": ("poisson", 1, {}),
    "poisson-2-outputs": ("poisson", 2, {}),
}


def targets(loss, n_out, rng):
    """Targets for ``MLP.loss`` / ``loss_and_gradient``, every class (and label value) present."""
    n = N_SAMPLES
    if loss == "binary_crossentropy":
        Y = rng.permuted(np.arange(n * n_out).reshape(n, n_out) % 2, axis=0)
        return Y.ravel() if n_out == 1 else Y
    if loss == "categorical_crossentropy":
        return rng.permutation(np.arange(n) % n_out)
    if loss == "poisson":                               # counts, zeros among them
        Y = rng.poisson(1.5, size=(n, n_out)).astype(float)
        Y[0] = 0
        return Y.ravel() if n_out == 1 else Y
    Y = rng.normal(scale=1.5, size=(n, n_out))
    return Y.ravel() if n_out == 1 else Y


def reference_of(model):
    """A ReferenceMLP with ``model``'s structure and current parameters (for its forward pass)."""
    def copies(arrays):
        return [None if a is None else a.copy() for a in arrays]

    return ReferenceMLP(model.sizes, hidden_activation=model.hidden_activation,
                        loss=model.loss_name, batch_norm=model.batch_norm,
                        label_smoothing=model.label_smoothing, huber_delta=model.huber_delta,
                        W=copies(model.W), b=copies(model.b), gamma=copies(model.gamma),
                        beta=copies(model.beta))


def kink_distance(model, X, y):
    """How close the objective at ``model.params`` is to a kink: the smallest distance of a
    kinked quantity from its kink (inf when there is none)."""
    distances = [np.inf]
    ref = reference_of(model)
    mode = "gradient" if any(model.batch_norm) else "predict"
    _, zs, _, _ = ref._forward_full(X, mode)
    for z, activation in zip(zs[:-1], ref.activations):
        if activation[0] in KINKED_ACTIVATIONS:
            distances.append(np.abs(z).min())
    if model.loss_name in ("absolute_error", "huber"):
        r = np.abs(zs[-1] - np.asarray(y).reshape(zs[-1].shape))
        distances.append(r.min())
        if model.loss_name == "huber":
            delta = model.huber_delta
            distances.append(np.abs(r - delta).min())
            # Both branches of the Huber loss must be exercised.
            assert np.any(r < delta) and np.any(r > delta), "Huber residuals on one side only"
    if model.l1:
        distances.append(min(np.abs(W).min() for W in model.W))
    return min(distances)


def make_case(activation, loss, n_out, seed, **kwargs):
    """A model [4, 5, 3, n_out] with every parameter moved off its initial value, and data."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, 4))
    y = targets(loss, n_out, rng)
    model = MLP([4, 5, 3, n_out], seed=seed, hidden_activation=activation, loss=loss, **kwargs)
    for k in range(len(model.b)):
        model.b[k] = 0.3 * rng.normal(size=model.b[k].shape)
    for k in range(len(model.gamma)):
        if model.gamma[k] is not None:
            model.gamma[k] = 1 + 0.3 * rng.normal(size=model.gamma[k].shape)
            model.beta[k] = 0.3 * rng.normal(size=model.beta[k].shape)
    return model, X, y


def smooth_case(activation, loss, n_out, **kwargs):
    """The first ``make_case`` among SEEDS whose objective is at least KINK_MARGIN from a kink."""
    for seed in SEEDS:
        model, X, y = make_case(activation, loss, n_out, seed, **kwargs)
        if kink_distance(model, X, y) > KINK_MARGIN:
            return model, X, y
    pytest.fail(f"no seed in {SEEDS} puts this case {KINK_MARGIN} away from every kink")


def relative_errors(analytic, numeric):
    """Per entry ``|a - n| / max(|a|, |n|, FD_FLOOR)``."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), FD_FLOOR)
    return np.abs(analytic - numeric) / scale


def check_gradient(model, X, y, sample_weight=None):
    """Backpropagation against central differences of the objective training follows."""
    batch_norm = any(model.batch_norm)

    def objective():
        if batch_norm:
            return model.loss_and_gradient(X, y, sample_weight=sample_weight)[0]
        return model.loss(X, y, sample_weight=sample_weight)

    bn_state = model.bn_state.copy()
    J, grad = model.loss_and_gradient(X, y, sample_weight=sample_weight)
    assert grad.shape == model.params.shape and grad.dtype == np.float64
    if batch_norm:
        # Batch statistics in the gradient; the running statistics are left alone.
        np.testing.assert_array_equal(model.bn_state, bn_state)
    else:
        assert J == pytest.approx(objective(), rel=1e-13)
    theta = model.params
    numeric = np.empty_like(grad)
    for i in range(theta.size):
        original = theta[i]
        theta[i] = original + FD_STEP
        up = objective()
        theta[i] = original - FD_STEP
        down = objective()
        theta[i] = original
        numeric[i] = (up - down) / (2 * FD_STEP)
    # Guard against a vacuous pass: most entries must be judged by their relative error.
    assert np.mean(np.abs(numeric) > FD_FLOOR) > 0.75
    errors = relative_errors(grad, numeric)
    worst = int(errors.argmax())
    assert errors[worst] < RTOL, (f"parameter {worst}: backprop {grad[worst]!r}, finite "
                                  f"difference {numeric[worst]!r} (relative error "
                                  f"{errors[worst]:.3g})")


@pytest.mark.parametrize("activation", ACTIVATIONS + [("leaky_relu", 0.2), ("elu", 0.5)],
                         ids=str)
def test_gradient_every_activation(activation):
    model, X, y = smooth_case(activation, "binary_crossentropy", 1)
    check_gradient(model, X, y)


def test_gradient_mixed_activations():
    model, X, y = smooth_case(["gelu", ("leaky_relu", 0.3)], "categorical_crossentropy", 3)
    check_gradient(model, X, y)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("case", LOSSES)
def test_gradient_every_loss(case, activation):
    loss, n_out, kwargs = LOSSES[case]
    model, X, y = smooth_case(activation, loss, n_out, **kwargs)
    check_gradient(model, X, y)


@pytest.mark.parametrize("l1, l2", [(0.02, 0.0), (0.0, 0.05), (0.02, 0.05)])
@pytest.mark.parametrize("case", ["bce", "cce", "squared"])
def test_gradient_with_penalties(case, l1, l2):
    loss, n_out, kwargs = LOSSES[case]
    model, X, y = smooth_case("tanh", loss, n_out, l1=l1, l2=l2, **kwargs)
    check_gradient(model, X, y)


@pytest.mark.parametrize("activation, case, batch_norm, kwargs", [
    pytest.param("relu", "bce", True, {}, id="relu-bce"),
    pytest.param("tanh", "cce", True, {}, id="tanh-cce"),
    pytest.param("sigmoid", "squared-2-outputs", True, {}, id="sigmoid-squared-2-outputs"),
    pytest.param("gelu", "huber", True, {}, id="gelu-huber"),
    pytest.param("leaky_relu", "absolute", True, {}, id="leaky_relu-absolute"),
    pytest.param("elu", "bce-multilabel", [True, False], {}, id="elu-bce-multilabel-first-layer"),
    pytest.param("silu", "cce-smoothing", [False, True], {}, id="silu-cce-smoothing-second-layer"),
    pytest.param("mish", "squared", True, {"l1": 0.01, "l2": 0.05}, id="mish-squared-l1-l2"),
])
def test_gradient_with_batch_norm(activation, case, batch_norm, kwargs):
    loss, n_out, loss_kwargs = LOSSES[case]
    model, X, y = smooth_case(activation, loss, n_out, batch_norm=batch_norm, **loss_kwargs,
                              **kwargs)
    check_gradient(model, X, y)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("case", ["bce", "cce", "huber"])
def test_gradient_with_sample_weight(case, batch_norm):
    loss, n_out, kwargs = LOSSES[case]
    model, X, y = smooth_case("softplus", loss, n_out, batch_norm=batch_norm, **kwargs)
    weights = np.random.default_rng(1).uniform(0.0, 3.0, size=N_SAMPLES)
    weights[0] = 0.0
    check_gradient(model, X, y, sample_weight=weights)
