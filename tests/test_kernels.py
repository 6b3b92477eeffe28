"""Each kernel's Python twin against the NumPy formula it implements, in float32 and float64.

Tolerances are relative to the size of the result (``RTOL[dtype] * max(1, max|expected|)``):
the expected values are computed in float64 from the same (possibly float32) inputs, so the
float32 kernels are judged against the exact answer, not against another float32 rounding.
"""
import numpy as np

import pytest

import fastmlp.reference
from fastmlp._kernels import _blas, _dense, _loss, _optim, _train

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ACT = _dense.ACTIVATION_IDS
BCE = _loss.LOSS_IDS["binary_crossentropy"]
# Cython's names of the fused specializations, to pick one explicitly: gemm_py["float"].
FUSED = {np.float32: "float", np.float64: "double"}


def assert_close(actual, expected, dtype):
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.dtype == dtype
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.normal(size=shape)).astype(dtype)


def sigmoid64(z):
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def test_activation_ids():
    # The foundation's ids stay fixed; every activation has its own id (swish is silu's alias).
    assert {k: ACT[k] for k in ("identity", "sigmoid", "relu")} == {"identity": 0, "sigmoid": 1, "relu": 2}
    assert len(set(ACT.values())) == len(set(ACT) - {"swish"})


# --------------------------------------------------------------------------------------------
# _blas
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_numpy(dtype, trans_a, trans_b):
    rng = np.random.default_rng(0)
    m, n, k = 7, 5, 11          # all different, so a swapped dimension cannot go unnoticed
    A = normal(rng, (k, m) if trans_a else (m, k), dtype)
    B = normal(rng, (n, k) if trans_b else (k, n), dtype)
    C = normal(rng, (m, n), dtype)
    opA = A.T if trans_a else A
    opB = B.T if trans_b else B
    alpha, beta = 0.75, -1.5
    expected = (alpha * opA.astype(np.float64) @ opB.astype(np.float64)
                + beta * C.astype(np.float64))
    _blas.gemm_py[FUSED[dtype]](trans_a, trans_b, alpha, A, B, beta, C)
    assert_close(C, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_py_is_callable_with_python_scalars(dtype):
    """Like every other twin, gemm_py picks its dtype from the arrays: alpha and beta given as
    Python floats (or NumPy scalars of the arrays' dtype) must work for float32 arrays too."""
    A, B = np.ones((2, 3), dtype), np.ones((3, 4), dtype)
    for alpha, beta in ((2.0, 0.0), (dtype(2.0), dtype(0.0))):
        C = np.zeros((2, 4), dtype)
        _blas.gemm_py(False, False, alpha, A, B, beta, C)
        np.testing.assert_array_equal(C, np.full((2, 4), 6.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_overwrites_output(dtype):
    rng = np.random.default_rng(1)
    A, B = normal(rng, (4, 3), dtype), normal(rng, (3, 6), dtype)
    C = np.full((4, 6), np.nan, dtype=dtype)    # beta = 0 must not read C (BLAS contract)
    _blas.gemm_py[FUSED[dtype]](False, False, 1.0, A, B, 0.0, C)
    assert_close(C, A.astype(np.float64) @ B, dtype)


@pytest.mark.parametrize("shapes", [((3, 4), (5, 6), (3, 6)),     # inner dimensions differ
                                    ((3, 4), (4, 6), (3, 5)),     # C has the wrong width
                                    ((3, 4), (4, 6), (2, 6))])    # C has the wrong height
def test_gemm_shape_mismatch_raises(shapes):
    A, B, C = (np.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match="incompatible shapes"):
        _blas.gemm_py(False, False, 1.0, A, B, 0.0, C)


# --------------------------------------------------------------------------------------------
# _dense
# --------------------------------------------------------------------------------------------

def activation64(act, z):
    """f(z) and f'(z) in float64, from the NumPy reference (default parameters)."""
    name = next(name for name, i in ACT.items() if i == act)
    f, f_prime = fastmlp.reference.ACTIVATIONS[name]
    return f(z), f_prime(z)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_blas", [False, True])
@pytest.mark.parametrize("act", sorted(ACT), ids=sorted(ACT))
def test_dense_forward_matches_numpy(dtype, use_blas, act):
    rng = np.random.default_rng(2)
    m, n_in, n_out = 9, 6, 5
    A, W, b = normal(rng, (m, n_in), dtype), normal(rng, (n_in, n_out), dtype), \
        normal(rng, n_out, dtype)
    Z = A.astype(np.float64) @ W + b
    assert (Z > 0).any() and (Z < 0).any()
    f, f_prime = activation64(ACT[act], Z)
    Z_out = np.full((m, n_out), np.nan, dtype=dtype)
    D_out = np.full((m, n_out), np.nan, dtype=dtype)
    _dense.dense_forward_py(A, W, b, ACT[act], use_blas, Z_out, D_out)
    assert_close(Z_out, f, dtype)
    assert_close(D_out, f_prime, dtype)
    # Without a derivative buffer, the same activations.
    Z_only = np.full((m, n_out), np.nan, dtype=dtype)
    _dense.dense_forward_py(A, W, b, ACT[act], use_blas, Z_only)
    np.testing.assert_array_equal(Z_only, Z_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_blas", [False, True])
def test_dense_backward_matches_numpy(dtype, use_blas):
    rng = np.random.default_rng(3)
    m, n_in, n_out = 9, 6, 5
    A, W = normal(rng, (m, n_in), dtype), normal(rng, (n_in, n_out), dtype)
    delta, D = normal(rng, (m, n_out), dtype), rng.random((m, n_in)).astype(dtype)
    gW = np.full((n_in, n_out), np.nan, dtype=dtype)
    gb = np.full(n_out, np.nan, dtype=dtype)
    delta_prev = np.full((m, n_in), np.nan, dtype=dtype)
    _dense.dense_backward_py(A, W, delta, D, use_blas, gW, gb, delta_prev)
    A64, W64, delta64 = (x.astype(np.float64) for x in (A, W, delta))
    assert_close(gW, A64.T @ delta64, dtype)
    assert_close(gb, delta64.sum(axis=0), dtype)
    assert_close(delta_prev, (delta64 @ W64.T) * D, dtype)
    # Without delta_prev_out (the first layer): the same gradients.
    gW2, gb2 = np.full_like(gW, np.nan), np.full_like(gb, np.nan)
    _dense.dense_backward_py(A, W, delta, D, use_blas, gW2, gb2)
    np.testing.assert_array_equal(gW2, gW)
    np.testing.assert_array_equal(gb2, gb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_blas", [False, True])
def test_dense_on_a_layer_of_network_size(dtype, use_blas):
    """A layer the size the engine sends to BLAS (70 x 90 >= 4096), through both paths."""
    rng = np.random.default_rng(4)
    m, n_in, n_out = 33, 70, 90
    A, W, b = normal(rng, (m, n_in), dtype), normal(rng, (n_in, n_out), dtype), \
        normal(rng, n_out, dtype)
    delta, D = normal(rng, (m, n_out), dtype), rng.random((m, n_in)).astype(dtype)
    Z, Dz = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
    _dense.dense_forward_py(A, W, b, ACT["sigmoid"], use_blas, Z, Dz)
    gW, gb, delta_prev = np.empty_like(W), np.empty(n_out, dtype), np.empty_like(A)
    _dense.dense_backward_py(A, W, delta, D, use_blas, gW, gb, delta_prev)
    A64, W64, delta64 = (x.astype(np.float64) for x in (A, W, delta))
    s = sigmoid64(A64 @ W64 + b)
    assert_close(Z, s, dtype)
    assert_close(Dz, s * (1 - s), dtype)
    assert_close(gW, A64.T @ delta64, dtype)
    assert_close(gb, delta64.sum(axis=0), dtype)
    assert_close(delta_prev, (delta64 @ W64.T) * D, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(ACT), ids=sorted(ACT))
def test_dense_forward_reads_sample_major_rows_on_blas(dtype, act):
    """A first layer on BLAS reads the user's rows as they are (the engine's ``batch_rows``):
    the same layer as from the feature-major copy, and as NumPy computes it."""
    rng = np.random.default_rng(5)
    m, n_in, n_out = 33, 70, 90
    A, W, b = normal(rng, (m, n_in), dtype), normal(rng, (n_in, n_out), dtype), \
        normal(rng, n_out, dtype)
    Z, D = np.full((m, n_out), np.nan, dtype), np.full((m, n_out), np.nan, dtype)
    _dense.dense_forward_py(A, W, b, ACT[act], True, Z, D, sample_major=True)
    f, f_prime = activation64(ACT[act], A.astype(np.float64) @ W + b)
    assert_close(Z, f, dtype)
    assert_close(D, f_prime, dtype)
    Z_fm, D_fm = np.empty_like(Z), np.empty_like(D)
    _dense.dense_forward_py(A, W, b, ACT[act], True, Z_fm, D_fm)
    assert_close(Z, Z_fm, dtype)
    with pytest.raises(ValueError, match="sample_major input needs use_blas=True"):
        _dense.dense_forward_py(A, W, b, ACT[act], False, Z, D, sample_major=True)


def test_dense_shape_mismatches_raise():
    A, W, b = np.zeros((4, 3)), np.zeros((3, 2)), np.zeros(2)
    Z = np.zeros((4, 2))
    with pytest.raises(ValueError, match="incompatible shapes"):
        _dense.dense_forward_py(A, np.zeros((2, 2)), b, ACT["relu"], False, Z)
    with pytest.raises(ValueError, match="incompatible shapes"):
        _dense.dense_forward_py(A, W, np.zeros(3), ACT["relu"], False, Z)
    with pytest.raises(ValueError, match="Z_out"):
        _dense.dense_forward_py(A, W, b, ACT["relu"], False, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="D_out"):
        _dense.dense_forward_py(A, W, b, ACT["relu"], False, Z, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="activation id"):
        _dense.dense_forward_py(A, W, b, 99, False, Z)
    delta, D = np.zeros((4, 2)), np.zeros((4, 3))
    gW, gb, dp = np.zeros((3, 2)), np.zeros(2), np.zeros((4, 3))
    with pytest.raises(ValueError, match="incompatible shapes"):
        _dense.dense_backward_py(A, W, np.zeros((5, 2)), D, False, gW, gb, dp)
    with pytest.raises(ValueError, match="gW_out"):
        _dense.dense_backward_py(A, W, delta, D, False, np.zeros((2, 3)), gb, dp)
    with pytest.raises(ValueError, match="gb_out"):
        _dense.dense_backward_py(A, W, delta, D, False, gW, np.zeros(3), dp)
    with pytest.raises(ValueError, match="delta_prev_out"):
        _dense.dense_backward_py(A, W, delta, D, False, gW, gb, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="D must have"):
        _dense.dense_backward_py(A, W, delta, np.zeros((4, 2)), False, gW, gb, dp)


# --------------------------------------------------------------------------------------------
# _loss
# --------------------------------------------------------------------------------------------

def bce64(z, y):
    """Per-sample BCE from logits, stably: max(z, 0) - y z + log(1 + exp(-|z|))."""
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    return np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_delta_matches_stable_bce(dtype):
    rng = np.random.default_rng(5)
    z = np.concatenate([rng.normal(scale=3, size=40), [-1000, -80, -30, 0, 30, 80, 1000]])
    y = (rng.random(z.size) < 0.5).astype(float)
    y[-7:] = [1, 0, 1, 1, 0, 1, 0]
    Z, Y = z.reshape(-1, 1).astype(dtype), y.reshape(-1, 1).astype(dtype)
    m = z.size
    delta = np.full_like(Z, np.nan)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = _loss.loss_delta_py(BCE, Z, Y, delta_out=delta)
        expected_delta = (sigmoid64(Z) - Y.astype(np.float64)) / m
    assert np.isfinite(loss)
    assert loss == pytest.approx(bce64(Z, Y).mean(), rel=RTOL[dtype])
    assert_close(delta, expected_delta, dtype)
    # Extreme logits: the loss of a confidently wrong sample is |z|, of a right one ~0.
    assert _loss.loss_delta_py(BCE, np.array([[-1000.0]], dtype), np.array([[1.0]], dtype)) == \
        pytest.approx(1000.0, rel=RTOL[dtype])
    assert _loss.loss_delta_py(BCE, np.array([[1000.0]], dtype), np.array([[1.0]], dtype)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_delta_with_several_outputs_and_no_delta(dtype):
    rng = np.random.default_rng(6)
    Z = normal(rng, (8, 3), dtype, scale=2)
    Y = (rng.random((8, 3)) < 0.5).astype(dtype)
    # The mean over rows of the per-row sum over outputs.
    expected = bce64(Z, Y).sum(axis=1).mean()
    assert _loss.loss_delta_py(BCE, Z, Y) == pytest.approx(expected, rel=RTOL[dtype])


def test_loss_delta_bad_arguments_raise():
    Z, Y = np.zeros((4, 1)), np.zeros((4, 1))
    with pytest.raises(ValueError, match="shape"):
        _loss.loss_delta_py(BCE, Z, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="shape"):
        _loss.loss_delta_py(BCE, np.zeros((0, 1)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="delta_out"):
        _loss.loss_delta_py(BCE, Z, Y, delta_out=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="loss id"):
        _loss.loss_delta_py(99, Z, Y)


# --------------------------------------------------------------------------------------------
# _optim
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step(dtype):
    rng = np.random.default_rng(7)
    theta, g = normal(rng, 50, dtype), normal(rng, 50, dtype)
    expected = theta.astype(np.float64) - 0.3 * g.astype(np.float64)
    _optim.sgd_step_py(theta, g, 0.3)
    assert_close(theta, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.0, 0.1), (0.05, 0.0), (0.05, 0.1)])
def test_add_penalty_gradient(dtype, l1, l2):
    rng = np.random.default_rng(8)
    w = normal(rng, 50, dtype)
    w[[3, 17]] = 0.0                       # sign(0) = 0: no L1 push on a zero weight
    g = normal(rng, 50, dtype)
    expected = g.astype(np.float64) + l2 * w + l1 * np.sign(w)
    _optim.add_penalty_gradient_py(g, w, l1, l2)
    assert_close(g, expected, dtype)
    assert (w > 0).any() and (w < 0).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.0, 0.1), (0.05, 0.0), (0.05, 0.1)])
def test_penalty_value(dtype, l1, l2):
    rng = np.random.default_rng(9)
    w = normal(rng, 50, dtype)
    w64 = w.astype(np.float64)
    expected = 0.5 * l2 * (w64 ** 2).sum() + l1 * np.abs(w64).sum()
    value = _optim.penalty_value_py(w, l1, l2)
    assert value == pytest.approx(expected, rel=1e-12, abs=0)   # accumulated in double


def test_optim_shape_mismatches_raise():
    with pytest.raises(ValueError, match="one shape"):
        _optim.sgd_step_py(np.zeros(4), np.zeros(5), 0.1)
    with pytest.raises(ValueError, match="one shape"):
        _optim.add_penalty_gradient_py(np.zeros(4), np.zeros(3), 0.0, 0.1)


# --------------------------------------------------------------------------------------------
# _train.all_finite
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (3, 5), (6, 7)])
def test_all_finite_finds_each_non_finite_value(dtype, bad, where):
    X = np.random.default_rng(10).normal(size=(7, 8)).astype(dtype)
    assert _train.all_finite(X) is True
    X[where] = bad
    assert _train.all_finite(X) is False


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_on_extreme_finite_values(dtype):
    info = np.finfo(dtype)
    X = np.array([[info.max, -info.max, info.tiny, -info.tiny, 0.0, -0.0]], dtype=dtype)
    assert _train.all_finite(X) is True
    assert _train.all_finite(np.empty((0, 3), dtype=dtype)) is True
    assert _train.all_finite(np.empty((3, 0), dtype=dtype)) is True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 8, 13, 64, 1001])
def test_max_abs_matches_numpy_on_every_length(dtype, n):
    """Lengths below, at and past the vector blocks: the largest entry and the most negative
    one are each found wherever they sit, the tail included."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(1, n)).astype(dtype)
    assert _train.max_abs(X) == np.abs(X).max()
    for where in {0, n // 2, n - 1}:
        Y = X.copy()
        Y[0, where] = -1e3
        assert _train.max_abs(Y) == 1e3
        Y[0, where] = 2e3
        assert _train.max_abs(Y) == 2e3
    zero = _train.max_abs(np.zeros((1, n), dtype))
    assert zero == 0.0 and np.copysign(1.0, zero) == 1.0      # +0, not -0
    assert _train.max_abs(-np.ones((1, n), dtype)) == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (3, 5), (6, 6), (8, 6)])   # (8, 6): the tail
def test_max_abs_is_nan_for_each_non_finite_value(dtype, bad, where):
    X = np.random.default_rng(11).normal(size=(9, 7)).astype(dtype)
    X[where] = bad
    assert np.isnan(_train.max_abs(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_abs_on_extreme_and_empty_arrays(dtype):
    info = np.finfo(dtype)
    X = np.array([[info.tiny, -info.max, 0.0, -0.0]], dtype=dtype)
    assert _train.max_abs(X) == float(info.max)
    assert _train.max_abs(np.empty((0, 3), dtype=dtype)) == 0.0
    assert _train.max_abs(np.empty((3, 0), dtype=dtype)) == 0.0
