"""fastmlp.plot: each function draws on the Agg backend, returns its Axes with the expected
artists, and the PNG it saves shows something inside the axes (the check is shown to reject an
empty axes)."""
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from fastmlp import MLP  # noqa: E402
from fastmlp.datasets import make_circles, standardize  # noqa: E402
from fastmlp.plot import plot_decision_boundary, plot_learning_rate, plot_loss  # noqa: E402
from fastmlp.schedules import Cosine, ReduceOnPlateau, StepDecay  # noqa: E402


@pytest.fixture(autouse=True)
def _small_figures_never_shown(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("fastmlp.plot must never call pyplot.show")

    monkeypatch.setattr(plt, "show", no_show)
    with matplotlib.rc_context({"figure.figsize": (4.8, 3.6), "figure.dpi": 72}):
        yield
    plt.close("all")


def axes_pixels(ax, path):
    """Save the figure of ``ax`` to the PNG ``path``, read it back and return the RGB pixels
    strictly inside the axes (frame, ticks and labels excluded)."""
    ax.figure.savefig(path)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    box = ax.get_window_extent()      # in the saved image's pixels: savefig uses the figure dpi
    height = image.shape[0]
    inside = image[height - int(box.y1) + 3:height - int(box.y0) - 3,
                   int(box.x0) + 3:int(box.x1) - 3, :3]
    assert inside.shape[0] > 100 and inside.shape[1] > 100
    return inside


def assert_not_blank(pixels, min_colors=3, min_std=0.02):
    """Something is drawn inside the axes: the pixels vary and take several colors."""
    colors = np.unique(np.round(pixels.reshape(-1, 3), 3), axis=0)
    assert pixels.std() > min_std, f"pixel std {pixels.std():.4f}: the plot looks blank"
    assert len(colors) > min_colors, f"only {len(colors)} colors: the plot looks blank"


def has_color(pixels, color, tol=0.02):
    """Whether some pixel has ``color`` (within ``tol`` on each channel)."""
    return bool(np.any(np.all(np.abs(pixels - np.array(to_rgb(color))) < tol, axis=-1)))


def test_the_blank_check_rejects_an_empty_axes(tmp_path):
    _, ax = plt.subplots()
    ax.set_title("nothing drawn")
    ax.set_xlabel("epoch")
    pixels = axes_pixels(ax, tmp_path / "empty.png")
    with pytest.raises(AssertionError, match="blank"):
        assert_not_blank(pixels)


@pytest.fixture(scope="module")
def circles():
    X, y = make_circles(200, noise=0.08, factor=0.5, random_state=1)
    (X,) = standardize(X)
    return X, y


@pytest.fixture(scope="module")
def circles_model(circles):
    X, y = circles
    model = MLP([2, 16, 16, 1], lr=0.3, seed=0)
    model.fit(X[:150], y[:150], epochs=150, batch_size=32, verbose=False,
              validation_data=(X[150:], y[150:]))
    return model


# -- plot_loss --------------------------------------------------------------------------------

def test_plot_loss_draws_training_and_validation_curves(circles_model, tmp_path):
    ax = plot_loss(circles_model)
    assert isinstance(ax, Axes)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["training loss", "validation loss"]
    history = circles_model.history
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, 151))
    np.testing.assert_array_equal(lines[0].get_ydata(), history["loss"])
    np.testing.assert_array_equal(lines[1].get_ydata(), history["val_loss"])
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"
    assert ax.get_legend() is not None and ax.get_yscale() == "linear"
    pixels = axes_pixels(ax, tmp_path / "loss.png")
    assert_not_blank(pixels)
    assert all(has_color(pixels, line.get_color()) for line in lines)


def test_plot_loss_of_a_history_without_validation_on_a_given_axes(tmp_path):
    fig, (left, right) = plt.subplots(1, 2)
    ax = plot_loss({"loss": [1.0, 0.1, 0.01, 0.001]}, ax=right, log_scale=True)
    assert ax is right and len(fig.axes) == 2 and not left.get_lines()
    assert [line.get_label() for line in ax.get_lines()] == ["training loss"]
    assert ax.get_yscale() == "log"
    assert_not_blank(axes_pixels(ax, tmp_path / "loss_log.png"))


def test_plot_loss_of_an_untrained_model_says_train_first():
    with pytest.raises(ValueError, match="train the model first"):
        plot_loss(MLP([2, 3, 1], seed=0))
    with pytest.raises(TypeError, match="history"):
        plot_loss([0.5, 0.4])


# -- plot_decision_boundary -------------------------------------------------------------------

def test_decision_boundary_of_the_circles(circles, circles_model, tmp_path):
    X, y = circles
    ax = plot_decision_boundary(circles_model, X, y, resolution=120)
    assert isinstance(ax, Axes) and ax.get_title() == "Decision boundary"
    scattered = [c for c in ax.collections if c.get_label() in ("0", "1")]
    assert sorted(c.get_label() for c in scattered) == ["0", "1"]
    for c in scattered:    # every point drawn once, in the group of its label
        np.testing.assert_array_equal(c.get_offsets(), X[y == int(c.get_label())])
    x_low, x_high = ax.get_xlim()
    assert x_low < X[:, 0].min() and x_high > X[:, 0].max()    # padded grid
    pixels = axes_pixels(ax, tmp_path / "boundary.png")
    assert_not_blank(pixels, min_colors=20, min_std=0.1)
    # The centre of the inner circle is class 1 (blue in RdBu); the image says so.
    ax.figure.canvas.draw()
    col, row = ax.transData.transform((0.0, 0.0))
    image = matplotlib.image.imread(tmp_path / "boundary.png")[..., :3]
    r, g, b = image[image.shape[0] - int(row), int(col)]
    assert b > r + 0.2, f"centre pixel {(r, g, b)} is not blue"


def test_decision_boundary_of_three_classes_with_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    labels = np.array(["ant", "bee", "cat"])
    index = rng.integers(0, 3, 150)
    X = centres[index] + 0.5 * rng.normal(size=(150, 2))
    y = labels[index]
    model = MLP([2, 8, 3], lr=0.1, seed=0, optimizer="adam").fit(X, y, epochs=100,
                                                                 verbose=False)
    fig, ax = plt.subplots()
    assert plot_decision_boundary(model, X, y, ax=ax, resolution=60) is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ant", "bee", "cat"]
    assert len(fig.axes) == 1           # no color bar for classes
    assert_not_blank(axes_pixels(ax, tmp_path / "three.png"), min_colors=10, min_std=0.05)


def test_decision_boundary_of_a_regression_model(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = X[:, 0] - 2 * X[:, 1]
    model = MLP([2, 8, 1], lr=0.05, seed=0, loss="squared_error", optimizer="adam")
    model.fit(X, y, epochs=100, verbose=False)
    ax = plot_decision_boundary(model, X, y, resolution=50, feature_names=["u", "v"])
    assert ax.get_title() == "Predictions" and (ax.get_xlabel(), ax.get_ylabel()) == ("u", "v")
    assert len(ax.figure.axes) == 2     # the color bar
    assert_not_blank(axes_pixels(ax, tmp_path / "regression.png"), min_colors=10, min_std=0.05)


@pytest.mark.parametrize("shape", [(20, 3), (20, 1), (20,)])
def test_decision_boundary_needs_two_features(shape):
    model = MLP([2, 1], seed=0)
    with pytest.raises(ValueError, match="exactly 2 features"):
        plot_decision_boundary(model, np.zeros(shape), np.zeros(20))


def test_decision_boundary_checks_its_other_arguments(circles, circles_model):
    X, y = circles
    with pytest.raises(ValueError, match="one label per row"):
        plot_decision_boundary(circles_model, X, y[:-1])
    with pytest.raises(ValueError, match="resolution"):
        plot_decision_boundary(circles_model, X, y, resolution=1)
    with pytest.raises(ValueError, match="does not know"):
        plot_decision_boundary(circles_model, X, y + 5)
    multilabel = MLP([2, 3], seed=0, loss="binary_crossentropy")
    with pytest.raises(ValueError, match="multi-label"):
        plot_decision_boundary(multilabel, X, y)


# -- plot_learning_rate -----------------------------------------------------------------------

def test_learning_rate_of_a_trained_model(tmp_path):
    X, y = make_circles(60, noise=0.1, factor=0.5, random_state=0)
    model = MLP([2, 4, 1], lr=0.2, seed=0, schedule=StepDecay(step_size=5, gamma=0.5))
    model.fit(X, y, epochs=20, verbose=False)
    ax = plot_learning_rate(model)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 21))
    np.testing.assert_array_equal(line.get_ydata(), 0.2 * 0.5 ** (np.arange(20) // 5))
    assert ax.get_ylabel() == "learning rate" and ax.get_xlabel() == "epoch"
    assert_not_blank(axes_pixels(ax, tmp_path / "lr_model.png"))
    np.testing.assert_array_equal(plot_learning_rate(model.history).get_lines()[0].get_ydata(),
                                  line.get_ydata())


def test_learning_rate_of_a_schedule_and_of_an_untrained_model(tmp_path):
    schedule = Cosine(total_epochs=40, warmup_epochs=5)
    ax = plot_learning_rate(schedule, epochs=40, base_lr=0.1, log_scale=True)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), schedule.rates(0.1, 40))
    assert ax.get_yscale() == "log"
    assert_not_blank(axes_pixels(ax, tmp_path / "lr_schedule.png"))
    relative = plot_learning_rate(schedule, epochs=10).get_lines()[0].get_ydata()
    np.testing.assert_array_equal(relative, schedule.rates(1.0, 10))
    planned = plot_learning_rate(MLP([2, 1], lr=0.3, schedule=schedule), epochs=40)
    np.testing.assert_array_equal(planned.get_lines()[0].get_ydata(), schedule.rates(0.3, 40))


def test_learning_rate_says_what_is_missing():
    with pytest.raises(ValueError, match="epochs="):
        plot_learning_rate(Cosine(total_epochs=10))
    with pytest.raises(ValueError, match="not been trained"):
        plot_learning_rate(MLP([2, 1], seed=0))
    with pytest.raises(ValueError, match="history dict"):
        plot_learning_rate({"lr": [0.1, 0.1]}, epochs=2)
    with pytest.raises(TypeError, match="adaptive"):
        plot_learning_rate(ReduceOnPlateau(), epochs=10)
    with pytest.raises(TypeError, match="schedule"):
        plot_learning_rate(0.1)


# -- without matplotlib -----------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: plot_loss({"loss": [1.0]}),
    lambda: plot_decision_boundary(MLP([2, 1], seed=0), np.zeros((3, 2)), np.zeros(3)),
    lambda: plot_learning_rate({"lr": [0.1]}),
])
def test_missing_matplotlib_says_how_to_install_it(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[plot\]"'):
        call()
