"""SSD, Selective Synaptic Dampening (Foster, Schoepf & Brintrup, AAAI 2024).

Importances are the mean over mini-batches of the squared gradient of the mean cross-entropy, on the
forget set (``[]_f``) and on the full training data (``[]_D``, forget points included, as SSD's
``full_train_dl``); parameters with ``[]_f > α · []_D`` are selected and dampened to
``min(λ · []_D / []_f, 1) · θ``. Published: α = 10 (selection weighting), λ = 1 (dampening constant) for
ResNet-18 on CIFAR (SSD's ``ssd.py`` and its README; Goel et al.'s bench uses the same defaults).

The Δ-Influence grid α ∈ {2, 10, 50}, λ ∈ {0.01, 0.1, 1} scaled λ by α in its code (dampening constant =
λ·α); here ``dampening`` is the λ of the formula itself, so the paper's (α, λ) is ``alpha: α,
dampening: λ·α`` — see ``experiments/ssd-grid.yaml`` (named variants, no new code).

Compute: one forward + backward pass over the forget set and one over the training set, no optimiser:
about ``1 + |S_f|/N`` training epochs of the same model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from unpoison.params import require
from unpoison.seeding import stage_seed
from unpoison.unlearners.base import ComputeBudget, Unlearner, UnlearnInputs, log_line, register_unlearner
from unpoison.unlearners.dampening import dampen, parameter_importances
from unpoison.unlearners.finetune import DeviceData, index_batches, seeded_generator


@register_unlearner("ssd")
class SelectiveSynapticDampening(Unlearner):
    """SSD: dampen the parameters far more important to the forget set than to the training data.

    Args:
        alpha: selection weighting α: select where ``[]_f > α · []_D`` (published 10). Range: > 0.
        dampening: the dampening constant λ: ``θ ← min(λ · []_D / []_f, 1) · θ`` (published 1). Range: > 0.
        batch_size: mini-batch of the importance estimates; null = the training recipe's batch size. Range: null
            or ≥ 1.
    """

    display_name = "SSD"
    citation = "Foster et al. 2024, Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening"

    def __init__(self, alpha: float = 10.0, dampening: float = 1.0, batch_size: int | None = None) -> None:
        require(alpha > 0, "alpha", alpha, "> 0 (the selection weighting α)")
        require(dampening > 0, "dampening", dampening, "> 0 (the dampening constant λ)")
        require(batch_size is None or batch_size >= 1, "batch_size", batch_size, "null (the recipe's) or ≥ 1")
        super().__init__(alpha=alpha, dampening=dampening, batch_size=batch_size)

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        p = self.params
        batch = p["batch_size"] or inputs.recipe.batch_size
        model = copy.deepcopy(inputs.model).to(inputs.device)
        data = DeviceData(inputs)
        gen = seeded_generator(stage_seed(inputs.seed, "unlearn/ssd"))  # batch composition only
        forget = inputs.forget_indices()
        everything = torch.arange(len(inputs.y_train), dtype=torch.int64)
        ce = lambda logits, y: F.cross_entropy(logits, y)  # noqa: E731  (mean over the batch)
        imp_f = parameter_importances(model, data, list(index_batches(forget, batch, gen)), ce, "square")
        imp_d = parameter_importances(model, data, list(index_batches(everything, batch, gen)), ce, "square")
        selected = dampen(model, imp_f, imp_d, p["alpha"], p["dampening"])
        total = sum(v.numel() for v in imp_f.values())
        log_line(
            inputs, f"ssd: alpha={p['alpha']:g} lambda={p['dampening']:g}: dampened {selected} of {total} parameters"
        )
        budget = ComputeBudget(train=len(forget) + len(everything))
        self.report = {"budget_epochs": budget.epochs(len(inputs.y_train)), "selected": selected, "parameters": total}
        return model.eval()
