"""Where BLAS starts to beat fastmlp's hand-written loops: the ``blas_min_work`` threshold.

For square hidden layers of growing width, time one epoch of training with every layer on the
loops and with every layer on BLAS (one BLAS thread), and print the ratio. The default
threshold (``fastmlp._kernels._train.DEFAULT_BLAS_MIN_WORK``, in multiply-adds per sample of a
layer) sits where the two cross. The loops are timed on every CPU target this machine runs
(``fastmlp._kernels._dense.supported_cpu_targets``: baseline, avx2, avx512), interleaved, in CPU
time (the machine may be shared). Run: ``python -m benchmarks.switchover``.
"""
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


def main():
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
