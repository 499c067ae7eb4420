"""Gradient-ascent unlearners, the baselines of "Machine Unlearning Fails to Remove Data Poisoning Attacks"
(Pawelczyk et al., ICLR 2025): GA (ascend the forget set's cross-entropy) and NegGrad+ (Kurmanji et al.
2023: descend ``β · CE(retain) − (1 − β) · CE(forget)``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from unpoison.params import require
from unpoison.seeding import stage_seed
from unpoison.training import Stepper
from unpoison.unlearners.base import (
    ComputeBudget,
    Unlearner,
    UnlearnInputs,
    log_line,
    needs_retain,
    register_unlearner,
)
from unpoison.unlearners.finetune import DeviceData, index_batches, seeded_generator


def _sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _check_sgd(lr: float, momentum: float, weight_decay: float, epochs: int, batch_size: int) -> None:
    require(lr > 0, "lr", lr, "> 0")
    require(0 <= momentum < 1, "momentum", momentum, "in [0, 1)")
    require(weight_decay >= 0, "weight_decay", weight_decay, "≥ 0")
    require(epochs >= 1, "epochs", epochs, "≥ 1")
    require(batch_size >= 1, "batch_size", batch_size, "≥ 1")


@register_unlearner("ga")
class GradientAscent(Unlearner):
    """GA: maximise the mean cross-entropy of the forget set (w.r.t. the labels trained with) by SGD, for
    ``epochs`` shuffled passes over the forget set only, in train mode as the reference loops (BatchNorm then
    normalises with, and re-estimates its statistics on, the forget batches; with BatchNorm frozen the ascent
    diverged: BENCHMARKS.md, "Gradient ascent and BatchNorm").

    Defaults: plain SGD (no momentum, no weight decay) at lr 0.01 — the optimiser of Kurmanji et al.'s
    ``negative_grad`` (their NegGrad baseline is this loss) — for 5 passes, batch 128. Pawelczyk et al. tune
    GA's lr and budget per setting; their values are not published, so these are stated, not published.
    Compute: ``epochs · |S_f|`` image passes, i.e. ``epochs · |S_f| / N`` training epochs.

    Args:
        epochs: passes over the forget set. Range: ≥ 1.
        lr: SGD learning rate. Range: > 0.
        momentum: SGD momentum. Range: [0, 1).
        weight_decay: SGD weight decay. Range: ≥ 0.
        batch_size: forget images per step. Range: ≥ 1.
    """

    display_name = "GA"
    citation = "gradient ascent on the forget set (the baseline of Pawelczyk et al. 2025)"

    def __init__(
        self,
        epochs: int = 5,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 128,
    ) -> None:
        _check_sgd(lr, momentum, weight_decay, epochs, batch_size)
        super().__init__(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, batch_size=batch_size)

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        p = self.params
        forget = inputs.forget_indices()
        data = DeviceData(inputs)
        model = copy.deepcopy(inputs.model).to(inputs.device)
        stepper = Stepper(_sgd(model, p["lr"], p["momentum"], p["weight_decay"]), inputs.device, inputs.recipe.amp)
        gen = seeded_generator(stage_seed(inputs.seed, "unlearn/ga"))
        for epoch in range(p["epochs"]):
            model.train()
            total = 0.0
            for idx in index_batches(forget, p["batch_size"], gen):
                x, y = data.batch(idx)
                with stepper.autocast():
                    loss = F.cross_entropy(model(x).float(), y)
                total += -stepper.step(-loss) * len(idx)
            log_line(inputs, f"ga: epoch {epoch + 1}/{p['epochs']} forget loss {total / len(forget):.4f}")
        budget = ComputeBudget(train=p["epochs"] * len(forget))
        self.report = {"budget_epochs": budget.epochs(len(inputs.y_train))}
        return model.eval()


@register_unlearner("neggrad_plus")
class NegGradPlus(Unlearner):
    """NegGrad+: minimise ``β · CE(retain batch) − (1 − β) · CE(forget batch)``, one forget batch beside
    every retain batch (the forget set reshuffled whenever it runs out), for ``epochs`` passes over the
    retain set.

    Published (Kurmanji et al.'s SCRUB code, ``train_negrad`` and the CIFAR ResNet notebooks): β = 0.9999
    (``ng_alpha``; 0.95 in their small-scale runs), 5 epochs, SGD lr 0.01 without momentum or weight decay,
    retain batch 128. Forget batch 32 is the notebooks' ``del_batch_size``. Their ``cycle(forget_loader)``
    replays the first pass's batches; here the forget set is reshuffled each time it is exhausted.

    Compute: ``epochs · (|S_r| + batches · forget_batch_size)`` image passes, about ``1.25 · epochs``
    training epochs with the defaults.

    Args:
        beta: weight of the retain loss; 1 − beta weighs the forget loss (published 0.9999; small-scale 0.95).
            Range: (0, 1).
        epochs: passes over the retain set (published 5). Range: ≥ 1.
        lr: SGD learning rate (published 0.01). Range: > 0.
        momentum: SGD momentum (published 0). Range: [0, 1).
        weight_decay: SGD weight decay (published 0). Range: ≥ 0.
        batch_size: retain batch (published 128). Range: ≥ 1.
        forget_batch_size: the forget batch beside each retain batch (published 32). Range: ≥ 1.
    """

    display_name = "NegGrad+"
    citation = "Kurmanji et al. 2023, Towards Unbounded Machine Unlearning"

    def __init__(
        self,
        beta: float = 0.9999,
        epochs: int = 5,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        forget_batch_size: int = 32,
    ) -> None:
        require(0 < beta < 1, "beta", beta, "in (0, 1) (weight of the retain loss; 1 − beta on the forget loss)")
        _check_sgd(lr, momentum, weight_decay, epochs, batch_size)
        require(forget_batch_size >= 1, "forget_batch_size", forget_batch_size, "≥ 1")
        super().__init__(
            beta=beta,
            epochs=epochs,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            forget_batch_size=forget_batch_size,
        )

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        p = self.params
        forget, retain = inputs.forget_indices(), needs_retain(inputs, "neggrad_plus")
        data = DeviceData(inputs)
        model = copy.deepcopy(inputs.model).to(inputs.device)
        stepper = Stepper(_sgd(model, p["lr"], p["momentum"], p["weight_decay"]), inputs.device, inputs.recipe.amp)
        gen = seeded_generator(stage_seed(inputs.seed, "unlearn/neggrad_plus"))
        forget_batches = iter(())
        budget = ComputeBudget()
        for epoch in range(p["epochs"]):
            model.train()
            total = 0.0
            for idx_r in index_batches(retain, p["batch_size"], gen):
                idx_f = next(forget_batches, None)
                if idx_f is None:  # the forget set ran out: a new shuffled pass
                    forget_batches = index_batches(forget, p["forget_batch_size"], gen)
                    idx_f = next(forget_batches)
                x_r, y_r = data.batch(idx_r)
                x_f, y_f = data.batch(idx_f)
                with stepper.autocast():
                    loss_r = F.cross_entropy(model(x_r).float(), y_r)
                    loss_f = F.cross_entropy(model(x_f).float(), y_f)
                total += stepper.step(p["beta"] * loss_r - (1 - p["beta"]) * loss_f) * len(idx_r)
                budget.train += len(idx_r) + len(idx_f)
            log_line(inputs, f"neggrad_plus: epoch {epoch + 1}/{p['epochs']} loss {total / len(retain):.4f}")
        self.report = {"budget_epochs": budget.epochs(len(inputs.y_train))}
        return model.eval()
