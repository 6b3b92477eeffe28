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


def rebuild(model, entry, arrays):
    """The estimator around the loaded network ``model``; raises KeyError, TypeError or
    ValueError when the entry does not fit it."""
    from sklearn.preprocessing import LabelBinarizer

    from . import estimators
    name = entry["class"]
    if name not in _CLASSES:
        raise ValueError(f"unknown estimator class {name!r}")
    cls = getattr(estimators, name)
    estimator = cls(**{k: _decode_param(v) for k, v in entry["params"].items()})
    estimator._check_params()
    fitted = entry["fitted"]
    unknown = sorted(set(fitted) - set(_FITTED))
    if unknown:
        raise ValueError(f"unknown fitted attributes {unknown}")
    estimator.__dict__.update(fitted)
    if estimator.n_features_in_ != model.sizes[0] or estimator.n_outputs_ != model.sizes[-1]:
        raise ValueError(f"the estimator's {estimator.n_features_in_} features and "
                         f"{estimator.n_outputs_} outputs do not fit the network "
                         f"{model.sizes}")
    estimator.model_ = model
    estimator._mlp_init_kwargs = estimator._mlp_kwargs(
        list(model.sizes), model.loss_name, int(entry["seed"]), model.dtype)
    if "rate" in entry:
        from .estimators import _LearningRate
        rate = _LearningRate(estimator.learning_rate, float(estimator.learning_rate_init),
                             float(estimator.power_t), estimator.solver == "sgd")
        rate.rate, rate.epoch = float(entry["rate"]["rate"]), int(entry["rate"]["epoch"])
        estimator._rate = rate
    if name == "MLPClassifier":
        classes = arrays["estimator_classes"]
        binarizer = LabelBinarizer()
        binarizer.classes_, binarizer.y_type_ = classes, entry["y_type"]
        binarizer.sparse_input_ = False
        estimator._label_binarizer = binarizer
        estimator.classes_ = classes
    if "estimator_feature_names" in arrays:
        estimator.feature_names_in_ = arrays["estimator_feature_names"].astype(object)
    estimator._bind_params()
    return estimator
