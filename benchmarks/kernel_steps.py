"""The training kernel's cost per batch step on small networks (issues 9 and 12), without Python.

Builds each network once and times ``_train.train_epochs`` (one model) and
``_train.train_stack_epochs`` (a stack of models) directly, in CPU time of the calling thread
(the machine may be shared), the best of ``--repeats`` runs after one warm-up:

* ``lecture``: 2-4-4-1, relu, sigmoid + binary cross-entropy, plain SGD, batches of 32 over 140
  rows, 150 epochs (750 steps): ms per fit and us per step;
* ``circles32``: 2-32-32-1, batches of 64 over 2000 rows, 5 epochs: ms per fit;
* ``digits``: 64-128-64-10 softmax, batches of 32 over 1257 rows, 5 epochs: us per step (its
  wide layers go to BLAS);
* ``stack80``: 80 lecture networks (three L2 strengths) in one ``train_stack_epochs`` call: ms
  and us per model-step.

``--against DIR`` also runs the same measurements on another build of fastmlp (DIR holds its
``fastmlp`` package, e.g. a copy of main built in place), in child processes taking turns with
this one, and prints both. Run: ``python -m benchmarks.kernel_steps [--repeats 30]``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def measure(repeats):
    """The figures above for the fastmlp that ``import fastmlp`` finds, as a dict."""
    from fastmlp._kernels import _train
    from fastmlp._kernels._dense import ACTIVATION_IDS, cpu_target
    from fastmlp._kernels._loss import LOSS_IDS
    rng = np.random.default_rng(0)
    relu = ACTIVATION_IDS["relu"]

    def best(run, count):
        times = []
        for _ in range(count + 1):          # the first is a warm-up
            t = time.thread_time()
            run()
            times.append(time.thread_time() - t)
        return min(times[1:])

    def single(sizes, loss, batch, n, epochs, dtype):
        net = _train.Network(sizes, [relu] * (len(sizes) - 2), None, LOSS_IDS[loss], 0.0, 0.0,
                             0.0, batch)
        theta0 = (rng.standard_normal(net.n_params) * 0.5).astype(dtype)
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        Y = (np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)] if sizes[-1] > 1
             else (rng.random((n, 1)) < 0.5).astype(dtype))
        orders = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.intp)
        rates = 0.3 * 0.95 ** np.arange(epochs)
        ws = np.zeros(net.workspace_size, dtype)
        empty = np.zeros(0, dtype)
        loss_out = np.zeros(epochs)
        return best(lambda: _train.train_epochs(
            net, theta0.copy(), empty, empty, np.zeros(1, np.int64), X, Y, None, orders, rates,
            batch, 0, ws, loss_out), repeats)

    def stack(K, dtype, batch=32, n=140, epochs=150):
        nets = [_train.Network((2, 4, 4, 1), [relu, relu], None, LOSS_IDS["binary_crossentropy"],
                               0.0, 0.0, 1e-4 * (k % 3), batch) for k in range(K)]
        thetas0 = (rng.standard_normal((K, nets[0].n_params)) * 0.5).astype(dtype)
        X = rng.standard_normal((n, 2)).astype(dtype)
        Y = (rng.random((n, 1)) < 0.5).astype(dtype)
        orders = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.intp)
        rates = np.tile((0.3 * 0.95 ** np.arange(epochs))[:, None], (1, K))
        ws = np.zeros((K, nets[0].workspace_size), dtype)
        seconds = best(lambda: _train.train_stack_epochs(
            nets, thetas0.copy(), np.zeros((K, 1), dtype), np.zeros((K, 0), dtype),
            np.zeros(K, np.int64), X, Y, None, np.ones(K), np.zeros(K, np.uint8), orders, rates,
            batch, np.zeros(K, np.uint64), ws, np.zeros((epochs, K)), np.zeros(K, np.intc),
            np.zeros(K, np.intp)), max(3, repeats // 3))
        return seconds, epochs * -(-n // batch)

    out = {"target": cpu_target()}
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        t = single((2, 4, 4, 1), "binary_crossentropy", 32, 140, 150, dtype)
        out[f"lecture_{name}_ms"], out[f"lecture_{name}_us_step"] = t * 1e3, t / 750 * 1e6
        out[f"circles32_{name}_ms"] = single((2, 32, 32, 1), "binary_crossentropy", 64, 2000, 5,
                                             dtype) * 1e3
        out[f"digits_{name}_us_step"] = single((64, 128, 64, 10), "categorical_crossentropy", 32,
                                               1257, 5, dtype) / (5 * 40) * 1e6
    t, steps = stack(80, np.float64)
    out["stack80_float64_ms"], out["stack80_us_per_model_step"] = t * 1e3, t / (80 * steps) * 1e6
    return out


def _child(path, repeats):
    env = dict(os.environ, PYTHONPATH=path)
    code = f"import json, benchmarks.kernel_steps as k; print(json.dumps(k.measure({repeats})))"
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # the benchmarks package from this checkout, fastmlp from ``path``
    env["PYTHONPATH"] = os.pathsep.join([path, here])
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True, cwd=path)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--against", default=None, help="folder of another fastmlp build")
    parser.add_argument("--rounds", type=int, default=3, help="turns each build takes")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    builds = {"this": here} if args.against is None else {"this": here, "other": args.against}
    results = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, path in builds.items():
            results[name].append(_child(path, args.repeats))
    keys = [k for k in results["this"][0] if k != "target"]
    print(f"{'figure (best of rounds)':32s}" + "".join(f"{name:>12s}" for name in builds))
    for key in keys:
        print(f"{key:32s}" + "".join(f"{min(r[key] for r in results[name]):12.3f}"
                                     for name in builds))


if __name__ == "__main__":
    main()
