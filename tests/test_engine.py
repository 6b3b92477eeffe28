"""The engine (fastmlp._engine): blocks of epochs over caller-given row orders."""
import numpy as np
import pytest

from fastmlp import MLP
from fastmlp._engine import EpochRunner, TrainingDiverged


def _encoded(model, X, y):
    X = model._check_X(X)
    Y, _, _ = model._encode_targets(y, X.shape[0])
    return X, Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_orders_over_a_subset_of_rows_equal_training_on_the_copied_subset(binary_data, dtype):
    X, y = binary_data(60, 3, seed=4)
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(60, size=37, replace=False))
    orders = np.stack([rng.permutation(subset) for _ in range(5)])
    rates = np.full(5, 0.2)

    on_view, on_copy = (MLP([3, 6, 1], lr=0.2, seed=1, dtype=dtype, optimizer="adam")
                        for _ in range(2))
    losses_view, losses_copy = np.empty(5), np.empty(5)
    with EpochRunner(on_view, *_encoded(on_view, X, y), None, 8, 0) as runner:
        assert runner.run(orders, rates, losses_view) == 5
    # The same visits, expressed as positions in a copy of the subset.
    position = {row: i for i, row in enumerate(subset)}
    copied_orders = np.vectorize(position.get)(orders).astype(np.intp)
    with EpochRunner(on_copy, *_encoded(on_copy, X[subset], y[subset]), None, 8, 0) as runner:
        runner.run(copied_orders, rates, losses_copy)

    np.testing.assert_array_equal(on_view.params, on_copy.params)
    np.testing.assert_array_equal(losses_view, losses_copy)


def test_orders_outside_the_rows_are_refused_and_change_nothing(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    before = model.params.copy()
    with EpochRunner(model, *_encoded(model, X, y), None, 8, 0) as runner:
        for bad in (len(X), -1):
            orders = np.arange(len(X), dtype=np.intp)[None, :].copy()
            orders[0, 3] = bad
            with pytest.raises(ValueError, match="row indices"):
                runner.run(orders, np.array([0.1]), np.empty(1))
    np.testing.assert_array_equal(model.params, before)


def test_divergence_raises_with_the_epoch_and_restores_the_last_finite_state(small_data):
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    with EpochRunner(model, *_encoded(model, X * 1e150, y), None, 40, 0) as runner:
        orders = np.tile(np.arange(len(X), dtype=np.intp), (3, 1))
        with pytest.raises(TrainingDiverged) as info:
            runner.run(orders, np.array([0.1, 1e300, 1e300]), np.empty(3))
    assert info.value.epoch >= 1 and info.value.what in ("loss", "weights")
    assert np.all(np.isfinite(model.params))


def test_a_press_since_the_task_began_stops_a_runner_before_its_first_epoch(small_data):
    # A search over many fits passes the count of Ctrl-C presses seen when it began: a press
    # during an earlier fit of the search stops the later ones too, without a new press.
    from fastmlp._engine import interrupt_count
    X, y = small_data
    model = MLP([3, 4, 1], seed=0)
    before = model.params.copy()
    orders = np.arange(len(X), dtype=np.intp)[None, :]
    with EpochRunner(model, *_encoded(model, X, y), None, 8, 0,
                     interrupt_mark=interrupt_count() - 1) as runner:
        assert runner.run(orders, np.array([0.1]), np.empty(1)) == 0
        assert runner.interrupted
    np.testing.assert_array_equal(model.params, before)
    with EpochRunner(model, *_encoded(model, X, y), None, 8, 0) as runner:   # a new task
        assert runner.run(orders, np.array([0.1]), np.empty(1)) == 1
        assert not runner.interrupted


def test_runners_in_threads_share_one_handler_and_give_it_back(small_data):
    from fastmlp._kernels import _train
    X, y = small_data
    before = _train.interrupt_handler_state()
    models = [MLP([3, 4, 1], seed=s) for s in range(3)]
    runners = [EpochRunner(m, *_encoded(m, X, y), None, 8, 0) for m in models]
    for r in runners:
        r.__enter__()
    assert _train.interrupt_handler_state() == (before[0] + 3, True)
    for r in runners:
        r.__exit__(None, None, None)
    assert _train.interrupt_handler_state() == before


def test_the_output_bound_proves_finiteness_of_ordinary_models_and_not_of_overflowing_ones():
    from fastmlp._engine import outputs_provably_finite
    for act in ["relu", "tanh", ("elu", 2.0), "softplus", "mish", ("leaky_relu", 3.0)]:
        model = MLP([3, 8, 8, 2], seed=0, hidden_activation=act, batch_norm=[True, False],
                    loss="squared_error")
        assert outputs_provably_finite(model, 10.0)
    model = MLP([3, 8, 1], seed=0, dtype=np.float32)
    model.W[0][:] = 3e37
    assert not outputs_provably_finite(model, 10.0)

