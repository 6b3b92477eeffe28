"""Run-time CPU dispatch of the hand-written loops (``fastmlp/_kernels/_simd.h``).

Every CPU target this machine can run (baseline x86-64, AVX2+FMA, AVX-512) must train to the
NumPy reference's float64 weights within 1e-10 and agree in float32 to rounding; the environment
variable FASTMLP_CPU forces a target at import (the portable path for a CPU without AVX-512), and
a target the CPU cannot run, or an unknown name, is a clear error.
"""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastmlp
import fastmlp._kernels
from fastmlp import MLP
from fastmlp._kernels import _dense, _train
from fastmlp.reference import ReferenceMLP

# The folder holding the fastmlp under test (site-packages, or the checkout built in place).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
_CHILD_CWD = tempfile.mkdtemp(prefix="fastmlp-child-")
SUPPORTED = _dense.supported_cpu_targets()
TARGETS = [pytest.param(t, marks=pytest.mark.skipif(t not in SUPPORTED,
                                                    reason=f"this CPU cannot run {t}"))
           for t in _dense.CPU_TARGETS]


@pytest.fixture
def target(request):
    """Select ``request.param``'s loops for one test, then restore the previous choice."""
    previous = _dense.cpu_target()
    _dense.set_cpu_target(request.param)
    yield request.param
    _dense.set_cpu_target(previous)


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter importing the fastmlp under test (installed or built
    in place: PYTHONPATH names its folder), started in an empty folder (``python -c`` in the
    checkout's folder would import the uncompiled source tree), with ``env`` added (a None
    value removes that variable); returns the CompletedProcess."""
    environment = dict(os.environ, PYTHONPATH=ROOT)
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=_CHILD_CWD,
                          env=environment, capture_output=True, text=True, timeout=120)


def train_pair(sizes, batch_size, dtype=np.float64, loss="binary_crossentropy", n=53, epochs=15):
    """An MLP and a ReferenceMLP trained from the same weights over the same batch orders."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, sizes[0]))
    if sizes[-1] > 1:
        y = rng.integers(0, sizes[-1], size=n)
        y[:sizes[-1]] = np.arange(sizes[-1])
    else:
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = MLP(sizes, lr=0.1, seed=2, hidden_activation="tanh", dtype=dtype, loss=loss)
    ref = ReferenceMLP(sizes, lr=0.1, hidden_activation="tanh", dtype=dtype, loss=loss,
                       W=[W.copy() for W in model.W], b=[b.copy() for b in model.b])
    initial = [W.copy() for W in model.W]
    model.train(X, y, epochs=epochs, batch_size=batch_size, verbose=False, shuffle_seed=4)
    order_rng = np.random.default_rng(4)
    targets = np.eye(sizes[-1])[y] if sizes[-1] > 1 else y   # the reference takes one-hot rows
    ref.train(X, targets, epochs=epochs, batch_size=batch_size,
              orders=[order_rng.permutation(n) for _ in range(epochs)])
    assert max(np.abs(W - W0).max() for W, W0 in zip(model.W, initial)) > 1e-2  # it trained
    return model, ref


# Widths that leave remainders in every tile of the loops (rows in fours, samples in one or two
# registers of 2 to 16 lanes) and batches of 53 (full), 16 and 37 samples.
NETWORKS = [pytest.param([7, 13, 9, 1], "binary_crossentropy", id="7-13-9-1"),
            pytest.param([5, 17, 11, 3], "categorical_crossentropy", id="5-17-11-3-softmax")]


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("sizes, loss", NETWORKS)
@pytest.mark.parametrize("batch_size", [None, 16, 37])
def test_float64_parity_with_the_reference_on_each_target(target, sizes, loss, batch_size):
    layout = _train.Network(sizes, [3] * (len(sizes) - 2), None, 0, 0.0, 0.0, 0.0, 1)
    assert not layout.blas.any()   # every layer runs on the hand-written loops
    model, ref = train_pair(sizes, batch_size, loss=loss)
    assert _dense.cpu_target() == target
    for k in range(len(sizes) - 1):
        np.testing.assert_allclose(model.W[k], ref.W[k], rtol=0, atol=1e-10, err_msg=f"W[{k}]")
        np.testing.assert_allclose(model.b[k], ref.b[k], rtol=0, atol=1e-10, err_msg=f"b[{k}]")


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("sizes, loss", NETWORKS)
def test_float32_matches_the_reference_to_rounding_on_each_target(target, sizes, loss):
    model, ref = train_pair(sizes, 16, dtype=np.float32, loss=loss)
    assert model.W[0].dtype == np.float32
    for k in range(len(sizes) - 1):
        np.testing.assert_allclose(model.W[k], ref.W[k], rtol=1e-4, atol=2e-5, err_msg=f"W[{k}]")


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("m, n_in, n_out", [(45, 11, 10), (64, 4, 8), (1, 3, 5), (33, 1, 1)])
def test_dense_kernels_match_numpy_on_each_target(target, dtype, tol, m, n_in, n_out):
    rng = np.random.default_rng(m + n_in + n_out)
    A = rng.normal(size=(m, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    delta = rng.normal(size=(m, n_out)).astype(dtype)
    D = rng.uniform(size=(m, n_in)).astype(dtype)
    Z = np.empty((m, n_out), dtype)
    _dense.dense_forward_py(A, W, b, _dense.ACTIVATION_IDS["identity"], False, Z)
    np.testing.assert_allclose(Z, A.astype(float) @ W + b, rtol=tol, atol=tol * n_in)
    gW, gb, dprev = np.empty_like(W), np.empty_like(b), np.empty_like(A)
    _dense.dense_backward_py(A, W, delta, D, False, gW, gb, dprev)
    scale = tol * m
    np.testing.assert_allclose(gW, A.astype(float).T @ delta, rtol=tol, atol=scale)
    np.testing.assert_allclose(gb, delta.astype(float).sum(axis=0), rtol=tol, atol=scale)
    np.testing.assert_allclose(dprev, (delta.astype(float) @ W.T) * D, rtol=tol, atol=tol * n_out)


def test_every_target_gives_the_same_float64_model_to_1e12():
    previous = _dense.cpu_target()
    models = []
    try:
        for name in SUPPORTED:
            _dense.set_cpu_target(name)
            models.append(train_pair([7, 13, 9, 1], 16)[0])
    finally:
        _dense.set_cpu_target(previous)
    for name, model in zip(SUPPORTED[1:], models[1:]):
        for k in range(3):
            np.testing.assert_allclose(model.W[k], models[0].W[k], rtol=0, atol=1e-12,
                                       err_msg=f"{name} W[{k}]")


def test_the_widest_supported_target_is_the_default_and_is_reported():
    result = run_python("""
        import fastmlp._kernels as k
        from fastmlp._kernels import _dense
        print(k.CPU_TARGET, _dense.supported_cpu_targets()[-1])
    """, FASTMLP_CPU=None)
    assert result.returncode == 0, result.stderr
    chosen, widest = result.stdout.split()
    assert chosen == widest
    assert chosen in _dense.CPU_TARGETS
    assert SUPPORTED[0] == "baseline"


def test_forcing_the_portable_path_imports_and_trains_to_the_reference():
    """What a CPU without AVX2 or AVX-512 runs: FASTMLP_CPU=baseline, checked for parity."""
    result = run_python(f"""
        import sys
        sys.path.append({os.path.dirname(os.path.abspath(__file__))!r})    # this file's folder
        import numpy as np
        import fastmlp._kernels as k
        from test_dispatch import train_pair
        model, ref = train_pair([7, 13, 9, 1], 16)
        print(k.CPU_TARGET, max(np.abs(a - b).max() for a, b in zip(model.W, ref.W)))
    """, FASTMLP_CPU="baseline")
    assert result.returncode == 0, result.stderr
    name, difference = result.stdout.split()
    assert name == "baseline"
    assert float(difference) < 1e-10


def test_an_unknown_forced_target_is_a_clear_error():
    result = run_python("import fastmlp", FASTMLP_CPU="avx1024")
    assert result.returncode != 0
    assert "FASTMLP_CPU='avx1024'" in result.stderr and "baseline" in result.stderr


@pytest.mark.skipif(len(SUPPORTED) == len(_dense.CPU_TARGETS), reason="this CPU runs every target")
def test_a_forced_target_the_cpu_cannot_run_is_a_clear_error():
    missing = _dense.CPU_TARGETS[len(SUPPORTED)]
    result = run_python("import fastmlp", FASTMLP_CPU=missing)
    assert result.returncode != 0
    assert "cannot run" in result.stderr


def test_set_cpu_target_rejects_unknown_names_and_keeps_the_current_one():
    before = _dense.cpu_target()
    with pytest.raises(ValueError, match="unknown CPU target"):
        _dense.set_cpu_target("sse9")
    assert _dense.cpu_target() == before == fastmlp._kernels.CPU_TARGET
    with pytest.raises(AttributeError):
        fastmlp._kernels.NO_SUCH_THING


# Logits over the whole range the register exp and log1p handle differently: the two branches of
# log1p (exp(-|z|) on either side of sqrt(2) - 1, i.e. |z| near 0.881), the subnormal results of
# exp (|z| > 708), its underflow to 0 (|z| > 745), the cut-offs at -746 and 710, infinities and
# signed zeros; the batch lengths leave every ragged end of the registers.
_EDGE_LOGITS = np.array([0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-17, -1e-17, 0.8813735870195429,
                         -0.8813735870195429, 0.88137358, 0.88137359, 0.5, -0.5, 1.0, -1.0, 2.5,
                         -7.25, 20.0, -36.7, 37.5, 100.0, -300.0, 700.0, -708.3, 708.5, -709.9,
                         710.5, -720.0, 740.0, -745.1, 745.2, -746.5, 800.0, -1e300, np.inf,
                         -np.inf])


def _bce_reference(z, y):
    """Per-element loss and sigmoid(z) - y in float64 with numpy's libm (0 log 0 conventions
    of the stable formula)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(z))
        loss = np.maximum(z, 0) - y * z + np.log1p(e)
        sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return loss, sig - y


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("m", [1, 3, 8, 13, 37])
def test_binary_crossentropy_on_registers_is_accurate_to_a_few_ulp(target, m):
    """The loss kernel's exp and log1p (fdlibm's, on registers) against libm, element by
    element: the loss within 4 ulp of its size (inputs up to 1e300), the delta sigmoid(z) - y
    within 4 ulp of its larger term."""
    from fastmlp._kernels import _loss
    rng = np.random.default_rng(m)
    z = np.concatenate([_EDGE_LOGITS, rng.normal(scale=4, size=200), rng.uniform(-750, 750, 64),
                        np.linspace(-2, 2, 101)])
    y = np.resize([0.0, 1.0, 0.25], z.size)
    exp_loss, exp_delta = _bce_reference(z, y)
    for start in range(0, z.size, m):
        zs, ys = z[start:start + m], y[start:start + m]
        n = zs.size
        delta = np.full((n, 1), np.nan)
        # one sample per call for the loss (the kernel returns the batch mean) ...
        for i in range(n):
            got = _loss.loss_delta_py(0, zs[i:i + 1, None], ys[i:i + 1, None])
            want = exp_loss[start + i]
            if np.isnan(want):
                assert np.isnan(got), (zs[i], ys[i])
            elif np.isinf(want):
                assert got == want, (zs[i], ys[i], got)
            else:
                assert abs(got - want) <= 4 * np.spacing(max(abs(want), 1e-300)) + 1e-300, \
                    (zs[i], ys[i], got, want)
        # ... and the batch's deltas in one call, through every ragged end
        _loss.loss_delta_py(0, zs[:, None].copy(), ys[:, None].copy(), delta_out=delta)
        want = exp_delta[start:start + n] / n
        # sigmoid(z) - y cancels: 4 ulp of the larger term, sigmoid(z) or y
        sig = np.abs(exp_delta[start:start + n] + ys)
        bound = 4 * np.spacing(np.maximum(sig, np.abs(ys))) / n + 1e-300
        assert np.all(np.abs(delta[:, 0] - want) <= bound), (target, m, zs, delta[:, 0] - want)


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_crossentropy_batch_sum_and_weights_on_each_target(target, dtype):
    """Weighted sums over several outputs and batches of every length agree with numpy."""
    from fastmlp._kernels import _loss
    rng = np.random.default_rng(11)
    for m in (1, 2, 5, 8, 16, 19, 33):
        Z = rng.normal(scale=3, size=(m, 3)).astype(dtype)
        Y = (rng.random((m, 3)) < 0.5).astype(dtype)
        w = rng.uniform(0.2, 2, size=m).astype(dtype)
        delta = np.empty_like(Z)
        loss = _loss.loss_delta_py(0, Z, Y, sample_weight=w, delta_out=delta)
        ref_loss, ref_delta = _bce_reference(Z.astype(np.float64), Y.astype(np.float64))
        rtol = 1e-13 if dtype == np.float64 else 1e-6
        assert loss == pytest.approx((ref_loss.sum(axis=1) * w).mean(), rel=rtol)
        np.testing.assert_allclose(delta, ref_delta * (w[:, None].astype(np.float64) / m),
                                   rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["identity", "relu", "leaky_relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("m, n_in, n_out", [(37, 3, 6), (8, 2, 4), (5, 4, 1), (1, 1, 9)])
def test_fused_forward_layer_on_each_target(target, dtype, act, m, n_in, n_out):
    """Bias, product, activation and derivative in one pass: values and derivatives, nan kept
    by leaky_relu and zeroed by relu as in the scalar formulas."""
    rng = np.random.default_rng(m * n_in + n_out)
    A = rng.normal(size=(m, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    if m > 1:
        A[1, 0] = np.nan
    Z, D = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
    _dense.dense_forward_py(A, W, b, _dense.ACTIVATION_IDS[act], False, Z, D, param=0.1)
    pre = A.astype(np.float64) @ W + b
    with np.errstate(invalid="ignore"):
        if act == "identity":
            f, d = pre, np.ones_like(pre)
        elif act == "relu":
            f, d = np.where(pre > 0, pre, 0.0), np.where(pre > 0, 1.0, 0.0)
        elif act == "leaky_relu":
            f, d = np.where(pre > 0, pre, 0.1 * pre), np.where(pre > 0, 1.0, 0.1)
        elif act == "tanh":
            f = np.tanh(pre)
            d = 1 - f * f
        else:
            f = 1 / (1 + np.exp(-pre))
            d = f * (1 - f)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(Z, f, rtol=tol, atol=tol * n_in)
    np.testing.assert_allclose(D, d, rtol=tol, atol=tol * n_in)


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("n", [1, 7, 16, 4001])
def test_tanh_and_sigmoid_on_registers_are_accurate_to_a_few_ulp(target, n):
    """tanh (Cephes' rational form below 0.625, exp above) within 2 ulp of numpy's, sigmoid
    within 4 ulp of the stable formula, over the range where each branch and exp's cut-offs
    act, and float32 correctly rounded or one ulp off; every ragged end of the registers."""
    x = np.concatenate([np.linspace(-4, 4, 2001), np.geomspace(1e-300, 800, 1000),
                        -np.geomspace(1e-300, 800, 1000), [0.0, 0.625, -0.625, 0.6249999999999999,
                                                           19.0, 23.0, 1e300, np.inf, -np.inf]])
    x = np.resize(x, n) if n < x.size else x
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        want = {"tanh": np.tanh(x), "sigmoid": np.where(x >= 0, 1, e) / (1 + e)}
    for name, ulps in (("tanh", 2), ("sigmoid", 4)):
        for dtype in (np.float64, np.float32):
            A = x.astype(dtype)[:, None].copy()
            Z, D = np.empty_like(A), np.empty_like(A)
            _dense.dense_forward_py(A, np.ones((1, 1), dtype), np.zeros(1, dtype),
                                    _dense.ACTIVATION_IDS[name], False, Z, D)
            with np.errstate(over="ignore"):
                ref = want[name] if dtype == np.float64 else (
                    np.tanh(A[:, 0].astype(np.float64)) if name == "tanh" else
                    1 / (1 + np.exp(-A[:, 0].astype(np.float64))))
            bound = (ulps if dtype == np.float64 else 1) * np.spacing(
                np.maximum(np.abs(ref), 1e-300).astype(dtype)).astype(np.float64)
            if dtype == np.float32:
                bound = bound + np.abs(ref - ref.astype(np.float32))   # the rounding to float
            assert np.all(np.abs(Z[:, 0] - ref) <= bound), (target, name, dtype)
            f = Z[:, 0].astype(np.float64)
            d = f * (1 - f) if name == "sigmoid" else 1 - f * f
            # 1 - f^2 cancels near |f| = 1 (FMA targets round it once): rounding of terms <= 1
            np.testing.assert_allclose(D[:, 0], d, rtol=0,
                                       atol=4.5e-16 if dtype == np.float64 else 2.4e-7)


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_out", [2, 3, 10, 17])
def test_categorical_crossentropy_on_registers_on_each_target(target, dtype, n_out):
    """Softmax cross-entropy with label smoothing and weights, every batch length (ragged ends
    through the padded copy, or element by element beyond 16 outputs), extreme and infinite
    logits: the loss and delta agree with numpy's log-sum-exp."""
    from fastmlp._kernels import _loss
    rng = np.random.default_rng(n_out)
    for m in (1, 5, 8, 13, 32, 37):
        Z = rng.normal(scale=4, size=(m, n_out))
        Z[0, 0] = 700.0 if m > 1 else Z[0, 0]          # one confident sample
        if m > 4:
            Z[3] = -800.0                               # every output far negative
        Z = Z.astype(dtype)
        labels = rng.integers(0, n_out, m)
        Y = np.eye(n_out, dtype=dtype)[labels]
        w = rng.uniform(0.2, 2, m).astype(dtype)
        eps = 0.1
        delta = np.empty_like(Z)
        loss = _loss.loss_delta_py(1, Z, Y, sample_weight=w, param=eps, delta_out=delta)
        z = Z.astype(np.float64)
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
        t = (1 - eps) * Y.astype(np.float64) + eps / n_out
        want = (-(t * (z - lse)).sum(axis=1) * w).mean()
        sm = np.exp(z - lse)
        rtol = 1e-13 if dtype == np.float64 else 2e-6
        assert loss == pytest.approx(want, rel=rtol), (m, loss, want)
        np.testing.assert_allclose(delta, (sm - t) * w[:, None].astype(np.float64) / m,
                                   rtol=rtol, atol=1e-16 if dtype == np.float64 else 1e-8)
    nan_loss = _loss.loss_delta_py(1, np.array([[np.nan, 0.0]], dtype),
                                   np.array([[1.0, 0.0]], dtype))
    assert np.isnan(nan_loss)


def test_every_target_trains_the_same_adam_model_to_1e12():
    """A network whose first layer goes to BLAS (64 inputs), relu, softmax and Adam, trained on
    each target: the same float64 weights to 1e-12."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(90, 64)), rng.integers(0, 3, 90)
    previous = _dense.cpu_target()
    models = []
    try:
        for name in SUPPORTED:
            _dense.set_cpu_target(name)
            model = MLP([64, 32, 3], seed=1, optimizer="adam", lr=0.01,
                        loss="categorical_crossentropy")
            model.train(X, y, epochs=5, batch_size=16, verbose=False, shuffle_seed=2)
            models.append(model)
    finally:
        _dense.set_cpu_target(previous)
    assert np.abs(models[0].W[0] - MLP([64, 32, 3], seed=1).W[0]).max() > 1e-3   # it trained
    for name, model in zip(SUPPORTED[1:], models[1:]):
        np.testing.assert_allclose(model.params, models[0].params, rtol=0, atol=1e-12,
                                   err_msg=name)
