"""BLAS threads (fastmlp._threads): limits that work from any thread, and the default policy
(a fit alone uses every core for its large products, concurrent fits share them)."""
import os
import threading

import numpy as np
import pytest
import threadpoolctl

import fastmlp
from fastmlp import MLP, _threads

WIDE = [784, 512, 256, 10]          # products far above MULTITHREAD_MIN for batches of 200


def blas_counts():
    """The thread count of every BLAS library loaded in the process."""
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"]


@pytest.fixture
def original_counts():
    """BLAS's own thread counts; fastmlp's setting and those counts are restored after."""
    previous = fastmlp.get_num_threads()
    before = blas_counts()
    if not before:
        pytest.skip(f"threadpoolctl {threadpoolctl.__version__} finds no BLAS library in this "
                    f"process (older versions do not know the scipy_openblas wheels' names)")
    yield before
    fastmlp.set_num_threads(previous)
    assert blas_counts() == before, "the original limits were not restored"


@pytest.fixture
def default_policy(original_counts):
    """fastmlp's default policy."""
    fastmlp.set_num_threads("auto")
    return original_counts


@pytest.fixture
def main_thread_controls_openblas():
    """Make the main thread threadpoolctl's "controlling thread" of OpenBLAS, as any earlier
    limit set from it does with threadpoolctl >= 3.8: from then on, limits set through
    threadpoolctl's API in another thread are silently ignored."""
    threadpoolctl.ThreadpoolController().limit(
        limits=max(blas_counts()), user_api="blas").restore_original_limits()
    yield
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    if hasattr(controller, "clear_controlling_thread"):
        controller.clear_controlling_thread(force=True)


def wide_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, WIDE[0])), rng.integers(0, 10, size=n)


def train_recording(model, X, y, seen, barrier=None, epochs=2):
    """Train ``model``; after its first epoch (inside the fit, between two kernel calls)
    wait for ``barrier`` and record the BLAS thread counts in ``seen``."""
    def record(m, epoch, logs):
        if epoch == 1:
            if barrier is not None:
                barrier.wait(timeout=60)
            seen.append(blas_counts())
            if barrier is not None:
                barrier.wait(timeout=60)

    model.train(X, y, epochs=epochs, batch_size=200, verbose=False, callbacks=[record])


def test_a_worker_threads_fit_runs_under_the_limit_while_another_thread_trains(
        original_counts, main_thread_controls_openblas):
    X, y = wide_data()
    fastmlp.set_num_threads(1)
    seen = []
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=train_recording,
                                args=(MLP(WIDE, lr=0.01, seed=s), X, y, seen, barrier))
               for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [[1] * len(original_counts)] * 2


def test_concurrent_fits_share_the_cores_and_a_lone_fit_uses_them(
        default_policy, main_thread_controls_openblas):
    cores = min(_threads.cores(), *default_policy)
    X, y = wide_data()
    alone = []
    worker = threading.Thread(target=train_recording, args=(MLP(WIDE, seed=0), X, y, alone))
    worker.start()
    worker.join()
    assert alone == [[cores] * len(default_policy)]
    together = []
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=train_recording,
                                args=(MLP(WIDE, lr=0.01, seed=s), X, y, together, barrier))
               for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == [[max(1, cores // 2)] * len(default_policy)] * 2


def test_a_single_wide_estimator_fit_uses_every_core(default_policy, monkeypatch):
    pytest.importorskip("sklearn")
    from fastmlp import MLPClassifier, _engine
    seen = []
    run = _engine.EpochRunner.run

    def recording(self, *args, **kwargs):
        seen.append(blas_counts())
        return run(self, *args, **kwargs)

    monkeypatch.setattr(_engine.EpochRunner, "run", recording)
    X, y = wide_data(300)
    MLPClassifier(hidden_layer_sizes=WIDE[1:3], max_iter=2).fit(X, y)
    cores = min(_threads.cores(), *default_policy)
    assert seen and all(counts == [cores] * len(default_policy) for counts in seen)


def test_small_products_run_on_one_thread_and_set_num_threads_overrides(default_policy):
    X, y = wide_data()
    small = []
    train_recording(MLP([784, 16, 10], seed=0), X, y, small)
    assert small == [[1] * len(default_policy)]
    fastmlp.set_num_threads(2)
    forced = []
    train_recording(MLP([784, 64, 10], seed=0), X, y, forced)
    assert forced == [[2] * len(default_policy)]
    fastmlp.set_num_threads(None)             # BLAS's own setting, untouched
    untouched = []
    train_recording(MLP(WIDE, seed=0), X, y, untouched)
    assert untouched == [default_policy]


def test_the_policy_does_not_depend_on_the_machines_load(default_policy, monkeypatch):
    """The thread count is a rule on this process's fits, not a guess from the load average
    (which counts the process's own earlier work: after a while a lone fit got one thread)."""
    X, y = wide_data()
    cores = min(_threads.cores(), *default_policy)
    seen = []
    for load in (0.0, float(cores + 3)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        train_recording(MLP(WIDE, seed=0), X, y, seen)
    assert seen == [[cores] * len(default_policy)] * 2


@pytest.mark.parametrize("running, original, n_cores, expected", [
    ([], 2, 2, 1),
    ([1 << 26], 2, 2, 2),
    ([1 << 26], 8, 4, 4),               # the cores the process may use
    ([1 << 26], 1, 4, 1),               # BLAS's own setting caps it
    ([1 << 26, 1 << 26], 2, 2, 1),
    ([1 << 26, 1 << 26], 4, 4, 2),
    ([1 << 26, 1 << 10], 4, 4, 2),      # a small fit keeps a core busy too
    ([1 << 26] * 3, 2, 2, 1),           # never below one
    ([1 << 20, 1 << 20], 2, 2, 1),      # no large products: one thread
])
def test_the_auto_rule(running, original, n_cores, expected):
    assert _threads.policy(running, original, n_cores) == expected


def test_a_small_fit_running_beside_a_large_one_takes_its_share_of_the_cores(default_policy):
    cores = min(_threads.cores(), *default_policy)
    X, y = wide_data()
    seen, small_seen = [], []
    inside = threading.Barrier(2)

    def small_fit():
        rng = np.random.default_rng(3)
        Xs = rng.normal(size=(64, 2))
        ys = (Xs[:, 0] > 0).astype(int)
        # Tiny products (never threaded by BLAS): the fit still counts while it runs.
        train_recording(MLP([2, 4, 1], seed=0), Xs, ys, small_seen, inside)

    worker = threading.Thread(target=small_fit)
    worker.start()
    try:
        train_recording(MLP(WIDE, seed=0), X, y, seen, inside)
    finally:
        worker.join()
    assert seen == [[max(1, cores // 2)] * len(default_policy)]
    after = []
    train_recording(MLP(WIDE, seed=0), X, y, after)         # alone again: every core
    assert after == [[cores] * len(default_policy)]


def test_an_outer_limit_caps_the_policy(default_policy):
    X, y = wide_data()
    seen = []
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        train_recording(MLP(WIDE, seed=0), X, y, seen)
    assert seen == [[1] * len(default_policy)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "all"])
def test_set_num_threads_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="integer >= 1, 'auto' or None"):
        fastmlp.set_num_threads(bad)


def test_blocks_may_end_in_any_order(default_policy):
    """Runners entered one after another in a thread may be left in the order they were
    entered (not nested): the policy's bookkeeping must come back to nothing active."""
    blocks = [_threads.blas_threads(1 << 30) for _ in range(3)]
    for block in blocks:
        block.__enter__()
    assert len(_threads._fits) == 1                   # nested in one thread: one fit
    for block in blocks:
        block.__exit__(None, None, None)
    assert _threads._local.depth == 0 and not _threads._fits
    assert blas_counts() == default_policy


def test_the_threads_of_a_stack_share_the_cores(default_policy, monkeypatch):
    """``MLPStack.train(n_jobs=2)`` trains its groups in two threads: each is a fit."""
    from fastmlp._kernels import _train
    from fastmlp.stack import MLPStack
    cores = min(_threads.cores(), *default_policy)
    seen = []
    barrier = threading.Barrier(2)
    original = _train.train_stack_epochs

    def recording(*args, **kwargs):
        barrier.wait(timeout=60)                # both groups inside their blocks
        seen.append(blas_counts())
        barrier.wait(timeout=60)
        return original(*args, **kwargs)

    monkeypatch.setattr(_train, "train_stack_epochs", recording)
    X, y = wide_data(200)
    MLPStack([MLP(WIDE, seed=s) for s in (0, 1)]).train(X, y, epochs=1, batch_size=200,
                                                        n_jobs=2)
    assert seen == [[max(1, cores // 2)] * len(default_policy)] * 2
