"""Fault tests: real Ctrl-C (SIGINT) during training, in every arrangement of fits and threads,
and one model trained, saved and used from several threads at once.

The SIGINT tests run a small script in a child process, wait for a marker line that it prints
once the fits to interrupt are running (never a blind sleep), send SIGINT with ``os.kill`` and
read what the script reports. Every child is bounded in time: a fit that ignores Ctrl-C makes
the test fail after ``TIMEOUT`` seconds, not hang.
"""
import os
import queue
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")

TIMEOUT = 60
# Children start in an empty folder: `python -c` puts its working directory first on sys.path,
# and from the checkout's folder that would import the uncompiled source tree, not the fastmlp
# under test (whose location PYTHONPATH gives).
_CHILD_CWD = tempfile.mkdtemp(prefix="fastmlp-child-")

PRELUDE = '''
import os, signal, sys, threading
import numpy as np
from fastmlp import MLP
from fastmlp._kernels import _train
# A child started from a shell job may inherit SIGINT ignored; give it Python's usual handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 8))
y = (X[:, 0] * X[:, 1] > 0).astype(int)

def say(*words):
    print(*words, flush=True)

def once(event_name):
    """A callback that says event_name at the end of the first epoch."""
    def callback(model, epoch, logs):
        if epoch == 1:
            say(event_name)
        return False
    return callback

def report_handler():
    users, installed = _train.interrupt_handler_state()
    say("HANDLER", users, installed)

def second_ctrl_c_reaches_python():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10**6):
            pass
    except KeyboardInterrupt:
        say("KEYBOARDINTERRUPT")
'''


class Child:
    """A Python child process running PRELUDE + script, its output lines read in the
    background."""

    def __init__(self, script):
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
        env = dict(os.environ, PYTHONPATH=package_root + os.pathsep
                   + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(script)], env=env, cwd=_CHILD_CWD,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, marker):
        """Read lines until one equals marker; fail (and kill the child) after TIMEOUT."""
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no {marker!r} within {TIMEOUT} s; output so far: {self.lines}")
            if line is None:
                pytest.fail(f"the child ended before {marker!r}: {self.lines}")
            self.lines.append(line)
            if line == marker:
                return

    def interrupt(self):
        os.kill(self.proc.pid, signal.SIGINT)

    def finish(self):
        """Wait for the child to end (fail after TIMEOUT) and return its remaining output."""
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the child did not stop within {TIMEOUT} s after Ctrl-C: "
                        f"{self.lines}")
        while (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.lines.append(line)
        assert self.proc.returncode == 0, self.lines
        return self.lines


def run_and_interrupt(script, marker="READY"):
    child = Child(script)
    child.wait_for(marker)
    child.interrupt()
    return child.finish()


def interrupted_messages(lines):
    # Two threads' messages may share a line (print writes the text and the newline apart).
    return [m for line in lines for m in line.split("Training")[1:] if "interrupted (Ctrl-C)" in m]


# -- Ctrl-C ------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_epoch", [False, True])
def test_ctrl_c_stops_a_fit_in_the_main_thread(per_epoch):
    lines = run_and_interrupt(f'''
        model = MLP([8, 32, 1], seed=0)
        if {per_epoch}:
            callbacks = [once("READY")]
        else:
            callbacks = []
            # Many epochs per kernel call: say READY once the handler is armed.
            def watch():
                while not _train.interrupt_handler_state()[1]:
                    pass
                say("READY")
            threading.Thread(target=watch, daemon=True).start()
        model.train(X, y, epochs=10**9, batch_size=16, verbose=False, callbacks=callbacks)
        say("EPOCHS", len(model.history["loss"]), bool(np.all(np.isfinite(model.params))))
        report_handler()
        second_ctrl_c_reaches_python()
    ''')
    # A press that comes before the first epoch ends training with none (block mode).
    epochs = next(line for line in lines if line.startswith("EPOCHS")).split()
    assert (0 if not per_epoch else 1) <= int(epochs[1]) < 10**9 and epochs[2] == "True"
    assert len(interrupted_messages(lines)) == 1
    assert "HANDLER 0 False" in lines and "KEYBOARDINTERRUPT" in lines


def test_ctrl_c_stops_a_fit_nested_in_a_callback_and_its_outer_fit():
    # Once left fastmlp's handler installed for good: Ctrl-C could no longer stop the process.
    lines = run_and_interrupt('''
        def train_another(model, epoch, logs):
            if epoch == 1:
                inner = MLP([8, 16, 1], seed=1)
                inner.train(X, y, epochs=10**9, verbose=False, callbacks=[once("READY")])
                say("INNER", len(inner.history["loss"]))
            return False
        outer = MLP([8, 16, 1], seed=0)
        outer.train(X, y, epochs=10**9, verbose=False, callbacks=[train_another])
        say("OUTER", len(outer.history["loss"]))
        report_handler()
        second_ctrl_c_reaches_python()
        # And a later fit is not stopped by the old Ctrl-C.
        later = MLP([8, 16, 1], seed=2)
        later.train(X, y, epochs=5, verbose=False, callbacks=[lambda m, e, l: False])
        say("LATER", len(later.history["loss"]))
    ''')
    assert "OUTER 1" in lines and "LATER 5" in lines
    assert int(next(line for line in lines if line.startswith("INNER")).split()[1]) >= 1
    assert len(interrupted_messages(lines)) == 2              # the inner fit and the outer one
    assert "HANDLER 0 False" in lines and "KEYBOARDINTERRUPT" in lines


@pytest.mark.parametrize("per_epoch", [False, True])
def test_ctrl_c_stops_fits_in_worker_threads(per_epoch):
    lines = run_and_interrupt(f'''
        started = [threading.Event(), threading.Event()]
        results = {{}}
        def fit(i):
            model = MLP([8, 16, 1], seed=i)
            def mark(model, epoch, logs):
                started[i].set()
                return False
            if {per_epoch}:
                model.train(X, y, epochs=10**9, verbose=False, callbacks=[mark])
            else:
                started[i].set()      # the handler is armed before this fit's first epoch ends
                model.train(X, y, epochs=10**9, verbose=False)
            results[i] = len(model.history["loss"])
        threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for event in started:
            event.wait()
        while _train.interrupt_handler_state() != (2, True):
            pass
        say("READY")
        for t in threads:
            t.join()
        say("RESULTS", *(results[i] for i in range(2)))
        report_handler()
        second_ctrl_c_reaches_python()
    ''')
    results = next(line for line in lines if line.startswith("RESULTS")).split()[1:]
    assert all((0 if not per_epoch else 1) <= int(r) < 10**9 for r in results), lines
    assert len(interrupted_messages(lines)) == 2
    assert "HANDLER 0 False" in lines and "KEYBOARDINTERRUPT" in lines


@pytest.mark.parametrize("per_epoch", [False, True])
def test_a_fit_after_a_ctrl_c_is_not_stopped_by_it(per_epoch):
    # Once, after one Ctrl-C stopped a fit in the main thread, every later fit in a worker
    # thread stopped after its first epoch with a false "interrupted" message.
    lines = run_and_interrupt(f'''
        first = MLP([8, 16, 1], seed=0)
        first.train(X, y, epochs=10**9, verbose=False, callbacks=[once("READY")])
        say("FIRST DONE")
        def later_fit(results):
            model = MLP([8, 16, 1], seed=1)
            callbacks = [lambda m, e, l: False] if {per_epoch} else []
            model.train(X, y, epochs=7, verbose=False, callbacks=callbacks)
            results.append(len(model.history["loss"]))
        results = []
        worker = threading.Thread(target=later_fit, args=(results,))
        worker.start()
        worker.join()
        later_fit(results)                  # and in the main thread
        say("LATER", *results)
        report_handler()
    ''')
    assert "FIRST DONE" in lines and "LATER 7 7" in lines
    assert len(interrupted_messages(lines)) == 1
    assert "HANDLER 0 False" in lines


def test_ctrl_c_during_a_worker_fit_while_the_main_thread_also_trains():
    lines = run_and_interrupt('''
        ready = threading.Event()
        results = {}
        def worker():
            model = MLP([8, 16, 1], seed=1)
            model.train(X, y, epochs=10**9, verbose=False,
                        callbacks=[lambda m, e, l: ready.set()])
            results["worker"] = len(model.history["loss"])
        t = threading.Thread(target=worker)
        t.start()
        ready.wait()
        main = MLP([8, 16, 1], seed=0)
        main.train(X, y, epochs=10**9, verbose=False, callbacks=[once("READY")])
        t.join()
        say("BOTH", results["worker"] > 0, len(main.history["loss"]) > 0)
        report_handler()
        second_ctrl_c_reaches_python()
    ''')
    assert "BOTH True True" in lines
    assert len(interrupted_messages(lines)) == 2
    assert "HANDLER 0 False" in lines and "KEYBOARDINTERRUPT" in lines


def test_ctrl_c_stops_a_stack_of_models_trained_in_threads():
    lines = run_and_interrupt("""
        from fastmlp.stack import MLPStack
        stack = MLPStack([MLP([8, 16, 1], seed=k) for k in range(4)])
        def watch():
            while not _train.interrupt_handler_state()[1]:
                pass
            say("READY")
        threading.Thread(target=watch, daemon=True).start()
        stack.train(X, y, epochs=10**9, n_jobs=2)
        say("EPOCHS", *sorted({len(h["loss"]) for h in stack.history}))
        report_handler()
    """)
    # Each group of models stops at the end of its own current epoch (with none when the press
    # comes before the first epoch).
    epochs = next(line for line in lines if line.startswith("EPOCHS")).split()[1:]
    assert all(0 <= int(e) < 10**9 for e in epochs), lines
    assert "HANDLER 0 False" in lines


def test_handler_shares_are_given_back_however_fits_end():
    from fastmlp._kernels import _train
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    before = _train.interrupt_handler_state()
    errors = []

    def failing_callback(model, epoch, logs):
        raise RuntimeError("callback failed")

    def fit_and_fail():
        try:
            MLP([3, 4, 1], seed=0).train(X, y, epochs=3, verbose=False,
                                         callbacks=[failing_callback])
        except RuntimeError as error:
            errors.append(error)

    threads = [threading.Thread(target=fit_and_fail) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4
    assert _train.interrupt_handler_state() == before


# -- one model, several threads ------------------------------------------------------------------

def test_concurrent_train_predict_save_on_one_model(tmp_path):
    # Once, save while another thread trained wrote a file whose checksum did not match.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    model = MLP([6, 32, 16, 1], seed=0, optimizer="adam", batch_norm=True, lr=0.01)
    path = tmp_path / "model.npz"
    failures = []
    saved = []

    def train():
        model.train(X, y, epochs=3, batch_size=16, verbose=False)

    def predict():
        out = model.predict_proba(X)
        if not np.all(np.isfinite(out)) or out.shape != (400,):
            raise AssertionError("a prediction was not finite")

    def save():
        model.save(path)
        loaded = fastmlp.load(path)          # checks the file's checksum
        if not np.all(np.isfinite(loaded.forward(X))):
            raise AssertionError("a saved model predicted a non-finite value")
        saved.append(loaded.params.copy())

    def repeat(fn, times):
        def run():
            try:
                for _ in range(times):
                    fn()
            except Exception as error:              # reported by the main thread
                failures.append(error)
        return run

    threads = [threading.Thread(target=repeat(fn, times))
               for fn, times in ((train, 15), (train, 15), (predict, 40), (save, 15),
                                 (save, 15))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert not failures, failures
    assert len(saved) == 30
    assert model._step[0] == 30 * 3 * 25          # no update lost or doubled by the threads
    assert any(np.array_equal(fastmlp.load(path).params, p) for p in saved)
