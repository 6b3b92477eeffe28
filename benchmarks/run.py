"""Time fastmlp against plain NumPy, JAX, scikit-learn and PyTorch.

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``) from the repository root;
``--quick`` takes under two minutes on two cores. For each configuration and dtype the variants
take turns within every repetition (pausing between runs so one library's idle BLAS threads do
not slow the next), and the table reports the median training time. See benchmarks/README.md.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if not __package__:
    # Run as a script: make `benchmarks` (and a fastmlp built in place) importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.configs import (CONFIGS, MATMUL_SHARE_TARGETS, TARGETS, Unavailable,
                                flops_per_sample, load_data)
from benchmarks.runners import VARIANTS, Problem, installed

PAUSE_SECONDS = 0.2
SHUFFLE_SEED = 0
DEFAULT_JSON = Path(__file__).resolve().with_name("results.json")
# With --quick, a baseline whose first run takes longer than this runs only once: runs that long
# vary by a few percent, and repeating them would break the two-minute budget.
QUICK_SINGLE_RUN_S = 1.0


def blas_threads():
    """Threads of NumPy's BLAS (via threadpoolctl when installed, else the CPU count)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else os.cpu_count() or 1


def _version(module):
    if not installed(module):
        return None
    return getattr(__import__(module), "__version__", "unknown")


def machine_info(threads):
    """CPU, cores, library versions and BLAS configuration, for the JSON report."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("fastmlp", "numpy", "scipy", "sklearn", "torch",
                                              "jax")},
    }
    try:
        info["numpy_blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        pass
    if installed("threadpoolctl"):
        from threadpoolctl import threadpool_info
        info["threadpools"] = threadpool_info()
    return info


def matmul_ceiling(dtype, n=2048, repeats=5):
    """GFLOP/s of an ``n x n`` NumPy matrix product (median of ``repeats``)."""
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    A @ B
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        A @ B
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"dtype": np.dtype(dtype).name, "n": n, "seconds": seconds,
            "gflops": 2 * n ** 3 / seconds / 1e9}


def make_problem(config, data, dtype, threads, threads_forced=False):
    """The shared inputs of every run: data in ``dtype``, initial weights, batch orders.

    The initial weights are the ones ``fastmlp.MLP`` draws for the configuration's seed; the
    orders are those ``MLP.train(..., shuffle_seed=SHUFFLE_SEED)`` draws, one per epoch.
    """
    from fastmlp.initializers import DEFAULT_INIT, initial_parameters
    X_train, X_test, y_train, y_test = data
    W0, b0 = initial_parameters(np.random.default_rng(config.seed), config.layer_sizes,
                                DEFAULT_INIT[config.hidden_activation])
    for array in W0 + b0:
        array.setflags(write=False)   # every runner copies them; none may train them in place
    shuffles = np.random.default_rng(SHUFFLE_SEED)
    orders = [shuffles.permutation(len(X_train)) for _ in range(config.epochs)]
    return Problem(config, np.dtype(dtype), np.ascontiguousarray(X_train, dtype=dtype), y_train,
                   np.ascontiguousarray(X_test, dtype=dtype), y_test, W0, b0, SHUFFLE_SEED,
                   orders, threads, threads_forced)


def _max_difference(trial, reference):
    return max(float(np.max(np.abs(x - y)))
               for x, y in zip(trial.W + trial.b, reference.W + reference.b))


def benchmark(problem, variants, repeats, quick):
    """Run the variants in turn, ``repeats`` times; one result row per variant.

    A variant that cannot run (missing feature, failure) gets a row with its reason instead.
    With ``quick``, a baseline (any variant but fastmlp) that takes over ``QUICK_SINGLE_RUN_S``
    runs once.
    """
    config = problem.config
    print(f"running {config.name} {problem.dtype.name}", file=sys.stderr, flush=True)
    times = {name: [] for name in variants}
    last, reasons = {}, {}

    def done(name):
        return name in reasons or (quick and name != "fastmlp" and times[name]
                                   and times[name][0] > QUICK_SINGLE_RUN_S)

    for _ in range(repeats):
        for name in variants:
            if done(name):
                continue
            try:
                last[name] = VARIANTS[name].run(problem)
            except Unavailable as why:
                reasons[name] = str(why)
                continue
            except Exception as error:   # report it in the table, carry on with the rest
                reasons[name] = f"failed: {type(error).__name__}: {error}"
                continue
            times[name].append(last[name].seconds)
            time.sleep(PAUSE_SECONDS)

    samples = len(problem.X_train) * config.epochs
    flops = samples * flops_per_sample(config.layer_sizes)
    baseline = float(np.median(times["numpy"])) if times.get("numpy") else None
    oracle = "oracle" if "oracle" in last else "numpy"
    rows = []
    for name in variants:
        row = {"config": config.name, "dtype": problem.dtype.name, "variant": name}
        if name in reasons:
            rows.append({**row, "status": reasons[name]})
            continue
        seconds = float(np.median(times[name]))
        parity = None
        if VARIANTS[name].same_order and name != oracle and oracle in last:
            parity = _max_difference(last[name], last[oracle])
        rows.append({**row, "status": "ok", "runs": len(times[name]), "times": times[name],
                     "median_s": seconds,
                     "samples_per_s": samples / seconds, "gflops": flops / seconds / 1e9,
                     "ratio_vs_numpy": baseline / seconds if baseline else None,
                     "accuracy": last[name].accuracy, "parity": parity})
    return rows


def print_table(rows):
    header = (f"{'config':<12} {'dtype':<8} {'variant':<9} {'median s':>9} {'samples/s':>10} "
              f"{'GFLOP/s':>8} {'vs numpy':>9} {'accuracy':>8} {'parity':>8} {'runs':>4}")
    print(header)
    print("-" * len(header))
    for r in rows:
        start = f"{r['config']:<12} {r['dtype']:<8} {r['variant']:<9} "
        if r["status"] != "ok":
            print(start + r["status"])
            continue
        ratio = "-" if r["ratio_vs_numpy"] is None else f"{r['ratio_vs_numpy']:.2f}x"
        parity = "-" if r["parity"] is None else f"{r['parity']:.1e}"
        print(start + f"{r['median_s']:9.4f} {r['samples_per_s']:10.3g} {r['gflops']:8.2f} "
              f"{ratio:>9} {r['accuracy']:8.4f} {parity:>8} {r['runs']:4d}")


def check_targets(rows, ceilings):
    """The speed issue's goals, as far as this run measured them: one line each, "ok" or
    "MISSED"."""
    ok = {(r["config"], r["dtype"], r["variant"]): r for r in rows if r["status"] == "ok"}
    rate = {c["dtype"]: c["gflops"] for c in ceilings}
    checks = []

    def speedup(config, dtype, peer):
        fast, other = ok.get((config, dtype, "fastmlp")), ok.get((config, dtype, peer))
        return other["median_s"] / fast["median_s"] if fast and other else None

    for (config, dtype, variant) in sorted(ok):
        if variant == "fastmlp":
            continue
        minimum = TARGETS.get((config, dtype, variant))
        ratio = speedup(config, dtype, variant)
        if ratio is not None and minimum is not None:
            checks.append((f"{config} {dtype}: fastmlp vs {variant} >= {minimum:g}x",
                           f"{ratio:.2f}x", ratio >= minimum))
        elif ratio is not None:
            checks.append((f"{config} {dtype}: fastmlp faster than {variant}",
                           f"{ratio:.2f}x", ratio > 1))
    for (config, dtype, variant), row in sorted(ok.items()):
        if variant != "fastmlp":
            continue
        if dtype == "float64" and row["parity"] is not None:
            checks.append((f"{config} float64: fastmlp matches the oracle to 1e-10",
                           f"{row['parity']:.1e}", row["parity"] <= 1e-10))
        share = MATMUL_SHARE_TARGETS.get((config, dtype))
        if share and dtype in rate:
            checks.append((f"{config} {dtype}: >= {share:.0%} of the matmul rate",
                           f"{row['gflops'] / rate[dtype]:.0%}",
                           row["gflops"] >= share * rate[dtype]))
    for name, value, passed in checks:
        print(f"  {'ok    ' if passed else 'MISSED'} {name:<56} {value}")
    return [{"target": name, "value": value, "met": passed} for name, value, passed in checks]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions, and only one for a baseline that takes over "
                             f"{QUICK_SINGLE_RUN_S:g} s: under two minutes on two cores")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {','.join(CONFIGS)} (default: all)")
    parser.add_argument("--dtypes", default="float64,float32",
                        help="float64,float32 (default) or one of them")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions per variant (default 3 with --quick, else 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/compute threads for every framework, fastmlp included "
                             "(default: each framework's own setting; fastmlp's thread policy)")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated, from {','.join(VARIANTS)} (default: all "
                             f"installed)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help="where to write the results (default: benchmarks/results.json)")
    args = parser.parse_args(argv)
    args.configs = args.configs.split(",")
    if args.variants is not None:
        args.variants = args.variants.split(",")
        bad = [v for v in args.variants if v not in VARIANTS]
        if bad:
            parser.error(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    args.dtypes = args.dtypes.split(",")
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    if set(args.dtypes) - {"float64", "float32"}:
        parser.error(f"--dtypes takes float64 and/or float32; got {args.dtypes}")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    elif args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def concurrency(repeats):
    """Two fastmlp fits in two Python threads against the same two fits one after the other.

    Small networks ([2, 32, 32, 1] on 20 000 circles, batch 64, one BLAS thread each): training
    releases the GIL, so on two cores the pair should take clearly less than the sequence.
    Returns the medians and their ratio (sequential / threaded)."""
    import threading

    import fastmlp
    from fastmlp import MLP
    from fastmlp.datasets import make_circles

    X, y = make_circles(20_000, noise=0.1, factor=0.5, random_state=0)
    previous = fastmlp.get_num_threads()
    fastmlp.set_num_threads(1)

    def fit(seed):
        MLP([2, 32, 32, 1], lr=0.1, seed=seed).train(X, y, epochs=3, batch_size=64,
                                                      verbose=False)

    def sequential():
        fit(1)
        fit(2)

    def threaded():
        workers = [threading.Thread(target=fit, args=(seed,)) for seed in (1, 2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    times = {"sequential": [], "threaded": []}
    try:
        fit(0)
        for _ in range(repeats):
            for name, run in (("sequential", sequential), ("threaded", threaded)):
                time.sleep(PAUSE_SECONDS)
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    finally:
        fastmlp.set_num_threads(previous)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return {**medians, "ratio": medians["sequential"] / medians["threaded"], "runs": times}


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("--threads must be at least 1")
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)         # NumPy's (and SciPy's) BLAS, for the whole run
    threads = args.threads or blas_threads()
    variants = [name for name, variant in VARIANTS.items() if installed(variant.needs)
                and (args.variants is None or name in args.variants)]
    missing = [name for name in VARIANTS if name not in variants]
    load = os.getloadavg()[0]
    print(f"{threads} BLAS threads; load average {load:.2f}; variants: {', '.join(variants)}"
          + (f" (not installed: {', '.join(missing)})" if missing else "")
          + f"; {args.repeats} repetitions" + (", quick mode" if args.quick else ""))
    if load > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy; timings will be noisy (PyTorch's OpenMP threads "
              "suffer most)")

    ceilings = [matmul_ceiling(dtype) for dtype in args.dtypes]
    for c in ceilings:
        print(f"matmul ceiling {c['dtype']}: {c['gflops']:.1f} GFLOP/s "
              f"({c['n']}x{c['n']} NumPy product, median of 5)")
    print()

    rows = []
    for name in args.configs:
        config = CONFIGS[name]
        try:
            data = load_data(config)
        except Unavailable as why:
            rows += [{"config": name, "dtype": d, "variant": "-", "status": str(why)}
                     for d in args.dtypes]
            continue
        for dtype in args.dtypes:
            problem = make_problem(config, data, dtype, threads, args.threads is not None)
            rows += benchmark(problem, variants, args.repeats, args.quick)
    print_table(rows)
    print("\nvs numpy = NumPy baseline time / variant time (same dtype); parity = max |param "
          "- oracle param| after training from the same weights and batch order; times run from "
          "model construction to the end of training.")
    print("Targets:")
    targets = check_targets(rows, ceilings)
    together = concurrency(args.repeats)
    print(f"\nTwo fits in two threads: {together['threaded']:.3f} s; one after the other: "
          f"{together['sequential']:.3f} s; ratio {together['ratio']:.2f}x "
          f"([2, 32, 32, 1], one BLAS thread each, median of {args.repeats})")
    elapsed = time.perf_counter() - started
    print(f"\nTotal {elapsed:.0f} s.")

    report = {"machine": {**machine_info(threads),
                          "load_average": {"start": load, "end": os.getloadavg()[0]}},
              "settings": {"quick": args.quick, "repeats": args.repeats,
                           "pause_s": PAUSE_SECONDS, "shuffle_seed": SHUFFLE_SEED,
                           "configs": args.configs, "dtypes": args.dtypes,
                           "threads": threads},
              "matmul": ceilings, "results": rows, "targets": targets,
              "concurrency": together, "elapsed_s": elapsed}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
