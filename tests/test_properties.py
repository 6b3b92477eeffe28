"""Property-based tests (hypothesis): whatever the configuration and the data, training either
refuses with ValueError/TypeError and leaves the model bit for bit as it was, or leaves a model
whose every buffer and prediction is finite and which saves and loads bit-exactly. A fit that
diverges (``TrainingDiverged``, a ValueError) leaves the last finite state: every buffer finite,
and the model still saves and loads exactly.

The example budget comes from the hypothesis profile chosen in ``conftest.py``: "ci" by default
(fixed seed, a few hundred examples, some seconds), "long" (ten times more) with
``FASTMLP_HYPOTHESIS_PROFILE=long``.
"""
import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

import fastmlp
from fastmlp import MLP
from fastmlp._engine import TrainingDiverged
from fastmlp.activations import HIDDEN_ACTIVATIONS
from fastmlp.optimizers import OPTIMIZERS

LOSSES = ("binary_crossentropy", "multilabel", "categorical_crossentropy", "squared_error",
          "absolute_error", "huber")
# Scales of X and of the targets: ordinary, tiny, large, beyond float32, near float64's edge.
SCALES = (1.0, 1e-30, 1e3, 1e30, 1e150, 1e300)


def buffers(model):
    return (model.params.copy(), model.bn_state.copy(), model._opt_state.copy(),
            model._step.copy(), model._rng.bit_generator.state, model.classes_)


def assert_same_buffers(before, after):
    for old, new in zip(before[:4], after[:4]):
        np.testing.assert_array_equal(old, new, strict=True)
    assert before[4] == after[4]
    assert (before[5] is None) == (after[5] is None)


@st.composite
def configurations(draw):
    n_features = draw(st.integers(1, 4))
    hidden = draw(st.lists(st.integers(1, 6), max_size=2))
    loss = draw(st.sampled_from(LOSSES))
    n_out = {"binary_crossentropy": 1, "categorical_crossentropy": draw(st.integers(2, 4)),
             "multilabel": draw(st.integers(2, 3))}.get(loss, draw(st.integers(1, 2)))
    n_hidden = len(hidden)
    config = dict(
        layer_sizes=[n_features, *hidden, n_out],
        loss="binary_crossentropy" if loss == "multilabel" else loss,
        hidden_activation=draw(st.lists(st.sampled_from(HIDDEN_ACTIVATIONS),
                                        min_size=n_hidden, max_size=n_hidden)),
        optimizer=draw(st.sampled_from(sorted(OPTIMIZERS))),
        dtype=draw(st.sampled_from([np.float64, np.float32])),
        lr=draw(st.sampled_from([1e-3, 0.1, 3.0, 1e4, 1e300])),
        l2=draw(st.sampled_from([0.0, 0.0, 1e-3, 10.0])),
        l1=draw(st.sampled_from([0.0, 0.0, 1e-2])),
        dropout=draw(st.lists(st.sampled_from([0.0, 0.3, 0.9]), min_size=n_hidden,
                              max_size=n_hidden)),
        batch_norm=draw(st.lists(st.booleans(), min_size=n_hidden, max_size=n_hidden)),
        clip_norm=draw(st.sampled_from([None, None, 1.0])),
        clip_value=draw(st.sampled_from([None, None, 0.5])),
        early_stopping=draw(st.sampled_from([False, False, False, True])),
        seed=draw(st.integers(0, 3)),
    )
    if config["early_stopping"]:
        config.update(patience=draw(st.integers(1, 2)),
                      validation_fraction=draw(st.sampled_from([0.2, 0.5])))
    if loss == "huber":
        config["huber_delta"] = draw(st.sampled_from([1e-3, 1.0, 1e6]))
    if loss == "categorical_crossentropy":
        config["label_smoothing"] = draw(st.sampled_from([0.0, 0.1]))
    if n_hidden and draw(st.booleans()):
        config["schedule"] = draw(st.sampled_from(["cosine", "invscaling", "plateau"]))
    return config


@st.composite
def training_sets(draw, config):
    """X, y and the train keyword arguments for a model of ``config``."""
    n = draw(st.integers(1, 12))
    n_features, n_out = config["layer_sizes"][0], config["layer_sizes"][-1]
    scale = draw(st.sampled_from(SCALES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, n_features)) * scale
    if draw(st.booleans()):
        X[:, 0] = draw(st.sampled_from([0.0, 1.0, -1e300]))    # a constant column
    loss = config["loss"]
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=n) if n_out == 1 else rng.integers(0, 2, size=(n, n_out))
    elif loss == "categorical_crossentropy":
        y = rng.integers(0, n_out, size=n)
    else:
        y = rng.normal(size=(n, n_out)) * draw(st.sampled_from(SCALES[:4]))
        y = y[:, 0] if n_out == 1 else y
    kwargs = dict(epochs=draw(st.integers(1, 3)), verbose=False,
                  batch_size=draw(st.one_of(st.none(), st.integers(1, n + 1))),
                  shuffle=draw(st.booleans()))
    weights = draw(st.sampled_from(["none", "random", "zeros", "huge", "tiny"]))
    if weights != "none":
        w = rng.uniform(0, 2, size=n)
        if weights == "zeros":
            w[rng.integers(0, n)] = 0.0
        w *= {"random": 1.0, "zeros": 1.0, "huge": 1e307, "tiny": 1e-300}[weights]
        kwargs["sample_weight"] = w
    if loss != "binary_crossentropy" or n_out == 1:
        if loss != "squared_error" and loss not in ("absolute_error", "huber") \
                and draw(st.booleans()):
            kwargs["class_weight"] = "balanced"
    return X, y, kwargs


def check_saves_and_loads_exactly(model, X, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    loaded = fastmlp.load(path)
    for name in ("params", "bn_state", "_opt_state", "_step"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name), strict=True)
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X), strict=True)
    return loaded


def assert_finite_model(model, X):
    for name in ("params", "bn_state", "_opt_state"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert np.all(np.isfinite(model.forward(X)))


@given(data=st.data())
def test_training_refuses_cleanly_or_leaves_a_finite_model_that_round_trips(
        data, tmp_path_factory):
    config = data.draw(configurations(), label="config")
    try:
        model = MLP(**config)
    except (ValueError, TypeError):
        event("configuration refused")
        return                          # an invalid configuration is refused at construction
    X, y, kwargs = data.draw(training_sets(config), label="data")
    before = buffers(model)
    try:
        model.train(X, y, **kwargs)
    except TrainingDiverged as error:
        event(f"diverged: {error.what}")
        for buffer in (model.params, model.bn_state, model._opt_state):
            assert np.all(np.isfinite(buffer))
        check_saves_and_loads_exactly(model, np.zeros((1, X.shape[1])), tmp_path_factory)
        return
    except (ValueError, TypeError) as error:
        event(f"refused: {type(error).__name__}")
        assert_same_buffers(before, buffers(model))
        return
    event("trained")
    # Trained: every buffer, and every prediction on the training inputs, is finite.
    assert_finite_model(model, X)
    check_saves_and_loads_exactly(model, X, tmp_path_factory)


BAD_INPUTS = {
    "nan in X": lambda X, y, kw: (np.where(np.arange(X.size).reshape(X.shape) == 0, np.nan, X),
                                  y, kw),
    "inf in y": lambda X, y, kw: (X, np.where(np.arange(y.size).reshape(y.shape) == 0, np.inf,
                                              y.astype(float)), kw),
    "wrong width": lambda X, y, kw: (np.hstack([X, X]), y, kw),
    "one row short": lambda X, y, kw: (X[1:], y, kw),
    "negative weight": lambda X, y, kw: (X, y, dict(kw, sample_weight=-np.ones(len(X)))),
    "all-zero weights": lambda X, y, kw: (X, y, dict(kw, sample_weight=np.zeros(len(X)))),
    "zero batch": lambda X, y, kw: (X, y, dict(kw, batch_size=0)),
    "float epochs": lambda X, y, kw: (X, y, dict(kw, epochs=2.0)),
    "text X": lambda X, y, kw: (X.astype(str), y, kw),
    "unknown label": lambda X, y, kw: (X, np.full(y.shape, 7), kw),
    "bad validation": lambda X, y, kw: (X, y, dict(kw, validation_data=(X,))),
}


@given(data=st.data())
def test_invalid_input_is_refused_and_leaves_the_model_bit_for_bit_unchanged(
        data, tmp_path_factory):
    config = data.draw(configurations(), label="config")
    try:
        model = MLP(**config)
    except (ValueError, TypeError):
        return
    X, y, kwargs = data.draw(training_sets(config), label="data")
    X = np.clip(X, -1e3, 1e3)
    kwargs.pop("sample_weight", None)
    kwargs.pop("class_weight", None)
    if config["loss"] == "binary_crossentropy" and data.draw(st.booleans(), label="trained"):
        try:
            model.train(X, y, **kwargs)         # refusals of a trained model too
        except ValueError:
            pass
    bad = data.draw(st.sampled_from(sorted(BAD_INPUTS)), label="bad")
    if bad == "unknown label":
        assume(config["loss"] in ("binary_crossentropy", "categorical_crossentropy"))
    if bad == "one row short":
        assume(len(X) > 1)
    bad_X, bad_y, bad_kwargs = BAD_INPUTS[bad](X, y, kwargs)
    before = buffers(model)
    with pytest.raises((ValueError, TypeError)):
        model.train(bad_X, bad_y, **bad_kwargs)
    assert_same_buffers(before, buffers(model))
