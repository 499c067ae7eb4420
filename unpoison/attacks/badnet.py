"""BadNet patch trigger (Gu et al. 2017), as used by the Δ-Influence paper (Li et al. 2024).

``count`` victim-class training images receive a small patch at the bottom-right and the target label.
Patterns:
  * ``reference`` — the Δ-Influence code's CIFAR trigger: 4 pixels set to ``value`` at offsets
    (−4,−2), (−2,−2), (−3,−3), (−2,−4) from the bottom-right corner (value 0 = black).
  * ``checkerboard`` — a ``size``×``size`` checkerboard of ``value`` and 255−``value``.
  * ``square`` — a solid ``size``×``size`` square of ``value`` (Imagenette's larger patch).
Patches sit ``margin`` pixels from the bottom and right borders.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import numpy as np
import torch

from unpoison.attacks.base import (
    Attack,
    CleanModel,
    PoisonResult,
    check_victim_counts,
    draw_victim_target,
    register_attack,
)
from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require

REFERENCE_OFFSETS = ((-4, -2), (-2, -2), (-3, -3), (-2, -4))
Pattern = Literal["reference", "checkerboard", "square"]
PATTERNS = typing.get_args(Pattern)


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
    """Dirty-label patch backdoor: ``count`` victim-class training images get the patch and the target label.

    Args:
        count: poisoned training images, all of the victim class. Range: ≥ 1 and ≤ the smallest class's training
            images.
        pattern: the patch: ``reference`` (the Δ-Influence code's 4 pixels), ``checkerboard`` or ``square``.
        size: side of the checkerboard or square in pixels (ignored by ``reference``). Range: ≥ 1; size + margin
            ≤ the image side (``reference`` needs 5 px).
        value: pixel value of the patch (the checkerboard alternates it with 255 − value). Range: 0 to 255.
        margin: pixels between the patch and the bottom and right borders. Range: ≥ 0.
    """

    display_name = "BadNet"
    citation = "Gu et al. 2017, BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply Chain"

    def __init__(
        self, count: int = 500, pattern: Pattern = "reference", size: int = 3, value: int = 0, margin: int = 1
    ) -> None:
        super().__init__(count=count, pattern=pattern, size=size, value=value, margin=margin)
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(size >= 1, "size", size, "≥ 1 pixel")
        require(0 <= value <= 255, "value", value, "a pixel value in 0..255")
        require(margin >= 0, "margin", margin, "≥ 0 pixels")

    def trigger(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return apply_patch(x, p["pattern"], p["size"], p["value"], p["margin"])

    def footprint(self) -> int:
        """Pixels from the bottom/right border that the trigger needs (the image's side must be at least this)."""
        p = self.params
        return 5 if p["pattern"] == "reference" else p["size"] + p["margin"]

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is None:
            return
        if info.image_shape is not None:
            side = min(info.image_shape[1:])
            need = self.footprint()
            what = "the reference 4-pixel trigger" if self.params["pattern"] == "reference" else "size + margin"
            require(
                need <= side, "size", self.params["size"], f"such that {what} ({need} px) fits the {side}-px images"
            )
        check_victim_counts(self.params["count"], info, n_queries)

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
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
