"""Hidden activations: the compiled kernels against the NumPy reference, finite differences,
stability at extreme inputs, parameters, the backward pass and whole-network gradients."""
import numpy as np
import pytest

from fastmlp import reference
from fastmlp._kernels import _dense, _train
from fastmlp._kernels._loss import LOSS_IDS
from fastmlp.initializers import DEFAULT_INIT

NAMES = sorted(_dense.ACTIVATION_IDS)
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
# Where f or f' crosses zero a relative tolerance means nothing; values here are O(1).
ATOL = {np.float64: 1e-12, np.float32: 1e-6}
KINKED = {"relu", "leaky_relu", "elu"}


def default_param(name):
    return _dense.ACTIVATION_DEFAULT_PARAMS[name]


def kernel_activation(name, z, dtype, use_blas, param=None):
    """f(z) and f'(z) from ``dense_forward_py`` on a layer whose output is exactly z
    (A = z, W = I, b = 0)."""
    z = np.ascontiguousarray(z, dtype=dtype)
    n = z.shape[1]
    Z, D = np.empty_like(z), np.empty_like(z)
    _dense.dense_forward_py(z, np.eye(n, dtype=dtype), np.zeros(n, dtype=dtype),
                            _dense.ACTIVATION_IDS[name], use_blas, Z, D, param=param)
    return Z, D


def reference_activation(name, z, param=None):
    f, f_prime = reference.ACTIVATIONS[name]
    p = default_param(name) if param is None else param
    z = np.asarray(z, dtype=np.float64)
    return f(z, p), f_prime(z, p)


def test_tables_agree():
    assert set(reference.ACTIVATIONS) == set(_dense.ACTIVATION_IDS) == set(DEFAULT_INIT) \
        == set(_dense.ACTIVATION_DEFAULT_PARAMS)
    ids = _dense.ACTIVATION_IDS
    assert (ids["identity"], ids["sigmoid"], ids["relu"]) == (0, 1, 2)
    assert ids["swish"] == ids["silu"]
    assert len(set(ids.values())) == len(ids) - 1
    assert _dense.ACTIVATION_DEFAULT_PARAMS["leaky_relu"] == 0.01
    assert _dense.ACTIVATION_DEFAULT_PARAMS["elu"] == 1.0
    for name in ("sigmoid", "tanh", "identity"):
        assert DEFAULT_INIT[name] == "xavier_normal"
    for name in ("relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "mish", "softplus"):
        assert DEFAULT_INIT[name] == "he_normal"


def test_unknown_activation_id_is_refused():
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="unknown activation id"):
        _dense.dense_forward_py(z, np.eye(2), np.zeros(2), 99, False, z.copy(), z.copy())


@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_kernel_matches_reference(name, dtype, use_blas):
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(scale=3.0, size=(8, 6)),
                        rng.uniform(-30, 30, size=(4, 6))]).astype(dtype)
    Z, D = kernel_activation(name, z, dtype, use_blas)
    f, fp = reference_activation(name, z)
    np.testing.assert_allclose(Z, f, rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_allclose(D, fp, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_fused_layer_matches_reference(name, dtype, use_blas):
    """A full layer: Z_out = f(A @ W + b) and D_out = f'(A @ W + b), with a real product."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(9, 4)).astype(dtype)
    W = rng.normal(size=(4, 6)).astype(dtype)
    b = rng.normal(size=6).astype(dtype)
    Z, D = np.empty((9, 6), dtype), np.empty((9, 6), dtype)
    _dense.dense_forward_py(A, W, b, _dense.ACTIVATION_IDS[name], use_blas, Z, D)
    f, fp = reference_activation(name, A.astype(np.float64) @ W + b)
    # The product itself rounds in dtype; float64 keeps ~1e-15 of it, float32 ~1e-7.
    np.testing.assert_allclose(Z, f, rtol=RTOL[dtype], atol=10 * ATOL[dtype])
    np.testing.assert_allclose(D, fp, rtol=RTOL[dtype], atol=10 * ATOL[dtype])


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_finite_differences(name):
    z = np.linspace(-6.0, 6.0, 49).reshape(1, -1) + 0.0137   # no point on the kink at 0
    h = 1e-6
    _, D = kernel_activation(name, z, np.float64, False)
    f_plus, _ = kernel_activation(name, z + h, np.float64, False)
    f_minus, _ = kernel_activation(name, z - h, np.float64, False)
    np.testing.assert_allclose(D, (f_plus - f_minus) / (2 * h), rtol=1e-7, atol=1e-8)


Z_EXTREME = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
LN2 = np.log(2.0)
# (f, f') at Z_EXTREME with the default parameters; entries below 1e-20 in magnitude are 0.
EXPECTED_EXTREME = {
    "identity": ([-1000, -50, 0, 50, 1000], [1, 1, 1, 1, 1]),
    "sigmoid": ([0, 0, 0.5, 1, 1], [0, 0, 0.25, 0, 0]),
    "relu": ([0, 0, 0, 50, 1000], [0, 0, 0, 1, 1]),
    "tanh": ([-1, -1, 0, 1, 1], [0, 0, 1, 0, 0]),
    "leaky_relu": ([-10, -0.5, 0, 50, 1000], [0.01, 0.01, 0.01, 1, 1]),
    "elu": ([-1, -1, 0, 50, 1000], [0, 0, 1, 1, 1]),
    "gelu": ([0, 0, 0, 50, 1000], [0, 0, 0.5, 1, 1]),
    "gelu_tanh": ([0, 0, 0, 50, 1000], [0, 0, 0.5, 1, 1]),
    "silu": ([0, 0, 0, 50, 1000], [0, 0, 0.5, 1, 1]),
    "swish": ([0, 0, 0, 50, 1000], [0, 0, 0.5, 1, 1]),
    "softplus": ([0, 0, LN2, 50, 1000], [0, 0, 0.5, 1, 1]),
    "mish": ([0, 0, 0, 50, 1000], [0, 0, 0.6, 1, 1]),     # tanh(log 2) = 3/5
}


@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_stable_at_extreme_inputs(name, dtype, use_blas):
    with np.errstate(all="raise"):
        Z, D = kernel_activation(name, Z_EXTREME, dtype, use_blas)
    assert np.all(np.isfinite(Z)) and np.all(np.isfinite(D))
    f, fp = EXPECTED_EXTREME[name]
    np.testing.assert_allclose(Z[0], f, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(D[0], fp, rtol=1e-6, atol=1e-6)
    # The reference is stable too.
    f_ref, fp_ref = reference_activation(name, Z_EXTREME)
    np.testing.assert_allclose(f_ref[0], f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fp_ref[0], fp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_slope_is_honored(dtype):
    z = np.array([[-2.0, -0.5, 3.0]])
    Z, D = kernel_activation("leaky_relu", z, dtype, False, param=0.2)
    np.testing.assert_allclose(Z[0], [-0.4, -0.1, 3.0], rtol=RTOL[dtype])
    np.testing.assert_allclose(D[0], [0.2, 0.2, 1.0], rtol=RTOL[dtype])
    f, fp = reference_activation("leaky_relu", z, param=0.2)
    np.testing.assert_allclose(Z, f, rtol=RTOL[dtype])
    np.testing.assert_allclose(D, fp, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_alpha_is_honored(dtype):
    z = np.array([[-1.0, -0.1, 2.0]])
    Z, D = kernel_activation("elu", z, dtype, False, param=2.5)
    np.testing.assert_allclose(Z[0], [2.5 * np.expm1(-1.0), 2.5 * np.expm1(-0.1), 2.0],
                               rtol=RTOL[dtype])
    np.testing.assert_allclose(D[0], [2.5 * np.exp(-1.0), 2.5 * np.exp(-0.1), 1.0],
                               rtol=RTOL[dtype])
    f, fp = reference_activation("elu", z, param=2.5)
    np.testing.assert_allclose(Z, f, rtol=RTOL[dtype])
    np.testing.assert_allclose(D, fp, rtol=RTOL[dtype])


@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_uses_derivative_cache(name, dtype, use_blas):
    """delta_prev = (delta @ W.T) * f'(Z), with f'(Z) cached by the previous layer's forward."""
    rng = np.random.default_rng(2)
    m, n0, n_in, n_out = 7, 3, 5, 4
    A0 = rng.normal(size=(m, n0)).astype(dtype)
    W0 = rng.normal(size=(n0, n_in)).astype(dtype)
    b0 = rng.normal(size=n_in).astype(dtype)
    A, D = np.empty((m, n_in), dtype), np.empty((m, n_in), dtype)
    _dense.dense_forward_py(A0, W0, b0, _dense.ACTIVATION_IDS[name], use_blas, A, D)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    delta = rng.normal(size=(m, n_out)).astype(dtype)
    gW, gb = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    delta_prev = np.empty((m, n_in), dtype)
    _dense.dense_backward_py(A, W, delta, D, use_blas, gW, gb, delta_prev)
    _, fp = reference_activation(name, A0.astype(np.float64) @ W0 + b0)
    delta64 = delta.astype(np.float64)
    tol = dict(rtol=RTOL[dtype], atol=100 * ATOL[dtype])
    np.testing.assert_allclose(delta_prev, (delta64 @ W.T) * fp, **tol)
    np.testing.assert_allclose(gW, A.astype(np.float64).T @ delta64, **tol)
    np.testing.assert_allclose(gb, delta64.sum(axis=0), **tol)


def _network(name, blas_min_work, activation_params=None, max_batch=8):
    act = _dense.ACTIVATION_IDS[name]
    return _train.Network([3, 5, 4, 1], [act, act], activation_params,
                          LOSS_IDS["binary_crossentropy"], 0.0, 0.0, 0.0, max_batch,
                          blas_min_work=blas_min_work)


@pytest.mark.parametrize("blas_min_work", [0, 1 << 30])
@pytest.mark.parametrize("name", NAMES)
def test_network_gradient_matches_finite_differences(name, blas_min_work):
    rng = np.random.default_rng(3)
    net = _network(name, blas_min_work)
    theta = rng.normal(scale=0.8, size=net.n_params)
    X = rng.normal(size=(8, 3))
    Y = rng.integers(0, 2, size=(8, 1)).astype(np.float64)
    workspace = np.empty(net.workspace_size)
    grad = np.empty(net.n_params)
    _train.loss_and_gradient(net, theta, None, X, Y, None, workspace, grad)
    h = 1e-5      # balances truncation (~h^2) and rounding (~1e-16 / h), both ~1e-11 here
    fd = np.empty(net.n_params)
    for i in range(net.n_params):
        t = theta.copy()
        t[i] += h
        j_plus = _train.objective(net, t, None, X, Y, None, workspace)
        t[i] -= 2 * h
        j_minus = _train.objective(net, t, None, X, Y, None, workspace)
        fd[i] = (j_plus - j_minus) / (2 * h)
    rel = np.abs(grad - fd) / np.maximum(np.maximum(np.abs(grad), np.abs(fd)), 1e-4)
    assert rel.max() < 1e-6, (name, rel.max())
    assert np.abs(grad).max() > 1e-3      # the check is not vacuous


@pytest.mark.parametrize("name,param", [("leaky_relu", 0.3), ("elu", 2.0), ("leaky_relu", None),
                                        ("elu", None), ("gelu", None)])
def test_network_uses_activation_params(name, param):
    """The network's logits equal a NumPy forward pass with the given (or default) parameter."""
    rng = np.random.default_rng(4)
    params = None if param is None else [param, param]
    net = _network(name, 1 << 30, activation_params=params)
    theta = rng.normal(size=net.n_params)
    X = rng.normal(size=(6, 3))
    out = np.empty((6, 1))
    _train.predict(net, theta, None, X, np.empty(net.workspace_size), out, logits=True)
    f, _ = reference.ACTIVATIONS[name]
    p = default_param(name) if param is None else param
    a = X
    for k in range(3):
        W = theta[net.w_off[k]:net.b_off[k]].reshape(net.sizes[k], net.sizes[k + 1])
        b = theta[net.b_off[k]:net.b_off[k] + net.sizes[k + 1]]
        z = a @ W + b
        a = z if k == 2 else f(z, p)
    np.testing.assert_allclose(out, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("blas_min_work", [0, 1 << 30], ids=["blas", "hand-loops"])
def test_network_predicts_in_chunks_of_max_batch(blas_min_work):
    """``predict``, ``objective`` and ``outputs_finite`` take X ``max_batch`` rows at a time
    (on BLAS straight from X's rows, else gathered): every chunk's rows, ragged last one
    included, give NumPy's forward pass on those rows."""
    rng = np.random.default_rng(6)
    net = _network("tanh", blas_min_work, max_batch=4)
    theta = rng.normal(size=net.n_params)
    X = rng.normal(size=(11, 3))
    Y = rng.integers(0, 2, size=(11, 1)).astype(np.float64)
    workspace = np.empty(net.workspace_size)
    a = X
    for k in range(3):
        W = theta[net.w_off[k]:net.b_off[k]].reshape(net.sizes[k], net.sizes[k + 1])
        z = a @ W + theta[net.b_off[k]:net.b_off[k] + net.sizes[k + 1]]
        a = z if k == 2 else np.tanh(z)
    out = np.full((11, 1), np.nan)
    _train.predict(net, theta, None, X, workspace, out, logits=True)
    np.testing.assert_allclose(out, a, rtol=1e-12, atol=1e-12)
    probabilities = np.full((11, 1), np.nan)
    J = _train.objective(net, theta, None, X, Y, None, workspace, probabilities)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-a)), rtol=1e-12)
    expected = np.mean(np.logaddexp(0, a) - Y * a)
    np.testing.assert_allclose(J, expected, rtol=1e-12)
    assert _train.outputs_finite(net, theta, None, X, workspace)
    X[9, 0] = np.nan      # one row of the ragged last chunk
    assert not _train.outputs_finite(net, theta, None, X, workspace)


def test_network_rejects_bad_activation_params():
    with pytest.raises(ValueError, match="activation_params"):
        _network("elu", 0, activation_params=[1.0])
    with pytest.raises(ValueError, match="activation_params"):
        _network("elu", 0, activation_params=[1.0, np.nan])
