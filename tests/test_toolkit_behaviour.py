"""What the toolkit does, end to end through ``fastmlp.MLP``.

Each test checks one documented behaviour against numbers worked out by hand or against an
independent computation: the update rules on a one-sample problem, dropout's masks and its
absence at prediction, early stopping's stop epoch and restored weights, every schedule's
rates, class and sample weights, the callback protocol, the tasks' label handling, and the
errors (with the model left untouched) for invalid settings.
"""
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.callbacks import Callback
from fastmlp.optimizers import Momentum
from fastmlp.schedules import Cosine, InverseScaling, ReduceOnPlateau, StepDecay


def record_params(store):
    """A callback appending a copy of the flat parameters after every epoch to ``store``."""
    def callback(model, epoch, logs):
        store.append(model.params.copy())
    return callback


def model_state(model):
    """Everything a rejected call must leave as it was."""
    return (model.params.copy(), model.bn_state.copy(), model._opt_state.copy(),
            model._step.copy(), model.lr, model.base_lr,
            None if model.classes_ is None else model.classes_.copy(),
            {k: list(v) for k, v in model.history.items()},
            model._rng.bit_generator.state)


def assert_same_state(model, state):
    params, bn_state, opt_state, step, lr, base_lr, classes, history, rng_state = state
    np.testing.assert_array_equal(model.params, params)
    np.testing.assert_array_equal(model.bn_state, bn_state)
    np.testing.assert_array_equal(model._opt_state, opt_state)
    np.testing.assert_array_equal(model._step, step)
    assert (model.lr, model.base_lr) == (lr, base_lr)
    if classes is None:
        assert model.classes_ is None
    else:
        np.testing.assert_array_equal(model.classes_, classes)
    assert model.history == history
    assert model._rng.bit_generator.state == rng_state


# --------------------------------------------------------------------------------------------
# Update rules, end to end: MLP([2, 1]) with squared error on one sample, two steps
# --------------------------------------------------------------------------------------------
#
# x = [1, 2], y = 1, W = [0.5, -0.25], b = 0, lr = 0.1, loss 0.5 * (z - y)**2 so that
# dJ/dW = x * r and dJ/db = r with r = z - y. One sample and batch 1: one update per epoch.
# Step 1 for every rule: z = 0.5 - 0.5 + 0 = 0, r = -1, g = [-1, -2 | -1].

X_ONE = np.array([[1.0, 2.0]])
Y_ONE = np.array([1.0])

HAND_COMPUTED_STEPS = {
    # theta -= lr * g
    #   step 1: W = [0.5 + 0.1, -0.25 + 0.2] = [0.6, -0.05], b = 0.1
    #   step 2: z = 0.6 - 0.1 + 0.1 = 0.6, r = -0.4, g = [-0.4, -0.8 | -0.4]
    #           W = [0.6 + 0.04, -0.05 + 0.08] = [0.64, 0.03], b = 0.1 + 0.04 = 0.14
    "sgd": ([0.6, -0.05, 0.1], [0.64, 0.03, 0.14], [0.5, 0.08]),
    # v = 0.9 v - lr g; theta += v
    #   step 1: v = [0.1, 0.2 | 0.1]; W = [0.6, -0.05], b = 0.1
    #   step 2: r = -0.4 as for sgd; v = 0.9 * [0.1, 0.2 | 0.1] + [0.04, 0.08 | 0.04]
    #           = [0.13, 0.26 | 0.13]; W = [0.73, 0.21], b = 0.23
    "momentum": ([0.6, -0.05, 0.1], [0.73, 0.21, 0.23], [0.5, 0.08]),
    # v = 0.9 v - lr g; theta += 0.9 v - lr g
    #   step 1: v = [0.1, 0.2 | 0.1]; theta += [0.09 + 0.1, 0.18 + 0.2 | 0.09 + 0.1]
    #           W = [0.69, 0.13], b = 0.19
    #   step 2: z = 0.69 + 0.26 + 0.19 = 1.14, r = 0.14, g = [0.14, 0.28 | 0.14]
    #           v = [0.09 - 0.014, 0.18 - 0.028 | 0.09 - 0.014] = [0.076, 0.152 | 0.076]
    #           theta += [0.0684 - 0.014, 0.1368 - 0.028 | 0.0684 - 0.014]
    #           W = [0.7444, 0.2388], b = 0.2444
    "nesterov": ([0.69, 0.13, 0.19], [0.7444, 0.2388, 0.2444], [0.5, 0.5 * 0.14 ** 2]),
    # beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    #   step 1: m_hat = g, v_hat = g**2, theta -= 0.1 * g / (|g| + 1e-8)
    #           W = [0.5 + 0.1 / (1 + 1e-8), -0.25 + 0.2 / (2 + 1e-8)], b = 0.1 / (1 + 1e-8)
    #             = [0.599999999, -0.1500000005], b = 0.099999999
    #   step 2: z = 0.599999999 - 0.300000001 + 0.099999999 = 0.399999997, r = -0.600000003
    #           every coordinate has g2 = c * r, g1 = c * (-1) (c = 1, 2, 1), so the step
    #           0.1 * m_hat / sqrt(v_hat) is the same for all three:
    #           m = 0.9 * (-0.1) + 0.1 * (-0.6) = -0.15, m_hat = -0.15 / (1 - 0.81)
    #           v = 0.999 * 0.001 + 0.001 * 0.36 = 0.001359, v_hat = 0.001359 / 0.001999
    #           step = 0.1 * (0.15 / 0.19) / sqrt(0.001359 / 0.001999) = 0.0957490165...
    #           (exact values below from 40-digit decimal arithmetic, eps included)
    "adam": ([0.59999999900000001, -0.15000000049999999750, 0.09999999900000001],
             [0.69574901551706672, -0.05425098340230125, 0.19574901551706672],
             [0.5, 0.5 * 0.60000000299999997500 ** 2]),
}


def one_sample_model(optimizer):
    model = MLP([2, 1], lr=0.1, seed=0, loss="squared_error", optimizer=optimizer)
    model.W[0] = np.array([[0.5], [-0.25]])
    model.b[0] = np.array([0.0])
    return model


@pytest.mark.parametrize("optimizer", sorted(HAND_COMPUTED_STEPS))
def test_update_rule_end_to_end_matches_hand_computed_steps(optimizer):
    step1, step2, losses = HAND_COMPUTED_STEPS[optimizer]
    model = one_sample_model(optimizer)
    after = []
    model.train(X_ONE, Y_ONE, epochs=2, batch_size=1, shuffle=False, verbose=False,
                callbacks=[record_params(after)])
    # params is laid out [W0 (2x1, row-major), b0]
    np.testing.assert_allclose(after[0], step1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(after[1], step2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(model.history["loss"], losses, rtol=1e-12)
    # Both epochs in one kernel call (no callback) give the same result.
    model = one_sample_model(optimizer)
    model.train(X_ONE, Y_ONE, epochs=2, batch_size=1, shuffle=False, verbose=False)
    np.testing.assert_allclose(model.params, step2, rtol=1e-13, atol=1e-15)


def test_momentum_parameter_is_used():
    # momentum 0.5 instead of 0.9: step 2 v = 0.5 * [0.1, 0.2 | 0.1] + [0.04, 0.08 | 0.04]
    # = [0.09, 0.18 | 0.09], W = [0.69, 0.13], b = 0.19
    model = one_sample_model(Momentum(momentum=0.5))
    model.train(X_ONE, Y_ONE, epochs=2, batch_size=1, shuffle=False, verbose=False)
    np.testing.assert_allclose(model.params, [0.69, 0.13, 0.19], rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------

def test_dropout_drops_the_expected_fraction_and_scales_the_kept_units():
    # MLP([1, H, 1]) with identity hidden units, W0 = 1, b0 = 0, W1 = c: every hidden unit
    # outputs a = 1 and, dropped or kept, leaves a trace in one SGD step on one sample:
    # dJ/dW1_h = s_h * r and dJ/dW0_h = r * c * s_h with s_h = 0 (dropped) or 1 / (1 - p).
    H, p, c, lr = 4000, 0.3, 1e-3, 0.01
    model = MLP([1, H, 1], lr=lr, seed=0, loss="squared_error", hidden_activation="identity",
                dropout=p)
    model.W[0] = np.ones((1, H))
    model.W[1] = np.full((H, 1), c)
    snaps = []
    model.train([[1.0]], [0.0], epochs=2, batch_size=1, shuffle=False, verbose=False,
                callbacks=[record_params(snaps)])
    W1_after_1 = snaps[0][2 * H:3 * H]               # layout [W0 (H), b0 (H), W1 (H), b1]
    kept = W1_after_1 != c
    fraction = kept.mean()
    assert abs(fraction - (1 - p)) < 4 * np.sqrt(p * (1 - p) / H), fraction
    # Exact step: z = sum_h s_h * c, r = z - 0.
    s = np.where(kept, 1 / (1 - p), 0.0)
    r = c * s.sum()
    np.testing.assert_allclose(W1_after_1, c - lr * s * r, rtol=1e-13)
    np.testing.assert_allclose(snaps[0][:H], 1 - lr * r * c * s, rtol=1e-13)      # W0
    np.testing.assert_allclose(snaps[0][H:2 * H], -lr * r * c * s, rtol=1e-13)    # b0
    np.testing.assert_allclose(snaps[0][-1], -lr * r, rtol=1e-13)                 # b1
    # The second step draws a new mask: the units it dropped kept their W1 exactly.
    kept_2 = snaps[1][2 * H:3 * H] != W1_after_1
    assert abs(kept_2.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / H)
    assert 0.4 < (kept == kept_2).mean() < 0.75        # independent masks agree on ~58%


@pytest.fixture(scope="module")
def four_class_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] + 0.5 * X[:, 2] > 0)
    return X, y


def test_dropout_is_off_at_prediction(four_class_data):
    X, y = four_class_data
    model = MLP([4, 32, 32, 4], lr=0.05, seed=0, dropout=[0.3, 0.5], optimizer="adam")
    model.train(X, y, epochs=10, batch_size=16, verbose=False)
    out = model.forward(X)
    for _ in range(3):
        np.testing.assert_array_equal(model.forward(X), out)
    plain = MLP([4, 32, 32, 4], seed=1)
    plain.params[:] = model.params
    plain.classes_ = model.classes_
    np.testing.assert_array_equal(plain.forward(X), out)
    np.testing.assert_array_equal(plain.predict(X), model.predict(X))
    assert plain.loss(X, y) == model.loss(X, y)
    # ... while training used masks: the same run without dropout learns other weights.
    no_dropout = MLP([4, 32, 32, 4], lr=0.05, seed=0, optimizer="adam")
    no_dropout.train(X, y, epochs=10, batch_size=16, verbose=False)
    assert np.abs(no_dropout.params - model.params).max() > 1e-2


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_training_mode_outputs_differ_from_prediction_mode(four_class_data, rate):
    # One full-batch epoch logs the training-mode loss at the initial weights (l2 = 0): equal
    # to the prediction-mode objective without dropout, different from it with dropout.
    X, y = four_class_data
    model = MLP([4, 32, 4], lr=0.05, seed=0, dropout=rate)
    initial = model.loss(X, y)
    model.train(X, y, epochs=1, verbose=False)
    if rate == 0:
        assert model.history["loss"][0] == pytest.approx(initial, rel=1e-12)
    else:
        assert abs(model.history["loss"][0] - initial) > 1e-3


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def overfitting_data():
    """12 noisy training samples and 100 validation samples of y = x0 + noise: a wide network
    with a large rate fits the noise, and the validation loss rises after a few epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 6))
    y = X[:, 0] + rng.normal(size=12)
    X_val = rng.normal(size=(100, 6))
    y_val = X_val[:, 0] + rng.normal(size=100)
    return X, y, X_val, y_val


def train_overfitting(data, epochs=300, **kwargs):
    X, y, X_val, y_val = data
    model = MLP([6, 32, 32, 1], lr=0.01, seed=0, loss="squared_error", optimizer="adam",
                early_stopping=True, **kwargs)
    snaps = []
    model.train(X, y, epochs=epochs, batch_size=4, verbose=False,
                validation_data=(X_val, y_val), callbacks=[record_params(snaps)])
    return model, snaps


def expected_stop(values, patience, min_delta):
    """The documented rule, epoch by epoch: (stop epoch or None, best epoch), from 1."""
    best, best_epoch, wait = np.inf, 0, 0
    for epoch, value in enumerate(values, start=1):
        if value < best - min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


@pytest.mark.parametrize("patience, min_delta", [(5, 0.0), (20, 0.0), (5, 0.03)])
def test_early_stopping_stops_and_restores_the_best_weights(overfitting_data, patience,
                                                            min_delta):
    model, snaps = train_overfitting(overfitting_data, patience=patience, min_delta=min_delta)
    val = model.history["val_loss"]
    stop, best = expected_stop(val, patience, min_delta)
    assert stop is not None and stop == len(val) < 300
    assert len(snaps) == len(val) == len(model.history["loss"])
    assert min(val) < val[-1]                               # it did get worse
    np.testing.assert_array_equal(model.params, snaps[best - 1])
    assert model.loss(overfitting_data[2], overfitting_data[3]) == pytest.approx(val[best - 1],
                                                                                 rel=1e-12)


def test_early_stopping_patience_and_min_delta_change_the_stop(overfitting_data):
    # The same trajectory (same seed) cut at different epochs: a longer patience runs longer;
    # min_delta = 0.03 does not count epoch 9's improvement of 0.015 over epoch 8, so it keeps
    # epoch 8's weights and stops one epoch earlier.
    runs = {}
    for patience, min_delta in [(5, 0.0), (20, 0.0), (5, 0.03)]:
        model, snaps = train_overfitting(overfitting_data, patience=patience, min_delta=min_delta)
        runs[patience, min_delta] = (len(model.history["val_loss"]), model.params, snaps)
    (stop_5, params_5, snaps_5), (stop_20, _, _), (stop_delta, params_delta, _) = runs.values()
    assert stop_20 >= stop_5 + 15
    assert stop_delta == stop_5 - 1
    np.testing.assert_array_equal(params_delta, snaps_5[7])
    assert np.abs(params_5 - params_delta).max() > 1e-3


def test_without_early_stopping_all_epochs_run(overfitting_data):
    X, y, X_val, y_val = overfitting_data
    model = MLP([6, 64, 64, 1], lr=0.01, seed=0, loss="squared_error", optimizer="adam")
    model.train(X, y, epochs=60, batch_size=4, verbose=False, validation_data=(X_val, y_val))
    assert len(model.history["val_loss"]) == 60


def test_validation_fraction_holds_out_a_stratified_split():
    # 90 samples of class 0, 10 of class 1 and a model that always predicts 0 (bias -20, a
    # negligible rate): the validation accuracy is the share of class 0 in the held-out set,
    # which a stratified 20% split fixes at 18 / 20 for every seed.
    X = np.linspace(-1, 1, 100).reshape(-1, 1)
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    for seed in range(10):
        model = MLP([1, 1], lr=1e-9, seed=seed, early_stopping=True, validation_fraction=0.2,
                    patience=3)
        model.b[0] = [-20.0]
        model.train(X, y, epochs=2, verbose=False)
        assert model.history["val_accuracy"] == [0.9, 0.9]
        assert len(model.history["val_loss"]) == 2


def test_validation_fraction_trains_and_validates(four_class_data):
    X, y = four_class_data
    model = MLP([4, 16, 4], lr=0.05, seed=0, optimizer="adam", early_stopping=True,
                validation_fraction=0.25, patience=5)
    model.train(X, y, epochs=40, batch_size=16, verbose=False)
    h = model.history
    assert len(h["val_loss"]) == len(h["val_accuracy"]) == len(h["loss"]) >= 1
    assert all(np.isfinite(h["val_loss"])) and 0.5 < max(h["val_accuracy"]) <= 1


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------

SCHEDULE_CASES = [
    pytest.param(dict(), [0.1] * 5, id="constant"),
    pytest.param(dict(schedule="constant"), [0.1] * 5, id="constant-by-name"),
    # the lecture: lr * decay ** (e - 1)
    pytest.param(dict(lr_decay=0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625], id="lr_decay"),
    pytest.param(dict(schedule=StepDecay(2, gamma=0.5)), [0.1, 0.1, 0.05, 0.05, 0.025],
                 id="step"),
    # 0.1 / sqrt(e)
    pytest.param(dict(schedule=InverseScaling(0.5)),
                 [0.1, 0.1 / 2 ** 0.5, 0.1 / 3 ** 0.5, 0.05, 0.1 / 5 ** 0.5], id="invscaling"),
    # warmup 0.1 * e / 2 for e <= 2; then T = 6 - 2 - 1 = 3, t = e - 3:
    # 0.01 + 0.045 * (1 + cos(pi t / 3)) = 0.1, 0.0775, 0.0325, 0.01, then 0.01
    pytest.param(dict(schedule=Cosine(6, min_lr=0.01, warmup_epochs=2)),
                 [0.05, 0.1, 0.1, 0.0775, 0.0325, 0.01, 0.01], id="cosine-warmup"),
    pytest.param(dict(schedule=lambda epoch: 0.3 / epoch), [0.3, 0.15, 0.1, 0.075], id="callable"),
]


@pytest.mark.parametrize("kwargs, rates", SCHEDULE_CASES)
@pytest.mark.parametrize("per_epoch", [False, True])
def test_schedule_rates_in_history(small_data, kwargs, rates, per_epoch):
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.1, seed=0, **kwargs)
    callbacks = [lambda m, e, logs: False] if per_epoch else None
    model.train(X, y, epochs=len(rates), verbose=False, callbacks=callbacks)
    np.testing.assert_allclose(model.history["lr"], rates, rtol=1e-14)
    assert model.lr == pytest.approx(rates[-1], rel=1e-14)


def test_schedule_rates_are_the_ones_applied(small_data):
    # Full batch, SGD, fixed order: one run with a schedule equals epoch-by-epoch runs at
    # those constant rates.
    X, y = small_data
    rates = [0.3, 0.1, 0.02]
    scheduled = MLP([3, 4, 1], lr=0.1, seed=0, schedule=lambda e: rates[e - 1])
    scheduled.train(X, y, epochs=3, shuffle=False, verbose=False)
    stepwise = MLP([3, 4, 1], lr=0.1, seed=0)
    for rate in rates:
        stepwise.base_lr = rate
        stepwise.train(X, y, epochs=1, shuffle=False, verbose=False)
    np.testing.assert_allclose(scheduled.params, stepwise.params, rtol=0, atol=1e-15)
    constant = MLP([3, 4, 1], lr=0.1, seed=0).fit(X, y, epochs=3, shuffle=False, verbose=False)
    assert np.abs(constant.params - scheduled.params).max() > 1e-3


def test_lr_decay_set_after_construction_is_used(small_data):
    # The lecture's SimpleMLP reads self.lr_decay in train; MLP honours l2 and dropout set
    # this way, and train checks lr_decay's value, so it must also use it.
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.1, seed=0)
    model.lr_decay = 0.5
    model.train(X, y, epochs=3, verbose=False)
    assert model.history["lr"] == [0.1, 0.05, 0.025]


def plateau_problem():
    """Regression where the training loss falls every epoch (z = 2b -> 10 from 0, W = b) while
    the validation loss, on x = 0 with target 0, rises with b every epoch."""
    model = MLP([1, 1], lr=0.05, seed=0, loss="squared_error",
                schedule=ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.0))
    model.W[0] = [[0.0]]
    X = np.ones((4, 1))
    y = np.full(4, 10.0)
    return model, X, y, (np.zeros((1, 1)), np.zeros(1))


def test_plateau_follows_the_validation_loss():
    model, X, y, validation = plateau_problem()
    model.train(X, y, epochs=8, verbose=False, shuffle=False, validation_data=validation)
    assert np.all(np.diff(model.history["val_loss"]) > 0)
    assert np.all(np.diff(model.history["loss"]) < 0)
    # improves at epoch 1 only; epochs 2, 3 do not -> epoch 4 at half, 4, 5 -> 6 at a quarter
    np.testing.assert_allclose(model.history["lr"],
                               [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625])
    assert model.lr == 0.00625


def test_plateau_follows_the_training_loss_without_validation():
    model, X, y, _ = plateau_problem()
    model.train(X, y, epochs=8, verbose=False, shuffle=False)
    assert np.all(np.diff(model.history["loss"]) < 0)
    assert model.history["lr"] == [0.05] * 8
    # ... and reduces when the training loss stalls: min_delta larger than any improvement.
    model, X, y, _ = plateau_problem()
    model.schedule = ReduceOnPlateau(factor=0.5, patience=2, min_delta=1e6)
    model.train(X, y, epochs=6, verbose=False, shuffle=False)
    assert model.history["lr"] == [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125]


def test_plateau_starts_again_at_each_train_call():
    model, X, y, validation = plateau_problem()
    model.train(X, y, epochs=5, verbose=False, shuffle=False, validation_data=validation)
    model.train(X, y, epochs=2, verbose=False, shuffle=False, validation_data=validation)
    assert model.history["lr"] == [0.05, 0.05]


# --------------------------------------------------------------------------------------------
# Class and sample weights
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imbalanced():
    """95 / 5 overlapping Gaussian classes (means 1.5 apart in each of 2 dimensions)."""
    rng = np.random.default_rng(0)
    n0, n1 = 1900, 100
    X = np.vstack([rng.normal(size=(n0, 2)), rng.normal(size=(n1, 2)) + 1.5])
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    return X, y


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1, 1: 19}])
def test_class_weight_raises_minority_recall(imbalanced, class_weight):
    X, y = imbalanced
    results = {}
    for name, cw in [("none", None), ("weighted", class_weight)]:
        model = MLP([2, 8, 1], lr=0.01, seed=0, optimizer="adam")
        model.train(X, y, epochs=30, batch_size=64, verbose=False, class_weight=cw)
        pred = model.predict(X)
        results[name] = (pred[y == 1].mean(), pred.sum())
    recall_none, positives_none = results["none"]
    recall_weighted, positives_weighted = results["weighted"]
    assert recall_weighted > recall_none + 0.3, results
    assert recall_weighted > 0.7, results
    assert positives_weighted > 2 * max(positives_none, 1), results


def test_balanced_class_weight_equals_its_sample_weight(imbalanced):
    X, y = imbalanced
    X, y = X[::10], y[::10]
    balanced = MLP([2, 4, 1], lr=0.1, seed=0).fit(X, y, epochs=3, batch_size=16, verbose=False,
                                                  shuffle_seed=1, class_weight="balanced")
    counts = np.bincount(y)
    w = (len(y) / (2 * counts))[y]
    weighted = MLP([2, 4, 1], lr=0.1, seed=0).fit(X, y, epochs=3, batch_size=16, verbose=False,
                                                  shuffle_seed=1, sample_weight=w)
    np.testing.assert_allclose(balanced.params, weighted.params, rtol=0, atol=1e-14)


def test_sample_weight_two_equals_duplicating_samples(four_class_data):
    X, y = four_class_data
    w = np.ones(len(y))
    w[:10] = 2
    X_dup, y_dup = np.vstack([X, X[:10]]), np.r_[y, y[:10]]
    model = MLP([4, 8, 4], lr=0.1, seed=0, l2=0.01)
    model.train(X, y, epochs=2, verbose=False)
    assert model.loss(X, y, sample_weight=w) == pytest.approx(model.loss(X_dup, y_dup), rel=1e-13)
    assert model.loss(X, y, sample_weight=w) != pytest.approx(model.loss(X, y), rel=1e-6)
    loss_w, grad_w = model.loss_and_gradient(X, y, sample_weight=w)
    loss_d, grad_d = model.loss_and_gradient(X_dup, y_dup)
    assert loss_w == pytest.approx(loss_d, rel=1e-13)
    np.testing.assert_allclose(grad_w, grad_d, rtol=1e-11, atol=1e-14)
    # Full-batch training with the weights equals full-batch training on the duplicates.
    a = MLP([4, 8, 4], lr=0.1, seed=0).fit(X, y, epochs=5, verbose=False, sample_weight=w)
    b = MLP([4, 8, 4], lr=0.1, seed=0).fit(X_dup, y_dup, epochs=5, verbose=False)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------

def test_function_returning_true_stops_after_that_epoch(small_data):
    X, y = small_data
    epochs_seen = []

    def stop_at_3(model, epoch, logs):
        epochs_seen.append(epoch)
        return epoch == 3

    model = MLP([3, 4, 1], seed=0)
    model.train(X, y, epochs=10, verbose=False, callbacks=[stop_at_3])
    assert epochs_seen == [1, 2, 3]
    assert len(model.history["loss"]) == len(model.history["lr"]) == 3


class Recorder(Callback):
    def __init__(self, X_val, y_val):
        self.X_val, self.y_val = X_val, y_val
        self.calls = []

    def on_train_begin(self, model):
        self.calls.append(("begin", len(model.history["loss"])))

    def on_epoch_end(self, model, epoch, logs):
        # The logs describe the model as it is now.
        assert logs["val_loss"] == pytest.approx(model.loss(self.X_val, self.y_val), rel=1e-12)
        assert logs["val_accuracy"] == model.score(self.X_val, self.y_val)
        assert logs["loss"] == model.history["loss"][-1]
        assert logs["lr"] == model.history["lr"][-1] == model.lr
        self.calls.append(("epoch", epoch, sorted(logs)))

    def on_train_end(self, model):
        self.calls.append(("end", len(model.history["loss"])))


def test_callback_subclass_gets_every_hook(four_class_data):
    X, y = four_class_data
    recorder = Recorder(X[:30], y[:30])
    model = MLP([4, 8, 4], lr=0.1, seed=0, lr_decay=0.9)
    model.train(X[30:], y[30:], epochs=4, verbose=False, validation_data=(X[:30], y[:30]),
                callbacks=[recorder])
    keys = ["loss", "lr", "val_accuracy", "val_loss"]
    assert recorder.calls == [("begin", 0)] + [("epoch", e, keys) for e in range(1, 5)] + \
        [("end", 4)]


def test_on_train_end_runs_when_a_callback_stops_training(small_data):
    X, y = small_data
    recorder = Recorder(X, y)
    model = MLP([3, 4, 1], seed=0)
    model.train(X, y, epochs=10, verbose=False, validation_data=(X, y),
                callbacks=[recorder, lambda m, e, logs: e == 2])
    assert [c[0] for c in recorder.calls] == ["begin", "epoch", "epoch", "end"]


def test_logs_without_validation_have_loss_and_lr_only(small_data):
    X, y = small_data
    seen = []
    MLP([3, 4, 1], seed=0).train(X, y, epochs=2, verbose=False,
                                 callbacks=[lambda m, e, logs: seen.append(sorted(logs))])
    assert seen == [["loss", "lr"]] * 2


def test_a_non_callable_callback_is_rejected(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    state = model_state(model)
    with pytest.raises(TypeError, match="callback"):
        model.train(X, y, epochs=2, verbose=False, callbacks=["stop"])
    assert_same_state(model, state)


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------

def blobs(n_classes, n=150, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(n_classes, 2))
    labels = rng.integers(n_classes, size=n)
    return centres[labels] + 0.5 * rng.normal(size=(n, 2)), labels


def test_multiclass_string_labels():
    X, k = blobs(3)
    names = np.array(["dog", "cat", "bird"])
    y = names[k]
    model = MLP([2, 16, 3], lr=0.05, seed=0, optimizer="adam")
    model.train(X, y, epochs=30, batch_size=16, verbose=False)
    np.testing.assert_array_equal(model.classes_, ["bird", "cat", "dog"])
    pred = model.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert model.score(X, y) == np.mean(pred == y) > 0.9
    proba = model.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], pred)
    # A second call with a label the model does not know is refused, the model untouched.
    state = model_state(model)
    with pytest.raises(ValueError, match="fish"):
        model.train(X, np.where(k == 0, "fish", y), epochs=1, verbose=False)
    assert_same_state(model, state)
    with pytest.raises(ValueError, match="fish"):
        model.score(X, np.where(k == 0, "fish", y))
    # Known labels, even only some of them, are accepted.
    model.train(X[k > 0], y[k > 0], epochs=1, verbose=False)
    np.testing.assert_array_equal(model.classes_, ["bird", "cat", "dog"])


def test_integer_labels_with_missing_classes_map_to_arange():
    X, k = blobs(4)
    keep = (k == 0) | (k == 2)
    model = MLP([2, 8, 4], lr=0.05, seed=0)
    model.train(X[keep], k[keep], epochs=5, verbose=False)
    np.testing.assert_array_equal(model.classes_, np.arange(4))
    # Label 2 is output 2, not output 1: the objective is the mean of -log p[i, label_i].
    proba = model.predict_proba(X[keep])
    expected = -np.log(proba[np.arange(keep.sum()), k[keep]]).mean()
    assert model.loss(X[keep], k[keep]) == pytest.approx(expected, rel=1e-10)
    assert proba[k[keep] == 2, 2].mean() > proba[k[keep] == 2, 1].mean()
    assert set(model.predict(X)) <= {0, 1, 2, 3}


def test_multilabel_predict_shape():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0]).astype(int)
    model = MLP([3, 16, 3], lr=0.05, seed=0, loss="binary_crossentropy", optimizer="adam")
    model.train(X, Y, epochs=40, batch_size=16, verbose=False)
    pred = model.predict(X)
    assert pred.shape == (100, 3) and set(np.unique(pred)) <= {0, 1}
    proba = model.predict_proba(X)
    assert proba.shape == (100, 3) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(pred, (proba >= 0.5).astype(int))
    assert model.score(X, Y) == np.mean(np.all(pred == Y, axis=1)) > 0.8


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regression_outputs_and_r2(n_outputs):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])])[:, :n_outputs]
    y = Y[:, 0] if n_outputs == 1 else Y
    model = MLP([3, 16, n_outputs], lr=0.01, seed=0, loss="squared_error", optimizer="adam")
    model.train(X, y, epochs=40, batch_size=16, verbose=False)
    pred = model.predict(X)
    assert pred.shape == y.shape
    np.testing.assert_array_equal(pred, model.forward(X))
    P = pred.reshape(200, -1)
    r2 = np.mean(1 - ((Y - P) ** 2).sum(axis=0) / ((Y - Y.mean(axis=0)) ** 2).sum(axis=0))
    assert model.score(X, y) == pytest.approx(r2, rel=1e-12)
    assert r2 > 0.8
    with pytest.raises(ValueError, match="predict_proba"):
        model.predict_proba(X)


def test_binary_score_is_accuracy(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], lr=0.3, seed=0).fit(X, y, epochs=20, verbose=False)
    pred = model.predict(X)
    assert pred.shape == (40,)
    assert model.score(X, y) == np.mean(pred == y)


# --------------------------------------------------------------------------------------------
# Bad parameters
# --------------------------------------------------------------------------------------------

BAD_SETTINGS = [
    pytest.param(dict(hidden_activation="rectifier"), ValueError,
                 "unknown hidden_activation.*'relu'.*'sigmoid'.*'tanh'", id="activation"),
    pytest.param(dict(dropout=1.0), ValueError, r"dropout.*\[0, 1\)", id="dropout-1"),
    pytest.param(dict(dropout=-0.1), ValueError, r"dropout.*\[0, 1\)", id="dropout-neg"),
    pytest.param(dict(dropout=[0.2, 1.5]), ValueError, "dropout", id="dropout-list"),
    pytest.param(dict(l1=-0.1), ValueError, "l1", id="l1-neg"),
    pytest.param(dict(l2=-0.1), ValueError, "l2", id="l2-neg"),
    pytest.param(dict(optimizer="adamax"), ValueError,
                 "unknown optimizer.*'sgd'.*'momentum'.*'adam'", id="optimizer"),
    pytest.param(dict(schedule="linear"), ValueError,
                 "unknown schedule.*'constant'.*'cosine'.*'plateau'", id="schedule"),
    pytest.param(dict(init="orthogonal"), ValueError, "unknown init.*'he_normal'.*'xavier",
                 id="init"),
    pytest.param(dict(loss="hinge"), ValueError,
                 "unknown loss.*'binary_crossentropy'.*'squared_error'.*'huber'", id="loss"),
    pytest.param(dict(loss="categorical_crossentropy", layer_sizes=[2, 4, 1]), ValueError,
                 "one output per class", id="categorical-1-output"),
    pytest.param(dict(label_smoothing=1.0), ValueError, "label_smoothing", id="smoothing-1"),
    pytest.param(dict(label_smoothing=-0.1), ValueError, "label_smoothing",
                 id="smoothing-neg"),
    pytest.param(dict(label_smoothing="0.1"), TypeError, "label_smoothing",
                 id="smoothing-str"),
    pytest.param(dict(huber_delta=0.0), ValueError, "huber_delta", id="huber-0"),
    pytest.param(dict(huber_delta=-1.0), ValueError, "huber_delta", id="huber-neg"),
    pytest.param(dict(batch_norm=1), TypeError, "batch_norm.*True or False", id="bn-1"),
    pytest.param(dict(batch_norm="yes"), TypeError, "batch_norm", id="bn-str"),
    pytest.param(dict(batch_norm=[True, 1]), TypeError, "batch_norm", id="bn-list-int"),
    pytest.param(dict(dropout=[0.1]), ValueError, r"dropout.*one value per hidden layer \(2\)",
                 id="dropout-length"),
    pytest.param(dict(batch_norm=[True, False, True]), ValueError, "batch_norm.*hidden layer",
                 id="bn-length"),
    pytest.param(dict(hidden_activation=["relu"]), ValueError, "hidden_activation.*1.*2",
                 id="activation-length"),
    pytest.param(dict(clip_norm=0.0), ValueError, "clip_norm", id="clip-norm-0"),
    pytest.param(dict(clip_value=-1.0), ValueError, "clip_value", id="clip-value-neg"),
    pytest.param(dict(early_stopping="yes"), TypeError, "early_stopping", id="es-str"),
    pytest.param(dict(validation_fraction=1.0), ValueError, "validation_fraction",
                 id="val-fraction-1"),
    pytest.param(dict(patience=0), ValueError, "patience", id="patience-0"),
    pytest.param(dict(min_delta=-1.0), ValueError, "min_delta", id="min-delta-neg"),
    pytest.param(dict(lr_decay=0.9, schedule="constant"), ValueError, "either lr_decay",
                 id="decay-and-schedule"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_SETTINGS)
def test_bad_settings_are_rejected_with_the_valid_choices(kwargs, error, message):
    kwargs = dict(kwargs)
    sizes = kwargs.pop("layer_sizes", [2, 4, 4, 1])
    with pytest.raises(error, match=message):
        MLP(sizes, **kwargs)


def _string_labels(n):
    return np.array(["a", "b"])[np.arange(n) % 2]


BAD_TARGETS = [
    # (model kwargs, y from (n, labels 0/1), error, message)
    pytest.param(dict(loss="squared_error"), lambda n, y: _string_labels(n), TypeError,
                 "real numbers", id="strings-for-regression"),
    pytest.param(dict(), lambda n, y: np.column_stack([y, y, y]), ValueError,
                 r"1-D.*shape \(40, 3\)", id="3-columns-for-binary"),
    pytest.param(dict(), lambda n, y: _string_labels(n), TypeError, "labels 0 and 1",
                 id="strings-for-binary"),
    pytest.param(dict(), lambda n, y: 2 * y - 1, ValueError, r"labels 0 and 1.*-1",
                 id="minus-one-for-binary"),
    pytest.param(dict(layer_sizes=[3, 4, 2], loss="binary_crossentropy"),
                 lambda n, y: np.column_stack([y, 2 * y]), ValueError, r"0 and 1.*\[2\]",
                 id="multilabel-2"),
    pytest.param(dict(layer_sizes=[3, 4, 3]), lambda n, y: np.arange(n) % 5, ValueError,
                 "5 classes.*3 units", id="5-classes-3-outputs"),
    pytest.param(dict(layer_sizes=[3, 4, 2], loss="squared_error"), lambda n, y: y,
                 ValueError, "1 target columns.*2 outputs", id="1-column-for-2-outputs"),
    pytest.param(dict(), lambda n, y: y.astype(float) * np.nan, ValueError, "(?i)nan",
                 id="nan-labels"),
]


@pytest.mark.parametrize("kwargs, make_y, error, message", BAD_TARGETS)
def test_targets_that_do_not_fit_the_loss_are_rejected(small_data, kwargs, make_y, error,
                                                       message):
    X, y = small_data
    kwargs = dict(kwargs)
    model = MLP(kwargs.pop("layer_sizes", [3, 4, 1]), seed=0, **kwargs)
    state = model_state(model)
    with pytest.raises(error, match=message):
        model.train(X, make_y(len(y), y), epochs=2, verbose=False)
    assert_same_state(model, state)


BAD_TRAIN_OPTIONS = [
    pytest.param(dict(sample_weight=-np.ones(40)), ValueError, "sample_weight", id="sw-neg"),
    pytest.param(dict(sample_weight=np.zeros(40)), ValueError, "sample_weight", id="sw-zero"),
    pytest.param(dict(sample_weight=np.ones(39)), ValueError, "sample_weight", id="sw-length"),
    pytest.param(dict(class_weight={5: 2.0}), ValueError, "unknown classes", id="cw-class"),
    pytest.param(dict(class_weight={1: -1.0}), ValueError, "class weights", id="cw-neg"),
    pytest.param(dict(class_weight="auto"), TypeError, "balanced", id="cw-name"),
    pytest.param(dict(class_weight={0: 0.0, 1: 0.0}), ValueError, "weight 0", id="cw-zeros"),
    pytest.param(dict(validation_data=([[1.0, 2.0, 3.0]],)), TypeError, "pair",
                 id="val-not-pair"),
    pytest.param(dict(validation_data=(np.ones((2, 3)), [0, 2])), ValueError, "0 and 1",
                 id="val-bad-labels"),
    pytest.param(dict(validation_data=(np.ones((2, 2)), [0, 1])), ValueError, "features",
                 id="val-bad-width"),
]


@pytest.mark.parametrize("options, error, message", BAD_TRAIN_OPTIONS)
def test_bad_train_options_leave_a_trained_model_unchanged(small_data, options, error,
                                                           message):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0, optimizer="adam", dropout=0.2)
    model.train(X, y, epochs=3, verbose=False, validation_data=(X, y))
    state = model_state(model)
    with pytest.raises(error, match=message):
        model.train(X, y, epochs=2, verbose=False, **options)
    assert_same_state(model, state)


def test_class_weight_is_refused_for_regression(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0, loss="squared_error")
    state = model_state(model)
    with pytest.raises(ValueError, match="class_weight"):
        model.train(X, y, epochs=1, verbose=False, class_weight="balanced")
    assert_same_state(model, state)


def test_an_impossible_validation_split_leaves_the_model_unchanged():
    # 3 samples per class and validation_fraction 0.1 hold out nobody: refused, and refused
    # before the model changes (its classes, its random generator).
    X, _ = blobs(3, n=9)
    k = np.repeat(np.arange(3), 3)
    model = MLP([2, 4, 3], seed=0, early_stopping=True, validation_fraction=0.1)
    state = model_state(model)
    with pytest.raises(ValueError, match="validation_fraction"):
        model.train(X, k, epochs=2, verbose=False)
    assert_same_state(model, state)
    # Consequence: the classes of the refused call stick, and valid labels are then refused.
    X, k = blobs(3, n=60)
    model.train(X, np.array(["a", "b", "c"])[k], epochs=1, verbose=False)
