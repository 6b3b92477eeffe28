"""fastmlp: fast multilayer perceptrons on the CPU.

Dense feed-forward networks trained by backpropagation, with the hot loops (forward pass, delta
propagation, gradients, updates) in compiled Cython kernels that run a whole epoch without the
GIL, and a NumPy reference (``fastmlp.reference``) that they match to 1e-10.

>>> import numpy as np
>>> from fastmlp import MLP
>>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
>>> y = np.array([0, 1, 1, 0])
>>> model = MLP([2, 8, 1], lr=0.5, seed=0).fit(X, y, epochs=2000, verbose=False)
>>> model.predict(X).tolist()
[0, 1, 1, 0]
"""
from .mlp import MLP
from .io import load
from .gradcheck import check_gradients
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"
__all__ = ["MLP", "load", "check_gradients", "set_num_threads", "get_num_threads", "__version__"]
