"""Generators in the state ``numpy.random.default_rng(seed)`` starts in, made cheaply.

``default_rng(seed)`` runs ``SeedSequence(seed)``: a hash of the seed's 32-bit words into a pool
and out again into the bit generator's starting words. NumPy writes it with NumPy arrays and
scalars, so it costs ~15 us warm, and ~300 us on a machine whose caches were emptied while the
script slept (its code and data spread over many pages): more than the rest of a small model's
construction. For a non-negative int seed this module computes the same words with Python ints
(``seed_words``) and hands them to ``PCG64`` through a seed sequence that only returns them
(``_SeedWords``): the same generator, bit for bit, checked against NumPy once per process
(``_words_match``; a NumPy that seeds otherwise some day gets ``default_rng`` itself).

``seeded_generator``/``spare_generator``: one train call's generator for its ``shuffle_seed``,
a spare one set to the seed's remembered starting state.
"""
import copy
import functools
import threading

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

# NumPy's SeedSequence constants (numpy/random/bit_generator.pyx): the pool of 4 32-bit words.
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_MASK32 = 0xFFFFFFFF
_POOL_SIZE = 4


@functools.lru_cache(maxsize=256)
def _pool(seed):
    """SeedSequence(seed).pool for an int seed >= 0, as a tuple of 4 ints < 2**32."""
    entropy = []
    while seed:
        entropy.append(seed & _MASK32)
        seed >>= 32
    entropy = entropy or [0]
    h = _INIT_A

    def hashmix(value):
        nonlocal h
        value ^= h
        h = (h * _MULT_A) & _MASK32
        value = (value * h) & _MASK32
        return value ^ (value >> 16)

    def mix(x, y):
        result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
        return result ^ (result >> 16)

    pool = [hashmix(entropy[i] if i < len(entropy) else 0) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL_SIZE, len(entropy)):
        for dst in range(_POOL_SIZE):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    return tuple(pool)


def seed_words(seed, n_words, dtype=np.uint32):
    """``numpy.random.SeedSequence(seed).generate_state(n_words, dtype)`` for an int seed >= 0,
    computed with Python ints.

    Examples
    --------
    >>> import numpy as np
    >>> bool((seed_words(7, 4, np.uint64)
    ...       == np.random.SeedSequence(7).generate_state(4, np.uint64)).all())
    True
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint64:
        count = 2 * n_words
    elif dtype == np.uint32:
        count = n_words
    else:
        raise ValueError("only support uint32 or uint64")
    pool = _pool(seed)
    h = _INIT_B
    words = []
    for i in range(count):
        value = pool[i % _POOL_SIZE] ^ h
        h = (h * _MULT_B) & _MASK32
        value = (value * h) & _MASK32
        words.append(value ^ (value >> 16))
    if dtype == np.uint64:
        return np.array([words[i] | (words[i + 1] << 32) for i in range(0, count, 2)],
                        dtype=np.uint64)
    return np.array(words, dtype=np.uint32)


class _SeedWords(ISpawnableSeedSequence):
    """The seed sequence of a generator made by ``generator``: ``generate_state`` from
    ``seed_words``; everything else (``spawn``, ``entropy``, ``state``...) and pickling as
    ``SeedSequence(seed)``, made when first asked for."""

    def __init__(self, seed):
        self._seed = seed
        self._full = None

    def generate_state(self, n_words, dtype=np.uint32):
        if self._full is not None:
            return self._full.generate_state(n_words, dtype)
        return seed_words(self._seed, n_words, dtype)

    def _sequence(self):
        if self._full is None:
            self._full = np.random.SeedSequence(self._seed)
        return self._full

    def spawn(self, n_children):
        return self._sequence().spawn(n_children)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_seed", "_full"):
            raise AttributeError(name)
        return getattr(self._sequence(), name)

    def __repr__(self):
        return repr(self._sequence())

    def __reduce__(self):
        return self._sequence().__reduce__()


def copy_generator(rng, memo=None):
    """``copy.deepcopy(rng, memo)``; for a generator made by ``generator`` (and not spawned
    from), a new one of the same seed set to the same state, without NumPy's pickling (which
    seeds a new bit generator from the operating system's entropy first)."""
    bit_generator = getattr(rng, "bit_generator", None)
    sequence = getattr(bit_generator, "seed_seq", None)
    if (type(rng) is np.random.Generator and type(bit_generator) is np.random.PCG64
            and type(sequence) is _SeedWords and sequence._full is None):
        new = np.random.Generator(np.random.PCG64(_SeedWords(sequence._seed)))
        new.bit_generator.state = bit_generator.state
        if memo is not None:
            memo[id(rng)] = new
        return new
    return copy.deepcopy(rng, memo)


# Whether seed_words gives what this NumPy's SeedSequence gives (checked at first use).
_MATCH = []
_MATCH_LOCK = threading.Lock()


def _words_match():
    if not _MATCH:
        with _MATCH_LOCK:
            if not _MATCH:
                try:
                    seeds = (0, 1, 42, 2**32 - 1, 2**32, 2**64 + 12345, 3**90)
                    ok = all(np.array_equal(seed_words(s, 4, np.uint64),
                                            np.random.SeedSequence(s).generate_state(4, np.uint64))
                             for s in seeds)
                    ok = ok and np.random.Generator(np.random.PCG64(_SeedWords(5))).integers(
                        2**62, size=4).tolist() == \
                        np.random.default_rng(5).integers(2**62, size=4).tolist()
                except Exception:       # a NumPy without ISpawnableSeedSequence's interface
                    ok = False
                _MATCH.append(ok)
    return _MATCH[0]


def generator(seed):
    """``numpy.random.default_rng(seed)``: for an int seed >= 0 (not a bool), the same
    generator made without running ``SeedSequence``'s NumPy code (see the module's docstring).

    Examples
    --------
    >>> import numpy as np
    >>> generator(3).integers(100, size=3).tolist() == \\
    ...     np.random.default_rng(3).integers(100, size=3).tolist()
    True
    """
    if type(seed) is int and seed >= 0 and _words_match():
        return np.random.Generator(np.random.PCG64(_SeedWords(seed)))
    return np.random.default_rng(seed)


# The orders of a train call with a shuffle_seed come from a generator in the state
# default_rng(shuffle_seed) starts in: a pure function of the seed, kept here, set on a spare
# generator.
_SEEDED_STATES = {}
_SPARE_GENERATORS = []


def seeded_generator(seed):
    """A ``numpy.random.Generator`` in the state ``numpy.random.default_rng(seed)`` starts
    in, for one train call's orders; hand it to ``spare_generator`` when done with it."""
    state = _SEEDED_STATES.get(seed)
    if state is not None:
        try:
            rng = _SPARE_GENERATORS.pop()
        except IndexError:
            pass
        else:
            rng.bit_generator.state = state
            return rng
    rng = generator(seed)
    if state is None:
        if len(_SEEDED_STATES) >= 64:
            _SEEDED_STATES.clear()
        _SEEDED_STATES[seed] = rng.bit_generator.state
    return rng


def spare_generator(rng):
    if len(_SPARE_GENERATORS) < 4:
        _SPARE_GENERATORS.append(rng)
