"""Memory and threads: nothing is allocated per batch, X is not copied, fits run in parallel."""
import threading
import time

import numpy as np
import pytest

from fastmlp import MLP


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(), dict(optimizer="adam", dropout=0.2, batch_norm=True)])
def test_peak_memory_does_not_grow_with_the_number_of_batches(dtype, options,
                                                            peak_during):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 16)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    model = MLP([16, 64, 32, 1], lr=0.01, seed=0, dtype=dtype, **options)
    model.train(X, y, epochs=1, batch_size=20, verbose=False)      # warm caches
    few = peak_during(lambda: model.train(X, y, epochs=5, batch_size=20, verbose=False))
    many = peak_during(lambda: model.train(X, y, epochs=50, batch_size=20, verbose=False))
    # 500 vs 5000 batches: the same buffers (plus the history's floats, 16 bytes an epoch).
    assert many - few < 8_000, (few, many)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fitting_a_c_contiguous_array_of_the_models_dtype_does_not_copy_it(dtype, peak_during):
    rng = np.random.default_rng(1)
    X = np.ascontiguousarray(rng.normal(size=(50_000, 50)), dtype=dtype)   # 10 or 20 MB
    y = (X[:, 0] > 0).astype(np.int8)
    model = MLP([50, 8, 1], lr=0.01, seed=0, dtype=dtype)
    peak = peak_during(lambda: model.train(X, y, epochs=1, batch_size=256, verbose=False))
    # What a fit allocates per sample: the targets in the model's dtype and the shuffled
    # order with the identity it is drawn from (16 bytes): a fifth of X here, never a copy.
    assert peak < 0.25 * X.nbytes, (peak, X.nbytes)
    # The other dtype must be converted, which does cost a copy: the measure sees copies.
    other = X.astype(np.float32 if dtype == np.float64 else np.float64)
    peak_converted = peak_during(lambda: model.train(other, y, epochs=1, batch_size=256,
                                                     verbose=False))
    assert peak_converted > 0.45 * X.nbytes


def test_two_fits_in_two_threads_run_at_the_same_time():
    """Training releases the GIL for the whole epoch loop, so two fits overlap in time (the
    speed-up itself is measured by the benchmark suite, not here)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 16))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    inside = []

    def fit(seed):
        model = MLP([16, 64, 64, 1], lr=0.05, seed=seed)
        start = time.perf_counter()
        model.train(X, y, epochs=40, batch_size=16, verbose=False)
        inside.append((start, time.perf_counter()))

    fit(0)                                     # warm up
    inside.clear()
    threads = [threading.Thread(target=fit, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = inside
    overlap = min(a1, b1) - max(a0, b0)
    # Had either fit held the GIL, the other could not have run meanwhile: the two intervals
    # (one kernel call each) would not overlap beyond thread start-up. They overlap for a
    # large part of the shorter one, even when the OS runs other work on the two cores.
    assert overlap > 0.3 * min(a1 - a0, b1 - b0), (a0, a1, b0, b1)
