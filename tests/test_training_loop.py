"""The Python loop around the kernels: interruption by Ctrl-C, the progress bar, copies."""
import copy
import os
import pickle
import signal
import sys
import threading

import numpy as np
import pytest

from fastmlp import MLP


def data(n=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@pytest.mark.parametrize("verbose", [False, True])
def test_ctrl_c_stops_at_the_end_of_an_epoch_and_keeps_the_weights(verbose, capsys):
    # Many epochs in one kernel call (verbose=False) or one per call (True): either way a SIGINT
    # ends training after the current epoch, without an exception.
    X, y = data(4000, 32)
    model = MLP([32, 256, 256, 1], lr=0.01, seed=0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        model.train(X, y, epochs=100_000, batch_size=32, verbose=verbose)
    finally:
        timer.cancel()
    done = len(model.history["loss"])
    assert 0 < done < 100_000
    assert np.all(np.isfinite(model.params))
    assert "interrupted (Ctrl-C) after epoch" in capsys.readouterr().err
    # The handler is gone afterwards: the next SIGINT is Python's KeyboardInterrupt again.
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass


def test_progress_bar_or_fallback_lines(capsys):
    X, y = data()
    model = MLP([8, 16, 1], seed=0)
    try:
        import tqdm  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="tqdm"):
            model.train(X, y, epochs=3, verbose=False, progress=True)
        assert capsys.readouterr().out.count("Epoch") == 3
    else:
        model.train(X, y, epochs=3, verbose=False, progress=True)
        assert "3/3" in capsys.readouterr().err
    assert len(model.history["loss"]) == 3


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_are_independent_models_whose_layers_view_their_own_params(clone):
    X, y = data()
    model = MLP([8, 16, 8, 1], seed=0, batch_norm=True, optimizer="adam").fit(
        X, y, epochs=2, verbose=False)
    twin = clone(model)
    np.testing.assert_array_equal(twin.forward(X), model.forward(X))
    assert np.shares_memory(twin.W[1], twin.params) and not np.shares_memory(twin.W[1], model.params)
    assert np.shares_memory(twin.running_mean[0], twin.bn_state)
    twin.W[0][...] = 0
    assert np.any(model.W[0] != 0)
    # Training the copy continues from the same optimizer state and generator.
    model.train(X, y, epochs=2, verbose=False)
    twin = clone(MLP([8, 16, 8, 1], seed=0, batch_norm=True, optimizer="adam").fit(
        X, y, epochs=2, verbose=False))
    twin.train(X, y, epochs=2, verbose=False)
    np.testing.assert_array_equal(twin.params, model.params)


def test_a_failing_callback_releases_the_interrupt_handler_and_ends_begun_callbacks():
    """Whatever stops training (here a callback's on_train_begin raising), Ctrl-C goes back to
    Python and the callbacks that began get on_train_end."""
    from fastmlp.callbacks import Callback
    X, y = data()
    events = []

    class Recorder(Callback):
        def on_train_begin(self, model):
            events.append("begin")

        def on_train_end(self, model):
            events.append("end")

    class Broken(Callback):
        def on_train_begin(self, model):
            raise RuntimeError("broken callback")

    model = MLP([8, 16, 1], seed=0, early_stopping=True)
    with pytest.raises(RuntimeError, match="broken callback"):
        model.train(X, y, epochs=3, verbose=False, callbacks=[Recorder(), Broken()])
    assert events == ["begin", "end"]
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
