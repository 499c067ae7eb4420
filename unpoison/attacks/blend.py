"""Blended-pattern backdoor (Chen et al. 2017, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning"), dirty label, all-to-one.

A fixed full-image pattern ``p`` (C×H×W, 0..255) is blended into ``count`` training images drawn from the
classes other than the target, ``x' = (1 − α)·x + α·p`` (rounded to uint8), and they are relabelled to the
target; the affected test points are all non-target test images blended at ``test_alpha``. The pattern is
seeded uniform noise (each pixel uniform in 0..255, Chen et al.'s random pattern) unless ``pattern_path``
names an image file (Chen et al.'s Hello Kitty; BackdoorBench's default), which is resized bilinearly to the
dataset's images and converted to their channels.

Published values: α = 0.2 at training and test time (Chen et al.; BackdoorBench's
``attack_train_blended_alpha`` / ``attack_test_blended_alpha``). BackdoorBench draws the poisons from all
classes, so about 1/K of them already carry the target label and only get the pattern; here they are drawn
from the non-target classes, so every poison is relabelled and ``count`` is the number of dirty-label
images. The default ``count`` (500) is 1 % of CIFAR-10's 50,000 training images, one of BackdoorBench's
published poisoning rates (its default is 10 %) and the rate of this project's BadNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from unpoison.attacks.alltoone import (
    base_truth,
    check_dirty_label,
    draw_indices,
    draw_target,
    example,
    non_target_test,
    to_uint8,
)
from unpoison.attacks.base import Attack, CleanModel, PoisonResult, register_attack
from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require


def blend(x: torch.Tensor, pattern: torch.Tensor, alpha: float) -> torch.Tensor:
    """uint8 images ``x`` (N×C×H×W) blended with the uint8 ``pattern`` (C×H×W): ``round((1−α)x + α·p)``."""
    return to_uint8((1.0 - alpha) * x.float() + alpha * pattern.float())


def load_pattern(path: str, shape: tuple[int, int, int]) -> np.ndarray:
    """An image file as a C×H×W uint8 pattern of ``shape``: converted to gray (C = 1) or RGB (C = 3) and
    resized bilinearly to H×W."""
    from PIL import Image  # imported here: pipeline jobs that never blend a file need not load PIL

    c, h, w = shape
    with Image.open(path) as img:
        img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
        arr = np.array(img, dtype=np.uint8)  # a writable copy
    return arr[None] if c == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


@register_attack("blend")
class Blend(Attack):
    """Dirty-label blended pattern, all-to-one: x' = (1 − α)·x + α·pattern on non-target images, relabelled.

    Args:
        count: poisoned training images, drawn from the non-target classes. Range: ≥ 1.
        alpha: the pattern's weight in the blend during training (published 0.2). Range: (0, 1].
        test_alpha: the weight at test time; null = alpha (published: 0.2 for both). Range: (0, 1] or null.
        pattern_path: an image file used as the pattern (resized to the images); null = uniform noise drawn by the
            seed (Chen et al.'s random pattern).
    """

    display_name = "Blend"
    citation = "Chen et al. 2017, Targeted Backdoor Attacks on Deep Learning Systems Using Data Poisoning"

    def __init__(
        self, count: int = 500, alpha: float = 0.2, test_alpha: float | None = None, pattern_path: str | None = None
    ) -> None:
        super().__init__(count=count, alpha=alpha, test_alpha=test_alpha, pattern_path=pattern_path)
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(0.0 < alpha <= 1.0, "alpha", alpha, "in (0, 1] (the pattern's weight in the blend; published 0.2)")
        if test_alpha is not None:
            require(0.0 < test_alpha <= 1.0, "test_alpha", test_alpha, "in (0, 1], or null for the training alpha")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        path = self.params["pattern_path"]
        if path is not None:
            require(
                Path(path).is_file(), "pattern_path", path, "an existing image file (relative to the working directory)"
            )
            if info is not None and info.image_shape is not None:
                try:
                    load_pattern(path, info.image_shape)
                except OSError as err:
                    raise ValueError(f"pattern_path: {path!r} is not a readable image ({err})") from err
        check_dirty_label(self.params["count"], info, n_queries)

    def pattern(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """The C×H×W uint8 pattern: the image file, or uniform noise from the attack's stream."""
        path = self.params["pattern_path"]
        if path is not None:
            return load_pattern(path, tuple(shape))  # type: ignore[arg-type]
        return rng.integers(0, 256, size=tuple(shape), dtype=np.uint8)

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        rng = self.rng(seed)
        target = draw_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() != target)
        idx = draw_indices(pool, self.params["count"], rng, self.name, f"training images outside target class {target}")
        pattern = self.pattern(data.x_train.shape[1:], rng)
        x, y = data.x_train.clone(), data.y_train.clone()
        t = torch.from_numpy(idx)
        x[t] = blend(x[t], torch.from_numpy(pattern), self.params["alpha"])
        y[t] = target
        truth = base_truth(self.name, target, idx, pattern=pattern.tolist())  # C×H×W uint8, re-applied at test time
        return PoisonResult(
            x, y, truth, artifacts={"pattern": pattern, "example": example(data.x_train[idx[0]], x[idx[0]])}
        )

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        alpha = self.params["test_alpha"] if self.params["test_alpha"] is not None else self.params["alpha"]
        pattern = torch.tensor(truth["pattern"], dtype=torch.uint8)
        return non_target_test(data, int(truth["target"]), lambda x: blend(x, pattern, alpha))
