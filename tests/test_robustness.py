"""Nothing a user does from Python crashes the process, trains silently into a broken model, or
leaves it half-written (issue 10): read-only structure, checked layout arithmetic, settings
checked where they are used, weights of any scale, divergence of everything training writes,
memory that does not grow with ``epochs``, one lock per model."""
import copy
import pickle
import re
import threading
import tracemalloc

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp import optimizers
from fastmlp._engine import TrainingDiverged
from fastmlp._kernels import _train
from fastmlp.callbacks import Callback


def buffers(model):
    return [model.params.copy(), model.bn_state.copy(), model._opt_state.copy(),
            model._step.copy()]


def assert_unchanged(model, before):
    for old, new in zip(before, buffers(model)):
        np.testing.assert_array_equal(old, new, strict=True)


def data(n=64, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)


# -- structure is read-only ------------------------------------------------------------------

STRUCTURAL_VALUES = {
    "sizes": [2**32, 2**32, 1], "dtype": np.float32, "params": np.zeros(3),
    "bn_state": np.zeros(8), "W": [], "b": [], "gamma": [], "beta": [], "running_mean": [],
    "running_var": [], "hidden_activation": "tanh", "loss_name": "squared_error",
    "batch_norm": [True], "dropout": [0.5], "optimizer": "adam", "init": "he_normal",
    "_opt_state": np.zeros(3), "_step": np.zeros(1, dtype=np.int64),
}


@pytest.mark.parametrize("name", sorted(STRUCTURAL_VALUES))
def test_structural_attributes_cannot_be_assigned_or_deleted(name):
    model = MLP([3, 4, 1], seed=0, batch_norm=True)
    before = buffers(model)
    with pytest.raises(AttributeError, match="build a new MLP"):
        setattr(model, name, STRUCTURAL_VALUES[name])
    with pytest.raises(AttributeError, match="structure"):
        delattr(model, name)
    assert_unchanged(model, before)
    X, y = data()
    model.train(X, y, epochs=1, verbose=False)           # still a working model


@pytest.mark.parametrize("name, index, value", [
    ("sizes", 1, 2**40), ("dropout", 0, 0.5), ("batch_norm", 0, True),
    ("hidden_activation", 0, "tanh")])
def test_structural_lists_cannot_be_changed_in_place(name, index, value):
    model = MLP([3, 4, 4, 1], seed=0, hidden_activation=["relu", "relu"])
    listed = getattr(model, name)
    assert listed == list(listed)                       # still equal to a plain list
    for change in (lambda: listed.__setitem__(index, value), lambda: listed.append(value),
                   lambda: listed.extend([value]), lambda: listed.pop(),
                   lambda: listed.__delitem__(0), lambda: listed.sort()):
        with pytest.raises(TypeError, match="build a new MLP"):
            change()
    assert getattr(model, name) == listed


def test_overflowing_sizes_assigned_to_the_model_do_not_reach_the_kernels():
    # Once segfaulted: sizes whose products overflow 64 bits made the layout wrap around.
    model = MLP([3, 4, 1], seed=0)
    with pytest.raises(AttributeError):
        model.sizes = [2**32, 2**32, 1]
    with pytest.raises(AttributeError):
        model.params = np.zeros(3)
    with pytest.raises(TypeError):
        model.sizes[0] = 2**32
    X, y = data()
    model.train(X, y, epochs=1, verbose=False)
    assert np.all(np.isfinite(model.forward(X)))


@pytest.mark.parametrize("sizes, max_batch", [
    ([2**32, 2**32, 1], 1),                    # W[0] alone has 2**64 entries
    ([2**40, 2**40, 2**40], 1),
    ([3, 2**62, 1], 1),
    ([3, 2**30, 1], 2**40),                    # the workspace, not the parameters
])
def test_network_layout_is_checked_for_overflow(sizes, max_batch):
    with pytest.raises(ValueError, match="address"):
        _train.Network(sizes, None, None, 0, 0.0, 0.0, 0.0, max_batch)


@pytest.mark.parametrize("sizes", [[2**32, 2**32, 1], [2**25, 2**25, 1], [1, 10**30, 1]])
def test_absurd_layer_sizes_raise_value_error_before_allocating(sizes):
    with pytest.raises(ValueError, match="layer"):
        MLP(sizes)


def test_unpickled_and_copied_models_keep_the_structure_read_only():
    model = MLP([3, 4, 1], seed=0, dropout=0.25)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), copy.copy(model)):
        with pytest.raises(AttributeError):
            twin.sizes = [3, 5, 1]
        with pytest.raises(TypeError):
            twin.dropout[0] = 0.5
        assert twin.sizes == [3, 4, 1] and twin.dropout == [0.25]
        assert twin._lock is not model._lock or twin is model


# -- values written into the buffers --------------------------------------------------------

def test_assigning_float64_beyond_float32_range_raises_and_changes_nothing():
    model = MLP([2, 3, 1], seed=0, dtype=np.float32)
    before = model.W[0].copy()
    with pytest.raises(ValueError, match="range of the model's dtype float32"):
        model.W[0] = np.full((2, 3), 1e39)
    np.testing.assert_array_equal(model.W[0], before)
    model.W[0] = np.full((2, 3), 3e38)                     # within range: accepted
    assert np.all(np.isfinite(model.W[0]))


def test_running_variance_cannot_be_assigned_negative_or_infinite():
    model = MLP([2, 3, 1], seed=0, batch_norm=True)
    with pytest.raises(ValueError, match=">= 0"):
        model.running_var[0] = -np.ones(3)
    with pytest.raises(ValueError, match="finite"):
        model.running_mean[0] = np.full(3, np.inf)
    model.running_mean[0] = np.ones(3)
    np.testing.assert_array_equal(model.bn_state[:3], 1.0)


def test_training_refuses_a_model_whose_buffers_were_made_non_finite_in_place():
    X, y = data()
    model = MLP([3, 4, 1], seed=0, optimizer="adam")
    model._opt_state[0] = np.nan
    before = buffers(model)
    state = model._rng.bit_generator.state
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.train(X, y, epochs=1, verbose=False)
    assert_unchanged(model, before)
    assert model._rng.bit_generator.state == state


# -- hyperparameters are checked where they are used ------------------------------------------

@pytest.mark.parametrize("name, value, error", [
    ("huber_delta", -1.0, ValueError), ("huber_delta", 0.0, ValueError),
    ("label_smoothing", 1.5, ValueError), ("clip_norm", -1.0, ValueError),
    ("clip_value", np.nan, ValueError), ("l2", -0.1, ValueError), ("l1", np.inf, ValueError),
    ("lr", 0.0, ValueError), ("lr_decay", 2.0, ValueError), ("patience", 0, ValueError),
    ("min_delta", -1.0, ValueError), ("validation_fraction", 1.0, ValueError),
    ("early_stopping", "yes", TypeError), ("huber_delta", "1", TypeError),
])
def test_hyperparameters_assigned_after_construction_are_checked_before_training(name, value,
                                                                                 error):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    model = MLP([3, 4, 1], seed=0, loss="huber")
    setattr(model, name, value)
    before = buffers(model)
    with pytest.raises(error, match=name):
        model.train(X, y, epochs=2, verbose=False)
    assert_unchanged(model, before)


def test_a_negative_huber_delta_assigned_later_is_refused_by_loss_too():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    model = MLP([3, 4, 1], seed=0, loss="huber")
    model.huber_delta = -1.0
    with pytest.raises(ValueError, match="huber_delta"):
        model.loss(X, X[:, 0])


def test_optimizer_hyperparameters_changed_in_place_are_checked_before_training():
    X, y = data()
    model = MLP([3, 4, 1], seed=0, optimizer="adam")
    model.optimizer.beta1 = 1.5
    before = buffers(model)
    with pytest.raises(ValueError, match="beta1"):
        model.train(X, y, epochs=1, verbose=False)
    assert_unchanged(model, before)
    model.optimizer.beta1 = 0.8                      # a valid change is used
    model.train(X, y, epochs=1, verbose=False)
    assert model._network(1).n_state == 2 * model.params.size


def test_schedule_assigned_later_is_resolved_or_refused_at_once():
    X, y = data()
    model = MLP([3, 4, 1], seed=0)
    model.schedule = lambda epoch: 0.05
    model.train(X, y, epochs=2, verbose=False)
    assert model.history["lr"] == [0.05, 0.05]
    with pytest.raises(TypeError, match="step_size"):
        model.schedule = "step"
    with pytest.raises(ValueError, match="unknown schedule"):
        model.schedule = "sometimes"
    model.schedule = "cosine"
    model.train(X, y, epochs=3, verbose=False)
    assert model.history["lr"][0] == model.base_lr


def test_network_refuses_negative_or_non_finite_settings():
    for settings in (dict(loss_param=-1.0), dict(l2=-1.0), dict(l1=np.nan),
                     dict(clip_norm=-2.0), dict(weight_decay=np.inf)):
        args = dict(loss_param=0.0, l1=0.0, l2=0.0)
        args.update({k: v for k, v in settings.items() if k in args})
        extra = {k: v for k, v in settings.items() if k not in args}
        with pytest.raises(ValueError, match="finite number >= 0"):
            _train.Network([2, 3, 1], None, None, 0, args["loss_param"], args["l1"],
                           args["l2"], 4, **extra)


# -- sample and class weights of any scale ----------------------------------------------------

@pytest.mark.parametrize("scale", [1e307, 1e-300])     # sum beyond float64; tiny
def test_sample_weights_of_extreme_scale_train_like_weights_of_ordinary_scale(scale):
    X, y = data(40)
    w = np.linspace(1.0, 1.7, 40)
    ordinary = MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, sample_weight=w, verbose=False)
    extreme = MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, sample_weight=w * scale,
                                         verbose=False)
    assert not np.array_equal(extreme.params, MLP([3, 4, 1], seed=0).params)
    np.testing.assert_allclose(extreme.params, ordinary.params, rtol=1e-12, atol=1e-14)


def test_class_weights_times_sample_weights_beyond_float64_still_train():
    X, y = data(40)
    w = np.linspace(1.0, 1.7, 40)
    ordinary = MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, sample_weight=w,
                                          class_weight={0: 1.0, 1: 2.0}, verbose=False)
    huge = MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, sample_weight=w * 1e200,
                                      class_weight={0: 1e200, 1: 2e200}, verbose=False)
    np.testing.assert_allclose(huge.params, ordinary.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(huge.loss(X, y, sample_weight=w * 1e300),
                               ordinary.loss(X, y, sample_weight=w), rtol=1e-12)


def test_a_validation_split_that_leaves_only_zero_weights_is_refused():
    # One weighted row: the split holds it out for some seeds, which once left a training set
    # of weight 0 (normalized to NaN).
    X, y = data(40)
    w = np.zeros(40)
    w[5] = 1.0
    outcomes = set()
    for seed in range(8):
        model = MLP([3, 4, 1], seed=seed, early_stopping=True, validation_fraction=0.5)
        before = buffers(model)
        try:
            model.train(X, y, epochs=2, sample_weight=w, verbose=False)
        except ValueError as error:
            assert "weight 0" in str(error)
            assert_unchanged(model, before)
            outcomes.add("refused")
        else:
            assert all(np.all(np.isfinite(b)) for b in buffers(model))
            outcomes.add("trained")
    assert outcomes == {"refused", "trained"}


# -- divergence covers everything training writes ---------------------------------------------

def test_batch_norm_running_statistics_that_overflow_are_divergence():
    # Batch normalization hides the overflow from the output and the loss; only the running
    # variance shows it.
    X, y = data(32)
    X = X * 1e160
    model = MLP([3, 4, 1], seed=0, batch_norm=True, lr=0.01)
    with pytest.raises(TrainingDiverged) as info:
        model.train(X, y, epochs=2, verbose=False)
    assert info.value.what == "batch-norm running statistics" and info.value.epoch == 1
    for buffer in buffers(model):
        assert np.all(np.isfinite(buffer))


def test_optimizer_moments_that_overflow_are_divergence():
    # Adam's second moment overflows to inf while the step it divides stays finite (zero).
    X, y = data(32)
    X = X * 1e160
    model = MLP([3, 1], seed=0, optimizer="adam", lr=0.01)
    before = buffers(model)
    with pytest.raises(TrainingDiverged) as info:
        model.train(X, y, epochs=3, verbose=False)
    assert info.value.what == "optimizer state"
    assert_unchanged(model, before)          # epoch 1 failed: the state before the call


def test_training_that_ends_with_non_finite_outputs_raises_and_keeps_the_state_before():
    # One full-batch step: the loss (computed before the step) and the new weight are finite,
    # but the new weight times X overflows.
    X = np.array([[1e100]])
    y = np.array([0.0])
    model = MLP([1, 1], seed=0, loss="squared_error", lr=1e10)
    before = buffers(model)
    with pytest.raises(TrainingDiverged) as info:
        model.train(X, y, epochs=1, verbose=False)
    assert info.value.what == "outputs" and info.value.epoch == 1
    assert_unchanged(model, before)
    assert np.all(np.isfinite(model.forward(X)))


def test_outputs_are_checked_after_several_epochs_in_one_call():
    # Three epochs in one kernel call (no Python work between them); only the last step is
    # large. The model goes back to the end of epoch 2.
    X = np.array([[1e100]])
    y = np.array([0.0])
    rates = {1: 1e-210, 2: 1e-210, 3: 1e10}
    model = MLP([1, 1], seed=0, loss="squared_error", schedule=lambda e: rates[e])
    with pytest.raises(TrainingDiverged, match="outputs") as info:
        model.train(X, y, epochs=3, verbose=False)
    assert info.value.epoch == 3
    two_epochs = MLP([1, 1], seed=0, loss="squared_error", schedule=lambda e: rates[e])
    two_epochs.train(X, y, epochs=2, verbose=False)
    assert_unchanged(model, buffers(two_epochs))


# -- memory and time do not depend on epochs ---------------------------------------------------

@pytest.mark.parametrize("progress", [False, True])
def test_a_huge_epochs_with_an_early_stop_is_fast_and_small(progress):
    X, y = data(200, 4)
    model = MLP([4, 8, 1], seed=0, schedule="cosine")
    stop_after_3 = lambda model, epoch, logs: epoch >= 3      # noqa: E731
    model.train(X, y, epochs=5, verbose=False, callbacks=[stop_after_3],
                progress=progress)                                           # warm caches
    tracemalloc.start()
    try:
        model.train(X, y, epochs=10**8, verbose=False, callbacks=[stop_after_3],
                    progress=progress)
        huge = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        model.train(X, y, epochs=10, verbose=False, callbacks=[stop_after_3],
                    progress=progress)
        small = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(model.history["loss"]) == 3
    assert huge < small + 20_000, (huge, small)


@pytest.mark.parametrize("schedule", ["cosine", None, "invscaling"])
def test_a_huge_epochs_with_progress_lines_and_validation_stays_small(schedule, capsys):
    X, y = data(100, 4)
    model = MLP([4, 8, 1], seed=0, schedule=schedule)
    tracemalloc.start()
    try:
        model.train(X, y, epochs=10**12, verbose=True, validation_data=(X, y),
                    callbacks=[lambda m, e, logs: e >= 3])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert re.search(r"Epoch +3/1000000000000 ", capsys.readouterr().out)
    assert peak < 200_000, peak


# -- one lock per model ------------------------------------------------------------------------

def test_methods_hold_the_models_lock_and_callbacks_may_use_the_model():
    X, y = data()
    model = MLP([3, 4, 1], seed=0)
    seen = []

    class Probe(Callback):
        def on_epoch_end(self, model, epoch, logs):
            # Another thread cannot take the lock while train holds it ...
            taken = []
            probe = threading.Thread(target=lambda: taken.append(model._lock.acquire(timeout=0)))
            probe.start()
            probe.join()
            seen.append(taken[0])
            # ... while this thread (train's) can call the model's methods.
            seen.append(bool(np.all(np.isfinite(model.predict_proba(X)))))
            return False

    model.train(X, y, epochs=2, verbose=False, callbacks=[Probe()])
    assert seen == [False, True, False, True]
    assert model._lock.acquire(timeout=0)
    model._lock.release()


def test_a_stack_trains_with_weights_whose_sum_overflows():
    from fastmlp.stack import MLPStack
    X, y = data(40)
    w = np.linspace(1.0, 1.7, 40)
    ordinary = MLPStack([MLP([3, 4, 1], seed=k) for k in range(2)])
    ordinary.train(X, y, epochs=3, sample_weight=w)
    huge = MLPStack([MLP([3, 4, 1], seed=k) for k in range(2)])
    huge.train(X, y, epochs=3, sample_weight=w * 1e307)
    assert not huge.diverged_
    np.testing.assert_allclose(huge.params, ordinary.params, rtol=1e-12, atol=1e-14)


def test_a_stack_model_whose_outputs_overflow_leaves_the_stack_as_it_would_alone():
    from fastmlp.stack import MLPStack
    X = np.array([[1e100]])
    y = np.array([0.0])
    models = [MLP([1, 1], seed=0, loss="squared_error", lr=lr) for lr in (1e-210, 1e10)]
    stack = MLPStack(models)
    stack.train(X, y, epochs=1)
    assert list(stack.diverged_) == [1] and "outputs" in stack.diverged_[1]
    for k, model in enumerate(models):
        try:
            model.train(X, y, epochs=1, verbose=False)
        except TrainingDiverged:
            assert k == 1
        np.testing.assert_array_equal(stack.params[k], model.params)
        assert stack.steps[k] == model._step[0]
    assert np.all(np.isfinite(stack.predict(X)))


def test_predicting_with_a_very_wide_layer_keeps_its_workspace_bounded():
    # 500 rows at once of a 200,000-unit layer once asked for a 3.2 GB workspace.
    model = MLP([1, 200_000, 1], seed=0, hidden_activation="tanh")
    X = np.linspace(-1, 1, 500)[:, None]
    tracemalloc.start()
    try:
        out = model.forward(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (500,) and np.all(np.isfinite(out))
    assert peak < 300e6, peak


def test_float32_early_stopping_with_sample_weights_trains():
    # The weights of the training split were promoted to float64 (a NumPy scalar factor), which
    # the float32 kernel refused after the split had already changed the model's generator.
    X, y = data(40)
    w = np.linspace(0.5, 2.0, 40)
    model = MLP([3, 4, 1], seed=0, dtype=np.float32, early_stopping=True)
    model.train(X, y, epochs=3, sample_weight=w, verbose=False)
    assert len(model.history["loss"]) == 3


@pytest.mark.parametrize("settings", [dict(lr_decay=0.5), dict(schedule="invscaling")])
def test_a_schedule_that_underflows_within_the_epochs_is_refused_before_training(settings):
    X, y = data()
    model = MLP([3, 4, 1], seed=0, **settings)
    if "schedule" in settings:
        model.schedule.power_t = 200.0          # 2000 ** -200 underflows to 0
    before = buffers(model)
    with pytest.raises(ValueError, match="epoch 2000"):
        model.train(X, y, epochs=2000, verbose=False)
    assert_unchanged(model, before)
    assert model.history == {"loss": [], "lr": []}


@pytest.mark.parametrize("total", [10**8, 10**12, 10**15])
def test_cosine_rates_stay_positive_to_the_end_of_long_schedules(total):
    from fastmlp.schedules import Cosine
    cosine = Cosine(total)
    assert cosine.rate(total, 0.1) > 0
    assert cosine.rate(1, 0.1) == 0.1
