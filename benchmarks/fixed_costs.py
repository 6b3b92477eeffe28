"""The fixed cost of a fit and of a prediction: the Python around the kernels.

Times, on the lecture's network and data (``MLP([2, 4, 4, 1], lr=0.3, seed=42, lr_decay=0.95)``,
150 epochs of batches of 32 on the 140 training rows of ``make_circles``):

- ``construct``: ``MLP(...)``, in a loop of constructions, and right after a ``train`` (whose
  kernels have pushed the constructor's code and data out of the CPU's caches);
- ``train - kernel``: the whole ``train`` call less the time spent inside the training kernel
  (``_train.train_epochs``, timed around each call);
- ``of which order draws``: NumPy's part of it, drawing the epochs' batch orders (replayed
  with the same calls right after each train, in the same state of the caches): a floor, since
  the orders must stay the stream of ``rng.permutation``;
- ``kernel``: that kernel time, for scale;
- ``predict_proba`` / ``forward`` / ``predict`` on 1 row and on 1000 rows, and what of it is
  outside the prediction kernel (``_train.predict``);
- ``MLPClassifier`` (the scikit-learn face, the same network and 150 epochs of SGD): its
  ``predict_proba`` on 1 and 1000 rows, its fit less the kernel; and
  ``MLPStack`` (16 such models trained together): the stack's whole fit (its kernels run in
  threads);
- ``cold fit``: construction and ``train`` after a 0.2 s pause, as ``python -m benchmarks``
  times a fit (the caches of the CPU and the interpreter have gone cold meanwhile).

Warm figures are medians of many repetitions in a loop; cold ones of fewer, each after a pause.

Run::

    python -m benchmarks.fixed_costs                 # the fastmlp this checkout imports
    python -m benchmarks.fixed_costs --compare DIR   # and the one under DIR (another checkout,
                                                     # built), in interleaved rounds

With ``--compare`` each round runs one child interpreter per checkout, alternating, so the two
sets of figures share the machine's load; the table shows the medians over the rounds of each
child's medians, and the ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)     # run by path (a --compare child): benchmarks/ must not shadow modules

import numpy as np

PAUSE = 0.2
KERNEL_NAMES = ("train_epochs", "train_stack_epochs", "predict")


def lecture_data():
    """The lecture's training rows: 70% of make_circles(200), stratified, standardized."""
    from sklearn.datasets import make_circles
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return StandardScaler().fit(X_train).transform(X_train), y_train.astype(np.int64)


def _construct():
    from fastmlp import MLP
    return MLP([2, 4, 4, 1], lr=0.3, seed=42, l2=0.0, hidden_activation="relu", lr_decay=0.95,
               dtype=np.float64)


def _train(model, X, y):
    model.train(X, y, epochs=150, batch_size=32, verbose=False, shuffle=True, shuffle_seed=0)


class KernelClock:
    """Wraps the kernels named in ``KERNEL_NAMES`` so that the time spent inside them adds up
    in ``seconds``."""

    def __init__(self):
        from fastmlp._kernels import _train as kernels
        self.kernels = kernels
        self.seconds = 0.0
        self.originals = {name: getattr(kernels, name) for name in KERNEL_NAMES}
        for name, original in self.originals.items():
            setattr(kernels, name, self._timed(original))

    def _timed(self, original):
        clock = time.perf_counter

        def timed(*args):
            start = clock()
            try:
                return original(*args)
            finally:
                self.seconds += clock() - start
        return timed

    def restore(self):
        for name, original in self.originals.items():
            setattr(self.kernels, name, original)


def _order_blocks(n, epochs):
    """The shapes of the order blocks a train call of ``epochs`` epochs over ``n`` rows shuffles
    (as many epochs per kernel call as ``_engine.MAX_ORDER_ENTRIES`` allows)."""
    from fastmlp import _engine
    per_call = min(epochs, max(1, _engine.MAX_ORDER_ENTRIES // n))
    return [np.empty((min(per_call, epochs - first), n), dtype=np.intp)
            for first in range(0, epochs, per_call)]


def _draw_orders(blocks):
    """Seconds to draw the batch orders into ``blocks`` as a train call with a shuffle_seed
    does (one ``permutation`` per epoch, the same stream): NumPy's share of the fixed cost,
    timed right after a train call, so in the same state of the CPU's caches."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for orders in blocks:
        orders[:] = np.arange(orders.shape[1])
        rng.permuted(orders, axis=1, out=orders)
    return time.perf_counter() - start


def measure(warm_reps=400, cold_reps=15):
    """Every figure, in microseconds: a dict name -> median."""
    X, y = lecture_data()
    X1 = np.ascontiguousarray(X[:1])
    X1000 = np.ascontiguousarray(np.resize(X, (1000, 2)))
    clock = time.perf_counter
    kernel = KernelClock()
    results = {}

    def median_us(values):
        return 1e6 * statistics.median(values)

    for _ in range(20):                     # imports, first-call caches
        _train(_construct(), X, y)
    alone = []
    for _ in range(warm_reps):
        start = clock()
        _construct()
        alone.append(clock() - start)
    results["construct (in a loop)"] = median_us(alone)
    construct, train_total, train_kernel, draws = [], [], [], []
    blocks = _order_blocks(len(X), 150)
    for _ in range(warm_reps):
        start = clock()
        model = _construct()
        construct.append(clock() - start)
        kernel.seconds = 0.0
        start = clock()
        _train(model, X, y)
        train_total.append(clock() - start)
        train_kernel.append(kernel.seconds)
        draws.append(_draw_orders(blocks))
    results["construct (after a train)"] = median_us(construct)
    results["train - kernel"] = median_us([t - k for t, k in zip(train_total, train_kernel)])
    results["  of which order draws (replayed)"] = median_us(draws)
    results["train kernel"] = median_us(train_kernel)
    results["train total"] = median_us(train_total)

    for rows, data in (("1 row", X1), ("1000 rows", X1000)):
        for method in ("predict_proba", "forward", "predict"):
            call = getattr(model, method)
            for _ in range(20):
                call(data)
            total, inside = [], []
            for _ in range(warm_reps * (5 if rows == "1 row" else 1)):
                kernel.seconds = 0.0
                start = clock()
                call(data)
                total.append(clock() - start)
                inside.append(kernel.seconds)
            results[f"{method} {rows}"] = median_us(total)
            results[f"{method} {rows} - kernel"] = median_us(
                [t - k for t, k in zip(total, inside)])

    from fastmlp import MLP
    from fastmlp.stack import MLPStack
    from fastmlp.estimators import MLPClassifier

    def estimator_fit():
        MLPClassifier(hidden_layer_sizes=(4, 4), max_iter=150, batch_size=32, random_state=0,
                      solver="sgd", learning_rate_init=0.3, tol=0.0).fit(X, y)

    def stack_fit():
        base = MLP([2, 4, 4, 1], seed=42, lr_decay=0.95)
        MLPStack.from_grid(base, {"lr": [0.1, 0.3]}, seeds=list(range(8))).train(
            X, y, epochs=150, batch_size=32, shuffle_seed=0)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MLPClassifier(hidden_layer_sizes=(4, 4), max_iter=150, batch_size=32,
                               random_state=0, solver="sgd", learning_rate_init=0.3,
                               tol=0.0).fit(X, y)
    for rows, data in (("1 row", X1), ("1000 rows", X1000)):
        for _ in range(20):
            fitted.predict_proba(data)
        total = []
        for _ in range(warm_reps * (5 if rows == "1 row" else 1)):
            start = clock()
            fitted.predict_proba(data)
            total.append(clock() - start)
        results[f"MLPClassifier.predict_proba {rows}"] = median_us(total)
    # The stack's kernels run in threads, so their times add up beyond the wall time: the
    # whole fit is timed there.
    for name, fit, reps in (("MLPClassifier fit - kernel", estimator_fit, warm_reps // 4),
                            ("MLPStack (16 models) fit, total", stack_fit, warm_reps // 8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit()
            outside = []
            for _ in range(max(reps, 5)):
                kernel.seconds = 0.0
                start = clock()
                fit()
                outside.append(clock() - start - (kernel.seconds if "kernel" in name else 0))
        results[name] = median_us(outside)

    kernel.restore()
    cold, cold_construct = [], []
    for _ in range(cold_reps):
        time.sleep(PAUSE)
        start = clock()
        model = _construct()
        built = clock()
        _train(model, X, y)
        cold.append(clock() - start)
        cold_construct.append(built - start)
    results["cold construct"] = median_us(cold_construct)
    results["cold fit (construct + train)"] = median_us(cold)
    return results


def _child(root, quick):
    """One child interpreter's figures, importing fastmlp from ``root``."""
    env = dict(os.environ, PYTHONPATH=root)
    args = [sys.executable, os.path.abspath(__file__), "--json"] + (["--quick"] if quick else [])
    out = subprocess.run(args, env=env, cwd=root, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", metavar="DIR",
                        help="another checkout (built) to time in interleaved rounds")
    parser.add_argument("--rounds", type=int, default=5, help="rounds with --compare")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    reps = dict(warm_reps=100, cold_reps=5) if args.quick else {}
    if args.json:
        print(json.dumps(measure(**reps)))
        return
    if not args.compare:
        import fastmlp
        print(f"fastmlp from {os.path.dirname(fastmlp.__file__)}; medians in microseconds")
        for name, value in measure(**reps).items():
            print(f"{name:36s} {value:10.1f}")
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"this": here, "other": os.path.abspath(args.compare)}
    runs = {key: [] for key in roots}
    for _ in range(args.rounds):
        for key, root in roots.items():
            runs[key].append(_child(root, args.quick))
    print(f"this = {here}, other = {roots['other']}; medians over {args.rounds} interleaved "
          f"rounds of each run's medians, in microseconds")
    print(f"{'':36s} {'other':>10s} {'this':>10s} {'other/this':>10s}")
    for name in runs["this"][0]:
        a = statistics.median(r[name] for r in runs["other"])
        b = statistics.median(r[name] for r in runs["this"])
        print(f"{name:36s} {a:10.1f} {b:10.1f} {a / b:10.2f}")


if __name__ == "__main__":
    main()
