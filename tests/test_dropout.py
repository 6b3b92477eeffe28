"""Dropout kernel: exact agreement with the NumPy generator, statistics and reproducibility."""
import numpy as np
import pytest

from fastmlp.reference import _mix, dropout_scale, dropout_uniforms
from fastmlp._kernels._dropout import dropout_apply_py, dropout_scale_py

DTYPES = [np.float64, np.float32]
N = 100_000


def test_mix_is_splitmix64():
    # splitmix64 seeded with 0 outputs mix(0x9E3779B97F4A7C15), then mix(2 * 0x9E3779B97F4A7C15).
    state = np.array([0x9E3779B97F4A7C15, 0x3C6EF372FE94F82A], dtype=np.uint64)
    assert [int(x) for x in _mix(state)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed, step, layer, rate", [
    (0, 0, 0, 0.5),
    (1, 0, 0, 0.5),
    (12345, 7, 3, 0.1),
    (12345, 8, 3, 0.9),
    (2 ** 64 - 1, 2 ** 62 + 5, 1023, 0.3),   # wrap-around in step * 1024 + layer and the key
    (987654321, 123456, 17, 1 / 3),
])
def test_kernel_scale_equals_numpy_scale(dtype, seed, step, layer, rate):
    s = dropout_scale_py(5000, rate, seed, step, layer, dtype)
    expected = dropout_scale(5000, rate, seed, step, layer, dtype)
    assert s.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(s, expected)
    assert set(np.unique(s)) <= {dtype(0), dtype(1 / (1 - rate))}


@pytest.mark.parametrize("dtype", DTYPES)
def test_rate_equal_to_a_draw_keeps_that_element(dtype):
    # Element i is kept iff u_i >= rate: the boundary itself is kept, a hair above it is dropped.
    u = dropout_uniforms(64, 31, 4, 2)
    j = int(np.argmax(u))
    for rate, kept in [(u[j], True), (np.nextafter(u[j], 1.0), False)]:
        s = dropout_scale_py(64, rate, 31, 4, 2, dtype)
        assert (s[j] != 0) == kept
        np.testing.assert_array_equal(s, dropout_scale(64, rate, 31, 4, 2, dtype))


def test_reference_scale_keeps_shape():
    s = dropout_scale((30, 7), 0.4, 5, 6, 2, np.float32)
    assert s.shape == (30, 7) and s.dtype == np.float32
    np.testing.assert_array_equal(s.ravel(), dropout_scale(210, 0.4, 5, 6, 2, np.float32))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_fraction_kept(rate):
    kept = np.count_nonzero(dropout_scale_py(N, rate, 2024, 3, 1, np.float64)) / N
    std = np.sqrt(rate * (1 - rate) / N)
    assert abs(kept - (1 - rate)) < 4 * std


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_inverted_scaling_preserves_mean(rate):
    A = np.random.default_rng(0).uniform(1, 2, N)
    A_dropped = A.copy()
    dropout_apply_py(A_dropped, None, rate, 99, 4, 0)
    std_of_mean = np.std(A_dropped) / np.sqrt(N)
    assert abs(A_dropped.mean() - A.mean()) < 4 * std_of_mean
    kept = A_dropped != 0
    np.testing.assert_allclose(A_dropped[kept], A[kept] / (1 - rate), rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rate_zero_keeps_everything(dtype):
    A = np.random.default_rng(1).standard_normal((50, 40)).astype(dtype)
    A_dropped = A.copy()
    dropout_apply_py(A_dropped, None, 0.0, 3, 2, 1)
    np.testing.assert_array_equal(A_dropped, A)


def test_masks_differ_across_step_layer_and_seed():
    base = dropout_scale_py(1000, 0.5, 11, 5, 2, np.float64)
    for other in [dropout_scale_py(1000, 0.5, 11, 6, 2, np.float64),
                  dropout_scale_py(1000, 0.5, 11, 5, 3, np.float64),
                  dropout_scale_py(1000, 0.5, 12, 5, 2, np.float64)]:
        # Independent masks agree on about half the elements, not on all of them.
        agreement = np.mean((base != 0) == (other != 0))
        assert 0.4 < agreement < 0.6


def test_same_inputs_give_identical_masks():
    A = np.random.default_rng(2).standard_normal((64, 33))
    first, second = A.copy(), A.copy()
    dropout_apply_py(first, None, 0.3, 77, 10, 4)
    dropout_apply_py(second, None, 0.3, 77, 10, 4)
    np.testing.assert_array_equal(first, second)
    assert np.count_nonzero(first == 0) > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_D_is_scaled_like_A(dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((20, 15)).astype(dtype)
    D = rng.uniform(0.5, 1, (20, 15)).astype(dtype)
    A_dropped, D_dropped = A.copy(), D.copy()
    dropout_apply_py(A_dropped, D_dropped, 0.25, 8, 1, 0)
    s = dropout_scale((20, 15), 0.25, 8, 1, 0, dtype)
    np.testing.assert_array_equal(A_dropped, A * s)
    np.testing.assert_array_equal(D_dropped, D * s)
    np.testing.assert_array_equal(A_dropped == 0, D_dropped == 0)


def test_argument_checks():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="rate"):
        dropout_apply_py(A, None, 1.0, 0, 0, 0)
    with pytest.raises(ValueError, match="rate"):
        dropout_apply_py(A, None, -0.1, 0, 0, 0)
    with pytest.raises(ValueError, match="layer"):
        dropout_apply_py(A, None, 0.5, 0, 0, 1024)
    with pytest.raises(ValueError, match="seed"):
        dropout_apply_py(A, None, 0.5, -1, 0, 0)
    with pytest.raises(ValueError, match="incompatible shapes"):
        dropout_apply_py(A, np.ones((4, 3)), 0.5, 0, 0, 0)
    with pytest.raises(TypeError, match="one dtype"):
        dropout_apply_py(A, np.ones((3, 4), dtype=np.float32), 0.5, 0, 0, 0)
    with pytest.raises(TypeError, match="C-contiguous"):
        dropout_apply_py(np.ones((4, 3)).T, None, 0.5, 0, 0, 0)
    with pytest.raises(TypeError, match="C-contiguous"):
        dropout_apply_py([1.0, 2.0], None, 0.5, 0, 0, 0)
    dropout_apply_py(np.ones((0, 4)), None, 0.5, 0, 0, 0)      # empty: nothing to do
