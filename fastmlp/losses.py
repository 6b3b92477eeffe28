"""Losses: the names users write, mapped to the kernels' ids and to the task they imply.

Each loss fixes its output activation, so the output delta is simple and the loss is computed
stably from the logits (see ``_kernels/_loss.pyx`` for the formulas):

========================  ==========  ===========================================
loss                      output      task
========================  ==========  ===========================================
binary_crossentropy       sigmoid     binary (one output), multi-label (several)
categorical_crossentropy  softmax     multi-class
squared_error             identity    regression
absolute_error            identity    regression
huber                     identity    regression
poisson                   exp         regression of counts or rates (log link)
========================  ==========  ===========================================

"poisson" is scikit-learn's ``MLPRegressor(loss="poisson")``: the network's output is the log
of the mean, predictions are ``exp`` of it, and the per-sample loss is half the Poisson
deviance ``y log(y / mu) - y + mu`` (with ``0 log 0 = 0``); its targets must be non-negative.
"""
from ._kernels._loss import LOSS_IDS

__all__ = ["LOSS_IDS", "resolve_loss"]


def resolve_loss(loss, n_outputs):
    """Resolve ``loss`` for a network with ``n_outputs`` outputs.

    Returns
    -------
    name : str
    kernel_id : int
    task : {"binary", "multilabel", "multiclass", "regression"}

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), or categorical cross-entropy
        on a single output.

    Examples
    --------
    >>> from fastmlp.losses import resolve_loss
    >>> resolve_loss("poisson", 1)[::2]
    ('poisson', 'regression')
    """
    if loss == "auto":
        loss = "binary_crossentropy" if n_outputs == 1 else "categorical_crossentropy"
    if not isinstance(loss, str) or loss not in LOSS_IDS:
        raise ValueError(f"unknown loss {loss!r}; choose 'auto' or one of "
                         f"{', '.join(map(repr, LOSS_IDS))}")
    if loss == "categorical_crossentropy":
        if n_outputs < 2:
            raise ValueError("categorical_crossentropy needs one output per class (>= 2); for "
                             "two classes with one output use binary_crossentropy")
        task = "multiclass"
    elif loss == "binary_crossentropy":
        task = "binary" if n_outputs == 1 else "multilabel"
    else:
        task = "regression"
    return loss, LOSS_IDS[loss], task
