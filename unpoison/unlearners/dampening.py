"""Synaptic dampening, shared by SSD and Potion: per-parameter importances and the dampening rule.

Importance of a parameter on a data set = the mean over mini-batches of a power of the gradient of a
batch loss (SSD: the squared gradient of the mean cross-entropy; Potion: the absolute gradient of the
mean output norm). The rule (Foster et al. 2024, eq. 2–3): parameters whose forget-set importance exceeds
``alpha`` times their importance on the reference data are selected, and each selected θ becomes
``min(λ · []_D / []_f, 1) · θ``. Importances are computed in float32 with the model in eval mode, as in the
reference code (squared fp16 gradients underflow, so AMP is not used here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from unpoison.unlearners.finetune import DeviceData

Importances = dict[str, torch.Tensor]
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> scalar loss


def parameter_importances(
    model: nn.Module,
    data: DeviceData,
    batches: list[torch.Tensor],
    loss: BatchLoss,
    power: Literal["square", "abs"],
) -> Importances:
    """Mean over ``batches`` of ``|∂ loss(batch) / ∂θ|^p`` for every named parameter (p = 2 or 1).

    Args:
        model: evaluated in eval mode (BatchNorm uses its running statistics); its weights are not changed.
        data: the training set on the device.
        batches: index batches (the mean is over batches, as in the reference code).
        loss: the batch loss from logits and assigned labels.
        power: ``"square"`` (SSD) or ``"abs"`` (Potion).

    Returns:
        name → importance tensor (same shape as the parameter), zero for an empty ``batches``.
    """
    model.eval()
    imp = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in model.named_parameters()}
    for idx in batches:
        x, y = data.batch(idx)
        model.zero_grad(set_to_none=True)
        loss(model(x).float(), y).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                g = p.grad.detach().float()
                imp[name] += g.pow(2) if power == "square" else g.abs()
    model.zero_grad(set_to_none=True)
    for value in imp.values():
        value /= max(len(batches), 1)
    return imp


@torch.no_grad()
def dampen(model: nn.Module, forget: Importances, reference: Importances, alpha: float, dampening: float) -> int:
    """Apply the dampening rule in place: where ``forget > alpha · reference``,
    ``θ ← min(dampening · reference / forget, 1) · θ``. Returns how many parameters were selected.

    Selected entries have ``forget > alpha · reference ≥ 0``, so the division is by a positive number.
    """
    selected = 0
    for name, p in model.named_parameters():
        f, d = forget[name], reference[name]
        mask = f > alpha * d
        if mask.any():
            factor = torch.clamp(dampening * d[mask] / f[mask], max=1.0)
            p[mask] = (p[mask].float() * factor).to(p.dtype)
            selected += int(mask.sum())
    return selected


def importance_ratios(forget: Importances, reference: Importances) -> np.ndarray:
    """Every finite ``forget / reference`` over all parameters, sorted (float64): NaN (0/0) and ∞ (x/0)
    are dropped, as in the Potion reference code."""
    ratios = torch.cat([(forget[n] / reference[n]).flatten() for n in forget]).double().cpu().numpy()
    return np.sort(ratios[np.isfinite(ratios)])


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict (to restore a fresh model between dampening attempts)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
