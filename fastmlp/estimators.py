"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` on fastmlp's kernels.

They take the parameters of ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` where
the concept is the same, expose the fitted attributes scikit-learn users read (``classes_``,
``coefs_``, ``intercepts_``, ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
``n_iter_``, ...), and add fastmlp's own options (``l1``, ``dropout``, ``batch_norm``, ``init``,
gradient clipping, ``dtype``, any ``fastmlp.optimizers`` optimizer as ``solver`` and any
``fastmlp.schedules`` schedule as ``learning_rate``). They work in ``Pipeline``,
``GridSearchCV``, ``cross_val_score``, ``clone`` and pickle; training runs in fastmlp's kernels
with the GIL released, so a search on joblib's threading backend trains in parallel.

scikit-learn is an optional dependency (``pip install "fastmlp[sklearn]"``, or from a source
checkout ``pip install ".[sklearn]"``), imported only here: ``import fastmlp`` does not import
it. A fitted estimator saves to fastmlp's safe model format
(``estimator.save(path)``, ``fastmlp.load(path)``).

How a fit drives the engine (``fastmlp._engine``): X is checked once (a C-contiguous float
ndarray with integer labels, or float targets, by a finiteness pass and a count of the labels,
without scikit-learn's general machinery, which costs milliseconds); the rows an epoch visits
are handed to the kernel as indices in scikit-learn's permutation order (the validation split
of ``early_stopping`` is taken on indices too), so X is never copied; and one kernel call runs
as many epochs as the stopping rule allows: with the ``tol`` / ``n_iter_no_change`` rule on the
training loss no stop can come before ``n_iter_no_change + 1 - (epochs already without
improvement)`` more epochs, so that many run at once. Only ``early_stopping``, ``verbose`` and
adaptive schedules need Python after every epoch. Ctrl-C ends the fit as in scikit-learn (the
warning "Training interrupted by user.", the weights kept), in whatever thread it runs.

With scikit-learn's parameters, training follows scikit-learn's algorithm step for step: the same
Glorot-uniform initial weights and biases drawn from ``check_random_state(random_state)``, the
same validation split and per-epoch shuffles drawn from it afterwards, the same batches, the
same update rules, learning-rate logic (``"invscaling"`` counts samples, ``"adaptive"`` divides
by 5) and stopping rule (``tol``, ``n_iter_no_change``). What differs, on purpose or because
fastmlp computes it differently:

* L2 penalty. scikit-learn adds ``0.5 * alpha * ||W||^2 / m`` to the mean loss of each batch of
  ``m`` samples (``m`` the batch's weight sum when weighted). fastmlp's penalty is one
  coefficient for the whole fit, so it uses ``l2 = alpha / (batch_size * mean(sample_weight))``:
  exactly scikit-learn's for every full batch, slightly weaker on a smaller last batch.
  ``solver="lbfgs"`` uses ``alpha / sum(sample_weight)`` (or ``alpha / n_samples``), exactly.
* Sample weights. scikit-learn divides a batch's weighted loss by the batch's weight sum;
  fastmlp scales the weights to mean 1 over the training set and divides by the batch size.
  The two agree for full-batch training and on average otherwise.
* Adam. scikit-learn adds ``epsilon`` to the uncorrected ``sqrt(v)``, fastmlp to the
  bias-corrected one (``fastmlp.optimizers.Adam``): a difference only while ``sqrt(v)`` is
  comparable to ``epsilon``.
* Reported loss. The penalty in ``loss_`` is taken at the epoch's end rather than summed over
  the batches. For several regression outputs ``loss_`` is, as in scikit-learn, half the squared
  error averaged over the outputs (the gradient is that of the sum over outputs, in both).
* Input. X may be a ``scipy.sparse`` matrix or array (CSR, CSC, ...): the first layer reads
  its non-zeros, it is never densified. ``MLPRegressor`` takes scikit-learn's
  ``loss="poisson"`` (log link, exponential output) and fastmlp's ``"absolute_error"`` and
  ``"huber"``.
"""
import copy
import math
import numbers
import operator
import warnings

import numpy as np

try:
    import scipy.optimize
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_array, check_random_state, column_or_1d
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted
except ImportError as error:                       # pragma: no cover - depends on the install
    raise ImportError("fastmlp.MLPClassifier and fastmlp.MLPRegressor need scikit-learn >= 1.3: "
                      'pip install "fastmlp[sklearn]" (from a source checkout: '
                      'pip install ".[sklearn]")') from error
try:
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:                                # pragma: no cover - scikit-learn < 1.6
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

from . import _engine
from . import _threads
from . import optimizers as _optimizers
from .activations import resolve_activations
from ._engine import EpochRunner, TrainingDiverged
from ._kernels import _sparse, _train
from .mlp import MLP
from .schedules import get_schedule

# Most epochs in one kernel call when the kernel draws the orders (bounds the losses' buffer).
_MAX_EPOCHS_PER_CALL = 4096

__all__ = ["MLPClassifier", "MLPRegressor"]

_SKLEARN_SCHEDULES = ("constant", "invscaling", "adaptive")
# A dense prediction that BLAS runs on one thread anyway (fastmlp.set_num_threads(1), or
# products too small for more), through layers of at most _CACHE_WEIGHTS
# weights each, runs _CACHE_ROWS rows at a time: the chunk's activations stay in the core's
# cache next to the weights. On digits' network (64-100-10) 1000 rows predict 10-15% faster
# than in one pass; a wide first layer (784-256) needs long passes instead.
_CACHE_ROWS = 32
_CACHE_WEIGHTS = 1 << 14
_REGRESSION_LOSSES = ("squared_error", "poisson", "absolute_error", "huber")
_SKLEARN_ACTIVATIONS = {"logistic": "sigmoid"}


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_number(name, value, low, high=None, low_open=False, high_open=False,
                  integer=False, none=False):
    """Refuse ``value`` unless it is a finite number (an integer when ``integer``) in the
    interval from ``low`` to ``high`` (None: unbounded), or None when ``none``; the message
    names the estimator's parameter and the interval as it is."""
    if none and value is None:
        return
    ok_type = _is_int(value) if integer else (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)))
    inside = ok_type and (integer or math.isfinite(value)) and \
        (low < value if low_open else low <= value) and \
        (high is None or (value < high if high_open else value <= high))
    if not inside:
        kind = "an integer" if integer else "a finite number"
        interval = ("(" if low_open else "[") + f"{low:g}, " + (
            "inf)" if high is None else f"{high:g}" + (")" if high_open else "]"))
        raise ValueError(f"{name} must be {'None or ' if none else ''}{kind} in {interval}; "
                         f"got {value!r}")


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")


def _stochastic_solver(estimator):
    """partial_fit exists for the stochastic solvers only (not for "lbfgs")."""
    return estimator.solver != "lbfgs"


def _check_fits_float32(X):
    """Raise ValueError when the finite float64 X (dense, C-contiguous, or sparse) holds a
    value beyond float32's range, which a float32 network would read as an infinity."""
    limit = float(np.finfo(np.float32).max)
    if scipy.sparse.issparse(X):
        values = X.data
        bound = float(np.max(np.abs(values))) if values.size else 0.0
    else:
        bound = _train.max_abs(X)
    if bound <= limit:
        return
    if scipy.sparse.issparse(X):
        X = X.tocsr()
        first = int(np.flatnonzero(np.abs(X.data) > limit)[0])
        row = int(np.searchsorted(X.indptr, first, side="right")) - 1
    else:
        row = int(np.flatnonzero((np.abs(X) > limit).any(axis=1))[0])
    raise ValueError(f"X holds values beyond the range of float32 (|x| up to {bound:.3g} > "
                     f"{limit:.3g}, first in row {row}), which this float32 network would "
                     f"read as infinity: scale X, or train the model with dtype=numpy.float64 "
                     f"(or on float64 X)")


def _encode_integer_labels(y):
    """(classes, codes) of 1-D integer labels y (not uint64): the distinct labels, sorted, of
    y's dtype (as ``sklearn.utils.multiclass.unique_labels`` gives them), and the index of
    each label among them; None for fewer than two classes. By counting when the labels span
    a range not much wider than there are samples, else by sorting."""
    yi = y.astype(np.intp, copy=False)
    lo, hi = int(yi.min()), int(yi.max())
    if hi - lo <= 2 * yi.shape[0] + 256:
        shifted = yi - lo if lo else yi
        present = np.bincount(shifted) > 0
        classes = (np.flatnonzero(present) + lo).astype(y.dtype)
        codes = (np.cumsum(present) - 1)[shifted]
    else:
        classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        return None
    return classes, codes.astype(np.intp, copy=False)


class _FitProgress:
    """Whether the kernels have begun to change the network's weights in this call: from then
    on a failure (divergence) leaves the network at its last finite state, with the attributes
    of the data it was trained on; before, the estimator is put back as it was."""

    __slots__ = ("trained",)

    def __init__(self):
        self.trained = False


class _SavedState:
    """What a ``fit`` or ``partial_fit`` call may change before training begins: the
    estimator's attributes and, when training would continue the fitted network in place, the
    settings it writes on that network (the penalty's scale, the rate) and its generator."""

    def __init__(self, estimator):
        self.attributes = estimator.__dict__.copy()
        model = self.model = self.attributes.get("model_")
        if model is not None:
            self.settings = {name: model.__dict__[name] for name in ("l2", "lr", "_lr_set")
                             if name in model.__dict__}
            rng = getattr(model, "_rng", None)
            self.rng_state = None if rng is None else rng.bit_generator.state

    def restore(self, estimator):
        attributes = estimator.__dict__
        for name in [name for name in attributes if name not in self.attributes]:
            del attributes[name]
        attributes.update(self.attributes)
        model = self.model
        if model is not None:
            for name, value in self.settings.items():
                setattr(model, name, value)
            if self.rng_state is not None:
                model._rng.bit_generator.state = self.rng_state


class _LearningRate:
    """The learning-rate logic of scikit-learn's stochastic optimizers, between epochs.

    For ``solver="sgd"``: "constant", "invscaling" (``lr_init / (t + 1) ** power_t`` after
    ``t`` samples) and "adaptive" (divide by 5 instead of stopping, stop below 1e-6). Adam uses
    ``lr_init`` throughout, as in scikit-learn. Any other ``learning_rate`` is a
    ``fastmlp.schedules`` schedule, asked for each epoch's rate and told the training loss.
    """

    def __init__(self, learning_rate, lr_init, power_t, sgd):
        self.lr_init = lr_init
        self.power_t = power_t
        self.rate = lr_init
        self.epoch = 0
        self.schedule = None
        if isinstance(learning_rate, str) and learning_rate in _SKLEARN_SCHEDULES:
            self.kind = learning_rate if sgd else "constant"
        else:
            self.kind = "schedule"
            self.schedule = copy.deepcopy(get_schedule(learning_rate))
            self.schedule.reset()

    @property
    def per_epoch(self):
        """Whether each epoch's rate depends on the loss of the one before."""
        return self.kind == "schedule" and self.schedule.adaptive

    def block(self, count, samples_seen, n_samples):
        """The rates of the next ``count`` epochs of ``n_samples`` samples each, after
        ``samples_seen`` samples (the decisions of ``trigger_stopping`` come between blocks)."""
        if self.kind == "schedule":
            if self.schedule.adaptive:
                return np.array([self.schedule.rate(self.epoch + 1, self.lr_init)])
            return self.schedule.rates(self.lr_init, count, start=self.epoch + 1)
        if self.kind == "invscaling":
            return np.array([self.rate] + [
                self.lr_init / (samples_seen + j * n_samples + 1) ** self.power_t
                for j in range(1, count)])
        return np.full(count, self.rate)

    def epoch_ends(self, samples_seen, loss):
        self.epoch += 1
        if self.kind == "invscaling":
            self.rate = self.lr_init / (samples_seen + 1) ** self.power_t
        elif self.kind == "schedule" and self.schedule.adaptive:
            self.schedule.observe(self.epoch, loss)

    def trigger_stopping(self):
        """Return (stop, message suffix) once the loss or score has stopped improving."""
        if self.kind != "adaptive":
            return True, " Stopping."
        if self.rate <= 1e-6:
            return True, " Learning rate too small. Stopping."
        self.rate /= 5.0
        return False, f" Setting learning rate to {self.rate:f}"


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: configuration, the loops, the attributes."""

    _task = None

    # -- configuration ------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__") or isinstance(sizes, str):
            sizes = [sizes]
        sizes = list(sizes)
        if not all(_is_int(s) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a positive int or a sequence of "
                             f"positive ints, e.g. (100,) or (64, 32); got "
                             f"{self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _check_params(self):
        """Check the parameters that fastmlp's MLP does not check itself."""
        if not (isinstance(self.solver, _optimizers.Optimizer)
                or (isinstance(self.solver, str)
                    and (self.solver == "lbfgs" or self.solver in _optimizers.OPTIMIZERS))):
            raise ValueError(f"solver must be 'adam', 'sgd', 'lbfgs', another fastmlp optimizer "
                             f"name ({', '.join(map(repr, _optimizers.OPTIMIZERS))}) or a "
                             f"fastmlp.optimizers instance; got {self.solver!r}")
        # Every number is checked here, in the estimator's words, before fastmlp's MLP checks
        # it again under its own names (l2, lr, beta1, ...).
        try:
            resolve_activations(self._activation(), len(self._hidden_sizes()))
        except ValueError as error:
            raise ValueError(str(error).replace("hidden_activation", "activation")) from None
        _check_number("alpha", self.alpha, 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_number("batch_size", self.batch_size, 1, integer=True)
        if not (isinstance(self.learning_rate, str) and self.learning_rate in _SKLEARN_SCHEDULES):
            try:
                get_schedule(self.learning_rate)
            except (TypeError, ValueError) as error:
                detail = str(error).replace("schedule must be", "it must be")
                raise type(error)(
                    f"learning_rate must be scikit-learn's 'constant', 'invscaling' or "
                    f"'adaptive', or a fastmlp schedule: {detail}") from None
        _check_number("learning_rate_init", self.learning_rate_init, 0, low_open=True)
        _check_number("power_t", self.power_t, 0)
        _check_number("max_iter", self.max_iter, 1, integer=True)
        _check_number("max_fun", self.max_fun, 1, integer=True)
        _check_number("tol", self.tol, 0)
        _check_number("momentum", self.momentum, 0, 1)          # scikit-learn's [0, 1]
        _check_number("validation_fraction", self.validation_fraction, 0, 1, high_open=True)
        _check_number("beta_1", self.beta_1, 0, 1, high_open=True)
        _check_number("beta_2", self.beta_2, 0, 1, high_open=True)
        _check_number("epsilon", self.epsilon, 0, low_open=True)
        _check_number("l1", self.l1, 0)
        _check_number("clip_norm", self.clip_norm, 0, low_open=True, none=True)
        _check_number("clip_value", self.clip_value, 0, low_open=True, none=True)
        rates = self.dropout if isinstance(self.dropout, (list, tuple, np.ndarray)) \
            else [self.dropout]
        if not all(isinstance(r, numbers.Real) and not isinstance(r, (bool, np.bool_))
                   for r in rates):
            raise ValueError(f"dropout must be a number or one number per hidden layer; got "
                             f"{self.dropout!r}")
        for rate in rates:
            _check_number("dropout", rate, 0, 1, high_open=True)
        self._check_task_params()
        try:
            dtype = None if self.dtype is None else np.dtype(self.dtype)
        except TypeError:
            dtype = "invalid"
        if dtype not in (None, np.float64, np.float32):
            raise ValueError(f"dtype must be None, numpy.float64 or numpy.float32; got "
                             f"{self.dtype!r}")
        if not (self.n_iter_no_change == np.inf or _is_int(self.n_iter_no_change)) \
                or self.n_iter_no_change < 1:
            raise ValueError(f"n_iter_no_change must be an integer >= 1 or numpy.inf; got "
                             f"{self.n_iter_no_change!r}")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            _check_bool(name, getattr(self, name))
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"verbose must be a bool or an int; got {self.verbose!r}")
        if self.solver == "lbfgs":
            if np.any(np.asarray(self.dropout, dtype=float) != 0) or np.any(self.batch_norm):
                raise ValueError("solver='lbfgs' minimizes the full-batch loss, which has no "
                                 "dropout and no batch statistics; use solver='adam' or 'sgd' "
                                 "with dropout or batch_norm")

    def _check_task_params(self):
        """Check the parameters of the classifier or the regressor only."""

    def _optimizer(self):
        solver = self.solver
        if solver == "adam":
            return _optimizers.Adam(beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)
        if solver == "sgd":
            if self.momentum == 0:
                return _optimizers.SGD()
            rule = _optimizers.Nesterov if self.nesterovs_momentum else _optimizers.Momentum
            return rule(momentum=self.momentum)
        if solver == "lbfgs":
            return "sgd"                           # unused: scipy's L-BFGS-B drives training
        return copy.deepcopy(_optimizers.get_optimizer(solver))

    def _activation(self):
        act = self.activation
        return _SKLEARN_ACTIVATIONS.get(act, act) if isinstance(act, str) else act

    def _mlp_kwargs(self, sizes, loss, seed, dtype):
        return dict(layer_sizes=sizes, lr=self.learning_rate_init, seed=seed,
                    hidden_activation=self._activation(), dtype=dtype, loss=loss,
                    l1=self.l1, optimizer=self._optimizer(), clip_norm=self.clip_norm,
                    clip_value=self.clip_value, dropout=self.dropout,
                    batch_norm=self.batch_norm, init=self.init, **self._loss_kwargs())

    def _new_model(self, sizes, loss, rs, dtype):
        """A new MLP, with scikit-learn's initial weights unless ``init`` names another rule."""
        needs_seed = self.init is not None or np.any(np.asarray(self.dropout, dtype=float) > 0)
        if self.init is None:
            # scikit-learn's rule (Glorot et al.): weights and biases U(-bound, bound), layer by
            # layer, weights first.
            factor = 2.0 if self._activation() == "sigmoid" else 6.0
            draws = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                bound = np.sqrt(factor / (fan_in + fan_out))
                draws.append((rs.uniform(-bound, bound, (fan_in, fan_out)),
                              rs.uniform(-bound, bound, fan_out)))
        # The MLP's own generator only seeds dropout masks (and `init`): drawn from the random
        # state after the weights, and only when needed, so the default path consumes it as
        # scikit-learn does.
        seed = int(rs.randint(np.iinfo(np.int32).max)) if needs_seed else 0
        kwargs = self._mlp_kwargs(sizes, loss, seed, dtype)
        model = MLP(**kwargs)
        if self.init is None:
            for k, (W, b) in enumerate(draws):
                model.W[k] = W
                model.b[k] = b
        return model, kwargs

    def _rebuilt_model(self, sizes, loss, dtype):
        """A fresh MLP (new optimizer state, current parameters) holding the fitted weights,
        for a warm-started ``fit``."""
        old = self.model_
        kwargs = self._mlp_kwargs(sizes, loss, 0, dtype)
        kwargs["seed"] = self._mlp_init_kwargs["seed"]
        model = MLP(**kwargs)
        if model.params.shape != old.params.shape or model.bn_state.shape != old.bn_state.shape:
            raise ValueError("warm_start=True continues the fitted network, but the parameters "
                             "now describe another architecture; set warm_start=False to start "
                             "afresh")
        model._rng = old._rng
        model.params[:] = old.params
        model.bn_state[:] = old.bn_state
        model.classes_ = old.classes_
        return model, kwargs

    def _check_sample_weight(self, sample_weight, n_samples):
        if sample_weight is None:
            return None
        if isinstance(sample_weight, numbers.Real):
            # As scikit-learn's _check_sample_weight: a number weighs every sample alike.
            sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
        sw = check_array(sample_weight, ensure_2d=False, dtype=np.float64,
                         input_name="sample_weight")
        if sw.shape != (n_samples,):
            raise ValueError(f"sample_weight has shape {sw.shape}; it needs one weight per "
                             f"sample, shape ({n_samples},)")
        if np.any(sw < 0) or not np.any(sw > 0):
            raise ValueError("sample_weight must be non-negative and not all zero")
        return sw

    def _plain_X(self, X, dtype, reset):
        """Whether X is a plain array that ``validate_data`` would return unchanged: a 2-D,
        C-contiguous, finite ndarray of an accepted dtype, with no feature names to check and
        (unless ``reset``) the fitted number of features. The caller then sets
        ``n_features_in_`` when ``reset``, as ``validate_data`` does; otherwise scikit-learn's
        validation runs, with its conversions, warnings and errors.

        scikit-learn's checks cost milliseconds a fit in Python (its dataframe detection, its
        target typing), time held under the GIL: the common case skips them."""
        return (type(X) is np.ndarray and X.ndim == 2 and X.flags.c_contiguous
                and X.shape[0] > 0 and X.shape[1] > 0
                and (X.dtype in (np.float64, np.float32) if isinstance(dtype, tuple)
                     else X.dtype == dtype)
                and "feature_names_in_" not in self.__dict__
                and (reset or X.shape[1] == self.__dict__.get("n_features_in_", X.shape[1]))
                and _train.all_finite(X))

    # -- fitting ------------------------------------------------------------------------------

    def _input_dtype(self, first_pass):
        """The dtype X is converted to: ``dtype`` when given, else the fitted model's when
        training continues, else X's own when it is float32 and float64 otherwise (as
        scikit-learn)."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        model = self.__dict__.get("model_")
        if model is not None and not first_pass:
            return model.dtype
        return (np.float64, np.float32)

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        """Check the parameters and the data, then train. A call that fails before training
        begins (a bad parameter, X, y or sample_weight, an interruption) leaves the estimator
        as it was: its attributes, the label encoding and the network; a fit that diverges
        keeps its last finite state (see ``_diverged``)."""
        saved = _SavedState(self)
        progress = _FitProgress()
        try:
            if incremental:
                self._start_partial_fit(y, classes)
            return self._fit_checked(X, y, sample_weight, incremental, progress)
        except BaseException:
            if not progress.trained:
                saved.restore(self)
            raise

    def _start_partial_fit(self, y, classes):
        """What the first ``partial_fit`` call defines before the data are checked (the
        classifier's classes)."""

    def _fit_checked(self, X, y, sample_weight, incremental, progress):
        self._check_params()
        hidden = self._hidden_sizes()
        started = "model_" in self.__dict__ or "coefs_" in self.__dict__
        first_pass = not started or (not self.warm_start and not incremental)
        X, Y, y = self._validate_input(X, y, incremental, reset=first_pass,
                                       dtype=self._input_dtype(first_pass))
        n_samples, n_features = X.shape
        model = self.__dict__.get("model_")
        if not first_pass and model is not None and Y.shape[1] != model.sizes[-1]:
            call = "partial_fit" if incremental else "a warm-started fit"
            raise ValueError(f"y has {Y.shape[1]} output(s) (columns), but the fitted network "
                             f"has {model.sizes[-1]}: {call} continues it on targets of the "
                             f"same shape; fit with warm_start=False to train afresh on these")
        sw = self._check_sample_weight(sample_weight, n_samples)
        sizes = [n_features, *hidden, Y.shape[1]]
        loss = self._loss_name(Y.shape[1])
        rs = check_random_state(self.random_state)
        stochastic = self.solver != "lbfgs"
        if incremental and not stochastic:
            raise ValueError("partial_fit needs a stochastic solver; solver='lbfgs' is not")
        if first_pass:
            self.__dict__.pop("coefs_", None)
            self.__dict__.pop("intercepts_", None)
            self.model_, self._mlp_init_kwargs = self._new_model(sizes, loss, rs, X.dtype)
            self.n_iter_ = 0
            self.t_ = 0
            self.n_layers_ = len(sizes)
            self.out_activation_ = self._out_activation(Y.shape[1])
            for name in ("loss_curve_", "best_loss_", "validation_scores_",
                         "best_validation_score_"):
                self.__dict__.pop(name, None)
        elif "model_" not in self.__dict__:
            # coefs_ / intercepts_ assigned before the first partial_fit (or a warm-started
            # fit): training starts from them, as in scikit-learn.
            self.model_ = MLP(**self._mlp_kwargs(sizes, loss, 0, X.dtype))
            self._mlp_init_kwargs = self._mlp_kwargs(sizes, loss, 0, X.dtype)
            self._sync_params()
            for name, value in (("n_iter_", 0), ("t_", 0), ("n_layers_", len(sizes)),
                                ("n_features_in_", n_features),
                                ("out_activation_", self._out_activation(Y.shape[1]))):
                self.__dict__.setdefault(name, value)
        else:
            self._sync_params()
            if not incremental:
                self.model_, self._mlp_init_kwargs = self._rebuilt_model(sizes, loss, X.dtype)
        self.n_outputs_ = Y.shape[1]
        self._bind_params()
        if scipy.sparse.issparse(X):
            # A canonical CSR matrix of the network's dtype (not copied when it is one): the
            # kernels read its rows' non-zeros, X is never densified.
            X = self.model_._check_X(X)
        if stochastic and not hasattr(self, "loss_curve_"):
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self.best_loss_ = None if self.early_stopping else np.inf
        if stochastic:
            if not incremental or not hasattr(self, "_rate"):
                self._rate = _LearningRate(self.learning_rate, float(self.learning_rate_init),
                                           float(self.power_t), self.solver == "sgd")
            self._fit_stochastic(X, Y, y, sw, rs, incremental, progress)
        else:
            self._fit_lbfgs(X, Y, sw, progress)
        return self

    def _reported_loss(self, objective):
        """fastmlp's objective on scikit-learn's scale: for several regression outputs the
        data loss is averaged over the outputs (the penalty is not)."""
        if not self._loss_per_output():
            return float(objective)
        model = self.model_
        penalty = sum(0.5 * model.l2 * float(np.sum(W * W)) + model.l1 * float(np.sum(np.abs(W)))
                      for W in model.W)
        return (float(objective) - penalty) / self.n_outputs_ + penalty

    def _loss_per_output(self):
        """Whether scikit-learn averages this loss over the outputs (the half squared error;
        the Poisson deviance it sums, as fastmlp)."""
        return self._task == "regression" and self.n_outputs_ > 1 and self.loss != "poisson"

    def _engine_weights(self, sw, train_idx, n_rows, dtype):
        """The engine's per-row weights: the training rows' weights scaled to mean 1 (other
        rows, never visited, 0); None when they are all equal."""
        if sw is None:
            return None
        train = sw if train_idx is None else sw[train_idx]
        if not np.any(train > 0):
            raise ValueError("every training sample has weight 0 (after the validation split "
                             "of early_stopping); give some of them a positive weight")
        if np.all(train == train[0]):
            return None
        scaled = train * (train.shape[0] / train.sum())
        if train_idx is None:
            return np.ascontiguousarray(scaled, dtype=dtype)
        w = np.zeros(n_rows, dtype=dtype)
        w[train_idx] = scaled
        return w

    def _fit_stochastic(self, X, Y, y, sw, rs, incremental, progress):
        """Epochs in blocks: each block is one call into the engine, as long as scikit-learn's
        stopping rule allows; the rows are visited by index, X is never copied."""
        model = self.model_
        early_stopping = self.early_stopping
        if early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        n_rows = X.shape[0]
        train_idx = X_val = y_val = sw_val = None
        if early_stopping:
            # scikit-learn's split (the same draws: it depends on the number of rows and the
            # labels only), taken on the row indices; stratified for one classifier output.
            stratify = Y.astype(bool) if self._task == "classification" and Y.shape[1] == 1 \
                else None
            train_idx, val_idx = train_test_split(
                np.arange(n_rows), random_state=rs, test_size=self.validation_fraction,
                stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset (or set "
                                 "early_stopping=False).")
            X_val, y_val = X[val_idx], y[val_idx]
            sw_val = None if sw is None else sw[val_idx]
        n_train = n_rows if train_idx is None else train_idx.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn(f"Got `batch_size` less than 1 or larger than sample size. It is "
                              f"going to be clipped: batch_size={self.batch_size} is larger "
                              f"than the {n_train} training samples, so {n_train} is used.")
            batch_size = min(self.batch_size, n_train)
        train_sw = sw if sw is None or train_idx is None else sw[train_idx]
        model.l2 = self.alpha / (batch_size * (1.0 if sw is None else float(train_sw.mean())))
        w = self._engine_weights(sw, train_idx, n_rows, model.dtype)
        dropout_seed = (int(model._rng.integers(2**63))
                        if any(r > 0 for r in model.dropout) else 0)
        rate = self._rate
        # Python must look after every epoch for a validation score, a printed line, an
        # adaptive schedule, or a loss whose penalty share depends on that epoch's weights.
        per_epoch = (incremental or early_stopping or bool(self.verbose) or rate.per_epoch
                     or self._loss_per_output())
        if early_stopping:
            # The weights to return if no epoch beats the best score so far: the initial ones,
            # or after a warm start those of the previous fit, as scikit-learn does.
            self._best_state = (model.params.copy(), model.bn_state.copy())
        max_epochs = 1 if incremental else self.max_iter
        sample_idx = np.arange(n_train)
        self.n_iter_ = 0
        try:
            with EpochRunner(model, X, Y, w, batch_size, dropout_seed) as runner:
                # The kernel draws scikit-learn's shuffles itself when it can (one row of
                # orders, carried from epoch to epoch as scikit-learn's sample_idx is: the
                # same swaps on train_idx[sample_idx] give train_idx[shuffle(sample_idx)]);
                # else a block of orders drawn here.
                in_kernel = not self.shuffle or _engine.draws_in_kernel(rs)
                if in_kernel:
                    base = np.array(sample_idx if train_idx is None else train_idx,
                                    dtype=np.intp)
                    block = 1 if per_epoch else min(max_epochs, _MAX_EPOCHS_PER_CALL)
                else:
                    block = 1 if per_epoch else min(runner.epochs_per_call(n_train), max_epochs)
                    orders = np.empty((block, n_train), dtype=np.intp)
                losses = np.empty(block)
                stop = False
                while not stop and self.n_iter_ < max_epochs:
                    count = 1 if per_epoch else self._epochs_before_a_stop(
                        max_epochs - self.n_iter_, block)
                    if not in_kernel:
                        for order in orders[:count]:
                            # sklearn.utils.shuffle(sample_idx, random_state=rs), scikit-learn's
                            # draw, is sample_idx[rs.permutation(n)]: the same swaps as
                            # rs.shuffle(sample_idx), done here in place, without its checks.
                            rs.shuffle(sample_idx)
                            if train_idx is None:
                                order[:] = sample_idx
                            else:
                                np.take(train_idx, sample_idx, out=order)
                    rates = rate.block(count, self.t_, n_train)
                    before = runner.epochs_done
                    progress.trained = True
                    try:
                        if in_kernel:
                            runner.run(base, rates, losses, rs if self.shuffle else None,
                                       carry=True)
                        else:
                            runner.run(orders[:count], rates, losses)
                    except TrainingDiverged as diverged:
                        for loss in losses[:runner.epochs_done - before]:
                            self._epoch_ends(loss, n_train, X_val, y_val, sw_val, max_epochs)
                        self._diverged(diverged, n_train, max_epochs)
                        break
                    done = runner.epochs_done - before
                    if done:
                        model.lr = model._lr_set = float(rates[done - 1])
                    for loss in losses[:done]:
                        stop = self._epoch_ends(loss, n_train, X_val, y_val, sw_val, max_epochs)
                        if stop:
                            break
                    if runner.interrupted:
                        warnings.warn("Training interrupted by user.")
                        break
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        except TrainingDiverged as diverged:
            # Raised on leaving the runner: the last epoch made the outputs overflow (it is
            # undone). With early stopping the best epoch's weights come back below.
            if not early_stopping:
                self._diverged(diverged, n_train, max_epochs)
        finally:
            if early_stopping:
                model.params[:], model.bn_state[:] = self._best_state
                del self._best_state

    def _epochs_before_a_stop(self, remaining, most):
        """How many epochs may run before the stopping rule could fire: the count of epochs
        without improvement grows by at most one per epoch and stops training (or, for
        "adaptive", changes the rate) once it exceeds ``n_iter_no_change``."""
        count = min(remaining, most)
        if self.n_iter_no_change != np.inf:
            count = min(count, int(self.n_iter_no_change) + 1 - self._no_improvement_count)
        return max(1, count)

    def _epoch_ends(self, loss, n_train, X_val, y_val, sw_val, max_epochs):
        """scikit-learn's bookkeeping after an epoch; return True to stop."""
        self.n_iter_ += 1
        self.t_ += n_train
        self.loss_ = self._reported_loss(loss)
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
        self._update_no_improvement_count(self.early_stopping, X_val, y_val, sw_val)
        self._rate.epoch_ends(self.t_, self.loss_)
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if self.early_stopping else "Training loss"
            stop, suffix = self._rate.trigger_stopping()
            if self.verbose:
                print(f"{what} did not improve more than tol={self.tol:f} for "
                      f"{self.n_iter_no_change} consecutive epochs.{suffix}")
            if stop:
                return True
            self._no_improvement_count = 0
        if self.n_iter_ == self.max_iter and max_epochs == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          f"reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)
        return False

    def _diverged(self, diverged, n_train, max_epochs):
        """Training diverged (the engine restored the last finite epoch's state).

        With early stopping, as scikit-learn (its issue 29504): the fit goes on to
        ``max_iter`` with NaN losses and validation scores (a NaN score resets the count of
        epochs without improvement) and ends with the best weights. Without, scikit-learn's
        error."""
        if not self.early_stopping:
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed. (fastmlp: the network keeps the "
                f"weights of the last finite epoch; standardize X, or lower learning_rate_init, "
                f"now {self.learning_rate_init:g}.)") from diverged
        while self.n_iter_ < max_epochs:
            self.n_iter_ += 1
            self.t_ += n_train
            self.loss_ = np.nan
            self.loss_curve_.append(np.nan)
            self.validation_scores_.append(np.nan)
            self._no_improvement_count = 0
            self._rate.epoch += 1
        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                      f"the optimization hasn't converged yet.", ConvergenceWarning)

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            score = self._validation_score(X_val, y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_state = (self.model_.params.copy(), self.model_.bn_state.copy())
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    def _validation_score(self, X, y, sample_weight):
        out = self.model_._predict_raw(X)
        if not np.all(np.isfinite(out)):
            return np.nan
        return float(self._score_function(y, self._decode(out), sample_weight=sample_weight))

    def _fit_lbfgs(self, X, Y, sw, progress):
        model = self.model_
        model.l2 = self.alpha / (X.shape[0] if sw is None else float(sw.sum()))

        # The data were checked once; each evaluation is one kernel call on the full batch.
        w = self._engine_weights(sw, None, X.shape[0], model.dtype)
        sparse = scipy.sparse.issparse(X)
        net = model._network(X.shape[0], sparse_input=sparse)
        workspace = np.empty(net.workspace_size, dtype=model.dtype)
        grad = np.empty_like(model.params)
        X = _sparse.CSR(X) if sparse else X

        def objective(theta):
            model.params[:] = theta
            value = _train.loss_and_gradient(net, model.params, model.bn_state.copy(), X, Y, w,
                                             workspace, grad)
            return value, grad.astype(np.float64)

        with _threads.blas_threads(model._blas_work(X.shape[0])):
            result = scipy.optimize.minimize(
                objective, model.params.astype(np.float64), method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        model.params[:] = result.x
        if not np.all(np.isfinite(model.params)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed. (fastmlp: "
                             "standardize X.)")
        progress.trained = True
        self.n_iter_ = int(result.nit)
        self.loss_ = self._reported_loss(result.fun)
        if self.verbose:
            print(f"L-BFGS-B: {self.n_iter_} iterations, loss = {self.loss_:.8f}")
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iterations "
                          f"({result.message}). Increase max_iter, or scale the data.",
                          ConvergenceWarning)

    # -- prediction and attributes ------------------------------------------------------------

    def _forward(self, X):
        """The network's outputs, (n_samples, n_outputs): float32 when the network and X are
        float32, else float64 (as scikit-learn, whose products follow NumPy's promotion)."""
        model = self.__dict__.get("model_")
        if model is None:
            check_is_fitted(self, "model_")
        self._sync_params()
        if (type(X) is np.ndarray and X.ndim == 2 and X.dtype == model.dtype and X.shape[0]
                and X.flags.c_contiguous and "feature_names_in_" not in self.__dict__):
            # The common case, checked without scikit-learn's general machinery (which costs
            # ten times a one-row prediction).
            if X.shape[1] != model.sizes[0]:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {model.sizes[0]} features as input.")
            if not _train.all_finite(X):
                raise ValueError("Input X contains NaN or infinity; remove or impute those "
                                 "values.")
            return self._predict_raw(model, X)
        X = _validate_data(self, X, reset=False, dtype=(np.float64, np.float32), order="C",
                           accept_sparse=["csr", "csc"])
        out_dtype = X.dtype if model.dtype == np.float32 else model.dtype
        if model.dtype == np.float32 and X.dtype != model.dtype:
            _check_fits_float32(X)
        if X.dtype != model.dtype or scipy.sparse.issparse(X):
            X = model._check_X(X)
        return self._predict_raw(model, X).astype(out_dtype, copy=False)

    def _predict_raw(self, model, X):
        """``model._predict_raw(X)`` with the engine's description of the network kept
        between calls (prediction reads only the architecture, which a fitted network never
        changes): a one-row prediction costs little more than the kernel."""
        sparse = scipy.sparse.issparse(X)
        n = X.shape[0]
        rows = model._predict_rows(n, sparse)
        if (rows > _CACHE_ROWS and not sparse
                and (_threads.get_num_threads() == 1
                     or model._blas_work(n) < _threads.MULTITHREAD_MIN)
                and model._blas_work(1) <= _CACHE_WEIGHTS):
            rows = _CACHE_ROWS
        if sparse:
            X = _sparse.CSR(X)
        cache = self.__dict__.get("_predict_networks")    # set with the views of model_
        if cache is None or cache[0] is not model:
            net = model._network(rows, sparse_input=sparse)
        else:
            net = cache[1].get((rows, sparse))
            if net is None:
                if len(cache[1]) >= 8:
                    cache[1].clear()
                net = cache[1][rows, sparse] = model._network(rows, sparse_input=sparse)
        workspace = np.empty(net.workspace_size, dtype=model.dtype)
        out = np.empty((n, model.sizes[-1]), dtype=model.dtype)
        work = model._blas_work(rows)
        with model._lock:                   # not while another thread trains the network
            if work < _threads.OPENBLAS_THREADING_MIN:
                _train.predict(net, model.params, model.bn_state, X, workspace, out)
            else:
                with _threads.blas_threads(work):
                    _train.predict(net, model.params, model.bn_state, X, workspace, out)
        return out

    def save(self, path):
        """Save the fitted estimator to ``path`` in fastmlp's model format (an ``.npz`` of
        arrays and JSON, no pickle, written atomically); ``fastmlp.load(path)`` returns it,
        exactly (see ``fastmlp.io.save``).

        Raises
        ------
        ValueError
            If the estimator is not fitted, or holds a setting a file cannot keep (a
            ``RandomState`` as ``random_state``, a function as ``learning_rate``, class
            labels that are neither numbers nor strings, e.g. ``datetime64``).

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastmlp
        >>> X = np.array([[0., 0.], [1., 1.], [0., 1.], [1., 0.]]); y = [0, 0, 1, 1]
        >>> clf = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs",
        ...                             random_state=0).fit(X, y)
        >>> path = os.path.join(tempfile.mkdtemp(), "clf.npz")
        >>> clf.save(path)
        >>> bool(np.array_equal(fastmlp.load(path).predict_proba(X), clf.predict_proba(X)))
        True
        """
        classes = self.__dict__.get("classes_")
        if classes is not None and np.asarray(classes).dtype.kind not in "biufUSO":
            # (Object labels are converted, or refused with a message, by fastmlp.io.)
            raise ValueError(f"cannot save a classifier whose class labels are of dtype "
                             f"{np.asarray(classes).dtype}: a model file holds class labels "
                             f"that are numbers (bool, integer, float) or strings; fit on "
                             f"labels converted with e.g. y.astype(str), or on integer codes, "
                             f"to save the model")
        from .io import save
        save(self, path)

    # coefs_ and intercepts_ are plain attributes, as in scikit-learn, holding views into the
    # network's flat buffer. A user may assign new lists (or new arrays into them): before the
    # network is next used their values are copied into it, and the views bound again.

    def _bind_params(self):
        self.coefs_ = list(self.model_.W)
        self.intercepts_ = list(self.model_.b)
        self._predict_networks = (self.model_, {})

    def _sync_params(self):
        """Copy assigned ``coefs_`` / ``intercepts_`` into the network."""
        model = self.model_
        for name, views in (("coefs_", model.W), ("intercepts_", model.b)):
            given = self.__dict__.get(name)
            if given is None or (type(given) is list and len(given) == len(views)
                                 and all(map(operator.is_, given, views))):
                continue
            given = list(given)
            if len(given) != len(views):
                raise ValueError(f"{name} has {len(given)} layers; the network has "
                                 f"{len(views)}: assign one array per layer")
            for k, (value, view) in enumerate(zip(given, views)):
                value = np.asarray(value)
                if value.shape != view.shape:
                    raise ValueError(f"{name}[{k}] has shape {value.shape}; layer {k} of the "
                                     f"network has shape {view.shape}")
                if value.dtype.kind not in "biuf" or not np.all(np.isfinite(value)):
                    raise ValueError(f"{name}[{k}] must hold finite real numbers")
                np.copyto(view, value, casting="unsafe")
            setattr(self, name, list(views))

    def __getstate__(self):
        state = super().__getstate__()
        if "_predict_networks" in state:
            state = dict(state)
            del state["_predict_networks"]
        model = state.get("model_")
        if model is not None:
            # The views are rebuilt on unpickling (a pickled view would become a copy).
            for name, views in (("coefs_", model.W), ("intercepts_", model.b)):
                given = state.get(name)
                if type(given) is list and all(a is v for a, v in zip(given, views)):
                    state = dict(state)
                    del state[name]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_" in self.__dict__:
            if "coefs_" not in self.__dict__:
                self.coefs_ = list(self.model_.W)
            if "intercepts_" not in self.__dict__:
                self.intercepts_ = list(self.model_.b)
            self._predict_networks = (self.model_, {})


_PARAMETERS_HEADER = """
    Parameters
    ----------
"""
# The parameters both estimators share, in scikit-learn's order, then fastmlp's.
_PARAMETERS_DOC = """    hidden_layer_sizes : int or tuple of int, default (100,)
        Width of each hidden layer.
    activation : str, default "relu"
        Hidden activation: scikit-learn's "identity", "logistic", "tanh", "relu", or any of
        fastmlp's (``fastmlp.activations.HIDDEN_ACTIVATIONS``, e.g. "gelu", "elu", or a pair
        ("leaky_relu", 0.1)).
    solver : str or fastmlp.optimizers.Optimizer, default "adam"
        "adam" (``beta_1``, ``beta_2``, ``epsilon``), "sgd" (plain, or with ``momentum``, Nesterov's
        when ``nesterovs_momentum``), "lbfgs" (scipy's L-BFGS-B on the full-batch loss, with
        ``max_iter``, ``max_fun`` and ``tol``), or another fastmlp optimizer: a name for its
        defaults ("rmsprop", "adagrad", ...) or an instance
        (``fastmlp.optimizers.AdamW(weight_decay=0.01)``).
    alpha : float, default 1e-4
        L2 penalty, with scikit-learn's scaling (see the module docstring).
    batch_size : int or "auto", default "auto"
        Samples per update; "auto" is ``min(200, n_samples)``.
    learning_rate : str, fastmlp.schedules.Schedule or callable, default "constant"
        For ``solver="sgd"``, scikit-learn's "constant", "invscaling" or "adaptive" (other
        solvers keep ``learning_rate_init``, as in scikit-learn). A fastmlp schedule (an instance,
        "plateau", or a function epoch -> rate) applies to every stochastic solver; an adaptive
        one observes the training loss.
    learning_rate_init : float, default 1e-3
    power_t : float, default 0.5
        Exponent of "invscaling": the rate after ``t`` samples is
        ``learning_rate_init / (t + 1) ** power_t``.
    max_iter : int, default 200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default None
        Draws the initial weights, the validation split and the shuffles (then the dropout
        seed). An int makes fitting repeatable.
    tol : float, default 1e-4
        Training stops when the training loss has not fallen by ``tol`` (or, with early stopping,
        the validation score has not risen by ``tol``) for more than ``n_iter_no_change``
        consecutive epochs.
    verbose : bool, default False
        Print the loss of every epoch.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (with a new optimizer state).
    momentum : float in [0, 1], default 0.9
        For ``solver="sgd"`` (the other solvers ignore it); at 1 the velocity is never damped.
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data, stop when its score stops
        improving and keep the weights of the best epoch.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default 10
    max_fun : int, default 15000
        Most loss evaluations for ``solver="lbfgs"``.
    l1 : float, default 0.0
        fastmlp: L1 penalty ``l1 * sum(|W|)`` (not rescaled).
    dropout : float or list of float, default 0.0
        fastmlp: inverted-dropout rate of each hidden layer.
    batch_norm : bool or list of bool, default False
        fastmlp: batch-normalize the hidden layers.
    init : str or None, default None
        fastmlp: initializer name (``fastmlp.initializers.INITIALIZERS``) instead of
        scikit-learn's Glorot-uniform weights and biases.
    clip_norm, clip_value : float or None, default None
        fastmlp: gradient clipping.
    dtype : None, numpy.float64 or numpy.float32, default None
        fastmlp: the precision of the parameters and the arithmetic. None: as scikit-learn,
        float32 when X is float32 (then predictions of float32 X are float32 too), else
        float64.
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    loss_ : float
        The loss of the last epoch (see the module docstring for its scale).
    best_loss_ : float or None
        The lowest training loss (None with early stopping); stochastic solvers only.
    loss_curve_ : list of float
        The loss of every epoch; stochastic solvers only.
    validation_scores_ : list of float or None
        With early stopping, the validation score of every epoch.
    best_validation_score_ : float or None
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Weights and biases of each layer: views into ``model_``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When X had feature names.
    n_iter_ : int
        Epochs (or lbfgs iterations) run by the last call.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        "logistic", "softmax" or "identity".
    model_ : fastmlp.MLP
        The fitted network.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier, trained by fastmlp's compiled kernels.

    Binary targets use one sigmoid output, multi-class targets a softmax over the classes and
    multi-label targets (a 0/1 indicator matrix) one sigmoid per label; the loss is the log loss.
    A drop-in replacement for ``sklearn.neural_network.MLPClassifier``; see the module docstring
    for what differs.
""" + _PARAMETERS_HEADER + _PARAMETERS_DOC + """    label_smoothing : float in [0, 1), default 0.0
        fastmlp: for multi-class targets, train on ``(1 - s) * y + s / n_classes``.
""" + _ATTRIBUTES_DOC + """    classes_ : ndarray
        The class labels (or, multi-label, the label indices).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    _task = "classification"
    _score_function = staticmethod(accuracy_score)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 l1=0.0, dropout=0.0, batch_norm=False, init=None, clip_norm=None,
                 clip_value=None, label_smoothing=0.0, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.l1 = l1
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init = init
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.label_smoothing = label_smoothing
        self.dtype = dtype

    def _loss_kwargs(self):
        return {"label_smoothing": self.label_smoothing}

    def _check_task_params(self):
        _check_number("label_smoothing", self.label_smoothing, 0, 1, high_open=True)

    def _loss_name(self, n_outputs):
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        return "categorical_crossentropy" if multiclass else "binary_crossentropy"

    def _out_activation(self, n_outputs):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset, dtype):
        """Return X, the 0/1 target matrix and y (labels), checked; define or check classes_."""
        fresh = not hasattr(self, "classes_") or (not self.warm_start and not incremental)
        # (uint64 labels beyond int64's range are "continuous" to scikit-learn: its path.)
        if (type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "iu"
                and y.dtype != np.uint64 and self._plain_X(X, dtype, reset)
                and y.shape[0] == X.shape[0]):
            encoded = self._encode_plain_labels(y, fresh, incremental)
            if encoded is not None:
                if reset:
                    self.n_features_in_ = X.shape[1]
                n, k = y.shape[0], len(self.classes_)
                if self._label_binarizer.y_type_ == "binary":
                    Y = encoded.astype(X.dtype).reshape(n, 1)
                else:
                    Y = np.zeros((n, k), dtype=X.dtype)
                    Y[np.arange(n), encoded] = 1
                return X, Y, y
        X, y = _validate_data(self, X, y, multi_output=True, dtype=dtype, order="C",
                              accept_sparse=["csr", "csc"], reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}. Set "
                                     f"warm_start=False to train afresh on these classes.")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"y has classes not in classes_ {self.classes_}: "
                                 f"{np.setdiff1d(classes, self.classes_)}")
        Y = self._label_binarizer.transform(y).astype(X.dtype)
        return X, np.ascontiguousarray(Y), y

    def _encode_plain_labels(self, y, fresh, incremental):
        """For 1-D integer labels y: the index of each label in ``classes_`` (which a fresh fit
        defines here, with the label encoding, as ``LabelBinarizer().fit(y)`` would); None
        when scikit-learn's path must decide (one class, a label outside ``classes_``, a
        warm start on other classes, an encoding that is not binary or multi-class)."""
        if fresh:
            encoded = _encode_integer_labels(y)
            if encoded is None:
                return None
            classes, codes = encoded
            binarizer = LabelBinarizer()
            binarizer.y_type_ = "binary" if len(classes) == 2 else "multiclass"
            binarizer.sparse_input_ = False
            binarizer.classes_ = classes
            self._label_binarizer = binarizer
            self.classes_ = classes
            return codes
        classes = self.classes_
        binarizer = self.__dict__.get("_label_binarizer")
        if (binarizer is None or binarizer.y_type_ not in ("binary", "multiclass")
                or classes.dtype.kind not in "iu" or len(classes) < 2):
            return None
        codes = np.searchsorted(classes, y)
        np.minimum(codes, len(classes) - 1, out=codes)
        if not np.array_equal(classes[codes], y):
            return None                             # labels outside classes_
        if self.warm_start and not incremental and not np.all(
                np.bincount(codes, minlength=len(classes))):
            return None                             # a warm start on fewer classes
        return codes

    def _decode(self, out):
        """Labels from the network's outputs, as scikit-learn's ``LabelBinarizer`` decodes
        them (the common cases without its checks)."""
        kind = self._label_binarizer.y_type_
        if kind == "multiclass":
            return self.classes_[out.argmax(axis=1)]
        if kind == "binary" and len(self.classes_) == 2:
            return self.classes_[(out[:, 0] > 0.5).astype(np.intp)]
        return self._label_binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and the class labels (or label indicator matrix) y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Train for one epoch on (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like, optional
            Every class that any call will see (for multi-label y, the label indices
            ``0 .. n_labels - 1``): required on the first call; afterwards it may be left out,
            or must equal ``classes_``.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    def _start_partial_fit(self, y, classes):
        first_call = not hasattr(self, "classes_")
        if first_call:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit: "
                                 "all the labels y can take, e.g. numpy.unique(y_all)")
            binarizer = LabelBinarizer()
            y_array = np.asarray(y)
            if y_array.ndim == 2 and y_array.shape[1] > 1:
                # Multi-label: the labels are y's column indices. As in scikit-learn, y may
                # hold no label outside ``classes``; a list of other length than y's width
                # would name labels the network has no output for, so it is refused too.
                binarizer.fit(y_array)
                labels = binarizer.classes_
                given = unique_labels(classes)
                if not np.array_equal(given, labels):
                    raise ValueError(
                        f"classes={classes!r} does not fit the multi-label y: a label "
                        f"indicator matrix of {len(labels)} columns has the labels "
                        f"{labels.tolist()} (its column indices); pass "
                        f"classes={labels.tolist()}")
            else:
                binarizer.fit(np.asarray(classes))
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit, {self.classes_}")

    def predict(self, X):
        """The predicted class of each sample (or 0/1 labels, multi-label).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Probability of each class, in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Binary: the columns are ``1 - p`` and ``p``. Multi-label: each label's probability.
        """
        out = self._forward(X)
        if out.shape[1] == 1:
            return np.hstack([1 - out, out])
        return out

    def score(self, X, y, sample_weight=None):
        """The mean accuracy on (X, y), as ``sklearn.metrics.accuracy_score`` gives it.

        Integer labels without sample weights (what a cross-validation scores) skip
        scikit-learn's target typing, which costs more than predicting a few hundred rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from fastmlp import MLPClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0)
        >>> bool(clf.fit(X, y).score(X, y) > 0.9)
        True
        """
        binarizer = self.__dict__.get("_label_binarizer")
        if (sample_weight is None and type(y) is np.ndarray and y.ndim == 1
                and y.dtype.kind in "iu" and y.dtype != np.uint64 and binarizer is not None
                and binarizer.y_type_ in ("binary", "multiclass")
                and self.classes_.dtype.kind in "iu"):
            predicted = self.predict(X)
            if predicted.shape == y.shape:
                return float(np.mean(predicted == y))
        return super().score(X, y, sample_weight=sample_weight)

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba(X)``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):                           # scikit-learn < 1.6
        return {"multilabel": True}


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor, trained by fastmlp's compiled kernels.

    Identity outputs, one per target; the loss is half the squared error by default. A drop-in
    replacement for ``sklearn.neural_network.MLPRegressor``; see the module docstring for what
    differs.
""" + _PARAMETERS_HEADER + """\
    loss : {"squared_error", "poisson", "absolute_error", "huber"}, default "squared_error"
        "squared_error" is half the squared error and "poisson" the half Poisson deviance with
        an exponential output (log link), as in scikit-learn; the other two are fastmlp's.
""" + _PARAMETERS_DOC + """    huber_delta : float, default 1.0
        fastmlp: where the Huber loss turns from quadratic to linear.
""" + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor
    >>> X = np.linspace(-1, 1, 50).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0)
    >>> bool(reg.fit(X, X.ravel() ** 2).score(X, X.ravel() ** 2) > 0.9)
    True
    """

    _task = "regression"
    _score_function = staticmethod(r2_score)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 l1=0.0, dropout=0.0, batch_norm=False, init=None, clip_norm=None,
                 clip_value=None, huber_delta=1.0, dtype=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.l1 = l1
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init = init
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.huber_delta = huber_delta
        self.dtype = dtype

    def _loss_kwargs(self):
        return {"huber_delta": self.huber_delta}

    def _check_task_params(self):
        _check_number("huber_delta", self.huber_delta, 0, low_open=True)

    def _loss_name(self, n_outputs):
        if self.loss not in _REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, _REGRESSION_LOSSES))}; "
                             f"got {self.loss!r}")
        return self.loss

    def _out_activation(self, n_outputs):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset, dtype):
        if (type(y) is np.ndarray and y.dtype.kind == "f"
                and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] > 1))
                and self._plain_X(X, dtype, reset) and y.shape[0] == X.shape[0]
                and np.isfinite(y).all()):
            if reset:
                self.n_features_in_ = X.shape[1]
        else:
            X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                                  order="C", accept_sparse=["csr", "csc"], reset=reset)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson "
                             "regression: its targets are counts or rates, >= 0.")
        Y = np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=X.dtype)
        return X, Y, y

    def _decode(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and the targets y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch on (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):                           # scikit-learn < 1.6
        return {"multioutput": True}
