"""One training run per framework, all with the same signature: ``run_<name>(problem) -> Trial``.

Each runner builds its model from ``problem.W0``/``problem.b0`` (the initial weights fastmlp
draws for the configuration's seed) and times what a user's script pays: from constructing the
model to the end of training (JAX's compilation excepted: it is done beforehand, per shape).
Then it scores the test set. fastmlp, the NumPy baseline, the NumPy oracle, JAX and PyTorch
visit the batches in the same order (``problem.orders``), and each pays for drawing it inside
the timed region, as a user's script does (``draw_orders``; fastmlp draws its own, from the
same generator); scikit-learn shuffles with its own generator, and it has no per-epoch
learning-rate decay, so it keeps the base rate throughout.

fastmlp runs with its default settings (its own thread policy) unless ``--threads`` was given.
"""
import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from benchmarks.configs import Unavailable

__all__ = ["Problem", "Trial", "Variant", "VARIANTS", "installed"]


@dataclass
class Problem:
    """A configuration in one dtype, with everything every runner shares."""
    config: object
    dtype: np.dtype
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    W0: list
    b0: list
    shuffle_seed: int
    orders: list
    threads: int
    threads_forced: bool = False

    def rate(self, epoch):
        """The learning rate of ``epoch`` (from 0): ``lr * lr_decay ** epoch``."""
        decay = self.config.lr_decay
        return self.config.lr * (decay ** epoch if decay else 1.0)


@dataclass
class Trial:
    """What one run gives: training time, test accuracy, final parameters (float64)."""
    seconds: float
    accuracy: float
    W: list
    b: list


def installed(module):
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def _softmax_kwargs(config):
    return {"loss": config.loss} if config.multiclass else {}


def _construct(cls, *args, **kwargs):
    """``cls(*args, **kwargs)``, turning a missing ``loss`` keyword into ``Unavailable``."""
    try:
        return cls(*args, **kwargs)
    except TypeError as error:
        if "loss" in kwargs and "loss" in str(error):
            raise Unavailable("skipped: needs softmax") from None
        raise


def draw_orders(problem):
    """The epochs' batch orders, drawn as a user's script draws them (one
    ``rng.permutation(n)`` per epoch from ``numpy.random.default_rng(shuffle_seed)``): equal
    to ``problem.orders``. Runners call it inside their timed region, since fastmlp draws its
    orders inside its own."""
    rng = np.random.default_rng(problem.shuffle_seed)
    n = len(problem.X_train)
    return [rng.permutation(n) for _ in range(problem.config.epochs)]


def _timed(train):
    start = time.perf_counter()
    train()
    return time.perf_counter() - start


def _float64(arrays):
    return [np.array(a, dtype=np.float64) for a in arrays]


def run_fastmlp(problem):
    """fastmlp's ``MLP``, shuffled by ``shuffle_seed`` (which draws exactly ``problem.orders``)."""
    import fastmlp
    from fastmlp import MLP
    c = problem.config
    if problem.threads_forced:
        fastmlp.set_num_threads(problem.threads)
    holder = []

    def train():
        # The configuration's seed draws exactly problem.W0/b0 (make_problem checks it).
        model = _construct(MLP, list(c.layer_sizes), lr=c.lr, seed=c.seed, l2=0.0,
                           hidden_activation=c.hidden_activation, lr_decay=c.lr_decay,
                           dtype=problem.dtype, **_softmax_kwargs(c))
        model.train(problem.X_train, problem.y_train, epochs=c.epochs, batch_size=c.batch_size,
                    verbose=False, shuffle=True, shuffle_seed=problem.shuffle_seed)
        holder.append(model)

    seconds = _timed(train)
    model = holder[0]
    accuracy = np.mean(model.predict(problem.X_test) == problem.y_test)
    return Trial(seconds, float(accuracy), _float64(model.W), _float64(model.b))


def _targets(problem):
    """The target matrix: one-hot rows for softmax, a 0/1 column otherwise."""
    c = problem.config
    if c.multiclass:
        return np.eye(c.layer_sizes[-1], dtype=problem.dtype)[problem.y_train]
    return problem.y_train.astype(problem.dtype).reshape(-1, 1)


def run_numpy(problem):
    """The lecture's SimpleMLP algorithm in NumPy, written for speed
    (``fastmlp.reference.SimpleMLP``): the baseline every "vs numpy" ratio divides."""
    from fastmlp.reference import SimpleMLP
    c = problem.config
    rates = [problem.rate(e) for e in range(c.epochs)]
    holder = []

    def train():
        model = SimpleMLP(problem.W0, problem.b0, c.hidden_activation, c.multiclass,
                               problem.dtype)
        holder.append(model.train(problem.X_train, _targets(problem), draw_orders(problem),
                                  rates, c.batch_size))

    seconds = _timed(train)
    model = holder[0]
    accuracy = np.mean(model.predict(problem.X_test) == problem.y_test)
    return Trial(seconds, float(accuracy), _float64(model.W), _float64(model.b))


def run_reference(problem):
    """The plain-NumPy ``ReferenceMLP``, fastmlp's test oracle: general and unoptimized, timed
    for information; parity is measured against it."""
    from fastmlp.reference import ReferenceMLP
    c = problem.config
    # The reference takes the target matrix: one-hot rows for softmax.
    y = np.eye(c.layer_sizes[-1])[problem.y_train] if c.multiclass else problem.y_train
    holder = []

    def train():
        model = _construct(ReferenceMLP, list(c.layer_sizes), lr=c.lr, seed=c.seed, l2=0.0,
                           hidden_activation=c.hidden_activation, lr_decay=c.lr_decay,
                           dtype=problem.dtype, W=problem.W0, b=problem.b0,
                           **_softmax_kwargs(c))
        model.train(problem.X_train, y, epochs=c.epochs, batch_size=c.batch_size,
                    orders=draw_orders(problem))
        holder.append(model)

    seconds = _timed(train)
    model = holder[0]
    scores = model.forward(problem.X_test)
    predicted = scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)
    accuracy = np.mean(predicted == problem.y_test)
    return Trial(seconds, float(accuracy), _float64(model.W), _float64(model.b))


def run_sklearn(problem):
    """scikit-learn's ``MLPClassifier``: plain SGD (no momentum), no penalty, constant rate.

    A ``partial_fit`` on one sample of each class allocates the layers; the initial weights
    are then written over them, and ``fit`` with ``warm_start=True`` trains from there for
    ``epochs`` epochs (``tol=0`` and ``n_iter_no_change > epochs`` keep it from stopping early).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    c = problem.config
    model = MLPClassifier(
        hidden_layer_sizes=c.layer_sizes[1:-1],
        activation={"relu": "relu", "sigmoid": "logistic"}[c.hidden_activation],
        solver="sgd", momentum=0.0, nesterovs_momentum=False, alpha=0.0,
        learning_rate="constant", learning_rate_init=c.lr, batch_size=c.batch_size,
        max_iter=c.epochs, shuffle=True, tol=0.0, n_iter_no_change=c.epochs + 1,
        early_stopping=False, warm_start=True, random_state=problem.shuffle_seed)
    classes, first = np.unique(problem.y_train, return_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # that one step's batch is smaller than batch_size
        model.partial_fit(problem.X_train[first], problem.y_train[first], classes=classes)
    model.coefs_ = [W.astype(problem.dtype) for W in problem.W0]
    model.intercepts_ = [b.astype(problem.dtype) for b in problem.b0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        seconds = _timed(lambda: model.fit(problem.X_train, problem.y_train))
    accuracy = np.mean(model.predict(problem.X_test) == problem.y_test)
    return Trial(seconds, float(accuracy), _float64(model.coefs_), _float64(model.intercepts_))


def run_torch(problem):
    """PyTorch on the CPU: ``nn.Sequential`` of ``nn.Linear``, plain ``torch.optim.SGD``.

    Batches are gathered with index tensors in a hand-written loop (no DataLoader); the loss is
    ``BCEWithLogitsLoss`` or ``CrossEntropyLoss`` on the logits, the rate is set per epoch.
    """
    import torch
    from torch import nn
    c = problem.config
    torch.set_num_threads(problem.threads)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        problem.dtype]
    hidden = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[c.hidden_activation]
    X = torch.from_numpy(problem.X_train)
    if c.multiclass:
        y, loss_fn = torch.from_numpy(problem.y_train), nn.CrossEntropyLoss()
    else:
        y = torch.from_numpy(problem.y_train.astype(problem.dtype).reshape(-1, 1))
        loss_fn = nn.BCEWithLogitsLoss()
    n, batch = X.shape[0], c.batch_size
    holder = []

    def train():
        linears = [nn.Linear(*W.shape, dtype=dtype) for W in problem.W0]
        with torch.no_grad():
            for linear, W, b in zip(linears, problem.W0, problem.b0):
                linear.weight.copy_(torch.tensor(W.T))   # torch stores (fan_out, fan_in)
                linear.bias.copy_(torch.tensor(b))
        layers = [layer for linear in linears[:-1] for layer in (linear, hidden())]
        model = nn.Sequential(*layers, linears[-1])
        optimizer = torch.optim.SGD(model.parameters(), lr=c.lr, momentum=0.0)
        orders = [torch.from_numpy(order) for order in draw_orders(problem)]
        for epoch, order in enumerate(orders):
            for group in optimizer.param_groups:
                group["lr"] = problem.rate(epoch)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(X[index]), y[index]).backward()
                optimizer.step()
        holder.append((model, linears))

    seconds = _timed(train)
    model, linears = holder[0]
    with torch.no_grad():
        logits = model(torch.from_numpy(problem.X_test)).numpy()
    predicted = logits.argmax(axis=1) if c.multiclass else (logits[:, 0] >= 0).astype(int)
    accuracy = np.mean(predicted == problem.y_test)
    return Trial(seconds, float(accuracy),
                 [lin.weight.detach().numpy().T.astype(np.float64) for lin in linears],
                 [lin.bias.detach().numpy().astype(np.float64) for lin in linears])


_JAX_TRAINERS = {}


def _run_jax(problem, form):
    """JAX, compiled for the problem's shapes before the clock starts (``jax_mlp``)."""
    from benchmarks.jax_mlp import JaxTrainer
    c = problem.config
    key = (c.name, problem.dtype.name, form)
    if key not in _JAX_TRAINERS:
        _JAX_TRAINERS.clear()       # one problem at a time: free the previous compilations
        _JAX_TRAINERS[key] = JaxTrainer(c.layer_sizes, len(problem.X_train), c.batch_size,
                                        c.epochs, c.hidden_activation, c.multiclass,
                                        problem.dtype, form)
    trainer = _JAX_TRAINERS[key]
    rates = [problem.rate(e) for e in range(c.epochs)]
    holder = []
    seconds = _timed(lambda: holder.append(trainer.fit(
        problem.W0, problem.b0, problem.X_train, _targets(problem), draw_orders(problem),
        rates)))
    W, b = holder[0]
    from fastmlp.reference import SimpleMLP
    model = SimpleMLP(W, b, c.hidden_activation, c.multiclass, problem.dtype)
    accuracy = np.mean(model.predict(problem.X_test) == problem.y_test)
    return Trial(seconds, float(accuracy), _float64(W), _float64(b))


def run_jax_epoch(problem):
    """JAX: one jit-compiled function per epoch (``lax.scan`` over the batches)."""
    return _run_jax(problem, "epoch")


def run_jax_fit(problem):
    """JAX: the whole fit as one jit-compiled call (``lax.scan`` over epochs and batches)."""
    return _run_jax(problem, "fit")


class Variant(NamedTuple):
    run: Callable       # problem -> Trial
    needs: str          # the module it imports; the variant is left out when it is missing
    same_order: bool    # visits the batches in problem.orders, so parity with numpy applies


# In this order the variants take turns within each repetition; "numpy" is the baseline every
# ratio divides and "oracle" (fastmlp.reference) the model parity is measured against.
VARIANTS = {
    "fastmlp": Variant(run_fastmlp, "fastmlp", same_order=True),
    "numpy": Variant(run_numpy, "fastmlp", same_order=True),
    "oracle": Variant(run_reference, "fastmlp", same_order=True),
    "jax_epoch": Variant(run_jax_epoch, "jax", same_order=True),
    "jax_fit": Variant(run_jax_fit, "jax", same_order=True),
    "sklearn": Variant(run_sklearn, "sklearn", same_order=False),
    "torch": Variant(run_torch, "torch", same_order=True),
}
