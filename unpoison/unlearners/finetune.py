"""What the gradient-based unlearners share: the training set on the device, shuffled index batches from a
seeded generator and the distillation loss (the AMP-aware optimiser step is :class:`unpoison.training.Stepper`).

Data stay on the unlearner's device as uint8 (like :func:`unpoison.training.train_model`) and become [0, 1]
floats one batch at a time; models normalise their inputs themselves. No augmentation: the reference
unlearning code (Goel et al. 2024's bench, the SCRUB and Bad-Teacher code) fine-tunes on the training
images as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from unpoison.data import to_float
from unpoison.unlearners.base import UnlearnInputs


class DeviceData:
    """The (poisoned) training set of ``inputs`` on ``inputs.device``."""

    def __init__(self, inputs: UnlearnInputs) -> None:
        self.device = inputs.device
        self.x = inputs.x_train.to(inputs.device)
        self.y = inputs.y_train.to(inputs.device)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (float in [0, 1]) and assigned labels of the training points ``idx``."""
        idx = idx.to(self.device)
        return to_float(self.x[idx]), self.y[idx]


def index_batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """``indices`` cut into batches of ``batch_size`` (the last one may be shorter).

    Args:
        indices: training indices (int64, CPU).
        batch_size: points per batch (≥ 1).
        generator: a seeded CPU generator: the indices are visited in a fresh random order drawn from it
            (call again for the next epoch: a new order). ``None`` keeps the given order.
    """
    if generator is not None:
        indices = indices[torch.randperm(len(indices), generator=generator)]
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a stage seed of :mod:`unpoison.seeding`)."""
    return torch.Generator().manual_seed(seed)


def kl_to_teacher(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_teacher ‖ softmax(student / T)), summed over classes and averaged over the batch, in float32."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_p, teacher_probs.float(), reduction="batchmean")


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s distillation loss: KL(p_teacher ‖ p_student) at temperature T, times T², mean over
    the batch — SCRUB's ``DistillKL`` (Kurmanji et al.) and ``distill_kl_loss`` of Goel et al.'s bench."""
    teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    return kl_to_teacher(student_logits, teacher, temperature) * temperature**2


def frozen_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` on ``device`` in eval mode with gradients off (a teacher)."""
    import copy

    teacher = copy.deepcopy(model).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def mean_loss(model: nn.Module, data: DeviceData, indices: torch.Tensor, batch_size: int = 512) -> float:
    """Mean cross-entropy of ``model`` (eval mode) on the training points ``indices`` (NaN when empty)."""
    if len(indices) == 0:
        return float("nan")
    model.eval()
    total = 0.0
    for idx in index_batches(indices, batch_size, None):
        x, y = data.batch(idx)
        total += float(F.cross_entropy(model(x).float(), y, reduction="sum"))
    return total / len(indices)
