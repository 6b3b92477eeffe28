"""Export a trained network to ONNX, the graph format that serving runtimes read.

``to_onnx`` writes a standard ONNX graph of a ``fastmlp.MLP`` or of a fitted
``fastmlp.MLPClassifier`` / ``MLPRegressor``: one ``Gemm`` (product and bias) per layer, every
hidden activation, batch normalization folded into the preceding ``Gemm`` with the running
statistics, the output activation, and no dropout (it is the identity at prediction). The graph
computes in the model's dtype (float32 or float64) and gives what ``predict_proba`` (or
``forward`` / ``predict`` for regression) gives, to rounding.

Every activation is composed from elementary operators (``Exp``, ``Log``, ``Tanh``, ``Relu``,
``Where``, ...) that onnxruntime runs in float32 and float64 alike, with the kernels' formulas:
ONNX's own ``LeakyRelu``, ``Elu``, ``Softplus``, ``Mish``, ``Gelu`` and ``Erf`` have no float64
kernel in onnxruntime (1.32) at recent opsets, and its ``Sigmoid`` is accurate in absolute terms
only (0 for 2e-19 in float64; off by up to 1e-7 in float32), which small probabilities cannot
afford. ``log1p``, ``expm1`` and ``erfc``, which ONNX lacks, are built to full precision:
Goldberg's and Kahan's identities for the first two, W. J. Cody's rational approximations
(Math. Comp. 23, 1969; SPECFUN's ``CALERF``) for ``erfc``. Softmax is ONNX's ``Softmax``.

This module is not a general converter: it knows fastmlp's networks only. ``onnx`` is imported
when ``to_onnx`` is called, so ``import fastmlp`` does not need it.
"""
import os
import sys

import numpy as np

from ._kernels._dense import ACTIVATION_IDS
from . import io as _io
from .losses import resolve_loss
from .mlp import MLP

__all__ = ["to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

# Opset 17 runs in onnxruntime >= 1.13 and most other runtimes; 13 is the oldest whose
# Softmax semantics (one axis) the graph relies on.
DEFAULT_OPSET = 17
MIN_OPSET = 13
# The batch-norm epsilon of the kernels (``_train.Network``'s ``bn_eps``, which MLP leaves at
# its default).
_BN_EPS = 1e-5

_ACTIVATION_NAMES = {i: name for name, i in ACTIVATION_IDS.items() if name != "swish"}
# The output activation each loss implies (see ``fastmlp.losses``).
_OUTPUT_ACTIVATIONS = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                       "squared_error": "identity", "absolute_error": "identity",
                       "huber": "identity", "poisson": "exp"}
# scikit-learn's name of each output activation (the estimators' ``out_activation_``).
_SKLEARN_OUTPUTS = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity",
                    "exp": "exp"}

_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2 = 0.7071067811865476
_GELU_C = 0.044715

# W. J. Cody's coefficients, as published in SPECFUN's CALERF: erf(x) = x A(x^2) / B(x^2) for
# |x| <= 0.46875; erfc(x) = exp(-x^2) C(x) / D(x) for 0.46875 < x <= 4; and
# erfc(x) = exp(-x^2) / x (1 / sqrt(pi) - P(1/x^2) / Q(1/x^2) / x^2) beyond.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('to_onnx needs the onnx package: pip install "fastmlp[onnx]" (or '
                          'pip install ".[onnx]" from a checkout of fastmlp)') from None
    return onnx


class _Graph:
    """Nodes and constants of a graph under construction, in one dtype."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self.scope = ""
        self._constants = {}
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{self.scope}{hint}_{self._count}"

    def const(self, value, dtype=None, hint="c"):
        """The name of a constant tensor holding ``value`` (scalars are shared)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        key = (array.dtype.str, array.item()) if array.ndim == 0 else None
        if key is not None and key in self._constants:
            return self._constants[key]
        name = self._name(hint) if key is None else f"const_{len(self._constants)}"
        if array.dtype.kind in "UO":
            tensor = self.onnx.helper.make_tensor(
                name, self.onnx.TensorProto.STRING, array.shape,
                [s.encode("utf-8") for s in array.ravel().tolist()])
        else:
            tensor = self.onnx.numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        if key is not None:
            self._constants[key] = name
        return name

    def op(self, op_type, *inputs, output=None, **attributes):
        """Add a node; return the name of its (single) output."""
        output = output or self._name(op_type)
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), [output], name=self._name(op_type + "_node"), **attributes))
        return output

    # Elementwise arithmetic, named after what it computes.
    def add(self, a, b):
        return self.op("Add", a, b)

    def sub(self, a, b):
        return self.op("Sub", a, b)

    def mul(self, a, b):
        return self.op("Mul", a, b)

    def div(self, a, b):
        return self.op("Div", a, b)

    def where(self, condition, a, b):
        return self.op("Where", condition, a, b)

    def rational(self, t, num, den):
        """num(t) / den(t) evaluated as CALERF does: num has one coefficient more than den,
        its last is the leading one, and den's leading coefficient is 1."""
        xnum = self.mul(self.const(num[-1]), t)
        xden = t
        for a, b in zip(num[:-2], den[:-1]):
            xnum = self.mul(self.add(xnum, self.const(a)), t)
            xden = self.mul(self.add(xden, self.const(b)), t)
        return self.div(self.add(xnum, self.const(num[-2])), self.add(xden, self.const(den[-1])))


# -- the functions ONNX lacks -------------------------------------------------------------------

def _log1p(g, x):
    """log(1 + x) for x >= 0, accurate for small x (Goldberg): x log(u) / (u - 1), u = 1 + x,
    and x itself when u rounds to 1."""
    one = g.const(1.0)
    u = g.add(one, x)
    d = g.sub(u, one)
    ratio = g.div(g.mul(g.op("Log", u), x), d)
    return g.where(g.op("Equal", d, g.const(0.0)), x, ratio)


def _expm1(g, x):
    """exp(x) - 1 for x <= 0, accurate near 0 (Kahan): (u - 1) x / log(u), u = exp(x); x when
    u rounds to 1, and -1 when u - 1 does."""
    one = g.const(1.0)
    u = g.op("Exp", x)
    d = g.sub(u, one)
    ratio = g.div(g.mul(d, x), g.op("Log", u))
    minus_one = g.const(-1.0)
    return g.where(g.op("Equal", u, one), x,
                   g.where(g.op("Equal", d, minus_one), minus_one, ratio))


def _erfc(g, x):
    """erfc(x), CALERF's algorithm: every branch is computed and ``Where`` picks one."""
    y = g.op("Abs", x)
    # |x| <= 0.46875: 1 - erf(x)
    small = g.sub(g.const(1.0), g.mul(x, g.rational(g.mul(y, y), _ERF_A, _ERF_B)))
    # |x| > 0.46875: erfc(|x|) = exp(-y^2) R(y), exp(-y^2) split so that y^2's rounding error
    # is not magnified: y = ysq + (y - ysq) with ysq = trunc(16 y) / 16.
    middle = g.rational(y, _ERFC_C, _ERFC_D)
    y_far = g.op("Max", y, g.const(4.0))             # keeps the unused branch finite
    t = g.div(g.const(1.0), g.mul(y_far, y_far))
    far = g.div(g.sub(g.const(_INV_SQRT_PI), g.mul(t, g.rational(t, _ERFC_P, _ERFC_Q))), y_far)
    r = g.where(g.op("LessOrEqual", y, g.const(4.0)), middle, far)
    sixteen = g.const(16.0)
    ysq = g.div(g.op("Floor", g.mul(y, sixteen)), sixteen)
    delta = g.mul(g.sub(y, ysq), g.add(y, ysq))
    tail = g.mul(g.op("Exp", g.sub(g.op("Neg", g.mul(ysq, ysq)), delta)), r)
    tail = g.where(g.op("Less", x, g.const(0.0)), g.sub(g.const(2.0), tail), tail)
    return g.where(g.op("LessOrEqual", y, g.const(0.46875)), small, tail)


def _sigmoid(g, x):
    """1 / (1 + exp(-x)), from e = exp(-|x|) as the kernels compute it: 1 / (1 + e) for
    x >= 0, e / (1 + e) below (accurate relative to the result, unlike onnxruntime's Sigmoid)."""
    e = g.op("Exp", g.op("Neg", g.op("Abs", x)))
    d = g.add(g.const(1.0), e)
    return g.where(g.op("GreaterOrEqual", x, g.const(0.0)), g.div(g.const(1.0), d), g.div(e, d))


def _softplus(g, x):
    """max(x, 0) + log1p(exp(-|x|))"""
    return g.add(g.op("Relu", x), _log1p(g, g.op("Exp", g.op("Neg", g.op("Abs", x)))))


# -- hidden activations, each f(g, x, param) -> name, with the kernels' formulas ---------------

def _gelu(g, x, param):
    """x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2"""
    phi = g.mul(g.const(0.5), _erfc(g, g.mul(g.op("Neg", x), g.const(_INV_SQRT_2))))
    return g.mul(x, phi)


def _gelu_tanh(g, x, param):
    """x sigmoid(2u), u = sqrt(2/pi) (x + c x^3): the same as x (1 + tanh(u)) / 2"""
    cubic = g.mul(g.mul(g.mul(g.const(_GELU_C), x), x), x)
    u = g.mul(g.const(_SQRT_2_OVER_PI), g.add(x, cubic))
    return g.mul(x, _sigmoid(g, g.mul(g.const(2.0), u)))


_ACTIVATIONS = {
    "identity": lambda g, x, p: x,
    "sigmoid": lambda g, x, p: _sigmoid(g, x),
    "tanh": lambda g, x, p: g.op("Tanh", x),
    "relu": lambda g, x, p: g.op("Relu", x),
    "leaky_relu": lambda g, x, p: g.where(g.op("Greater", x, g.const(0.0)), x,
                                          g.mul(g.const(p), x)),
    "elu": lambda g, x, p: g.where(g.op("Greater", x, g.const(0.0)), x,
                                   g.mul(g.const(p), _expm1(g, g.op("Min", x, g.const(0.0))))),
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "silu": lambda g, x, p: g.mul(x, _sigmoid(g, x)),
    "softplus": lambda g, x, p: _softplus(g, x),
    "mish": lambda g, x, p: g.mul(x, g.op("Tanh", _softplus(g, x))),
}
_OUTPUT_OPS = {
    "identity": lambda g, z: z,
    "sigmoid": _sigmoid,
    "softmax": lambda g, z: g.op("Softmax", z, axis=-1),
    "exp": lambda g, z: g.op("Exp", z),
}


# -- what is exported ---------------------------------------------------------------------------

def _estimator_classes():
    """fastmlp's estimator classes, if their module has been imported (an object cannot be one
    of them otherwise, so scikit-learn is never imported here)."""
    module = sys.modules.get("fastmlp.estimators")
    return () if module is None else (module.MLPClassifier, module.MLPRegressor)


def _fitted_network(estimator):
    """The MLP inside a fitted estimator, checked against the estimator's public attributes."""
    name = type(estimator).__name__
    if not hasattr(estimator, "n_features_in_"):
        from sklearn.exceptions import NotFittedError
        raise NotFittedError(f"this {name} is not fitted yet: call fit before to_onnx")
    network = getattr(estimator, "model_", None)
    if not isinstance(network, MLP):
        raise TypeError(f"to_onnx cannot find the fitted network of this {name} (a fastmlp.MLP "
                        f"in its model_ attribute): this version of the estimator is not "
                        f"supported")
    coefs, intercepts = estimator.coefs_, estimator.intercepts_
    out = _OUTPUT_ACTIVATIONS.get(network.loss_name)
    if (len(coefs) != len(network.W) or estimator.n_features_in_ != network.sizes[0]
            or not all(np.array_equal(a, w) for a, w in zip(coefs, network.W))
            or not all(np.array_equal(a, b) for a, b in zip(intercepts, network.b))
            or getattr(estimator, "out_activation_", None) != _SKLEARN_OUTPUTS.get(out)):
        raise ValueError(f"this {name}'s coefs_, intercepts_, n_features_in_ or out_activation_ "
                         f"disagree with its network (model_); refit it before exporting")
    return network


def _layers(network, g):
    """The Gemm, batch norm and activation of every layer; returns the logits' name."""
    x = "X"
    n_hidden = len(network.sizes) - 2
    for k in range(n_hidden + 1):
        g.scope = f"layer{k}/"
        W = np.asarray(network.W[k], dtype=np.float64)
        b = np.asarray(network.b[k], dtype=np.float64)
        if k < n_hidden and network.batch_norm[k]:
            # gamma (z - mean) / sqrt(var + eps) + beta, with z = x W + b, folded into W and b.
            scale = (np.asarray(network.gamma[k], dtype=np.float64)
                     / np.sqrt(np.asarray(network.running_var[k], dtype=np.float64) + _BN_EPS))
            W = W * scale
            b = (b - network.running_mean[k]) * scale + network.beta[k]
        x = g.op("Gemm", x, g.const(W, hint="W"), g.const(b, hint="b"))
        if k < n_hidden:
            # The ids and parameters the kernels run (hidden_activation resolved).
            name = _ACTIVATION_NAMES[network._act_ids[k]]
            x = _ACTIVATIONS[name](g, x, network._act_params[k])
    g.scope = "output/"
    return x


def _label_tensor(classes):
    """``classes`` as an array ONNX can hold, or a ValueError saying why not."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        return classes
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes.tolist()):
        return classes.astype(object)
    raise ValueError(f"the class labels (dtype {classes.dtype}) cannot be stored in an ONNX "
                     f"graph: only numbers or strings can; pass label=False to export the "
                     f"probabilities alone")


def _output(g, x, name, elem, width):
    """Make x, shape (N, width), the graph output ``name``: shape (N,) when width is 1, as
    fastmlp returns one output. Returns (name, element type, shape)."""
    if width == 1:
        g.op("Reshape", x, g.const([-1], np.int64), output=name)
        return name, elem, ["N"]
    g.op("Identity", x, output=name)
    return name, elem, ["N", width]


def _label(g, network, estimator, task, proba):
    """The "label" output: what ``predict`` returns, from the probabilities (N, n_out)."""
    int64 = g.onnx.TensorProto.INT64
    if task == "multiclass":
        index = g.op("ArgMax", proba, axis=1, keepdims=0)
    else:
        # MLP.predict thresholds with p >= 0.5, scikit-learn's LabelBinarizer with p > 0.5.
        above = "GreaterOrEqual" if estimator is None else "Greater"
        index = g.op("Cast", g.op(above, proba, g.const(0.5)), to=int64)
        if task == "multilabel" or estimator is None:       # 0/1 for each output
            return _output(g, index, "label", int64, network.sizes[-1])
        index = g.op("Reshape", index, g.const([-1], np.int64))
    classes = estimator.classes_ if estimator is not None else network.classes_
    if classes is None:       # an untrained multi-class MLP: the class indices
        classes = np.arange(network.sizes[-1], dtype=np.int64)
    classes = _label_tensor(classes)
    g.op("Gather", g.const(classes, dtype=classes.dtype, hint="classes"), index, axis=0,
         output="label")
    elem = (g.onnx.TensorProto.STRING if classes.dtype == object
            else g.onnx.helper.np_dtype_to_tensor_dtype(classes.dtype))
    return "label", elem, ["N"]


def _outputs(g, network, estimator, logits, label):
    """Add the output nodes; return [(name, element type, shape)] of the graph's outputs."""
    loss = network.loss_name
    if loss not in _OUTPUT_ACTIVATIONS:
        raise ValueError(f"to_onnx does not know the output activation of loss {loss!r}")
    n_out = network.sizes[-1]
    _, _, task = resolve_loss(loss, n_out)
    elem = g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype)
    out = _OUTPUT_OPS[_OUTPUT_ACTIVATIONS[loss]](g, logits)
    if task == "regression":
        return [_output(g, out, "predictions", elem, n_out)]
    if task == "binary" and estimator is not None:      # scikit-learn's columns 1 - p and p
        outputs = [_output(g, g.op("Concat", g.sub(g.const(1.0), out), out, axis=1),
                           "probabilities", elem, 2)]
    else:
        outputs = [_output(g, out, "probabilities", elem, n_out)]
    if label:
        outputs.append(_label(g, network, estimator, task, out))
    return outputs


def _check_opset(onnx, opset):
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the newest "
                         f"this onnx package knows); got {opset!r}")
    return int(opset)


def _write_atomically(path, data):
    """Write bytes to path the way ``fastmlp.save`` writes model files: a regular file (or
    none) replaced in one step, only once the new bytes read back complete."""
    def verify(f):
        if f.read() != data:
            raise OSError(f"cannot write {os.fspath(path)!r}: the file read back differs from "
                          f"what was written")
    _io._write_atomically(os.fspath(path), lambda f: f.write(data), verify)


def to_onnx(model_or_estimator, path=None, *, opset=None, label=True):
    """Export a network as an ONNX graph that gives the same outputs as fastmlp.

    Parameters
    ----------
    model_or_estimator : fastmlp.MLP, fastmlp.MLPClassifier or fastmlp.MLPRegressor
        The network; an estimator must be fitted.
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file (atomically: an existing file is replaced only when
        the new one is complete). Nothing is written when None.
    opset : int, optional
        The ONNX operator set version, from ``MIN_OPSET`` (13) to the newest the installed
        ``onnx`` knows; default ``DEFAULT_OPSET`` (17). Check that your runtime supports it.
    label : bool, default True
        For classifiers, add a "label" output: what ``predict`` returns.

    Returns
    -------
    onnx.ModelProto
        A checked model (``onnx.checker.check_model``). Its input "X" has shape
        ``(N, n_features)`` with a dynamic batch size N, in the model's dtype (float32 or
        float64); the outputs are in that dtype too:

        - classification: "probabilities", as ``predict_proba`` returns them (for an MLP with
          one sigmoid output, shape ``(N,)``; for an estimator, ``(N, 2)``), and "label", as
          ``predict`` returns it: int64 0/1 for a binary or multi-label MLP and for a
          multi-label estimator, else the class labels (``classes_``; strings become an ONNX
          string tensor; an untrained multi-class MLP gives the class indices);
        - regression: "predictions", as ``predict`` returns them (``(N,)`` for one output).

    Notes
    -----
    Feed X in the model's dtype (``X.astype(numpy.float32)`` for a float32 model): runtimes do
    not convert inputs. Float32 graphs agree with fastmlp to about 1e-6 of the outputs' scale,
    float64 graphs to about 1e-15 (the order of the sums differs, the formulas do not).

    Raises
    ------
    ImportError
        When the ``onnx`` package is not installed.
    TypeError
        When the object is neither a fastmlp network nor a fastmlp estimator.
    sklearn.exceptions.NotFittedError
        For an estimator that has not been fitted (a ``ValueError``).
    ValueError
        For an unsupported opset, or class labels that ONNX cannot hold (pass ``label=False``).

    Examples
    --------
    >>> import numpy as np, onnxruntime
    >>> from fastmlp import MLP
    >>> from fastmlp.export import to_onnx
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0, 1, 1, 0])
    >>> model = MLP([2, 8, 1], lr=0.5, seed=0).fit(X, y, epochs=2000, verbose=False)
    >>> onnx_model = to_onnx(model)
    >>> session = onnxruntime.InferenceSession(onnx_model.SerializeToString(),
    ...                                        providers=["CPUExecutionProvider"])
    >>> proba, label = session.run(None, {"X": X})
    >>> bool(np.allclose(proba, model.predict_proba(X), rtol=1e-10)), label.tolist()
    (True, [0, 1, 1, 0])
    """
    onnx = _import_onnx()
    obj = model_or_estimator
    if isinstance(obj, MLP):
        network, estimator = obj, None
    elif isinstance(obj, _estimator_classes()):
        network, estimator = _fitted_network(obj), obj
    else:
        hint = (" (scikit-learn's own estimators are exported by the skl2onnx package)"
                if type(obj).__module__.startswith("sklearn") else "")
        raise TypeError(f"to_onnx exports a fastmlp.MLP or a fitted fastmlp.MLPClassifier or "
                        f"MLPRegressor; got {type(obj).__name__}{hint}")
    if not isinstance(label, (bool, np.bool_)):
        raise TypeError(f"label must be True or False; got {label!r}")
    opset = _check_opset(onnx, opset)
    helper = onnx.helper

    g = _Graph(onnx, network.dtype)
    logits = _layers(network, g)
    outputs = _outputs(g, network, estimator, logits, label)
    elem = helper.np_dtype_to_tensor_dtype(g.dtype)
    graph = helper.make_graph(
        g.nodes, "fastmlp",
        [helper.make_tensor_value_info("X", elem, ["N", network.sizes[0]])],
        [helper.make_tensor_value_info(name, t, shape) for name, t, shape in outputs],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    from . import __version__
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets),
                              doc_string=f"fastmlp {type(obj).__name__} "
                                         f"{network.sizes}, loss {network.loss_name}")
    helper.set_model_props(model, {"fastmlp.loss": network.loss_name,
                                   "fastmlp.layer_sizes": str(network.sizes)})
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write_atomically(path, model.SerializeToString())
    return model
