"""``fastmlp.MLP`` against ``fastmlp.reference.ReferenceMLP`` across the toolkit.

Each test trains an ``MLP`` and a ``ReferenceMLP`` built from the model's initial parameters for
10 epochs over the same batch orders (``train(..., shuffle_seed=s)`` against
``orders=[default_rng(s).permutation(n) for each epoch]``; 30 samples in batches of 8, so every
epoch ends with a short batch), and requires every float64 parameter to agree to 1e-10 (float32:
a loose tolerance). After training, ``forward`` and ``loss`` must agree too, and with batch
normalization the running statistics.

The reference gets what the model derives for itself from what the user passes: one-hot targets
in ``classes_`` order, sample and class weights normalized to mean 1, the schedule's rates, and
the dropout seed (drawn by the model from its generator at the start of ``train``: a twin model
built with the same arguments draws the same one).

Every test also checks that what it exercises made a difference (the weights moved; a reference
without the clipping, the dropout masks or the weights would have ended elsewhere), so a feature
the engine silently ignores cannot pass.
"""
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp import optimizers, schedules
from fastmlp.reference import ReferenceMLP

# (rtol, atol) of the parameters and running statistics, and of forward; rtol of loss.
TOLERANCES = {
    np.float64: {"params": (0.0, 1e-10), "forward": (1e-12, 1e-14), "loss": 1e-12},
    # float32 rounding (~6e-8) compounded over 40 updates of weights of size ~2.
    np.float32: {"params": (1e-4, 1e-5), "forward": (1e-4, 1e-5), "loss": 1e-5},
}
N, EPOCHS, BATCH, SHUFFLE_SEED, LR = 30, 10, 8, 3, 0.05
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
ADAPTIVE = {"adagrad", "rmsprop", "adam", "adamw"}

_rng = np.random.default_rng(0)
X = _rng.normal(size=(N, 4))
_labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3)          # three classes, all present
_regression = np.c_[1.5 * X[:, 0] - X[:, 1] + 0.3 * _rng.normal(size=N), np.sin(2 * X[:, 2])]
_counts = _rng.poisson(np.exp(np.c_[0.6 * X[:, 0], 0.3 * X[:, 1] - 0.2])).astype(float)

# task -> (layer sizes, MLP keyword arguments, y as MLP.train takes it)
TASKS = {
    "binary": ([4, 5, 3, 1], {}, (X[:, 0] + 0.5 * X[:, 1] > 0.4).astype(int)),   # imbalanced
    "multiclass": ([4, 5, 3, 3], {}, _labels),
    # Labels whose sorted order (classes_) is not their order of first appearance.
    "multiclass-strings": ([4, 5, 3, 3], {}, np.array(["emu", "cat", "dog"])[_labels]),
    "multiclass-smoothing": ([4, 5, 3, 3], {"label_smoothing": 0.2}, _labels),
    "multilabel": ([4, 5, 3, 3], {"loss": "binary_crossentropy"},
                   (X[:, :3] + 0.3 * X[:, 3:] > 0).astype(int)),
    "squared_error": ([4, 5, 3, 1], {"loss": "squared_error"}, _regression[:, 0]),
    "absolute_error": ([4, 5, 3, 1], {"loss": "absolute_error"}, _regression[:, 0]),
    # delta 0.5: residuals on both sides of it while training.
    "huber": ([4, 5, 3, 1], {"loss": "huber", "huber_delta": 0.5}, _regression[:, 0]),
    "multi-output": ([4, 5, 3, 2], {"loss": "squared_error"}, _regression),
    "poisson": ([4, 5, 3, 1], {"loss": "poisson"}, _counts[:, 0]),
    "poisson-2-outputs": ([4, 5, 3, 2], {"loss": "poisson"}, _counts),
}


def make_model(task, seed=1, lr=LR, **kwargs):
    """An MLP for ``task`` (and its y): TASKS' sizes and keywords, plus ``kwargs``."""
    sizes, task_kwargs, y = TASKS[task]
    return MLP(sizes, lr=lr, seed=seed, **task_kwargs, **kwargs), y


def reference_of(model, **overrides):
    """A ReferenceMLP with ``model``'s configuration and current parameters."""
    def copies(arrays):
        return [None if a is None else a.copy() for a in arrays]

    config = dict(lr=model.base_lr, l2=model.l2, hidden_activation=model.hidden_activation,
                  dtype=model.dtype, loss=model.loss_name, l1=model.l1,
                  optimizer=model.optimizer, clip_norm=model.clip_norm,
                  clip_value=model.clip_value, dropout=model.dropout,
                  batch_norm=model.batch_norm, label_smoothing=model.label_smoothing,
                  huber_delta=model.huber_delta, W=copies(model.W), b=copies(model.b),
                  gamma=copies(model.gamma), beta=copies(model.beta))
    config.update(overrides)
    ref = ReferenceMLP(model.sizes, **config)
    for k, (mean, var) in enumerate(zip(model.running_mean, model.running_var)):
        if mean is not None:
            ref.running_mean[k][...] = mean
            ref.running_var[k][...] = var
    return ref


def orders_from(seed, n, epochs=EPOCHS):
    """The batch orders ``train(..., shuffle_seed=seed)`` documents: one permutation per epoch."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def reference_targets(model, y):
    """The target matrix the reference trains on: one-hot rows in ``classes_`` order for
    categorical cross-entropy, else ``y`` as floats."""
    y = np.asarray(y)
    if model.loss_name == "categorical_crossentropy":
        return (y[:, None] == model.classes_[None, :]).astype(np.float64)
    return y.astype(np.float64)


def dropout_seed_of(task, seed=1, **kwargs):
    """The dropout seed ``make_model(task, seed, **kwargs)`` draws in its first ``train``: the
    first draw of a twin's generator after the initial weights."""
    twin, _ = make_model(task, seed, **kwargs)
    return int(twin._rng.integers(2**63))


def train_both(model, y, *, ref_overrides=None, ref_weights=None, rates=None, **train_kw):
    """Train ``model`` (shuffle_seed SHUFFLE_SEED) and a reference built from its initial state;
    return the reference. The reference gets ``ref_weights`` as its sample weights."""
    ref = reference_of(model, **(ref_overrides or {}))
    initial = model.params.copy()
    model.train(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=False,
                shuffle_seed=SHUFFLE_SEED, **train_kw)
    ref.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
              orders=orders_from(SHUFFLE_SEED, N), rates=rates, sample_weight=ref_weights)
    # Guard against a vacuous pass: training moved the weights far beyond the tolerance.
    assert np.abs(model.params - initial).max() > 1e-3
    return ref


def max_difference(model, ref):
    """The largest difference between the model's and the reference's parameters."""
    return float(np.abs(model.params - ref.flat()).max())


def assert_parity(model, ref, y, sample_weight=None):
    """Same parameters, running statistics, outputs and objective, within TOLERANCES."""
    tol = TOLERANCES[model.dtype.type]
    rtol, atol = tol["params"]
    pieces = [("W", model.W, ref.W), ("b", model.b, ref.b), ("gamma", model.gamma, ref.gamma),
              ("beta", model.beta, ref.beta), ("running_mean", model.running_mean,
                                               ref.running_mean),
              ("running_var", model.running_var, ref.running_var)]
    for name, ours, theirs in pieces:
        for k, (a, b) in enumerate(zip(ours, theirs)):
            assert (a is None) == (b is None), f"{name}[{k}]"
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{name}[{k}]")
    rtol, atol = tol["forward"]
    np.testing.assert_allclose(model.forward(X), ref.forward(X), rtol=rtol, atol=atol)
    w = None if sample_weight is None else sample_weight / sample_weight.mean()
    assert model.loss(X, y, sample_weight=sample_weight) == pytest.approx(
        ref.loss(X, reference_targets(model, y), w), rel=tol["loss"])


# --------------------------------------------------------------------------------------------
# Optimizers and tasks
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_parity_every_optimizer_and_task(optimizer, task):
    model, y = make_model(task, optimizer=optimizer)
    ref = train_both(model, y)
    if task == "multiclass-strings":
        assert model.classes_.tolist() == ["cat", "dog", "emu"]
    assert_parity(model, ref, y)


@pytest.mark.parametrize("optimizer", [
    optimizers.Momentum(momentum=0.5), optimizers.Nesterov(momentum=0.7),
    optimizers.AdaGrad(eps=1e-3), optimizers.RMSProp(rho=0.7, eps=1e-4),
    optimizers.Adam(beta1=0.5, beta2=0.9, eps=1e-4),
    optimizers.AdamW(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.5),
], ids=repr)
def test_parity_optimizer_hyperparameters(optimizer):
    """Non-default hyperparameters reach the kernel in the order it reads them."""
    model, y = make_model("multiclass", optimizer=optimizer)
    ref = train_both(model, y)
    assert_parity(model, ref, y)
    default, _ = make_model("multiclass", optimizer=optimizer.name)
    default_ref = train_both(default, y)
    assert max_difference(model, default_ref) > 1e-4


# --------------------------------------------------------------------------------------------
# Regularization: dropout, penalties, clipping
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task, dropout, optimizer", [
    ("binary", 0.3, "sgd"),
    ("multiclass-strings", [0.5, 0.2], "momentum"),
    ("multi-output", [0.0, 0.4], "adam"),
])
def test_parity_dropout(task, dropout, optimizer):
    seed = dropout_seed_of(task, dropout=dropout, optimizer=optimizer)
    model, y = make_model(task, dropout=dropout, optimizer=optimizer)
    other_masks = reference_of(model, dropout_seed=seed ^ 1)
    ref = train_both(model, y, ref_overrides={"dropout_seed": seed})
    assert_parity(model, ref, y)
    # The masks mattered: a reference with other masks ends elsewhere.
    other_masks.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                      orders=orders_from(SHUFFLE_SEED, N))
    assert max_difference(model, other_masks) > 1e-4


def test_parity_dropout_seed_is_drawn_after_the_validation_split():
    """With early stopping the model first holds out a validation split, then draws the dropout
    seed, from the same generator; the best epoch's weights are restored at the end."""
    # lr=2: a noisy validation loss, whose best epoch is not the last.
    kwargs = dict(lr=2.0, dropout=0.3, early_stopping=True, validation_fraction=0.2, patience=100)
    model, y = make_model("binary", **kwargs)
    twin, _ = make_model("binary", **kwargs)
    Y, rows, _ = twin._encode_targets(y, N)
    rows = twin._class_rows(Y, rows)          # stratified by class, as train does
    X_train, Y_train, _, _, X_val, Y_val, _ = twin._split_validation(X, Y, None, rows)
    seed = int(twin._rng.integers(2**63))
    n_train = len(X_train)
    assert 0 < len(X_val) < N
    ref = reference_of(model, dropout_seed=seed)
    model.train(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=False, shuffle_seed=SHUFFLE_SEED)
    val_losses, best, best_state = [], np.inf, None
    for order in orders_from(SHUFFLE_SEED, n_train):
        ref.train(X_train, Y_train, epochs=1, batch_size=BATCH, orders=[order])
        val_losses.append(ref.loss(X_val, Y_val))
        if val_losses[-1] < best:
            best, best_state = val_losses[-1], ref.flat()
    np.testing.assert_allclose(model.history["val_loss"], val_losses, rtol=1e-12)
    assert int(np.argmin(val_losses)) < EPOCHS - 1, "restoring the best epoch was not exercised"
    np.testing.assert_allclose(model.params, best_state, rtol=0,
                               atol=TOLERANCES[np.float64]["params"][1])


@pytest.mark.parametrize("task, optimizer", [("binary", "sgd"), ("multiclass", "adam"),
                                             ("huber", "adamw"), ("multilabel", "nesterov")])
def test_parity_l1_and_l2(task, optimizer):
    model, y = make_model(task, l1=0.01, l2=0.05, optimizer=optimizer)
    unpenalized = reference_of(model, l1=0.0, l2=0.0)
    ref = train_both(model, y)
    assert_parity(model, ref, y)
    unpenalized.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                      orders=orders_from(SHUFFLE_SEED, N))
    assert max_difference(model, unpenalized) > 1e-4


@pytest.mark.parametrize("clip", [{"clip_norm": 0.3}, {"clip_value": 0.02},
                                  {"clip_norm": 0.3, "clip_value": 0.02}], ids=str)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_parity_clipping(clip, optimizer):
    model, y = make_model("multiclass", optimizer=optimizer, lr=0.3, **clip)
    unclipped = reference_of(model, clip_norm=None, clip_value=None)
    ref = train_both(model, y)
    assert_parity(model, ref, y)
    unclipped.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                    orders=orders_from(SHUFFLE_SEED, N))
    assert max_difference(model, unclipped) > 1e-4


# --------------------------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_parity_batch_norm_every_optimizer(optimizer):
    model, y = make_model("binary", batch_norm=True, optimizer=optimizer)
    ref = train_both(model, y)
    assert_parity(model, ref, y)


@pytest.mark.parametrize("task, batch_norm, dropout, optimizer", [
    ("multiclass-strings", True, 0.0, "momentum"),
    ("multilabel", [True, False], 0.0, "sgd"),
    ("huber", [False, True], 0.0, "nesterov"),
    ("multi-output", True, 0.0, "sgd"),
    ("binary", True, 0.3, "sgd"),
    ("multiclass", [True, False], [0.2, 0.4], "momentum"),
])
def test_parity_batch_norm(task, batch_norm, dropout, optimizer):
    kwargs = dict(batch_norm=batch_norm, dropout=dropout, optimizer=optimizer)
    seed = dropout_seed_of(task, **kwargs) if np.any(dropout) else 0
    model, y = make_model(task, **kwargs)
    ref = train_both(model, y, ref_overrides={"dropout_seed": seed})
    assert_parity(model, ref, y)
    # The running statistics moved away from their initial (0, 1).
    assert any(np.abs(m).max() > 1e-2 for m in model.running_mean if m is not None)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

SAMPLE_WEIGHT = np.random.default_rng(5).uniform(0.0, 3.0, size=N)
SAMPLE_WEIGHT[:3] = 0.0


@pytest.mark.parametrize("task, optimizer", [("binary", "sgd"), ("multiclass-strings", "adam"),
                                             ("huber", "momentum"), ("multi-output", "rmsprop")])
def test_parity_sample_weight(task, optimizer):
    model, y = make_model(task, optimizer=optimizer)
    unweighted = reference_of(model)
    # The model normalizes the weights to mean 1 over the training set.
    ref = train_both(model, y, sample_weight=SAMPLE_WEIGHT,
                     ref_weights=SAMPLE_WEIGHT / SAMPLE_WEIGHT.mean())
    assert_parity(model, ref, y, sample_weight=SAMPLE_WEIGHT)
    unweighted.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                     orders=orders_from(SHUFFLE_SEED, N))
    assert max_difference(model, unweighted) > 1e-4


def _class_weights(y, class_weight, sample_weight=None):
    """What class_weight means, computed independently: per-sample weights of mean 1."""
    classes, index, counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_weight == "balanced":
        per_class = len(y) / (len(classes) * counts)
    else:
        per_class = np.array([class_weight.get(c, 1.0) for c in classes.tolist()])
    w = per_class[index] * (1.0 if sample_weight is None else sample_weight)
    return w / w.mean()


@pytest.mark.parametrize("task, class_weight, sample_weight", [
    ("binary", {0: 1.0, 1: 3.0}, None),
    ("binary", "balanced", None),
    ("multiclass-strings", {"cat": 2.5, "emu": 0.5}, None),
    ("multiclass-strings", "balanced", SAMPLE_WEIGHT),
    ("multiclass", {0: 0.2, 2: 4.0}, SAMPLE_WEIGHT),
], ids=["binary-dict", "binary-balanced", "strings-dict", "strings-balanced-with-sample-weight",
        "multiclass-dict-with-sample-weight"])
def test_parity_class_weight(task, class_weight, sample_weight):
    model, y = make_model(task, optimizer="momentum")
    unweighted = reference_of(model)
    w = _class_weights(y, class_weight, sample_weight)
    ref = train_both(model, y, class_weight=class_weight, sample_weight=sample_weight,
                     ref_weights=w)
    assert_parity(model, ref, y)
    unweighted.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                     orders=orders_from(SHUFFLE_SEED, N))
    assert max_difference(model, unweighted) > 1e-4


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [
    schedules.Cosine(EPOCHS), schedules.Cosine(EPOCHS, min_lr=0.01, warmup_epochs=3),
    schedules.ExponentialDecay(0.8), schedules.StepDecay(3, gamma=0.5),
    schedules.InverseScaling(power_t=0.7),
], ids=repr)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_parity_schedule(schedule, optimizer):
    model, y = make_model("multiclass", schedule=schedule, optimizer=optimizer)
    rates = schedule.rates(LR, EPOCHS)
    assert np.ptp(rates) > 0.01 * LR
    ref = train_both(model, y, rates=rates)
    np.testing.assert_array_equal(model.history["lr"], rates)
    assert_parity(model, ref, y)


def test_parity_adaptive_schedule_one_epoch_per_kernel_call():
    """An adaptive schedule makes the model run one epoch per kernel call; the rates it chose
    (history["lr"]) reproduce the run."""
    schedule = schedules.ReduceOnPlateau(factor=0.5, patience=1, min_delta=10.0)
    model, y = make_model("huber", schedule=schedule, optimizer="nesterov")
    ref = reference_of(model)
    model.train(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=False, shuffle_seed=SHUFFLE_SEED)
    rates = model.history["lr"]
    assert len(set(rates)) > 2
    ref.train(X, y, epochs=EPOCHS, batch_size=BATCH, orders=orders_from(SHUFFLE_SEED, N),
              rates=rates)
    assert_parity(model, ref, y)


@pytest.mark.parametrize("kwargs", [dict(optimizer="adam", dropout=0.2, l2=0.01),
                                    dict(optimizer="momentum", batch_norm=True)], ids=str)
def test_parity_across_train_calls(kwargs):
    """Optimizer state, the step counter (Adam's bias correction, the dropout masks' counter)
    and running statistics carry over from one train call to the next; each call draws a new
    dropout seed."""
    model, y = make_model("multiclass", **kwargs)
    twin, _ = make_model("multiclass", **kwargs)
    ref = reference_of(model)
    for call in range(2):
        ref.dropout_seed = int(twin._rng.integers(2**63))
        model.train(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=False,
                    shuffle_seed=SHUFFLE_SEED + call)
        ref.train(X, reference_targets(model, y), epochs=EPOCHS, batch_size=BATCH,
                  orders=orders_from(SHUFFLE_SEED + call, N))
    assert ref.step == 2 * EPOCHS * 4
    assert_parity(model, ref, y)


# --------------------------------------------------------------------------------------------
# float32
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_parity_float32(optimizer, task):
    model, y = make_model(task, optimizer=optimizer, dtype=np.float32, l2=0.01)
    ref = train_both(model, y)
    assert model.params.dtype == np.float32 and ref.W[0].dtype == np.float32
    assert_parity(model, ref, y)


@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop"])
def test_parity_float32_batch_norm_and_dropout(optimizer):
    kwargs = dict(batch_norm=True, dropout=0.2, optimizer=optimizer, dtype=np.float32)
    seed = dropout_seed_of("multiclass", **kwargs)
    model, y = make_model("multiclass", **kwargs)
    ref = train_both(model, y, ref_overrides={"dropout_seed": seed})
    assert_parity(model, ref, y)


# --------------------------------------------------------------------------------------------
# A first layer on BLAS
# --------------------------------------------------------------------------------------------

def test_parity_first_layer_on_blas_with_batch_norm_dropout_penalties_and_weights():
    """Input wide enough that the first layer's products go to BLAS (40 x 64 is above the
    switch-over), which reads the batch sample-major (the copied rows in training, X's own
    rows in forward and loss), under batch normalization, dropout, Adam with L1 and L2 and
    sample weights, against the reference."""
    rng = np.random.default_rng(7)
    X_wide = rng.normal(size=(N, 40))
    labels = np.argmax(X_wide[:, :3], axis=1)
    kwargs = dict(batch_norm=[True, False], dropout=[0.2, 0.0], optimizer="adam", l1=1e-3,
                  l2=1e-3)
    model = MLP([40, 64, 8, 3], lr=LR, seed=1, **kwargs)
    assert model._network(BATCH).blas.tolist() == [1, 1, 0]
    seed = int(MLP([40, 64, 8, 3], lr=LR, seed=1, **kwargs)._rng.integers(2**63))
    ref = reference_of(model, dropout_seed=seed)
    initial = model.params.copy()
    model.train(X_wide, labels, epochs=EPOCHS, batch_size=BATCH, verbose=False,
                shuffle_seed=SHUFFLE_SEED, sample_weight=SAMPLE_WEIGHT)
    ref.train(X_wide, reference_targets(model, labels), epochs=EPOCHS, batch_size=BATCH,
              orders=orders_from(SHUFFLE_SEED, N),
              sample_weight=SAMPLE_WEIGHT / SAMPLE_WEIGHT.mean())
    assert np.abs(model.params - initial).max() > 1e-3
    np.testing.assert_allclose(model.params, ref.flat(), rtol=0, atol=1e-10)
    for ours, theirs in zip(model.running_var + model.running_mean,
                            ref.running_var + ref.running_mean):
        if ours is not None:
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.forward(X_wide), ref.forward(X_wide), rtol=1e-12,
                               atol=1e-14)
