"""Losses: names mapped to the kernels' ids. Each loss fixes its output activation
(binary cross-entropy: sigmoid), so the output delta is ``p - y`` and the loss is computed
stably from the logits."""
from ._kernels._loss import LOSS_IDS

__all__ = ["LOSS_IDS"]
