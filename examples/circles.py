"""Two concentric circles: a binary problem no straight line separates.

Trains an MLP on the lecture's circles and prints the test accuracy; needs nothing but fastmlp.
`python examples/circles.py --plot` also writes circles.png (the loss curves and the decision
boundary) and needs the `plot` extra, matplotlib: pip install "fastmlp[plot]" (from a source
checkout: pip install ".[plot]").
"""
import sys

plot = "--plot" in sys.argv[1:]
if plot:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit('examples/circles.py --plot needs matplotlib, the `plot` extra: '
                         'pip install "fastmlp[plot]" (from a source checkout: '
                         'pip install ".[plot]")') from None

from fastmlp import MLP
from fastmlp.datasets import make_circles, standardize, stratified_split

X, y = make_circles(n_samples=400, noise=0.1, factor=0.5, random_state=0)
X_train, X_test, y_train, y_test = stratified_split(X, y, test_size=0.25, seed=0)
X_train, X_test = standardize(X_train, X_test)

model = MLP([2, 16, 16, 1], lr=0.01, seed=0, optimizer="adam")
model.fit(X_train, y_train, epochs=100, batch_size=32, verbose=False,
          validation_data=(X_test, y_test))
print(f"test accuracy: {model.score(X_test, y_test):.3f}")

if plot:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fastmlp.plot import plot_decision_boundary, plot_loss

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_loss(model, ax=left)
    plot_decision_boundary(model, X_test, y_test, ax=right)
    fig.tight_layout()
    fig.savefig("circles.png", dpi=100)
    print("wrote circles.png")
