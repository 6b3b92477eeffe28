"""ONNX export (fastmlp.export): the exported graph, run by onnxruntime, gives the outputs of
``forward`` / ``predict_proba`` / ``predict`` for every activation, task, loss and dtype, with and
without batch normalization and dropout, for the MLP and for the estimators.

Tolerances (``RTOL``): float64 probabilities must agree elementwise, however small; regression
outputs and float32 probabilities relative to the scale of the outputs (``atol = rtol *
max|expected|`` besides the elementwise ``rtol``). A regression output near 0 is the difference of
larger terms and its rounding error is relative to those, and a float32 probability of 1e-20
comes from a logit of -46 whose rounding (in fastmlp as in any runtime) is 1e-5 of it.
"""
import doctest
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastmlp  # noqa: E402
from fastmlp import MLP  # noqa: E402
from fastmlp import export  # noqa: E402
from fastmlp._kernels._dense import ACTIVATION_IDS, dense_forward_py  # noqa: E402
from fastmlp._kernels._loss import LOSS_IDS  # noqa: E402
from fastmlp.export import DEFAULT_OPSET, to_onnx  # noqa: E402

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float64, np.float32]
# Every hidden activation, with a non-default parameter where it takes one.
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", ("leaky_relu", 0.2), ("elu", 0.5), "gelu",
               "gelu_tanh", "silu", "swish", "softplus", "mish"]
# task -> (loss, number of outputs); every loss appears.
TASKS = {"binary": ("binary_crossentropy", 1), "multiclass": ("categorical_crossentropy", 3),
         "multilabel": ("binary_crossentropy", 2), "regression": ("squared_error", 1),
         "regression_2_absolute": ("absolute_error", 2), "regression_huber": ("huber", 1)}


def _data(task, n=120, n_features=5, seed=0):
    """X spread wide (scale 3), so the activations see their tails; y for the task."""
    rng = np.random.default_rng(seed)
    X = 3 * rng.normal(size=(n, n_features))
    if task == "binary":
        y = (X[:, 0] * X[:, 1] > 0).astype(int)
    elif task == "multiclass":
        y = np.array(["cat", "dog", "emu"])[np.digitize(X[:, 0] + X[:, 2], [-2.0, 2.0])]
    elif task == "multilabel":
        y = (X[:, :2] > 0).astype(int)
    elif TASKS[task][1] == 1:
        y = X[:, 0] ** 2 / 3 + X[:, 1]
    else:
        y = np.c_[X[:, 0] ** 2 / 3, X[:, 1] - X[:, 2]]
    return X, y


def _run(model_proto, X, **session_options):
    session = ort.InferenceSession(model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"], **session_options)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X})))


def _assert_close(got, expected, dtype, probabilities=False):
    assert got.shape == expected.shape
    assert got.dtype == np.dtype(dtype)
    rtol = RTOL[dtype]
    if probabilities and dtype == np.float64:
        atol = 1e-300        # elementwise, down to subnormals (which runtimes may flush)
    else:
        atol = rtol * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def _trained_mlp(task, activation, dtype, regularized, sizes=(8, 6), epochs=15):
    loss, n_out = TASKS[task]
    X, y = _data(task)
    model = MLP([X.shape[1], *sizes, n_out], lr=0.03, seed=1, hidden_activation=activation,
                dtype=dtype, loss=loss, optimizer="adam", batch_norm=regularized,
                dropout=0.2 if regularized else 0.0)
    model.train(X, y, epochs=epochs, batch_size=16, verbose=False)
    return model, X


# -- the building blocks ---------------------------------------------------------------------

def _elementwise(build, x):
    """Run a one-input subgraph ``build(graph, "X")`` on the vector x."""
    dtype = x.dtype
    g = export._Graph(onnx, dtype)
    g.op("Identity", build(g, "X"), output="Y")
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    opsets = [onnx.helper.make_opsetid("", DEFAULT_OPSET)]
    model = onnx.helper.make_model(
        onnx.helper.make_graph(g.nodes, "t", [onnx.helper.make_tensor_value_info("X", elem, ["N"])],
                               [onnx.helper.make_tensor_value_info("Y", elem, ["N"])],
                               initializer=g.initializers),
        opset_imports=opsets, ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def _grid(dtype):
    tiny = np.logspace(-30, 0, 61)
    return np.concatenate([np.linspace(-40, 40, 8001), tiny, -tiny, [0.0]]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_erfc_matches_scipy(dtype):
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([_grid(dtype), np.linspace(-6, 27, 3301).astype(dtype)])
    got = _elementwise(export._erfc, x)
    expected = special.erfc(x.astype(np.float64))
    # float32 exp(-x^2) is itself uncertain by x^2 * 6e-8 relative (1e-5 where erfc ~ 1e-38).
    rtol = 2e-13 if dtype == np.float64 else 1e-5
    normal = expected > np.finfo(dtype).tiny * 1e6
    np.testing.assert_allclose(got[normal], expected[normal], rtol=rtol)
    assert np.all(np.abs(got[~normal]) <= np.finfo(dtype).tiny * 1e6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_each_activation_matches_the_kernel_elementwise(activation, dtype):
    """Every composed activation against the compiled kernel on [-40, 40] and tiny |x|: to a
    few ulps relative (erfc: 6e-14 at large arguments), wherever the value is a normal number."""
    name, param = activation if isinstance(activation, tuple) else (activation, None)
    name = {"swish": "silu"}.get(name, name)
    x = _grid(dtype)
    kernel_out = np.empty((x.size, 1), dtype=dtype)
    dense_forward_py(x.reshape(-1, 1).copy(), np.ones((1, 1), dtype), np.zeros(1, dtype),
                     ACTIVATION_IDS[name], False, kernel_out, None, param)
    expected = kernel_out[:, 0]
    p = param if param is not None else 0.0
    got = _elementwise(lambda g, X: export._ACTIVATIONS[name](g, X, p), x)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    floor = np.finfo(dtype).tiny * 1e6    # runtimes may flush subnormals to zero
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=floor)


# -- MLP: every activation x task x dtype, with and without batch norm and dropout -------------

@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "batchnorm_dropout"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_mlp_round_trip(activation, task, dtype, regularized):
    model, X = _trained_mlp(task, activation, dtype, regularized)
    proto = to_onnx(model)
    outputs = _run(proto, X.astype(dtype))
    if task.startswith("regression"):
        assert list(outputs) == ["predictions"]
        _assert_close(outputs["predictions"], model.forward(X), dtype)
        np.testing.assert_array_equal(model.predict(X), model.forward(X))
        return
    assert list(outputs) == ["probabilities", "label"]
    _assert_close(outputs["probabilities"], model.predict_proba(X), dtype, probabilities=True)
    label = model.predict(X)
    assert outputs["label"].shape == label.shape
    np.testing.assert_array_equal(outputs["label"], label)
    # probabilities that are not degenerate: the comparison has something to compare
    assert np.ptp(outputs["probabilities"]) > 0.1


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_activations_and_batch_norm_per_layer(dtype):
    X, y = _data("multiclass")
    model = MLP([5, 7, 6, 5, 3], hidden_activation=[("elu", 2.0), "gelu", ("leaky_relu", -0.1)],
                batch_norm=[True, False, True], dropout=[0.1, 0.0, 0.3], dtype=dtype, seed=3,
                optimizer="adam", lr=0.02, label_smoothing=0.1)
    model.train(X, y, epochs=20, batch_size=10, verbose=False)
    assert not np.allclose(model.running_mean[0], 0)      # the statistics were learned
    outputs = _run(to_onnx(model), X.astype(dtype))
    _assert_close(outputs["probabilities"], model.predict_proba(X), dtype, probabilities=True)
    np.testing.assert_array_equal(outputs["label"], model.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_with_far_from_default_statistics(dtype):
    """Running statistics and scales set by hand, far from 0 and 1: the folding is exact."""
    X, y = _data("regression")
    model = MLP([5, 4, 3, 1], hidden_activation="tanh", batch_norm=True, loss="squared_error",
                dtype=dtype, seed=0)
    rng = np.random.default_rng(5)
    for k in range(2):
        model.running_mean[k][:] = rng.normal(size=model.sizes[k + 1])
        model.running_var[k][:] = rng.uniform(0.01, 9, size=model.sizes[k + 1])
        model.gamma[k] = rng.normal(size=model.sizes[k + 1])
        model.beta[k] = rng.normal(size=model.sizes[k + 1])
    outputs = _run(to_onnx(model), X.astype(dtype))
    _assert_close(outputs["predictions"], model.forward(X), dtype)


@pytest.mark.skipif("poisson" not in LOSS_IDS, reason="fastmlp has no Poisson loss yet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_regression_exponentiates(dtype):
    X, _ = _data("regression")
    y = np.random.default_rng(0).poisson(np.exp(0.3 * X[:, 0].clip(-3, 3)))
    model = MLP([5, 6, 1], loss="poisson", dtype=dtype, seed=0, lr=0.01)
    model.train(X, y, epochs=10, verbose=False)
    outputs = _run(to_onnx(model), X.astype(dtype))
    _assert_close(outputs["predictions"], model.forward(X), dtype)


def test_untrained_multiclass_mlp_labels_are_class_indices():
    X, _ = _data("multiclass")
    model = MLP([5, 4, 3], seed=0)
    outputs = _run(to_onnx(model), X)
    np.testing.assert_allclose(outputs["probabilities"], model.forward(X), rtol=1e-10)
    np.testing.assert_array_equal(outputs["label"], model.forward(X).argmax(axis=1))


# -- the graph itself ---------------------------------------------------------------------------

def test_graph_interface_and_structure():
    model, X = _trained_mlp("multiclass", "gelu", np.float32, regularized=True)
    proto = to_onnx(model)
    graph = proto.graph
    (x,) = graph.input
    assert x.name == "X"
    assert x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = x.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 5
    assert [o.name for o in graph.output] == ["probabilities", "label"]
    ops = [node.op_type for node in graph.node]
    assert ops.count("Gemm") == 3               # one per layer: batch norm folded into them
    assert "Dropout" not in ops and "BatchNormalization" not in ops
    assert proto.opset_import[0].version == DEFAULT_OPSET
    assert proto.producer_name == "fastmlp"
    assert proto.producer_version == fastmlp.__version__
    onnx.checker.check_model(proto, full_check=True)
    # a dynamic batch: one row, and more rows than any chunk fastmlp predicts at once
    for n in (1, 5000):
        Xn = np.random.default_rng(n).normal(size=(n, 5)).astype(np.float32)
        _assert_close(_run(proto, Xn)["probabilities"], model.predict_proba(Xn), np.float32,
                      probabilities=True)


@pytest.mark.parametrize("opset", [13, DEFAULT_OPSET, 21])
@pytest.mark.parametrize("activation", ["gelu", ("elu", 0.5), "mish", ("leaky_relu", 0.1)],
                         ids=str)
def test_opsets_run_in_float64(opset, activation):
    """onnxruntime has no float64 kernel for ONNX's own Gelu, Elu, Mish or LeakyRelu at recent
    opsets; the composed graph runs at every opset offered."""
    model, X = _trained_mlp("binary", activation, np.float64, regularized=False)
    proto = to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    _assert_close(_run(proto, X)["probabilities"], model.predict_proba(X), np.float64,
                  probabilities=True)


def test_graph_optimizations_do_not_change_the_outputs():
    model, X = _trained_mlp("binary", "silu", np.float32, regularized=True)
    proto = to_onnx(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = _run(proto, X.astype(np.float32), sess_options=options)["probabilities"]
    optimized = _run(proto, X.astype(np.float32))["probabilities"]
    _assert_close(plain, model.predict_proba(X), np.float32, probabilities=True)
    _assert_close(optimized, model.predict_proba(X), np.float32, probabilities=True)


# -- files ---------------------------------------------------------------------------------------

def test_path_writes_the_model_atomically(tmp_path):
    model, X = _trained_mlp("regression", "relu", np.float64, regularized=False)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old contents")
    proto = to_onnx(model, path)
    assert path.read_bytes() == proto.SerializeToString()
    loaded = onnx.load(str(path))
    _assert_close(_run(loaded, X)["predictions"], model.forward(X), np.float64)
    # a failed export leaves the existing file as it was, and no temporary file behind
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, path, opset=3)
    assert path.read_bytes() == proto.SerializeToString()
    to_onnx(model, str(tmp_path / "second.onnx"))
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "second.onnx"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "second.onnx").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(path, 0o640)
    to_onnx(model, path)
    assert path.stat().st_mode & 0o777 == 0o640          # a replaced file keeps its mode
    with pytest.raises(FileNotFoundError):
        to_onnx(model, tmp_path / "missing" / "model.onnx")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "second.onnx"]
    # the same target rules as model files: a FIFO is not replaced by a regular file
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="pipe"):
        to_onnx(model, tmp_path / "pipe")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("thing", [None, "model.npz", {"W": []}, np.zeros((2, 2))])
def test_non_models_are_refused(thing):
    with pytest.raises(TypeError, match="fastmlp.MLP or a fitted fastmlp.MLPClassifier"):
        to_onnx(thing)


@pytest.mark.parametrize("opset", [12, 10**6, 17.0, "17", True])
def test_bad_opset(opset):
    model = MLP([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match=f"opset must be an integer from {export.MIN_OPSET}"):
        to_onnx(model, opset=opset)


def test_bad_label_flag():
    with pytest.raises(TypeError, match="label must be True or False"):
        to_onnx(MLP([2, 3, 1], seed=0), label="yes")


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    extra = r'pip install "fastmlp\[onnx\]".*pip install "\.\[onnx\]"'
    with pytest.raises(ImportError, match=extra):
        to_onnx(MLP([2, 3, 1], seed=0))


def test_import_fastmlp_does_not_import_onnx(tmp_path):
    code = ("import sys, fastmlp, fastmlp.export; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, "
            "sorted(m for m in sys.modules if 'onnx' in m)")
    # The fastmlp these tests import (installed, or built in place), from a neutral folder.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastmlp.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


def test_docstring_example_runs():
    finder = doctest.DocTestFinder()
    (test,) = [t for t in finder.find(export, "fastmlp.export") if t.name.endswith("to_onnx")]
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0 and result.attempted > 0


# -- the scikit-learn estimators -----------------------------------------------------------------

sklearn_tasks = {
    "binary_strings": lambda X: np.where(X[:, 0] * X[:, 1] > 0, "same", "differ"),
    "binary_ints": lambda X: np.where(X[:, 0] > 0, 5, -7),
    "binary_bools": lambda X: X[:, 0] + X[:, 1] > 0,
    "multiclass_ints": lambda X: np.digitize(X[:, 0] + X[:, 2], [-2.0, 2.0]) * 10 - 3,
    "multiclass_floats": lambda X: np.digitize(X[:, 0], [-1.0, 1.0]).astype(float) + 1.0,
    "multiclass_strings": lambda X: np.array(["a", "b", "c"])[np.digitize(X[:, 0], [-1.0, 1.0])],
    "multilabel": lambda X: (X[:, :3] > 0).astype(int),
}


# Short fits on purpose: scikit-learn's "Maximum iterations reached" warning is expected.
pytestmark_short_fits = pytest.mark.filterwarnings("ignore:Stochastic Optimizer")


@pytest.fixture(scope="module")
def estimators():
    return pytest.importorskip("fastmlp.estimators")


@pytestmark_short_fits
@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "batchnorm_dropout"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task", list(sklearn_tasks))
def test_classifier_round_trip(estimators, task, dtype, regularized):
    X, _ = _data("binary")
    y = sklearn_tasks[task](X)
    clf = estimators.MLPClassifier((8, 6), activation="logistic", max_iter=25, dtype=dtype,
                                   random_state=0, batch_norm=regularized,
                                   dropout=0.2 if regularized else 0.0, learning_rate_init=0.01)
    clf.fit(X, y)
    outputs = _run(to_onnx(clf), X.astype(dtype))
    assert list(outputs) == ["probabilities", "label"]
    proba = clf.predict_proba(X)
    _assert_close(outputs["probabilities"], proba.astype(dtype), dtype, probabilities=True)
    assert np.ptp(proba) > 0.1
    expected = clf.predict(X)
    assert outputs["label"].shape == expected.shape
    assert outputs["label"].tolist() == expected.tolist()


@pytestmark_short_fits
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_regressor_round_trip(estimators, n_targets, loss, dtype):
    X, y = _data("regression" if n_targets == 1 else "regression_2_absolute")
    reg = estimators.MLPRegressor(loss, hidden_layer_sizes=(8,), activation="tanh", max_iter=25,
                                  dtype=dtype, random_state=0, batch_norm=True)
    reg.fit(X, y)
    outputs = _run(to_onnx(reg), X.astype(dtype))
    assert list(outputs) == ["predictions"]
    _assert_close(outputs["predictions"], reg.predict(X).astype(dtype), dtype)


@pytestmark_short_fits
def test_label_false_and_unstorable_classes(estimators):
    X, _ = _data("binary")
    y = np.array([1, "one"], dtype=object)[(X[:, 0] > 0).astype(int)]
    clf = estimators.MLPClassifier((4,), max_iter=5, random_state=0)
    clf.fit(X, y.astype(str))
    clf.classes_ = np.array([1, "one"], dtype=object)      # as a mixed-type y would give
    with pytest.raises(ValueError, match="label=False"):
        to_onnx(clf)
    outputs = _run(to_onnx(clf, label=False), X)
    assert list(outputs) == ["probabilities"]
    _assert_close(outputs["probabilities"], clf.predict_proba(X), np.float64, probabilities=True)


def test_unfitted_estimator(estimators):
    from sklearn.exceptions import NotFittedError
    for est in (estimators.MLPClassifier(), estimators.MLPRegressor()):
        with pytest.raises(NotFittedError, match="not fitted yet: call fit before to_onnx"):
            to_onnx(est)


@pytestmark_short_fits
def test_estimator_without_its_network_or_inconsistent(estimators):
    X, _ = _data("binary")
    clf = estimators.MLPClassifier((4,), max_iter=5, random_state=0)
    clf.fit(X, X[:, 0] > 0)
    clf.out_activation_ = "softmax"
    with pytest.raises(ValueError, match="disagree with its network"):
        to_onnx(clf)
    del clf.model_
    with pytest.raises(TypeError, match="cannot find the fitted network"):
        to_onnx(clf)


def test_scikit_learns_own_estimator_points_to_skl2onnx():
    neural_network = pytest.importorskip("sklearn.neural_network")
    with pytest.raises(TypeError, match="skl2onnx"):
        to_onnx(neural_network.MLPClassifier())

