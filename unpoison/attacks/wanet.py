"""WaNet warping backdoor (Nguyen & Tran 2021, "WaNet - Imperceptible Warping-based Backdoor Attack"), dirty
label, all-to-one, as a data-poisoning attack (the poisoned set is fixed before training).

The trigger is a smooth warping field: a k×k×2 grid of offsets uniform in [−1, 1], divided by its mean
absolute value, upsampled bicubically (align_corners) to H×W, scaled by ``s``/H (rows) and ``s``/W (columns)
and added to the identity sampling grid in [−1, 1] coordinates, times ``grid_rescale``, clamped to [−1, 1];
images are resampled with bilinear ``grid_sample`` (align_corners). ``count`` images of the non-target
classes are warped and relabelled to the target. Noise mode: ``round(cross_ratio · count)`` further images
(any class, not poisons) are warped with the field plus per-pixel noise uniform in [−1, 1]/H and KEEP their
labels, so that the model learns this one warp rather than any warp. The affected test points are all
non-target test images warped with the field (no noise).

Published values (Nguyen & Tran; BackdoorBench ``config/attack/wanet/default.yaml``): k = 4, s = 0.5,
grid_rescale = 1, cross_ratio = 2. The offsets are divided by the image side, so ``s`` sets a displacement in
PIXELS whatever the image size (s·(H−1)/(2H) ≈ 0.25 px at s = 0.5 per unit offset; the offsets have mean
magnitude 1), and the k control points span the whole image at any size: the published values need no
scaling for small images. On non-square images rows
and columns are scaled by their own side (the reference uses H for both).

Departures: the reference code (and BackdoorBench) warps a fresh share of each training batch, redrawing the
noise every batch; here the poisoned set is drawn once (BackdoorBench's saved ``bd_train`` set is the same
thing). The poisons are drawn from the non-target classes (the reference takes the first images of each
shuffled batch, of any class). Ground truth: ``poison_indices`` are the relabelled warped images (what
detection is scored on: the points that implant the backdoor); the noise images are recorded separately as
``noise_indices`` (``modified_indices`` = both), since they carry their true labels and a non-trigger warp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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
from unpoison.data import DatasetInfo, ImageData, to_float
from unpoison.params import require


def warp_control(k: int, rng: np.random.Generator) -> np.ndarray:
    """The 2×k×k control offsets: uniform in [−1, 1], divided by their mean absolute value."""
    ins = rng.uniform(-1.0, 1.0, size=(2, k, k))
    return (ins / np.abs(ins).mean()).astype(np.float32)


def identity_grid(h: int, w: int) -> torch.Tensor:
    """The 1×H×W×2 sampling grid that reproduces the image (x = column, y = row, both in [−1, 1])."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack((xs, ys), dim=2)[None]


def warp_grid(control: np.ndarray, h: int, w: int, s: float, grid_rescale: float) -> torch.Tensor:
    """The trigger's 1×H×W×2 sampling grid from the 2×k×k ``control`` offsets (see the module docstring)."""
    ctrl = torch.as_tensor(control, dtype=torch.float32)[None]
    field = F.interpolate(ctrl, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    scale = torch.tensor([s / w, s / h])
    return ((identity_grid(h, w) + field * scale) * grid_rescale).clamp(-1.0, 1.0)


def noisy_grids(grid: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` grids: ``grid`` plus per-pixel noise uniform in [−1, 1] divided by the side (noise mode)."""
    _, h, w, _ = grid.shape
    noise = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(n, h, w, 2)).astype(np.float32)) / torch.tensor([w, h])
    return (grid + noise).clamp(-1.0, 1.0)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """uint8 images ``x`` (N×C×H×W) resampled at ``grid`` (1×H×W×2, or N×H×W×2), back to uint8."""
    if len(x) == 0:
        return x.clone()
    g = grid.expand(len(x), -1, -1, -1) if grid.shape[0] == 1 else grid
    out = F.grid_sample(to_float(x), g, mode="bilinear", padding_mode="zeros", align_corners=True)
    return to_uint8(out * 255.0)


@register_attack("wanet")
class WaNet(Attack):
    """Dirty-label warping trigger, all-to-one, with the published noise mode.

    Args:
        count: warped training images relabelled to the target, from the non-target classes. Range: ≥ 1.
        k: side of the random control grid of offsets (published 4). Range: ≥ 1.
        s: warp strength (published 0.5). Range: > 0.
        grid_rescale: scale of the warp field after clamping (published 1). Range: > 0.
        cross_ratio: noise-mode images per poison, warped with the field plus random noise and keeping their labels
            (published 2). Range: ≥ 0.
    """

    display_name = "WaNet"
    citation = "Nguyen & Tran 2021, WaNet: Imperceptible Warping-based Backdoor Attack"

    def __init__(
        self, count: int = 500, k: int = 4, s: float = 0.5, grid_rescale: float = 1.0, cross_ratio: float = 2.0
    ) -> None:
        super().__init__(count=count, k=k, s=s, grid_rescale=grid_rescale, cross_ratio=cross_ratio)
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(k >= 1, "k", k, "≥ 1 control point per side (published 4)")
        require(s > 0.0, "s", s, "> 0 (warp strength; published 0.5)")
        require(grid_rescale > 0.0, "grid_rescale", grid_rescale, "> 0 (published 1)")
        require(
            cross_ratio >= 0.0,
            "cross_ratio",
            cross_ratio,
            "≥ 0 noise images per poison (published 2; 0 = no noise mode)",
        )

    def n_noise(self) -> int:
        """Noise-mode images: ``round(cross_ratio · count)``."""
        return round(self.params["cross_ratio"] * self.params["count"])

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is not None and info.image_shape is not None:
            side = min(info.image_shape[1:])
            require(
                self.params["k"] <= side, "k", self.params["k"], f"≤ {side}, the image side (control points per side)"
            )
        check_dirty_label(self.params["count"], info, n_queries, self.n_noise(), "cross_ratio")

    def grid(self, truth: dict[str, Any], h: int, w: int) -> torch.Tensor:
        """The trigger's sampling grid, rebuilt from the control offsets stored in the ground truth."""
        return warp_grid(
            np.asarray(truth["warp_control"], dtype=np.float32), h, w, self.params["s"], self.params["grid_rescale"]
        )

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        rng = self.rng(seed)
        h, w = data.x_train.shape[-2:]
        target = draw_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() != target)
        idx = draw_indices(pool, self.params["count"], rng, self.name, f"training images outside target class {target}")
        rest = np.setdiff1d(np.arange(len(data.y_train)), idx)
        noise_idx = draw_indices(
            rest, self.n_noise(), rng, self.name, "training images left for noise mode (cross_ratio)"
        )
        control = warp_control(self.params["k"], rng)
        truth = base_truth(
            self.name,
            target,
            idx,
            noise_indices=noise_idx.tolist(),
            modified_indices=np.union1d(idx, noise_idx).tolist(),
            warp_control=control.tolist(),
        )
        grid = self.grid(truth, h, w)
        x, y = data.x_train.clone(), data.y_train.clone()
        t, tn = torch.from_numpy(idx), torch.from_numpy(noise_idx)
        x[t] = warp(x[t], grid)
        y[t] = target
        x[tn] = warp(x[tn], noisy_grids(grid, len(noise_idx), rng))
        # the displacement in pixels, columns (dx) then rows (dy), as a 2×1×H×W stack
        shift = (grid - identity_grid(h, w))[0] * torch.tensor([(w - 1) / 2, (h - 1) / 2])
        artifacts = {
            "warp_field": shift.permute(2, 0, 1)[:, None].numpy().astype(np.float32),
            "example": example(data.x_train[idx[0]], x[idx[0]]),
        }
        return PoisonResult(x, y, truth, artifacts)

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        grid = self.grid(truth, *data.x_test.shape[-2:])
        return non_target_test(data, int(truth["target"]), lambda x: warp(x, grid))
