"""The batch orders drawn inside the kernel are NumPy's, draw for draw.

``_train.shuffle_rows`` (the kernel's draw, callable from Python) against ``permutation``,
``permuted`` and scikit-learn's composed shuffles; a fit whose orders the kernel draws against
the same fit with the orders drawn by NumPy and handed to the kernel (``_engine``'s fallback
for a NumPy whose shuffle the kernel does not reproduce): the same weights, history and
generator state after. And the safety net that picks the fallback.
"""
import copy
import threading

import numpy as np
import pytest

from fastmlp import MLP, _engine
from fastmlp._kernels import _train
from fastmlp.callbacks import Callback

BIT_GENERATORS = [np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64,
                  np.random.PCG64DXSM]
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 140, 255, 256, 257,
         1000, 4096, 4097]


def generators(kind, seed):
    """Two generators in the same state."""
    return kind(seed), kind(seed)


def same_state(a, b):
    """Two bit generators' ``state`` dicts (which may hold arrays) are equal."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_the_kernels_draw_is_permutation_for_every_size_and_leaves_the_same_state(
        bit_generator, seed):
    ours = np.random.Generator(bit_generator(seed))
    numpys = np.random.Generator(bit_generator(seed))
    for n in SIZES:
        np.testing.assert_array_equal(_train.shuffle_rows(ours, n, 2),
                                      [numpys.permutation(n), numpys.permutation(n)])
    assert same_state(ours.bit_generator.state, numpys.bit_generator.state)
    # The next draws agree too, 32-bit ones included (PCG64 keeps half a draw for them).
    assert ours.integers(0, 2**32, size=5, dtype=np.uint32).tolist() == \
        numpys.integers(0, 2**32, size=5, dtype=np.uint32).tolist()


@pytest.mark.parametrize("n", [1, 2, 3, 140, 100_003])
def test_the_kernels_draw_is_permuted_over_epochs_and_shuffle_of_a_base_order(n):
    ours, numpys = generators(np.random.default_rng, n)
    base = np.random.default_rng(99).choice(3 * n, size=n, replace=False).astype(np.intp)
    drawn = _train.shuffle_rows(ours, base, 4)
    np.testing.assert_array_equal(drawn, numpys.permuted(np.tile(base, (4, 1)), axis=1))
    # shuffle in place of a float copy: the same swaps whatever the items
    values = base.astype(np.float64)
    numpys.shuffle(values)
    np.testing.assert_array_equal(_train.shuffle_rows(ours, base, 1)[0], values)
    assert ours.bit_generator.state == numpys.bit_generator.state
    assert sorted(drawn[0].tolist()) == sorted(base.tolist())


@pytest.mark.parametrize("n", [1, 2, 3, 9, 140, 5000])
def test_a_random_states_composed_draws_are_scikit_learns_shuffles(n):
    from sklearn.utils import shuffle
    ours, numpys = generators(np.random.RandomState, 3)
    base = np.arange(n, dtype=np.intp)[::-1].copy()
    drawn = _train.shuffle_rows(ours, base, 5, carry=True)
    sample_idx = base
    for order in drawn:
        sample_idx = shuffle(sample_idx, random_state=numpys)
        np.testing.assert_array_equal(order, sample_idx)
    assert ours.randint(0, 2**32, size=5, dtype=np.uint32).tolist() == \
        numpys.randint(0, 2**32, size=5, dtype=np.uint32).tolist()
    # A RandomState's own bit generator, given as such, is the same stream.
    a, b = generators(np.random.RandomState, 4)
    np.testing.assert_array_equal(_train.shuffle_rows(a._bit_generator, n, 1)[0],
                                  b.permutation(n))


def test_shuffle_rows_edges_and_refusals():
    rng = np.random.default_rng(0)
    state = copy.deepcopy(rng.bit_generator.state)
    assert _train.shuffle_rows(rng, 0, 3).shape == (3, 0)
    assert _train.shuffle_rows(rng, 5, 0).shape == (0, 5)
    assert _train.shuffle_rows(rng, 1, 4).tolist() == [[0]] * 4
    assert rng.bit_generator.state == state         # nothing to draw: nothing drawn
    with pytest.raises(ValueError, match="epochs"):
        _train.shuffle_rows(rng, 3, -1)
    with pytest.raises(ValueError, match="n must be"):
        _train.shuffle_rows(rng, -3, 1)
    with pytest.raises(TypeError, match="Generator, RandomState or BitGenerator"):
        _train.shuffle_rows(object(), 3, 1)
    with pytest.raises(ValueError):
        _train.shuffle_rows(rng, np.arange(3, dtype=np.int32), 1)   # intp only


def test_the_generators_lock_is_held_while_drawing():
    rng = np.random.default_rng(0)
    finished = threading.Event()

    def draw():
        _train.shuffle_rows(rng, 10, 1)
        finished.set()

    with rng.bit_generator.lock:
        worker = threading.Thread(target=draw)
        worker.start()
        assert not finished.wait(0.2)
    worker.join(5)
    assert finished.is_set()
    assert rng.bit_generator.lock.acquire(blocking=False)      # released by the worker
    rng.bit_generator.lock.release()


def _net_and_data(dtype, n=70, batch=16):
    model = MLP([3, 5, 2], seed=0, dtype=dtype, optimizer="adam", lr=0.01)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 3)).astype(dtype)
    Y = np.eye(2, dtype=dtype)[rng.integers(0, 2, n)]
    net = model._network(batch)
    return model, net, X, Y


def _train_with(model, net, X, Y, orders, count, batch=16, **kwargs):
    """Parameters, losses and status after a kernel call of ``count`` epochs (of rates and
    losses) on a copy of model's state."""
    params, opt, bn = model.params.copy(), model._opt_state.copy(), model.bn_state.copy()
    step = np.zeros(1, dtype=np.int64)
    ws = np.empty(net.workspace_size, dtype=model.dtype)
    losses = np.empty(count)
    rates = np.linspace(0.05, 0.01, count)
    status, done = _train.train_epochs(net, params, opt, bn, step, X, Y, None, orders, rates,
                                       batch, 0, ws, losses, None, **kwargs)
    return params, losses, (status, done, int(step[0]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("carry", [False, True])
def test_training_on_the_kernels_draws_equals_training_on_numpys_orders(dtype, carry):
    model, net, X, Y = _net_and_data(dtype)
    base = np.arange(5, 70, dtype=np.intp)[::-1].copy()        # a subset of the rows
    epochs = 7
    numpys = np.random.default_rng(5)
    orders, previous = np.empty((epochs, len(base)), dtype=np.intp), base
    for e in range(epochs):
        orders[e] = previous[numpys.permutation(len(base))]
        previous = orders[e] if carry else base
    expected = _train_with(model, net, X, Y, orders, epochs)
    ours = np.random.default_rng(5)
    out = np.empty_like(base)
    got = _train_with(model, net, X, Y, base.reshape(1, -1), epochs, epochs=epochs,
                      generator=ours, carry=carry, order_out=out)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    np.testing.assert_array_equal(out, orders[-1])
    assert ours.bit_generator.state == numpys.bit_generator.state
    # Without a generator every epoch visits the base order.
    fixed = _train_with(model, net, X, Y, base.reshape(1, -1), epochs, epochs=epochs)
    np.testing.assert_array_equal(
        fixed[0], _train_with(model, net, X, Y, np.tile(base, (epochs, 1)), epochs)[0])


def test_train_epochs_refuses_a_generator_without_epochs_and_bad_bases():
    model, net, X, Y = _net_and_data(np.float64)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="give epochs"):
        _train_with(model, net, X, Y, np.zeros((2, 70), dtype=np.intp), 2, generator=rng)
    with pytest.raises(ValueError, match="one row"):
        _train_with(model, net, X, Y, np.zeros((2, 70), dtype=np.intp), 2, epochs=2,
                    generator=rng)
    with pytest.raises(ValueError, match="row indices"):
        _train_with(model, net, X, Y, np.full((1, 5), 70, dtype=np.intp), 2, epochs=2,
                    generator=rng)
    with pytest.raises(ValueError, match="order_out"):
        _train_with(model, net, X, Y, np.zeros((1, 5), dtype=np.intp), 2, epochs=2,
                    generator=rng, order_out=np.empty(4, dtype=np.intp))
    with pytest.raises(ValueError, match="per epoch"):
        _train_with(model, net, X, Y, np.zeros((1, 5), dtype=np.intp), 2, epochs=3,
                    generator=rng)


@pytest.fixture
def numpy_draws(monkeypatch):
    """Make the faces draw the orders with NumPy (the fallback for a NumPy whose shuffle the
    kernel does not reproduce)."""
    monkeypatch.setattr(_engine, "_KERNEL_DRAWS", {np.random.Generator: False,
                                                  np.random.RandomState: False})


def _kernel_calls(monkeypatch):
    calls = []
    original = _train.train_epochs

    def counted(*args, **kwargs):
        calls.append((args[8].shape, len(args) > 16 and args[16] is not None))
        return original(*args, **kwargs)

    monkeypatch.setattr(_train, "train_epochs", counted)
    return calls


def _fit(dtype, model_settings=None, **settings):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(140, 2)).astype(dtype)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    model = MLP([2, 4, 4, 1], **dict(dict(lr=0.3, seed=42, lr_decay=0.95, dtype=dtype),
                                     **(model_settings or {})))
    model.train(X, y, **dict(dict(epochs=150, batch_size=32, verbose=False), **settings))
    return model


SETTINGS = [
    ({}, dict(shuffle_seed=0)), ({}, {}), ({}, dict(shuffle=False)), ({}, dict(epochs=1)),
    ({}, dict(callbacks=[Callback()])),
    ({}, dict(shuffle_seed=3, epochs=20, callbacks=[Callback()])),
    (dict(lr_decay=None, schedule=lambda e: 0.1 / e), dict(epochs=130)),
    (dict(lr_decay=None, optimizer="adam", lr=0.01, early_stopping=True), dict(epochs=30)),
    (dict(dropout=0.2), dict(batch_size=7, epochs=40)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join([*s[0], *s[1]]) or "default")
def test_a_fit_on_the_kernels_draws_equals_the_fit_on_numpys(dtype, settings, monkeypatch):
    ours = _fit(dtype, *copy.deepcopy(settings[:1]), **settings[1])
    with monkeypatch.context() as m:
        m.setattr(_engine, "_KERNEL_DRAWS", {np.random.Generator: False})
        numpys = _fit(dtype, *copy.deepcopy(settings[:1]), **settings[1])
    np.testing.assert_array_equal(ours.params, numpys.params)
    assert ours.history == numpys.history
    assert ours.lr == numpys.lr
    # Later calls continue the model's stream: it is where NumPy's draws leave it.
    assert ours._rng.bit_generator.state == numpys._rng.bit_generator.state


def test_a_fit_with_no_python_between_epochs_is_one_kernel_call_without_orders(
        monkeypatch):
    calls = _kernel_calls(monkeypatch)
    _fit(np.float64, shuffle_seed=0)
    assert calls == [((1, 140), True)]
    calls.clear()
    _fit(np.float64, shuffle=False)
    assert calls == [((1, 140), False)]
    calls.clear()
    _fit(np.float64, epochs=3, callbacks=[Callback()])      # one epoch per call, still drawn
    assert calls == [((1, 140), True)] * 3


def test_the_fallback_draws_blocks_of_orders_with_numpy(numpy_draws, monkeypatch):
    calls = _kernel_calls(monkeypatch)
    _fit(np.float64, shuffle_seed=0)
    per_call = _engine.MAX_ORDER_ENTRIES // 140
    assert calls == [((per_call, 140), False), ((per_call, 140), False),
                     ((150 - 2 * per_call, 140), False)]


def test_the_safety_net_checks_once_and_falls_back_when_the_draws_differ(monkeypatch):
    monkeypatch.setattr(_engine, "_KERNEL_DRAWS", {})
    assert _engine.draws_in_kernel(np.random.default_rng(1))
    assert _engine.draws_in_kernel(np.random.RandomState(1))
    assert _engine._KERNEL_DRAWS == {np.random.Generator: True, np.random.RandomState: True}

    class Generator(np.random.Generator):       # may shuffle otherwise
        pass

    assert not _engine.draws_in_kernel(Generator(np.random.PCG64(0)))
    assert not _engine.draws_in_kernel(object())
    # A NumPy whose shuffle draws otherwise (simulated: the kernel's draw off by one swap).
    original = _train.shuffle_rows

    def other(generator, base, epochs, carry=False):
        out = original(generator, base, epochs, carry)
        if out.shape[1] > 1:
            out[:, [0, 1]] = out[:, [1, 0]]
        return out

    expected = _fit(np.float64, shuffle_seed=0, epochs=3)
    monkeypatch.setattr(_engine, "_KERNEL_DRAWS", {})
    monkeypatch.setattr(_train, "shuffle_rows", other)
    assert not _engine.draws_in_kernel(np.random.default_rng(1))
    assert not _engine.draws_in_kernel(np.random.RandomState(1))
    calls = _kernel_calls(monkeypatch)
    model = _fit(np.float64, shuffle_seed=0, epochs=3)
    assert calls == [((3, 140), False)]                 # NumPy's orders, handed over
    assert model.history == expected.history
    np.testing.assert_array_equal(model.params, expected.params)


def test_the_engine_carries_a_random_states_order_across_calls():
    """What the scikit-learn estimators would call: a base order (the training split's rows)
    shuffled by scikit-learn's stream in the kernel, carried from call to call."""
    from sklearn.utils import shuffle
    model, net, X, Y = _net_and_data(np.float64)
    rows = np.arange(0, 70, 2, dtype=np.intp)
    twin = copy.deepcopy(model)
    ours, numpys = generators(np.random.RandomState, 8)
    order = rows.copy()
    losses = np.empty(4)
    with _engine.EpochRunner(model, X, Y, None, 16, 0) as runner:
        for count in (1, 3, 2):
            assert runner.run(order, np.full(count, 0.05), losses, ours, carry=True) == count
    sample_idx = np.arange(len(rows))
    with _engine.EpochRunner(twin, X, Y, None, 16, 0) as runner:
        for count in (1, 3, 2):
            orders = np.empty((count, len(rows)), dtype=np.intp)
            for e in range(count):
                sample_idx = shuffle(sample_idx, random_state=numpys)
                orders[e] = rows[sample_idx]
            runner.run(orders, np.full(count, 0.05), losses)
    np.testing.assert_array_equal(model.params, twin.params)
    np.testing.assert_array_equal(order, rows[sample_idx])


def test_ctrl_c_and_divergence_keep_their_semantics_with_the_kernels_draws(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2)) * 1e10
    y = (X[:, 0] > 0).astype(int)
    results = []
    for draws in ({}, {np.random.Generator: False}):
        monkeypatch.setattr(_engine, "_KERNEL_DRAWS", dict(draws))
        model = MLP([2, 3, 1], lr=1e300, seed=0)
        with pytest.raises(_engine.TrainingDiverged) as error:
            model.train(X, y, epochs=9, batch_size=4, verbose=False, shuffle_seed=8)
        results.append((error.value.epoch, error.value.what, model.params.copy(),
                        list(model.history["loss"]), int(model._step[0])))
    assert results[0][:2] == results[1][:2]
    np.testing.assert_array_equal(results[0][2], results[1][2])
    assert results[0][3:] == results[1][3:]
