"""The maths of fastmlp in plain NumPy: the test oracle and the benchmark baseline.

Every line here is meant to be checked against the chain rule by eye; nothing is optimized. The
compiled engine (``fastmlp._kernels``) must agree with this module to 1e-10 in float64 when both
start from the same weights and visit the batches in the same order. Training with
``fastmlp.MLP`` never calls this module.

Conventions (see DESIGN.md): ``W[k]`` has shape ``(fan_in, fan_out)``; the loss is the
(weighted) mean over the batch; the objective is ``J = mean loss + 0.5 * l2 * sum(W**2) +
l1 * sum(|W|)`` (biases and batch-norm parameters are not penalized) and every gradient is the
exact gradient of J.

Sections: activations, optimizers and clipping, batch normalization and dropout, losses, and the
model ``ReferenceMLP`` that strings them together.
"""
import numpy as np
import scipy.sparse
import scipy.special

from .initializers import DEFAULT_INIT, initial_parameters

__all__ = ["ReferenceMLP", "SimpleMLP", "ACTIVATIONS", "sigmoid", "relu", "softmax", "bce_from_logits",
           "loss_and_delta", "output_activation", "optimizer_step", "clip_by_global_norm",
           "clip_by_value", "batchnorm_forward", "batchnorm_backward", "dropout_scale", "as_dense"]


# Hidden activations. Every f and f_prime takes ``(z, param)``: ``param`` is leaky_relu's negative
# slope and elu's alpha and is ignored by the others; its default is the activation's default.


def sigmoid(z, param=0.0):
    """Logistic function ``1 / (1 + exp(-z))``, without overflow warnings for large ``|z|``."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_prime(z, param=0.0):
    s = sigmoid(z)
    return s * (1.0 - s)


def _sigmoid_complement(z):
    """``1 - sigmoid(z) = sigmoid(-z)``, without the cancellation of the subtraction."""
    return sigmoid(-z)


def relu(z, param=0.0):
    return np.maximum(z, 0.0)


def relu_prime(z, param=0.0):
    return (z > 0).astype(z.dtype)


def identity(z, param=0.0):
    return z


def identity_prime(z, param=0.0):
    return np.ones_like(z)


def tanh(z, param=0.0):
    return np.tanh(z)


def tanh_prime(z, param=0.0):
    return 1.0 - np.tanh(z) ** 2


def leaky_relu(z, param=0.01):
    """``z`` for ``z > 0``, ``param * z`` otherwise."""
    return np.where(z > 0, z, param * z)


def leaky_relu_prime(z, param=0.01):
    return np.where(z > 0, 1.0, param).astype(z.dtype)


def elu(z, param=1.0):
    """``z`` for ``z > 0``, ``param * (exp(z) - 1)`` otherwise."""
    return np.where(z > 0, z, param * np.expm1(np.minimum(z, 0.0)))


def elu_prime(z, param=1.0):
    return np.where(z > 0, 1.0, param * np.exp(np.minimum(z, 0.0))).astype(z.dtype)


def _normal_cdf(z):
    """``Phi(z) = (1 + erf(z / sqrt 2)) / 2``, as ``erfc(-z / sqrt 2) / 2`` (exact left tail)."""
    return 0.5 * scipy.special.erfc(-z / np.sqrt(2.0))


def gelu(z, param=0.0):
    """Exact GELU ``z * Phi(z)``, Phi the standard normal CDF."""
    return z * _normal_cdf(z)


def gelu_prime(z, param=0.0):
    return _normal_cdf(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


_GELU_C = 0.044715


def _gelu_tanh_u(z):
    return np.sqrt(2.0 / np.pi) * (z + _GELU_C * z ** 3)


def gelu_tanh(z, param=0.0):
    """``0.5 z (1 + tanh(u))``, ``u = sqrt(2/pi) (z + 0.044715 z^3)``; ``(1 + tanh(u)) / 2`` is
    computed as ``sigmoid(2u)``, which does not cancel for negative ``u``."""
    return z * sigmoid(2.0 * _gelu_tanh_u(z))


def gelu_tanh_prime(z, param=0.0):
    u = _gelu_tanh_u(z)
    du = np.sqrt(2.0 / np.pi) * (1.0 + 3.0 * _GELU_C * z * z)
    # d/du (1 + tanh u) / 2 = (1 - tanh(u)^2) / 2 = 2 sigmoid(2u) (1 - sigmoid(2u))
    return sigmoid(2.0 * u) + z * 2.0 * sigmoid(2.0 * u) * _sigmoid_complement(2.0 * u) * du


def silu(z, param=0.0):
    """SiLU (swish) ``z * sigmoid(z)``."""
    return z * sigmoid(z)


def silu_prime(z, param=0.0):
    return sigmoid(z) * (1.0 + z * _sigmoid_complement(z))


def softplus(z, param=0.0):
    """``log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def softplus_prime(z, param=0.0):
    return sigmoid(z)


def mish(z, param=0.0):
    """``z * tanh(softplus(z))``."""
    return z * np.tanh(softplus(z))


def mish_prime(z, param=0.0):
    t = np.tanh(softplus(z))
    return t + z * (1.0 - t * t) * sigmoid(z)


ACTIVATIONS = {
    "identity": (identity, identity_prime), "sigmoid": (sigmoid, sigmoid_prime),
    "relu": (relu, relu_prime), "tanh": (tanh, tanh_prime),
    "leaky_relu": (leaky_relu, leaky_relu_prime), "elu": (elu, elu_prime),
    "gelu": (gelu, gelu_prime), "gelu_tanh": (gelu_tanh, gelu_tanh_prime),
    "silu": (silu, silu_prime), "swish": (silu, silu_prime),
    "softplus": (softplus, softplus_prime), "mish": (mish, mish_prime),
}

# Default parameters of the activations that take one.
DEFAULT_PARAMS = {"leaky_relu": 0.01, "elu": 1.0}


def bce_from_logits(z, y):
    """Mean binary cross-entropy of labels ``y`` given logits ``z``, computed stably:
    ``-y log s(z) - (1-y) log(1 - s(z)) = max(z, 0) - y z + log(1 + exp(-|z|))``."""
    return np.mean(np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z))))


# Update rules and gradient clipping: the oracle for fastmlp._kernels._optim.

# Blocks of optimizer state per parameter array, by rule.
OPTIMIZER_STATE_SIZES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1,
                         "adam": 2, "adamw": 2}


def optimizer_step(name, hyper, theta, g, state, lr, t):
    """Update ``theta`` in place by one step of the rule ``name``, at rate ``lr``, update ``t``.

    ``state`` holds ``OPTIMIZER_STATE_SIZES[name]`` arrays of ``theta``'s size, either as a
    contiguous array of shape ``(n_state,) + theta.shape`` or flat, ``n_state * theta.size``
    entries (block k for the k-th state variable); it starts at zero and is updated in place.
    ``t`` counts updates from 1.

    - ``"sgd"``:       ``theta -= lr * g``
    - ``"momentum"``:  ``hyper = [mu]``; ``v = mu * v - lr * g; theta += v``
    - ``"nesterov"``:  ``hyper = [mu]``; ``v = mu * v - lr * g; theta += mu * v - lr * g``
    - ``"adagrad"``:   ``hyper = [eps]``; ``G += g**2; theta -= lr * g / (sqrt(G) + eps)``
    - ``"rmsprop"``:   ``hyper = [rho, eps]``; ``s = rho * s + (1 - rho) * g**2;``
      ``theta -= lr * g / (sqrt(s) + eps)``
    - ``"adam"``:      ``hyper = [beta1, beta2, eps]``; ``m = beta1 * m + (1 - beta1) * g;``
      ``v = beta2 * v + (1 - beta2) * g**2; m_hat = m / (1 - beta1**t);``
      ``v_hat = v / (1 - beta2**t); theta -= lr * m_hat / (sqrt(v_hat) + eps)``
    - ``"adamw"``:     ``hyper = [beta1, beta2, eps, weight_decay]``;
      ``theta *= 1 - lr * weight_decay``, then the Adam step. The decay applies to all of
      ``theta``: update biases, which are not decayed, with ``"adam"`` and the same ``hyper``.
    """
    if name not in OPTIMIZER_STATE_SIZES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of "
                         f"{', '.join(map(repr, OPTIMIZER_STATE_SIZES))}")
    hyper = [float(h) for h in hyper]             # Python floats keep float32 arithmetic float32
    n_state = OPTIMIZER_STATE_SIZES[name]
    if n_state:
        if not state.flags.c_contiguous or state.size != n_state * theta.size:
            raise ValueError(f"{name} needs a C-contiguous state of {n_state} * {theta.size} "
                             f"entries; got {state.size}")
        blocks = state.reshape((n_state,) + theta.shape)   # a view: updates land in state
    if name == "sgd":
        theta -= lr * g
    elif name == "momentum":
        mu = hyper[0]
        v = blocks[0]
        v[...] = mu * v - lr * g
        theta += v
    elif name == "nesterov":
        mu = hyper[0]
        v = blocks[0]
        v[...] = mu * v - lr * g
        theta += mu * v - lr * g
    elif name == "adagrad":
        eps = hyper[0]
        G = blocks[0]
        G += g ** 2
        theta -= lr * g / (np.sqrt(G) + eps)
    elif name == "rmsprop":
        rho, eps = hyper[0], hyper[1]
        s = blocks[0]
        s[...] = rho * s + (1 - rho) * g ** 2
        theta -= lr * g / (np.sqrt(s) + eps)
    else:
        beta1, beta2, eps = hyper[0], hyper[1], hyper[2]
        if name == "adamw":
            theta *= 1 - lr * hyper[3]
        m, v = blocks[0], blocks[1]
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta -= lr * m_hat / (np.sqrt(v_hat) + eps)


def _as_list(g):
    return [g] if isinstance(g, np.ndarray) else list(g)


def clip_by_global_norm(g, max_norm):
    """Scale the gradients ``g`` in place so that their joint norm is at most ``max_norm``.

    ``g`` is one array or a list of arrays (e.g. ``grads_W + grads_b``); the norm is
    ``sqrt(sum of g_i**2 over all of them)``. When it exceeds ``max_norm`` every array is
    multiplied by ``max_norm / norm``; otherwise nothing changes. Returns the norm before clipping.
    """
    norm = float(np.sqrt(sum(float(np.sum(gi.astype(np.float64) ** 2)) for gi in _as_list(g))))
    if norm > max_norm:
        for gi in _as_list(g):
            gi *= max_norm / norm
    return norm


def clip_by_value(g, limit):
    """Clamp every entry of ``g`` (one array or a list of arrays) to ``[-limit, limit]``, in place.
    NaN stays NaN."""
    for gi in _as_list(g):
        np.clip(gi, -limit, limit, out=gi)

# ---------------------------------------------------------------------------------------------
# Batch normalization and dropout: the maths of fastmlp._kernels._batchnorm and ._dropout.
# ---------------------------------------------------------------------------------------------

def batchnorm_forward(Z, gamma, beta, eps, running_mean=None, running_var=None, momentum=0.9,
                      training=True):
    """Batch normalization of pre-activations ``Z`` (m rows, n units), per unit.

    ``Zhat = (Z - mu) / sqrt(var + eps)`` and ``Y = gamma * Zhat + beta``, where in training
    ``mu`` and ``var`` are the batch mean and biased variance, and at prediction the running
    averages.

    Parameters
    ----------
    Z : ndarray of shape (m, n)
    gamma, beta : ndarray of shape (n,)
    eps : float
        Added to the variance, > 0.
    running_mean, running_var : ndarray of shape (n,), optional
        In training, updated in place when given:
        ``running_mean = momentum * running_mean + (1 - momentum) * mu`` and
        ``running_var = momentum * running_var + (1 - momentum) * var * m / (m - 1)`` (the
        unbiased variance; the biased one when m == 1). Required when ``training`` is False.
    momentum : float
        Weight of the old running statistics.
    training : bool
        Batch statistics (True) or running statistics (False).

    Returns
    -------
    Y : ndarray of shape (m, n)
    cache : tuple (Zhat, inv_std) for ``batchnorm_backward``, or None when not training.
    """
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batchnorm_forward with training=False needs running_mean and "
                             "running_var")
        return gamma * ((Z - running_mean) / np.sqrt(running_var + eps)) + beta, None
    m = Z.shape[0]
    mu = Z.mean(axis=0)
    var = Z.var(axis=0)                                     # biased: divides by m
    if running_mean is not None:
        unbiased = var * m / (m - 1) if m > 1 else var
        running_mean[...] = momentum * running_mean + (1 - momentum) * mu
        running_var[...] = momentum * running_var + (1 - momentum) * unbiased
    inv_std = 1 / np.sqrt(var + eps)
    Zhat = (Z - mu) * inv_std
    return gamma * Zhat + beta, (Zhat, inv_std)


def batchnorm_backward(dY, cache, gamma):
    """Gradients of a training-mode ``batchnorm_forward`` given ``dY = dJ/dY`` (m, n).

    With ``g = gamma * dY = dJ/dZhat``, and mu, var depending on every row of the batch:
    ``dZ = inv_std / m * (m * g - sum_rows(g) - Zhat * sum_rows(g * Zhat))``, which is
    ``gamma * inv_std / m * (m * dY - dbeta - Zhat * dgamma)``.

    Returns
    -------
    dZ : ndarray of shape (m, n)
    dgamma, dbeta : ndarray of shape (n,)
        ``sum_rows(dY * Zhat)`` and ``sum_rows(dY)``.
    """
    Zhat, inv_std = cache
    m = dY.shape[0]
    dbeta = dY.sum(axis=0)
    dgamma = (dY * Zhat).sum(axis=0)
    dZ = gamma * inv_std / m * (m * dY - dbeta - Zhat * dgamma)
    return dZ, dgamma, dbeta


_MASK64 = 2 ** 64 - 1


def _mix(x):
    """The splitmix64 finalizer on a uint64 ndarray (arithmetic mod 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def dropout_scale(shape, rate, seed, step, layer, dtype=np.float64):
    """Inverted-dropout scale factors: ``1 / (1 - rate)`` for kept elements, 0 for dropped ones.

    The same counter-based generator as ``fastmlp._kernels._dropout`` (its module docstring
    defines it): ``key = mix(seed ^ mix(step * 1024 + layer))``, element i (row-major) draws
    ``u_i = (mix(key + (i + 1) * 0x9E3779B97F4A7C15) >> 11) * 2**-53`` and is kept iff
    ``u_i >= rate``.

    Parameters
    ----------
    shape : int or tuple of int
    rate : float
        Drop probability, in [0, 1).
    seed, step : int
        In [0, 2**64).
    layer : int
        In [0, 1024).
    dtype : numpy dtype

    Returns
    -------
    s : ndarray of the given shape and dtype
    """
    dtype = np.dtype(dtype)
    keep = dropout_uniforms(int(np.prod(shape)), seed, step, layer) >= rate
    return np.where(keep, dtype.type(1.0 / (1.0 - rate)), dtype.type(0)).reshape(shape)


def dropout_uniforms(count, seed, step, layer):
    """The draws ``u_0, ..., u_{count-1}`` in [0, 1) behind ``dropout_scale`` (float64, exact
    multiples of 2**-53)."""
    with np.errstate(over="ignore"):                       # uint64 wraps mod 2**64 on purpose
        step_layer = np.array([(step * 1024 + layer) & _MASK64], dtype=np.uint64)
        key = _mix(np.uint64(seed) ^ _mix(step_layer))
        i = np.arange(count, dtype=np.uint64)
        bits = _mix(key + (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


# ---------------------------------------------------------------------------------------------
# Losses, from the logits z (n, K) against targets y (n, K): per-sample loss and dl/dz.
# ---------------------------------------------------------------------------------------------

def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss_and_delta(name, z, y, param=0.0):
    """Per-sample losses (n,) and their derivatives dl/dz (n, K); see ``_kernels/_loss.pyx``."""
    if name == "binary_crossentropy":
        losses = np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z)))
        return losses.sum(axis=1), sigmoid(z) - y
    if name == "categorical_crossentropy":
        t = (1 - param) * y + param / z.shape[1]          # label smoothing
        zmax = z.max(axis=1, keepdims=True)
        log_sum_exp = zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
        return -(t * (z - log_sum_exp)).sum(axis=1), softmax(z) - t
    r = z - y
    if name == "squared_error":
        return 0.5 * (r * r).sum(axis=1), r
    if name == "absolute_error":
        return np.abs(r).sum(axis=1), np.sign(r)
    if name == "huber":
        small = np.abs(r) <= param
        losses = np.where(small, 0.5 * r * r, param * (np.abs(r) - 0.5 * param))
        return losses.sum(axis=1), np.where(small, r, param * np.sign(r))
    if name == "poisson":
        # Half the Poisson deviance of mu = exp(z): y log(y / mu) - y + mu, 0 log 0 = 0.
        mu = np.exp(z)
        return (mu - y * z + (scipy.special.xlogy(y, y) - y)).sum(axis=1), mu - y
    raise ValueError(f"unknown loss {name!r}")


def output_activation(name, z):
    if name == "binary_crossentropy":
        return sigmoid(z)
    if name == "categorical_crossentropy":
        return softmax(z)
    if name == "poisson":
        return np.exp(z)
    return z


def as_dense(X):
    """X, densified when it is a ``scipy.sparse`` matrix: the oracle computes on dense arrays."""
    return X.toarray() if scipy.sparse.issparse(X) else X


class ReferenceMLP:
    """The whole model in plain NumPy: the oracle ``fastmlp.MLP`` is tested against.

    Parameters mirror ``fastmlp.MLP`` (the lecture's seven, then the toolkit's, keyword-only),
    except that ``optimizer`` must be a ``fastmlp.optimizers`` instance or name and the
    schedule is given to ``train`` as explicit ``rates``. ``W``, ``b`` (and ``gamma``, ``beta``
    per hidden layer, None where batch normalization is off) give the initial parameters;
    when omitted they are drawn from ``seed`` as in the lecture.

    Training visits the batches in ``orders[epoch]`` (or ``self.rng.permutation(n)``), computes
    each batch's gradient by backpropagation, adds the penalties' gradients, clips, applies
    decoupled weight decay to the weights and then the optimizer's rule to the flat vector
    ``[W0, b0, (gamma0, beta0), W1, b1, ...]``.

    X may be a ``scipy.sparse`` matrix anywhere: it is densified (``as_dense``).
    """

    def __init__(self, layer_sizes, lr=0.1, seed=None, l2=0.0, hidden_activation="relu",
                 lr_decay=None, dtype=np.float64, *, loss="binary_crossentropy", l1=0.0,
                 optimizer="sgd", clip_norm=None, clip_value=None, dropout=0.0,
                 batch_norm=False, label_smoothing=0.0, huber_delta=1.0, bn_eps=1e-5,
                 bn_momentum=0.9, dropout_seed=0, W=None, b=None, gamma=None, beta=None):
        from .optimizers import get_optimizer    # a parameter record, no kernel code

        self.sizes = list(layer_sizes)
        n_hidden = len(self.sizes) - 2
        self.lr = self.base_lr = float(lr)
        self.l1, self.l2 = float(l1), float(l2)
        self.lr_decay = lr_decay
        acts = hidden_activation if isinstance(hidden_activation, list) else [hidden_activation] * n_hidden
        acts = [a if isinstance(a, tuple) else (a, None) for a in acts]
        self.activations = [("silu" if a == "swish" else a, DEFAULT_PARAMS.get(a, 0.0) if p is None else p)
                            for a, p in acts]
        self.loss_name = loss
        self.loss_param = (label_smoothing if loss == "categorical_crossentropy"
                           else huber_delta if loss == "huber" else 0.0)
        self.optimizer = get_optimizer(optimizer)
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.dropout = dropout if isinstance(dropout, list) else [dropout] * n_hidden
        self.batch_norm = batch_norm if isinstance(batch_norm, list) else [batch_norm] * n_hidden
        self.bn_eps, self.bn_momentum = bn_eps, bn_momentum
        self.dropout_seed = dropout_seed
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)
        if W is None:
            name = self.activations[0][0] if n_hidden else "relu"
            W, b = initial_parameters(self.rng, self.sizes, DEFAULT_INIT[name])
        self.W = [np.array(Wk, dtype=self.dtype) for Wk in W]
        self.b = [np.array(bk, dtype=self.dtype) for bk in b]
        widths = self.sizes[1:-1]
        self.gamma = [None if not on else np.array(g if g is not None else np.ones(n), dtype=self.dtype)
                      for on, g, n in zip(self.batch_norm, gamma or [None] * n_hidden, widths)]
        self.beta = [None if not on else np.array(g if g is not None else np.zeros(n), dtype=self.dtype)
                     for on, g, n in zip(self.batch_norm, beta or [None] * n_hidden, widths)]
        self.running_mean = [np.zeros(n, self.dtype) if on else None for on, n in zip(self.batch_norm, widths)]
        self.running_var = [np.ones(n, self.dtype) if on else None for on, n in zip(self.batch_norm, widths)]
        self.opt_state = None
        self.step = 0

    # -- parameters as one flat vector, in the kernels' layout ---------------------------------

    def _pieces(self, with_flags=False):
        """The parameter arrays in the kernels' order (and whether each is a weight matrix)."""
        for k in range(len(self.W)):
            pieces = [(self.W[k], True), (self.b[k], False)]
            if k < len(self.gamma) and self.gamma[k] is not None:
                pieces += [(self.gamma[k], False), (self.beta[k], False)]
            for array, is_weight in pieces:
                yield (array, is_weight) if with_flags else array

    def flat(self):
        """Every parameter in one vector: ``[W0, b0, (gamma0, beta0), W1, b1, ...]``."""
        return np.concatenate([p.ravel() for p in self._pieces()])

    def _unflatten(self, theta):
        pos = 0
        for p in self._pieces():
            p[...] = theta[pos:pos + p.size].reshape(p.shape)
            pos += p.size

    # -- forward and backward ---------------------------------------------------------------

    def _forward_full(self, X, mode="predict"):
        """Activations a_0 = X, ..., a_L (a_L: the logits), the inputs of each activation
        function z_1, ..., z_L (after batch normalization; z_L = a_L), and per hidden layer what
        backward needs: f'(z) times the dropout scale, and the batch-norm cache.

        mode: "predict" (running batch-norm statistics, no dropout), "gradient" (batch
        statistics, running ones updated) or "train" (as "gradient", with dropout)."""
        activations, zs, derivatives, caches = [as_dense(X)], [], [], []
        for k, (W, b) in enumerate(zip(self.W, self.b)):
            z = activations[-1] @ W + b
            if k == len(self.W) - 1:
                activations.append(z)
                zs.append(z)
                break
            cache = None
            if self.batch_norm[k]:
                z, cache = batchnorm_forward(
                    z, self.gamma[k], self.beta[k], self.bn_eps, self.running_mean[k],
                    self.running_var[k], self.bn_momentum, training=mode != "predict")
            name, param = self.activations[k]
            f, f_prime = ACTIVATIONS[name]
            a, d = f(z, param), f_prime(z, param)
            if mode == "train" and self.dropout[k] > 0:
                scale = dropout_scale(a.shape, self.dropout[k], self.dropout_seed, self.step, k,
                                      self.dtype)
                a, d = a * scale, d * scale
            activations.append(a)
            zs.append(z)
            derivatives.append(d)
            caches.append(cache)
        return activations, zs, derivatives, caches

    def forward(self, X):
        """Outputs: probabilities or values, ``(n,)`` for one output, else ``(n, K)``."""
        out = output_activation(self.loss_name, self._forward_full(X)[0][-1])
        return out.ravel() if out.shape[1] == 1 else out

    def _penalty(self):
        return sum(0.5 * self.l2 * float((W * W).sum()) + self.l1 * float(np.abs(W).sum())
                   for W in self.W)

    def loss(self, X, Y, w=None):
        """The objective J: (weighted) mean loss plus ``0.5 l2 |W|^2 + l1 |W|_1``."""
        X = as_dense(X)
        Y = np.asarray(Y).reshape(len(X), -1)
        losses, _ = loss_and_delta(self.loss_name, self._forward_full(X)[0][-1], Y, self.loss_param)
        w = np.ones(len(X)) if w is None else w
        return float((w * losses).sum() / len(X)) + self._penalty()

    def gradients(self, X, Y, w=None):
        """Backpropagation: the objective's gradients ``(grads_W, grads_b)``, lists per layer."""
        g = self.flat_gradient(X, Y, w)
        grads_W, grads_b, pos = [], [], 0
        for W, b, gamma in zip(self.W, self.b, self.gamma + [None]):
            grads_W.append(g[pos:pos + W.size].reshape(W.shape))
            grads_b.append(g[pos + W.size:pos + W.size + b.size])
            pos += W.size + b.size + (0 if gamma is None else 2 * gamma.size)
        return grads_W, grads_b

    def flat_gradient(self, X, Y, w=None, mode="gradient"):
        """Backpropagation: the objective's gradient as one flat vector (``flat()``'s layout)."""
        X = as_dense(X)
        Y = np.asarray(Y, dtype=self.dtype).reshape(len(X), -1)
        n = len(X)
        activations, _, derivatives, caches = self._forward_full(X, mode)
        _, delta = loss_and_delta(self.loss_name, activations[-1], Y, self.loss_param)
        delta = delta * ((np.ones(n) if w is None else w) / n)[:, None]   # dJ/dz_L
        grads = {}
        for k in reversed(range(len(self.W))):
            grads["W", k] = activations[k].T @ delta + self.l2 * self.W[k] + self.l1 * np.sign(self.W[k])
            # With batch statistics, a batch-normalized layer's output does not depend on its
            # bias (the batch mean absorbs it): the exact gradient is 0. delta.sum(axis=0) would
            # be rounding noise, which g / sqrt(v) optimizers turn into steps of size ~lr.
            bn_layer = k < len(self.batch_norm) and self.batch_norm[k]
            grads["b", k] = np.zeros_like(self.b[k]) if bn_layer else delta.sum(axis=0)
            if k > 0:
                delta = (delta @ self.W[k].T) * derivatives[k - 1]       # dJ/d(bn output)
                if self.batch_norm[k - 1]:
                    delta, grads["gamma", k - 1], grads["beta", k - 1] = batchnorm_backward(
                        delta, caches[k - 1], self.gamma[k - 1])
        order = []
        for k in range(len(self.W)):
            order += [grads["W", k].ravel(), grads["b", k]]
            if k < len(self.gamma) and self.gamma[k] is not None:
                order += [grads["gamma", k], grads["beta", k]]
        return np.concatenate(order)

    def train(self, X, y, epochs=30, batch_size=None, shuffle=True, orders=None, rates=None,
              sample_weight=None):
        """Mini-batch training.

        Each epoch visits the samples in ``orders[epoch]`` when given, else in
        ``self.rng.permutation(n)`` (``shuffle=True``) or ``0..n-1``, cut into batches of
        ``batch_size`` (the last one may be smaller). Epoch e (from 1) uses ``rates[e - 1]``
        when given, else ``lr * lr_decay ** (e - 1)`` (or ``lr``). ``y`` is the target matrix
        (n, K) (a vector for one output); ``sample_weight`` should have mean 1.
        """
        X = np.asarray(as_dense(X), dtype=self.dtype)
        Y = np.asarray(y, dtype=self.dtype).reshape(len(X), -1)
        n = X.shape[0]
        B = n if batch_size is None else min(int(batch_size), n)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=self.dtype)
        opt = self.optimizer
        theta = self.flat()
        if self.opt_state is None:
            self.opt_state = np.zeros(opt.n_state * theta.size, dtype=self.dtype)
        is_weight = np.concatenate([np.full(p.size, flag) for p, flag in self._pieces(True)])
        for epoch in range(1, epochs + 1):
            if orders is not None:
                order = np.asarray(orders[epoch - 1])
            else:
                order = self.rng.permutation(n) if shuffle else np.arange(n)
            if rates is not None:
                self.lr = float(rates[epoch - 1])
            elif self.lr_decay:
                self.lr = self.base_lr * self.lr_decay ** (epoch - 1)
            for start in range(0, n, B):
                batch = order[start:start + B]
                g = self.flat_gradient(X[batch], Y[batch], None if w is None else w[batch], "train")
                self.step += 1
                if self.clip_norm:
                    clip_by_global_norm(g, self.clip_norm)       # in place; returns the norm
                if self.clip_value:
                    clip_by_value(g, self.clip_value)            # in place
                theta = self.flat()
                if opt.weight_decay:
                    theta[is_weight] *= 1 - self.lr * opt.weight_decay
                # AdamW's decoupled decay touched the weights above; the rest is Adam.
                rule = "adam" if opt.name == "adamw" else opt.name
                optimizer_step(rule, opt.hyper, theta, g, self.opt_state, self.lr, self.step)
                self._unflatten(theta)
        return self


class SimpleMLP:
    """The lecture's ``SimpleMLP`` algorithm written in NumPy the way a user writes it for speed:
    the "plain NumPy" baseline of the demo and the benchmarks.

    ``ReferenceMLP`` is the test oracle: general (every activation, optimizer, penalty),
    written for checking by eye, and it flattens and unflattens the parameters at every step,
    which a NumPy user training one plain network would not do. This class does only what the
    lecture does: ReLU or sigmoid hidden layers, a sigmoid or softmax output with
    cross-entropy, plain SGD with a rate per epoch, arrays in the model's dtype, updates in
    place. From the same initial weights and batch order it computes the same maths as
    ``MLP`` and ``ReferenceMLP`` (within rounding).

    Parameters
    ----------
    W, b : lists of arrays
        Initial weights ``(fan_in, fan_out)`` and biases; copied into ``dtype``.
    hidden_activation : {"relu", "sigmoid"}
    softmax : bool
        Softmax output with categorical cross-entropy (one-hot targets), else one sigmoid
        output with binary cross-entropy.
    dtype : numpy dtype

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLP
    >>> from fastmlp.reference import SimpleMLP
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([[0.], [1.], [1.], [0.]])
    >>> model = MLP([2, 8, 1], lr=0.5, seed=0)
    >>> twin = SimpleMLP(model.W, model.b)
    >>> orders = [np.arange(4)] * 100
    >>> _ = twin.train(X, y, orders, [0.5] * 100, batch_size=4)
    >>> model.train(X, y[:, 0], epochs=100, shuffle=False, verbose=False)
    >>> bool(np.allclose(twin.W[0], model.W[0]))
    True
    """

    def __init__(self, W, b, hidden_activation="relu", softmax=False, dtype=np.float64):
        self.dtype = np.dtype(dtype)
        self.W = [np.array(w, dtype=self.dtype) for w in W]
        self.b = [np.array(v, dtype=self.dtype) for v in b]
        self.relu = hidden_activation == "relu"
        if not self.relu and hidden_activation != "sigmoid":
            raise ValueError(f"hidden_activation must be 'relu' or 'sigmoid'; got "
                             f"{hidden_activation!r}")
        self.softmax = softmax

    def _hidden(self, z):
        if self.relu:
            return np.maximum(z, 0, out=z)
        return 1 / (1 + np.exp(-z))

    def forward(self, X):
        """Output probabilities, and every layer's activation (the input first)."""
        activations = [X]
        a = X
        for k in range(len(self.W)):
            z = a @ self.W[k]
            z += self.b[k]
            if k < len(self.W) - 1:
                a = self._hidden(z)
            elif self.softmax:
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                z /= z.sum(axis=1, keepdims=True)
                a = z
            else:
                a = 1 / (1 + np.exp(-z))
            activations.append(a)
        return a, activations

    def train(self, X, Y, orders, rates, batch_size):
        """One epoch per entry of ``orders``: batches of ``batch_size`` rows in that order, at
        the epoch's rate. ``Y`` is (n, n_outputs): one-hot rows for softmax, 0/1 otherwise."""
        X = np.asarray(X, dtype=self.dtype)
        Y = np.asarray(Y, dtype=self.dtype)
        n = len(X)
        for order, lr in zip(orders, rates):
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                xb, yb = X[index], Y[index]
                out, acts = self.forward(xb)
                delta = (out - yb) / len(index)          # d(mean loss)/dz of the output layer
                for k in range(len(self.W) - 1, -1, -1):
                    grad_W = acts[k].T @ delta
                    grad_b = delta.sum(axis=0)
                    if k > 0:
                        delta = delta @ self.W[k].T
                        a = acts[k]
                        delta *= (a > 0) if self.relu else a * (1 - a)
                    self.W[k] -= lr * grad_W
                    self.b[k] -= lr * grad_b
        return self

    def predict(self, X):
        out, _ = self.forward(np.asarray(X, dtype=self.dtype))
        return out.argmax(axis=1) if self.softmax else (out[:, 0] >= 0.5).astype(int)
