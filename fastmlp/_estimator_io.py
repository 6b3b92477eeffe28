"""Model files for the scikit-learn estimators (``MLPClassifier``, ``MLPRegressor``).

An estimator's file is the file of its network (``estimator.model_``, see ``fastmlp.io``) with
one more metadata entry, ``"estimator"``, and one or two more arrays, all under the file's
checksum; nothing is pickled. The entry holds the class name, the constructor parameters
(``get_params``), the fitted attributes that are not the network (``n_iter_``, ``t_``,
``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``n_features_in_``, ...)
and what ``warm_start`` and ``partial_fit`` need to continue exactly (the count of epochs
without improvement, the learning-rate state, the label encoding). The arrays are
``estimator_classes`` (``classes_``) and, when X had column names,
``estimator_feature_names``.

``fastmlp.io.save`` and ``load`` call ``serialize`` and ``rebuild``; scikit-learn is imported
only when a file holds an estimator.
"""
import numbers

import numpy as np

__all__ = ["is_estimator", "serialize", "rebuild", "MEMBERS", "member_check"]

#: The archive members an estimator adds to its network's file.
MEMBERS = ("estimator_classes", "estimator_feature_names")

_CLASSES = ("MLPClassifier", "MLPRegressor")
# Fitted attributes stored as JSON values (numbers, lists of numbers, strings, None).
_FITTED = ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "validation_scores_",
           "best_validation_score_", "n_outputs_", "n_layers_", "out_activation_",
           "n_features_in_", "_no_improvement_count")


def is_estimator(obj):
    """Whether ``obj`` is one of fastmlp's scikit-learn estimators (without importing them)."""
    return (type(obj).__name__ in _CLASSES
            and type(obj).__module__ == "fastmlp.estimators")


def _number(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _encode_param(name, value):
    """A constructor parameter as JSON, or raise ValueError."""
    from . import io, optimizers, schedules
    if name == "dtype":
        return None if value is None else {"dtype": np.dtype(value).name}
    if name == "random_state":
        if value is None or isinstance(value, numbers.Integral):
            return None if value is None else int(value)
        raise ValueError("cannot save an estimator whose random_state is a RandomState instance "
                         "(its stream is not data the file keeps); use an int or None")
    if isinstance(value, optimizers.Optimizer):
        return {"optimizer": io._encode_optimizer(value)}
    if isinstance(value, schedules.Schedule) or callable(value):
        if not isinstance(value, schedules.Schedule):
            value = schedules.get_schedule(value)
        return {"schedule": io._encode_schedule(value)}
    if isinstance(value, tuple):
        return {"tuple": [_encode_param(name, v) for v in value]}
    if isinstance(value, list):
        return [_encode_param(name, v) for v in value]
    value = _number(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot save an estimator whose {name}={value!r}: model files keep "
                     f"numbers, strings, lists, built-in optimizers and named schedules")


def _decode_param(value):
    from . import optimizers, schedules
    if isinstance(value, dict):
        if "dtype" in value:
            if value["dtype"] not in ("float32", "float64"):
                raise ValueError(f"dtype must be float32 or float64; got {value['dtype']!r}")
            return np.dtype(value["dtype"]).type
        if "tuple" in value:
            return tuple(_decode_param(v) for v in value["tuple"])
        if "optimizer" in value:
            spec = value["optimizer"]
            return optimizers.get_optimizer(spec["name"], **spec["params"])
        if "schedule" in value:
            spec = value["schedule"]
            return schedules.get_schedule(spec["name"], **spec["params"])
        raise ValueError(f"unknown parameter encoding {sorted(value)}")
    if isinstance(value, list):
        return [_decode_param(v) for v in value]
    return value


def member_check(name, config):
    """A check of member ``name``'s ``.npy`` header (``fastmlp.io._Archive.read``): a 1-D
    array of labels (one per class, a few more than the outputs at most) or of feature names
    (one per input), never objects."""
    n_in, n_out = config["layer_sizes"][0], config["layer_sizes"][-1]

    def check(dtype, shape):
        if name == "estimator_classes":
            ok = dtype.kind in "biufUS" and len(shape) == 1 and 1 <= shape[0] <= max(2, n_out)
        else:
            ok = dtype.kind == "U" and shape == (n_in,)
        if not ok or dtype.itemsize * (shape[0] if shape else 1) > 1 << 24:
            raise ValueError(f"the stored estimator is inconsistent: {name} of dtype {dtype} "
                             f"and shape {shape} does not fit a network of {n_in} inputs and "
                             f"{n_out} outputs")
    return check


def serialize(estimator):
    """``(network, metadata entry, arrays)`` for ``fastmlp.io``; raises ValueError for an
    unfitted estimator or a setting a file cannot keep."""
    from .io import _storable_classes
    if "model_" not in estimator.__dict__:
        raise ValueError(f"cannot save an unfitted {type(estimator).__name__}: call fit (or "
                         f"partial_fit) first")
    estimator._sync_params()
    params = {name: _encode_param(name, value)
              for name, value in estimator.get_params(deep=False).items()}
    fitted = {name: _number(getattr(estimator, name)) for name in _FITTED
              if hasattr(estimator, name)}
    for name in ("loss_curve_", "validation_scores_"):
        if isinstance(fitted.get(name), list):
            fitted[name] = [float(v) for v in fitted[name]]
    entry = {"class": type(estimator).__name__, "params": params, "fitted": fitted,
             "seed": int(estimator._mlp_init_kwargs["seed"])}
    rate = estimator.__dict__.get("_rate")
    if rate is not None:
        entry["rate"] = {"rate": float(rate.rate), "epoch": int(rate.epoch)}
    arrays = {}
    binarizer = estimator.__dict__.get("_label_binarizer")
    if binarizer is not None:
        entry["y_type"] = binarizer.y_type_
        arrays["estimator_classes"] = _storable_classes(binarizer.classes_)
    names = estimator.__dict__.get("feature_names_in_")
    if names is not None:
        arrays["estimator_feature_names"] = np.array([str(n) for n in names])
    return estimator.model_, entry, arrays


_Y_TYPES = ("binary", "multiclass", "multilabel-indicator")
# The fitted attributes of stochastic training, set together by its first epoch.
_CURVES = ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(name, value, low=0):
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return value


def _check_real(name, value, allowed, expected):
    """``value`` as a float if it is a number that is finite or one of the non-finite values
    ``allowed`` ("nan", "inf", "-inf"), else raise ValueError saying ``expected``."""
    if _is_real(value):
        value = float(value)
        kind = "nan" if value != value else "inf" if value == np.inf else \
            "-inf" if value == -np.inf else "finite"
        if kind == "finite" or kind in allowed:
            return value
    raise ValueError(f"{name} must be {expected}; got {value!r}")


def _check_curve(name, value, allowed, expected):
    if not isinstance(value, list) or not all(_is_real(v) for v in value):
        raise ValueError(f"{name} must be a list of numbers; got {value!r}")
    return [_check_real(name, v, allowed, expected) for v in value]


def _check_fitted(fitted, model):
    """The stored fitted attributes, checked as training sets them (types, ranges, the
    network's sizes); raises ValueError."""
    if not isinstance(fitted, dict):
        raise ValueError(f"the estimator's fitted must be an object; got {fitted!r}")
    unknown = sorted(set(fitted) - set(_FITTED))
    if unknown:
        raise ValueError(f"unknown fitted attributes {unknown}")
    fitted = dict(fitted)
    for name, value in (("n_features_in_", model.sizes[0]), ("n_outputs_", model.sizes[-1]),
                        ("n_layers_", len(model.sizes))):
        if name not in fitted:
            raise ValueError(f"the fitted attribute {name} is missing")
        if not _is_int(fitted[name]) or fitted[name] != value:
            raise ValueError(f"{name} must be {value}, as the network {list(model.sizes)} has; "
                             f"got {fitted[name]!r}")
    for name in ("n_iter_", "t_", "_no_improvement_count"):
        if name in fitted:
            _check_count(name, fitted[name])
    if "out_activation_" in fitted and not isinstance(fitted["out_activation_"], str):
        raise ValueError(f"out_activation_ must be a string; got {fitted['out_activation_']!r}")
    present = [name for name in _CURVES if name in fitted]
    if present and (len(present) < len(_CURVES) or "_no_improvement_count" not in fitted):
        raise ValueError(f"the fitted attributes {', '.join(_CURVES)} and "
                         f"_no_improvement_count come together (the first epoch of stochastic "
                         f"training sets them); the file has {', '.join(present)}")
    # Training records the loss of a diverging epoch as it was (inf) and a diverged epoch's
    # as NaN (the model keeps its last finite weights); no loss is -inf.
    if "loss_" in fitted:
        fitted["loss_"] = _check_real("loss_", fitted["loss_"], ("nan", "inf"),
                                      "a number (NaN or inf for a diverged epoch), not -inf")
    if present:
        fitted["loss_curve_"] = _check_curve(
            "loss_curve_", fitted["loss_curve_"], ("nan", "inf"),
            "a list of numbers (NaN or inf for diverged epochs), not -inf")
        if fitted["validation_scores_"] is not None:       # kept by early stopping
            fitted["validation_scores_"] = _check_curve(
                "validation_scores_", fitted["validation_scores_"], ("nan", "-inf"),
                "a list of scores (NaN for a diverged epoch), not inf")
            fitted["best_validation_score_"] = _check_real(
                "best_validation_score_", fitted["best_validation_score_"], ("-inf",),
                "a finite number (or -inf before any score)")
            if fitted["best_loss_"] is not None:
                raise ValueError(f"best_loss_ must be None when validation_scores_ are kept "
                                 f"(early stopping); got {fitted['best_loss_']!r}")
        else:
            if fitted["best_validation_score_"] is not None:
                raise ValueError(f"best_validation_score_ must be None when "
                                 f"validation_scores_ is None; got "
                                 f"{fitted['best_validation_score_']!r}")
            if not isinstance(fitted["validation_scores_"], (list, type(None))):
                raise ValueError(f"validation_scores_ must be None or a list of numbers; got "
                                 f"{fitted['validation_scores_']!r}")
            fitted["best_loss_"] = _check_real(
                "best_loss_", fitted["best_loss_"], ("inf",),
                "a finite number (or inf before any epoch), or None with early stopping")
    return fitted


def _check_rate(rate):
    """The stored learning-rate state ``{"rate": ..., "epoch": ...}``, checked."""
    if not isinstance(rate, dict) or set(rate) != {"rate", "epoch"}:
        raise ValueError(f"the learning-rate state must be an object of rate and epoch; got "
                         f"{rate!r}")
    value = _check_real("the learning-rate state's rate", rate["rate"], (),
                        "a finite number >= 0")
    if value < 0:
        raise ValueError(f"the learning-rate state's rate must be a finite number >= 0; got "
                         f"{value!r}")
    return value, _check_count("the learning-rate state's epoch", rate["epoch"])


def _check_classes(name, entry, arrays, n_outputs):
    """A classifier's stored ``(classes, y_type)``, checked against each other and the
    network's outputs; None for a regressor (which must have neither)."""
    if name != "MLPClassifier":
        if "estimator_classes" in arrays or "y_type" in entry:
            raise ValueError(f"an {name} has no classes; the file holds estimator_classes or "
                             f"y_type")
        return None
    if "estimator_classes" not in arrays:
        raise ValueError("an MLPClassifier's file must hold estimator_classes")
    y_type = entry.get("y_type")
    if not isinstance(y_type, str) or y_type not in _Y_TYPES:
        raise ValueError(f"y_type must be one of {', '.join(map(repr, _Y_TYPES))}; got "
                         f"{y_type!r}")
    classes = arrays["estimator_classes"]
    unique = np.unique(classes)
    if unique.shape != classes.shape or not np.array_equal(unique, classes):
        raise ValueError(f"estimator_classes must be distinct and sorted (as fit sets them); "
                         f"got {classes.tolist()[:20]}")
    n = classes.shape[0]
    fits = (n in (1, 2) and n_outputs == 1) if y_type == "binary" else \
        (n == n_outputs and n >= (2 if y_type == "multiclass" else 1))
    if not fits:
        raise ValueError(f"{n} classes of y_type {y_type!r} do not fit a network of "
                         f"{n_outputs} outputs")
    return classes, y_type


def rebuild(model, entry, arrays):
    """The estimator around the loaded network ``model``; raises KeyError, TypeError or
    ValueError when the entry does not fit it.

    Every stored value is checked as training leaves it: the constructor parameters as
    ``fit`` checks them, the fitted attributes' types, ranges and sizes (finite losses, a
    validation score and loss curve of numbers, counts >= 0), the learning-rate state, the
    classes (distinct, sorted, as many as ``y_type`` and the outputs say) and that the network's
    loss and output activation are the ones the estimator would train."""
    from sklearn.preprocessing import LabelBinarizer

    from . import estimators
    if not isinstance(entry, dict):
        raise ValueError(f"the estimator entry must be an object; got {type(entry).__name__}")
    name = entry["class"]
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown estimator class {name!r}")
    cls = getattr(estimators, name)
    if not isinstance(entry["params"], dict):
        raise ValueError(f"the estimator's params must be an object; got {entry['params']!r}")
    estimator = cls(**{k: _decode_param(v) for k, v in entry["params"].items()})
    estimator._check_params()
    fitted = _check_fitted(entry["fitted"], model)
    seed = entry["seed"]
    if not _is_int(seed) or not 0 <= seed < 1 << 63:
        raise ValueError(f"seed must be an integer from 0 to 2**63 - 1; got {seed!r}")
    rate = _check_rate(entry["rate"]) if "rate" in entry else None
    classes = _check_classes(name, entry, arrays, model.sizes[-1])
    estimator.__dict__.update(fitted)
    if classes is not None:
        binarizer = LabelBinarizer()
        binarizer.classes_, binarizer.y_type_ = classes
        binarizer.sparse_input_ = False
        estimator._label_binarizer = binarizer
        estimator.classes_ = classes[0]
    loss = estimator._loss_name(model.sizes[-1])
    if model.loss_name != loss:
        raise ValueError(f"the network's loss {model.loss_name!r} does not fit the "
                         f"{name}, which trains with {loss!r}")
    activation = estimator._out_activation(model.sizes[-1])
    if fitted.get("out_activation_", activation) != activation:
        raise ValueError(f"out_activation_ must be {activation!r} for this {name}; got "
                         f"{fitted['out_activation_']!r}")
    estimator.model_ = model
    estimator._mlp_init_kwargs = estimator._mlp_kwargs(
        list(model.sizes), model.loss_name, seed, model.dtype)
    if rate is not None:
        from .estimators import _LearningRate
        learning_rate = _LearningRate(estimator.learning_rate,
                                      float(estimator.learning_rate_init),
                                      float(estimator.power_t), estimator.solver == "sgd")
        learning_rate.rate, learning_rate.epoch = rate
        estimator._rate = learning_rate
    if "estimator_feature_names" in arrays:
        estimator.feature_names_in_ = arrays["estimator_feature_names"].astype(object)
    estimator._bind_params()
    return estimator
