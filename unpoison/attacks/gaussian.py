"""Gaussian data poisoning (Pawelczyk et al., "Machine Unlearning Fails to Remove Data Poisoning Attacks",
ICLR 2025), the attack behind the Gaussian Unlearning Score (:mod:`unpoison.gus`).

``count`` training images drawn at random from the whole set get i.i.d. noise ξ ~ N(0, σ² I) in [0, 1] pixel
units; labels are unchanged and no test point is affected (there is no query: the attack is measured by how
much the model's input gradients at the clean images correlate with the noise it was trained on).

Images are stored as uint8, so the stored perturbation is the noise after rounding to the 1/255 grid and
clipping to [0, 255]: δ = (clip(round(x + 255 σ z), 0, 255) − x) / 255. The evaluator recovers δ EXACTLY as the
difference of the poisoned and clean training images (both stored), and normalises by the exact per-pixel mean
and variance of this rounded, clipped channel (:func:`unpoison.gus.channel_moments`), so the score stays N(0, 1) under the null
even on images with many saturated pixels (digits' black background), where clipping makes δ one-sided.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unpoison.attacks.base import Attack, CleanModel, PoisonResult, register_attack
from unpoison.data import DatasetInfo, ImageData
from unpoison.gus import gaussian_unlearning_score, noisy_pixels
from unpoison.params import require


@register_attack("gaussian")
class GaussianPoisoning(Attack):
    """Gaussian noise on ``count`` random training images, labels kept.

    Args:
        count: noisy training images, drawn from the whole set (published rate: 1.5 %). Range: ≥ 1 and ≤ the
            training set's size.
        sigma: standard deviation of the noise in [0, 1] pixel units. Range: (0, 1].
    """

    display_name = "Gaussian poisoning"
    citation = "Pawelczyk et al. 2025, Machine Unlearning Fails to Remove Data Poisoning Attacks"
    affects_test = False
    report_tables = ("gus",)
    metrics_read_poisoned = True

    def __init__(self, count: int = 750, sigma: float = 0.1) -> None:
        super().__init__(count=count, sigma=sigma)
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(0 < sigma <= 1, "sigma", sigma, "in (0, 1] (noise std in [0, 1] pixel units)")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is not None and info.train_counts is not None:
            n = int(np.sum(info.train_counts))
            require(self.params["count"] <= n, "count", self.params["count"], f"≤ {n}, the training set's size")

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        rng = self.rng(seed)
        n, count = len(data.y_train), self.params["count"]
        if count > n:
            raise ValueError(f"gaussian count={count} exceeds the {n} training images")
        idx = np.sort(rng.choice(n, size=count, replace=False))
        t = torch.from_numpy(idx)
        z = torch.from_numpy(rng.standard_normal(size=(count, *data.x_train.shape[1:])))
        x = data.x_train.clone()
        x[t] = noisy_pixels(x[t], z, self.params["sigma"])
        truth = {"attack": self.name, "sigma": self.params["sigma"], "poison_indices": idx.tolist()}
        return PoisonResult(x, data.y_train.clone(), truth)

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        """No test point is affected: empty tensors (PSR is not defined for this attack)."""
        return data.x_test[:0], data.y_test[:0], data.y_test[:0]

    def extra_metrics(
        self,
        model: torch.nn.Module,
        data: ImageData,
        x_poisoned: torch.Tensor,
        truth: dict[str, Any],
        device: torch.device,
        seed: int,
        batch_size: int = 512,
    ) -> dict[str, Any]:
        """The Gaussian Unlearning Score of ``model`` (:func:`unpoison.gus.gaussian_unlearning_score`)."""
        idx = torch.as_tensor(truth["poison_indices"], dtype=torch.int64)
        return gaussian_unlearning_score(
            model,
            data.x_train[idx],
            x_poisoned[idx],
            data.y_train[idx],
            truth["sigma"],
            device,
            seed,
            batch_size=batch_size,
        )
