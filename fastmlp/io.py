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
(``save(..., extra=...)``; the command line keeps its preprocessing there). Floats are written with Python's shortest round-tripping repr, so every
number comes back bit for bit: a loaded model predicts exactly what the saved one did, and
training it further gives exactly the parameters that training the original would have.

The checksum detects a truncated, corrupted or edited file; it is not a signature (anyone can
recompute it), and loading is safe without it since nothing in the file is executed.

A save is atomic: the archive is written to a temporary file in the target's directory,
flushed to disk, then renamed over the target, so a crash or an error during a save leaves any
previous file at that path as it was. The file is written exactly at the path given (no suffix
is added); ``.npz`` is the natural suffix.

What cannot be saved: a schedule given as a function (``LambdaSchedule``) or a user-defined
``Schedule`` or ``Optimizer`` subclass (they are code, not data), and class labels of object
dtype that have no NumPy equivalent. The state of a ``ReduceOnPlateau`` schedule is not saved;
``train`` resets it at the start of every call anyway.
"""
import contextlib
import hashlib
import inspect
import json
import math
import os
import tempfile

import numpy as np

from . import _estimator_io
from . import optimizers as _optimizers
from . import schedules as _schedules
from .mlp import MLP

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]

#: The ``"format"`` value of every fastmlp model file.
FORMAT_NAME = "fastmlp-model"
#: The version of the format this fastmlp writes, and the newest it reads.
FORMAT_VERSION = 1

_ARRAYS = ("params", "bn_state", "opt_state", "step")
_CONFIG_KEYS = ("layer_sizes", "lr", "l2", "l1", "hidden_activation", "lr_decay", "dtype", "loss",
                "optimizer", "schedule", "clip_norm", "clip_value", "dropout", "batch_norm",
                "init", "label_smoothing", "huber_delta", "early_stopping",
                "validation_fraction", "patience", "min_delta")


# -- configuration ----------------------------------------------------------------------------

def _constructor_arguments(model):
    """The keyword arguments of ``MLP`` that rebuild ``model``'s configuration, as live objects
    (the optimizer and schedule instances themselves, ``lr_decay`` left out: the schedule
    already says it)."""
    return dict(layer_sizes=list(model.sizes), lr=model.base_lr, l2=model.l2, l1=model.l1,
                hidden_activation=model.hidden_activation, dtype=model.dtype,
                loss=model.loss_name, optimizer=model.optimizer, schedule=model.schedule,
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


def _restore_rng(state):
    def decode(value):
        if isinstance(value, dict):
            if "__array__" in value:
                return np.array(value["__array__"], dtype=np.dtype(value["dtype"]))
            return {k: decode(v) for k, v in value.items()}
        return value
    name = state["bit_generator"]
    if name not in ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"):
        raise ValueError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = decode(state)
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
        h.update(a.tobytes())
    return h.hexdigest()


def _serialize(model, extra=None, estimator=None):
    """The archive's members, or raise before anything is written. ``estimator``: the
    metadata entry and arrays of a scikit-learn estimator around ``model``
    (``fastmlp._estimator_io``)."""
    if not isinstance(model, MLP):
        raise TypeError(f"save needs a fastmlp.MLP, MLPClassifier or MLPRegressor; got "
                        f"{type(model).__name__}")
    config = _constructor_arguments(model)
    config.update(lr_decay=model.lr_decay, dtype=model.dtype.name,
                  hidden_activation=_encode_activation(model.hidden_activation),
                  optimizer=_encode_optimizer(model.optimizer),
                  schedule=_encode_schedule(model.schedule))
    from . import __version__
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "fastmlp_version": __version__, "config": config, "lr": model.lr,
                "history": model.history, "rng_state": _rng_state(model._rng)}
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict of JSON values; got {type(extra).__name__}")
        metadata["extra"] = extra
    if estimator is not None:
        metadata["estimator"] = estimator[0]
    try:
        text = json.dumps(metadata, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save the model: a setting or its history holds a value that "
                         f"is not a number, string or list ({exc})") from None
    arrays = {"metadata": np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
              "params": model.params, "bn_state": model.bn_state,
              "opt_state": model._opt_state, "step": model._step}
    if model.classes_ is not None:
        arrays["classes"] = _storable_classes(model.classes_)
    if estimator is not None:
        arrays.update(estimator[1])
    arrays["sha256"] = np.array(_digest(arrays))
    return arrays


# -- the file ---------------------------------------------------------------------------------

def _new_file_mode(path):
    """The permission bits the saved file gets: those of the file it replaces, else what
    ``open`` would give a new file (0o666 without the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)       # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def _write_atomically(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with open(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
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


def save(model, path, *, extra=None):
    """Save a model to a file that :func:`load` reads back exactly.

    ``MLP.save(path)`` calls this function. The file is a NumPy ``.npz`` archive of the
    parameters, batch-norm statistics, optimizer state and class labels, with the configuration
    and history as JSON metadata and a SHA-256 checksum; nothing is pickled (the format is
    described in the ``fastmlp.io`` module docstring). The write is atomic: a failed save
    leaves any existing file at ``path`` unchanged.

    Parameters
    ----------
    model : fastmlp.MLP, fastmlp.MLPClassifier or fastmlp.MLPRegressor
        A fitted estimator is saved with its network, parameters and fitted attributes;
        ``load`` returns it, ready to predict or to continue with ``partial_fit`` or a
        warm-started ``fit``.
    path : str or os.PathLike
        Where to write, used exactly as given (no suffix added; ``.npz`` is conventional). An
        existing file is replaced, keeping its permission bits.
    extra : dict, optional
        JSON-serializable data stored with the model under the checksum (the command line
        keeps its preprocessing here); ``load(path, with_extra=True)`` returns it.

    Raises
    ------
    TypeError
        If ``model`` is not an ``MLP`` or one of fastmlp's estimators.
    ValueError
        If the model holds something a data file cannot represent: a function or custom class
        as its schedule or optimizer, or class labels of object dtype. Nothing is written.
    OSError
        If the file cannot be written (the previous file, if any, is left intact).

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
    estimator = None
    if _estimator_io.is_estimator(model):
        model, *estimator = _estimator_io.serialize(model)
    arrays = _serialize(model, extra, estimator)
    _write_atomically(os.fspath(path), arrays)


def load(path, *, with_extra=False):
    """Load a model saved by :func:`save` (or ``MLP.save``).

    Reads only arrays and JSON (``numpy.load(path, allow_pickle=False)``): loading never executes
    code from the file. The model predicts exactly as the saved one did, and its optimizer state,
    step count, random generator, learning rate, classes and history are restored, so further
    training continues exactly where the saved model would have.

    Parameters
    ----------
    path : str or os.PathLike
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
        If the file is not a fastmlp model file, is truncated or corrupted or was modified
        (checksum mismatch), was written by a newer fastmlp (a higher format version), or
        holds arrays that do not fit its configuration. The one-line message names the file and
        the problem.

    Examples
    --------
    See :func:`save`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot load {path!r}: no such file")

    def fail(problem):
        return ValueError(f"cannot load {path!r}: {problem}")

    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise fail(f"not a fastmlp model file, or the file is truncated "
                   f"({type(exc).__name__}: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise fail("not a fastmlp model file (a single NumPy array, not an .npz archive)")
    with archive:
        if "metadata" not in archive.files:
            raise fail("not a fastmlp model file (the archive has no 'metadata')")
        arrays = {}
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except Exception as exc:
                raise fail(f"the file is corrupted or was modified: member {name!r} cannot be "
                           f"read ({type(exc).__name__}: {exc})") from None

    metadata = _read_metadata(arrays["metadata"], fail)
    missing = [name for name in _ARRAYS + ("sha256",) if name not in arrays]
    if missing:
        raise fail(f"the file is corrupted or was modified: it lacks {', '.join(missing)}")
    stored = arrays.pop("sha256")
    if stored.shape != () or stored.dtype.kind != "U" or str(stored) != _digest(arrays):
        raise fail("the file is corrupted or was modified: its SHA-256 checksum does not match "
                   "its contents")
    extra = metadata.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise fail(f"the stored 'extra' must be a JSON object; got {type(extra).__name__}")
    try:
        model = _rebuild(metadata, arrays)
        if "estimator" in metadata:
            model = _estimator_io.rebuild(model, metadata["estimator"], arrays)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        detail = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
        raise fail(f"the stored model is inconsistent: {detail}") from None
    return (model, extra) if with_extra else model


def _read_metadata(raw, fail):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise fail(f"not a fastmlp model file (metadata of dtype {raw.dtype}, shape "
                   f"{raw.shape}; expected UTF-8 bytes)")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"the metadata is not valid JSON ({exc}); the file is corrupted or not a "
                   f"fastmlp model file") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise fail(f"not a fastmlp model file (format {found!r}, expected {FORMAT_NAME!r})")
    version = metadata.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise fail(f"written by a newer fastmlp ({metadata.get('fastmlp_version')}) in format "
                   f"version {version}; this fastmlp reads up to version {FORMAT_VERSION}. "
                   f"Upgrade fastmlp to load it")
    return metadata


def _check_array(name, array, dtype, shape):
    if array.dtype != dtype or array.shape != shape:
        raise ValueError(f"{name} has dtype {array.dtype} and shape {array.shape}; the stored "
                         f"configuration needs {np.dtype(dtype)} and {shape}")


def _rebuild(metadata, arrays):
    """A new MLP from checked metadata and arrays; raises KeyError/TypeError/ValueError."""
    config = dict(metadata["config"])
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}")
    lr_decay = config.pop("lr_decay")
    if lr_decay is not None and not (isinstance(lr_decay, (int, float)) and 0 < lr_decay <= 1):
        raise ValueError(f"lr_decay must be in (0, 1] or null; got {lr_decay!r}")
    optimizer, schedule = config["optimizer"], config["schedule"]
    config.update(
        hidden_activation=_decode_activation(config["hidden_activation"]),
        optimizer=_optimizers.get_optimizer(optimizer["name"], **optimizer["params"]),
        schedule=("cosine" if schedule["params"] is None and schedule["name"] == "cosine"
                  else _schedules.get_schedule(schedule["name"], **schedule["params"])))
    if config["dtype"] not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32'; got {config['dtype']!r}")
    model = MLP(**config)               # draws initial weights, overwritten below
    model.lr_decay = lr_decay
    lr = metadata["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0; got {lr!r}")
    model.lr = model._lr_set = float(lr)

    for name, target in (("params", model.params), ("bn_state", model.bn_state),
                         ("opt_state", model._opt_state)):
        _check_array(name, arrays[name], model.dtype, target.shape)
        target[...] = arrays[name]
    _check_array("step", arrays["step"], np.int64, (1,))
    if arrays["step"][0] < 0:
        raise ValueError(f"step must be >= 0; got {arrays['step'][0]}")
    model._step[...] = arrays["step"]
    if not (np.all(np.isfinite(model.params)) and np.all(np.isfinite(model.bn_state))):
        raise ValueError("params or bn_state contain NaN or infinity")

    if "classes" in arrays:
        classes = arrays["classes"]
        if model._task != "multiclass" or classes.shape != (model.sizes[-1],):
            raise ValueError(f"classes of shape {classes.shape} do not fit a model with "
                             f"{model.sizes[-1]} outputs and loss {model.loss_name!r}")
        model.classes_ = classes

    history = metadata["history"]
    # best_epoch: an epoch number beside the lists; val_metric: its name in older files.
    best_epoch = history.pop("best_epoch", None) if isinstance(history, dict) else None
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise ValueError("history must be an object of lists")
    if "val_metric" in history:
        history[model._val_metric_key()] = history.pop("val_metric")
    if best_epoch is not None:
        if isinstance(best_epoch, bool) or not isinstance(best_epoch, int) or best_epoch < 1:
            raise ValueError(f"history's best_epoch must be an epoch >= 1; got {best_epoch!r}")
        history["best_epoch"] = model.best_epoch = best_epoch
    model.history = history
    model._rng = _restore_rng(metadata["rng_state"])
    return model
