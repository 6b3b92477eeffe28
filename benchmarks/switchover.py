"""Two switch-over points of the engine, measured: loops against BLAS, one BLAS thread against two.

1. Where BLAS starts to beat fastmlp's hand-written loops: the ``blas_min_work`` threshold.

For square hidden layers of growing width, time one epoch of training with every layer on the
loops and with every layer on BLAS (one BLAS thread), and print the ratio. The default
threshold (``fastmlp._kernels._train.DEFAULT_BLAS_MIN_WORK``, in multiply-adds per sample of a
layer) sits where the two cross. The loops are timed on every CPU target this machine runs
(``fastmlp._kernels._dense.supported_cpu_targets``: baseline, avx2, avx512), interleaved, in CPU
time (the machine may be shared). Run: ``python -m benchmarks.switchover``.

2. With ``--threads``: where a second BLAS thread starts to pay, ``fastmlp._threads.MULTITHREAD_MIN``
(in m * n * k of a fit's largest product). For batches of m rows through square layers of growing
width, time the engine's three products (forward ``W.T @ A``, delta ``W @ delta``, fused SGD
gradient ``W := W - lr A @ delta.T``, feature-major as the kernels call them) on one BLAS thread
and on every core, in wall time, interleaved, the fastest of several runs; run it on an idle
machine (a second thread on a busy core only measures the other work).
"""
import argparse
import time

import numpy as np

import fastmlp
from fastmlp import MLP
from fastmlp._kernels import _dense, _train


def epoch_seconds(width, batch, use_blas, dtype, n=8192, repeats=7, target=None):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, width)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    times = []
    for _ in range(repeats):
        if target is not None:
            _dense.set_cpu_target(target)
        model = MLP([width, width, width, 1], lr=0.01, seed=0, dtype=dtype)
        threshold = 1 if use_blas else 1 << 40
        # Every layer on one path: the model's engine description, with the threshold forced.
        model._network = lambda max_batch, sparse_input=False, m=model: _train.Network(
            m.sizes, m._act_ids, m._act_params, m._loss_id, 0.0, 0.0, 0.0, max_batch,
            blas_min_work=threshold, sparse_input=sparse_input)
        start = time.process_time()
        model.train(X, y, epochs=1, batch_size=batch, verbose=False)
        times.append(time.process_time() - start)
    return float(np.min(times))   # the least disturbed run: the machine may be shared


def product_seconds(kind, m, width, dtype, calls=20, repeats=7):
    """Wall seconds of one product of the engine (see the module docstring), the fastest of
    ``repeats`` runs of ``calls`` calls."""
    from fastmlp._kernels._blas import gemm_py
    rng = np.random.default_rng(0)
    W = rng.normal(size=(width, width)).astype(dtype)
    A = rng.normal(size=(width, m)).astype(dtype)       # feature-major batch
    out = np.zeros((width, m), dtype=dtype)
    if kind == "forward":
        call = lambda: gemm_py(True, False, 1.0, W, A, 1.0, out)           # noqa: E731
    elif kind == "delta":
        call = lambda: gemm_py(False, False, 1.0, W, A, 0.0, out)          # noqa: E731
    else:
        call = lambda: gemm_py(False, True, -1e-3, A, out, 1.0, W)         # noqa: E731
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def threads_main():
    from fastmlp import _threads
    pools = _threads._find_pools()
    n_cores = _threads.cores()
    if not pools or n_cores < 2:
        print("needs a BLAS library that threadpoolctl finds, and two cores")
        return
    originals = [pool.get() for pool in pools]

    def set_threads(n):
        for pool in pools:
            pool.set(n)

    print(f"MULTITHREAD_MIN = {_threads.MULTITHREAD_MIN} (2^{_threads.MULTITHREAD_MIN.bit_length() - 1}); "
          f"one BLAS thread against {n_cores}; speed-up of the second thread per product")
    print(f"{'dtype':>8} {'m':>4} {'width':>5} {'m*n*k':>10} " + " ".join(
        f"{k:>8} {'x':>5}" for k in ("forward", "delta", "grad")) + "  (us on 1 thread, speed-up)")
    try:
        for dtype in (np.float32, np.float64):
            for m in (32, 128, 256):
                for width in (64, 128, 181, 256, 362, 512):
                    cells = []
                    for kind in ("forward", "delta", "grad"):
                        times = {}
                        for _ in range(2):                  # interleaved
                            for n in (1, n_cores):
                                set_threads(n)
                                t = product_seconds(kind, m, width, dtype)
                                times[n] = min(times.get(n, t), t)
                        cells.append(f"{times[1] * 1e6:8.1f} {times[1] / times[n_cores]:5.2f}")
                    work = m * width * width
                    print(f"{np.dtype(dtype).name:>8} {m:4d} {width:5d} {work:10.3g} "
                          + " ".join(cells), flush=True)
    finally:
        for pool, n in zip(pools, originals):
            pool.set(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", action="store_true",
                        help="measure one BLAS thread against two (MULTITHREAD_MIN) instead")
    if parser.parse_args().threads:
        threads_main()
        return
    fastmlp.set_num_threads(1)
    targets = _dense.supported_cpu_targets()
    chosen = _dense.cpu_target()
    print(f"default threshold: {_train.DEFAULT_BLAS_MIN_WORK} multiply-adds per sample; "
          f"CPU targets: {', '.join(targets)}")
    print(f"{'width':>5} {'work':>6} {'dtype':>8} {'BLAS ms':>8} "
          + " ".join(f"{t + ' ms':>12} {'/BLAS':>6}" for t in targets))
    try:
        for dtype in (np.float64, np.float32):
            for width in (4, 8, 12, 16, 20, 24, 32, 48, 64):
                blas = epoch_seconds(width, 64, True, dtype)
                loops = {t: epoch_seconds(width, 64, False, dtype, target=t) for t in targets}
                print(f"{width:5d} {width * width:6d} {np.dtype(dtype).name:>8} {blas * 1e3:8.2f} "
                      + " ".join(f"{loops[t] * 1e3:12.2f} {loops[t] / blas:6.2f}" for t in targets),
                      flush=True)
    finally:
        _dense.set_cpu_target(chosen)


if __name__ == "__main__":
    main()
