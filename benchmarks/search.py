"""Hyperparameter searches: ``fastmlp.model_selection.MLPSearchCV`` against ``GridSearchCV``.

Run ``python -m benchmarks.search`` from the repository root (``--repeat N`` runs, default 5;
``--only circles`` or ``--only digits``). Every row is a whole search, wall time from the
search object's construction to its return, refit of the best candidate included. The
contenders take turns within every repetition (the machine may be shared: the table gives
medians, the ratios of medians, and the load average before and after).

Rows (issue 12):

* circles: the lecture's [2, 4, 4, 1] on make_circles(200, factor=0.5, noise=0.08,
  random_state=1), standardized; 16 candidates (4 learning rates x 4 alpha) x 5 folds of
  ``MLPClassifier((4, 4), solver="sgd", momentum=0, batch_size=32, max_iter=150)`` with
  scikit-learn's stopping rule. MLPSearchCV(n_jobs=2) against GridSearchCV(n_jobs=2) over the
  same fastmlp estimator on joblib's threading backend. Target: 10x.
* digits: 8 candidates (4 learning rates x 2 alpha) x 5 folds of ``MLPClassifier((64,),
  max_iter=50, n_iter_no_change=51)`` (50 epochs each, no early stop) on load_digits / 16.
  Against GridSearchCV(n_jobs=2) over fastmlp's estimator, threading (target 1.5x), and
  GridSearchCV(n_jobs=2) over scikit-learn's MLPClassifier, joblib's default backend (target
  4x).

For every MLPSearchCV run the stacks' arithmetic rate is reported: 6 x parameters x training
rows x epochs, summed over the fits, per second of stack training (setup, scoring and refit
excluded; the refit is itself a stack of one), against the float64 2048 x 2048 matrix
product's rate.
"""
import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from joblib import parallel_backend
from sklearn.datasets import load_digits, make_circles
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler

import fastmlp.model_selection as model_selection
from fastmlp import MLPClassifier
from fastmlp.model_selection import MLPSearchCV

from .run import matmul_ceiling

PAUSE_SECONDS = 0.2


def problems():
    X, y = make_circles(200, factor=0.5, noise=0.08, random_state=1)
    circles = dict(
        X=StandardScaler().fit_transform(X), y=y,
        estimator=dict(hidden_layer_sizes=(4, 4), solver="sgd", momentum=0.0, batch_size=32,
                       max_iter=150, random_state=0),
        grid={"learning_rate_init": [0.03, 0.1, 0.3, 1.0], "alpha": [1e-5, 1e-4, 1e-3, 1e-2]},
        contenders=["fastmlp_threads"], targets={"fastmlp_threads": 10.0})
    X, y = load_digits(return_X_y=True)
    digits = dict(
        X=X / 16.0, y=y,
        estimator=dict(hidden_layer_sizes=(64,), max_iter=50, n_iter_no_change=51,
                       random_state=0),
        grid={"learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2], "alpha": [1e-4, 1e-2]},
        contenders=["fastmlp_threads", "sklearn"],
        targets={"fastmlp_threads": 1.5, "sklearn": 4.0})
    return {"circles": circles, "digits": digits}


class StackMeter:
    """Times ``MLPSearchCV``'s stack training and counts its products (6 x parameters x rows x
    epochs of every model)."""

    def __init__(self, n_rows):
        self.original = model_selection._train_group
        self.n_rows = n_rows            # a stack of one fit on every row is the refit
        self.seconds = None
        self.first = float("inf")
        self.flops = 0.0

    def __enter__(self):
        def metered(fits, *args):
            if len(fits) == 1 and fits[0].rows.shape[0] == self.n_rows:
                return self.original(fits, *args)          # the refit: not a search's stack
            start = time.perf_counter()
            errors = self.original(fits, *args)
            end = time.perf_counter()
            # The stacks may train in several threads: the wall time they span.
            self.first = min(self.first, start)
            self.seconds = end - self.first if self.seconds is None else \
                max(self.seconds, end - self.first)
            for f in fits:
                size = (f.template if f.lean else f.est.model_).params.size
                self.flops += 6.0 * size * f.rows.shape[0] * f.est.n_iter_
            return errors
        model_selection._train_group = metered
        return self

    def __exit__(self, *exc):
        model_selection._train_group = self.original


def run_once(name, problem):
    X, y = problem["X"], problem["y"]
    times, rates = {}, {}
    est = MLPClassifier(**problem["estimator"])
    with StackMeter(len(y)) as meter:
        start = time.perf_counter()
        search = MLPSearchCV(est, problem["grid"], cv=5, n_jobs=2).fit(X, y)
        times["mlpsearchcv"] = time.perf_counter() - start
    rates["stack_gflops"] = meter.flops / meter.seconds / 1e9
    rates["stack_seconds"] = meter.seconds
    rates["n_stacks"] = search.n_stacks_
    best = {"mlpsearchcv": search.best_params_}
    time.sleep(PAUSE_SECONDS)
    for contender in problem["contenders"]:
        if contender == "fastmlp_threads":
            start = time.perf_counter()
            with parallel_backend("threading", n_jobs=2):
                grid = GridSearchCV(MLPClassifier(**problem["estimator"]), problem["grid"],
                                    cv=5, n_jobs=2).fit(X, y)
        else:
            start = time.perf_counter()
            grid = GridSearchCV(SkMLPClassifier(**problem["estimator"]), problem["grid"],
                                cv=5, n_jobs=2).fit(X, y)
        times[contender] = time.perf_counter() - start
        best[contender] = grid.best_params_
        if contender == "fastmlp_threads":
            rates["max_score_difference"] = float(np.max(np.abs(
                search.cv_results_["mean_test_score"] - grid.cv_results_["mean_test_score"])))
        time.sleep(PAUSE_SECONDS)
    return times, rates, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["circles", "digits"])
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    load_before = os.getloadavg()
    ceiling = matmul_ceiling(np.float64)
    print(f"float64 2048x2048 matrix product: {ceiling['gflops']:.1f} GFLOP/s; load average "
          f"{load_before[0]:.2f} (1 min), {os.cpu_count()} cores")
    failed = False
    for name, problem in problems().items():
        if args.only and name != args.only:
            continue
        runs = [run_once(name, problem) for _ in range(args.repeat)]
        med = {key: statistics.median(r[0][key] for r in runs) for key in runs[0][0]}
        gflops = statistics.median(r[1]["stack_gflops"] for r in runs)
        stack_s = statistics.median(r[1]["stack_seconds"] for r in runs)
        print(f"\n{name}: {len(runs)} runs, {runs[0][1]['n_stacks']} stacks; "
              f"MLPSearchCV {med['mlpsearchcv']:.3f} s (stacks {stack_s:.3f} s, "
              f"{gflops:.2f} GFLOP/s = {100 * gflops / ceiling['gflops']:.1f}% of the matrix "
              f"product)")
        if "max_score_difference" in runs[0][1]:
            print(f"  mean test scores vs GridSearchCV over the same estimator: max difference "
                  f"{max(r[1]['max_score_difference'] for r in runs):.2g}; same best: "
                  f"{all(r[2]['mlpsearchcv'] == r[2]['fastmlp_threads'] for r in runs)}")
        print(f"  {'contender':<42} {'median s':>9} {'ratio':>7} {'target':>7}")
        for contender in problem["contenders"]:
            label = ("GridSearchCV(n_jobs=2) fastmlp, threading" if contender ==
                     "fastmlp_threads" else "GridSearchCV(n_jobs=2) scikit-learn MLP")
            ratio = med[contender] / med["mlpsearchcv"]
            target = problem["targets"][contender]
            failed |= ratio < target
            print(f"  {label:<42} {med[contender]:>9.3f} {ratio:>6.2f}x {target:>6.1f}x"
                  f"{'' if ratio >= target else '  MISSED'}")
        print("  per run (s): " + "; ".join(
            ", ".join(f"{k}={v:.3f}" for k, v in r[0].items()) for r in runs))
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
