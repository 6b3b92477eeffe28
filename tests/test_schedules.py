"""Learning-rate schedules: documented rate sequences, ReduceOnPlateau's bookkeeping, checks."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fastmlp.schedules import (SCHEDULES, Constant, Cosine, ExponentialDecay, InverseScaling,
                               LambdaSchedule, ReduceOnPlateau, Schedule, StepDecay, get_schedule)

R2 = math.sqrt(2) / 2

# (schedule, base_lr, expected rates of epochs 1, 2, ...), worked out by hand from the formulas.
SEQUENCES = [
    (Constant(), 0.3, [0.3, 0.3, 0.3, 0.3]),
    (ExponentialDecay(0.5), 0.1, [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    (ExponentialDecay(1.0), 0.7, [0.7, 0.7, 0.7]),
    (StepDecay(3, gamma=0.5), 1.0, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]),
    (StepDecay(2), 2.0, [2.0, 2.0, 0.2, 0.2, 0.02]),
    (StepDecay(1, gamma=2.0), 1.0, [1.0, 2.0, 4.0]),
    (InverseScaling(), 1.0, [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5]),
    (InverseScaling(power_t=1.0), 0.6, [0.6, 0.3, 0.2, 0.15]),
    (InverseScaling(power_t=0.0), 0.4, [0.4, 0.4, 0.4]),
    # T = 4: t = 0..4, then held at T.
    (Cosine(5, min_lr=0.1), 1.1, [1.1, 0.1 + 0.5 * (1 + R2), 0.6, 0.1 + 0.5 * (1 - R2), 0.1,
                                  0.1, 0.1]),
    # Warmup 1/2, 2/2 of base_lr; then T = 3: cos(0), cos(pi/3), cos(2pi/3), cos(pi).
    (Cosine(6, min_lr=0.5, warmup_epochs=2), 2.0, [1.0, 2.0, 2.0, 1.625, 0.875, 0.5, 0.5]),
    # min_lr = 0: t stops at T - 1/2 = 3.5, and 0.5 * (1 + cos(7pi/8)) = 0.5 * (1 - cos(pi/8)).
    (Cosine(5), 1.0, [1.0, 0.5 * (1 + R2), 0.5, 0.5 * (1 - R2)]
     + 3 * [0.5 * (1 - math.sqrt(2 + math.sqrt(2)) / 2)]),
    (Cosine(1, min_lr=0.2), 1.0, [1.0, 0.2, 0.2]),
    (Cosine(1), 1.0, [1.0, 0.5, 0.5]),
    (Cosine(2, warmup_epochs=1), 0.8, [0.8, 0.8, 0.4, 0.4]),
    (LambdaSchedule(lambda epoch: 1 / epoch), 5.0, [1.0, 0.5, 1 / 3]),
]

NON_ADAPTIVE = [Constant(), ExponentialDecay(0.93), StepDecay(4, gamma=0.3), InverseScaling(0.7),
                Cosine(20, min_lr=0.01, warmup_epochs=3), Cosine(7),
                LambdaSchedule(lambda epoch: 0.1 + 1 / epoch)]


def run(schedule, losses, base_lr=1.0):
    """Drive a schedule as the trainer does; return the rate used in each epoch."""
    used = []
    for epoch, loss in enumerate(losses, start=1):
        used.append(schedule.rate(epoch, base_lr))
        schedule.observe(epoch, loss)
    return used


@pytest.mark.parametrize("schedule, base_lr, expected", SEQUENCES, ids=repr)
def test_documented_sequence(schedule, base_lr, expected):
    got = [schedule.rate(epoch, base_lr) for epoch in range(1, len(expected) + 1)]
    assert all(type(r) is float for r in got)
    assert_allclose(got, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("schedule", NON_ADAPTIVE, ids=repr)
@pytest.mark.parametrize("base_lr", [0.3, 0.02])
def test_rates_is_rate_of_each_epoch(schedule, base_lr):
    block = schedule.rates(base_lr, 30)
    assert block.dtype == np.float64 and block.shape == (30,)
    assert_array_equal(block, [schedule.rate(e, base_lr) for e in range(1, 31)])
    assert_array_equal(schedule.rates(base_lr, 10, start=21), block[20:])
    assert schedule.rates(base_lr, 0).shape == (0,)
    assert np.all(np.isfinite(block)) and np.all(block > 0)


def test_exponential_reproduces_the_lecture():
    lr, lr_decay, epochs = 0.3, 0.95, 200
    lecture = [lr * (lr_decay ** (ep - 1)) for ep in range(1, epochs + 1)]
    for schedule in (ExponentialDecay(lr_decay), get_schedule("exponential", decay=lr_decay)):
        assert_array_equal(schedule.rates(lr, epochs), lecture)  # bit for bit
        assert_allclose([schedule.rate(ep, lr) for ep in range(1, epochs + 1)], lecture,
                        rtol=1e-15, atol=0)


@pytest.mark.parametrize("total, warmup", [(1, 0), (2, 0), (2, 1), (3, 0), (10, 4), (50, 0),
                                           (1000, 10)])
def test_cosine_to_zero_stays_positive_and_decreasing(total, warmup):
    T = max(1, total - warmup - 1)
    bottom = warmup + 1 + T  # the first epoch at the floor: total_epochs, or one later if T == 1
    assert bottom == max(total, warmup + 2)
    rates = Cosine(total, warmup_epochs=warmup).rates(1.0, bottom + 3)
    assert np.all(rates > 0)
    annealing = rates[warmup:bottom]  # epochs warmup + 1 .. bottom
    assert annealing[0] == 1.0
    assert np.all(np.diff(annealing) < 0)
    assert_array_equal(rates[bottom - 1:], math.cos(0.5 * math.pi * (T - 0.5) / T) ** 2)


def test_cosine_warmup_is_linear():
    assert_allclose(Cosine(10, warmup_epochs=4).rates(0.2, 4), [0.05, 0.1, 0.15, 0.2],
                    rtol=1e-15, atol=0)


@pytest.mark.parametrize("schedule", [Cosine(5, min_lr=0.5),
                                      ReduceOnPlateau(min_lr=0.5)], ids=repr)
def test_min_lr_above_base_lr_is_refused(schedule):
    assert schedule.rate(1, 0.5) == 0.5
    with pytest.raises(ValueError, match=r"min_lr \(0.5\) exceeds the base learning rate"):
        schedule.rate(1, 0.4)


def test_rate_that_underflows_names_the_epoch():
    schedule = ExponentialDecay(1e-200)
    assert schedule.rate(2, 1.0) == 1e-200
    with pytest.raises(ValueError, match=r"rate 0.0 for epoch 3; every rate must be a finite"):
        schedule.rate(3, 1.0)
    with pytest.raises(ValueError, match="for epoch 3"):
        schedule.rates(1.0, 5)


@pytest.mark.parametrize("epoch, base_lr, error, match", [
    (0, 0.1, ValueError, "epoch must be at least 1; got 0"),
    (-2, 0.1, ValueError, "epoch must be at least 1"),
    (1.0, 0.1, TypeError, "epoch must be an integer; got 1.0"),
    (True, 0.1, TypeError, "epoch must be an integer"),
    (1, 0.0, ValueError, r"base_lr must be a finite number in \(0, inf\]; got 0.0"),
    (1, -0.1, ValueError, "base_lr must be a finite number"),
    (1, math.nan, ValueError, "base_lr must be a finite number"),
    (1, math.inf, ValueError, "base_lr must be a finite number"),
    (1, "0.1", TypeError, "base_lr must be a real number"),
])
def test_rate_checks_its_arguments(epoch, base_lr, error, match):
    with pytest.raises(error, match=match):
        Constant().rate(epoch, base_lr)


def test_numpy_scalars_are_accepted():
    assert StepDecay(np.int64(2), gamma=np.float32(0.5)).rate(np.int32(3), np.float64(1.0)) == 0.5
    schedule = StepDecay(np.int64(2), gamma=np.float64(0.5))
    assert type(schedule.step_size) is int and type(schedule.gamma) is float
    assert repr(schedule) == "StepDecay(step_size=2, gamma=0.5)"


# -- ReduceOnPlateau --------------------------------------------------------------------------

def test_plateau_reduces_exactly_after_patience_epochs():
    # Epochs 1 and 2 improve; 3, 4, 5 do not, so epoch 6 is the first at the reduced rate.
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    assert run(ReduceOnPlateau(factor=0.5, patience=3, min_delta=0.0), losses) == \
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_plateau_improvement_resets_the_wait():
    schedule = ReduceOnPlateau(factor=0.5, patience=3, min_delta=0.0)
    assert run(schedule, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]) == [1.0] * 7 + [0.5]
    assert schedule.best == 0.5 and schedule.num_reductions == 1 and schedule.wait == 1


def test_plateau_improvement_must_exceed_min_delta():
    # best - min_delta = 0.5: 0.5 itself is not an improvement, 0.25 is.
    schedule = ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.5)
    assert run(schedule, [1.0, 0.75, 0.5, 0.25, 0.0]) == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert schedule.best == 0.25 and schedule.wait == 1 and schedule.num_reductions == 1


def test_plateau_respects_min_lr():
    schedule = ReduceOnPlateau(factor=0.1, patience=1, min_lr=0.05)
    assert run(schedule, [1.0] * 6) == [1.0, 1.0, 0.1, 0.05, 0.05, 0.05]


def test_plateau_cooldown_epochs_are_not_counted():
    # Reduce after epoch 2; epochs 3 and 4 are cooldown; epoch 5 counts and reduces again.
    schedule = ReduceOnPlateau(factor=0.5, patience=1, cooldown=2)
    assert run(schedule, [1.0] * 9) == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_plateau_improvement_during_cooldown_updates_best():
    schedule = ReduceOnPlateau(factor=0.5, patience=1, cooldown=2, min_delta=0.0)
    # 0.5 in cooldown becomes the best, so 0.7 at epoch 5 does not improve and reduces.
    assert run(schedule, [1.0, 1.0, 0.5, 0.7, 0.7, 0.7]) == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    assert schedule.best == 0.5


def test_plateau_patience_zero_reduces_on_every_non_improving_epoch():
    schedule = ReduceOnPlateau(factor=0.5, patience=0, min_delta=0.0)
    assert run(schedule, [1.0, 0.5, 0.5, 0.25, 0.25, 0.25]) == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_plateau_nan_loss_is_not_an_improvement():
    schedule = ReduceOnPlateau(factor=0.5, patience=1)
    assert run(schedule, [math.nan, math.nan, 1.0]) == [1.0, 0.5, 0.25]
    assert schedule.best == 1.0


def test_plateau_rate_follows_base_lr_and_never_reaches_zero():
    schedule = ReduceOnPlateau(factor=0.5, patience=1)
    run(schedule, [1.0, 1.0])
    assert schedule.rate(3, 0.2) == 0.1
    tiny = ReduceOnPlateau(factor=1e-200, patience=0)
    assert run(tiny, [1.0] * 5) == [1.0, 1.0, 1e-200, 1e-200, 1e-200]


def test_plateau_reset_restores_the_initial_state():
    schedule = ReduceOnPlateau(factor=0.5, patience=1, cooldown=1)
    losses = [1.0, 0.75, 0.75, 0.75, 0.75, 0.5, 0.5]
    first = run(schedule, losses)
    # Reductions after epochs 3, 5 and 7 (epoch 4 is cooldown; 0.5 at epoch 6 improves).
    assert schedule.num_reductions == 3 and schedule.rate(8, 1.0) == 0.125
    schedule.reset()
    assert (schedule.best, schedule.wait, schedule.cooldown_left, schedule.num_reductions) == \
        (math.inf, 0, 0, 0)
    assert schedule.rate(1, 1.0) == 1.0
    assert run(schedule, losses) == first == run(ReduceOnPlateau(0.5, 1, cooldown=1), losses)


def test_only_plateau_is_adaptive():
    assert [name for name, cls in SCHEDULES.items() if cls.adaptive] == ["plateau"]
    assert not LambdaSchedule(abs).adaptive
    with pytest.raises(TypeError, match="is adaptive: its rates depend on the losses"):
        ReduceOnPlateau().rates(0.1, 5)


def test_observe_is_a_no_op_for_fixed_schedules():
    schedule = StepDecay(1, gamma=0.5)
    assert run(schedule, [1.0, 1.0, 0.0]) == [1.0, 0.5, 0.25]
    schedule.reset()
    assert schedule.rate(3, 1.0) == 0.25


def test_plateau_observe_checks_the_loss():
    with pytest.raises(TypeError, match="the loss of epoch 4 must be a real number"):
        ReduceOnPlateau().observe(4, "0.3")
    with pytest.raises(ValueError, match="epoch must be at least 1"):
        ReduceOnPlateau().observe(0, 0.3)


# -- LambdaSchedule ---------------------------------------------------------------------------

def test_lambda_passes_the_epoch_and_returns_its_value():
    seen = []
    schedule = LambdaSchedule(lambda epoch: seen.append(epoch) or np.float32(0.25))
    assert schedule.rates(3.0, 3).tolist() == [0.25, 0.25, 0.25]
    assert seen == [1, 2, 3]
    assert type(schedule.rate(1, 1.0)) is float


@pytest.mark.parametrize("value, error, match", [
    (0.0, ValueError, r"gave the rate 0.0 for epoch 3; every rate must be a finite number > 0"),
    (-0.1, ValueError, "gave the rate -0.1 for epoch 3"),
    (math.nan, ValueError, "gave the rate nan for epoch 3"),
    (math.inf, ValueError, "gave the rate inf for epoch 3"),
    ("0.1", TypeError, "gave '0.1' as the rate of epoch 3; a rate must be a real number"),
    (None, TypeError, "as the rate of epoch 3"),
    (True, TypeError, "as the rate of epoch 3"),
])
def test_lambda_result_is_checked(value, error, match):
    schedule = LambdaSchedule(lambda epoch: 0.1 if epoch < 3 else value)
    assert schedule.rate(2, 1.0) == 0.1
    with pytest.raises(error, match=match):
        schedule.rate(3, 1.0)


def test_lambda_needs_a_callable():
    with pytest.raises(TypeError, match="fn must be a callable epoch -> rate; got 0.1"):
        LambdaSchedule(0.1)


# -- get_schedule -----------------------------------------------------------------------------

def test_get_schedule_resolves_names():
    assert type(get_schedule()) is Constant and type(get_schedule(None)) is Constant
    assert type(get_schedule("constant")) is Constant
    assert set(SCHEDULES) == {"constant", "exponential", "step", "invscaling", "cosine",
                              "plateau"}
    params = {"exponential": {"decay": 0.9}, "step": {"step_size": 5, "gamma": 0.5},
              "invscaling": {"power_t": 0.25}, "cosine": {"total_epochs": 10, "min_lr": 1e-3},
              "plateau": {"factor": 0.5, "patience": 3}, "constant": {}}
    for name, cls in SCHEDULES.items():
        schedule = get_schedule(name, **params[name])
        assert type(schedule) is cls and schedule.name == name
        for key, value in params[name].items():
            assert getattr(schedule, key) == value


def test_get_schedule_passes_instances_and_wraps_callables():
    schedule = Cosine(10)
    assert get_schedule(schedule) is schedule

    def halving(epoch):
        return 0.5 ** epoch

    wrapped = get_schedule(halving)
    assert type(wrapped) is LambdaSchedule and wrapped.fn is halving
    assert wrapped.rate(3, 1.0) == 0.125


@pytest.mark.parametrize("spec, params, error, match", [
    ("cosin", {}, ValueError, "unknown schedule 'cosin'; choose one of 'constant', "
                              "'exponential', 'step', 'invscaling', 'cosine', 'plateau'"),
    ("Constant", {}, ValueError, "unknown schedule 'Constant'"),
    ("step", {"step_size": 2, "decay": 0.5}, TypeError,
     "schedule 'step' takes step_size, gamma; unexpected 'decay'"),
    ("exponential", {}, TypeError, "schedule 'exponential' takes decay; missing 'decay'"),
    ("constant", {"decay": 0.9}, TypeError, "schedule 'constant' takes no parameters"),
    (None, {"gamma": 0.5}, TypeError, "takes no parameters; unexpected 'gamma'"),
    (Constant(), {"gamma": 0.5}, TypeError, r"parameters \(gamma\) can only be given with a "
                                            "schedule name"),
    (abs, {"gamma": 0.5}, TypeError, "can only be given with a schedule name"),
    (Cosine, {}, TypeError, r"got the class Cosine; pass an instance such as Cosine\(...\) or "
                            "the name 'cosine'"),
    (0.9, {}, TypeError, "schedule must be None, one of the names 'constant'.*got 0.9"),
])
def test_get_schedule_errors(spec, params, error, match):
    with pytest.raises(error, match=match):
        get_schedule(spec, **params)


@pytest.mark.parametrize("name, params, error, match", [
    ("exponential", {"decay": 0.0}, ValueError, r"decay must be a finite number in \(0, 1\]"),
    ("exponential", {"decay": 1.5}, ValueError, r"decay must be a finite number in \(0, 1\]"),
    ("exponential", {"decay": math.nan}, ValueError, "decay must be a finite number"),
    ("exponential", {"decay": "0.9"}, TypeError, "decay must be a real number"),
    ("step", {"step_size": 0}, ValueError, "step_size must be at least 1; got 0"),
    ("step", {"step_size": 2.0}, TypeError, "step_size must be an integer"),
    ("step", {"step_size": 2, "gamma": 0.0}, ValueError, r"gamma must be a finite number in \(0,"),
    ("invscaling", {"power_t": -0.5}, ValueError, r"power_t must be a finite number in \[0,"),
    ("cosine", {"total_epochs": 0}, ValueError, "total_epochs must be at least 1"),
    ("cosine", {"total_epochs": 5, "warmup_epochs": -1}, ValueError,
     "warmup_epochs must be at least 0"),
    ("cosine", {"total_epochs": 5, "warmup_epochs": 5}, ValueError,
     r"warmup_epochs must be less than total_epochs \(5\); got 5"),
    ("cosine", {"total_epochs": 5, "min_lr": -1e-3}, ValueError, r"min_lr must be a finite "
                                                                 r"number in \[0, inf\]"),
    ("plateau", {"factor": 1.0}, ValueError, r"factor must be a finite number in \(0, 1\)"),
    ("plateau", {"factor": 0.0}, ValueError, r"factor must be a finite number in \(0, 1\)"),
    ("plateau", {"patience": -1}, ValueError, "patience must be at least 0"),
    ("plateau", {"min_delta": -1e-4}, ValueError, r"min_delta must be a finite number in \[0,"),
    ("plateau", {"min_lr": -1.0}, ValueError, "min_lr must be a finite number"),
    ("plateau", {"cooldown": -1}, ValueError, "cooldown must be at least 0"),
    ("plateau", {"cooldown": 1.5}, TypeError, "cooldown must be an integer"),
])
def test_bad_parameters_say_what_is_allowed(name, params, error, match):
    with pytest.raises(error, match=match):
        get_schedule(name, **params)


def test_repr_shows_the_parameters():
    def warm(epoch):
        return 0.1

    assert [repr(s) for s in (Constant(), ExponentialDecay(0.9), StepDecay(10),
                              InverseScaling(), Cosine(100, warmup_epochs=5),
                              ReduceOnPlateau(patience=3), LambdaSchedule(warm))] == [
        "Constant()",
        "ExponentialDecay(decay=0.9)",
        "StepDecay(step_size=10, gamma=0.1)",
        "InverseScaling(power_t=0.5)",
        "Cosine(total_epochs=100, min_lr=0.0, warmup_epochs=5)",
        "ReduceOnPlateau(factor=0.1, patience=3, min_delta=0.0001, min_lr=0.0, cooldown=0)",
        "LambdaSchedule(test_repr_shows_the_parameters.<locals>.warm)",
    ]


def test_subclass_needs_only_the_formula():
    class Halving(Schedule):
        def _rate(self, epoch, base_lr):
            return base_lr / 2 ** (epoch - 1)

    assert Halving().rates(1.0, 3).tolist() == [1.0, 0.5, 0.25]
    with pytest.raises(TypeError):
        Schedule()
