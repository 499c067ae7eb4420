"""Evaluation metrics (SPEC §7). The only module besides query selection that reads ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.attacks import Attack
from unpoison.data import ImageData
from unpoison.training import accuracy


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
    model: nn.Module, data: ImageData, attack: Attack, truth: dict[str, Any], device: torch.device, batch_size: int = 512,
    x_poisoned: torch.Tensor | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Clean test accuracy, poison success rate (PSR) and the attack's own metrics of ``model``.

    PSR: the fraction of the attack's affected test inputs (e.g. triggered victim-class images) that the
    model assigns to the attacker's target label (NaN for an attack that affects no test point).
    ``x_poisoned`` (the poisoned training images) and ``seed`` are passed to :meth:`Attack.extra_metrics`
    (e.g. the Gaussian Unlearning Score).
    """
    x_aff, _, target = attack.affected_test(data, truth)
    return {
        "clean_acc": accuracy(model, data.x_test, data.y_test, device, batch_size),
        "psr": accuracy(model, x_aff, target, device, batch_size),
        **attack.extra_metrics(model, data, x_poisoned, truth, device, seed, batch_size),
    }
