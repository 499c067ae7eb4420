"""BadNet patch trigger (Gu et al. 2017), as used by the Δ-Influence paper (SPEC §4).

``count`` victim-class training images receive a small patch at the bottom-right and the target label.
Patterns:
  * ``reference`` — the Δ-Influence code's CIFAR trigger: 4 pixels set to ``value`` at offsets
    (−4,−2), (−2,−2), (−3,−3), (−2,−4) from the bottom-right corner (value 0 = black).
  * ``checkerboard`` — a ``size``×``size`` checkerboard of ``value`` and 255−``value``.
  * ``square`` — a solid ``size``×``size`` square of ``value`` (Imagenette's larger patch).
Patches sit ``margin`` pixels from the bottom and right borders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unpoison.attacks.base import Attack, PoisonResult, draw_victim_target, register_attack
from unpoison.data import ImageData

REFERENCE_OFFSETS = ((-4, -2), (-2, -2), (-3, -3), (-2, -4))
PATTERNS = ("reference", "checkerboard", "square")


def apply_patch(
    x: torch.Tensor, pattern: str = "reference", size: int = 3, value: int = 0, margin: int = 1
) -> torch.Tensor:
    """Return a copy of uint8 images ``x`` (N×C×H×W) with the trigger stamped on every image."""
    x = x.clone()
    h, w = x.shape[-2:]
    if pattern == "reference":
        for dr, dc in REFERENCE_OFFSETS:
            x[..., h + dr, w + dc] = value
        return x
    r0, c0 = h - margin - size, w - margin - size
    if r0 < 0 or c0 < 0:
        raise ValueError(f"badnet patch size {size} with margin {margin} does not fit a {h}×{w} image")
    if pattern == "square":
        x[..., r0 : r0 + size, c0 : c0 + size] = value
    elif pattern == "checkerboard":
        ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        board = torch.from_numpy(np.where((ii + jj) % 2 == 0, value, 255 - value).astype(np.uint8))
        x[..., r0 : r0 + size, c0 : c0 + size] = board
    else:
        raise ValueError(f"badnet pattern {pattern!r} is unknown; choose one of {PATTERNS}")
    return x


@register_attack("badnet")
class BadNet(Attack):
    """Dirty-label patch backdoor. Params: ``count`` (poisons), ``pattern``, ``size``, ``value``, ``margin``."""

    def __init__(self, count: int = 500, pattern: str = "reference", size: int = 3, value: int = 0, margin: int = 1):
        super().__init__(count=count, pattern=pattern, size=size, value=value, margin=margin)
        if pattern not in PATTERNS:
            raise ValueError(f"pattern: {pattern!r} is not one of {PATTERNS}")
        if count < 1:
            raise ValueError(f"count: {count} must be ≥ 1")

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return apply_patch(x, p["pattern"], p["size"], p["value"], p["margin"])

    def check(self, class_counts: np.ndarray | None) -> None:
        if class_counts is None:
            return
        smallest = int(np.min(class_counts))
        if self.params["count"] > smallest:
            raise ValueError(
                f"count: {self.params['count']} poisons is larger than the smallest class "
                f"({smallest} training images), and any class can be the victim; use count ≤ {smallest}"
            )

    def poison(self, data: ImageData, seed: int) -> PoisonResult:
        rng = self.rng(seed)
        victim, target = draw_victim_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() == victim)
        count = self.params["count"]
        if count > len(pool):
            raise ValueError(f"badnet count={count} exceeds the {len(pool)} training images of victim class {victim}")
        idx = np.sort(rng.choice(pool, size=count, replace=False))
        x, y = data.x_train.clone(), data.y_train.clone()
        t = torch.from_numpy(idx)
        x[t] = self.trigger(x[t])
        y[t] = target
        truth = {"attack": self.name, "victim": victim, "target": target, "poison_indices": idx.tolist()}
        return PoisonResult(x, y, truth)

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        keep = data.y_test == truth["victim"]
        x = self.trigger(data.x_test[keep])
        y = data.y_test[keep]
        return x, y, torch.full_like(y, truth["target"])
