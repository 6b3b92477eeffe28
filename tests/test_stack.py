"""MLPStack: every model of a stack ends exactly where MLP.train alone takes it."""
import re

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.stack import MLPStack

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", ("leaky_relu", 0.2), ("elu", 0.5), "gelu",
               "gelu_tanh", "silu", "softplus", "mish"]


def _data(task, n=103, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    if task == "binary":
        return X, (X[:, 0] * X[:, 1] > 0).astype(int), 1
    if task == "multiclass":
        return X, np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5]), 3
    if task == "multilabel":
        return X, np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0], axis=1).astype(int), 2
    return X, np.stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])], axis=1), 2


def _assert_each_model_matches_training_alone(models, X, y, epochs=4, batch_size=16,
                                              sample_weight=None, seed=3, n_jobs=2):
    stack = MLPStack(models)
    stack.train(X, y, epochs=epochs, batch_size=batch_size, shuffle_seed=seed,
                sample_weight=sample_weight, n_jobs=n_jobs)
    for k, model in enumerate(models):
        w = None if sample_weight is None else np.asarray(sample_weight)[k]
        model.train(X, y, epochs=epochs, batch_size=batch_size, shuffle_seed=seed,
                    sample_weight=w, verbose=False)
        trained = stack.models[k]
        for name in ("params", "bn_state", "_opt_state", "_step"):
            np.testing.assert_allclose(getattr(trained, name), getattr(model, name),
                                       rtol=0, atol=1e-10, err_msg=f"model {k}: {name}")
        assert trained.history["loss"] == pytest.approx(model.history["loss"], abs=1e-10)
        assert trained.lr == model.lr
    return stack


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_every_optimizer_with_per_model_rates_and_penalties(optimizer, n_jobs):
    X, y, _ = _data("binary")
    models = [MLP([4, 6, 5, 1], lr=lr, l2=l2, l1=l1, seed=s, optimizer=optimizer)
              for s, (lr, l2, l1) in enumerate([(0.05, 0, 0), (0.1, 1e-3, 0), (0.02, 0, 1e-3)])]
    _assert_each_model_matches_training_alone(models, X, y, n_jobs=n_jobs)


@pytest.mark.parametrize("sample_weight", [None, "folds"])
def test_first_layer_on_blas_reads_the_shared_sample_major_batch(sample_weight):
    """Input wide enough that the first layer's products go to BLAS (40 x 16 >= the switch-
    over): every model reads the batch the stack gathered sample-major, in the forward pass
    and in its weight gradient, with no feature-major copy, and still ends where it would
    alone (which reads its own sample-major copy), ragged last batch and held-out rows
    included."""
    X, y, _ = _data("multiclass", n=101, n_features=40)
    models = [MLP([40, 16, 3], lr=lr, seed=k, optimizer=opt)
              for k, (lr, opt) in enumerate([(0.05, "sgd"), (0.01, "adam"), (0.1, "momentum")])]
    assert models[0]._network(16).blas.tolist() == [1, 0]
    weights = None
    if sample_weight == "folds":
        folds = np.arange(101) % 3
        weights = np.stack([(folds != f).astype(float) for f in range(3)])
    _assert_each_model_matches_training_alone(models, X, y, batch_size=16,
                                              sample_weight=weights)


def test_every_activation_in_one_stack():
    X, y, _ = _data("binary")
    models = [MLP([4, 7, 1], lr=0.1, seed=k, hidden_activation=a)
              for k, a in enumerate(ACTIVATIONS)]
    _assert_each_model_matches_training_alone(models, X, y)


@pytest.mark.parametrize("task,loss", [("binary", "binary_crossentropy"),
                                       ("multiclass", "categorical_crossentropy"),
                                       ("multilabel", "binary_crossentropy"),
                                       ("regression", "squared_error"),
                                       ("regression", "absolute_error"),
                                       ("regression", "huber")])
def test_every_loss(task, loss):
    X, y, n_out = _data(task)
    models = [MLP([4, 6, n_out], lr=0.05, seed=k, loss=loss, optimizer=opt)
              for k, opt in enumerate(["sgd", "adam"])]
    _assert_each_model_matches_training_alone(models, X, y)


def test_dropout_batch_norm_clipping_and_schedules():
    X, y, _ = _data("multiclass")
    common = dict(loss="categorical_crossentropy", batch_norm=[True, False])
    models = [MLP([4, 8, 6, 3], lr=0.05, seed=0, dropout=[0.2, 0.1], **common),
              MLP([4, 8, 6, 3], lr=0.1, seed=1, dropout=0.0, optimizer="adam",
                  clip_norm=0.5, **common),
              MLP([4, 8, 6, 3], lr=0.1, seed=2, dropout=0.3, lr_decay=0.9, clip_value=0.1,
                  **common),
              MLP([4, 8, 6, 3], lr=0.1, seed=3, schedule="cosine", label_smoothing=0.1,
                  **common)]
    _assert_each_model_matches_training_alone(models, X, y, epochs=5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_validation_folds_as_zero_one_weights_with_held_out_rows_in_every_batch(dtype):
    X, y, _ = _data("binary", n=101)
    folds = np.arange(101) % 5           # every batch of 16 holds rows of every fold
    weights = np.stack([(folds != f).astype(float) for f in range(5)])
    models = [MLP([4, 6, 1], lr=0.1, seed=0, dtype=dtype, optimizer="rmsprop") for _ in range(5)]
    stack = _assert_each_model_matches_training_alone(models, X, y, batch_size=16,
                                                      sample_weight=weights)
    # The folds really differ: the held-out rows did not train their model.
    assert not np.array_equal(stack.params[0], stack.params[1])


def test_bootstrap_counts_as_weights_and_one_weight_row_for_all():
    X, y, _ = _data("regression")
    rng = np.random.default_rng(1)
    counts = np.stack([np.bincount(rng.integers(0, 103, 103), minlength=103) for _ in range(3)])
    models = [MLP([4, 5, 2], lr=0.05, seed=k, loss="squared_error") for k in range(3)]
    _assert_each_model_matches_training_alone(models, X, y, sample_weight=counts)
    shared = rng.uniform(0.5, 2, size=103)
    models = [MLP([4, 5, 2], lr=0.05, seed=k, loss="squared_error") for k in range(2)]
    _assert_each_model_matches_training_alone(models, X, y, sample_weight=np.stack([shared] * 2))


def test_full_batch_and_ragged_last_batch():
    X, y, _ = _data("binary", n=50)
    for batch in (None, 7, 50, 64):
        models = [MLP([4, 3, 1], lr=0.2, seed=k) for k in range(2)]
        _assert_each_model_matches_training_alone(models, X, y, batch_size=batch)


def test_a_diverging_model_stops_alone_and_keeps_its_last_finite_state():
    X, y, _ = _data("regression")
    X = X * 1e3
    models = [MLP([4, 6, 2], lr=lr, seed=0, loss="squared_error") for lr in (1e-6, 1e3)]
    stack = MLPStack(models)
    stack.train(X, y, epochs=6, batch_size=16, shuffle_seed=0)
    assert list(stack.diverged_) == [1] and "diverged" in stack.diverged_[1]
    assert np.all(np.isfinite(stack.params))
    assert len(stack.history[0]["loss"]) == 6
    assert len(stack.history[1]["loss"]) < 6
    alone = models[0]
    alone.train(X, y, epochs=6, batch_size=16, shuffle_seed=0, verbose=False)
    np.testing.assert_array_equal(stack.params[0], alone.params)


def test_models_are_independent_copies_and_the_originals_are_untouched():
    X, y, _ = _data("binary")
    original = MLP([4, 5, 1], seed=0)
    before = original.params.copy()
    stack = MLPStack([original, MLP([4, 5, 1], seed=1)])
    stack.train(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(original.params, before)
    copy = stack.models[0]
    copy.params[:] = 0
    assert np.any(stack.params[0] != 0)
    assert copy.W[0].base is not None and np.shares_memory(copy.W[0], copy.params)


def test_from_grid_builds_every_combination_and_seed():
    stack = MLPStack.from_grid(MLP([3, 4, 1], lr=0.1, optimizer="adam"),
                               {"lr": [0.1, 0.01], "l2": [0.0, 1e-3, 1e-2]}, seeds=[0, 1])
    assert len(stack) == 12
    lrs = sorted({m.base_lr for m in stack.models})
    assert lrs == [0.01, 0.1]
    assert all(m.optimizer.name == "adam" for m in stack.models)
    with pytest.raises(ValueError, match="unknown MLP settings"):
        MLPStack.from_grid(MLP([3, 4, 1]), {"learning_rate": [0.1]})


@pytest.mark.parametrize("grid, seeds, error, match", [
    ({"lr": 0.1}, None, TypeError, "'lr' must be a list of values"),
    ({"lr": "0.1"}, None, TypeError, "'lr' must be a list of values"),
    ({"lr": []}, None, ValueError, "'lr' is an empty list"),
    ({"layer_sizes": [[3, 2, 1]]}, None, ValueError, "share base's layer_sizes"),
    ({"lr": [-1.0]}, None, ValueError, "lr"),
    ([{"lr": [0.1]}, 3], None, TypeError, "param_grid must be"),
    ("lr", None, TypeError, "param_grid must be"),
    ({"lr": [0.1]}, 3, TypeError, "seeds must be a list"),
])
def test_from_grid_refuses_bad_grids_clearly(grid, seeds, error, match):
    with pytest.raises(error, match=match):
        MLPStack.from_grid(MLP([3, 4, 1]), grid, seeds=seeds)


def test_from_grid_models_share_no_setting_objects_with_each_other_or_the_base():
    """The stack takes from_grid's new models without copying them again: each must own its
    optimizer, schedule and lists, whether they came from the base or from the grid."""
    from fastmlp.optimizers import Adam
    from fastmlp.schedules import StepDecay
    base = MLP([3, 4, 1], optimizer=Adam(beta1=0.8), schedule=StepDecay(2, gamma=0.5),
               dropout=[0.1])
    stack = MLPStack.from_grid(base, {"l2": [0.0, 1e-3], "optimizer": [Adam(beta1=0.7)]},
                               seeds=[0, 1])
    models = stack._models
    owned = [(m.optimizer, m.schedule) for m in models] + [(base.optimizer, base.schedule)]
    assert len({id(o) for o, _ in owned}) == len(owned)
    assert len({id(s) for _, s in owned}) == len(owned)
    models[0].optimizer.beta1 = 0.5
    assert [m.optimizer.beta1 for m in models[1:]] == [0.7] * 3 and base.optimizer.beta1 == 0.8
    assert all(np.shares_memory(m.params, stack.params) for m in models)
    assert all(np.shares_memory(m.W[0], stack.params[k]) for k, m in enumerate(models))
    X, y, _ = _data("binary", n_features=3)
    stack.train(X, y, epochs=3, batch_size=16, shuffle_seed=0)
    for k, m in enumerate(models):
        np.testing.assert_array_equal(m.W[0].ravel(), stack.params[k, :12])


def test_rates_shared_between_models_equal_each_models_own():
    """Models with equal built-in schedules and base rates share one computation of their
    rates; every model's history of rates is still its own schedule's."""
    from fastmlp.schedules import LambdaSchedule
    X, y, _ = _data("binary")
    models = [MLP([4, 3, 1], lr=lr, seed=s, lr_decay=0.9) for lr in (0.1, 0.2) for s in (0, 1)]
    models += [MLP([4, 3, 1], lr=0.1, seed=2, schedule=LambdaSchedule(lambda e: 0.3 / e))]
    stack = MLPStack(models)
    stack.train(X, y, epochs=70, batch_size=50, shuffle_seed=0)
    for k, m in enumerate(models):
        expected = m._resolve_schedule(70).rates(m.base_lr, 70)
        assert stack.history[k]["lr"] == expected.tolist()


def test_a_bad_rate_names_its_epoch():
    from fastmlp.schedules import LambdaSchedule
    X, y, _ = _data("binary")
    bad = MLP([4, 3, 1], seed=1, schedule=LambdaSchedule(lambda e: 0.1 if e < 60 else -1.0))
    stack = MLPStack([MLP([4, 3, 1], seed=0), bad])
    with pytest.raises(ValueError, match="epoch 60"):
        stack.train(X, y, epochs=100, batch_size=50)


@pytest.mark.parametrize("models,error,match", [
    ([], TypeError, "non-empty"),
    ([MLP([2, 3, 1]), "x"], TypeError, r"models\[1\]"),
    ([MLP([2, 3, 1]), MLP([2, 4, 1])], ValueError, "layer_sizes"),
    ([MLP([2, 3, 1]), MLP([2, 3, 1], dtype=np.float32)], ValueError, "dtype"),
    ([MLP([2, 3, 1]), MLP([2, 3, 1], batch_norm=True)], ValueError, "batch_norm"),
])
def test_incompatible_models_are_refused(models, error, match):
    with pytest.raises(error, match=match):
        MLPStack(models)


def test_bad_input_raises_and_leaves_the_stack_unchanged():
    X, y, _ = _data("binary")
    stack = MLPStack([MLP([4, 3, 1], seed=k) for k in range(2)])
    before = stack.params.copy()
    for kwargs in ({"sample_weight": np.ones((3, 103))},
                   {"sample_weight": -np.ones((2, 103))},
                   {"sample_weight": np.zeros((2, 103))},
                   {"epochs": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            stack.train(X, y, **kwargs)
    with pytest.raises(ValueError):
        stack.train(X[:, :3], y)
    with pytest.raises(ValueError):
        stack.train(np.where(X > 1, np.nan, X), y)
    np.testing.assert_array_equal(stack.params, before)


def test_one_weight_vector_serves_every_model_without_a_copy_per_model():
    X, y, _ = _data("binary")
    w = np.random.default_rng(2).uniform(0.1, 3, size=103)
    models = [MLP([4, 5, 1], lr=0.1, seed=k) for k in range(3)]
    stack = MLPStack(models)
    stack.train(X, y, epochs=3, batch_size=16, shuffle_seed=1, sample_weight=w)
    for k, model in enumerate(models):
        model.train(X, y, epochs=3, batch_size=16, shuffle_seed=1, sample_weight=w,
                    verbose=False)
        np.testing.assert_array_equal(stack.params[k], model.params)


def test_a_stopped_model_is_left_alone_and_not_reported_as_diverged():
    """StackRunner.stop (a caller's stopping rule, between kernel calls): the stopped model's
    buffers stay as they are, the others train on exactly as alone."""
    from fastmlp import _engine
    X, y, _ = _data("binary")
    models = [MLP([4, 6, 1], lr=0.1, seed=k, optimizer="adam") for k in range(3)]
    stack = MLPStack(models)
    first = stack._models[0]
    Xc = first._check_X(X)
    Y, _, _ = first._encode_targets(y, X.shape[0])
    runner = _engine.StackRunner(stack, Xc, Y, None, np.ones(3), np.zeros(3, dtype=np.uint8),
                                 16, np.zeros(3, dtype=np.uint64), 2)
    orders = np.tile(np.arange(X.shape[0]), (2, 1))
    rates = np.full((2, 3), 0.1)
    losses = np.empty((2, 3))
    with runner:
        runner.run(orders, rates, losses)
        kept = stack.params[1].copy()
        runner.stop(1)
        done = runner.run(orders, rates, losses)
    assert done.tolist() == [2, 0, 2] and runner.active() and runner.diverged == {}
    np.testing.assert_array_equal(stack.params[1], kept)
    alone = MLP([4, 6, 1], lr=0.1, seed=0, optimizer="adam")
    alone.train(X, y, epochs=4, batch_size=16, shuffle=False, verbose=False)
    np.testing.assert_allclose(stack.params[0], alone.params, rtol=0, atol=1e-10)
    for k in (0, 2):
        runner.stop(k)
    assert not runner.active()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_the_kernels_stopping_rule_stops_each_model_where_the_python_rule_does(n_jobs):
    """StackRunner.run(..., rule): scikit-learn's rule on the training loss (tol, patience)
    and max_iter, run by the kernel after every epoch, stops each model at the epoch where the
    same rule run in Python on the losses of an unstopped twin stops it, with the same
    buffers; a stopped model is left alone by the rest of the call."""
    from fastmlp import _engine
    from fastmlp._kernels import _train
    X, y, _ = _data("binary")
    K, epochs = 6, 40
    tol = np.array([1e-4, 1e-2, 1e-3, 0.0, 5e-2, 1e-4])
    patience = np.array([3.0, 1.0, 2.0, np.inf, 0.0, 5.0])
    max_iter = np.array([40, 40, 12, 25, 40, 7], dtype=np.intp)

    def new_stack():
        return MLPStack([MLP([4, 5, 1], lr=lr, seed=k, optimizer=opt)
                         for k, (lr, opt) in enumerate(zip([0.3, 0.1, 0.5, 0.05, 1.0, 0.2],
                                                           ["sgd", "adam"] * 3))])

    rng = np.random.default_rng(0)
    orders = np.stack([rng.permutation(X.shape[0]) for _ in range(epochs)])
    rates = np.tile([0.3, 0.1, 0.5, 0.05, 1.0, 0.2], (epochs, 1))

    def runner_for(stack):
        first = stack._models[0]
        Y, _, _ = first._encode_targets(y, X.shape[0])
        return _engine.StackRunner(stack, first._check_X(X), Y, None, np.ones(K),
                                   np.zeros(K, dtype=np.uint8), 16,
                                   np.zeros(K, dtype=np.uint64), n_jobs)

    # The rule in Python, on the losses of a stack trained epoch by epoch.
    twin = new_stack()
    expected_epochs = np.zeros(K, dtype=int)
    best, count = np.full(K, np.inf), np.zeros(K)
    with runner_for(twin) as runner:
        losses = np.empty((1, K))
        for e in range(epochs):
            runner.run(orders[e:e + 1], rates[e:e + 1], losses)
            for k in np.flatnonzero(runner.status == _train.Status.OK):
                loss = losses[0, k]
                count[k] = count[k] + 1 if loss > best[k] - tol[k] else 0
                best[k] = min(best[k], loss)
                expected_epochs[k] = e + 1
                if count[k] > patience[k] or e + 1 >= max_iter[k]:
                    runner.stop(k)
    stack = new_stack()
    rule = (tol, patience, np.full(K, np.inf), np.zeros(K), max_iter.copy())
    with runner_for(stack) as runner:
        losses = np.empty((epochs, K))
        done = runner.run(orders, rates, losses, rule)
    np.testing.assert_array_equal(done, expected_epochs)
    assert len(set(done.tolist())) > 3                 # the models stopped at different epochs
    assert np.all(runner.status == runner.STOPPED)
    assert runner.STOPPED == _train.STACK_STOPPED
    np.testing.assert_array_equal(rule[2], best)
    np.testing.assert_array_equal(rule[3], count)
    np.testing.assert_array_equal(rule[4], max_iter - expected_epochs)
    np.testing.assert_array_equal(stack.params, twin.params)
    with pytest.raises(ValueError, match="stopping rule needs"):
        _train.train_stack_epochs(
            runner.nets, stack.params, stack.opt_state, stack.bn_state, stack.steps,
            runner.X, runner.Y, None, np.ones(K), np.zeros(K, dtype=np.uint8), orders, rates,
            16, np.zeros(K, dtype=np.uint64), runner.workspaces, losses, runner.status,
            np.zeros(K, dtype=np.intp), rule_tol=tol)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_stack_trains_its_models(how):
    """A pickled or deep-copied stack's models are views of its rows again: training the copy
    trains them, exactly as training the original does."""
    import copy
    import pickle
    X, y, _ = _data("binary")
    stack = MLPStack.from_grid(MLP([4, 5, 1], seed=0), {"lr": [0.1, 0.3]}, seeds=[0, 1])
    stack.train(X, y, epochs=2, batch_size=16, shuffle_seed=0)
    twin = pickle.loads(pickle.dumps(stack)) if how == "pickle" else copy.deepcopy(stack)
    for s in (stack, twin):
        s.train(X, y, epochs=3, batch_size=16, shuffle_seed=1)
    np.testing.assert_array_equal(twin.params, stack.params)
    for k, model in enumerate(twin.models):
        np.testing.assert_array_equal(model.params, twin.params[k])
        assert len(model.history["loss"]) == 3
    np.testing.assert_array_equal(twin.predict_proba(X), stack.predict_proba(X))
    assert not np.shares_memory(twin.params, stack.params)


def test_concurrent_trains_of_one_stack_run_one_after_the_other():
    """As MLP.train: a second thread's train waits for the first (the kernels release the
    GIL, and the stack's rows are shared), so two concurrent calls equal two in a row."""
    import threading
    X, y, _ = _data("binary", n=2000, n_features=4)

    def make():
        return MLPStack.from_grid(MLP([4, 16, 1], seed=0), {"lr": [0.1, 0.3]}, seeds=[0, 1])
    reference = make()
    for _ in range(2):
        reference.train(X, y, epochs=5, batch_size=32, shuffle_seed=0, n_jobs=1)
    stack = make()
    threads = [threading.Thread(target=stack.train, args=(X, y),
                                kwargs=dict(epochs=5, batch_size=32, shuffle_seed=0, n_jobs=1))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(stack.params, reference.params)


def test_an_lr_set_after_construction_is_the_base_rate_as_in_mlp_train():
    X, y, _ = _data("binary")
    models = [MLP([4, 3, 1], lr=0.1, seed=k, lr_decay=0.9) for k in range(2)]
    models[1].lr = 0.5
    stack = _assert_each_model_matches_training_alone([m for m in models], X, y, epochs=3)
    assert stack.history[1]["lr"] == pytest.approx([0.5, 0.45, 0.405])


def test_a_copy_made_while_another_thread_trains_is_the_state_after_that_train():
    import pickle
    import threading
    import time
    X, y, _ = _data("binary", n=4000, n_features=4)
    stack = MLPStack.from_grid(MLP([4, 32, 1], seed=0), {"lr": [0.1, 0.3]})
    worker = threading.Thread(target=stack.train, args=(X, y),
                              kwargs=dict(epochs=20, batch_size=16, shuffle_seed=0, n_jobs=1))
    worker.start()
    while stack._lock.acquire(blocking=False):     # until the train holds the stack
        stack._lock.release()
        time.sleep(0.001)
    twin = pickle.loads(pickle.dumps(stack))
    worker.join()
    np.testing.assert_array_equal(twin.params, stack.params)
    assert [len(h["loss"]) for h in twin.history] == [20, 20]


def _grid_models_train_as_mlp(stack, expected, X, y, epochs=4, batch_size=16, seed=3):
    """Each model of ``stack`` trains exactly as the MLP built with its settings does alone."""
    assert len(stack) == len(expected)
    stack.train(X, y, epochs=epochs, batch_size=batch_size, shuffle_seed=seed)
    for k, (trained, model) in enumerate(zip(stack.models, expected)):
        model.train(X, y, epochs=epochs, batch_size=batch_size, shuffle_seed=seed,
                    verbose=False)
        for name in ("params", "bn_state", "_opt_state", "_step"):
            np.testing.assert_allclose(getattr(trained, name), getattr(model, name),
                                       rtol=0, atol=1e-10, err_msg=f"model {k}: {name}")
        assert trained.history["lr"] == model.history["lr"], k
        assert trained.history["loss"] == pytest.approx(model.history["loss"], abs=1e-10)


def test_from_grid_passes_on_every_constructor_setting_of_the_base():
    """Every setting of MLP's constructor (but seed, crossed in by seeds=) reaches the models,
    lr_decay included (it was dropped: the models' rate was constant), and lr_decay is a
    setting a grid may vary."""
    import inspect
    from fastmlp.io import _constructor_arguments
    from fastmlp.optimizers import Adam
    settings = dict(lr=0.05, l2=1e-3, hidden_activation=["tanh", ("leaky_relu", 0.2)],
                    lr_decay=0.8, dtype=np.float64, loss="binary_crossentropy", l1=1e-4,
                    optimizer=Adam(beta1=0.8), schedule=None, clip_norm=5.0, clip_value=1.0,
                    dropout=[0.1, 0.0], batch_norm=[True, False], init="xavier_uniform",
                    label_smoothing=0.1, huber_delta=2.0, early_stopping=False,
                    validation_fraction=0.2, patience=3, min_delta=1e-3)
    assert set(settings) | {"layer_sizes", "seed"} == set(inspect.signature(MLP).parameters)
    sizes = [4, 5, 3, 1]
    base = MLP(sizes, **settings)
    assert set(_constructor_arguments(base)) == set(settings) | {"layer_sizes"}
    X, y, _ = _data("binary")
    stack = MLPStack.from_grid(base, {"l2": [0.0, 1e-2]}, seeds=[0, 1])
    expected = [MLP(sizes, **{**settings, "optimizer": Adam(beta1=0.8), "l2": l2}, seed=s)
                for l2 in (0.0, 1e-2) for s in (0, 1)]
    _grid_models_train_as_mlp(stack, expected, X, y)
    assert stack.history[0]["lr"] == pytest.approx([0.05, 0.04, 0.032, 0.0256])
    # lr_decay in the grid; None there leaves the base's schedule (here constant).
    stack = MLPStack.from_grid(MLP(sizes, lr=0.2), {"lr_decay": [None, 0.5]}, seeds=[4])
    expected = [MLP(sizes, lr=0.2, lr_decay=d, seed=4) for d in (None, 0.5)]
    _grid_models_train_as_mlp(stack, expected, X, y, epochs=3)
    assert [h["lr"] for h in stack.history] == [[0.2] * 3, [0.2, 0.1, 0.05]]


def test_from_grid_schedule_and_lr_decay_of_the_grid_replace_the_bases():
    """A grid's schedule replaces the base's lr_decay, a grid's lr_decay the base's schedule
    (MLP takes only one of them); both in one grid point is MLP's clear error."""
    from fastmlp.schedules import StepDecay
    X, y, _ = _data("binary")
    stack = MLPStack.from_grid(MLP([4, 3, 1], lr_decay=0.9), {"schedule": [StepDecay(2)]},
                               seeds=[0])
    _grid_models_train_as_mlp(stack, [MLP([4, 3, 1], schedule=StepDecay(2), seed=0)], X, y)
    stack = MLPStack.from_grid(MLP([4, 3, 1], schedule=StepDecay(2)), {"lr_decay": [0.9]},
                               seeds=[0])
    _grid_models_train_as_mlp(stack, [MLP([4, 3, 1], lr_decay=0.9, seed=0)], X, y)
    with pytest.raises(ValueError, match="either lr_decay or schedule"):
        MLPStack.from_grid(MLP([4, 3, 1]), {"lr_decay": [0.9], "schedule": [StepDecay(2)]})


def test_from_grid_models_start_from_the_bases_seed():
    """Without seeds= or a grid's seed, each model is seeded as base was: a base built with
    seed=7 gives models that train as MLP(..., seed=7) (they were unseeded: irreproducible),
    also when base is a copy or was pickled; a base built without a seed gives models that
    start as base did, the same for every from_grid of that base."""
    import copy
    import pickle
    X, y, _ = _data("binary")
    sizes = [4, 6, 1]
    for base in (MLP(sizes, lr=0.2, seed=7), copy.deepcopy(MLP(sizes, lr=0.2, seed=7)),
                 pickle.loads(pickle.dumps(MLP(sizes, lr=0.2, seed=7)))):
        stack = MLPStack.from_grid(base, {"l2": [0.0, 1e-2]})
        expected = [MLP(sizes, lr=0.2, l2=l2, seed=7) for l2 in (0.0, 1e-2)]
        for model, alone in zip(stack.models, expected):
            np.testing.assert_array_equal(model.params, alone.params)
        _grid_models_train_as_mlp(stack, expected, X, y)
    unseeded = MLP(sizes, hidden_activation="tanh")
    first = MLPStack.from_grid(unseeded, {"lr": [0.1, 0.3]})
    again = MLPStack.from_grid(unseeded, {"lr": [0.1, 0.3]})
    np.testing.assert_array_equal(first.params, again.params)
    for model in first.models:
        np.testing.assert_array_equal(model.params, unseeded.params)


def test_from_grid_seed_in_the_grid_and_seeds_together_is_refused():
    with pytest.raises(ValueError, match="seed.*grid.*seeds="):
        MLPStack.from_grid(MLP([3, 4, 1]), {"seed": [0, 1], "lr": [0.1]}, seeds=[2, 3])
    with pytest.raises(ValueError, match="seed.*grid.*seeds="):
        MLPStack.from_grid(MLP([3, 4, 1]), [{"lr": [0.1]}, {"seed": [0]}], seeds=[2])
    stack = MLPStack.from_grid(MLP([3, 4, 1], seed=9), [{"seed": [0, 1]}, {"lr": [0.3]}])
    for model, seed in zip(stack.models, (0, 1, 9)):
        np.testing.assert_array_equal(model.params, MLP([3, 4, 1], seed=seed).params)


def test_from_grid_takes_a_base_rate_assigned_after_construction():
    """base.lr = x sets the base rate of base's next train (as in the lecture's SimpleMLP):
    from_grid's models start from it too (they were rebuilt with the constructor's)."""
    X, y, _ = _data("binary")
    base = MLP([4, 3, 1], lr=0.1, lr_decay=0.5, seed=0)
    base.lr = 0.4
    stack = MLPStack.from_grid(base, {"l2": [0.0, 1e-3]})
    assert [m.base_lr for m in stack.models] == [0.4, 0.4]
    expected = [MLP([4, 3, 1], lr=0.4, lr_decay=0.5, l2=l2, seed=0) for l2 in (0.0, 1e-3)]
    _grid_models_train_as_mlp(stack, expected, X, y, epochs=3)
    assert stack.history[0]["lr"] == [0.4, 0.2, 0.1]
    base.train(X, y, epochs=2, verbose=False)       # lr is now the last epoch's rate, 0.2
    assert [m.base_lr for m in MLPStack.from_grid(base, {"l2": [0.0]}).models] == [0.4]


@pytest.mark.parametrize("weight, shape", [(np.ones(49), "(49,)"), (np.ones((3, 50)), "(3, 50)"),
                                           (np.array(["a"] * 50), "(50,)"),
                                           (np.ones((2, 50, 1)), "(2, 50, 1)")])
def test_a_bad_sample_weight_is_named_by_the_shape_given(weight, shape):
    """The message showed the reshaped (1, n) weights of a 1-D sample_weight."""
    X, y, _ = _data("binary", n=50)
    stack = MLPStack.from_grid(MLP([4, 3, 1], seed=0), {"lr": [0.1, 0.2]})
    with pytest.raises(ValueError, match=rf"got shape {re.escape(shape)},"):
        stack.train(X, y, epochs=1, sample_weight=weight)
    for weight, name in ((-np.ones(50), "sample_weight must"),
                         (np.stack([np.ones(50), np.zeros(50)]), r"sample_weight\[1\] must")):
        with pytest.raises(ValueError, match=name):
            stack.train(X, y, epochs=1, sample_weight=weight)


@pytest.mark.parametrize("n_jobs", [-1, -2, -1000])
def test_negative_n_jobs_count_cores_as_joblib_does(n_jobs):
    """-1 is every core (as in joblib, MLPSearchCV and the ensembles), -2 all but one..., at
    least one; the results do not depend on it. 0 and non-integers are refused."""
    X, y, _ = _data("binary")
    stacks = [MLPStack.from_grid(MLP([4, 3, 1], seed=0), {"lr": [0.1, 0.2, 0.3]})
              for _ in range(2)]
    stacks[0].train(X, y, epochs=3, batch_size=16, shuffle_seed=0, n_jobs=n_jobs)
    stacks[1].train(X, y, epochs=3, batch_size=16, shuffle_seed=0, n_jobs=1)
    np.testing.assert_array_equal(stacks[0].params, stacks[1].params)
    for bad, error in ((0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n_jobs"):
            stacks[0].train(X, y, epochs=1, n_jobs=bad)
