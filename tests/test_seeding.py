"""``fastmlp._seeding``: generators in default_rng(seed)'s state, made without SeedSequence's
NumPy code, must be NumPy's own generators bit for bit."""
import copy
import pickle

import numpy as np
import pytest

from fastmlp import MLP, _seeding

SEEDS = [0, 1, 2, 5, 42, 2**31 - 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**64 + 7, 2**127 + 3,
         3**200]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_words", [1, 3, 4, 9])
def test_seed_words_are_seedsequences(seed, n_words):
    for dtype in (np.uint32, np.uint64, "uint64"):
        ours = _seeding.seed_words(seed, n_words, dtype)
        theirs = np.random.SeedSequence(seed).generate_state(n_words, dtype)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="uint32 or uint64"):
        _seeding.seed_words(seed, 2, np.int64)


@pytest.mark.parametrize("seed", SEEDS)
def test_generator_streams_equal_default_rng(seed):
    ours, theirs = _seeding.generator(seed), np.random.default_rng(seed)
    assert isinstance(ours, np.random.Generator)
    assert ours.bit_generator.state == theirs.bit_generator.state
    np.testing.assert_array_equal(ours.normal(size=50), theirs.normal(size=50))
    np.testing.assert_array_equal(ours.permutation(33), theirs.permutation(33))
    assert ours.integers(2**63) == theirs.integers(2**63)


def test_generator_behaves_as_default_rngs_elsewhere():
    rng = _seeding.generator(11)
    reference = np.random.default_rng(11)
    # spawn, the seed sequence's fields, pickling and copies: those of SeedSequence(11)
    for child, expected in zip(rng.spawn(2), reference.spawn(2)):
        np.testing.assert_array_equal(child.random(4), expected.random(4))
    assert rng.bit_generator.seed_seq.entropy == 11
    restored = pickle.loads(pickle.dumps(rng))
    assert type(restored.bit_generator.seed_seq) is np.random.SeedSequence
    np.testing.assert_array_equal(restored.random(5), reference.random(5))
    twin = copy.deepcopy(rng)
    np.testing.assert_array_equal(twin.random(3), rng.random(3))
    # anything but an int >= 0 is default_rng's own
    for seed in (None, np.int64(3), [1, 2], np.random.SeedSequence(4)):
        assert isinstance(_seeding.generator(seed), np.random.Generator)
    with pytest.raises(ValueError):
        _seeding.generator(-1)
    assert _seeding.generator(True).bit_generator.state == \
        np.random.default_rng(True).bit_generator.state


def test_models_draw_as_with_default_rng():
    for sizes, kwargs in [([3, 5, 2], {}), ([4, 6, 6, 1], {"hidden_activation": "tanh"}),
                          ([2, 3, 1], {"init": "glorot_uniform"})]:
        model = MLP(sizes, seed=9, **kwargs)
        rng = np.random.default_rng(9)
        twin = MLP(sizes, seed=rng, **kwargs)          # seeded by NumPy's own generator
        for ours, theirs in zip(model.W, twin.W):
            np.testing.assert_array_equal(ours, theirs)
        assert model._rng.bit_generator.state == rng.bit_generator.state


def test_a_numpy_that_seeds_otherwise_gets_default_rng(monkeypatch):
    monkeypatch.setattr(_seeding, "_MATCH", [False])
    rng = _seeding.generator(3)
    assert type(rng.bit_generator.seed_seq) is np.random.SeedSequence
    monkeypatch.setattr(_seeding, "_MATCH", [])
    monkeypatch.setattr(_seeding, "seed_words", lambda *a, **k: np.zeros(4, np.uint64))
    assert not _seeding._words_match()


def test_deep_copies_of_models_and_their_generators():
    model = MLP([2, 3, 1], seed=4, dropout=0.5)
    model._rng.random(3)                                  # a state past the seed's start
    spawned = _seeding.generator(6)
    spawned.spawn(1)                                      # its seed sequence was used
    shared = np.random.default_rng(8)
    for rng in (model._rng, spawned, shared, np.random.Generator(np.random.MT19937(1))):
        twin = _seeding.copy_generator(rng, {})
        assert twin is not rng and twin.bit_generator is not rng.bit_generator
        if type(rng.bit_generator) is np.random.PCG64:
            assert twin.bit_generator.state == rng.bit_generator.state
        assert twin.bit_generator.seed_seq.entropy == rng.bit_generator.seed_seq.entropy
        np.testing.assert_array_equal(twin.random(4), rng.random(4))
    assert spawned.spawn(1)[0].bit_generator.seed_seq.spawn_key == (1,)
    # the model's copy: its own generator in the same state; a memo keeps shared objects shared
    twin = copy.deepcopy(model)
    assert twin._rng is not model._rng
    assert twin._rng.bit_generator.state == model._rng.bit_generator.state
    a, b = MLP([2, 3, 1], seed=shared), MLP([2, 3, 1], seed=shared)
    copies = copy.deepcopy([a, b, a])
    assert copies[0] is copies[2] and copies[0]._rng is copies[1]._rng is not shared
