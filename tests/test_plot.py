"""fastmlp.plot: each function draws on the Agg backend, returns its Axes with the expected
artists, and the PNG it saves shows something inside the axes (the check is shown to reject an
empty axes)."""
import sys
import warnings

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


# -- the best epoch, the metric, and estimators -------------------------------------------------

def test_plot_loss_marks_the_best_epoch_and_draws_the_metric(tmp_path):
    X, y = make_circles(200, noise=0.15, factor=0.5, random_state=2)
    model = MLP([2, 32, 32, 1], lr=0.05, seed=0, optimizer="adam", early_stopping=True,
                patience=8)
    model.fit(X, y, epochs=300, batch_size=16, verbose=False)
    best = model.best_epoch
    assert best is not None and best < len(model.history["loss"])
    ax = plot_loss(model)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["training loss", "validation loss", f"best epoch {best}"]
    np.testing.assert_array_equal(ax.get_lines()[2].get_xdata(), [best, best])
    (marker,) = ax.collections        # circled: the validation loss the weights came from
    np.testing.assert_array_equal(marker.get_offsets(),
                                  [[best, model.history["val_loss"][best - 1]]])
    (right,) = [a for a in ax.figure.axes if a is not ax]
    (metric,) = right.get_lines()
    assert metric.get_label() == "validation accuracy" and right.get_ylabel() == "accuracy"
    np.testing.assert_array_equal(metric.get_ydata(), model.history["val_accuracy"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == labels[:2] + ["validation accuracy", labels[2]]
    assert_not_blank(axes_pixels(ax, tmp_path / "loss_best.png"))
    # metric=False: one axes only.
    assert len(plot_loss(model, metric=False).figure.axes) == 1


def test_plot_loss_places_its_legend_clear_of_every_curve():
    # The loss falls from the upper left; the metric rises from the lower left to the upper
    # right: only the lower right is free, and loc="best" on the loss axes alone would miss it.
    n = 40
    history = {"loss": list(np.linspace(1.0, 0.5, n) ** 2),
               "val_accuracy": list(np.linspace(0.2, 1.0, n))}
    ax = plot_loss(history)
    ax.figure.canvas.draw()
    box = ax.get_legend().get_window_extent()
    for a in ax.figure.axes:
        for line in a.get_lines():
            xy = line.get_transform().transform(line.get_xydata())
            inside = ((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0)
                      & (xy[:, 1] < box.y1))
            assert not inside.any(), f"the legend covers {line.get_label()}"


@pytest.fixture(scope="module")
def sklearn_classifier(circles):
    neural_network = pytest.importorskip("sklearn.neural_network")
    X, y = circles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return neural_network.MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True,
                                            random_state=0,
                                            learning_rate_init=0.01, max_iter=200).fit(X, y)


def test_plot_loss_of_a_scikit_learn_estimator(sklearn_classifier, tmp_path):
    est = sklearn_classifier
    ax = plot_loss(est)
    best = int(np.argmax(est.validation_scores_)) + 1
    assert [line.get_label() for line in ax.get_lines()] == ["training loss",
                                                             f"best epoch {best}"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), est.loss_curve_)
    (right,) = [a for a in ax.figure.axes if a is not ax]
    np.testing.assert_array_equal(right.get_lines()[0].get_ydata(), est.validation_scores_)
    assert est.validation_scores_[best - 1] == est.best_validation_score_
    # The marker sits on the score the estimator kept.
    np.testing.assert_array_equal(right.collections[0].get_offsets(),
                                  [[best, est.best_validation_score_]])
    assert_not_blank(axes_pixels(ax, tmp_path / "loss_sklearn.png"))


def test_plot_loss_of_fastmlp_estimators_and_pipelines(circles):
    pytest.importorskip("sklearn")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp.estimators import MLPClassifier, MLPRegressor
    X, y = circles
    clf = make_pipeline(StandardScaler(),
                        MLPClassifier(hidden_layer_sizes=(8,), max_iter=15, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    ax = plot_loss(clf)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), clf[-1].loss_curve_)
    assert len(ax.figure.axes) == 1     # no early stopping: no score, no best epoch
    with pytest.raises(ValueError, match="fit it first"):
        plot_loss(MLPRegressor())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lbfgs = MLPRegressor(solver="lbfgs", max_iter=5).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="lbfgs"):
        plot_loss(lbfgs)


def test_decision_boundary_of_scikit_learn_estimators(circles, sklearn_classifier, tmp_path):
    neural_network = pytest.importorskip("sklearn.neural_network")
    X, y = circles
    ax = plot_decision_boundary(sklearn_classifier, X, y, resolution=60)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]
    assert_not_blank(axes_pixels(ax, tmp_path / "boundary_sklearn.png"), min_colors=20)
    regressor = neural_network.MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regressor.fit(X, X[:, 0] * X[:, 1])
    ax = plot_decision_boundary(regressor, X, X[:, 0] * X[:, 1], resolution=40)
    assert ax.get_title() == "Predictions"


def test_decision_boundary_points_stay_visible_on_their_own_colour(circles, circles_model,
                                                                   tmp_path):
    X, y = circles
    ax = plot_decision_boundary(circles_model, X, y, resolution=120)
    groups = {c.get_label(): c for c in ax.collections if c.get_label() in ("0", "1")}
    # One marker shape per class.
    shapes = [groups[k].get_paths()[0].vertices for k in ("0", "1")]
    assert shapes[0].shape != shapes[1].shape or not np.allclose(*shapes)
    path = tmp_path / "boundary_points.png"
    ax.figure.savefig(path)
    image = matplotlib.image.imread(path)[..., :3]
    # The class-0 point deepest in the class-0 (dark red) region, away from other points:
    # a white ring around it separates it from the region.
    p1 = circles_model.predict_proba(X)
    far = np.array([np.sort(np.hypot(*(X - x).T))[1] for x in X]) > 0.15
    i = np.flatnonzero((y == 0) & far)[np.argmin(p1[(y == 0) & far])]
    col, row = ax.transData.transform(X[i])
    window = image[image.shape[0] - int(row) - 6:image.shape[0] - int(row) + 7,
                   int(col) - 6:int(col) + 7]
    assert np.any(np.all(window > 0.9, axis=-1)), "no white edge around the point"
    region = image[image.shape[0] - int(row) - 40, int(col)]
    assert not np.all(region > 0.9)     # the background there is not white itself


# -- the learning rate: steps, estimators -------------------------------------------------------

def test_step_decay_is_drawn_as_steps(tmp_path):
    ax = plot_learning_rate(StepDecay(step_size=10, gamma=0.5), epochs=30, base_lr=0.1)
    (line,) = ax.get_lines()
    assert line.get_drawstyle() == "steps-post" and ax.get_yscale() == "linear"
    np.testing.assert_array_equal(line.get_ydata(), 0.1 * 0.5 ** (np.arange(30) // 10))
    # The path drawn holds each rate until the next epoch, then drops vertically.
    vertices = line.get_path().vertices
    x, r = np.arange(1, 31), line.get_ydata()
    expected = np.empty((59, 2))
    expected[0::2] = np.column_stack([x, r])
    expected[1::2] = np.column_stack([x[1:], r[:-1]])
    np.testing.assert_array_equal(vertices, expected)
    # In the picture: between epochs 10 and 11 the line is at 0.1 (the step), not halfway.
    path = tmp_path / "steps.png"
    ax.figure.savefig(path)
    image = matplotlib.image.imread(path)[..., :3]

    def drawn_at(x, y):       # the axes are white but for the line (antialiased: lighter)
        col, row = ax.transData.transform((x, y))
        patch = image[image.shape[0] - int(row) - 2:image.shape[0] - int(row) + 3,
                      int(col) - 1:int(col) + 2]
        return bool(np.any(patch.min(axis=-1) < 0.85))

    assert drawn_at(10.5, 0.1) and drawn_at(20.5, 0.05)
    assert not drawn_at(10.5, 0.075) and not drawn_at(20.5, 0.0375)


def test_learning_rate_of_scikit_learn_estimators(circles):
    neural_network = pytest.importorskip("sklearn.neural_network")
    X, y = circles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adam = neural_network.MLPClassifier(hidden_layer_sizes=(8,), max_iter=12,
                                            learning_rate_init=0.02,
                                            random_state=0).fit(X, y)
        inv = neural_network.MLPClassifier(hidden_layer_sizes=(8,), solver="sgd",
                                           learning_rate="invscaling",
                                           learning_rate_init=0.5, power_t=0.5, max_iter=12,
                                           random_state=0).fit(X, y)
        adaptive = neural_network.MLPClassifier(hidden_layer_sizes=(8,), solver="sgd",
                                                learning_rate="adaptive",
                                                max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(plot_learning_rate(adam).get_lines()[0].get_ydata(),
                                  np.full(12, 0.02))
    rates = plot_learning_rate(inv).get_lines()[0].get_ydata()
    assert rates[0] == 0.5 and len(rates) == len(inv.loss_curve_) == 12
    np.testing.assert_allclose(rates, 0.5 / (len(X) * np.arange(12) + 1) ** 0.5, rtol=1e-15)
    # scikit-learn's optimizer holds the rate of the epoch after the last: the same rule.
    assert inv._optimizer.learning_rate == pytest.approx(0.5 / (len(X) * 12 + 1) ** 0.5,
                                                         rel=1e-12)
    with pytest.raises(ValueError, match="adaptive"):
        plot_learning_rate(adaptive)
    with pytest.raises(ValueError, match="fit it first"):
        plot_learning_rate(neural_network.MLPClassifier())


def test_learning_rate_of_a_fastmlp_estimator_with_a_schedule(circles):
    pytest.importorskip("sklearn")
    from fastmlp.estimators import MLPClassifier
    X, y = circles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate=StepDecay(3, 0.5),
                            learning_rate_init=0.2, max_iter=9, random_state=0).fit(X, y)
    line = plot_learning_rate(est).get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), 0.2 * 0.5 ** (np.arange(9) // 3))
    assert line.get_drawstyle() == "steps-post"
