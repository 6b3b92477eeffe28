"""The lecture's ``SimpleMLP`` algorithm written in NumPy the way a user writes it for speed.

This is the benchmark's "pure NumPy" baseline. ``fastmlp.reference.ReferenceMLP`` is the test
oracle: general (every activation, optimizer, penalty), written for checking by eye, and it
flattens and unflattens the parameters at every step, which a NumPy user training one plain
network would not do. Here: ReLU or sigmoid hidden layers, a sigmoid or softmax output with
cross-entropy, plain SGD with the lecture's per-epoch decay, arrays in the model's dtype,
updates in place, the same initial weights and batch order as every other runner.
"""
import numpy as np

__all__ = ["SimpleNumpyMLP"]


class SimpleNumpyMLP:
    """Mini-batch SGD for a dense network, in NumPy.

    Parameters
    ----------
    W, b : lists of arrays
        Initial weights ``(fan_in, fan_out)`` and biases; copied into ``dtype``.
    hidden_activation : {"relu", "sigmoid"}
    softmax : bool
        Softmax output with categorical cross-entropy (one-hot targets), else one sigmoid
        output with binary cross-entropy.
    dtype : numpy dtype
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
