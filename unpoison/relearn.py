"""Relearning check: does behaviour that unlearning removed come back after a brief fine-tune on clean data?

Follow-ups to "Machine Unlearning Fails to Remove Data Poisoning Attacks" (Pawelczyk et al., ICLR 2025) report
that a model "unlearned" by an approximate method can relearn the removed behaviour from a little fine-tuning.
The defender keeps part of its retain set: a fixed random ``fraction`` of the training set (drawn by the run's
seed, the same for every model of the run) minus the points the detector flagged. Each evaluated model is
fine-tuned on it for ``epochs`` with the training recipe at a constant ``lr_factor`` × its peak learning rate, and
its PSR and clean accuracy are measured again. An evaluation: it reads nothing the defender would not hold.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

import numpy as np
import torch

from unpoison.params import require
from unpoison.registry import ConfigSettings
from unpoison.seeding import stage_rng, stage_seed
from unpoison.training import TrainRecipe, train_model


@dataclass
class RelearnSettings(ConfigSettings):
    """The relearning budget (config: ``relearning``)."""

    config_key: ClassVar[str] = "relearning"

    enabled: bool = True
    fraction: float = 0.1  # share of the training set the defender fine-tunes on (minus the flagged points)
    epochs: int = 3  # passes over that subset
    lr_factor: float = 0.1  # constant learning rate = lr_factor × the recipe's peak lr

    def __post_init__(self) -> None:
        require(0 < self.fraction <= 1, "fraction", self.fraction, "in (0, 1]: the share of the training set")
        require(self.epochs >= 1, "epochs", self.epochs, "≥ 1")
        require(0 < self.lr_factor <= 1, "lr_factor", self.lr_factor, "in (0, 1]: a share of the recipe's peak lr")

    def recipe(self, base: TrainRecipe) -> TrainRecipe:
        """The fine-tuning recipe: the base recipe (batch, momentum, weight decay, augmentation) for ``epochs`` at a
        constant learning rate ``lr_factor`` × its peak."""
        return TrainRecipe.from_dict(
            {**base.to_dict(), "epochs": self.epochs, "lr": self.lr_factor * base.lr, "milestones": []}
        )


def relearn_subset(n_train: int, fraction: float, flagged: np.ndarray, seed: int) -> torch.Tensor:
    """The fixed ``fraction`` of ``n_train`` indices drawn by ``seed`` (stream ``relearn``), minus ``flagged``."""
    chosen = stage_rng(seed, "relearn").choice(n_train, size=max(2, round(fraction * n_train)), replace=False)
    return torch.from_numpy(np.setdiff1d(np.sort(chosen), np.asarray(flagged, dtype=np.int64)))


def relearn_metrics(
    model: torch.nn.Module,
    evaluator: Any,
    flagged: np.ndarray,
    recipe: TrainRecipe,
    settings: RelearnSettings,
    log: TextIO | None = None,
) -> dict[str, Any]:
    """``psr_relearned`` and ``acc_relearned`` of a copy of ``model`` fine-tuned on the relearning subset.

    Args:
        evaluator: a run's model evaluator (its poisoned training set, device, seed and ``metrics``).
        flagged: the detector's flags (excluded from the subset).
    """
    idx = relearn_subset(len(evaluator.y_poisoned), settings.fraction, flagged, evaluator.seed)
    if len(idx) < 2:
        return {"psr_relearned": float("nan"), "acc_relearned": float("nan"), "n_relearn": int(len(idx))}
    net = copy.deepcopy(model)
    train_model(
        net,
        evaluator.x_poisoned[idx],
        evaluator.y_poisoned[idx],
        settings.recipe(recipe),
        stage_seed(evaluator.seed, "relearn/order"),
        evaluator.device,
    )
    after = evaluator.metrics(net)
    if log is not None:
        print(f"relearned on {len(idx)} points: PSR {after['psr']:.3f}, clean acc {after['clean_acc']:.3f}", file=log)
    return {"psr_relearned": after["psr"], "acc_relearned": after["clean_acc"], "n_relearn": int(len(idx))}
