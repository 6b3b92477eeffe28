"""The shortcuts that keep a model's construction and a fit's preparation cheap change nothing.

Each test pits a shortcut (shared network layouts, generators reset to a cached seeded state,
rates computed once per fit, the pass over the rows chosen over the proof of finite outputs,
the scalar checks' fast paths) against the slow path it replaces, or against the documented
behaviour, on the cases where the two could part.
"""
import copy
import numbers

import numpy as np
import pytest

import fastmlp.mlp
from fastmlp import MLP, _engine, schedules
from fastmlp._kernels import _train
from fastmlp._validation import check_flag, check_int, check_real
from fastmlp.callbacks import Callback
from fastmlp.optimizers import Adam


def test_models_of_one_configuration_share_the_engines_description_and_no_other():
    a, b = MLP([3, 5, 1], seed=0, l2=0.1), MLP([3, 5, 1], seed=1, l2=0.1)
    assert a._network(8) is b._network(8)
    assert MLP([3, 5, 1], l2=0.2)._network(8) is not a._network(8)
    assert MLP([3, 5, 1], l2=0.1, hidden_activation="tanh")._network(8) is not a._network(8)
    assert MLP([3, 5, 1], l2=0.1, dropout=0.5)._network(8) is not a._network(8)
    assert a._network(16) is not a._network(8)
    assert a._network(8, sparse_input=True) is not a._network(8)
    b.l2 = 0.3                      # a hyperparameter assigned since: another description
    assert b._network(8) is not a._network(8) and b._network(8).n_params == a.params.size


def test_a_setting_assigned_since_the_last_build_is_still_checked_by_the_next_one():
    model = MLP([3, 5, 1], seed=0)
    model.l2 = -1.0
    with pytest.raises(ValueError, match="l2 must be a finite number"):
        model._network(7)
    model.l2 = [1]                  # unhashable: the check names the setting all the same
    with pytest.raises(TypeError, match="l2 must be a real number"):
        model._network(7)


def test_an_optimizer_instance_changed_before_construction_is_checked_by_the_constructor():
    optimizer = Adam()
    optimizer.beta1 = 2.0
    with pytest.raises(ValueError, match="beta1 must be a finite number in"):
        MLP([2, 3, 1], optimizer=optimizer)


def test_the_constructors_weights_are_the_lecture_draws_in_both_dtypes():
    rng = np.random.default_rng(3)
    expected = [rng.normal(0.0, np.sqrt(2.0 / a), size=(a, b)) for a, b in [(2, 4), (4, 4), (4, 1)]]
    for dtype in (np.float64, np.float32):
        model = MLP([2, 4, 4, 1], seed=3, dtype=dtype)
        for W, E in zip(model.W, expected):
            np.testing.assert_array_equal(W, E.astype(dtype))
        assert all(np.all(b == 0) for b in model.b)


_KERNEL_ARGS = ("batch_size", "seed", "workspace", "loss_out", "interrupt_mark", "epochs",
                "generator", "carry", "order_out")


def _orders_seen(monkeypatch):
    """Record the orders of the epochs every kernel call runs: given, or drawn by the kernel
    (replayed with ``shuffle_rows``, its twin, from the generator's state before the call)."""
    seen = []
    original = _train.train_epochs

    def recording(net, params, opt, bn, step, X, Y, w, orders, rates, *rest, **named):
        args = dict(zip(_KERNEL_ARGS, rest), **named)
        generator = args.get("generator")
        if generator is not None:
            replay = copy.deepcopy(generator)
        status, done = original(net, params, opt, bn, step, X, Y, w, orders, rates, *rest,
                                **named)
        if args.get("epochs") is None:
            seen.extend(o.copy() for o in orders[:done])
        elif generator is None:
            seen.extend(orders[0].copy() for _ in range(done))
        else:
            seen.extend(_train.shuffle_rows(replay, orders[0], done, args.get("carry", False)))
        return status, done

    monkeypatch.setattr(_train, "train_epochs", recording)
    return seen


@pytest.mark.parametrize("epochs", [1, 3, 150])
def test_every_fit_with_a_shuffle_seed_draws_the_permutations_of_a_fresh_generator(
        binary_data, monkeypatch, epochs):
    X, y = binary_data(140, 2, seed=0)
    seen = _orders_seen(monkeypatch)
    for _ in range(3):              # the second and third fits reuse a generator
        seen.clear()
        MLP([2, 4, 1], seed=0).train(X, y, epochs=epochs, batch_size=32, verbose=False,
                                     shuffle_seed=11)
        rng = np.random.default_rng(11)
        np.testing.assert_array_equal(np.array(seen), [rng.permutation(140) for _ in range(epochs)])


def test_a_fit_inside_a_fit_with_the_same_shuffle_seed_leaves_the_outer_orders_alone(
        binary_data):
    X, y = binary_data(60, 2, seed=0)

    class TrainAnother(Callback):
        def on_epoch_end(self, model, epoch, logs):
            MLP([2, 3, 1], seed=1).train(X, y, epochs=2, verbose=False, shuffle_seed=4)

    def fit(callbacks):
        model = MLP([2, 4, 1], seed=0)
        model.train(X, y, epochs=6, batch_size=16, verbose=False, shuffle_seed=4,
                    callbacks=callbacks)
        return model.params

    np.testing.assert_array_equal(fit([TrainAnother()]), fit([Callback()]))


def test_a_fit_that_fails_midway_does_not_leave_a_generator_in_a_used_state(binary_data,
                                                                             monkeypatch):
    X, y = binary_data(40, 2, seed=0)
    with pytest.raises(_engine.TrainingDiverged):
        MLP([2, 3, 1], lr=1e300, seed=0).train(X * 1e10, y, epochs=9, batch_size=4,
                                               verbose=False, shuffle_seed=8)
    seen = _orders_seen(monkeypatch)
    MLP([2, 3, 1], seed=0).train(X, y, epochs=2, verbose=False, shuffle_seed=8)
    rng = np.random.default_rng(8)
    np.testing.assert_array_equal(np.array(seen), [rng.permutation(40) for _ in range(2)])


@pytest.mark.parametrize("schedule", [
    schedules.Constant(), schedules.ExponentialDecay(0.97), schedules.StepDecay(7, 0.5),
    schedules.InverseScaling(0.3), schedules.Cosine(150, min_lr=0.01, warmup_epochs=4)])
def test_the_rates_of_a_fit_computed_at_once_equal_those_of_each_epoch(binary_data, schedule):
    X, y = binary_data(300, 2, seed=0)
    model = MLP([2, 3, 1], lr=0.2, seed=0, schedule=schedule)
    model.train(X, y, epochs=150, batch_size=64, verbose=False)
    assert model.history["lr"] == [schedule.rate(e, 0.2) for e in range(1, 151)]


def test_exponential_decays_block_is_its_formula_and_a_subclass_keeps_its_own():
    decay = schedules.ExponentialDecay(0.93)
    assert decay.rates(0.7, 500, start=3).tolist() == [decay.rate(e, 0.7) for e in range(3, 503)]

    class Halving(schedules.ExponentialDecay):
        def _rate(self, epoch, base_lr):
            return base_lr / 2 ** (epoch - 1)

    assert Halving(0.9).rates(1.0, 3).tolist() == [1.0, 0.5, 0.25]


def test_a_rate_that_goes_bad_in_a_later_block_is_refused_there_as_before(binary_data):
    # A function is not one of the pure schedules: its rates are asked block by block, so the
    # epochs before the bad one train, and the error names the epoch.
    X, y = binary_data(_engine.MAX_ORDER_ENTRIES // 2, 2, seed=0)     # two epochs per block
    model = MLP([2, 3, 1], seed=0, schedule=lambda e: 0.1 if e != 4 else float("nan"))
    before = model.params.copy()
    with pytest.raises(ValueError, match="epoch 4"):
        model.train(X, y, epochs=5, verbose=False)
    assert not np.array_equal(model.params, before)


def _output_checks(monkeypatch):
    calls = {"pass": 0, "proof": 0}
    original_pass, original_proof = _train.outputs_finite, _engine.outputs_provably_finite

    def counted_pass(*args):
        calls["pass"] += 1
        return original_pass(*args)

    def counted_proof(*args):
        calls["proof"] += 1
        return original_proof(*args)

    monkeypatch.setattr(_train, "outputs_finite", counted_pass)
    monkeypatch.setattr(_engine, "outputs_provably_finite", counted_proof)
    return calls


def test_a_small_fit_checks_its_outputs_by_a_pass_and_a_large_one_by_the_proof(
        binary_data, monkeypatch):
    calls = _output_checks(monkeypatch)
    X, y = binary_data(100, 2, seed=0)
    MLP([2, 4, 1], seed=0).train(X, y, epochs=1, verbose=False)
    assert calls == {"pass": 1, "proof": 0}
    X, y = binary_data(3000, 20, seed=0)
    MLP([20, 32, 1], seed=0).train(X, y, epochs=1, batch_size=500, verbose=False)
    assert calls == {"pass": 1, "proof": 1}


def test_the_proof_takes_max_abs_from_the_input_check_unless_a_callback_could_change_x(
        binary_data, monkeypatch):
    """The input check's pass over X also gives max |X| to the outputs proof: X is read once,
    not twice. With callbacks (which run between epochs and could change X in place) the
    proof measures X again, after training."""
    measured = []
    original = _engine._max_abs

    def counted(X):
        measured.append(X.shape)
        return original(X)

    monkeypatch.setattr(_engine, "_max_abs", counted)
    X, y = binary_data(3000, 20, seed=0)
    MLP([20, 32, 1], seed=0).train(X, y, epochs=1, batch_size=500, verbose=False)
    assert measured == []

    def grow(model, epoch, logs):
        X[:] = 1e308         # after the last epoch: the outputs overflow, the weights do not

    model = MLP([20, 32, 1], seed=0, lr=1e-3)
    with pytest.raises(_engine.TrainingDiverged, match="outputs on the training data"):
        model.train(X, y, epochs=1, batch_size=500, verbose=False, callbacks=[grow])
    assert measured == [X.shape]


@pytest.mark.parametrize("value", [3, np.int64(3), True, np.bool_(True), 2.5, "3", None])
def test_check_int_answers_as_the_abstract_base_classes_say(value):
    integral = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if integral:
        assert check_int("n", value, 1) == 3 and type(check_int("n", value, 1)) is int
    else:
        with pytest.raises(TypeError, match="n must be an integer"):
            check_int("n", value, 1)


class _Float(float):
    pass


@pytest.mark.parametrize("value", [0.5, _Float(0.5), np.float32(0.5), 1, np.int8(1), True,
                                   np.bool_(False), "0.5", None, float("nan"), float("inf")])
def test_check_real_answers_as_the_abstract_base_classes_say(value):
    real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not real:
        with pytest.raises(TypeError, match="x must be a real number"):
            check_real("x", value, 0, 1)
    elif not np.isfinite(value):
        with pytest.raises(ValueError, match=r"x must be a finite number in \[0, 1\]"):
            check_real("x", value, 0, 1)
    else:
        result = check_real("x", value, 0, 1)
        assert type(result) is float and result == float(value)


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (np.bool_(True), True),
                                             (1, TypeError), (None, TypeError)])
def test_check_flag_accepts_the_two_bools_only(value, expected):
    if expected is TypeError:
        with pytest.raises(TypeError, match="f must be True or False"):
            check_flag("f", value)
    else:
        assert check_flag("f", value) is expected


@pytest.mark.parametrize("labels, found", [
    (np.array([0, 1, 2, 1]), [2]), (np.array([0, -1, 1, 5]), [-1, 5]),
    (np.array([0, 1, 255], dtype=np.uint8), [255]), (np.array([0, -128, 1], dtype=np.int8), [-128]),
    (np.array([1, 0, -3], dtype=">i4"), [-3]), (np.array([0.0, 0.5, 1.0]), [0.5]),
    (np.array([0.0, np.nan, 1.0]), [np.nan])])
def test_binary_labels_other_than_0_and_1_are_named(labels, found):
    model = MLP([1, 2, 1])
    with pytest.raises(ValueError, match="only the labels 0 and 1") as info:
        model.train(np.ones((len(labels), 1)), labels, verbose=False)
    assert str(found)[1:-1] in str(info.value)


@pytest.mark.parametrize("labels", [np.array([0, 1, 1]), np.array([True, False, True]),
                                    np.array([0, 1, 0], dtype=np.uint16),
                                    np.array([1, 0, 1], dtype=">i8"),
                                    np.array([[0, 1], [1, 1], [0, 0]], dtype=np.int32)[:, 1],
                                    np.array([0.0, 1.0, 1.0])])
def test_binary_labels_of_every_real_dtype_are_taken(labels):
    Y, _, _ = MLP([1, 2, 1])._encode_targets(labels, 3)
    np.testing.assert_array_equal(Y[:, 0], labels.astype(float))


def test_the_seeded_states_and_spare_generators_stay_bounded(binary_data):
    X, y = binary_data(20, 2, seed=0)
    for seed in range(80):
        MLP([2, 2, 1], seed=0).train(X, y, epochs=1, verbose=False, shuffle_seed=seed)
    states, spares = fastmlp._seeding._SEEDED_STATES, fastmlp._seeding._SPARE_GENERATORS
    assert 1 <= len(states) <= 64 and 1 <= len(spares) <= 4      # kept, and bounded


def test_the_rates_kept_for_the_next_fit_follow_a_schedule_changed_in_place(binary_data):
    X, y = binary_data(50, 2, seed=0)
    schedule = schedules.ExponentialDecay(0.9)
    model = MLP([2, 3, 1], lr=0.1, seed=0, schedule=schedule)
    model.train(X, y, epochs=3, verbose=False)
    schedule.decay = 0.5
    model.train(X, y, epochs=3, verbose=False)
    assert model.history["lr"] == [0.1, 0.05, 0.025]
    schedule.decay = np.array(0.25)     # unhashable, yet a number: used, not kept
    model.train(X, y, epochs=2, verbose=False)
    assert model.history["lr"] == [0.1, 0.025]
