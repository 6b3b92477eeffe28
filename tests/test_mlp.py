"""``fastmlp.MLP`` against the NumPy reference, calculus, the lecture, and bad input.

Parity tests train ``MLP`` and ``ReferenceMLP`` from the same initial weights over the same batch
orders and require the float64 weights to agree to 1e-10; gradient tests compare backpropagation
with central finite differences; the lecture tests reproduce its initial weights bit for bit and
its circles result; the boundary tests require every rejected call to leave the model as it was.
"""
import importlib
import importlib.machinery
import inspect
import threading
import time

import numpy as np
import pytest

import fastmlp
import fastmlp.reference
from fastmlp import MLP
from fastmlp._kernels import _train
from fastmlp.reference import ReferenceMLP

PARITY_ATOL = 1e-10


def copy_of(model):
    """The initial parameters of ``model`` as lists (for ReferenceMLP(W=..., b=...))."""
    return [W.copy() for W in model.W], [b.copy() for b in model.b]


def reference_like(model, **overrides):
    """A ReferenceMLP with ``model``'s configuration and current weights."""
    W, b = copy_of(model)
    config = dict(lr=model.base_lr, seed=None, l2=model.l2,
                  hidden_activation=model.hidden_activation, lr_decay=model.lr_decay,
                  dtype=model.dtype)
    config.update(overrides)
    return ReferenceMLP(model.sizes, W=W, b=b, **config)


def orders_from(seed, n, epochs):
    """The batch orders ``train(..., shuffle_seed=seed)`` documents: one permutation per epoch."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def assert_same_parameters(model, ref, rtol=0.0, atol=PARITY_ATOL):
    for k, (W, b) in enumerate(zip(ref.W, ref.b)):
        np.testing.assert_allclose(model.W[k], W, rtol=rtol, atol=atol, err_msg=f"W[{k}]")
        np.testing.assert_allclose(model.b[k], b, rtol=rtol, atol=atol, err_msg=f"b[{k}]")


def max_change(before, model):
    return max(np.abs(W0 - W).max() for W0, W in zip(before, model.W))


# --------------------------------------------------------------------------------------------
# Parity with the reference
# --------------------------------------------------------------------------------------------

ARCHITECTURES = [pytest.param([2, 4, 4, 1], "relu", id="2-4-4-1-relu"),
                 pytest.param([5, 16, 8, 1], "sigmoid", id="5-16-8-1-sigmoid")]


def train_both(binary_data, sizes, activation, l2, lr_decay, batch_size, n=50, epochs=20,
               dtype=np.float64, lr=0.1):
    X, y = binary_data(n, sizes[0], seed=0)
    model = MLP(sizes, lr=lr, seed=1, l2=l2, hidden_activation=activation, lr_decay=lr_decay,
                dtype=dtype)
    ref = reference_like(model)
    initial, _ = copy_of(model)
    model.train(X, y, epochs=epochs, batch_size=batch_size, verbose=False, shuffle_seed=5)
    ref.train(X, y, epochs=epochs, batch_size=batch_size, orders=orders_from(5, n, epochs))
    # Guard against a vacuous pass: training must have moved the weights well beyond tolerance.
    assert max_change(initial, model) > 1e-2
    return model, ref


@pytest.mark.parametrize("sizes, activation", ARCHITECTURES)
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("lr_decay", [None, 0.9])
@pytest.mark.parametrize("batch_size", [None, 16], ids=["full-batch", "batch16-ragged"])
def test_parity_with_reference_float64(binary_data, sizes, activation, l2, lr_decay, batch_size):
    model, ref = train_both(binary_data, sizes, activation, l2, lr_decay, batch_size)
    assert_same_parameters(model, ref)
    assert model.lr == ref.lr
    expected_rates = [0.1 * (lr_decay or 1.0) ** e for e in range(20)]
    np.testing.assert_allclose(model.history["lr"], expected_rates, rtol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_parity_when_layers_use_blas(binary_data, activation, batch_size):
    sizes = [30, 80, 3, 1]
    # 30*80 is above the BLAS threshold (gemm); 80*3 and 3*1 are below it (hand loops).
    layout = _train.Network(sizes, [2, 2], None, 0, 0.0, 0.0, 0.0, 1)
    assert layout.blas.tolist() == [1, 0, 0]
    # n=80: full batch, or 32 + 32 + 16. (Full batches of 100 rows cross OpenBLAS's threading
    # threshold, which costs ~50 ms per product on a busy 2-core machine.)
    model, ref = train_both(binary_data, sizes, activation, 0.01, 0.9, batch_size, n=80)
    assert_same_parameters(model, ref)
    # Prediction reads the rows where they are (no gather) through the same first layer.
    X, _ = binary_data(80, sizes[0], seed=0)
    np.testing.assert_allclose(model.forward(X), ref.forward(X), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("sizes, activation", ARCHITECTURES)
def test_parity_float32(binary_data, sizes, activation):
    model, ref = train_both(binary_data, sizes, activation, 0.01, 0.9, 16, dtype=np.float32)
    assert model.params.dtype == np.float32
    assert_same_parameters(model, ref, rtol=1e-4, atol=1e-5)


def test_parity_with_the_models_own_generator(binary_data):
    """Without shuffle_seed the orders come from the generator seeded by ``seed``, continuing
    after the initial weights were drawn, exactly as ReferenceMLP(seed=...) does."""
    X, y = binary_data(50, 5, seed=0)
    model = MLP([5, 16, 8, 1], lr=0.2, seed=11)
    ref = ReferenceMLP([5, 16, 8, 1], lr=0.2, seed=11)
    for W, W_ref in zip(model.W, ref.W):
        np.testing.assert_array_equal(W, W_ref)
    for _ in range(2):      # the generator carries on across train calls
        model.train(X, y, epochs=10, batch_size=16, verbose=False)
        ref.train(X, y, epochs=10, batch_size=16, shuffle=True)
    assert_same_parameters(model, ref)


def test_parity_without_shuffle(binary_data):
    X, y = binary_data(50, 5, seed=0)
    model = MLP([5, 16, 8, 1], lr=0.2, seed=3, hidden_activation="sigmoid")
    ref = reference_like(model)
    model.train(X, y, epochs=15, batch_size=16, verbose=False, shuffle=False)
    ref.train(X, y, epochs=15, batch_size=16, shuffle=False)
    assert_same_parameters(model, ref)


def test_history_loss_is_mean_batch_loss_plus_end_of_epoch_penalty(binary_data):
    """history["loss"][e]: the per-sample BCE averaged over the epoch, each batch evaluated with
    the weights it was trained from, plus the penalty of the weights at the epoch's end."""
    X, y = binary_data(50, 5, seed=0)
    l2, epochs, batch = 0.01, 5, 16
    model = MLP([5, 16, 8, 1], lr=0.3, seed=2, l2=l2, lr_decay=0.9)
    ref = reference_like(model)
    model.train(X, y, epochs=epochs, batch_size=batch, verbose=False, shuffle_seed=9)
    expected = []
    for e, order in enumerate(orders_from(9, 50, epochs)):
        ref.lr = 0.3 * 0.9 ** e
        total = 0.0
        for start in range(0, 50, batch):
            rows = order[start:start + batch]
            total += fastmlp.reference.bce_from_logits(
                ref._forward_full(X[rows])[1][-1].ravel(), y[rows]) * len(rows)
            grads_W, grads_b = ref.gradients(X[rows], y[rows])
            for k in range(len(ref.W)):
                ref.W[k] -= ref.lr * grads_W[k]
                ref.b[k] -= ref.lr * grads_b[k]
        expected.append(total / 50 + 0.5 * l2 * sum((W ** 2).sum() for W in ref.W))
    np.testing.assert_allclose(model.history["loss"], expected, rtol=1e-12)


def test_forward_and_loss_match_reference(binary_data):
    X, y = binary_data(37, 5, seed=4)
    model = MLP([5, 16, 8, 1], seed=0, l2=0.05)
    model.train(X, y, epochs=3, verbose=False)
    ref = reference_like(model)
    proba = model.forward(X)
    assert proba.shape == (37,)
    np.testing.assert_allclose(proba, ref.forward(X), rtol=1e-13)
    np.testing.assert_array_equal(model.predict_proba(X), proba)
    assert model.loss(X, y) == pytest.approx(ref.loss(X, y), rel=1e-13)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

FD_STEP = 1e-5
FD_FLOOR = 1e-4


def relative_errors(analytic, numeric, floor=FD_FLOOR):
    """Per entry ``|a - n| / max(|a|, |n|, floor)``.

    The relative error of each entry; entries whose gradient is about zero (below ``floor``)
    are judged by their absolute error divided by ``floor``, since a relative error of a
    near-zero number measures only the finite difference's rounding noise (~1e-11 here)."""
    return np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)),
                                                    floor)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_loss_and_gradient_match_finite_differences(binary_data, activation, l2):
    X, y = binary_data(30, 5, seed=1)
    model = MLP([5, 7, 6, 1], seed=3, l2=l2, hidden_activation=activation)
    rng = np.random.default_rng(7)
    for k in range(len(model.b)):
        model.b[k] = 0.3 * rng.normal(size=model.b[k].shape)
    zs = reference_like(model)._forward_full(X)[1]
    if activation == "relu":
        # Each probe moves a pre-activation by a few steps at most: keep the kinks far away.
        assert min(np.abs(z).min() for z in zs[:-1]) > 100 * FD_STEP

    J, grad = model.loss_and_gradient(X, y)
    assert grad.shape == model.params.shape and grad.dtype == model.params.dtype
    assert J == pytest.approx(model.loss(X, y), rel=1e-14)
    numeric = np.empty_like(grad)
    theta = model.params
    for i in range(theta.size):
        original = theta[i]
        theta[i] = original + FD_STEP
        up = model.loss(X, y)
        theta[i] = original - FD_STEP
        down = model.loss(X, y)
        theta[i] = original
        numeric[i] = (up - down) / (2 * FD_STEP)
    errors = relative_errors(grad, numeric)
    assert errors.max() < 1e-6, f"worst parameter {errors.argmax()}: {errors.max():.3g}"


def test_gradient_layout_matches_reference(binary_data):
    """The flat gradient is laid out like params: W[0].ravel(), b[0], W[1].ravel(), b[1], ..."""
    X, y = binary_data(25, 5, seed=2)
    model = MLP([5, 16, 8, 1], seed=0, l2=0.01, hidden_activation="sigmoid")
    model.train(X, y, epochs=2, verbose=False)
    J, grad = model.loss_and_gradient(X, y)
    ref = reference_like(model)
    grads_W, grads_b = ref.gradients(X, y)
    expected = np.concatenate([part for gW, gb in zip(grads_W, grads_b)
                               for part in (gW.ravel(), gb)])
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)
    assert J == pytest.approx(ref.loss(X, y), rel=1e-13)
    offset = 0
    for W, b in zip(model.W, model.b):
        assert np.shares_memory(W, model.params[offset:offset + W.size])
        offset += W.size
        assert np.shares_memory(b, model.params[offset:offset + b.size])
        offset += b.size
    assert offset == model.params.size


# --------------------------------------------------------------------------------------------
# The lecture
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lecture_circles_result(circles, dtype):
    """SimpleMLP([2, 4, 4, 1], lr=0.3, seed=42, relu, lr_decay=0.95), 150 epochs of batches of
    32: the lecture reports train 0.943 and test 0.917. Over ten batch orders the medians must
    reach 0.94 and 0.91."""
    X_train, X_test, y_train, y_test = circles
    train_acc, test_acc = [], []
    for shuffle_seed in range(10):
        model = MLP([2, 4, 4, 1], lr=0.3, seed=42, hidden_activation="relu", l2=0.0,
                    lr_decay=0.95, dtype=dtype)
        model.train(X_train, y_train, epochs=150, batch_size=32, verbose=False,
                    shuffle_seed=shuffle_seed)
        train_acc.append(np.mean(model.predict(X_train) == y_train))
        test_acc.append(np.mean(model.predict(X_test) == y_test))
    assert np.median(train_acc) >= 0.94, train_acc
    assert np.median(test_acc) >= 0.91, test_acc


def lecture_initial_weights(layer_sizes, seed, hidden_activation):
    """The lecture's he_init / xavier_init and SimpleMLP.__init__ loop, verbatim."""
    def he_init(rng, fan_in, fan_out):
        std = np.sqrt(2.0 / fan_in)
        return rng.normal(0.0, std, size=(fan_in, fan_out))

    def xavier_init(rng, fan_in, fan_out):
        std = np.sqrt(2.0 / (fan_in + fan_out))
        return rng.normal(0.0, std, size=(fan_in, fan_out))

    sizes = list(layer_sizes)
    rng = np.random.default_rng(seed)
    W = []
    for din, dout in zip(sizes[:-1], sizes[1:]):
        if hidden_activation == "relu":
            Wk = he_init(rng, din, dout)
        else:
            Wk = xavier_init(rng, din, dout)
        W.append(Wk)
    b = [np.zeros(dout) for dout in sizes[1:]]
    return W, b


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("sizes", [[2, 4, 4, 1], [5, 16, 8, 1]])
def test_lecture_initial_weights_bit_for_bit(activation, sizes):
    W, b = lecture_initial_weights(sizes, 42, activation)
    model = MLP(sizes, seed=42, hidden_activation=activation)
    assert len(model.W) == len(W) and len(model.b) == len(b)
    for k in range(len(W)):
        assert model.W[k].dtype == np.float64
        np.testing.assert_array_equal(model.W[k], W[k])
        np.testing.assert_array_equal(model.b[k], b[k])
    single = MLP(sizes, seed=42, hidden_activation=activation, dtype=np.float32)
    for k in range(len(W)):
        np.testing.assert_array_equal(single.W[k], W[k].astype(np.float32))


# --------------------------------------------------------------------------------------------
# The compiled kernels do the work
# --------------------------------------------------------------------------------------------

def test_training_never_calls_the_reference(monkeypatch, binary_data):
    def forbidden(*args, **kwargs):
        raise AssertionError("fastmlp.MLP called into fastmlp.reference")

    patched = []
    for name, obj in vars(fastmlp.reference).items():
        if inspect.isfunction(obj) and obj.__module__ == fastmlp.reference.__name__:
            monkeypatch.setattr(fastmlp.reference, name, forbidden)
            patched.append(name)
        elif inspect.isclass(obj) and obj.__module__ == fastmlp.reference.__name__:
            for attr, member in vars(obj).items():
                if inspect.isfunction(member):
                    monkeypatch.setattr(obj, attr, forbidden)
                    patched.append(f"{name}.{attr}")
    assert {"sigmoid", "relu", "bce_from_logits", "ReferenceMLP.__init__",
            "ReferenceMLP.gradients", "ReferenceMLP.train", "ReferenceMLP.forward",
            "ReferenceMLP.loss"} <= set(patched)
    with pytest.raises(AssertionError):
        ReferenceMLP([2, 1])

    X, y = binary_data(60, 4, seed=0)
    model = MLP([4, 8, 8, 1], lr=0.5, seed=0, l2=0.001, lr_decay=0.99)
    before = model.loss(X, y)
    model.fit(X, y, epochs=30, batch_size=16, verbose=False)
    assert model.loss(X, y) < 0.7 * before
    model.loss_and_gradient(X, y)
    assert model.predict(X).shape == (60,)


@pytest.mark.parametrize("name", ["_blas", "_dense", "_loss", "_optim", "_train"])
def test_kernel_modules_are_compiled_extensions(name):
    module = importlib.import_module(f"fastmlp._kernels.{name}")
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), \
        module.__file__


def test_training_releases_the_gil(binary_data):
    """While a thread trains (20 full-batch epochs: one kernel call of a few hundred ms), the
    main thread must keep running Python: its loop timestamps must cover the training window
    with no gap longer than a fifth of it. Holding the GIL through the call would leave one gap
    as long as the whole window."""
    X, y = binary_data(20_000, 60, seed=0)
    model = MLP([60, 60, 60, 1], lr=0.01, seed=0)
    window = {}

    def train():
        window["start"] = time.perf_counter()
        model.train(X, y, epochs=20, verbose=False)
        window["end"] = time.perf_counter()

    worker = threading.Thread(target=train)
    stamps = []
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
    worker.join()

    start, end = window["start"], window["end"]
    inside = np.array([start] + [t for t in stamps if start < t < end] + [end])
    longest_gap = np.diff(inside).max()
    assert len(inside) > 1000, f"main thread ran {len(inside)} iterations during training"
    assert longest_gap < 0.2 * (end - start), \
        f"main thread stalled {longest_gap:.3f}s of a {end - start:.3f}s training window"
    assert len(model.history["loss"]) == 20


# --------------------------------------------------------------------------------------------
# W and b are views of params
# --------------------------------------------------------------------------------------------

def test_W_and_b_are_views_of_params():
    model = MLP([3, 5, 4, 1], seed=0)
    assert model.params.ndim == 1 and model.params.flags.c_contiguous
    assert model.params.size == sum(W.size + b.size for W, b in zip(model.W, model.b))
    for k, (W, b) in enumerate(zip(model.W, model.b)):
        assert W.shape == (model.sizes[k], model.sizes[k + 1])
        assert b.shape == (model.sizes[k + 1],)
        assert np.shares_memory(W, model.params) and np.shares_memory(b, model.params)


def test_in_place_writes_change_predictions(small_data):
    X, _ = small_data
    model = MLP([3, 5, 1], seed=0)
    model.W[1][:] = 0.0
    model.b[1][:] = 0.0
    np.testing.assert_array_equal(model.forward(X), np.full(len(X), 0.5))
    model.b[1][0] = 100.0
    np.testing.assert_array_equal(model.predict(X), np.ones(len(X), dtype=int))
    model.params[-1] = -100.0          # b[1] is the last entry of params
    assert model.b[1][0] == -100.0
    np.testing.assert_array_equal(model.predict(X), np.zeros(len(X), dtype=int))


def test_assigning_a_layer_copies_into_params(small_data):
    X, _ = small_data
    model = MLP([3, 5, 1], seed=0)
    view = model.W[0]
    new = np.arange(15, dtype=float).reshape(3, 5) / 10
    model.W[0] = new
    assert model.W[0] is view                   # still the view, now holding new values
    np.testing.assert_array_equal(model.W[0], new)
    assert not np.shares_memory(model.W[0], new)
    np.testing.assert_array_equal(model.params[:15], new.ravel())
    proba = model.forward(X)
    new[:] = 1000.0                             # the caller's array is not aliased
    np.testing.assert_array_equal(model.forward(X), proba)
    np.testing.assert_array_equal(model.W[0], np.arange(15).reshape(3, 5) / 10)
    ref = reference_like(model)
    np.testing.assert_allclose(proba, ref.forward(X), rtol=1e-13)


def test_assigning_a_layer_of_the_wrong_shape_raises():
    model = MLP([3, 5, 1], seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match="shape"):
        model.W[0] = np.zeros((5, 3))
    with pytest.raises(ValueError, match="shape"):
        model.b[0] = np.zeros(4)
    with pytest.raises(ValueError, match="NaN"):
        model.W[1] = np.full((5, 1), np.nan)
    with pytest.raises(TypeError):
        model.W.append(np.zeros((1, 1)))
    np.testing.assert_array_equal(model.params, before)


# --------------------------------------------------------------------------------------------
# verbose, determinism, fit, predict
# --------------------------------------------------------------------------------------------

def test_verbose_prints_one_line_per_epoch(capsys, small_data):
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.5, seed=0, lr_decay=0.5)
    model.train(X, y, epochs=4, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for epoch, line in enumerate(lines):
        assert "loss" in line and "lr" in line
        assert f"{model.history['loss'][epoch]:.5f}" in line
        assert f"{0.5 * 0.5 ** epoch:.4g}" in line


def test_quiet_training_prints_nothing(capsys, small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    model.train(X, y, epochs=4, verbose=False)
    model.fit(X, y, epochs=2, verbose=False)
    model.predict(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_same_seed_same_parameters_bit_for_bit(capsys, binary_data):
    X, y = binary_data(64, 5, seed=0)
    runs = []
    for verbose in (False, False, True):        # one kernel call for all epochs, or one each
        model = MLP([5, 16, 8, 1], lr=0.3, seed=123, l2=0.001, lr_decay=0.98)
        model.train(X, y, epochs=25, batch_size=10, verbose=verbose)
        runs.append(model.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    other = MLP([5, 16, 8, 1], lr=0.3, seed=124, l2=0.001, lr_decay=0.98)
    other.train(X, y, epochs=25, batch_size=10, verbose=False)
    assert not np.array_equal(other.params, runs[0])


def test_fit_returns_self_and_trains(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    before = model.params.copy()
    assert model.fit(X, y, epochs=3, verbose=False) is model
    assert not np.array_equal(model.params, before)
    assert len(model.history["loss"]) == 3


def test_predict_threshold(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.5, seed=0).fit(X, y, epochs=50, verbose=False)
    proba = model.predict_proba(X)
    assert len(np.unique(proba)) > 10
    for threshold in (0.5, float(np.median(proba)), float(proba.min()), 0.0, 1.0):
        labels = model.predict(X, threshold=threshold)
        assert labels.dtype.kind == "i"
        np.testing.assert_array_equal(labels, (proba >= threshold).astype(int))
    np.testing.assert_array_equal(model.predict(X), (proba >= 0.5).astype(int))
    assert model.predict(X, threshold=0.0).all()
    with pytest.raises(ValueError, match="threshold"):
        model.predict(X, threshold=1.5)


def test_divergence_raises_and_keeps_finite_parameters(binary_data):
    X, y = binary_data(64, 3, seed=0, scale=1e100)
    model = MLP([3, 8, 8, 1], lr=1e6, seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match="diverged"):
        model.train(X, y, epochs=20, batch_size=16, verbose=False)
    assert np.all(np.isfinite(model.params))
    # It diverged in the first epoch, so the model keeps its weights from before the call.
    assert model.history["loss"] == []
    np.testing.assert_array_equal(model.params, before)
    assert np.all(np.isfinite(model.forward(np.ones((2, 3)))))


# --------------------------------------------------------------------------------------------
# Bad input at the boundary
# --------------------------------------------------------------------------------------------

def with_value(array, index, value, dtype=float):
    array = np.array(array, dtype=dtype)
    array[index] = value
    return array


# Each case: a function (X, y) -> keyword arguments of train, the exception and its message.
BAD_TRAIN_CALLS = [
    pytest.param(lambda X, y: dict(X=X[:, 0], y=y), ValueError, "2-D", id="X-1d"),
    pytest.param(lambda X, y: dict(X=X[:, :, None], y=y), ValueError, "2-D", id="X-3d"),
    pytest.param(lambda X, y: dict(X=X, y=y[:-1]), ValueError, "samples but y has",
                 id="len-y-short"),
    pytest.param(lambda X, y: dict(X=X[:-1], y=y), ValueError, "samples but y has",
                 id="len-y-long"),
    pytest.param(lambda X, y: dict(X=with_value(X, (3, 1), np.nan), y=y), ValueError,
                 "NaN or infinity", id="X-nan"),
    pytest.param(lambda X, y: dict(X=with_value(X, (5, 0), np.inf), y=y), ValueError,
                 "NaN or infinity", id="X-inf"),
    pytest.param(lambda X, y: dict(X=with_value(X, (0, 2), -np.inf), y=y), ValueError,
                 "NaN or infinity", id="X-minus-inf"),
    pytest.param(lambda X, y: dict(X=X, y=with_value(y, 4, np.nan)), ValueError,
                 r"labels 0 and 1.*nan", id="y-nan"),
    pytest.param(lambda X, y: dict(X=X, y=with_value(y, 4, 2, dtype=int)), ValueError,
                 r"labels 0 and 1.*\[2\]", id="y-label-2"),
    pytest.param(lambda X, y: dict(X=X, y=with_value(y, 4, -1, dtype=int)), ValueError,
                 r"labels 0 and 1.*\[-1\]", id="y-label-minus-1"),
    pytest.param(lambda X, y: dict(X=X, y=with_value(y, 4, 0.5)), ValueError,
                 r"labels 0 and 1.*\[0.5\]", id="y-label-half"),
    pytest.param(lambda X, y: dict(X=X, y=np.where(y == 1, "yes", "no")), TypeError,
                 "numeric labels", id="y-strings"),
    pytest.param(lambda X, y: dict(X=X, y=np.stack([y, y], axis=1)), ValueError, "1-D",
                 id="y-2d"),
    pytest.param(lambda X, y: dict(X=X.astype(object), y=y), TypeError, "real numbers",
                 id="X-object"),
    pytest.param(lambda X, y: dict(X=np.where(X > 0, "a", "b"), y=y), TypeError,
                 "real numbers", id="X-strings"),
    pytest.param(lambda X, y: dict(X=X[:, :2], y=y), ValueError, "2 features", id="X-2-features"),
    pytest.param(lambda X, y: dict(X=np.hstack([X, X]), y=y), ValueError, "6 features",
                 id="X-6-features"),
    pytest.param(lambda X, y: dict(X=X[:0], y=y[:0]), ValueError, "empty", id="X-empty"),
    pytest.param(lambda X, y: dict(X=X, y=y, epochs=0), ValueError, "epochs", id="epochs-0"),
    pytest.param(lambda X, y: dict(X=X, y=y, epochs=-3), ValueError, "epochs", id="epochs-neg"),
    pytest.param(lambda X, y: dict(X=X, y=y, epochs=1.5), TypeError, "epochs", id="epochs-1.5"),
    pytest.param(lambda X, y: dict(X=X, y=y, epochs=True), TypeError, "epochs", id="epochs-True"),
    pytest.param(lambda X, y: dict(X=X, y=y, batch_size=0), ValueError, "batch_size",
                 id="batch-0"),
    pytest.param(lambda X, y: dict(X=X, y=y, batch_size=-8), ValueError, "batch_size",
                 id="batch-neg"),
    pytest.param(lambda X, y: dict(X=X, y=y, batch_size=2.5), TypeError, "batch_size",
                 id="batch-float"),
    pytest.param(lambda X, y: dict(X=X, y=y, shuffle="yes"), TypeError, "shuffle",
                 id="shuffle-yes"),
    pytest.param(lambda X, y: dict(X=X, y=y, shuffle_seed=-1), ValueError, "shuffle_seed",
                 id="shuffle-seed-neg"),
]


@pytest.fixture
def trained_model(small_data):
    """A model with some history, so a rejected call that reset anything would show."""
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.2, seed=0, lr_decay=0.9)
    model.train(X, y, epochs=3, verbose=False)
    return model


def snapshot(model):
    return model.params.copy(), model.lr, model.base_lr, {k: list(v) for k, v in
                                                           model.history.items()}


def assert_unchanged(model, snap):
    params, lr, base_lr, history = snap
    np.testing.assert_array_equal(model.params, params)
    assert (model.lr, model.base_lr) == (lr, base_lr)
    assert model.history == history


@pytest.mark.parametrize("make_call, error, message", BAD_TRAIN_CALLS)
@pytest.mark.parametrize("method", ["train", "fit"])
def test_bad_train_input_is_rejected_and_model_unchanged(small_data, trained_model, make_call,
                                                         error, message, method):
    X, y = small_data
    before = snapshot(trained_model)
    kwargs = make_call(X.copy(), y.copy())
    with pytest.raises(error, match=message):
        getattr(trained_model, method)(verbose=False, **kwargs)
    assert_unchanged(trained_model, before)


@pytest.mark.parametrize("attribute, value, error, message", [
    ("lr", 0.0, ValueError, "lr"),
    ("lr", -0.1, ValueError, "lr"),
    ("lr", float("nan"), ValueError, "lr"),
    ("lr", float("inf"), ValueError, "lr"),
    ("base_lr", 0.0, ValueError, "lr"),
    ("l2", -1.0, ValueError, "l2"),
    ("lr_decay", 0.0, ValueError, "lr_decay"),
    ("lr_decay", 1.5, ValueError, "lr_decay"),
])
def test_bad_hyperparameter_set_before_train_is_rejected(small_data, trained_model, attribute,
                                                         value, error, message):
    X, y = small_data
    setattr(trained_model, attribute, value)
    before = snapshot(trained_model)
    with pytest.raises(error, match=message):
        trained_model.train(X, y, epochs=2, verbose=False)
    assert_unchanged(trained_model, before)


BAD_X = [
    pytest.param(lambda X: X[0], ValueError, "2-D", id="1d"),
    pytest.param(lambda X: with_value(X, (1, 1), np.nan), ValueError, "NaN", id="nan"),
    pytest.param(lambda X: with_value(X, (1, 1), np.inf), ValueError, "infinity", id="inf"),
    pytest.param(lambda X: X[:, :2], ValueError, "features", id="wrong-width"),
    pytest.param(lambda X: X.astype(object), TypeError, "real numbers", id="object"),
    pytest.param(lambda X: X[:0], ValueError, "empty", id="empty"),
]


@pytest.mark.parametrize("make_X, error, message", BAD_X)
@pytest.mark.parametrize("method", ["forward", "predict_proba", "predict", "loss",
                                    "loss_and_gradient"])
def test_bad_X_rejected_by_every_method(small_data, trained_model, make_X, error, message,
                                        method):
    X, y = small_data
    before = snapshot(trained_model)
    args = (make_X(X.copy()),) + ((y,) if method.startswith("loss") else ())
    with pytest.raises(error, match=message):
        getattr(trained_model, method)(*args)
    assert_unchanged(trained_model, before)


@pytest.mark.parametrize("method", ["loss", "loss_and_gradient"])
def test_bad_y_rejected_by_loss_methods(small_data, trained_model, method):
    X, y = small_data
    with pytest.raises(ValueError, match="labels 0 and 1"):
        getattr(trained_model, method)(X, with_value(y, 0, 3, dtype=int))
    with pytest.raises(ValueError, match="samples but y has"):
        getattr(trained_model, method)(X, y[:-2])


def test_float32_model_rejects_values_beyond_float32_range(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0, dtype=np.float32)
    before = model.params.copy()
    with pytest.raises(ValueError, match="float32"):
        model.train(with_value(X, (2, 2), 1e39), y, verbose=False)
    np.testing.assert_array_equal(model.params, before)


BAD_CONSTRUCTORS = [
    pytest.param(dict(lr=0.0), ValueError, "lr", id="lr-0"),
    pytest.param(dict(lr=-0.5), ValueError, "lr", id="lr-neg"),
    pytest.param(dict(lr=float("nan")), ValueError, "lr", id="lr-nan"),
    pytest.param(dict(lr=float("inf")), ValueError, "lr", id="lr-inf"),
    pytest.param(dict(l2=-0.01), ValueError, "l2", id="l2-neg"),
    pytest.param(dict(l2=float("nan")), ValueError, "l2", id="l2-nan"),
    pytest.param(dict(lr_decay=0.0), ValueError, "lr_decay", id="decay-0"),
    pytest.param(dict(lr_decay=1.5), ValueError, "lr_decay", id="decay-1.5"),
    pytest.param(dict(lr_decay=-0.5), ValueError, "lr_decay", id="decay-neg"),
    pytest.param(dict(hidden_activation="softmax"), ValueError, "hidden_activation",
                 id="activation-softmax"),
    pytest.param(dict(hidden_activation=None), ValueError, "hidden_activation",
                 id="activation-none"),
    pytest.param(dict(layer_sizes=[2, 0, 1]), ValueError, "layer_sizes", id="sizes-zero"),
    pytest.param(dict(layer_sizes=[2, -4, 1]), ValueError, "layer_sizes", id="sizes-neg"),
    pytest.param(dict(layer_sizes=[2, 4, 1], loss="categorical_crossentropy"), ValueError,
                 "one output per class", id="softmax-one-output"),
    pytest.param(dict(layer_sizes=[2]), ValueError, "at least", id="single-layer"),
    pytest.param(dict(layer_sizes=[]), ValueError, "at least", id="no-layers"),
    pytest.param(dict(layer_sizes=[2, 4.5, 1]), TypeError, "layer_sizes", id="sizes-float"),
    pytest.param(dict(layer_sizes=[2, True, 1]), TypeError, "layer_sizes", id="sizes-bool"),
    pytest.param(dict(layer_sizes="2,4,1"), TypeError, "layer_sizes", id="sizes-string"),
    pytest.param(dict(layer_sizes=3), TypeError, "layer_sizes", id="sizes-int"),
    pytest.param(dict(dtype=int), TypeError, "dtype", id="dtype-int"),
    pytest.param(dict(dtype=np.int32), TypeError, "dtype", id="dtype-int32"),
    pytest.param(dict(dtype=np.float16), TypeError, "dtype", id="dtype-float16"),
    # The hyperparameters' own type checks must not be bypassed by a float() conversion.
    pytest.param(dict(lr=True), TypeError, "lr", id="lr-bool"),
    pytest.param(dict(lr="0.1"), TypeError, "lr", id="lr-string"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_CONSTRUCTORS)
def test_bad_constructor_arguments(kwargs, error, message):
    kwargs = dict(kwargs)
    sizes = kwargs.pop("layer_sizes", [2, 4, 1])
    with pytest.raises(error, match=message):
        MLP(sizes, **kwargs)


def test_valid_edge_hyperparameters_are_accepted(small_data):
    X, y = small_data
    for kwargs in (dict(lr_decay=1.0), dict(l2=0.0), dict(layer_sizes=[3, 1]),
                   dict(dtype="float32"), dict(dtype=np.dtype(np.float64))):
        kwargs = dict(kwargs)
        model = MLP(kwargs.pop("layer_sizes", [3, 4, 1]), seed=0, **kwargs)
        model.train(X, y, epochs=2, batch_size=1000, verbose=False)   # batch_size > n is clipped
        assert len(model.history["loss"]) == 2


# --------------------------------------------------------------------------------------------
# Inputs that need converting
# --------------------------------------------------------------------------------------------

def test_converted_inputs_give_the_same_results(binary_data):
    X, y = binary_data(50, 4, seed=3)
    model = MLP([4, 8, 1], lr=0.5, seed=0).fit(X, y, epochs=20, verbose=False)
    proba = model.forward(X)

    wide = np.zeros((50, 8))
    wide[:, ::2] = X
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    fortran = np.asfortranarray(X)
    readonly = X.copy()
    readonly.setflags(write=False)
    for variant in (strided, fortran, readonly, X.tolist()):
        np.testing.assert_array_equal(model.forward(variant), proba)
        assert model.loss(variant, y) == model.loss(X, y)

    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(model.forward(X32), model.forward(X32.astype(np.float64)))
    np.testing.assert_array_equal(model.predict(X32), model.predict(X))
    np.testing.assert_allclose(model.forward(X32), proba, rtol=1e-5)

    for labels in (y.astype(bool), y.astype(np.float32), y.reshape(-1, 1), y.tolist()):
        assert model.loss(X, labels) == model.loss(X, y)


def test_training_on_converted_inputs_is_identical(binary_data):
    X, y = binary_data(50, 4, seed=3)
    wide = np.zeros((50, 8))
    wide[:, 1::2] = X
    results = []
    for X_variant, y_variant in ((X, y), (wide[:, 1::2], y.astype(float)),
                                 (np.asfortranarray(X), y.astype(bool))):
        model = MLP([4, 8, 1], lr=0.5, seed=0)
        model.train(X_variant, y_variant, epochs=10, batch_size=7, verbose=False)
        results.append(model.params)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_float32_model_accepts_float64_input(binary_data):
    X, y = binary_data(50, 4, seed=3)
    model = MLP([4, 8, 1], lr=0.5, seed=0, dtype=np.float32)
    model.train(X, y, epochs=5, verbose=False)
    proba = model.forward(X)
    assert proba.dtype == np.float32
    np.testing.assert_array_equal(proba, model.forward(X.astype(np.float32)))
