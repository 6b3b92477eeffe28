"""Model files: save a trained ``MLP`` and load it back, without executing code.

A model file is a NumPy ``.npz`` archive (an uncompressed zip of ``.npy`` arrays) that
``numpy.load(path, allow_pickle=False)`` opens. Nothing in it is pickled, so loading a file
reads numbers and text and never runs code from the file. It holds:

==============  =====================  =====================================================
member          dtype, shape           contents
==============  =====================  =====================================================
``metadata``    uint8, (n,)            UTF-8 JSON text, described below
``params``      model dtype, (P,)      the flat parameter buffer (``MLP.params``)
``bn_state``    model dtype, (S,)      batch-norm running means and variances
``opt_state``   model dtype, (k * P,)  the optimizer's state (velocity, Adam moments, ...)
``step``        int64, (1,)            updates made so far (Adam's bias correction)
``classes``     any non-object, (C,)   ``classes_``, present only when it is set
``sha256``      unicode, ()            hex SHA-256 of every other member (see ``_digest``)
==============  =====================  =====================================================

The metadata is a JSON object with ``"format": "fastmlp-model"``, ``"format_version": 1``,
``"fastmlp_version"``, ``"config"`` (the keyword arguments of ``MLP``: ``layer_sizes``,
``lr`` (the base rate), ``l2``, ``l1``, ``hidden_activation`` (a name, a pair written as
``{"name": ..., "param": ...}``, or a list of them), ``lr_decay``, ``dtype`` (``"float64"`` or
``"float32"``), ``loss``, ``optimizer`` and ``schedule`` (each ``{"name": ..., "params":
{...}}``), ``clip_norm``, ``clip_value``, ``dropout``, ``batch_norm``, ``init``,
``label_smoothing``, ``huber_delta``, ``early_stopping``, ``validation_fraction``,
``patience``, ``min_delta``), ``"lr"`` (the rate of the last epoch trained), ``"history"`` and
``"rng_state"`` (the state of the model's random generator, which draws the next shuffle orders
and dropout seed), and optionally ``"extra"``, a JSON object the caller stored with the model
(``save(..., extra=...)``; the command line keeps its preprocessing there). Floats are written
with Python's shortest round-tripping repr, so every number comes back bit for bit: a loaded
model predicts exactly what the saved one did, and training it further gives exactly the
parameters that training the original would have.

The checksum detects a truncated, corrupted or edited file; it is not a signature (anyone can
recompute it), and loading is safe without it since nothing in the file is executed.

**Loading an untrusted file** costs memory and time in proportion to the model the file really
holds, never to what it claims. ``load`` opens only regular files (a FIFO or a device is refused
without blocking on it), reads the zip directory first, parses the metadata (at most
``MAX_METADATA_BYTES``, nested at most ``MAX_JSON_DEPTH`` deep), computes from it the exact
dtype and shape of every array (in exact integer arithmetic, refusing models above
``MAX_MODEL_BYTES``), and compares each member's ``.npy`` header and declared size with them
before reading its data. The format is uncompressed; a copy repacked with deflate
(``numpy.savez_compressed``) is read too if it expands at most 16 times (real parameters hardly
compress), and decompression stops at the declared sizes. Every stored value is then checked as the
``MLP`` constructor and ``train`` check it, plus what only a file can get wrong: finite
parameters, optimizer state and running statistics, non-negative running variances, sorted
distinct classes, and a random generator state that NumPy's bit generator of that name (PCG64,
PCG64DXSM, MT19937, Philox or SFC64) can have: exactly its entries, integers in their ranges,
arrays of their lengths (NumPy itself takes some out-of-range positions, and drawing from them
then crashes the process). Whatever is wrong, ``load`` raises a one-line ``ValueError`` naming
the file.

**Saving** writes only to a regular file or a new path: a FIFO, a device node, a directory or a
symbolic link at the path is refused (``ValueError``). A symbolic link is refused rather than
followed because a save replaces the file at the path in one rename, which would replace the
link itself; following it instead would let whoever controls the link choose which file a save
overwrites. Save to the link's target (``os.path.realpath(path)``) to update it. A save is
atomic: the archive is written to a temporary file in the target's directory, flushed to disk,
read back and checked exactly as ``load`` checks it, then renamed over the target, so a crash,
a full disk or an error during a save leaves any previous file at that path as it was. Where
the system allows (Linux, ``O_TMPFILE``) the temporary file has no name until it is complete,
so a save killed while writing leaves nothing behind; elsewhere it is named
``.fastmlp-<tag>-<pid>-<random>.tmp`` (``<tag>``: 8 hex digits of a hash of the target's name;
about 40 characters, so a target name of any length the system takes can be saved), and
every save removes such files of the same target whose process is gone. The arrays are copied
before the checksum is computed, under the model's lock (``model._lock``) when it has one, so
saving while another thread trains the model writes a file that matches its checksum (without
a lock, the copy may catch the parameters and the optimizer state one update apart). The file
is written exactly at the path given (no suffix is added); ``.npz`` is the natural suffix.

What cannot be saved: a schedule given as a function (``LambdaSchedule``) or a user-defined
``Schedule`` or ``Optimizer`` subclass (they are code, not data), class labels of object dtype
that have no NumPy equivalent, and a model that ``load`` would refuse (non-finite parameters,
say). The state of a ``ReduceOnPlateau`` schedule is not saved; ``train`` resets it at the
start of every call anyway.
"""
import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import secrets
import stat
import zipfile

import numpy as np

from . import _estimator_io
from . import optimizers as _optimizers
from . import schedules as _schedules
from ._validation import check_flag as _check_flag
from ._validation import check_int as _check_int
from .mlp import MLP, _per_hidden

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION", "MAX_MODEL_BYTES",
           "MAX_METADATA_BYTES", "MAX_JSON_DEPTH"]

#: The ``"format"`` value of every fastmlp model file.
FORMAT_NAME = "fastmlp-model"
#: The version of the format this fastmlp writes, and the newest it reads.
FORMAT_VERSION = 1
#: The largest model ``load`` builds: bytes of parameters, running statistics and optimizer
#: state together (16 GiB). A file that declares more is refused before anything is allocated.
MAX_MODEL_BYTES = 1 << 34
#: The largest JSON metadata ``save`` writes and ``load`` reads (the history and ``extra``
#: are what grow): 16 MiB hold the history of 200,000 epochs with validation (about 80 bytes
#: an epoch). Parsed JSON takes up to some 20 times its size in memory; this bounds that too.
MAX_METADATA_BYTES = 16 << 20
#: How deeply the JSON metadata may nest (a model's own needs 5 levels).
MAX_JSON_DEPTH = 64

_CONFIG_KEYS = ("layer_sizes", "lr", "l2", "l1", "hidden_activation", "lr_decay", "dtype", "loss",
                "optimizer", "schedule", "clip_norm", "clip_value", "dropout", "batch_norm",
                "init", "label_smoothing", "huber_delta", "early_stopping",
                "validation_fraction", "patience", "min_delta")
# Deflate cannot compress better than 1032:1; a member claiming more is lying about its size.
_MAX_DEFLATE_RATIO = 1032
# The format is uncompressed; an archive repacked with deflate may expand this many times
# (trained parameters hardly compress: a real model expands 1 to 4 times) or to this size.
# Beyond, a small file could make load allocate gigabytes of zeros.
_MAX_EXPANSION, _EXPANSION_FLOOR = 16, 64 << 20
# The largest .npy header read (numpy's own default limit for untrusted headers).
_MAX_NPY_HEADER = 10000
# Bytes read from a member at a time: bounds the temporary copies, not the member.
_READ_CHUNK = 1 << 20
# Temporary files are named _TEMP_PREFIX + <tag>-<pid>-<random> + _TEMP_SUFFIX; earlier
# versions named them .<name>.<pid>-<random> + _OLD_TEMP_SUFFIX (too long for a long name).
_TEMP_PREFIX, _TEMP_SUFFIX, _OLD_TEMP_SUFFIX = ".fastmlp-", ".tmp", ".fastmlp-tmp"
# Anonymous temporary files (O_TMPFILE) where the system has them; the tests switch them off to
# exercise the named fallback.
_USE_O_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


class _Malformed(ValueError):
    """What is wrong with a file's contents, worded for the user; the caller names the file."""


def _one_line(text, limit=600):
    """``text`` on one line and at most ``limit`` characters (file contents can be long)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- configuration ----------------------------------------------------------------------------

def _constructor_arguments(model):
    """The keyword arguments of ``MLP`` that rebuild ``model``'s configuration, every one of
    its constructor's but ``seed``, as live objects (the optimizer and schedule instances
    themselves). ``lr`` is the base rate of the model's next ``train``. With ``lr_decay``
    set, ``schedule`` is None (``MLP`` takes one of the two) unless the model's schedule is
    not the constant one: then both are given and ``MLP`` refuses them, as ``train`` refuses
    the model."""
    schedule = model.schedule
    if model.lr_decay is not None and isinstance(schedule, _schedules.Constant):
        schedule = None
    return dict(layer_sizes=list(model.sizes), lr=model._next_base_lr(), l2=model.l2, l1=model.l1,
                hidden_activation=model.hidden_activation, lr_decay=model.lr_decay,
                dtype=model.dtype, loss=model.loss_name, optimizer=model.optimizer,
                schedule=schedule,
                clip_norm=model.clip_norm, clip_value=model.clip_value,
                dropout=list(model.dropout), batch_norm=list(model.batch_norm), init=model.init,
                label_smoothing=model.label_smoothing, huber_delta=model.huber_delta,
                early_stopping=model.early_stopping,
                validation_fraction=model.validation_fraction, patience=model.patience,
                min_delta=model.min_delta)


def _encode_activation(spec):
    if isinstance(spec, list):
        return [_encode_activation(s) for s in spec]
    if isinstance(spec, tuple) and len(spec) == 2:
        return {"name": spec[0], "param": spec[1]}
    return spec


def _decode_activation(spec):
    if isinstance(spec, list):
        return [_decode_activation(s) for s in spec]
    if isinstance(spec, dict):
        return (spec["name"], spec["param"])
    return spec


def _encode_optimizer(optimizer):
    if _optimizers.OPTIMIZERS.get(optimizer.name) is not type(optimizer):
        raise ValueError(f"cannot save a model whose optimizer is a {type(optimizer).__name__}: "
                         f"only the built-in optimizers ({', '.join(_optimizers.OPTIMIZERS)}) "
                         f"can be saved")
    return {"name": optimizer.name, "params": {p: getattr(optimizer, p) for p, _ in optimizer._params}}


def _encode_schedule(schedule):
    if schedule == "cosine":            # annealed over each train call's epochs
        return {"name": "cosine", "params": None}
    if isinstance(schedule, _schedules.LambdaSchedule) or \
            _schedules.SCHEDULES.get(schedule.name) is not type(schedule):
        raise ValueError(f"cannot save a model whose schedule is {schedule!r}: a function or a "
                         f"custom Schedule is code, which model files do not store. Use a named "
                         f"schedule ({', '.join(map(repr, _schedules.SCHEDULES))}), e.g. set "
                         f"model.schedule = fastmlp.schedules.Constant() before saving")
    names = inspect.signature(type(schedule)).parameters
    return {"name": schedule.name, "params": {n: getattr(schedule, n) for n in names}}


def _json_default(obj):
    """Let ``json`` write NumPy scalars and arrays (as numbers and lists)."""
    if isinstance(obj, (np.generic, np.ndarray)) and obj.dtype.kind in "biuf":
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} cannot be written as JSON")


def _rng_state(rng):
    """The generator's bit-generator state with its arrays (MT19937's key) as tagged lists."""
    def encode(value):
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, np.ndarray):
            return {"__array__": value.tolist(), "dtype": value.dtype.str}
        return value
    return encode(rng.bit_generator.state)


# The state of each bit generator fastmlp can store (NumPy's), as ``bit_generator.state`` has
# it: name -> (the entries of its "state" object, the entries beside it). An entry is
# ("int", n), an int from 0 to n - 1, or ("array", itemsize, length), an array of unsigned
# integers. NumPy's setters take some values unchecked (MT19937's pos, Philox's buffer_pos) and
# the generator then reads and writes outside its buffers, so loading checks every entry.
_BUFFERED_UINT32 = {"has_uint32": ("int", 2), "uinteger": ("int", 1 << 32)}
_PCG_STATE = {"state": ("int", 1 << 128), "inc": ("int", 1 << 128)}
_RNG_STATES = {
    "PCG64": (_PCG_STATE, _BUFFERED_UINT32),
    "PCG64DXSM": (_PCG_STATE, _BUFFERED_UINT32),
    "MT19937": ({"key": ("array", 4, 624), "pos": ("int", 625)}, {}),
    "Philox": ({"counter": ("array", 8, 4), "key": ("array", 8, 2)},
               dict(buffer=("array", 8, 4), buffer_pos=("int", 5), **_BUFFERED_UINT32)),
    "SFC64": ({"state": ("array", 8, 4)}, _BUFFERED_UINT32),
}


def _rng_entry(name, key, spec, value):
    """The stored entry ``key`` of bit generator ``name``'s state, checked against ``spec``
    and decoded (a tagged list becomes an array); raises _Malformed."""
    def bad(expected):
        return _Malformed(f"the stored random generator state (rng_state) is invalid: "
                          f"{name}'s {key} must be {expected}; got {_one_line(repr(value), 100)}")
    if spec[0] == "int":
        if type(value) is not int or not 0 <= value < spec[1]:
            raise bad(f"an integer from 0 to {spec[1] - 1}")
        return value
    _, itemsize, length = spec
    expected = f"an array of {length} {8 * itemsize}-bit unsigned integers"
    if not isinstance(value, dict) or set(value) != {"__array__", "dtype"}:
        raise bad(expected)
    dtype, entries = value["dtype"], value["__array__"]
    if dtype not in (f"<u{itemsize}", f">u{itemsize}", f"=u{itemsize}"):
        raise bad(expected)
    if not isinstance(entries, list) or len(entries) != length or \
            not all(type(v) is int and 0 <= v < 1 << (8 * itemsize) for v in entries):
        raise bad(expected)
    return np.array(entries, dtype=np.dtype(f"u{itemsize}"))


def _restore_rng(state):
    """A ``numpy.random.Generator`` in the stored state (``_rng_state``'s), every entry
    checked first; raises _Malformed."""
    if not isinstance(state, dict):
        raise _Malformed(f"the stored random generator state (rng_state) is invalid: it must "
                         f"be an object; got {_one_line(repr(state), 100)}")
    name = state.get("bit_generator")
    if not isinstance(name, str) or name not in _RNG_STATES:
        raise _Malformed(f"the stored random generator state (rng_state) is invalid: unknown "
                         f"bit generator {_one_line(repr(name), 100)}; model files store "
                         f"{', '.join(_RNG_STATES)}")
    inner_spec, outer_spec = _RNG_STATES[name]
    inner = state.get("state")
    for where, found, spec in (("", state, dict(bit_generator=None, state=None, **outer_spec)),
                               ("'s state", inner, inner_spec)):
        if not isinstance(found, dict) or set(found) != set(spec):
            keys = sorted(found) if isinstance(found, dict) else found
            raise _Malformed(f"the stored random generator state (rng_state) is invalid: "
                             f"{name}{where} must have the entries {sorted(spec)}; got "
                             f"{_one_line(repr(keys), 200)}")
    decoded = {"bit_generator": name,
               "state": {key: _rng_entry(name, key, spec, inner[key])
                         for key, spec in inner_spec.items()}}
    decoded.update((key, _rng_entry(name, key, spec, state[key]))
                   for key, spec in outer_spec.items())
    if name.startswith("PCG64") and decoded["state"]["inc"] % 2 == 0:
        raise _Malformed(f"the stored random generator state (rng_state) is invalid: {name}'s "
                         f"inc must be odd, as in every state NumPy makes; got "
                         f"{decoded['state']['inc']}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = decoded
    return np.random.Generator(bit_generator)


def _storable_classes(classes):
    """``classes_`` as an array NumPy can store without pickle, or raise."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O":
        converted = np.array(classes.tolist())
        if converted.dtype.kind == "O" or converted.shape != classes.shape \
                or converted.tolist() != classes.tolist():
            raise ValueError(f"cannot save the class labels {classes.tolist()[:10]}: labels of "
                             f"object dtype are stored only when they convert to numbers or "
                             f"strings; train on labels of one numeric or string type")
        classes = converted
    if classes.dtype.kind not in "biufcSUmM" or classes.dtype.fields is not None:
        raise ValueError(f"cannot save class labels of dtype {classes.dtype}; use numbers or "
                         f"strings")
    return classes


def _digest(arrays):
    """Hex SHA-256 of the members ``arrays`` (name -> ndarray), in sorted name order: for each,
    its name, dtype, shape and C-order bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8))      # the bytes, without copying them
    return h.hexdigest()


def _model_lock(model):
    """The lock that training holds on ``model`` (``model._lock``), or a no-op without one."""
    lock = getattr(model, "_lock", None)
    return lock if lock is not None else contextlib.nullcontext()


def _serialize(model, extra=None, estimator=None):
    """The archive's members, copied from ``model`` at one instant, or raise before anything is
    written. ``estimator``: the metadata entry and arrays of a scikit-learn estimator around
    ``model`` (``fastmlp._estimator_io``).

    Everything is read under the model's lock when it has one, so that a thread training the
    model cannot change it half-way; every array is copied, so that the checksum and the file
    describe the same bytes however the model changes afterwards.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"save needs a fastmlp.MLP, MLPClassifier or MLPRegressor; got "
                        f"{type(model).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict of JSON values; got {type(extra).__name__}")
    from . import __version__
    with _model_lock(model):
        config = _constructor_arguments(model)
        config.update(lr_decay=model.lr_decay, dtype=model.dtype.name,
                      hidden_activation=_encode_activation(model.hidden_activation),
                      optimizer=_encode_optimizer(model.optimizer),
                      schedule=_encode_schedule(model.schedule))
        metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                    "fastmlp_version": __version__, "config": config, "lr": model.lr,
                    "history": model.history, "rng_state": _rng_state(model._rng)}
        if extra is not None:
            metadata["extra"] = extra
        if estimator is not None:
            metadata["estimator"] = estimator[0]
        try:
            text = json.dumps(metadata, default=_json_default).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"cannot save the model: a setting, its history or extra holds a "
                             f"value that is not a number, string, list or dict, or nests too "
                             f"deeply ({type(exc).__name__}: {exc})") from None
        arrays = {"metadata": np.frombuffer(text, dtype=np.uint8),
                  "params": model.params.copy(), "bn_state": model.bn_state.copy(),
                  "opt_state": model._opt_state.copy(), "step": model._step.copy()}
        if model.classes_ is not None:
            arrays["classes"] = np.array(_storable_classes(model.classes_))
        if estimator is not None:
            arrays.update(estimator[1])
    try:
        _check_json_limits(text)
    except _Malformed as exc:
        raise ValueError(f"cannot save the model: {exc}; store less in extra or clear "
                         f"model.history") from None
    arrays["sha256"] = np.array(_digest(arrays))
    return arrays


# -- paths ------------------------------------------------------------------------------------

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode):
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _open_regular_file(path):
    """``path`` opened for binary reading if it is a regular file (symbolic links followed).

    A FIFO or a device is refused without being opened for a blocking read: the path is checked
    with ``stat``, then opened with ``O_NONBLOCK`` (in case it was replaced in between) and
    checked again on the open descriptor. Raises FileNotFoundError, _Malformed for anything but
    a regular file, OSError when it cannot be read.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot load {path!r}: no such file") from None
    if not stat.S_ISREG(mode):
        raise _Malformed(f"it is {_kind(mode)}, not a regular file; give the path of a model "
                         f"file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | \
        getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _Malformed(f"it is {_kind(mode)}, not a regular file; give the path of a "
                             f"model file")
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_save_target(path):
    """Raise ValueError unless ``path`` is absent or a regular file (not followed if a link)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ValueError(f"cannot save to {path!r}: it is a symbolic link; a save replaces the "
                         f"file at the path in one step, which would replace the link, not the "
                         f"file it points to. Save to the link's target "
                         f"(os.path.realpath(path)), or remove the link first")
    if not stat.S_ISREG(mode):
        raise ValueError(f"cannot save to {path!r}: it is {_kind(mode)}, not a regular file; "
                         f"a model file only replaces a regular file. Choose another path")


# -- writing ----------------------------------------------------------------------------------

def _new_file_mode(path):
    """The permission bits the saved file gets: those of the file it replaces, else what
    ``open`` would give a new file (0o666 without the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)       # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def _target_tag(path):
    """8 hex digits that tell the temporaries of ``path`` from those of other files in its
    directory (a hash of the file's name: a temporary's name has a fixed length, however long
    the target's is)."""
    return hashlib.sha256(os.fsencode(os.path.basename(path))).hexdigest()[:8]


def _temporary_name(directory, path):
    """A new name for a temporary file of ``path``: ``.fastmlp-<tag>-<pid>-<random>.tmp``,
    about 40 characters whatever the target's name (a name of up to the system's limit, 255
    bytes, can be saved), in the target's directory so that the rename stays on one file
    system."""
    return os.path.join(directory, f"{_TEMP_PREFIX}{_target_tag(path)}-{os.getpid()}-"
                                   f"{secrets.token_hex(4)}{_TEMP_SUFFIX}")


def _process_gone(pid):
    """True when no process ``pid`` runs on this machine (a zombie still counts as running)."""
    if os.name != "posix" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return False


def _remove_stale_temporaries(directory, path):
    """Delete the temporary files that saves to ``path`` left behind when they were killed:
    those named by ``_temporary_name`` (or, by earlier versions,
    ``.<name>.<pid>-<random>.fastmlp-tmp``) whose process is gone. A live process's temporary
    is kept, so concurrent saves of one path do not disturb each other."""
    patterns = [
        re.compile(re.escape(f"{_TEMP_PREFIX}{_target_tag(path)}-")
                   + r"([0-9]+)-[0-9a-f]{8}" + re.escape(_TEMP_SUFFIX) + r"\Z"),
        re.compile(re.escape(f".{os.path.basename(path)}.")
                   + r"([0-9]+)-[0-9a-f]{8}" + re.escape(_OLD_TEMP_SUFFIX) + r"\Z")]
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = next(filter(None, (p.match(entry.name) for p in patterns)), None)
            if match and entry.is_file(follow_symlinks=False) and \
                    _process_gone(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _open_temporary(directory, path):
    """A new file for writing ``path``'s replacement, and its name (None for an anonymous
    ``O_TMPFILE`` file, which vanishes by itself if the process dies before it is named)."""
    if _USE_O_TMPFILE:
        try:
            fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError:         # the file system has no anonymous files: use a named one
            pass
        else:
            return open(fd, "w+b"), None
    while True:
        name = _temporary_name(directory, path)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o600)
        except FileExistsError:
            continue
        return open(fd, "w+b"), name


def _link_anonymous(fd, directory, name):
    """Give the anonymous file open at ``fd`` the ``name`` in ``directory`` (``linkat`` with
    ``AT_SYMLINK_FOLLOW`` through ``/proc``, which needs no privilege)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(f"/proc/self/fd/{fd}", os.path.basename(name), dst_dir_fd=dir_fd,
                follow_symlinks=True)
    finally:
        os.close(dir_fd)


def _write_atomically(path, write, verify):
    """Replace ``path`` by the file that ``write(file)`` writes, in one step, after
    ``verify(file)`` has read it back: any previous file stays as it was if anything fails, and
    no temporary file is left behind (see the module docstring)."""
    _check_save_target(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory, path)
    mode = _new_file_mode(path)
    f, tmp = _open_temporary(directory, path)
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            verify(f)
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            else:
                os.chmod(tmp, mode)
            if tmp is None:     # name the anonymous file, then rename it over the target
                tmp = _temporary_name(directory, path)
                _link_anonymous(f.fileno(), directory, tmp)
        _check_save_target(path)            # again: the path may have changed meanwhile
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    # Make the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# -- reading ----------------------------------------------------------------------------------

class _Archive:
    """The ``.npy`` members of an ``.npz`` file, checked against the file before any is read.

    Parameters
    ----------
    f : binary file object, open for reading and seekable
    allowed : collection of str
        The member names (without ``.npy``) the format has; any other member is refused.
    required : sequence of str
        Those that must be present; ``required[0]`` is the one that identifies the format.
    """

    def __init__(self, f, allowed, required):
        size = os.fstat(f.fileno()).st_size
        if f.read(6) == b"\x93NUMPY":
            raise _Malformed("not a fastmlp model file (a single NumPy array, not an .npz "
                             "archive)")
        f.seek(0)
        try:
            # The end record says how many members the directory lists: refuse a directory of
            # thousands before zipfile builds an object for each.
            end = zipfile._EndRecData(f)
            if end and end[zipfile._ECD_ENTRIES_TOTAL] > 8 * len(allowed):
                raise _Malformed(f"not a fastmlp model file, or it was modified: it holds "
                                 f"{end[zipfile._ECD_ENTRIES_TOTAL]} members; the format has "
                                 f"at most {len(allowed)}")
            f.seek(0)
            self._zip = zipfile.ZipFile(f)
            infos = self._zip.infolist()
        except _Malformed:
            raise
        except Exception as exc:
            raise _Malformed(f"not a fastmlp model file, or the file is truncated "
                             f"({type(exc).__name__}: {exc})") from None
        names = [info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                 for info in infos]
        if required[0] not in names:
            raise _Malformed(f"not a fastmlp model file (the archive has no {required[0]!r})")
        self._infos = {}
        for name, info in zip(names, infos):
            if name not in allowed:
                raise _Malformed(f"not a fastmlp model file, or it was modified: it holds a "
                                 f"member {info.filename!r} that the format does not have")
            if name in self._infos:
                raise _Malformed(f"the file is corrupted or was modified: it holds member "
                                 f"{name!r} twice")
            self._check_sizes(name, info, size)
            self._infos[name] = info
        missing = [name for name in required if name not in self._infos]
        if missing:
            raise _Malformed(f"the file is corrupted or was modified: it lacks "
                             f"{', '.join(missing)}")
        expanded = sum(info.file_size for info in self._infos.values())
        if expanded > max(_MAX_EXPANSION * size, _EXPANSION_FLOOR):
            raise _Malformed(f"its members expand to {expanded} bytes from a {size}-byte file; "
                             f"model files are stored uncompressed (numpy.savez), and a "
                             f"compressed one may expand at most {_MAX_EXPANSION} times")

    @staticmethod
    def _check_sizes(name, info, file_size):
        """Refuse a member whose directory entry cannot be true of this file."""
        if info.flag_bits & 0x1:
            raise _Malformed(f"member {name!r} is encrypted; model files are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Malformed(f"member {name!r} uses zip compression method "
                             f"{info.compress_type}; model files are stored uncompressed (or "
                             f"deflated)")
        if info.header_offset + info.compress_size > file_size:
            raise _Malformed(f"the file is truncated: member {name!r} would end at byte "
                             f"{info.header_offset + info.compress_size} of a "
                             f"{file_size}-byte file")
        stored = info.compress_type == zipfile.ZIP_STORED
        if (info.file_size != info.compress_size) if stored else \
                (info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024):
            raise _Malformed(f"the file is corrupted or was modified: member {name!r} claims "
                             f"{info.file_size} bytes from {info.compress_size} "
                             f"{'stored' if stored else 'compressed'} bytes")

    def __contains__(self, name):
        return name in self._infos

    def read(self, name, check):
        """Member ``name`` as an array. ``check(dtype, shape)`` raises unless the ``.npy``
        header describes what the format expects; the member's declared size is compared with
        the header's before its data is read, and no more than that is decompressed."""
        info = self._infos[name]
        with self._zip.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version not in ((1, 0), (2, 0)):
                raise _Malformed(f"member {name!r} is a version {version} .npy; expected "
                                 f"1.0 or 2.0")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(stream, max_header_size=_MAX_NPY_HEADER)
            if dtype.hasobject or dtype.fields is not None:
                raise _Malformed(f"the file is corrupted or was modified: member {name!r} "
                                 f"holds dtype {dtype}, which model files do not use")
            if fortran_order and len(shape) > 1:
                raise _Malformed(f"member {name!r} is stored in Fortran order; model files "
                                 f"store C order")
            check(dtype, shape)
            nbytes = math.prod(shape) * dtype.itemsize
            if info.file_size != stream.tell() + nbytes:
                raise _Malformed(f"the file is corrupted or was modified: member {name!r} "
                                 f"declares {info.file_size} bytes, but its header says "
                                 f"{stream.tell() + nbytes}")
            out = np.empty(shape, dtype=dtype)
            view, done = out.reshape(-1).view(np.uint8), 0
            while done < nbytes:
                chunk = stream.read(min(_READ_CHUNK, nbytes - done))
                if not chunk:
                    raise _Malformed(f"the file is truncated: member {name!r} ends after "
                                     f"{done} of its {nbytes} bytes")
                view[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                done += len(chunk)
        return out


def _exactly(name, dtype, shape):
    """A ``check`` for ``_Archive.read``: exactly this dtype and shape."""
    def check(found_dtype, found_shape):
        if found_dtype != dtype or found_shape != shape:
            raise _Malformed(f"the stored model is inconsistent: {name} has dtype {found_dtype} "
                             f"and shape {found_shape}; the stored configuration needs "
                             f"{np.dtype(dtype)} and {shape}")
    return check


def _malformed_if(check):
    """``check``, its ValueError raised as _Malformed (its message says what is wrong)."""
    def malformed(dtype, shape):
        try:
            check(dtype, shape)
        except ValueError as exc:
            raise _Malformed(str(exc)) from None
    return malformed


def _text_check(name, max_bytes):
    """A ``check`` for a member of UTF-8 bytes: uint8, one dimension, at most ``max_bytes``."""
    def check(dtype, shape):
        if dtype != np.uint8 or len(shape) != 1:
            raise _Malformed(f"not a fastmlp model file ({name} of dtype {dtype}, shape "
                             f"{shape}; expected UTF-8 bytes)")
        if shape[0] > max_bytes:
            raise _Malformed(f"the {name} takes {shape[0]} bytes, more than the "
                             f"{max_bytes} a model file may have")
    return check


def _check_checksum_member(dtype, shape):
    if dtype.kind != "U" or shape != () or dtype.itemsize > 4 * 64:
        raise _Malformed("the file is corrupted or was modified: its sha256 member is not a "
                         "hex digest")


# A JSON string, or an unterminated one to the end of the text: the match cannot fail once
# begun, so there is no backtracking and the scan is linear in the text's length.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_OPENERS, _CLOSERS = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)


def _json_depth(data):
    """How deeply the JSON text ``data`` (bytes) nests its arrays and objects, exact for valid
    JSON; counted in bounded memory, without recursion."""
    skeleton = _JSON_STRING.sub(b'""', data)
    depth = deepest = 0
    for start in range(0, len(skeleton), _READ_CHUNK):
        chars = np.frombuffer(skeleton, dtype=np.uint8, offset=start,
                              count=min(_READ_CHUNK, len(skeleton) - start))
        steps = np.isin(chars, _OPENERS).astype(np.int64) - np.isin(chars, _CLOSERS)
        levels = np.cumsum(steps) + depth
        if levels.size:
            deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _check_json_limits(data):
    """Raise _Malformed when the JSON bytes ``data`` exceed what a model file may hold."""
    if len(data) > MAX_METADATA_BYTES:
        raise _Malformed(f"the metadata takes {len(data)} bytes, more than the "
                         f"{MAX_METADATA_BYTES} a model file may have (fastmlp.io."
                         f"MAX_METADATA_BYTES)")
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise _Malformed(f"the metadata nests {depth} levels deep, more than the "
                         f"{MAX_JSON_DEPTH} a model file may have (fastmlp.io.MAX_JSON_DEPTH)")


def _read_metadata(archive, format_name=FORMAT_NAME, format_version=FORMAT_VERSION):
    """The metadata object of a file of ``format_name``, up to ``format_version``, and its raw
    bytes: size, nesting, JSON, format and version checked."""
    raw = archive.read("metadata", _text_check("metadata", MAX_METADATA_BYTES)).tobytes()
    _check_json_limits(raw)
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Malformed(f"the metadata is not valid JSON ({exc}); the file is corrupted or "
                         f"not a fastmlp model file") from None
    if not isinstance(metadata, dict) or metadata.get("format") != format_name:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise _Malformed(f"not a fastmlp model file (format {found!r}, expected "
                         f"{format_name!r})")
    version = metadata.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Malformed(f"invalid format_version {version!r}")
    if version > format_version:
        raise _Malformed(f"written by a newer fastmlp ({metadata.get('fastmlp_version')}) in "
                         f"format version {version}; this fastmlp reads up to version "
                         f"{format_version}. Upgrade fastmlp to load it")
    return metadata, raw


# -- the model, from checked metadata and arrays ------------------------------------------------

def _decode_optimizer(spec):
    if not isinstance(spec, dict) or not isinstance(spec.get("params"), dict):
        raise ValueError(f"optimizer must be stored as {{'name': ..., 'params': {{...}}}}; got "
                         f"{spec!r}")
    return _optimizers.get_optimizer(spec["name"], **spec["params"])


def _decode_schedule(spec):
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"schedule must be stored as {{'name': ..., 'params': {{...}}}}; got "
                         f"{spec!r}")
    if spec["name"] == "cosine" and spec.get("params") is None:
        return "cosine"
    if not isinstance(spec.get("params"), dict):
        raise ValueError(f"the parameters of schedule {spec['name']!r} must be an object")
    return _schedules.get_schedule(spec["name"], **spec["params"])


def _config(metadata):
    """The stored configuration: an object with exactly the known settings."""
    config = metadata["config"]
    if not isinstance(config, dict):
        raise ValueError(f"config must be an object; got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    missing = [key for key in _CONFIG_KEYS if key not in config]
    if unknown or missing:
        raise ValueError(f"unknown settings {unknown}" if unknown else
                         f"the configuration lacks {', '.join(missing)}")
    return config


def _model_layout(config, optimizer):
    """The dtype and shape of each array a model of ``config`` has, from the configuration
    alone (nothing allocated), in exact integer arithmetic; ValueError for a model larger than
    ``MAX_MODEL_BYTES``.

    The layout is the engine's (``fastmlp._kernels._train.Network``): per layer ``W`` and ``b``,
    plus ``gamma`` and ``beta`` where batch normalization is on, in ``params``; a running mean
    and variance per normalized layer in ``bn_state``; ``optimizer.n_state`` copies of
    ``params`` in ``opt_state``. ``load`` compares it with the built model's buffers too.
    """
    sizes = config["layer_sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"layer_sizes must be a list of at least two widths; got {sizes!r}")
    sizes = [_check_int("every entry of layer_sizes", s, 1) for s in sizes]
    if config["dtype"] not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {config['dtype']!r}")
    dtype = np.dtype(config["dtype"])
    batch_norm = _per_hidden("batch_norm", config["batch_norm"], len(sizes) - 2, _check_flag)
    n_bn = sum(2 * width for width, on in zip(sizes[1:-1], batch_norm) if on)
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])) + n_bn
    n_state = optimizer.n_state * n_params
    n_bytes = (n_params + n_bn + n_state) * dtype.itemsize
    if n_bytes > MAX_MODEL_BYTES:
        raise ValueError(f"layer_sizes {_one_line(sizes, 200)} make a model of {n_params} "
                         f"parameters, {n_bytes} bytes with its state: more than the "
                         f"{MAX_MODEL_BYTES} this fastmlp loads (fastmlp.io.MAX_MODEL_BYTES)")
    return {"params": (dtype, (n_params,)), "bn_state": (dtype, (n_bn,)),
            "opt_state": (dtype, (n_state,)), "step": (np.dtype(np.int64), (1,))}


def _classes_check(n_outputs):
    """A ``check`` for the stored class labels: one label per output, a storable dtype."""
    def check(dtype, shape):
        if dtype.kind not in "biufcSUmM" or shape != (n_outputs,) or \
                dtype.itemsize * n_outputs > MAX_METADATA_BYTES:
            raise _Malformed(f"the stored model is inconsistent: classes of dtype {dtype} and "
                             f"shape {shape} do not fit a model with {n_outputs} outputs")
    return check


def _all_finite(a):
    """Whether every entry of the 1-D array ``a`` is finite (in bounded extra memory)."""
    return all(np.isfinite(a[i:i + _READ_CHUNK]).all() for i in range(0, a.size, _READ_CHUNK))


def _check_state(model):
    """Raise ValueError unless ``model``'s buffers hold a state training can continue from:
    finite parameters, optimizer state and running statistics, non-negative accumulated squared
    gradients and running variances, a non-negative step, distinct sorted classes that fit the
    outputs."""
    for name, buffer in (("params", model.params), ("bn_state", model.bn_state),
                         ("opt_state", model._opt_state)):
        if not _all_finite(buffer):
            raise ValueError(f"{name} holds NaN or infinity")
    block = model.optimizer.squares_block
    if block is not None:
        n = model.params.size
        squares = model._opt_state[block * n:(block + 1) * n]
        smallest = squares.min() if squares.size else 0
        if smallest < 0:
            raise ValueError(f"the {model.optimizer.name} optimizer's accumulated squared "
                             f"gradients have negative entries (smallest {smallest!r}), "
                             f"which no training produces")
    for k, var in enumerate(model.running_var):
        if var is not None and np.any(var < 0):
            raise ValueError(f"the batch-norm running variance of hidden layer {k} has "
                             f"negative entries (smallest {var.min()!r})")
    if model._step[0] < 0:
        raise ValueError(f"step must be >= 0; got {model._step[0]}")
    classes = model.classes_
    if classes is not None:
        if model._task != "multiclass" or classes.shape != (model.sizes[-1],):
            raise ValueError(f"classes of shape {classes.shape} do not fit a model with "
                             f"{model.sizes[-1]} outputs and loss {model.loss_name!r}")
        unique = np.unique(classes)
        if unique.shape != classes.shape or not np.array_equal(unique, classes):
            raise ValueError(f"classes must be distinct and sorted (as train sets them); got "
                             f"{_one_line(classes.tolist(), 200)}")


def _check_trainable(model):
    """Raise ValueError/TypeError when ``train`` would refuse ``model``'s settings, by the
    checks ``train`` itself makes before its first epoch."""
    model._check_hyperparameters()
    model._resolve_schedule(1).rate(1, model.base_lr)


def _history(history, model):
    """The stored history, checked, for ``model``: lists of numbers, and ``best_epoch`` (an
    epoch >= 1, also set as ``model.best_epoch``) beside them; ``val_metric``, the metric's name
    in older files, becomes the model's own key."""
    if not isinstance(history, dict):
        raise ValueError("history must be an object of lists of numbers")
    history = dict(history)
    best_epoch = history.pop("best_epoch", None)
    if not all(isinstance(v, list) and all(isinstance(x, (int, float)) and
                                           not isinstance(x, bool) for x in v)
               for v in history.values()):
        raise ValueError("history must be an object of lists of numbers")
    if "val_metric" in history:
        history[model._val_metric_key()] = history.pop("val_metric")
    if best_epoch is not None:
        if isinstance(best_epoch, bool) or not isinstance(best_epoch, int) or best_epoch < 1:
            raise ValueError(f"history's best_epoch must be an epoch >= 1; got {best_epoch!r}")
        history["best_epoch"] = model.best_epoch = best_epoch
    return history


def _rebuild(metadata, arrays, optimizer):
    """A new MLP from the metadata and arrays whose layout ``_model_layout`` has checked; raises
    ValueError, TypeError or KeyError on a setting or value the model cannot have."""
    config = dict(_config(metadata))
    lr_decay = config.pop("lr_decay")
    config.update(hidden_activation=_decode_activation(config["hidden_activation"]),
                  optimizer=optimizer, schedule=_decode_schedule(config["schedule"]))
    model = MLP(**config)               # draws initial weights, overwritten below
    model.lr_decay, model.lr = lr_decay, metadata["lr"]
    model._check_hyperparameters()      # the checks train makes of lr and lr_decay
    model.lr_decay = None if lr_decay is None else float(lr_decay)
    model.lr = model._lr_set = float(model.lr)
    for name, target in (("params", model.params), ("bn_state", model.bn_state),
                         ("opt_state", model._opt_state), ("step", model._step)):
        _exactly(name, target.dtype, target.shape)(arrays[name].dtype, arrays[name].shape)
        target[...] = arrays[name]
    if "classes" in arrays:
        model.classes_ = arrays["classes"]
    model.history = _history(metadata["history"], model)
    model._rng = _restore_rng(metadata["rng_state"])
    _check_state(model)
    _check_trainable(model)
    return model


_MODEL_MEMBERS = ("metadata", "params", "bn_state", "opt_state", "step", "sha256", "classes")


def _read_model(f):
    """``(model, extra)`` from an open model file. Raises _Malformed for what is wrong with the
    file; any other exception also means a malformed file (``load`` words it)."""
    archive = _Archive(f, allowed=_MODEL_MEMBERS + _estimator_io.MEMBERS,
                       required=_MODEL_MEMBERS[:-1])
    metadata, raw = _read_metadata(archive)
    try:
        config = _config(metadata)
        optimizer = _decode_optimizer(config["optimizer"])
        layout = _model_layout(config, optimizer)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _inconsistent(exc) from None
    arrays = {"metadata": np.frombuffer(raw, dtype=np.uint8)}
    for name, (dtype, shape) in layout.items():
        arrays[name] = archive.read(name, _exactly(name, dtype, shape))
    if "classes" in archive:
        arrays["classes"] = archive.read("classes", _classes_check(config["layer_sizes"][-1]))
    for name in _estimator_io.MEMBERS:          # a scikit-learn estimator's arrays
        if name in archive:
            arrays[name] = archive.read(name, _malformed_if(
                _estimator_io.member_check(name, config)))
    stored = archive.read("sha256", _check_checksum_member)
    if str(stored) != _digest(arrays):
        raise _Malformed("the file is corrupted or was modified: its SHA-256 checksum does "
                         "not match its contents")
    extra = metadata.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise _Malformed(f"the stored 'extra' must be a JSON object; got {type(extra).__name__}")
    try:
        model = _rebuild(metadata, arrays, optimizer)
        if "estimator" in metadata:
            model = _estimator_io.rebuild(model, metadata["estimator"], arrays)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _inconsistent(exc) from None
    return model, extra


def _inconsistent(exc):
    if isinstance(exc, _Malformed):
        return exc
    detail = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
    return _Malformed(f"the stored model is inconsistent: {detail}")


def _problem(exc):
    """What the exception ``exc``, raised while reading a file, says is wrong with it."""
    if isinstance(exc, _Malformed):
        return str(exc)
    return (f"the file is corrupted or was modified, or is not a fastmlp model file "
            f"({type(exc).__name__}: {exc})")


# -- the public functions ---------------------------------------------------------------------

def save(model, path, *, extra=None):
    """Save a model to a file that :func:`load` reads back exactly.

    ``MLP.save(path)`` calls this function. The file is a NumPy ``.npz`` archive of the
    parameters, batch-norm statistics, optimizer state and class labels, with the configuration
    and history as JSON metadata and a SHA-256 checksum; nothing is pickled (the format is
    described in the ``fastmlp.io`` module docstring). The model is copied at one instant
    (under its lock when it has one), so a thread training it meanwhile cannot make the file
    inconsistent. The written file is read back and checked as :func:`load` checks it before it
    replaces anything, and the write is atomic: a failed or killed save leaves any existing file
    at ``path`` unchanged and no temporary file behind.

    Parameters
    ----------
    model : fastmlp.MLP, fastmlp.MLPClassifier or fastmlp.MLPRegressor
        A fitted estimator is saved with its network, parameters and fitted attributes;
        ``load`` returns it, ready to predict or to continue with ``partial_fit`` or a
        warm-started ``fit``.
    path : str or os.PathLike
        Where to write, used exactly as given (no suffix added; ``.npz`` is conventional). An
        existing regular file is replaced, keeping its permission bits; anything else at the
        path (a symbolic link, FIFO, device or directory) is refused.
    extra : dict, optional
        JSON-serializable data stored with the model under the checksum (the command line
        keeps its preprocessing here); ``load(path, with_extra=True)`` returns it.

    Raises
    ------
    TypeError
        If ``model`` is not an ``MLP`` or one of fastmlp's estimators, or ``extra`` not a
        dict.
    ValueError
        If ``path`` is not a regular file or absent; if the model holds something a data file
        cannot represent (a function or custom class as its schedule or optimizer, class labels
        of object dtype, an ``extra`` that is not JSON or too large); or if the file would not
        load (say the parameters hold NaN). Nothing is replaced.
    OSError
        If the file cannot be written, e.g. the disk is full (the previous file, if any, is
        left intact).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastmlp
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0, 1, 1, 0])
    >>> model = fastmlp.MLP([2, 8, 1], lr=0.5, seed=0).fit(X, y, epochs=200, verbose=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "xor.npz")
    >>> fastmlp.io.save(model, path)
    >>> bool(np.array_equal(fastmlp.load(path).forward(X), model.forward(X)))
    True
    """
    path = os.fspath(path)
    _check_save_target(path)
    estimator = None
    if _estimator_io.is_estimator(model):
        model, *estimator = _estimator_io.serialize(model)
    arrays = _serialize(model, extra, estimator)

    def verify(f):
        try:
            _read_model(f)
        except Exception as exc:
            raise ValueError(_one_line(f"cannot save the model to {path!r}: the file written "
                                       f"would not load: {_problem(exc)}")) from None

    try:
        _write_atomically(path, lambda f: np.savez(f, **arrays), verify)
    except OSError as exc:
        if exc.errno is None:
            raise
        # The system's reason, with the file named (a full disk reports no name).
        raise OSError(exc.errno, f"cannot save the model to {path!r}: {exc.strerror}") from exc


def load(path, *, with_extra=False):
    """Load a model saved by :func:`save` (or ``MLP.save``).

    Reads only arrays and JSON, never executing code from the file, and in memory and time
    proportional to the model the file holds, whatever it claims: every size is checked against
    the file before anything is allocated (see the ``fastmlp.io`` module docstring). The model
    predicts exactly as the saved one did, and its optimizer state, step count, random
    generator, learning rate, classes and history are restored, so further training continues
    exactly where the saved model would have.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file (symbolic links are followed).
    with_extra : bool, default False
        Also return the ``extra`` dict given to :func:`save` (None when there was none).

    Returns
    -------
    fastmlp.MLP (or the saved MLPClassifier / MLPRegressor), or (model, dict or None) with
    ``with_extra=True``

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If ``path`` is not a regular file (a FIFO, device or directory: refused without
        waiting on it); if the file is not a fastmlp model file, is truncated or corrupted or
        was modified (checksum mismatch), was written by a newer fastmlp (a higher format
        version), declares sizes its contents do not have or a model above
        ``MAX_MODEL_BYTES``, or holds settings or values the model cannot have (settings
        ``MLP`` or ``train`` would refuse, non-finite numbers, a negative running variance,
        unsorted or repeated classes). The one-line message names the file and the problem.
    OSError
        If the file cannot be opened (no permission, say).

    Examples
    --------
    See :func:`save`.
    """
    path = os.fspath(path)
    try:
        f = _open_regular_file(path)
    except _Malformed as exc:
        raise ValueError(_one_line(f"cannot load {path!r}: {exc}")) from None
    with f:
        try:
            model, extra = _read_model(f)
        except Exception as exc:    # whatever a malformed file makes fail, even MemoryError
            raise ValueError(_one_line(f"cannot load {path!r}: {_problem(exc)}")) from None
    return (model, extra) if with_extra else model
