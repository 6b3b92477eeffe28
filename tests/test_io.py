"""Model files (fastmlp.io): exact round trips for every task, resumable training, atomic
writes, and clear errors for files that are truncated, corrupted, edited, foreign or newer."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.io import FORMAT_NAME, FORMAT_VERSION, _digest
from fastmlp.schedules import LambdaSchedule


def _data(task, n=60, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    if task == "binary":
        y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    elif task == "multiclass":
        y = np.array(["cat", "dog", "emu"])[np.argmax(X[:, :3] + 0.3 * rng.normal(size=(n, 3)), axis=1)]
    elif task == "multilabel":
        y = (X[:, :3] + 0.3 * rng.normal(size=(n, 3)) > 0).astype(int)
    elif task == "regression":
        y = X @ rng.normal(size=n_features) + 0.1 * rng.normal(size=n)
    else:
        y = X @ rng.normal(size=(n_features, 2))
    return X, y


# Every task, with settings that exercise every part of the stored configuration and state.
CASES = {
    "binary": ("binary", dict(layer_sizes=[4, 6, 1], lr=0.3, l2=0.01)),
    "multiclass_strings": ("multiclass", dict(
        layer_sizes=[4, 8, 3], optimizer=fastmlp.optimizers.Momentum(0.8), label_smoothing=0.1,
        hidden_activation=[("leaky_relu", 0.2)], schedule=fastmlp.schedules.Cosine(10))),
    "multilabel": ("multilabel", dict(
        layer_sizes=[4, 7, 5, 3], loss="binary_crossentropy", optimizer="rmsprop", l1=0.001, lr=0.01,
        hidden_activation=["tanh", ("elu", 0.5)], init="xavier_uniform", clip_value=0.5)),
    "regression": ("regression", dict(
        layer_sizes=[4, 6, 1], loss="huber", huber_delta=0.7, lr=0.01,
        optimizer=fastmlp.optimizers.AdamW(weight_decay=0.05),
        schedule=fastmlp.schedules.StepDecay(2, gamma=0.5))),
    "regression_multi_output": ("regression_multi", dict(
        layer_sizes=[4, 6, 2], loss="squared_error", optimizer="nesterov", lr=0.01, lr_decay=0.9,
        clip_norm=1.0, dtype=np.float32)),
    "batch_norm_dropout_adam": ("multiclass", dict(
        layer_sizes=[4, 8, 6, 3], optimizer="adam", lr=0.01, batch_norm=[True, False],
        dropout=[0.2, 0.1], early_stopping=True, patience=3, validation_fraction=0.2,
        schedule="plateau", hidden_activation="gelu")),
}


def _trained(case, epochs=4):
    task, kwargs = CASES[case]
    X, y = _data(task)
    model = MLP(seed=5, **kwargs)
    model.train(X, y, epochs=epochs, batch_size=16, verbose=False)
    return model, X, y


def _save_all_ways(model, tmp_path):
    """Save with fastmlp.io.save, and with MLP.save when the model has it; the files agree."""
    path = tmp_path / "model.npz"
    fastmlp.io.save(model, path)
    if hasattr(model, "save"):
        other = tmp_path / "via_method.npz"
        model.save(other)
        assert other.read_bytes() == path.read_bytes()
    return path


def _assert_same_state(loaded, model):
    for name in ("params", "bn_state", "_opt_state", "_step"):
        a, b = getattr(loaded, name), getattr(model, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    if model.classes_ is None:
        assert loaded.classes_ is None
    else:
        assert loaded.classes_.dtype == model.classes_.dtype
        assert np.array_equal(loaded.classes_, model.classes_)
    assert loaded.history == model.history
    assert repr(loaded) == repr(model)
    for name in ("sizes", "base_lr", "lr", "l1", "l2", "lr_decay", "loss_name", "dtype",
                 "optimizer", "clip_norm", "clip_value", "dropout", "batch_norm", "init",
                 "label_smoothing", "huber_delta", "early_stopping", "validation_fraction",
                 "patience", "min_delta", "hidden_activation"):
        assert getattr(loaded, name) == getattr(model, name), name


@pytest.mark.parametrize("case", CASES)
def test_round_trip_predicts_exactly_and_resumes_training_exactly(case, tmp_path):
    model, X, y = _trained(case)
    path = _save_all_ways(model, tmp_path)
    loaded = fastmlp.load(path)

    _assert_same_state(loaded, model)
    assert np.array_equal(loaded.forward(X), model.forward(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype == model.predict(X).dtype

    # Optimizer state, step, generator and rate are restored: training on continues identically
    # (same shuffle orders, dropout masks, Adam bias correction, validation split).
    model.train(X, y, epochs=3, batch_size=16, verbose=False)
    loaded.train(X, y, epochs=3, batch_size=16, verbose=False)
    assert np.array_equal(loaded.params, model.params)
    assert np.array_equal(loaded.bn_state, model.bn_state)
    assert loaded.history == model.history


def test_untrained_model_round_trips(tmp_path):
    model = MLP([3, 4, 2], seed=0, loss="categorical_crossentropy")
    path = _save_all_ways(model, tmp_path)
    loaded = fastmlp.load(path)
    _assert_same_state(loaded, model)


def test_the_file_is_a_documented_npz_without_pickles(tmp_path):
    model, X, y = _trained("multiclass_strings")
    path = _save_all_ways(model, tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["bn_state", "classes", "metadata", "opt_state",
                                         "params", "sha256", "step"]
        metadata = json.loads(archive["metadata"].tobytes().decode("utf-8"))
        assert archive["classes"].dtype.kind == "U"
        assert np.array_equal(archive["params"], model.params)
    assert metadata["format"] == FORMAT_NAME and metadata["format_version"] == FORMAT_VERSION == 1
    assert metadata["fastmlp_version"] == fastmlp.__version__
    config = metadata["config"]
    assert config["layer_sizes"] == [4, 8, 3]
    assert config["optimizer"] == {"name": "momentum", "params": {"momentum": 0.8}}
    assert config["schedule"] == {"name": "cosine",
                                  "params": {"total_epochs": 10, "min_lr": 0.0, "warmup_epochs": 0}}
    assert config["hidden_activation"] == [{"name": "leaky_relu", "param": 0.2}]
    # The file holds no pickle: every member loads with allow_pickle=False, which would refuse
    # object arrays, and the zip holds only .npy members.
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted(
        f"{n}.npy" for n in ["bn_state", "classes", "metadata", "opt_state", "params", "sha256",
                             "step"])


def test_path_is_used_exactly_and_existing_file_replaced(tmp_path):
    model, X, y = _trained("binary")
    path = tmp_path / "no_suffix"
    fastmlp.io.save(model, str(path))
    assert os.listdir(tmp_path) == ["no_suffix"]
    first = path.read_bytes()
    model.train(X, y, epochs=1, verbose=False)
    fastmlp.io.save(model, path)
    assert path.read_bytes() != first
    assert np.array_equal(fastmlp.load(path).params, model.params)
    assert os.listdir(tmp_path) == ["no_suffix"]


def test_new_file_gets_the_usual_permissions_and_replacement_keeps_them(tmp_path):
    model = MLP([2, 1], seed=0)
    umask = os.umask(0o022)
    try:
        fastmlp.io.save(model, tmp_path / "a.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    os.chmod(tmp_path / "a.npz", 0o600)
    fastmlp.io.save(model, tmp_path / "a.npz")
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o600


def test_object_labels_that_are_strings_are_stored_as_strings(tmp_path):
    X, y = _data("multiclass")
    model = MLP([4, 5, 3], seed=0).fit(X, y.astype(object), epochs=2, verbose=False)
    assert model.classes_.dtype == object
    fastmlp.io.save(model, tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.classes_.dtype.kind == "U"
    assert loaded.predict(X).tolist() == model.predict(X).tolist()


# --------------------------------------------------------------------------------------------
# What cannot be saved: refused before anything is written
# --------------------------------------------------------------------------------------------

def test_function_schedule_refuses_to_save(tmp_path):
    model = MLP([2, 3, 1], seed=0, schedule=lambda epoch: 0.1 / epoch)
    assert isinstance(model.schedule, LambdaSchedule)
    with pytest.raises(ValueError, match="named schedule"):
        fastmlp.io.save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_custom_optimizer_refuses_to_save(tmp_path):
    class Mine(fastmlp.optimizers.SGD):
        pass

    with pytest.raises(ValueError, match="built-in optimizers"):
        fastmlp.io.save(MLP([2, 1], seed=0, optimizer=Mine()), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_unstorable_object_labels_refuse_to_save(tmp_path):
    model = MLP([2, 2], seed=0)
    model.classes_ = np.array([None, 1], dtype=object)
    with pytest.raises(ValueError, match="object dtype"):
        fastmlp.io.save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_save_needs_an_mlp(tmp_path):
    with pytest.raises(TypeError, match="fastmlp.MLP"):
        fastmlp.io.save({"W": [1]}, tmp_path / "m.npz")


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------

def _fail_savez_mid_way(file, **arrays):
    """Write part of an archive, as a crash would, then fail."""
    file.write(b"PK\x03\x04 half an archive")
    raise OSError("disk full")


@pytest.mark.parametrize("breaks", ["savez", "replace", "fsync"])
def test_failing_save_leaves_old_file_intact_and_no_temporary_files(breaks, tmp_path,
                                                                     monkeypatch):
    old, X, y = _trained("binary")
    path = tmp_path / "model.npz"
    fastmlp.io.save(old, path)
    before = path.read_bytes()
    new = MLP([4, 6, 1], seed=99)

    def fail(*args, **kwargs):
        raise OSError(f"{breaks} failed")

    if breaks == "savez":
        monkeypatch.setattr(np, "savez", _fail_savez_mid_way)
    else:
        monkeypatch.setattr(os, breaks, fail)
    with pytest.raises(OSError):
        fastmlp.io.save(new, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]
    assert np.array_equal(fastmlp.load(path).params, old.params)


def test_interrupted_save_cleans_up(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fastmlp.io.save(MLP([2, 1], seed=0), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Files that must not load
# --------------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    """A saved multi-class model: (path, model, the archive's members)."""
    model, X, y = _trained("multiclass_strings")
    path = tmp_path / "model.npz"
    fastmlp.io.save(model, path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    return path, model, members


def _rewrite(path, members, metadata=None, reseal=False):
    """Write ``members`` (with ``metadata`` as JSON if given) to ``path``; ``reseal``
    recomputes the checksum, as a careful editor would."""
    members = dict(members)
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        members["metadata"] = np.frombuffer(text.encode(), dtype=np.uint8)
    if reseal:
        members.pop("sha256")
        members["sha256"] = np.array(_digest(members))
    np.savez(path, **members)


def _metadata(members):
    return json.loads(members["metadata"].tobytes().decode())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        fastmlp.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_truncated_file(saved, keep):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"cannot load .*model\.npz.*truncated"):
        fastmlp.load(path)


def test_flipped_byte_inside_the_archive(saved):
    path, model, _ = saved
    data = bytearray(path.read_bytes())
    marker = model.params.tobytes()[:16]
    at = bytes(data).index(marker)
    data[at + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted or was modified"):
        fastmlp.load(path)


def test_changed_array_with_the_old_checksum(saved):
    path, model, members = saved
    params = members["params"].copy()
    params[7] += 1e-12
    _rewrite(path, dict(members, params=params))
    with pytest.raises(ValueError, match="corrupted or was modified.*checksum"):
        fastmlp.load(path)


def test_edited_metadata_with_the_old_checksum(saved):
    path, model, members = saved
    metadata = _metadata(members)
    metadata["config"]["l2"] = 0.5
    _rewrite(path, members, metadata)
    with pytest.raises(ValueError, match="corrupted or was modified.*checksum"):
        fastmlp.load(path)


def test_bad_json(saved):
    path, _, members = saved
    _rewrite(path, members, '{"format": "fastmlp-model", ')
    with pytest.raises(ValueError, match="not valid JSON"):
        fastmlp.load(path)


def test_wrong_format_name(saved):
    path, _, members = saved
    _rewrite(path, members, dict(_metadata(members), format="keras-model"))
    with pytest.raises(ValueError, match="not a fastmlp model file.*keras-model"):
        fastmlp.load(path)


def test_future_format_version(saved):
    path, _, members = saved
    _rewrite(path, members, dict(_metadata(members), format_version=FORMAT_VERSION + 1),
             reseal=True)
    with pytest.raises(ValueError, match="newer fastmlp.*format version 2.*Upgrade"):
        fastmlp.load(path)


def test_missing_member(saved):
    path, _, members = saved
    members = dict(members)
    del members["opt_state"]
    _rewrite(path, members)
    with pytest.raises(ValueError, match="lacks opt_state"):
        fastmlp.load(path)


def test_arrays_that_do_not_fit_the_configuration(saved):
    path, _, members = saved
    metadata = _metadata(members)
    metadata["config"]["layer_sizes"] = [4, 9, 3]
    _rewrite(path, members, metadata, reseal=True)
    with pytest.raises(ValueError, match=r"inconsistent: params has dtype float64 and shape "
                                         r"\(67,\); the stored configuration needs .*\(75,\)"):
        fastmlp.load(path)


def test_invalid_stored_setting(saved):
    path, _, members = saved
    metadata = _metadata(members)
    metadata["config"]["optimizer"] = {"name": "adam", "params": {"beta1": 2.0}}
    _rewrite(path, members, metadata, reseal=True)
    with pytest.raises(ValueError, match="inconsistent: Adam: beta1 must be"):
        fastmlp.load(path)


@pytest.mark.parametrize("content", [b"", b"hello, world\n", b"\x93NUMPY junk"],
                         ids=["empty", "text", "npy-magic"])
def test_files_that_are_not_archives(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot load .*not a fastmlp model file"):
        fastmlp.load(path)


def test_a_plain_npy_array(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.arange(3.0))
    with pytest.raises(ValueError, match="a single NumPy array"):
        fastmlp.load(path)


class _Payload:
    """Unpickling this would run code: it records that it ran."""

    ran = False

    def __reduce__(self):
        return (_Payload._run, ())

    @staticmethod
    def _run():
        _Payload.ran = True
        return "boom"


def test_pickled_member_is_refused_without_running_it(saved):
    path, _, members = saved
    with open(path, "wb") as f:
        np.savez(f, **dict(members, params=np.array([_Payload()], dtype=object)))
    assert b"_Payload" in path.read_bytes()
    with pytest.raises(ValueError, match="corrupted or was modified: member 'params'"):
        fastmlp.load(path)
    assert not _Payload.ran
    pickle.loads(pickle.dumps(_Payload()))           # the payload does run when unpickled
    assert _Payload.ran
    _Payload.ran = False


# --------------------------------------------------------------------------------------------
# Crafted files with the checksum recomputed: every stored value is checked as MLP and train
# check it, and every failure is a one-line ValueError naming the file
# --------------------------------------------------------------------------------------------

def _set(*keys_and_value):
    """A metadata edit: set the nested entry ``keys`` to ``value``."""
    *keys, value = keys_and_value

    def edit(metadata):
        target = metadata
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


# name: (metadata edit, changed members, the message expected)
CRAFTED = {
    "huge_layer_sizes": (_set("config", "layer_sizes", [10**6, 10**6, 3]), {},
                         r"make a model of 1000004000003 parameters.*MAX_MODEL_BYTES"),
    "layer_sizes_overflowing_64_bits": (_set("config", "layer_sizes", [2**62, 2**62, 3]), {},
                                        r"more than the 17179869184 this fastmlp loads"),
    "layer_sizes_beyond_the_stored_arrays": (
        _set("config", "layer_sizes", [4, 2**20, 3]), {},
        r"params has dtype float64 and shape \(67,\); the stored configuration needs float64 "
        r"and \(8388611,\)"),
    "unsorted_classes": (None, {"classes": np.array(["emu", "cat", "dog"])},
                         "classes must be distinct and sorted"),
    "duplicate_classes": (None, {"classes": np.array(["cat", "cat", "dog"])},
                          "classes must be distinct and sorted"),
    "nan_class": (None, {"classes": np.array([0.0, 1.0, np.nan])},
                  "classes must be distinct and sorted"),
    "structured_classes": (None, {"classes": np.zeros(3, dtype=[("a", "<i4")])},
                           "member 'classes' holds dtype"),
    "classes_of_a_binary_model": (_set("config", "loss", "binary_crossentropy"), {},
                                  "classes of shape .3,. do not fit"),
    "infinite_optimizer_state": (None, {"opt_state": np.full(67, np.inf)},
                                 "opt_state holds NaN or infinity"),
    "nan_parameter": (None, {"params": np.full(67, np.nan)}, "params holds NaN or infinity"),
    "negative_step": (None, {"step": np.array([-1])}, "step must be >= 0"),
    "lr_decay_with_a_schedule": (
        lambda m: (_set("config", "lr_decay", 0.5)(m),
                   _set("config", "schedule", {"name": "step", "params": {"step_size": 2}})(m)),
        {}, "give either lr_decay or schedule"),
    "cosine_min_lr_above_lr": (
        _set("config", "schedule", "params", "min_lr", 5.0), {},
        r"min_lr \(5.0\) exceeds the base learning rate"),
    "negative_lr": (_set("lr", -1.0), {}, "lr must be a finite number"),
    "lr_decay_above_one": (_set("config", "lr_decay", 1.5), {}, "lr_decay must be"),
    "negative_huber_delta": (_set("config", "huber_delta", -1.0), {}, "huber_delta must be"),
    "dropout_of_one": (_set("config", "dropout", [1.0]), {}, "dropout must be"),
    "unknown_optimizer": (_set("config", "optimizer", {"name": "lbfgs", "params": {}}), {},
                          "unknown optimizer 'lbfgs'"),
    "optimizer_params_not_an_object": (
        _set("config", "optimizer", {"name": "adam", "params": [1]}), {},
        "optimizer must be stored as"),
    "schedule_missing": (_set("config", "schedule", None), {}, "schedule must be stored as"),
    "config_not_an_object": (_set("config", [1, 2]), {}, "config must be an object"),
    "setting_missing": (lambda m: m["config"].pop("patience"), {},
                        "the configuration lacks patience"),
    "history_of_lists_of_lists": (_set("history", {"loss": [[1.0]]}), {},
                                  "history must be an object of lists of numbers"),
    "rng_array_of_objects": (
        _set("rng_state", {"bit_generator": "PCG64", "state": {"__array__": [1], "dtype": "|O"}}),
        {}, "PCG64 must have the entries"),
    "rng_state_missing": (_set("rng_state", None), {},
                          r"rng_state\) is invalid: it must be an object"),
    "extra_not_an_object": (_set("extra", [1]), {}, "'extra' must be a JSON object"),
    "params_of_two_dimensions": (None, {"params": np.zeros((67, 1))},
                                 r"params has dtype float64 and shape \(67, 1\)"),
    "params_of_float32": (None, {"params": np.zeros(67, dtype=np.float32)},
                          "params has dtype float32"),
    "step_of_two_entries": (None, {"step": np.zeros(2, dtype=np.int64)},
                            r"step has dtype int64 and shape \(2,\)"),
    "opt_state_of_another_optimizer": (
        _set("config", "optimizer", {"name": "adam", "params": {}}), {},
        r"opt_state has dtype float64 and shape \(67,\); the stored configuration needs "
        r"float64 and \(134,\)"),
    "unknown_member": (None, {"weights": np.zeros(3)}, "member 'weights.npy' that the format"),
    "object_member": (None, {"params": np.array([None] * 67, dtype=object)},
                      "corrupted or was modified"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_file_is_refused_with_one_line_naming_it(case, saved):
    path, _, members = saved
    edit, changed, message = CRAFTED[case]
    metadata = _metadata(members)
    if edit is not None:
        edit(metadata)
    with open(path, "wb") as f:              # object arrays need allow_pickle (np.savez's own)
        members = dict(members, **changed)
        members["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
        members.pop("sha256")
        if not any(a.dtype.hasobject for a in members.values()):
            members["sha256"] = np.array(_digest(members))
        np.savez(f, **members)
    with pytest.raises(ValueError, match=message) as excinfo:
        fastmlp.load(path)
    text = str(excinfo.value)
    assert "\n" not in text and text.startswith(f"cannot load {str(path)!r}: "), text


# --------------------------------------------------------------------------------------------
# The random generator's state: every NumPy bit generator round-trips; a crafted state is
# refused at load (NumPy's setters take some out-of-range values, and training then crashed)
# --------------------------------------------------------------------------------------------

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _saved_with(tmp_path, bit_generator):
    """A trained model drawing from ``bit_generator``, saved: (path, model, members)."""
    X, y = _data("multiclass")
    model = MLP([4, 5, 3], seed=np.random.Generator(getattr(np.random, bit_generator)(3)),
                dropout=[0.2])
    model.train(X, y, epochs=2, batch_size=16, verbose=False)
    path = tmp_path / f"{bit_generator}.npz"
    fastmlp.io.save(model, path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    return path, model, members


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_every_numpy_bit_generator_round_trips(bit_generator, tmp_path):
    path, model, _ = _saved_with(tmp_path, bit_generator)
    loaded = fastmlp.load(path)
    assert type(loaded._rng.bit_generator).__name__ == bit_generator
    assert json.dumps(loaded._rng.bit_generator.state, default=np.ndarray.tolist) == \
        json.dumps(model._rng.bit_generator.state, default=np.ndarray.tolist)
    X, y = _data("multiclass")
    model.train(X, y, epochs=2, batch_size=16, verbose=False)
    loaded.train(X, y, epochs=2, batch_size=16, verbose=False)
    assert np.array_equal(loaded.params, model.params)


def _array(values, dtype):
    return {"__array__": list(values), "dtype": dtype}


# name: (bit generator, edit of rng_state, the message expected)
CRAFTED_RNG = {
    "mt19937_pos_negative": ("MT19937", _set("state", "pos", -1),
                             r"MT19937's pos must be an integer from 0 to 624; got -1"),
    "mt19937_pos_beyond_the_key": ("MT19937", _set("state", "pos", 625), "MT19937's pos"),
    "mt19937_pos_far_beyond": ("MT19937", _set("state", "pos", 10**6), "MT19937's pos"),
    "mt19937_pos_float": ("MT19937", _set("state", "pos", 3.0), "MT19937's pos"),
    "mt19937_pos_bool": ("MT19937", _set("state", "pos", True), "MT19937's pos"),
    "mt19937_key_short": ("MT19937", _set("state", "key", _array(range(623), "<u4")),
                          r"MT19937's key must be an array of 624 32-bit unsigned integers"),
    "mt19937_key_of_bytes": ("MT19937", _set("state", "key", _array([1] * 624, "|u1")),
                             "MT19937's key must be"),
    "mt19937_key_negative": ("MT19937", _set("state", "key", _array([-1] * 624, "<i4")),
                             "MT19937's key must be"),
    "mt19937_key_too_large": ("MT19937", _set("state", "key", _array([2**32] * 624, "<u4")),
                              "MT19937's key must be"),
    "mt19937_key_floats": ("MT19937", _set("state", "key", _array([1.5] * 624, "<u4")),
                           "MT19937's key must be"),
    "mt19937_key_bad_dtype_name": ("MT19937", _set("state", "key", _array([1] * 624, "zz")),
                                   "MT19937's key must be"),
    "mt19937_key_a_plain_list": ("MT19937", _set("state", "key", [1] * 624),
                                 "MT19937's key must be"),
    "philox_buffer_pos_negative": ("Philox", _set("buffer_pos", -1),
                                   r"Philox's buffer_pos must be an integer from 0 to 4; got -1"),
    "philox_buffer_pos_beyond": ("Philox", _set("buffer_pos", 5), "Philox's buffer_pos"),
    "philox_buffer_pos_far_beyond": ("Philox", _set("buffer_pos", 2**40), "Philox's buffer_pos"),
    "philox_buffer_short": ("Philox", _set("buffer", _array([0] * 3, "<u8")),
                            r"Philox's buffer must be an array of 4 64-bit"),
    "philox_key_long": ("Philox", _set("state", "key", _array([0] * 3, "<u8")),
                        "Philox's key must be an array of 2 64-bit"),
    "philox_counter_of_uint32": ("Philox", _set("state", "counter", _array([0] * 4, "<u4")),
                                 "Philox's counter must be"),
    "philox_has_uint32_two": ("Philox", _set("has_uint32", 2), "Philox's has_uint32"),
    "pcg64_has_uint32_two": ("PCG64", _set("has_uint32", 2),
                             r"PCG64's has_uint32 must be an integer from 0 to 1; got 2"),
    "pcg64_has_uint32_negative": ("PCG64", _set("has_uint32", -1), "PCG64's has_uint32"),
    "pcg64_uinteger_too_large": ("PCG64", _set("uinteger", 2**32), "PCG64's uinteger"),
    "pcg64_state_negative": ("PCG64", _set("state", "state", -5), "PCG64's state"),
    "pcg64_state_beyond_128_bits": ("PCG64", _set("state", "state", 2**128), "PCG64's state"),
    "pcg64_inc_even": ("PCG64", _set("state", "inc", 2), "PCG64's inc must be odd"),
    "pcg64dxsm_inc_a_string": ("PCG64DXSM", _set("state", "inc", "7"), "PCG64DXSM's inc"),
    "sfc64_state_short": ("SFC64", _set("state", "state", _array([1, 2], "<u8")),
                          "SFC64's state must be an array of 4 64-bit"),
    "sfc64_has_uint32_large": ("SFC64", _set("has_uint32", 10**9), "SFC64's has_uint32"),
    "unknown_bit_generator": ("PCG64", _set("bit_generator", "RandomState"),
                              "unknown bit generator 'RandomState'"),
    "bit_generator_not_a_string": ("PCG64", _set("bit_generator", ["PCG64"]),
                                   "unknown bit generator"),
    "bit_generator_of_another_layout": ("PCG64", _set("bit_generator", "MT19937"),
                                        r"MT19937 must have the entries \['bit_generator', "
                                        r"'state'\]; got \['bit_generator', 'has_uint32'"),
    "entry_missing": ("Philox", lambda s: s.pop("buffer_pos"),
                      "Philox must have the entries"),
    "entry_unknown": ("SFC64", _set("extra", 1), "SFC64 must have the entries"),
    "state_not_an_object": ("MT19937", _set("state", [1, 2]),
                            "MT19937's state must have the entries"),
    "not_an_object": ("PCG64", None, "rng_state.* must be an object"),
}


@pytest.mark.parametrize("case", CRAFTED_RNG)
def test_crafted_generator_state_is_refused_at_load(case, tmp_path):
    bit_generator, edit, message = CRAFTED_RNG[case]
    path, _, members = _saved_with(tmp_path, bit_generator)
    metadata = _metadata(members)
    if edit is None:
        metadata["rng_state"] = "PCG64"
    else:
        edit(metadata["rng_state"])
    _rewrite(path, members, metadata, reseal=True)
    with pytest.raises(ValueError, match=message) as excinfo:
        fastmlp.load(path)
    text = str(excinfo.value)
    assert "\n" not in text and text.startswith(f"cannot load {str(path)!r}: "), text
    assert "random generator state (rng_state) is invalid" in text, text


@pytest.fixture
def saved_batch_norm(tmp_path):
    """A saved model with batch normalization: (path, model, the archive's members)."""
    model, X, y = _trained("batch_norm_dropout_adam")
    path = tmp_path / "model.npz"
    fastmlp.io.save(model, path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    return path, model, members


@pytest.mark.parametrize("value, message", [
    (-1e-3, "running variance of hidden layer 0 has negative entries"),
    (np.inf, "bn_state holds NaN or infinity"),
    (np.nan, "bn_state holds NaN or infinity")])
def test_running_variance_must_be_finite_and_not_negative(value, message, saved_batch_norm):
    path, model, members = saved_batch_norm
    bn_state = members["bn_state"].copy()
    assert model.running_var[0] is not None
    bn_state[8] = value                  # layer 0 (8 wide): running mean [0, 8), variance [8, 16)
    _rewrite(path, dict(members, bn_state=bn_state), reseal=True)
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


@pytest.mark.parametrize("optimizer, block", [("adagrad", 0), ("rmsprop", 0), ("adam", 1),
                                              ("adamw", 1)])
def test_accumulated_squared_gradients_must_not_be_negative(optimizer, block, tmp_path):
    """A file whose optimizer state has a negative sum of squared gradients (which training
    cannot produce, and whose square root would be NaN at the next step) is refused; the
    other blocks (Adam's first moments) may be negative."""
    X, y = _data("binary")
    model = MLP([X.shape[1], 5, 1], seed=5, optimizer=optimizer)
    model.train(X, y, epochs=2, batch_size=16, verbose=False)
    path = tmp_path / "model.npz"
    fastmlp.io.save(model, path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    n = model.params.size
    if block == 1:          # Adam's first moments are signed: a negative one loads
        assert members["opt_state"][:n].min() < 0
        fastmlp.load(path)
    state = members["opt_state"].copy()
    state[block * n + 3] = -1e-6
    _rewrite(path, dict(members, opt_state=state), reseal=True)
    with pytest.raises(ValueError, match=f"the {optimizer} optimizer's accumulated squared "
                                         f"gradients have negative entries"):
        fastmlp.load(path)


@pytest.mark.parametrize("depth", [100_000, fastmlp.io.MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_is_refused(depth, saved):
    path, _, members = saved
    text = json.dumps(_metadata(members))[:-1] + ', "extra": {"x": ' + "[" * depth + \
        "]" * depth + "}}"
    _rewrite(path, members, text, reseal=True)
    with pytest.raises(ValueError, match=f"metadata nests {depth + 2} levels deep"):
        fastmlp.load(path)


def test_nesting_within_the_limit_loads(saved):
    path, model, members = saved
    nested = 1
    for _ in range(fastmlp.io.MAX_JSON_DEPTH - 3):
        nested = [nested]
    _rewrite(path, members, dict(_metadata(members), extra={"x": nested}), reseal=True)
    loaded, extra = fastmlp.load(path, with_extra=True)
    assert extra == {"x": nested}
    _assert_same_state(loaded, model)


def test_save_refuses_extra_that_load_would_refuse(tmp_path):
    model = MLP([2, 1], seed=0)
    nested = []
    for _ in range(fastmlp.io.MAX_JSON_DEPTH):
        nested = [nested]
    with pytest.raises(ValueError, match="nests .* levels deep"):
        fastmlp.io.save(model, tmp_path / "m.npz", extra={"x": nested})
    with pytest.raises(ValueError, match="more than the"):
        fastmlp.io.save(model, tmp_path / "m.npz",
                        extra={"x": "a" * fastmlp.io.MAX_METADATA_BYTES})
    assert os.listdir(tmp_path) == []


_JSON_VALUES = [None, True, False, 0, -1, 1, 2**70, -2**70, 1e308, -1e-308, 0.5, "", "adam",
                [], [1, 2], [[1]], {}, {"name": "x"}, {"name": "adam", "params": {}}, float("nan")]


def _paths(value, prefix=()):
    """Every path (tuple of keys and indexes) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def test_random_edits_of_the_metadata_load_or_raise_one_line_value_errors(saved):
    """200 files, each with one metadata entry replaced by an arbitrary JSON value and the
    checksum recomputed: each loads (the value was acceptable) or raises a one-line
    ValueError naming the file; nothing else escapes."""
    path, _, members = saved
    rng = np.random.default_rng(20)
    original = _metadata(members)
    paths = [p for p in _paths(original) if p]
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(200):
        metadata = json.loads(json.dumps(original))
        *keys, last = paths[rng.integers(len(paths))]
        target = metadata
        for key in keys:
            target = target[key]
        target[last] = _JSON_VALUES[rng.integers(len(_JSON_VALUES))]
        _rewrite(path, members, metadata, reseal=True)
        try:
            fastmlp.load(path)
            outcomes["loaded"] += 1
        except ValueError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"cannot load {str(path)!r}")
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 0, outcomes


def test_random_damage_to_the_bytes_raises_one_line_value_errors(saved):
    path, _, _ = saved
    good = path.read_bytes()
    rng = np.random.default_rng(21)
    for _ in range(150):
        data = bytearray(good)
        kind = rng.integers(3)
        if kind == 0:                                   # flip a few bytes anywhere
            for at in rng.integers(len(data), size=rng.integers(1, 4)):
                data[at] ^= 1 << rng.integers(8)
        elif kind == 1:                                 # cut the file short
            del data[rng.integers(len(data)):]
        else:                                           # overwrite a run with noise
            at = rng.integers(len(data))
            data[at:at + 16] = rng.integers(256, size=16, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
        try:
            fastmlp.load(path)
        except ValueError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"cannot load {str(path)!r}")


def test_save_refuses_extra_nested_beyond_what_json_can_write(tmp_path):
    nested = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(ValueError, match="nests too deeply"):
        fastmlp.io.save(MLP([2, 1], seed=0), tmp_path / "m.npz", extra={"x": nested})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("oddity, message", [
    ("duplicate", "holds member 'params' twice"),
    ("bzip2", "compression method 12"),
    ("not_npy", "member 'notes.txt' that the format does not have")])
def test_zip_oddities_are_refused(oddity, message, saved):
    path, _, _ = saved
    with zipfile.ZipFile(path) as archive:
        original = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in original.items():
            method = zipfile.ZIP_BZIP2 if oddity == "bzip2" and name == "params.npy" else \
                zipfile.ZIP_STORED
            archive.writestr(name, data, compress_type=method)
        if oddity == "duplicate":
            with pytest.warns(UserWarning, match="Duplicate name"):
                archive.writestr("params.npy", original["params.npy"])
        elif oddity == "not_npy":
            archive.writestr("notes.txt", b"hello")
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


def test_metadata_made_to_slow_the_nesting_scan_is_refused_quickly(tmp_path):
    """An unterminated string of escaped quotes once made the scan quadratic (an hour for
    these 400 KB); it is linear. Run apart, so that a regression fails instead of hanging."""
    code = textwrap.dedent("""
        import sys, numpy as np, fastmlp
        path = sys.argv[1]
        fastmlp.io.save(fastmlp.MLP([2, 1], seed=0), path)
        with np.load(path) as archive:
            members = {name: archive[name] for name in archive.files}
        text = b'{"format": "' + b'\\\\"' * 200_000
        np.savez(path, **dict(members, metadata=np.frombuffer(text, dtype=np.uint8)))
        try:
            fastmlp.load(path)
        except ValueError as exc:
            print(exc)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    # From tmp_path: `python -c` in the checkout's folder would import the source tree.
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.npz")],
                            env=dict(os.environ, PYTHONPATH=root), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "the metadata is not valid JSON" in result.stdout, result.stdout + result.stderr


def test_history_best_epoch_and_the_old_metric_key(tmp_path):
    X, y = _data("multiclass")
    model = MLP([4, 8, 3], seed=0, early_stopping=True, patience=2, lr=0.5)
    model.train(X, y, epochs=60, verbose=False)
    assert model.best_epoch is not None and model.history["best_epoch"] == model.best_epoch
    path = tmp_path / "m.npz"
    fastmlp.io.save(model, path)
    loaded = fastmlp.load(path)
    assert loaded.best_epoch == model.best_epoch and loaded.history == model.history
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    metadata = _metadata(members)
    key = model._val_metric_key()
    metadata["history"]["val_metric"] = metadata["history"].pop(key)   # an older file
    _rewrite(path, members, metadata, reseal=True)
    assert fastmlp.load(path).history[key] == model.history[key]
    metadata["history"]["best_epoch"] = 0
    _rewrite(path, members, metadata, reseal=True)
    with pytest.raises(ValueError, match="best_epoch must be an epoch >= 1"):
        fastmlp.load(path)
