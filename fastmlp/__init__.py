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

``fastmlp.MLPStack`` trains many models of one layout together (``fastmlp.stack``).
``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor`` are scikit-learn estimators
(``fastmlp.estimators``), ``fastmlp.MLPEnsembleClassifier`` and ``fastmlp.MLPEnsembleRegressor``
their ensembles trained as one stack (``fastmlp.ensemble``), and
``fastmlp.model_selection.MLPSearchCV`` their searches; scikit-learn is optional and imported
only when they are first used.
``fastmlp.export.to_onnx`` writes a model or estimator as an ONNX graph (extra ``onnx``).
"""
from .mlp import MLP
from .io import load
from .stack import MLPStack
from .gradcheck import check_gradients
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"
# The estimators are not in __all__: ``from fastmlp import *`` must not import scikit-learn.
__all__ = ["MLP", "MLPStack", "load", "check_gradients", "set_num_threads", "get_num_threads",
           "__version__"]

_ESTIMATORS = ("MLPClassifier", "MLPRegressor")
_ENSEMBLES = ("MLPEnsembleClassifier", "MLPEnsembleRegressor")


def __getattr__(name):
    """Import the scikit-learn estimators and ensembles on first use (PEP 562)."""
    if name in _ESTIMATORS:
        from . import estimators
        return getattr(estimators, name)
    if name in _ENSEMBLES:
        from . import ensemble
        return getattr(ensemble, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ESTIMATORS) + list(_ENSEMBLES))
