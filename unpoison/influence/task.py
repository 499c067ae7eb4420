"""The kronfluence Task of Δ-Influence (Li et al. 2024; docs/methods.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kronfluence.task import Task
from torch import nn

from unpoison.influence.progress import Progress

BATCH = tuple[torch.Tensor, torch.Tensor]


class ClassificationTask(Task):
    """Training loss = summed cross-entropy; measurement = negative margin, summed.

    With ``sample=True`` (factor fitting) labels are drawn from the model's softmax, so the curvature is
    the true Fisher rather than the empirical one. They are drawn with torch's CPU generator whatever the
    device, so the draws do not depend on it and a shard of the data can resume the stream where a
    single pass would be (``resume_state``, see :mod:`unpoison.influence.shards`). The measurement
    ``-(logit_y - logsumexp_{c≠y} logit_c)`` makes kronfluence's pairwise score positive when up-weighting a
    training point raises the margin of the query's label, i.e. supports that label.

    Attributes:
        meter: if set, advanced by the number of training examples of each batch (progress lines).
        resume_state: if set, the CPU generator state installed just before the first label draw.
    """

    def __init__(self) -> None:
        super().__init__()
        self.meter: Progress | None = None
        self.resume_state: torch.Tensor | None = None

    def compute_train_loss(self, batch: BATCH, model: nn.Module, sample: bool = False) -> torch.Tensor:
        inputs, labels = batch
        logits = model(inputs)
        if sample:
            with torch.no_grad():
                if self.resume_state is not None:
                    torch.set_rng_state(self.resume_state)
                    self.resume_state = None
                probs = torch.softmax(logits.detach().float(), dim=-1).cpu()
                labels = torch.multinomial(probs, num_samples=1).flatten().to(logits.device)
        if self.meter is not None:
            self.meter.advance(len(labels))
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
