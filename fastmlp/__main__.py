"""Command line: ``python -m fastmlp demo``."""
import argparse
import sys
import time

import numpy as np


def demo(args):
    """The lecture's circles experiment with fastmlp and with the NumPy reference."""
    from . import MLP
    from .datasets import make_circles, standardize, stratified_split
    from .reference import ReferenceMLP

    X, y = make_circles(n_samples=200, factor=0.5, noise=0.08, random_state=1)
    X_train, X_test, y_train, y_test = stratified_split(X, y, test_size=0.3, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    config = dict(layer_sizes=[2, 4, 4, 1], lr=0.3, seed=42, hidden_activation="relu",
                  lr_decay=0.95)
    epochs, batch = 150, 32
    print("The lecture's experiment: two circles (200 points, noise 0.08), 70/30 stratified "
          "split, [2, 4, 4, 1] ReLU, lr 0.3 decaying 0.95 per epoch, 150 epochs of batch 32.")
    print(f"{len(X_train)} training and {len(X_test)} test samples.\n")

    def fit_fast():
        return MLP(**config).fit(X_train, y_train, epochs=epochs, batch_size=batch,
                                 verbose=False, shuffle_seed=0)

    def fit_reference():
        shuffles = np.random.default_rng(0)
        orders = [shuffles.permutation(len(X_train)) for _ in range(epochs)]
        return ReferenceMLP(**config).train(X_train, y_train, epochs=epochs, batch_size=batch,
                                            orders=orders)

    rows = []
    for name, fit in (("fastmlp", fit_fast), ("NumPy reference", fit_reference)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model = fit()
            times.append(time.perf_counter() - start)
        accuracy = [np.mean((model.forward(Xs) >= 0.5) == ys)
                    for Xs, ys in ((X_train, y_train), (X_test, y_test))]
        rows.append((name, *accuracy, float(np.median(times))))
    print(f"{'':16s} {'train acc':>9s} {'test acc':>9s} {'train time':>11s}")
    for name, acc_train, acc_test, seconds in rows:
        print(f"{name:16s} {acc_train:9.3f} {acc_test:9.3f} {seconds * 1e3:9.2f}ms")
    print(f"\nfastmlp trained {rows[1][3] / rows[0][3]:.0f}x faster than the NumPy reference "
          f"(median of {args.repeats} runs each), from the same weights and batch order.")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp",
                                     description="fastmlp: fast multilayer perceptrons.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="train the lecture's circles MLP with fastmlp and NumPy",
                            description=demo.__doc__)
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
