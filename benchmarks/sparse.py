"""Sparse input: training on a one-hot-encoded CSR matrix against the same fit on its dense copy.

The data: ``--categorical`` columns of ``--categories`` categories each (uniform), one-hot
encoded into a CSR matrix of ``categorical * categories`` columns with one non-zero per
categorical column (2,000 columns and 1% non-zeros by default), and a label in ``--classes``
classes that depends on a few of the categories. The model: ``MLP([n_in, 64, classes])`` with
its defaults (SGD) and ``batch_size=200``, one BLAS thread, ``--epochs`` epochs from the same
seed for both inputs. The dense array is built once, outside the timings, as a user holding it
would; each run is timed with ``time.perf_counter`` around ``MLP.train``, the runs interleaved
(sparse, dense, sparse, dense, ...), and the medians compared (wall time, and the process's
CPU time, which a loaded machine disturbs less). Peak memory is the largest
extra allocation during one more fit of each, traced by ``tracemalloc`` (NumPy reports its
buffers to it), beyond the input itself. The final weights of the two fits must agree to
1e-10 (float64).

Run: ``python -m benchmarks.sparse`` (``--help`` for the sizes).
"""
import argparse
import time
import tracemalloc

import numpy as np
import scipy.sparse

import fastmlp
from fastmlp import MLP


def one_hot_data(n_rows, n_categorical, n_categories, n_classes, seed=0):
    """A one-hot CSR matrix (n_rows, n_categorical * n_categories) and labels."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_categories, size=(n_rows, n_categorical))
    columns = codes + n_categories * np.arange(n_categorical)
    X = scipy.sparse.csr_matrix(
        (np.ones(codes.size), columns.ravel(), np.arange(0, codes.size + 1, n_categorical)),
        shape=(n_rows, n_categorical * n_categories))
    effect = rng.normal(size=(n_categorical * n_categories, n_classes))
    effect[:, :] *= (np.arange(n_categorical * n_categories) // n_categories < 4)[:, None]
    y = np.asarray(X @ effect + 0.5 * rng.normal(size=(n_rows, n_classes))).argmax(axis=1)
    return X, y


def fit(X, y, n_classes, epochs, seed=0):
    model = MLP([X.shape[1], 64, n_classes], seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    model.train(X, y, epochs=epochs, batch_size=200, verbose=False, shuffle_seed=seed)
    return time.perf_counter() - start, time.process_time() - cpu, model


def peak_bytes(X, y, n_classes, epochs):
    tracemalloc.start()
    try:
        fit(X, y, n_classes, epochs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--categorical", type=int, default=20)
    parser.add_argument("--categories", type=int, default=100)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    fastmlp.set_num_threads(1)
    X, y = one_hot_data(args.rows, args.categorical, args.categories, args.classes)
    dense = X.toarray()
    print(f"one-hot X: {X.shape[0]} x {X.shape[1]}, {X.nnz / np.prod(X.shape):.2%} non-zero "
          f"({X.data.nbytes + X.indices.nbytes + X.indptr.nbytes} bytes as CSR, "
          f"{dense.nbytes} dense); MLP([{X.shape[1]}, 64, {args.classes}]), sgd, batch 200, "
          f"{args.epochs} epochs, 1 BLAS thread, median of {args.repeats} interleaved runs")
    times = {"sparse": [], "dense": []}
    cpu_times = {"sparse": [], "dense": []}
    models = {}
    for _ in range(args.repeats):
        for name, data in (("sparse", X), ("dense", dense)):
            seconds, cpu, models[name] = fit(data, y, args.classes, args.epochs)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
    difference = float(np.abs(models["sparse"].params - models["dense"].params).max())
    peaks = {name: peak_bytes(data, y, args.classes, args.epochs)
             for name, data in (("sparse", X), ("dense", dense))}
    print(f"{'input':>6} {'median s':>9} {'min s':>7} {'median CPU s':>13} {'peak extra MiB':>15}")
    for name in ("sparse", "dense"):
        print(f"{name:>6} {np.median(times[name]):9.3f} {min(times[name]):7.3f} "
              f"{np.median(cpu_times[name]):13.3f} {peaks[name] / 2**20:15.1f}")
    ratio = np.median(times["dense"]) / np.median(times["sparse"])
    cpu_ratio = np.median(cpu_times["dense"]) / np.median(cpu_times["sparse"])
    print(f"dense / sparse: {ratio:.1f}x faster on sparse input (CPU time: {cpu_ratio:.1f}x); "
          f"largest weight difference {difference:.2e}")
    return 0 if difference < 1e-10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
