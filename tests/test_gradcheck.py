"""fastmlp.check_gradients: small errors on correct gradients of every task, a large error in
the right array when the gradient is wrong, and the model left exactly as it was."""
import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, check_gradients


def _data(task, n=24, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    if task == "binary":
        y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    elif task == "multiclass":
        y = np.array(["a", "b", "c"])[rng.integers(3, size=n)]
    elif task == "multilabel":
        y = (rng.normal(size=(n, 2)) > 0).astype(int)
    else:
        y = rng.normal(size=(n, 2))
    return X, y


def _perturb_biases(model, seed=1):
    """Non-zero biases, so their gradients and the layers' outputs are not special."""
    rng = np.random.default_rng(seed)
    for k in range(len(model.b)):
        model.b[k] = 0.3 * rng.normal(size=model.b[k].shape)
    return model


def _offset(model, view):
    """Where a parameter view starts in ``model.params``."""
    address = view.__array_interface__["data"][0]
    return (address - model.params.__array_interface__["data"][0]) // model.params.itemsize


# Smooth activations: a difference quotient across a kink (ReLU at 0) measures nothing.
CASES = {
    "binary_l2_l1": ("binary", dict(layer_sizes=[3, 5, 4, 1], hidden_activation="tanh",
                                    l2=0.05, l1=0.01)),
    "multiclass_smoothing": ("multiclass", dict(layer_sizes=[3, 6, 3], hidden_activation="gelu",
                                                label_smoothing=0.1)),
    "multilabel": ("multilabel", dict(layer_sizes=[3, 4, 2], loss="binary_crossentropy",
                                      hidden_activation="sigmoid")),
    "regression_huber": ("regression", dict(layer_sizes=[3, 5, 2], loss="huber",
                                            huber_delta=0.5, hidden_activation="softplus")),
    "regression_squared": ("regression", dict(layer_sizes=[3, 5, 5, 2], loss="squared_error",
                                              hidden_activation=["elu", "silu"])),
    "batch_norm": ("multiclass", dict(layer_sizes=[3, 6, 5, 3], hidden_activation="tanh",
                                      batch_norm=[True, True], dropout=0.3, l2=0.01)),
}


@pytest.mark.parametrize("case", CASES)
def test_correct_gradients_give_small_errors(case):
    task, kwargs = CASES[case]
    X, y = _data(task)
    model = _perturb_biases(MLP(seed=2, **kwargs))
    result = check_gradients(model, X, y)
    expected = [f"{kind}[{k}]" for k in range(len(model.W)) for kind in ("W", "b", "gamma", "beta")
                if kind in ("W", "b") or (k < len(model.batch_norm) and model.batch_norm[k])]
    assert list(result.errors) == expected
    assert result.n_checked == result.n_params == model.params.size
    assert result.max_error == max(result.errors.values())
    assert result.max_error < 1e-6, result


def test_sample_weights_are_part_of_the_objective():
    X, y = _data("binary")
    model = _perturb_biases(MLP([3, 4, 1], hidden_activation="tanh", seed=0))
    w = np.random.default_rng(3).uniform(0.1, 2.0, size=len(y))
    assert check_gradients(model, X, y, sample_weight=w).max_error < 1e-6


def test_a_wrong_gradient_is_found_in_its_array(monkeypatch):
    X, y = _data("binary")
    model = _perturb_biases(MLP([3, 5, 4, 1], hidden_activation="tanh", seed=0))
    true_loss_and_gradient = model.loss_and_gradient
    wrong = _offset(model, model.W[1]) + 7

    def broken(X, y, sample_weight=None):
        J, grad = true_loss_and_gradient(X, y, sample_weight)
        grad[wrong] += 0.1 * abs(grad[wrong]) + 1e-3
        return J, grad

    monkeypatch.setattr(model, "loss_and_gradient", broken)
    result = check_gradients(model, X, y)
    assert result["W[1]"] > 1e-3
    assert result.worst == "W[1][1, 3]"          # entry 7 of the 5 x 4 matrix
    assert max(err for name, err in result.errors.items() if name != "W[1]") < 1e-6


def test_a_wrong_batch_norm_gradient_is_found(monkeypatch):
    X, y = _data("multiclass")
    model = MLP([3, 6, 3], hidden_activation="tanh", batch_norm=True, seed=0)
    true_loss_and_gradient = model.loss_and_gradient
    offset = _offset(model, model.beta[0])

    def broken(X, y, sample_weight=None):
        J, grad = true_loss_and_gradient(X, y, sample_weight)
        grad[offset + 2] *= 1.01
        return J, grad

    monkeypatch.setattr(model, "loss_and_gradient", broken)
    result = check_gradients(model, X, y)
    assert result.worst == "beta[0][2]"
    assert 1e-3 < result["beta[0]"] < 2e-2
    assert result["gamma[0]"] < 1e-6


def test_model_is_unchanged(monkeypatch):
    X, y = _data("multiclass")
    model = MLP([3, 6, 3], hidden_activation="tanh", batch_norm=True, seed=0)
    model.train(X, y, epochs=3, verbose=False)
    params, bn_state, W0 = model.params.copy(), model.bn_state.copy(), model.W[0]
    check_gradients(model, X, y)
    assert np.array_equal(model.params, params) and np.array_equal(model.bn_state, bn_state)
    assert model.W[0] is W0 and np.shares_memory(model.W[0], model.params)


def test_model_is_restored_when_the_check_is_interrupted(monkeypatch):
    X, y = _data("binary")
    model = MLP([3, 4, 1], hidden_activation="tanh", seed=0)
    params = model.params.copy()
    calls = []
    true_loss = model.loss

    def failing_loss(*args):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("interrupted")
        return true_loss(*args)

    monkeypatch.setattr(model, "loss", failing_loss)
    with pytest.raises(RuntimeError, match="interrupted"):
        check_gradients(model, X, y)
    assert len(calls) == 7
    assert np.array_equal(model.params, params)


def test_float32_model_is_checked_through_a_float64_copy():
    X, y = _data("regression")
    model = _perturb_biases(MLP([3, 5, 2], loss="squared_error", hidden_activation="tanh",
                                dtype=np.float32, seed=0))
    params = model.params.copy()
    result = check_gradients(model, X, y)
    assert result.max_error < 1e-6
    assert model.params.dtype == np.float32 and np.array_equal(model.params, params)


def test_max_params_checks_a_seeded_subset_touching_every_array():
    X, y = _data("binary")
    model = _perturb_biases(MLP([3, 8, 8, 1], hidden_activation="tanh", seed=0))
    result = check_gradients(model, X, y, max_params=10, seed=4)
    assert result.n_checked == 10 and result.n_params == model.params.size
    assert list(result.errors) == ["W[0]", "b[0]", "W[1]", "b[1]", "W[2]", "b[2]"]
    assert result.max_error < 1e-6
    again = check_gradients(model, X, y, max_params=10, seed=4)
    assert again.errors == result.errors
    assert check_gradients(model, X, y, max_params=10, seed=5).errors != result.errors


def test_kinks_show_up_as_large_errors():
    """Documented limitation: at a ReLU kink the difference quotient is not the derivative."""
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0])
    model = MLP([2, 1, 1], hidden_activation="relu", seed=0)
    model.W[0] = [[1.0], [-1.0]]
    model.b[0] = [-1.0]                 # the first sample sits exactly on the kink
    model.W[1] = [[2.0]]
    assert check_gradients(model, X, y)["b[0]"] > 0.1


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(step=0.0), ValueError, "step must be a finite number > 0"),
    (dict(step=float("nan")), ValueError, "step"),
    (dict(floor=-1.0), ValueError, "floor"),
    (dict(max_params=3), ValueError, "at least the number of parameter arrays \\(4\\)"),
    (dict(max_params=2.5), TypeError, "max_params must be an integer"),
    (dict(seed="x"), TypeError, "seed must be an integer"),
])
def test_bad_options(kwargs, error, message):
    X, y = _data("binary")
    with pytest.raises(error, match=message):
        check_gradients(MLP([3, 4, 1], seed=0), X, y, **kwargs)


def test_bad_inputs_are_rejected_by_the_model():
    X, y = _data("binary")
    model = MLP([3, 4, 1], seed=0)
    params = model.params.copy()
    with pytest.raises(ValueError, match="features"):
        check_gradients(model, X[:, :2], y)
    with pytest.raises(TypeError, match="fastmlp.MLP"):
        check_gradients("model", X, y)
    assert np.array_equal(model.params, params)


def test_public_names():
    assert fastmlp.check_gradients is check_gradients
    assert "check_gradients" in fastmlp.__all__ and "load" in fastmlp.__all__
