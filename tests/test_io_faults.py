"""Model files under faults and attack: FIFOs, devices, directories and symbolic links as
targets; saves killed by SIGKILL, a full disk, a save while another thread trains; files
crafted to exhaust memory (huge declared sizes, deflate bombs, oversized metadata)."""
import json
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastmlp
import fastmlp.io
from fastmlp import MLP
from fastmlp.io import _digest

# The directory holding the fastmlp being tested, for the subprocesses.
_IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
# Children start in an empty folder: `python -c` puts its working directory first on sys.path,
# and from the checkout's folder that would import the uncompiled source tree, not the fastmlp
# under test (whose location PYTHONPATH gives).
_CHILD_CWD = tempfile.mkdtemp(prefix="fastmlp-child-")


def _model(seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    model = MLP([4, 6, 3], seed=seed, optimizer="adam", batch_norm=True)
    model.train(X, y, epochs=2, batch_size=8, verbose=False)
    return model


def _same_state(a, b):
    return all(np.array_equal(getattr(a, n), getattr(b, n))
               for n in ("params", "bn_state", "_opt_state", "_step"))


def _run_python(code, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=_IMPORT_ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          env=env, cwd=_CHILD_CWD, capture_output=True, text=True,
                          timeout=timeout)


def _assert_one_line_naming(excinfo, path):
    message = str(excinfo.value)
    assert "\n" not in message and repr(str(path)) in message, message


# --------------------------------------------------------------------------------------------
# Targets that are not regular files
# --------------------------------------------------------------------------------------------

def _make_special(kind, path, monkeypatch):
    """Create a FIFO, a character device or a directory at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    elif os.geteuid() == 0:
        # A node for the null device (1, 3), made in the test's own directory: never /dev/null.
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        # Without the privilege to make device nodes, a regular file that stat reports as one.
        path.write_bytes(b"")
        real_stat, real_lstat = os.stat, os.lstat

        def as_device(real):
            def fake(p, *args, **kwargs):
                result = real(p, *args, **kwargs)
                if os.fspath(p) != str(path):
                    return result
                fields = list(result)
                fields[0] = stat.S_IFCHR | 0o600
                return os.stat_result(fields)
            return fake
        monkeypatch.setattr(os, "stat", as_device(real_stat))
        monkeypatch.setattr(os, "lstat", as_device(real_lstat))


def _kind_of(path):
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_save_refuses_a_target_that_is_not_a_regular_file(kind, tmp_path, monkeypatch):
    target = tmp_path / "target"
    _make_special(kind, target, monkeypatch)
    before = _kind_of(target)
    with pytest.raises(ValueError, match="not a regular file") as excinfo:
        fastmlp.io.save(_model(), target)
    _assert_one_line_naming(excinfo, target)
    assert _kind_of(target) == before                   # not replaced by a regular file
    assert sorted(os.listdir(tmp_path)) == ["target"]


def test_save_refuses_a_symbolic_link_and_leaves_link_and_target_alone(tmp_path):
    old = _model(0)
    real = tmp_path / "real.npz"
    fastmlp.io.save(old, real)
    before = real.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    with pytest.raises(ValueError, match="symbolic link.*realpath") as excinfo:
        fastmlp.io.save(_model(1), link)
    _assert_one_line_naming(excinfo, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == before
    # Saving to the resolved path updates the file the link points to.
    fastmlp.io.save(_model(1), os.path.realpath(link))
    assert _same_state(fastmlp.load(link), _model(1))
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


def test_save_refuses_a_dangling_symbolic_link(tmp_path):
    link = tmp_path / "link.npz"
    link.symlink_to(tmp_path / "elsewhere.npz")
    with pytest.raises(ValueError, match="symbolic link"):
        fastmlp.io.save(_model(), link)
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["link.npz"]


def _load_without_hanging(path, fifo):
    """What ``load(path)`` raises, failing (not hanging) if it blocks on the FIFO ``fifo``."""
    outcome = []

    def load():
        try:
            fastmlp.load(path)
            outcome.append(None)
        except BaseException as exc:                      # reported below
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    blocked = thread.is_alive()
    if blocked:                     # release the reader: open the other end and close it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    assert not blocked, "load blocked on a FIFO"
    return outcome[0]


def test_load_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    error = _load_without_hanging(fifo, fifo)
    assert isinstance(error, ValueError) and "not a regular file" in str(error)
    assert "FIFO" in str(error) and repr(str(fifo)) in str(error)


@pytest.mark.parametrize("kind", ["device", "directory"])
def test_load_refuses_devices_and_directories(kind, tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    _make_special(kind, target, monkeypatch)
    with pytest.raises(ValueError, match="not a regular file") as excinfo:
        fastmlp.load(target)
    _assert_one_line_naming(excinfo, target)


def test_load_follows_a_symbolic_link_to_a_model_but_not_to_a_fifo(tmp_path):
    model = _model()
    fastmlp.io.save(model, tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    assert _same_state(fastmlp.load(tmp_path / "link.npz"), model)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo.npz").symlink_to(tmp_path / "fifo")
    error = _load_without_hanging(tmp_path / "to_fifo.npz", tmp_path / "fifo")
    assert isinstance(error, ValueError) and "FIFO" in str(error)


# --------------------------------------------------------------------------------------------
# Temporary files: killed saves, stale temporaries, the write read back before the rename
# --------------------------------------------------------------------------------------------

_SAVE_IN_A_LOOP = """
    import sys
    import fastmlp, fastmlp.io
    path, anonymous = sys.argv[1], sys.argv[2] == "anonymous"
    fastmlp.io._USE_O_TMPFILE = fastmlp.io._USE_O_TMPFILE and anonymous
    model = fastmlp.MLP([100, 400, 400, 10], seed=0, optimizer="adam")
    i = 0
    while True:
        model.params[0] = i
        fastmlp.io.save(model, path)
        print(i, flush=True)
        i += 1
"""


@pytest.mark.parametrize("temporaries", ["anonymous", "named"])
def test_sigkill_during_save_keeps_the_old_file_and_leaves_no_temporary(temporaries, tmp_path):
    """A process saving a 5 MB model in a loop is killed at random moments: the file at the path
    always loads (one of the saved states), and the next save leaves only that file."""
    path = tmp_path / "model.npz"
    rng = random.Random(1234)
    for attempt in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_SAVE_IN_A_LOOP), str(path), temporaries],
            env=dict(os.environ, PYTHONPATH=_IMPORT_ROOT), cwd=_CHILD_CWD,
            stdout=subprocess.PIPE, text=True)
        try:
            first = child.stdout.readline()           # one complete save, then kill mid-way
            assert first.strip().isdigit(), "the saving process did not start"
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        survivor = fastmlp.load(path)                  # the previous file, whole
        assert survivor.sizes == [100, 400, 400, 10] and survivor.params[0] >= 0
        fastmlp.io.save(survivor, path)
        # The next save leaves no temporary behind. (With anonymous temporaries a kill can
        # still leave one in the instant between naming the finished file and renaming it
        # over the target; that save removes it too.)
        assert os.listdir(tmp_path) == ["model.npz"]


def test_save_removes_stale_temporaries_of_its_target_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        f".model.npz.{dead.pid}-0123abcd.fastmlp-tmp": False,       # a killed save: removed
        f".model.npz.{os.getppid()}-0123abcd.fastmlp-tmp": True,    # a live process's: kept
        f".other.npz.{dead.pid}-0123abcd.fastmlp-tmp": True,        # another target's: kept
        ".model.npz.notes.fastmlp-tmp": True,                       # not our pattern: kept
    }
    # Today's names: a tag of the target's name, not the name itself.
    tag, other = fastmlp.io._target_tag("model.npz"), fastmlp.io._target_tag("other.npz")
    names.update({
        f".fastmlp-{tag}-{dead.pid}-0123abcd.tmp": False,           # a killed save: removed
        f".fastmlp-{tag}-{os.getppid()}-0123abcd.tmp": True,        # a live process's: kept
        f".fastmlp-{other}-{dead.pid}-0123abcd.tmp": True,          # another target's: kept
        f".fastmlp-{tag}-{dead.pid}-notes.tmp": True,               # not our pattern: kept
    })
    for name in names:
        (tmp_path / name).write_bytes(b"PK half an archive")
    fastmlp.io.save(_model(), tmp_path / "model.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.npz"] + [name for name, kept in names.items() if kept])


@pytest.mark.parametrize("length", [200, 226, 240, 255])
@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous", "named"])
def test_a_file_name_of_any_length_the_system_takes_can_be_saved(length, anonymous, tmp_path,
                                                                 monkeypatch):
    """The temporary file's name is short and of fixed length: a target name of up to 255
    bytes (NAME_MAX) is saved and replaced; the temporaries of killed saves are still found."""
    monkeypatch.setattr(fastmlp.io, "_USE_O_TMPFILE", fastmlp.io._USE_O_TMPFILE and anonymous)
    path = tmp_path / ("m" * (length - 4) + ".npz")
    assert len(path.name) == length
    model = _model()
    fastmlp.io.save(model, path)
    fastmlp.io.save(model, path)                       # replacing it too
    assert _same_state(fastmlp.load(path), model)
    assert os.listdir(tmp_path) == [path.name]
    name = os.path.basename(fastmlp.io._temporary_name(str(tmp_path), str(path)))
    assert len(name) <= 40 and name.startswith(".fastmlp-"), name
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = name.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    (tmp_path / stale).write_bytes(b"PK half an archive")
    fastmlp.io.save(model, path)
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous", "named"])
def test_save_reads_the_file_back_before_replacing_the_old_one(anonymous, tmp_path,
                                                                monkeypatch):
    """Bytes written that differ from those checksummed (as when another thread changes the
    model during the write) are caught before the rename."""
    monkeypatch.setattr(fastmlp.io, "_USE_O_TMPFILE", fastmlp.io._USE_O_TMPFILE and anonymous)
    path = tmp_path / "model.npz"
    old = _model(0)
    fastmlp.io.save(old, path)
    before = path.read_bytes()
    real_savez = np.savez

    def savez_of_changed_params(f, **arrays):
        real_savez(f, **dict(arrays, params=arrays["params"] + 1.0))

    monkeypatch.setattr(np, "savez", savez_of_changed_params)
    with pytest.raises(ValueError, match="would not load.*checksum") as excinfo:
        fastmlp.io.save(_model(1), path)
    _assert_one_line_naming(excinfo, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_refuses_a_model_that_load_would_refuse(tmp_path):
    model = _model()
    model.params[3] = np.nan
    with pytest.raises(ValueError, match="would not load.*params holds NaN or infinity"):
        fastmlp.io.save(model, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_full_disk_keeps_the_old_file(tmp_path):
    """RLIMIT_FSIZE makes every write past 64 KiB fail (EFBIG), as a full disk does."""
    path = tmp_path / "model.npz"
    result = _run_python("""
        import resource, signal, sys
        import fastmlp, fastmlp.io
        path = sys.argv[1]
        fastmlp.io.save(fastmlp.MLP([4, 3, 1], seed=0), path)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # else the kernel kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            fastmlp.io.save(fastmlp.MLP([100, 400, 400, 10], seed=1), path)
        except Exception as exc:
            print(type(exc).__name__, exc)
        else:
            print("saved")
    """, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OSError"), result.stdout
    assert "File too large" in result.stdout and repr(str(path)) in result.stdout
    assert _same_state(fastmlp.load(path), MLP([4, 3, 1], seed=0))
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_while_another_thread_trains_writes_consistent_files(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3000, 20)), rng.integers(0, 4, 3000)
    model = MLP([20, 128, 128, 4], seed=0, optimizer="adam", batch_norm=True)
    stop, deadline = threading.Event(), time.monotonic() + 10
    errors = []

    def train():
        try:
            model.train(X, y, epochs=10**6, batch_size=16, verbose=False,
                        callbacks=[lambda m, e, logs: stop.is_set() or time.monotonic() > deadline])
        except BaseException as exc:                      # reported below
            errors.append(exc)

    thread = threading.Thread(target=train)
    thread.start()
    try:
        while len(model.history["loss"]) < 1 and thread.is_alive():
            time.sleep(0.01)
        during = 0
        for i in range(8):
            path = tmp_path / f"m{i}.npz"
            during += thread.is_alive()
            fastmlp.io.save(model, path)
            loaded = fastmlp.load(path)                  # the checksum matches
            assert np.all(np.isfinite(loaded.params))
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    # Without a lock on the model the saves ran during training; with one, a save may wait.
    assert during >= 4 or getattr(model, "_lock", None) is not None, \
        "training ended before the saves: the test proved nothing"
    assert sorted(os.listdir(tmp_path)) == sorted(f"m{i}.npz" for i in range(8))


# --------------------------------------------------------------------------------------------
# Files crafted to exhaust memory: refused before anything large is allocated
# --------------------------------------------------------------------------------------------

def _members(model):
    return {name: np.asarray(a) for name, a in fastmlp.io._serialize(model).items()}


def _write_zip(path, members, deflate=(), reseal=True):
    """An .npz of ``members`` (name -> array), the ``deflate`` ones compressed (written in
    streaming, so the test itself stays small), the checksum recomputed when ``reseal``."""
    members = dict(members)
    if reseal:
        members.pop("sha256", None)
        members["sha256"] = np.array(_digest(members))
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy")
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _peak_memory_of_load(path):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as excinfo:
            fastmlp.load(path)
        return tracemalloc.get_traced_memory()[1], excinfo
    finally:
        tracemalloc.stop()


_MB = 1 << 20


def test_a_small_file_claiming_a_huge_model_is_refused_before_allocating(tmp_path):
    members = _members(_model())
    meta = json.loads(members["metadata"].tobytes())
    meta["config"]["layer_sizes"] = [4, 1 << 24, 3]      # 117 M parameters, 2.8 GB with Adam
    members["metadata"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "model.npz"
    _write_zip(path, members)
    assert path.stat().st_size < 10_000
    peak, excinfo = _peak_memory_of_load(path)
    assert peak < 4 * _MB, peak
    assert "params has dtype float64 and shape" in str(excinfo.value)
    _assert_one_line_naming(excinfo, path)


@pytest.mark.parametrize("where", ["params", "unknown_member", "metadata"])
def test_deflate_bombs_are_not_decompressed(where, tmp_path):
    """48 MB of zeros deflated to 50 KB, as a member of the wrong size or as a member the
    format does not have; 20 MB of metadata (valid JSON padded with blanks, beyond the size
    limit) deflated to 20 KB."""
    members = _members(_model())
    if where == "params":
        members["params"] = np.zeros(6_000_000)
    elif where == "unknown_member":
        members["junk"] = np.zeros(6_000_000)
    else:
        text = members["metadata"].tobytes()
        members["metadata"] = np.frombuffer(text[:-1] + b" " * (20 * _MB) + b"}", np.uint8)
    path = tmp_path / "model.npz"
    _write_zip(path, members, deflate={"params", "junk", "metadata"})
    assert path.stat().st_size < 200_000
    peak, excinfo = _peak_memory_of_load(path)
    assert peak < 4 * _MB, peak
    _assert_one_line_naming(excinfo, path)
    assert {"params": "params has dtype float64 and shape (6000000,)",
            "unknown_member": "member 'junk.npy' that the format does not have",
            "metadata": "more than the 16777216 a model file may have"}[where] in \
        str(excinfo.value)


def test_a_member_that_claims_more_than_deflate_can_give_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    _write_zip(path, _members(_model()), deflate={"params"})
    data = bytearray(path.read_bytes())
    # params.npy's central directory entry: its uncompressed size is at offset 24, its name
    # at 46. Claim 4 GB there.
    at = bytes(data).index(b"PK\x01\x02")
    while data[at + 46:at + 56] != b"params.npy":
        at = bytes(data).index(b"PK\x01\x02", at + 1)
    data[at + 24:at + 28] = (0xFFFF0000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    peak, excinfo = _peak_memory_of_load(path)
    assert peak < 4 * _MB, peak
    assert f"member 'params' claims {0xFFFF0000} bytes from" in str(excinfo.value)
    _assert_one_line_naming(excinfo, path)


def test_a_small_compressed_file_of_a_consistent_huge_model_is_refused(tmp_path):
    """A model of 8.4 M zero parameters (67 MB), consistent with its metadata, deflated to
    70 KB: loading it would allocate 67 MB (and twice that building the model) from a file
    a thousand times smaller."""
    members = _members(MLP([4, 3], seed=0))
    meta = json.loads(members["metadata"].tobytes())
    meta["config"].update(layer_sizes=[200, 40_000, 10], hidden_activation="relu")
    members["metadata"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    members["params"] = np.zeros(200 * 40_000 + 40_000 + 40_000 * 10 + 10)
    path = tmp_path / "model.npz"
    _write_zip(path, members, deflate={"params"})
    assert path.stat().st_size < 200_000
    peak, excinfo = _peak_memory_of_load(path)
    assert peak < 4 * _MB, peak
    assert "expand to" in str(excinfo.value) and "at most 16 times" in str(excinfo.value)
    _assert_one_line_naming(excinfo, path)


def test_a_compressed_copy_of_a_real_model_loads(tmp_path):
    model = MLP([30, 200, 5], seed=0, optimizer="adam", batch_norm=True)  # zero Adam moments
    fastmlp.io.save(model, tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as archive:
        np.savez_compressed(tmp_path / "packed.npz", **{n: archive[n] for n in archive.files})
    assert (tmp_path / "packed.npz").stat().st_size < (tmp_path / "model.npz").stat().st_size
    assert _same_state(fastmlp.load(tmp_path / "packed.npz"), model)


def test_a_zip_directory_of_many_members_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.npy", b"")
        for i in range(100_000):                      # 9 MB of directory, 54 MB as ZipInfos
            archive.writestr(f"m{i}.npy", b"")
    peak, excinfo = _peak_memory_of_load(path)
    assert peak < 4 * _MB, peak
    # 7 members for a network's file, 2 more for a scikit-learn estimator's.
    assert "holds 100001 members; the format has at most 9" in str(excinfo.value)


def test_a_callback_can_save_the_model_it_is_training(tmp_path):
    """Checkpointing from a callback: save takes the model's lock (when it has one) from the
    thread that holds it for training, which must not deadlock."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, 64)
    model = MLP([4, 8, 3], seed=0, optimizer="adam")
    path = tmp_path / "checkpoint.npz"
    saved_epochs = []

    def checkpoint(m, epoch, logs):
        fastmlp.io.save(m, path)
        saved_epochs.append(epoch)

    thread = threading.Thread(target=lambda: model.train(X, y, epochs=3, batch_size=16,
                                                         verbose=False, callbacks=[checkpoint]),
                              daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "save from a callback deadlocked"
    assert saved_epochs == [1, 2, 3]
    assert _same_state(fastmlp.load(path), model)


def test_a_crafted_generator_state_cannot_crash_training(tmp_path):
    """NumPy's setters take MT19937's pos and Philox's buffer_pos unchecked, and drawing then
    reads and writes outside the generator's buffers: a file with such a state loaded, and
    training it killed the process. Load refuses it; the child must exit normally."""
    result = _run_python("""
        import json, sys
        import numpy as np
        import fastmlp, fastmlp.io
        from fastmlp.io import _digest
        path = sys.argv[1]
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, 64)
        cases = [("MT19937", ("state", "pos"), value) for value in (10**6, 625, -10**6, -1)]
        cases += [("Philox", ("buffer_pos",), value) for value in (10**6, 5, -10**6, -1)]
        for name, keys, value in cases:
            model = fastmlp.MLP([4, 8, 3], seed=np.random.Generator(getattr(np.random, name)(1)),
                                dropout=[0.1])
            fastmlp.io.save(model, path)
            with np.load(path) as archive:
                members = {n: archive[n] for n in archive.files}
            metadata = json.loads(members["metadata"].tobytes())
            target = metadata["rng_state"]
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
            members["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
            members.pop("sha256")
            members["sha256"] = np.array(_digest(members))
            np.savez(path, **members)
            try:
                loaded = fastmlp.load(path)
            except ValueError as exc:
                print("refused", name, value, "rng_state) is invalid" in str(exc), flush=True)
                continue
            print("loaded", name, value, flush=True)
            for _ in range(20):
                loaded.train(X, y, epochs=5, batch_size=8, verbose=False)
        """, tmp_path / "model.npz")
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and all(line.startswith("refused") and line.endswith("True")
                                   for line in lines), result.stdout
