"""Where BLAS starts to beat fastmlp's hand-written loops: the ``blas_min_work`` threshold.

For square hidden layers of growing width, time one epoch of training with every layer on the
loops and with every layer on BLAS (one BLAS thread), and print the ratio. The default
threshold (``fastmlp._kernels._train.DEFAULT_BLAS_MIN_WORK``, in multiply-adds per sample of a
layer) sits where the two cross. Run: ``python -m benchmarks.switchover``.
"""
import time

import numpy as np

import fastmlp
from fastmlp import MLP
from fastmlp._kernels import _train


def epoch_seconds(width, batch, use_blas, dtype, n=8192, repeats=5):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, width)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    times = []
    for _ in range(repeats):
        model = MLP([width, width, width, 1], lr=0.01, seed=0, dtype=dtype)
        threshold = 1 if use_blas else 1 << 40
        # Every layer on one path: the model's engine description, with the threshold forced.
        model._network = lambda max_batch, sparse_input=False, m=model: _train.Network(
            m.sizes, m._act_ids, m._act_params, m._loss_id, 0.0, 0.0, 0.0, max_batch,
            blas_min_work=threshold, sparse_input=sparse_input)
        start = time.perf_counter()
        model.train(X, y, epochs=1, batch_size=batch, verbose=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    fastmlp.set_num_threads(1)
    print(f"default threshold: {_train.DEFAULT_BLAS_MIN_WORK} multiply-adds per sample")
    print(f"{'width':>5} {'work':>6} {'dtype':>8} {'loops ms':>9} {'BLAS ms':>8} {'loops/BLAS':>10}")
    for dtype in (np.float64, np.float32):
        for width in (4, 8, 12, 16, 24, 32, 64):
            loops = epoch_seconds(width, 64, False, dtype)
            blas = epoch_seconds(width, 64, True, dtype)
            print(f"{width:5d} {width * width:6d} {np.dtype(dtype).name:>8} {loops * 1e3:9.2f} "
                  f"{blas * 1e3:8.2f} {loops / blas:10.2f}")


if __name__ == "__main__":
    main()
