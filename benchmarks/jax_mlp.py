"""The same training in JAX, written as a JAX user writes it for speed on a CPU.

Two forms, both compiled by ``jax.jit`` before the timed region (a user pays compilation once
per shape; the benchmark pays it outside the clock, which favours JAX):

* ``"epoch"``: one compiled function per epoch, ``lax.scan`` over the full batches of the
  epoch's order, then one step on the ragged last batch; Python calls it once per epoch.
* ``"fit"``: the whole fit as one compiled call, ``lax.scan`` over the epochs too, with every
  epoch's order and rate drawn beforehand.

Plain SGD on the mean cross-entropy (sigmoid or softmax output, from the logits), ReLU or
sigmoid hidden layers, the same initial weights and batch order as every other runner. float64
runs with ``jax_enable_x64``. CPU only.
"""
import numpy as np

__all__ = ["JaxTrainer"]


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)      # float64 arrays stay float64
    jax.config.update("jax_platforms", "cpu")
    return jax


class JaxTrainer:
    """Compiles the training functions for one problem's shapes; ``fit`` then trains.

    Parameters
    ----------
    n_samples, batch_size, epochs : int
    hidden_activation : {"relu", "sigmoid"}
    softmax : bool
    dtype : numpy dtype
    form : {"epoch", "fit"}
    """

    def __init__(self, layer_sizes, n_samples, batch_size, epochs, hidden_activation, softmax,
                 dtype, form):
        jax = _jax()
        import jax.numpy as jnp
        from jax import lax
        self.jax, self.jnp = jax, jnp
        self.dtype = np.dtype(dtype)
        self.form = form
        self.n_full, self.ragged = divmod(n_samples, batch_size)
        self.batch_size = batch_size
        hidden = jax.nn.relu if hidden_activation == "relu" else jax.nn.sigmoid

        def loss(params, xb, yb):
            a = xb
            for W, b in params[:-1]:
                a = hidden(a @ W + b)
            W, b = params[-1]
            logits = a @ W + b
            if softmax:
                return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(logits), axis=1))
            # binary cross-entropy from the logits: softplus(z) - y z
            return jnp.mean(jax.nn.softplus(logits) - yb * logits)

        grad = jax.grad(loss)

        def step(params, xb, yb, lr):
            g = grad(params, xb, yb)
            return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)

        def epoch(params, X, Y, order, lr):
            full = order[:self.n_full * batch_size].reshape(self.n_full, batch_size)

            def body(p, index):
                return step(p, X[index], Y[index], lr), None

            params, _ = lax.scan(body, params, full)
            if self.ragged:
                last = order[self.n_full * batch_size:]
                params = step(params, X[last], Y[last], lr)
            return params

        def whole_fit(params, X, Y, orders, rates):
            def body(p, order_rate):
                order, lr = order_rate
                return epoch(p, X, Y, order, lr), None

            params, _ = lax.scan(body, params, (orders, rates))
            return params

        self._epoch = jax.jit(epoch)
        self._fit = jax.jit(whole_fit)
        # Compile now, on data of the problem's shapes and dtype, outside any timed region.
        rng = np.random.default_rng(0)
        params = [(jnp.asarray(rng.standard_normal((i, o)), dtype=self.dtype),
                   jnp.zeros(o, dtype=self.dtype))
                  for i, o in zip(layer_sizes[:-1], layer_sizes[1:])]
        X = jnp.zeros((n_samples, layer_sizes[0]), dtype=self.dtype)
        Y = jnp.zeros((n_samples, layer_sizes[-1]), dtype=self.dtype)
        orders = jnp.tile(jnp.arange(n_samples), (epochs, 1))
        rates = jnp.full(epochs, 0.1, dtype=self.dtype)
        if form == "fit":
            jax.block_until_ready(self._fit(params, X, Y, orders, rates))
        else:
            jax.block_until_ready(self._epoch(params, X, Y, orders[0], rates[0]))

    def fit(self, W0, b0, X, Y, orders, rates):
        """Train from ``W0``/``b0`` (copied in); return the final (W, b) as NumPy arrays."""
        jnp = self.jnp
        params = [(jnp.asarray(W, dtype=self.dtype), jnp.asarray(b, dtype=self.dtype))
                  for W, b in zip(W0, b0)]
        X = jnp.asarray(X, dtype=self.dtype)
        Y = jnp.asarray(Y, dtype=self.dtype)
        orders = jnp.asarray(np.stack(orders))
        rates = jnp.asarray(rates, dtype=self.dtype)
        if self.form == "fit":
            params = self._fit(params, X, Y, orders, rates)
        else:
            for e in range(orders.shape[0]):
                params = self._epoch(params, X, Y, orders[e], rates[e])
        params = self.jax.block_until_ready(params)
        return [np.asarray(W) for W, _ in params], [np.asarray(b) for _, b in params]
