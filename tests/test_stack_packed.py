"""The stack's own first-layer paths: ``_train.stack_batch_step`` (the first layer's weight
gradient from the batch gathered sample-major) and ``_train.stack_packed_step`` (the first layers
of a stack's models as one product per batch each way, when ``STACK_PACK_MODELS`` > 0). On either
each model still ends where ``MLP.train`` alone takes it (float64, 1e-10), and both agree with
the per-model path of ``train_epochs`` (``packed=False``)."""
import numpy as np
import pytest

from fastmlp import MLP, _engine
from fastmlp._kernels import _train
from fastmlp.stack import MLPStack

from test_stack import ACTIVATIONS, OPTIMIZERS, _assert_each_model_matches_training_alone

# A first layer of 20 x 16 goes to BLAS (DEFAULT_BLAS_MIN_WORK is 256).
N_IN, H = 20, 16


@pytest.fixture(params=[0, 64], ids=["sample-major", "packed"], autouse=True)
def pack_models(request, monkeypatch):
    """Every test runs on both paths: STACK_PACK_MODELS 0 (stack_batch_step) and 64."""
    monkeypatch.setattr(_train, "STACK_PACK_MODELS", request.param)
    return request.param


def _data(n=157, n_out=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_IN))
    if n_out == 1:
        return X, (X[:, 0] * X[:, 1] + X[:, 5] > 0).astype(int)
    return X, np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])


def _run(stack, X, y, orders, rates, batch_size, packed, weights=None, seeds=None):
    """train_stack_epochs on ``stack`` (IN/OUT) with ``packed``; returns losses and status."""
    K = len(stack._models)
    first = stack._models[0]
    Y, _, _ = first._encode_targets(y, X.shape[0])
    weighted = np.zeros(K, dtype=np.uint8) if weights is None else np.ones(K, dtype=np.uint8)
    seeds = np.arange(K, dtype=np.uint64) if seeds is None else seeds
    runner = _engine.StackRunner(stack, first._check_X(X), Y, weights, np.ones(K), weighted,
                                 batch_size, seeds, 1)
    losses = np.full((orders.shape[0], K), np.nan)
    with runner:
        _train.train_stack_epochs(
            runner.nets, stack.params, stack.opt_state, stack.bn_state, stack.steps, runner.X,
            runner.Y, weights, np.ones(K), weighted, orders, rates, batch_size, seeds,
            runner.workspaces, losses, runner.status, np.zeros(K, dtype=np.intp), packed=packed)
    return losses, runner.status.copy()


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "momentum"])
def test_the_stack_paths_agree_with_the_per_model_one(optimizer, pack_models):
    """The twin: the same stack trained with packed=None (this test's path) and packed=False
    (batch_step, as train_epochs): the same losses and parameters up to rounding."""
    X, y = _data(n_out=3)
    rng = np.random.default_rng(1)
    epochs, K = 4, 5
    orders = np.stack([rng.permutation(X.shape[0]) for _ in range(epochs)])
    lrs = [0.3, 0.1, 0.05, 0.5, 0.2]
    rates = np.tile(lrs, (epochs, 1))
    weights = (rng.uniform(size=(K, X.shape[0])) > 0.2).astype(float)

    def new_stack():
        return MLPStack([MLP([N_IN, H, 7, 3], lr=lr, seed=k, optimizer=optimizer,
                             loss="categorical_crossentropy", l2=1e-3 * k, l1=1e-4 * (k % 2),
                             hidden_activation=["relu", "tanh", "elu", "sigmoid", "gelu"][k],
                             dropout=[0.2 * (k % 2), 0.1])
                         for k, lr in enumerate(lrs)])

    results = {}
    for packed in (False, None):
        stack = new_stack()
        losses, status = _run(stack, X, y, orders, rates, 32, packed, weights)
        assert np.all(status == _train.Status.OK)
        results[packed] = (stack.params.copy(), stack.opt_state.copy(), losses)
    for per_model, packed in zip(results[False], results[None]):
        np.testing.assert_allclose(packed, per_model, rtol=0, atol=1e-10)
    assert not np.array_equal(results[None][0], new_stack().params)   # it trained


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_packed_model_matches_training_alone(optimizer):
    X, y = _data()
    models = [MLP([N_IN, H, 6, 1], lr=lr, l2=l2, l1=l1, seed=s, optimizer=optimizer)
              for s, (lr, l2, l1) in enumerate([(0.05, 0, 0), (0.1, 1e-3, 0), (0.02, 0, 1e-3)])]
    _assert_each_model_matches_training_alone(models, X, y, epochs=3, batch_size=24, n_jobs=1)


def test_packed_activations_dropout_and_batch_norm_above_the_first_layer():
    X, y = _data(n_out=3)
    models = [MLP([N_IN, H, 6, 3], lr=0.05, seed=k, hidden_activation=a,
                  loss="categorical_crossentropy", dropout=[0.1 * (k % 3), 0.2 * (k % 2)],
                  batch_norm=[False, True], optimizer=["sgd", "adam"][k % 2])
              for k, a in enumerate(ACTIVATIONS)]
    _assert_each_model_matches_training_alone(models, X, y, epochs=3, batch_size=32, n_jobs=1)


@pytest.mark.parametrize("batch_size", [157, 50, 16])
def test_packed_folds_as_weights_with_a_ragged_last_batch(batch_size):
    X, y = _data()
    folds = np.arange(X.shape[0]) % 5
    weights = np.stack([(folds != f).astype(float) for f in range(5)])
    models = [MLP([N_IN, H, 1], lr=0.1, seed=0, optimizer=opt)
              for opt in ["sgd", "adam", "rmsprop", "sgd", "adam"]]
    stack = _assert_each_model_matches_training_alone(models, X, y, epochs=3,
                                                      batch_size=batch_size,
                                                      sample_weight=weights, n_jobs=2)
    assert not np.array_equal(stack.params[0], stack.params[3])


def test_more_models_than_one_product_takes(monkeypatch):
    """STACK_PACK_MODELS caps the models per product: 7 models in products of 3, 3 and 1."""
    monkeypatch.setattr(_train, "STACK_PACK_MODELS", 3)
    X, y = _data()
    models = [MLP([N_IN, H, 1], lr=0.02 * (k + 1), seed=k, optimizer="adam") for k in range(7)]
    _assert_each_model_matches_training_alone(models, X, y, epochs=2, batch_size=40, n_jobs=1)


def test_a_diverging_model_leaves_the_packed_stack_alone():
    X, y = _data()
    X = X * 1e3
    stack = MLPStack([MLP([N_IN, H, 1], lr=lr, seed=0, loss="squared_error")
                      for lr in (1e-9, 1e3, 1e-8)])
    rng = np.random.default_rng(0)
    orders = np.stack([rng.permutation(X.shape[0]) for _ in range(6)])
    rates = np.tile([1e-9, 1e3, 1e-8], (6, 1))
    losses, status = _run(stack, X, y.astype(float), orders, rates, 16, None)
    assert status[1] != _train.Status.OK and status[0] == status[2] == _train.Status.OK
    assert np.all(np.isfinite(stack.params))
    alone = MLPStack([MLP([N_IN, H, 1], lr=lr, seed=0, loss="squared_error")
                      for lr in (1e-9, 1e3, 1e-8)])
    losses_alone, status_alone = _run(alone, X, y.astype(float), orders, rates, 16, False)
    np.testing.assert_array_equal(status, status_alone)
    np.testing.assert_allclose(stack.params, alone.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(losses, losses_alone, rtol=0, atol=1e-10, equal_nan=True)


@pytest.mark.parametrize("case", ["one model", "batch norm", "narrow", "sparse"])
def test_packed_true_refuses_what_cannot_be_packed(case, pack_models):
    if pack_models:
        pytest.skip("one path suffices")
    X, y = _data()
    sizes = {"narrow": [N_IN, 4, 1]}.get(case, [N_IN, H, 1])
    models = [MLP(sizes, seed=k, batch_norm=case == "batch norm") for k in range(2)]
    if case == "one model":
        models = models[:1]
    stack = MLPStack(models)
    K = len(models)
    first = stack._models[0]
    Y, _, _ = first._encode_targets(y, X.shape[0])
    if case == "sparse":
        import scipy.sparse as sp
        X = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    orders = np.arange(X.shape[0])[None, :]
    runner = _engine.StackRunner(stack, first._check_X(X), Y, None, np.ones(K),
                                 np.zeros(K, dtype=np.uint8), 16, np.zeros(K, dtype=np.uint64), 1)
    with runner, pytest.raises(ValueError, match="packed=True needs"):
        _train.train_stack_epochs(
            runner.nets, stack.params, stack.opt_state, stack.bn_state, stack.steps, runner.X,
            runner.Y, None, np.ones(K), np.zeros(K, dtype=np.uint8), orders,
            np.full((1, K), 0.1), 16, np.zeros(K, dtype=np.uint64), runner.workspaces,
            np.empty((1, K)), runner.status, np.zeros(K, dtype=np.intp), packed=True)


def test_batch_norm_on_the_first_layer_takes_the_sample_major_path():
    """Packing refuses a batch-normalized first layer; stack_batch_step takes it (its bias
    gradient is 0, the bn backward runs on the first layer's delta)."""
    X, y = _data(n_out=3)
    models = [MLP([N_IN, H, 6, 3], lr=0.05, seed=k, loss="categorical_crossentropy",
                  batch_norm=[True, False], optimizer=opt, dropout=[0.1, 0.0])
              for k, opt in enumerate(["adam", "rmsprop", "momentum"])]
    _assert_each_model_matches_training_alone(models, X, y, epochs=3, batch_size=32, n_jobs=1)


def test_float32_stacks_take_the_same_paths_within_float32_rounding():
    """float32: the products' other order (and the packed SGD step outside BLAS) moves the
    parameters by float32 rounding only."""
    X, y = _data()
    models = [MLP([N_IN, H, 1], lr=0.1, seed=k, optimizer=opt, dtype=np.float32, l2=1e-3)
              for k, opt in enumerate(["sgd", "adam", "rmsprop"])]
    stack = MLPStack(models)
    stack.train(X, y, epochs=3, batch_size=24, shuffle_seed=3, n_jobs=1)
    for k, model in enumerate(models):
        model.train(X, y, epochs=3, batch_size=24, shuffle_seed=3, verbose=False)
        assert stack.models[k].params.dtype == np.float32
        np.testing.assert_allclose(stack.models[k].params, model.params, rtol=0, atol=1e-5)
        assert stack.models[k]._step == model._step
