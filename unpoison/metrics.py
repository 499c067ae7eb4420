"""Evaluation metrics. The only module besides query selection that reads ground truth."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the report imports der() without torch
    import torch
    from torch import nn

    from unpoison.attacks import Attack
    from unpoison.data import ImageData


def detection_metrics(flagged: np.ndarray, poison_indices: list[int] | np.ndarray) -> dict[str, Any]:
    """Flagged count, true positives, TPR = TP / #poisons, precision = TP / #flagged (0 when none flagged)."""
    flagged_set = set(np.asarray(flagged, dtype=np.int64).tolist())
    poisons = set(int(i) for i in poison_indices)
    tp = len(flagged_set & poisons)
    return {
        "n_flagged": len(flagged_set),
        "true_positives": tp,
        "n_poisons": len(poisons),
        "tpr": tp / len(poisons) if poisons else float("nan"),
        "precision": tp / len(flagged_set) if flagged_set else 0.0,
    }


def model_metrics(
    model: nn.Module,
    data: ImageData,
    attack: Attack,
    truth: dict[str, Any],
    device: torch.device,
    batch_size: int = 512,
    x_poisoned: torch.Tensor | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Clean test accuracy, poison success rate (PSR), robust accuracy (R-Acc) and the attack's own metrics.

    PSR: the fraction of the attack's affected test inputs (e.g. triggered victim-class images) that the
    model assigns to the attacker's target label. R-Acc (BackdoorBench's robust accuracy): the fraction of
    the same inputs it assigns to their TRUE label. Both are NaN for an attack that affects no test point.
    ``x_poisoned`` (the poisoned training images) and ``seed`` are passed to :meth:`Attack.extra_metrics`
    (e.g. the Gaussian Unlearning Score).
    """
    from unpoison.training import accuracy, predict

    x_aff, y_aff, target = attack.affected_test(data, truth)
    psr, r_acc = float("nan"), float("nan")
    if len(x_aff):
        pred = predict(model, x_aff, device, batch_size)
        psr = float((pred == target.cpu()).float().mean())
        r_acc = float((pred == y_aff.cpu()).float().mean())
    return {
        "clean_acc": accuracy(model, data.x_test, data.y_test, device, batch_size),
        "psr": psr,
        "r_acc": r_acc,
        **attack.extra_metrics(model, data, x_poisoned, truth, device, seed, batch_size),
    }


def der(psr_before: float, acc_before: float, psr_after: float, acc_after: float) -> float:
    """Defense effectiveness rating (BackdoorBench): ``[max(0, ΔPSR) − max(0, ΔACC) + 1] / 2`` with
    Δ = before − after, in [0, 1] (1: the backdoor is gone at no accuracy cost; 0.5: nothing changed).

    Arguments are fractions in [0, 1], as in the metrics rows (the tables print percent); NaN in, NaN out
    (e.g. PSR of an attack without affected test points).
    """
    values = {"psr_before": psr_before, "acc_before": acc_before, "psr_after": psr_after, "acc_after": acc_after}
    for name, v in values.items():
        if not math.isnan(v) and not 0.0 <= v <= 1.0:
            raise ValueError(
                f"der: {name} = {v!r} is not a fraction in [0, 1]; pass fractions (a table's percent / 100)"
            )
    if any(math.isnan(v) for v in values.values()):
        return float("nan")
    return (max(0.0, psr_before - psr_after) - max(0.0, acc_before - acc_after) + 1.0) / 2.0
