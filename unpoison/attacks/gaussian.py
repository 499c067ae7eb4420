"""Gaussian data poisoning (Pawelczyk et al., "Machine Unlearning Fails to Remove Data Poisoning Attacks",
ICLR 2025), the attack behind the Gaussian Unlearning Score (:mod:`unpoison.gus`).

``count`` training images drawn at random from the whole set get i.i.d. noise ξ ~ N(0, σ² I) in [0, 1] pixel
units; labels are unchanged and no test point is affected (there is no query: the attack is measured by how
much the model's input gradients at the clean images correlate with the noise it was trained on).

Images are stored as uint8, so the stored perturbation is the noise after rounding to the 1/255 grid and
clipping to [0, 255]: δ = (clip(round(x + 255 σ z), 0, 255) − x) / 255. The evaluator recovers δ EXACTLY as the
difference of the poisoned and clean training images (both stored), and normalises by the exact per-pixel mean
and variance of this rounded, clipped channel (:func:`channel_moments`), so the score stays N(0, 1) under the null
even on images with many saturated pixels (digits' black background), where clipping makes δ one-sided.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unpoison.attacks.base import Attack, CleanModel, PoisonResult, register_attack
from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require


def noisy_pixels(x: torch.Tensor, z: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 images ``x`` plus ``sigma``·``z`` ([0, 1] units; ``z`` standard normal, same shape), rounded to the
    uint8 grid and clipped: the channel every Gaussian poison goes through."""
    return (x.double() + 255.0 * sigma * z.double()).round().clamp(0, 255).to(torch.uint8)


def channel_moments(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (float64, length 256, [0, 1] units) of the stored perturbation δ for each clean pixel
    value 0..255, under the rounding and clipping of :func:`noisy_pixels` (exact, from the normal CDF)."""
    require(sigma > 0, "sigma", sigma, "> 0")
    s = 255.0 * sigma
    p = torch.arange(256, dtype=torch.float64)[:, None]  # clean value
    k = torch.arange(256, dtype=torch.float64)[None, :]  # stored value
    upper = torch.special.ndtr((k + 0.5 - p) / s)
    lower = torch.special.ndtr((k - 0.5 - p) / s)
    upper[:, -1], lower[:, 0] = 1.0, 0.0  # everything above 254.5 is clipped to 255, below 0.5 to 0
    prob = upper - lower
    d = (k - p) / 255.0
    mean = (prob * d).sum(1)
    var = (prob * d**2).sum(1) - mean**2
    return mean, var.clamp_min(0.0)


@register_attack("gaussian")
class GaussianPoisoning(Attack):
    """Gaussian noise on ``count`` random training images, labels kept. Params: ``count``, ``sigma`` ([0, 1]
    pixel units)."""

    affects_test = False
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
        self, model: torch.nn.Module, data: ImageData, x_poisoned: torch.Tensor, truth: dict[str, Any],
        device: torch.device, seed: int, batch_size: int = 512,
    ) -> dict[str, Any]:
        """The Gaussian Unlearning Score of ``model`` (:func:`unpoison.gus.gaussian_unlearning_score`)."""
        from unpoison.gus import gaussian_unlearning_score

        idx = torch.as_tensor(truth["poison_indices"], dtype=torch.int64)
        return gaussian_unlearning_score(
            model, data.x_train[idx], x_poisoned[idx], data.y_train[idx], truth["sigma"], device, seed, batch_size=batch_size
        )
