"""Potion (Schoepf, Foster & Brintrup 2024, "Potion: Towards Poison Unlearning"): label-free, outlier-
resistant SSD with the PTN (Poison Trigger Neutralisation) search.

Read from the reference implementation (github.com/if-loops/towards_poison_unlearning, ``XALFSSD`` in
``src/methods.py`` with ``alfssd_tuning(x_D=True)`` and ``ParameterPerturber`` in ``src/utils.py``):

- importances: the mean over mini-batches of the ABSOLUTE gradient of ``mean_b ‖f(x_b)‖₂`` (the logits'
  L2 norm; no labels), on the forget set (``[]_f``) and on the RETAIN set (``[]_D``: the reference passes
  the retain loader here, not the full training set as SSD does); computed once, on the trained model;
- adaptive selection: α = the p-th percentile of every finite ``[]_f / []_D`` with
  ``p = 100 − ln(1 + 100 · s)``, λ = 1, dampening as in SSD;
- PTN search: ``s`` starts at ``(|S_f| / (|S_f| + |S_r|)) / 25``; each step dampens a FRESH copy of the
  trained model and measures its accuracy on the forget set w.r.t. the labels it was trained with; the
  search stops at the first step with accuracy ≤ ρ · the trained model's, else ``s ← 1.1 · s``, for at
  most ``max_steps`` steps (the reference: 500). ρ: the reference's default ``--p_cut`` is 0.0 (its scripts
  sweep 0–0.75); 0 = stop once no flagged point keeps its assigned label.

One deviation: when the cap is reached without meeting ρ, the reference ends with the undampened model;
here the last (strongest) attempt is returned and the log says so.

Compute: one forward + backward pass over the forget and the retain set for the importances, then one
forward pass over the forget set per search step: about ``1 + steps · |S_f| / (3N)`` training epochs.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from torch import nn

from unpoison.params import require
from unpoison.seeding import stage_seed
from unpoison.training import accuracy
from unpoison.unlearners.base import (
    ComputeBudget,
    Unlearner,
    UnlearnInputs,
    log_line,
    needs_retain,
    register_unlearner,
)
from unpoison.unlearners.dampening import dampen, importance_ratios, parameter_importances, state_copy
from unpoison.unlearners.finetune import DeviceData, index_batches, seeded_generator


def output_norm(logits, labels):  # noqa: ARG001  (label-free: the labels are not used)
    """Potion's loss: the mean over the batch of the L2 norm of the model's output."""
    return logits.norm(p=2, dim=1).mean()


def ptn_percentile(s: float) -> float:
    """The percentile of the importance ratios used as α at search value ``s``: ``100 − ln(1 + 100 s)``,
    clipped to [0, 100]."""
    return float(min(100.0, max(0.0, 100.0 - math.log1p(100.0 * s))))


@register_unlearner("potion")
class Potion(Unlearner):
    """Label-free SSD with an adaptive α found by the PTN search.

    Args:
        rho: stop when forget-set accuracy ≤ ``rho`` × the trained model's (reference default 0). Range: [0, 1).
        max_steps: cap on the search steps (reference 500). Range: ≥ 1.
        step_factor: ``s ← step_factor · s`` after a step that does not reach ρ (reference 1.1). Range: > 1.
        start_divisor: ``s`` starts at the forget share divided by this (reference 25). Range: > 0.
        batch_size: mini-batch of the importance estimates; null = the training recipe's batch size. Range: null
            or ≥ 1.
    """

    display_name = "Potion"
    citation = "Schoepf et al. 2024, Potion: Towards Poison Unlearning"

    def __init__(
        self,
        rho: float = 0.0,
        max_steps: int = 500,
        step_factor: float = 1.1,
        start_divisor: float = 25.0,
        batch_size: int | None = None,
    ) -> None:
        require(0 <= rho < 1, "rho", rho, "in [0, 1) (the fraction of the forget-set accuracy to go below)")
        require(max_steps >= 1, "max_steps", max_steps, "≥ 1")
        require(step_factor > 1, "step_factor", step_factor, "> 1 (s must grow between steps)")
        require(start_divisor > 0, "start_divisor", start_divisor, "> 0")
        require(batch_size is None or batch_size >= 1, "batch_size", batch_size, "null (the recipe's) or ≥ 1")
        super().__init__(
            rho=rho, max_steps=max_steps, step_factor=step_factor, start_divisor=start_divisor, batch_size=batch_size
        )

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        p = self.params
        batch = p["batch_size"] or inputs.recipe.batch_size
        eval_batch = inputs.recipe.eval_batch_size
        model = copy.deepcopy(inputs.model).to(inputs.device)
        data = DeviceData(inputs)
        forget, retain = inputs.forget_indices(), needs_retain(inputs, "potion")
        gen = seeded_generator(stage_seed(inputs.seed, "unlearn/potion"))  # batch composition only
        imp_f = parameter_importances(model, data, list(index_batches(forget, batch, gen)), output_norm, "abs")
        imp_r = parameter_importances(model, data, list(index_batches(retain, batch, gen)), output_norm, "abs")
        ratios = importance_ratios(imp_f, imp_r)
        original = state_copy(model)
        x_f, y_f = inputs.x_train[forget], inputs.y_train[forget]
        acc0 = accuracy(model, x_f, y_f, inputs.device, eval_batch)
        target = p["rho"] * acc0
        s = len(forget) / (len(forget) + len(retain)) / p["start_divisor"]
        log_line(
            inputs,
            f"potion: {len(forget)} forget / {len(retain)} retain points; forget accuracy {acc0:.4f}, "
            f"stop at ≤ {target:.4f} (rho={p['rho']:g}); s starts at {s:.6g}",
        )
        reached, step, acc, alpha, selected = False, 0, acc0, float("nan"), 0
        for step in range(1, p["max_steps"] + 1):
            percentile = ptn_percentile(s)
            alpha = float(np.percentile(ratios, percentile)) if len(ratios) else 0.0
            model.load_state_dict(original)  # a fresh copy of the trained model for every attempt
            selected = dampen(model, imp_f, imp_r, alpha, 1.0)
            acc = accuracy(model, x_f, y_f, inputs.device, eval_batch)
            log_line(
                inputs,
                f"potion: step {step}: s={s:.6g} percentile={percentile:.4f} alpha={alpha:.6g} "
                f"dampened={selected} forget accuracy={acc:.4f}",
            )
            if acc <= target:
                reached = True
                break
            s *= p["step_factor"]
        if reached:
            log_line(inputs, f"potion: PTN search stopped at step {step} (s={s:.6g}, alpha={alpha:.6g})")
        else:
            log_line(
                inputs,
                f"potion: PTN search reached max_steps={p['max_steps']} without forget accuracy ≤ "
                f"{target:.4f}; keeping the last (strongest) dampening, s={s:.6g}",
            )
        budget = ComputeBudget(train=len(forget) + len(retain), forward=len(forget) * (1 + step))
        self.report = {
            "budget_epochs": budget.epochs(len(inputs.y_train)),
            "ptn_step": step,
            "ptn_reached": reached,
            "ptn_s": s,
            "alpha": alpha,
            "selected": selected,
            "forget_acc_before": acc0,
            "forget_acc_after": acc,
        }
        return model.eval()
