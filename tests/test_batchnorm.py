"""Batch-normalization kernels against the NumPy reference, hand values and finite differences."""
import numpy as np
import pytest

from fastmlp.reference import batchnorm_backward, batchnorm_forward
from fastmlp._kernels._batchnorm import bn_backward_py, bn_forward_eval_py, bn_forward_train_py

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
EPS = 1e-5
MOMENTUM = 0.9
# (m, n): n = 150 spans several of the kernel's 64-unit blocks, the last one partial.
SHAPES = [(37, 150), (8, 3), (200, 64)]


def assert_close(actual, expected, dtype):
    """Relative tolerance per element, with an absolute floor at the same fraction of the
    largest magnitude, so entries that happen to be near zero do not demand more digits."""
    rtol = RTOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.max(np.abs(expected)))


def random_problem(rng, m, n, dtype):
    Z = (rng.standard_normal((m, n)) * rng.uniform(0.5, 3, n) + rng.uniform(-2, 2, n)).astype(dtype)
    gamma = rng.uniform(0.5, 2, n).astype(dtype)
    beta = rng.standard_normal(n).astype(dtype)
    running_mean = rng.standard_normal(n).astype(dtype)
    running_var = rng.uniform(0.5, 2, n).astype(dtype)
    return Z, gamma, beta, running_mean, running_var


def kernel_train(Z, gamma, beta, running_mean, running_var, eps=EPS, momentum=MOMENTUM):
    """Run bn_forward_train_py on copies; return Y, Zhat, inv_std and the new running stats."""
    Y, rm, rv = Z.copy(), running_mean.copy(), running_var.copy()
    Zhat, inv_std = np.empty_like(Z), np.empty_like(gamma)
    bn_forward_train_py(Y, gamma, beta, eps, momentum, rm, rv, Zhat, inv_std)
    return Y, Zhat, inv_std, rm, rv


def kernel_backward(dY, Zhat, inv_std, gamma):
    dZ, dgamma, dbeta = dY.copy(), np.empty_like(gamma), np.empty_like(gamma)
    bn_backward_py(dZ, Zhat, inv_std, gamma, dgamma, dbeta)
    return dZ, dgamma, dbeta


def as64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n", SHAPES)
def test_forward_train_matches_reference(dtype, m, n):
    Z, gamma, beta, rm0, rv0 = random_problem(np.random.default_rng(m * n), m, n, dtype)
    Y, Zhat, inv_std, rm, rv = kernel_train(Z, gamma, beta, rm0, rv0)
    # The reference runs in float64 on the same inputs: the float32 kernel is held to the exact
    # answer, not to another float32 computation.
    Z64, gamma64, beta64, rm_ref, rv_ref = as64(Z, gamma, beta, rm0, rv0)
    Y_ref, (Zhat_ref, inv_std_ref) = batchnorm_forward(Z64, gamma64, beta64, EPS, rm_ref, rv_ref,
                                                       MOMENTUM)
    for actual, expected in [(Y, Y_ref), (Zhat, Zhat_ref), (inv_std, inv_std_ref), (rm, rm_ref),
                             (rv, rv_ref)]:
        assert actual.dtype == dtype
        assert_close(actual, expected, dtype)
    # Zhat has zero mean and unit variance (up to eps) per unit.
    np.testing.assert_allclose(Zhat_ref.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Zhat_ref.var(axis=0), Z64.var(axis=0) / (Z64.var(axis=0) + EPS))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n", SHAPES)
def test_forward_eval_matches_reference(dtype, m, n):
    Z, gamma, beta, rm, rv = random_problem(np.random.default_rng(m + n), m, n, dtype)
    Y = Z.copy()
    bn_forward_eval_py(Y, gamma, beta, rm, rv, EPS)
    Y_ref, cache = batchnorm_forward(*as64(Z, gamma, beta), EPS, *as64(rm, rv), training=False)
    assert cache is None
    assert_close(Y, Y_ref, dtype)
    # Hand formula, one unit.
    np.testing.assert_allclose(Y[:, 1], gamma[1] * (Z[:, 1] - rm[1]) / np.sqrt(rv[1] + EPS) + beta[1],
                               rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n", SHAPES)
def test_backward_matches_reference(dtype, m, n):
    rng = np.random.default_rng(3 * m + n)
    Z, gamma, beta, rm, rv = random_problem(rng, m, n, dtype)
    dY = rng.standard_normal((m, n)).astype(dtype)
    _, Zhat, inv_std, _, _ = kernel_train(Z, gamma, beta, rm, rv)
    dZ, dgamma, dbeta = kernel_backward(dY, Zhat, inv_std, gamma)
    dZ_ref, dgamma_ref, dbeta_ref = batchnorm_backward(*as64(dY), tuple(as64(Zhat, inv_std)),
                                                       *as64(gamma))
    for actual, expected in [(dZ, dZ_ref), (dgamma, dgamma_ref), (dbeta, dbeta_ref)]:
        assert actual.dtype == dtype
        assert_close(actual, expected, dtype)
    # Each unit's dZ sums to zero: the batch mean absorbs any common shift of Z.
    column_sums = dZ.astype(np.float64).sum(axis=0)
    assert np.all(np.abs(column_sums) <= RTOL[dtype] * np.abs(dZ).sum(axis=0))


def test_running_statistics_hand_values():
    Z = np.array([[1.0, 2.0], [3.0, 6.0]])      # mu = [2, 4], biased var = [1, 4], unbiased [2, 8]
    gamma, beta = np.array([2.0, 0.5]), np.array([1.0, -1.0])
    rm0, rv0 = np.array([0.5, -1.0]), np.array([1.0, 2.0])
    Y, Zhat, inv_std, rm, rv = kernel_train(Z, gamma, beta, rm0, rv0, eps=1e-5, momentum=0.9)
    np.testing.assert_allclose(rm, [0.9 * 0.5 + 0.1 * 2, 0.9 * -1 + 0.1 * 4], rtol=1e-15)
    np.testing.assert_allclose(rv, [0.9 * 1 + 0.1 * 2, 0.9 * 2 + 0.1 * 8], rtol=1e-15)
    np.testing.assert_allclose(inv_std, [1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(4 + 1e-5)], rtol=1e-15)
    np.testing.assert_allclose(Zhat, [[-1, -2], [1, 2]] * inv_std, rtol=1e-15)
    np.testing.assert_allclose(Y, gamma * Zhat + beta, rtol=1e-15)
    # momentum 0 replaces the running statistics by the batch's, momentum 1 keeps them.
    _, _, _, rm, rv = kernel_train(Z, gamma, beta, rm0, rv0, momentum=0.0)
    np.testing.assert_allclose(rm, [2, 4], rtol=1e-15)
    np.testing.assert_allclose(rv, [2, 8], rtol=1e-15)
    _, _, _, rm, rv = kernel_train(Z, gamma, beta, rm0, rv0, momentum=1.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_row_batch(dtype):
    Z = np.array([[3.0, -2.0, 0.0]], dtype=dtype)
    gamma, beta = np.array([2.0, 0.5, 1.0], dtype=dtype), np.array([1.0, -1.0, 0.25], dtype=dtype)
    rm0, rv0 = np.array([0.5, -1.0, 0.0], dtype=dtype), np.array([1.0, 2.0, 3.0], dtype=dtype)
    Y, Zhat, inv_std, rm, rv = kernel_train(Z, gamma, beta, rm0, rv0)
    # One row: mu = Z, var = 0 (the biased variance also feeds the running average).
    np.testing.assert_array_equal(Zhat, 0)
    np.testing.assert_array_equal(Y, beta[None, :])
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(EPS), rtol=RTOL[dtype])
    np.testing.assert_allclose(rm, 0.9 * rm0 + 0.1 * Z[0], rtol=RTOL[dtype])
    np.testing.assert_allclose(rv, 0.9 * rv0, rtol=RTOL[dtype])
    dZ, dgamma, dbeta = kernel_backward(np.array([[0.3, -1.2, 2.0]], dtype=dtype), Zhat, inv_std,
                                        gamma)
    assert np.all(np.isfinite(dZ))
    np.testing.assert_array_equal(dZ, 0)          # Y = beta whatever Z is
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, np.array([0.3, -1.2, 2.0], dtype=dtype))
    Y_ref, _ = batchnorm_forward(Z, gamma, beta, EPS, rm0.copy(), rv0.copy())
    np.testing.assert_array_equal(Y_ref, Y)


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(42)
    m, n = 6, 4
    Z, gamma, beta, rm, rv = random_problem(rng, m, n, np.float64)
    R = rng.standard_normal((m, n))

    def s(Z, gamma, beta):
        return float(np.sum(R * kernel_train(Z, gamma, beta, rm, rv)[0]))

    _, Zhat, inv_std, _, _ = kernel_train(Z, gamma, beta, rm, rv)
    dZ, dgamma, dbeta = kernel_backward(R, Zhat, inv_std, gamma)
    h = 1e-6
    for index, analytic in [(0, dZ), (1, dgamma), (2, dbeta)]:
        numeric = np.zeros_like(analytic)
        for k in np.ndindex(analytic.shape):
            plus = [Z.copy(), gamma.copy(), beta.copy()]
            minus = [Z.copy(), gamma.copy(), beta.copy()]
            plus[index][k] += h
            minus[index][k] -= h
            numeric[k] = (s(*plus) - s(*minus)) / (2 * h)
        error = np.linalg.norm(numeric - analytic) / np.linalg.norm(numeric)
        assert error < 1e-6, (index, error)


def test_backward_overwrites_gradient_outputs():
    rng = np.random.default_rng(7)
    Z, gamma, beta, rm, rv = random_problem(rng, 5, 3, np.float64)
    _, Zhat, inv_std, _, _ = kernel_train(Z, gamma, beta, rm, rv)
    dY = rng.standard_normal((5, 3))
    dgamma, dbeta = np.full(3, 1e6), np.full(3, -1e6)
    bn_backward_py(dY.copy(), Zhat, inv_std, gamma, dgamma, dbeta)
    np.testing.assert_allclose(dbeta, dY.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dgamma, (dY * Zhat).sum(axis=0), rtol=1e-12)


def test_shape_and_argument_checks():
    Z = np.zeros((4, 3))
    v = np.ones(3)
    ok = dict(Zhat_out=np.empty((4, 3)), inv_std_out=np.empty(3))

    def train(Z=Z, gamma=v, eps=EPS, momentum=MOMENTUM, Zhat_out=ok["Zhat_out"], running_var=v.copy()):
        bn_forward_train_py(Z, gamma, v, eps, momentum, v.copy(), running_var, Zhat_out,
                            ok["inv_std_out"])

    with pytest.raises(ValueError, match="gamma has shape"):
        train(gamma=np.ones(2))
    with pytest.raises(ValueError, match="running_var has shape"):
        train(running_var=np.ones(4))
    with pytest.raises(ValueError, match="Zhat_out has shape"):
        train(Zhat_out=np.empty((3, 3)))
    with pytest.raises(ValueError, match="at least one row"):
        train(Z=np.zeros((0, 3)), Zhat_out=np.empty((0, 3)))
    with pytest.raises(ValueError, match="eps must be > 0"):
        train(eps=0.0)
    with pytest.raises(ValueError, match="momentum"):
        train(momentum=1.5)
    Zc = Z.copy()
    with pytest.raises(ValueError, match="separate array"):
        train(Z=Zc, Zhat_out=Zc)
    with pytest.raises(ValueError, match="running_mean has shape"):
        bn_forward_eval_py(Z.copy(), v, v, np.ones(5), v, EPS)
    with pytest.raises(ValueError, match="Zhat has shape"):
        bn_backward_py(Z.copy(), np.zeros((4, 2)), v, v, np.empty(3), np.empty(3))
    with pytest.raises(ValueError, match="dbeta_out has shape"):
        bn_backward_py(Z.copy(), Z, v, v, np.empty(3), np.empty(2))
    with pytest.raises(ValueError, match="training=False needs"):
        batchnorm_forward(Z, v, v, EPS, training=False)
