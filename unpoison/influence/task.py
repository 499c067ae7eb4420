"""The kronfluence Task of SPEC §2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kronfluence.task import Task
from torch import nn

BATCH = tuple[torch.Tensor, torch.Tensor]


class ClassificationTask(Task):
    """Training loss = summed cross-entropy; measurement = negative margin, summed.

    With ``sample=True`` (factor fitting) labels are drawn from the model's softmax, so the curvature is
    the true Fisher rather than the empirical one. The measurement ``-(logit_y - logsumexp_{c≠y} logit_c)``
    makes kronfluence's pairwise score positive when up-weighting a training point raises the margin of
    the query's label, i.e. supports that label.
    """

    def compute_train_loss(self, batch: BATCH, model: nn.Module, sample: bool = False) -> torch.Tensor:
        inputs, labels = batch
        logits = model(inputs)
        if sample:
            with torch.no_grad():
                probs = torch.softmax(logits.detach().float(), dim=-1)
                labels = torch.multinomial(probs, num_samples=1).flatten()
        return F.cross_entropy(logits, labels, reduction="sum")

    def compute_measurement(self, batch: BATCH, model: nn.Module) -> torch.Tensor:
        inputs, labels = batch
        logits = model(inputs)
        rows = torch.arange(logits.shape[0], device=logits.device)
        correct = logits[rows, labels]
        others = logits.clone()
        others[rows, labels] = torch.finfo(logits.dtype).min
        margins = correct - others.logsumexp(dim=-1)
        return -margins.sum()
