"""Batched, on-device training augmentation: random crop (zero padding ±p px) and horizontal flip.

Operating on whole uint8/float batches on the training device avoids per-sample PIL work in DataLoader
workers, which dominates small-image training on GPUs (the airbench approach).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly translate each image by up to ``padding`` pixels (zero fill) and flip half of them.

    Args:
        x: batch N×C×H×W (any dtype), on any device.
        padding: maximum shift in pixels; 0 disables cropping.
        flip: whether to flip a random half horizontally.
        generator: CPU generator for reproducible draws (offsets are drawn on CPU, then moved).
    """
    n, _, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]  # N×H
        cols = torch.arange(w, device=x.device)[None, :] + dx[:, None]  # N×W
        idx_n = torch.arange(n, device=x.device)[:, None, None]
        # N×H×W×C gathered, then back to N×C×H×W
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x.contiguous()
