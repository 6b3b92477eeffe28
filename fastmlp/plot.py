"""Plots of training: loss curves, a decision boundary on 2-D data, the learning-rate schedule.

Each takes a fastmlp ``MLP`` (or, for the curves, its ``history`` dict) or a fitted
scikit-learn estimator (scikit-learn's or fastmlp's ``MLPClassifier``/``MLPRegressor``, or a
``Pipeline`` ending in one).

Each function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None) and returns it;
none calls ``pyplot.show``, so the caller decides whether to show, save or keep drawing.
matplotlib is an optional dependency, imported when a function is first called:
``pip install "fastmlp[plot]"`` (from a source checkout: ``pip install ".[plot]"``).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from fastmlp import MLP
>>> from fastmlp.datasets import make_circles
>>> from fastmlp.plot import plot_decision_boundary, plot_loss
>>> X, y = make_circles(200, noise=0.08, factor=0.5, random_state=1)
>>> model = MLP([2, 8, 8, 1], lr=0.3, seed=0).fit(X, y, epochs=100, verbose=False)
>>> ax = plot_loss(model)
>>> ax = plot_decision_boundary(model, X, y)
>>> ax.figure.savefig("circles.png")  # doctest: +SKIP
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .mlp import MLP
    from .schedules import Schedule

__all__ = ["plot_loss", "plot_decision_boundary", "plot_learning_rate"]

History = Mapping[str, Sequence[float]]


def _pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('fastmlp.plot needs matplotlib, which is not installed: '
                          'pip install "fastmlp[plot]" (from a source checkout: '
                          'pip install ".[plot]")') from exc
    return plt


def _axes(ax):
    """``ax``, or the axes of a new figure when it is None."""
    return _pyplot().subplots()[1] if ax is None else ax


# The history keys of a validation metric, with their labels: an MLP's (older histories say
# "val_metric"), and "val_score" for an estimator's validation_scores_.
_METRICS = {"val_accuracy": "validation accuracy", "val_r2": "validation R²",
            "val_metric": "validation metric", "val_score": "validation score"}


def _final_step(obj):
    """The last step of a scikit-learn ``Pipeline`` (the estimator that has the curves)."""
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        return steps[-1][1]
    return obj


def _is_estimator(obj):
    return hasattr(obj, "get_params") and not isinstance(obj, Mapping)


def _history(obj: Any, key: str) -> History:
    """The per-epoch curves of a model, an estimator or a history dict, checked to hold a
    non-empty ``key``.

    A fastmlp ``MLP`` gives its ``history``; a scikit-learn estimator (scikit-learn's or
    fastmlp's ``MLPClassifier``/``MLPRegressor``, or a ``Pipeline`` ending in one) gives
    ``{"loss": loss_curve_}`` plus, with early stopping, ``"val_score"`` (its
    ``validation_scores_``) and ``"best_epoch"`` (the epoch of the best score, whose weights
    it keeps)."""
    obj = _final_step(obj)
    if isinstance(obj, Mapping):
        history = obj
    elif hasattr(obj, "history"):
        history = obj.history
    elif _is_estimator(obj):
        if not hasattr(obj, "loss_curve_"):
            solver = getattr(obj, "solver", None)
            why = ("solver='lbfgs' records no per-epoch curve; use a stochastic solver"
                   if solver == "lbfgs" else "fit it first")
            raise ValueError(f"this estimator has no loss_curve_: {why}")
        history = {"loss": list(obj.loss_curve_)}
        scores = getattr(obj, "validation_scores_", None)
        if scores is not None and len(scores) > 0:
            history["val_score"] = list(scores)
            if np.any(np.isfinite(scores)):
                history["best_epoch"] = int(np.nanargmax(scores)) + 1
    else:
        raise TypeError(f"expected a trained fastmlp model, a scikit-learn estimator with "
                        f"loss_curve_, or a history dict; got {obj!r}")
    if not isinstance(history, Mapping):
        raise TypeError(f"expected a trained model or its history dict; got {obj!r}")
    if len(history.get(key, ())) == 0:
        raise ValueError(f"the history has no {key!r} values: train the model first "
                         f"(its history is filled by train/fit)")
    return history


def _best_epoch(history, n_epochs):
    """``history["best_epoch"]`` when it names one of the epochs drawn, else None."""
    best = history.get("best_epoch")
    if isinstance(best, numbers.Integral) and not isinstance(best, bool) and 1 <= best <= n_epochs:
        return int(best)
    return None


def plot_loss(model_or_history: Union[MLP, History, Any], ax: Optional[Axes] = None, *,
              log_scale: bool = False, metric: bool = True) -> Axes:
    """Plot the training loss per epoch and, when recorded, the validation loss and metric.

    Parameters
    ----------
    model_or_history : MLP, estimator or dict
        A trained fastmlp model (its ``history`` is used); a fitted scikit-learn estimator
        (scikit-learn's or fastmlp's ``MLPClassifier``/``MLPRegressor``, or a ``Pipeline``
        ending in one): its ``loss_curve_`` and, with early stopping, its
        ``validation_scores_``; or a history dict with a ``"loss"`` list, optionally
        ``"val_loss"``, ``"val_accuracy"`` or ``"val_r2"`` lists (one value per epoch) and a
        ``"best_epoch"`` number.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    log_scale : bool, default False
        Use a logarithmic loss axis (useful when the loss falls by orders of magnitude).
    metric : bool, default True
        Also draw the validation metric (accuracy, R² or the estimator's score), dashed, on a
        second y axis at the right (``ax.twinx()``), when the history has one.

    Returns
    -------
    matplotlib.axes.Axes
        The loss axes, with one line per loss curve ("training loss", then "validation loss"),
        and when the history has a best epoch (early stopping), a dotted vertical line labelled
        "best epoch N" with a marker on the monitored curve; a legend and axis titles.

    Raises
    ------
    ValueError
        If the history holds no training loss (the model was never trained, or the estimator
        used ``solver="lbfgs"``).
    TypeError
        For an object that is none of the above.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_loss({"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.6, 0.45]})
    >>> [line.get_label() for line in ax.get_lines()]
    ['training loss', 'validation loss']
    >>> ax = plot_loss({"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.4, 0.45], "best_epoch": 2})
    >>> [line.get_label() for line in ax.get_lines()]
    ['training loss', 'validation loss', 'best epoch 2']
    """
    history = _history(model_or_history, "loss")
    ax = _axes(ax)
    curves = [("loss", "training loss")]
    if len(history.get("val_loss", ())) > 0:
        curves.append(("val_loss", "validation loss"))
    n_epochs = 0
    for key, label in curves:
        values = np.asarray(history[key], dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
        n_epochs = max(n_epochs, len(values))
    handles = list(ax.get_lines())
    metric_key = next((k for k in _METRICS if len(history.get(k, ())) > 0), None)
    right = None
    if metric and metric_key is not None:
        values = np.asarray(history[metric_key], dtype=float)
        right = ax.twinx()
        right.plot(np.arange(1, len(values) + 1), values, linestyle="--", color="tab:green",
                   label=_METRICS[metric_key])
        right.set_ylabel(_METRICS[metric_key].replace("validation ", ""))
        handles += right.get_lines()
        # The loss axes (with the legend) above the metric's, so no curve hides the legend.
        ax.set_zorder(right.get_zorder() + 1)
        ax.patch.set_visible(False)
        right.patch.set_visible(True)
        n_epochs = max(n_epochs, len(values))
    best = _best_epoch(history, n_epochs)
    if best is not None:
        # The marker goes on the curve early stopping most likely watched: the validation
        # loss (MLP's default), else the validation score (an estimator's), else the loss.
        target, key = ((ax, "val_loss") if "val_loss" in history else
                       (right, metric_key) if right is not None else (ax, "loss"))
        handles.append(ax.axvline(best, color="0.35", linestyle=":", linewidth=1.2,
                                  label=f"best epoch {best}"))
        if len(history[key]) >= best:
            target.scatter([best], [history[key][best - 1]], s=60, facecolors="none",
                           edgecolors="0.15", linewidths=1.5, zorder=3)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss per epoch")
    _legend_clear_of_lines(ax, handles, [ax] if right is None else [ax, right])
    return ax


_LEGEND_PLACES = ("upper right", "upper left", "lower left", "lower right", "center right",
                  "center left", "upper center", "lower center", "center")


def _legend_clear_of_lines(ax, handles, axes):
    """A legend on ``ax`` where it covers the fewest points of the lines of all ``axes``.

    matplotlib's ``loc="best"`` only avoids the lines of the legend's own axes, so it hides the
    curve of a twin axes."""
    labels = [h.get_label() for h in handles]
    points = []
    for a in axes:
        a.get_xlim(), a.get_ylim()      # settle the autoscaled limits the transforms use
        for line in a.get_lines():
            xy = line.get_transform().transform(line.get_xydata())
            if len(xy) > 1:      # ten points along each segment, so a crossing line counts
                t = np.linspace(0, 1, 10)[:, None, None]
                xy = (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)
            points.append(xy)
    points = np.concatenate(points) if points else np.empty((0, 2))
    best = None
    for place in _LEGEND_PLACES:
        legend = ax.legend(handles=handles, labels=labels, loc=place)
        box = legend.get_window_extent()
        covered = np.count_nonzero((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1)
                                   & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1))
        if best is None or covered < best[0]:
            best = (covered, place)
        if covered == 0:
            break
    return ax.legend(handles=handles, labels=labels, loc=best[1])


# One marker per class, so classes differ by shape as well as colour.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _point_style():
    """Scatter settings that keep points visible on any background, including a region of
    their own colour: a dark edge inside a white halo."""
    from matplotlib import patheffects
    return dict(s=26, edgecolors="0.1", linewidths=0.6, zorder=3,
                path_effects=[patheffects.withStroke(linewidth=2.4, foreground="white")])


def _class_index(y, classes):
    """The index of each label of ``y`` in ``classes``; ValueError for an unknown label."""
    index = np.full(len(y), -1)
    for i, c in enumerate(classes):
        index[y == c] = i
    if np.any(index < 0):
        unknown = np.unique(y[index < 0])[:5].tolist()
        raise ValueError(f"y contains labels the model does not know: {unknown}; its classes "
                         f"are {list(classes)[:10]}")
    return index


def plot_decision_boundary(model: Any, X: ArrayLike, y: ArrayLike, ax: Optional[Axes] = None,
                           resolution: int = 200, *, padding: float = 0.1,
                           feature_names: Optional[Sequence[str]] = None,
                           colorbar: bool = True) -> Axes:
    """Plot what a model predicts over the plane of two features, with the data on top.

    The model is evaluated on a ``resolution`` x ``resolution`` grid covering the data plus a
    margin, and drawn as a filled contour: for a binary classifier the probability of class 1
    (with the 0.5 line, the decision boundary, in black), for a multi-class classifier the
    predicted class, for a regressor the predicted value. The points of ``X`` are drawn over it,
    colored by their label (or value), each class with its own marker shape, and outlined (a
    dark edge in a white halo) so that they stay visible on a region of their own colour.

    Parameters
    ----------
    model : MLP or classifier/regressor
        A trained model taking two features: a fastmlp ``MLP``, or any object with
        ``predict_proba`` (classifiers: scikit-learn's or fastmlp's ``MLPClassifier``, a
        ``Pipeline``) or ``predict`` (regressors).
    X : array-like of shape (n_samples, 2)
        The points to draw; they also set the extent of the grid.
    y : array-like of shape (n_samples,)
        Their labels (classification: values among the model's classes, 0/1 for a binary
        MLP) or target values (regression).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    resolution : int, default 200
        Grid points along each axis, >= 2.
    padding : float, default 0.1
        Margin around the data, as a fraction of each feature's range.
    feature_names : pair of str, optional
        Axis titles; by default "feature 0" and "feature 1".
    colorbar : bool, default True
        Add a color bar for the probability (binary) or the value (regression).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If X does not have exactly two columns (a decision boundary is drawn in a plane), if
        y does not have one entry per row of X, if the model is multi-label, or if y holds a
        label the model does not know.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from fastmlp import MLP
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    >>> y = np.array([0, 1, 1, 0])
    >>> model = MLP([2, 8, 1], lr=0.5, seed=0).fit(X, y, epochs=2000, verbose=False)
    >>> ax = plot_decision_boundary(model, X, y, resolution=50)
    >>> ax.get_title()
    'Decision boundary'
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary draws models of exactly 2 features: X must "
                         f"have shape (n_samples, 2); got shape {X.shape}. Pick two columns, or "
                         f"project the data to 2-D first")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one label per row of X, shape ({X.shape[0]},); "
                         f"got shape {y.shape}")
    if isinstance(resolution, (bool, np.bool_)) or not isinstance(resolution, numbers.Integral) \
            or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2; got {resolution!r}")
    if not (np.isfinite(padding) and padding >= 0):
        raise ValueError(f"padding must be a finite number >= 0; got {padding!r}")
    task = getattr(model, "_task", None)
    if task == "multilabel":
        raise ValueError("a multi-label model has one boundary per label; plot a model with "
                         "one binary, multi-class or regression output")
    x_names = list(feature_names) if feature_names is not None else ["feature 0", "feature 1"]
    if len(x_names) != 2:
        raise ValueError(f"feature_names must name the 2 features; got {feature_names!r}")

    low, high = X.min(axis=0), X.max(axis=0)
    margin = np.where(high > low, (high - low) * padding, 0.5)
    g0 = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    g1 = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    xx, yy = np.meshgrid(g0, g1)
    grid = np.column_stack([xx.ravel(), yy.ravel()])

    ax = _axes(ax)
    plt = _pyplot()
    if task == "regression" or not hasattr(model, "predict_proba"):
        Z = np.asarray(model.predict(grid), dtype=float).reshape(xx.shape)
        y = y.astype(float)
        vmin, vmax = min(Z.min(), y.min()), max(Z.max(), y.max())
        filled = ax.contourf(xx, yy, Z, levels=20, cmap="viridis", vmin=vmin, vmax=vmax,
                             alpha=0.8)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="viridis", vmin=vmin, vmax=vmax,
                   label="data", **_point_style())
        if colorbar:
            ax.figure.colorbar(filled, ax=ax, label="prediction")
        title = "Predictions"
    else:
        P = np.asarray(model.predict_proba(grid), dtype=float)
        classes = getattr(model, "classes_", None)
        if P.ndim == 1 or P.shape[1] <= 2:
            P1 = P.ravel() if P.ndim == 1 or P.shape[1] == 1 else P[:, 1]
            classes = [0, 1] if classes is None else list(classes)
            cmap = plt.get_cmap("RdBu")
            filled = ax.contourf(xx, yy, P1.reshape(xx.shape), levels=np.linspace(0, 1, 11),
                                 cmap=cmap, vmin=0, vmax=1, alpha=0.8)
            ax.contour(xx, yy, P1.reshape(xx.shape), levels=[0.5], colors="k", linewidths=1)
            colors = [cmap(0.0), cmap(1.0)]
            if colorbar:
                ax.figure.colorbar(filled, ax=ax, label=f"probability of {classes[1]}")
        else:
            k = P.shape[1]
            classes = list(range(k)) if classes is None else list(classes)
            cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
            colors = [cmap(i % cmap.N) for i in range(k)]
            ax.contourf(xx, yy, P.argmax(axis=1).reshape(xx.shape),
                        levels=np.arange(k + 1) - 0.5, colors=colors, alpha=0.35)
        index = _class_index(y, classes)
        for i, label in enumerate(classes):
            points = X[index == i]
            ax.scatter(points[:, 0], points[:, 1], color=colors[i], label=str(label),
                       marker=_MARKERS[i % len(_MARKERS)], **_point_style())
        ax.legend(title="class", loc="best")
        title = "Decision boundary"
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel(x_names[0])
    ax.set_ylabel(x_names[1])
    ax.set_title(title)
    return ax


def _estimator_rates(est):
    """The rate of each epoch of a fitted scikit-learn estimator. Estimators record no rates,
    so they are recomputed from the parameters, for the schedules where that is exact."""
    if not hasattr(est, "loss_curve_"):
        why = ("solver='lbfgs' has no learning rate" if getattr(est, "solver", None) == "lbfgs"
               else "fit it first")
        raise ValueError(f"this estimator has no loss_curve_ to count its epochs: {why}")
    n = len(est.loss_curve_)
    lr0 = float(est.learning_rate_init)
    learning_rate = getattr(est, "learning_rate", "constant")
    if isinstance(learning_rate, str) and learning_rate in ("constant", "invscaling", "adaptive"):
        if getattr(est, "solver", "sgd") != "sgd" or learning_rate == "constant":
            return np.full(n, lr0)       # scikit-learn's schedules apply to solver="sgd" only
        if learning_rate == "invscaling":
            # lr_init / (t + 1) ** power_t after t samples; every epoch sees t_ / n_iter_.
            seen = est.t_ / est.n_iter_ * np.arange(n)
            return lr0 / (seen + 1) ** float(est.power_t)
        raise ValueError("an estimator does not record the rates of learning_rate='adaptive' "
                         "(it divides the rate by 5 whenever training stalls, which verbose=True "
                         "prints); there is nothing exact to plot")
    from .schedules import get_schedule
    schedule = get_schedule(learning_rate)
    if schedule.adaptive:
        raise TypeError(f"the rates of the adaptive schedule {schedule!r} depend on the losses "
                        f"and the estimator does not record them")
    return schedule.rates(lr0, n)


def plot_learning_rate(model_or_history_or_schedule: Union[MLP, History, Schedule, Any],
                       ax: Optional[Axes] = None, epochs: Optional[int] = None, *,
                       base_lr: Optional[float] = None, log_scale: bool = False) -> Axes:
    """Plot the learning rate of each epoch: the rates a model trained with, or a schedule's.

    The rate is constant during an epoch, so it is drawn as steps (``drawstyle="steps-post"``):
    each epoch's value holds until the next epoch starts, and a step decay shows vertical
    drops, not slopes.

    Parameters
    ----------
    model_or_history_or_schedule : MLP, estimator, dict or fastmlp.schedules.Schedule
        A trained model or its history dict: the rates in ``history["lr"]``. A schedule: its
        ``rates(base_lr, epochs)``. An untrained model with ``epochs`` given: the rates its
        schedule will use. A fitted scikit-learn estimator (scikit-learn's or fastmlp's
        ``MLPClassifier``/``MLPRegressor``, or a ``Pipeline`` ending in one), which records no
        rates: the rates of its ``learning_rate_init`` and ``learning_rate`` for each epoch of
        ``loss_curve_`` ("constant", "invscaling", or a fastmlp schedule; "adaptive" is refused).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure.
    epochs : int, optional
        How many epochs of a schedule to draw: required for a schedule; for a model, draws its
        schedule for this many epochs instead of its history. Not used with a history dict.
    base_lr : float, optional
        The base rate a schedule scales: by default 1.0 for a schedule (so the curve shows
        the factor) and the model's ``lr`` for a model. Not used with a history.
    log_scale : bool, default False
        Use a logarithmic rate axis.

    Returns
    -------
    matplotlib.axes.Axes
        With one stepped line, rate against epoch (counted from 1).

    Raises
    ------
    ValueError
        If there is nothing to draw: a schedule without ``epochs``, an untrained model or
        estimator without ``epochs``, a history without rates, ``epochs`` given with a history
        dict, or an estimator whose rates cannot be known (``learning_rate="adaptive"``,
        ``solver="lbfgs"``).
    TypeError
        For an adaptive schedule (``ReduceOnPlateau``), whose rates depend on losses: plot the
        history of a model trained with it instead.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from fastmlp.schedules import Cosine
    >>> ax = plot_learning_rate(Cosine(total_epochs=50, warmup_epochs=5), epochs=50, base_lr=0.1)
    >>> float(ax.get_lines()[0].get_ydata().max())
    0.1
    >>> ax.get_lines()[0].get_drawstyle()
    'steps-post'
    """
    obj = _final_step(model_or_history_or_schedule)
    if isinstance(obj, Mapping):
        if epochs is not None:
            raise ValueError("epochs is for a schedule or a model; a history dict already holds "
                             "the rate of every epoch it trained")
        rates = _history(obj, "lr")["lr"]
    elif hasattr(obj, "rates") and not hasattr(obj, "history"):
        if epochs is None:
            raise ValueError("pass epochs=... to plot a schedule: how many epochs to draw")
        rates = obj.rates(1.0 if base_lr is None else base_lr, epochs)
    elif epochs is not None and hasattr(obj, "schedule"):
        rates = obj.schedule.rates(obj.base_lr if base_lr is None else base_lr, epochs)
    elif len(getattr(obj, "history", {}).get("lr", ())) > 0:
        rates = obj.history["lr"]
    elif hasattr(obj, "history"):
        raise ValueError("this model has not been trained: train it first, or pass epochs=... "
                         "to plot the rates its schedule will use")
    elif _is_estimator(obj) and hasattr(obj, "learning_rate_init"):
        rates = _estimator_rates(obj)
    else:
        raise TypeError(f"expected a model, an estimator, a history dict or a fastmlp "
                        f"schedule; got {obj!r}")
    rates = np.asarray(rates, dtype=float)
    ax = _axes(ax)
    ax.plot(np.arange(1, len(rates) + 1), rates, drawstyle="steps-post",
            marker="." if len(rates) <= 60 else None, label="learning rate")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    return ax
