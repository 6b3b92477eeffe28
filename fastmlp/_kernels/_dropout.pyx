"""Inverted dropout with masks from a counter-based generator.

Each element's keep/drop decision is a pure function of (seed, step, layer, element index), so a
mask is reproducible from its seed, needs no generator state, and ``fastmlp.reference`` computes
the very same masks with NumPy. The generator, in uint64 arithmetic (mod 2**64):

    mix(x):  x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB;
             x ^= x >> 31                         (the splitmix64 finalizer)
    key = mix(seed ^ mix(step * 1024 + layer))    one key per update step and layer
    u_i = (mix(key + (i + 1) * 0x9E3779B97F4A7C15) >> 11) * 2**-53
                                                  uniform in [0, 1), element i in row-major order

Element i is kept iff u_i >= rate; kept elements are scaled by 1 / (1 - rate) (computed in
double, then rounded to the array's dtype) and dropped ones by 0, so the expected value of each
element is unchanged. Layers are numbered 0..1023; ``step`` counts update steps.

This is not a cryptographic generator, nor a general random-number source: only the masks.
"""
import numpy as np

from cython cimport floating
from libc.math cimport ceil
from libc.stdint cimport int64_t, uint64_t

MAX_LAYERS = 1024


cdef inline uint64_t mix(uint64_t x) noexcept nogil:
    """The splitmix64 finalizer, a bijection of uint64 that scrambles every bit."""
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return x


cdef void dropout_apply(floating* A, floating* D, Py_ssize_t m, Py_ssize_t n_units, double rate,
                        unsigned long long seed, unsigned long long step, int layer) noexcept nogil:
    """A[j, r] := A[j, r] * s_i and, when D is not NULL, D[j, r] := D[j, r] * s_i, for the
    feature-major (n_units, m) block A (see ``_dense``), where i = r * n_units + j numbers the
    elements in the row-major order of the (m, n_units) batch, and s_i = 1/(1-rate) if element i
    is kept (u_i >= rate) and 0 if not. With n_units = 1 this is a flat array of m elements.
    Needs 0 <= rate < 1 and 0 <= layer < 1024."""
    cdef uint64_t key = mix(<uint64_t> seed ^ mix(<uint64_t> step * 1024 + <uint64_t> layer))
    # u_i = k * 2**-53 with k = bits >> 11 an integer, and rate * 2**53 is exact, so
    # u_i >= rate  <=>  k >= ceil(rate * 2**53): the same decision in integer arithmetic.
    cdef uint64_t threshold = <uint64_t> ceil(rate * 9007199254740992.0)
    cdef floating keep = <floating> (1.0 / (1.0 - rate))
    cdef floating s
    cdef uint64_t k
    cdef Py_ssize_t i, j, r
    for j in range(n_units):
        for r in range(m):
            i = r * n_units + j
            k = mix(key + <uint64_t> (i + 1) * 0x9E3779B97F4A7C15ULL) >> 11
            # kept = (k >= threshold) without a branch, which near rate 0.5 would be mispredicted
            # half the time (compilers turn a plain comparison into one): k, threshold <= 2**53,
            # so k - threshold wraps to a value with the top bit set exactly when k < threshold.
            s = keep * <floating> (1 - <int64_t> ((k - threshold) >> 63))
            A[j * m + r] *= s
            if D != NULL:
                D[j * m + r] *= s


def _check_args(rate, seed, step, layer):
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    for name, value in (("seed", seed), ("step", step)):
        if not 0 <= value < 2 ** 64:
            raise ValueError(f"{name} must be an integer in [0, 2**64), got {value}")
    if not 0 <= layer < MAX_LAYERS:
        raise ValueError(f"layer must be in [0, {MAX_LAYERS}), got {layer}")


def _dropout_flat(floating[::1] A, floating[::1] D, double rate, unsigned long long seed,
                  unsigned long long step, int layer):
    if A.shape[0] == 0:
        return
    cdef floating* d = NULL if D is None else &D[0]
    with nogil:
        dropout_apply(&A[0], d, A.shape[0], 1, rate, seed, step, layer)


def dropout_apply_py(A, D, rate, seed, step, layer):
    """Python twin of ``dropout_apply`` (tests): scale A, and D unless None, in place.

    Parameters
    ----------
    A : ndarray, float32 or float64, C-contiguous, writable
        Activations of any shape; element i in row-major order gets the scale s_i.
    D : ndarray like A, or None
        Scaled by the same s (e.g. the activation's derivative cache).
    rate : float
        Probability of dropping an element, in [0, 1).
    seed, step : int
        In [0, 2**64).
    layer : int
        In [0, 1024).

    Raises
    ------
    TypeError
        If A or D is not a C-contiguous float32/float64 ndarray, or their dtypes differ.
    ValueError
        If D's shape differs from A's or an argument is out of range.
    """
    for name, array in (("A", A), ("D", D)):
        if array is None and name == "D":
            continue
        if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64) \
                or not array.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous float32 or float64 ndarray (it is "
                            "modified in place; use np.ascontiguousarray first)")
    if D is not None:
        if D.shape != A.shape:
            raise ValueError(f"arrays have incompatible shapes: A {A.shape}, D {D.shape}")
        if D.dtype != A.dtype:
            raise TypeError(f"A ({A.dtype}) and D ({D.dtype}) must have one dtype")
    _check_args(rate, seed, step, layer)
    _dropout_flat(A.reshape(-1), None if D is None else D.reshape(-1), rate, seed, step, layer)


def dropout_scale_py(count, rate, seed, step, layer, dtype=np.float64):
    """The scale vector s (count,) of ``dropout_apply``: 1/(1-rate) where kept, 0 where dropped.

    Parameters
    ----------
    count : int
        Number of elements.
    rate, seed, step, layer : as in ``dropout_apply_py``.
    dtype : float32 or float64

    Returns
    -------
    s : ndarray of shape (count,)
    """
    s = np.ones(count, dtype=dtype)
    dropout_apply_py(s, None, rate, seed, step, layer)
    return s
