"""Synthetic triggers for training the frequency detector (FreqDef, Zeng et al. 2021), drawn in batches.

FreqDef never sees the attack: it learns to tell clean images from copies carrying one of five generic
trigger families, each drawn with probability 1/5 per image (the reference's ``patching_train``):

* ``white_block`` / ``noise_block`` — a white or uniform-noise rectangle with sides of 2–7 px, ``margin``
  0–5 px from a random corner (on 32-px images). On other sizes the sides and margin scale with
  ``side / 32`` (``side`` = the shorter image side), but sides stay ≥ 2 px and span at least two sizes:
  8×8 digits get 2–3 px blocks 0–1 px from the corner, 160-px images 10–35 px blocks 0–25 px from it.
  (Plain scaling would give 8×8 images 1–2 px blocks; a single changed pixel is within the natural
  variation of a digit's stroke ends: BENCHMARKS.md, "FreqDef on digits".)
* ``gaussian_noise`` — additive Gaussian noise with mean 25/255 and variance U(10, 70)/255² per image
  (the reference's ``albumentations.GaussNoise(mean=25, var_limit=(10, 70))`` on 0..255 images).
* ``shadow`` — a random rectangle spanning half to all of the lower half's height and width, darkened
  to half its brightness (the reference's ``albumentations.RandomShadow`` halves the lightness of random
  pentagons with vertices anywhere in the lower half).
* ``blend`` — ``x + 0.3 · x'`` with another image ``x'`` of the batch (the reference's additive blend).

Results are clipped to [0, 1] and quantised to 8-bit levels, like the uint8 images detection reads.
"""

from __future__ import annotations

import torch

KINDS = ("white_block", "noise_block", "gaussian_noise", "shadow", "blend")
BLEND_WEIGHT = 0.3
NOISE_MEAN, NOISE_VAR = 25.0 / 255, (10.0 / 255**2, 70.0 / 255**2)
SHADOW_FACTOR = 0.5


def block_limits(height: int, width: int) -> tuple[int, int, int]:
    """(smallest side, largest side, largest margin) of a block in pixels: 2, 7, 5 scaled by side / 32
    (sides ≥ 2 px and at least two sizes; the margin such that the largest block fits)."""
    side = min(height, width)
    scale = side / 32
    lo = min(side, max(2, round(2 * scale)))
    hi = min(side, max(lo + 1, round(7 * scale)))
    margin = max(0, min(round(5 * scale), side - hi))  # the largest block still fits
    return lo, hi, margin


def _uniform_int(lo: int, hi: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` integers drawn uniformly from lo..hi (inclusive)."""
    return torch.randint(lo, hi + 1, (n,), generator=gen)


def _box_mask(
    top: torch.Tensor, left: torch.Tensor, bh: torch.Tensor, bw: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """Boolean (n, 1, h, w): True inside each image's box [top, top + bh) × [left, left + bw)."""
    rows, cols = torch.arange(h), torch.arange(w)
    in_r = (rows[None] >= top[:, None]) & (rows[None] < (top + bh)[:, None])
    in_c = (cols[None] >= left[:, None]) & (cols[None] < (left + bw)[:, None])
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _corner_blocks(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Masks of blocks of random size placed ``margin`` px from a random corner."""
    lo, hi, max_margin = block_limits(h, w)
    bh, bw = _uniform_int(lo, hi, n, gen), _uniform_int(lo, hi, n, gen)
    margin = _uniform_int(0, max_margin, n, gen)
    corner = torch.randint(0, 4, (n,), generator=gen)
    top = torch.where(corner < 2, margin, h - margin - bh)
    left = torch.where(corner % 2 == 0, margin, w - margin - bw)
    return _box_mask(top, left, bh, bw, h, w)


def _shadows(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Masks of random rectangles of half to all of the lower half's height and width, inside it."""
    half = max(1, h // 2)
    bh = _uniform_int(max(1, half // 2), half, n, gen)
    bw = _uniform_int(max(1, w // 2), w, n, gen)
    top = h - half + (torch.rand(n, generator=gen) * (half - bh + 1)).long()
    left = (torch.rand(n, generator=gen) * (w - bw + 1)).long()
    return _box_mask(top, left, bh, bw, h, w)


def synthetic_triggers(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A triggered copy of every image of ``x``, each with one trigger family drawn uniformly.

    Args:
        x: float images in [0, 1], N×C×H×W, on any device.
        gen: CPU generator: every random choice is drawn from it (then moved to ``x``'s device).

    Returns:
        The triggered images (same shape and device, in [0, 1] on 8-bit levels) and the index into
        :data:`KINDS` of each image's trigger family (CPU int64).
    """
    n, c, h, w = x.shape
    dev = x.device
    kind = torch.randint(0, len(KINDS), (n,), generator=gen)
    blocks = _corner_blocks(n, h, w, gen).to(dev)
    noise_block = torch.rand(n, c, h, w, generator=gen).to(dev)
    sigma = (NOISE_VAR[0] + (NOISE_VAR[1] - NOISE_VAR[0]) * torch.rand(n, generator=gen)).sqrt()
    gauss = (NOISE_MEAN + sigma[:, None, None, None] * torch.randn(n, c, h, w, generator=gen)).to(dev)
    shadow = _shadows(n, h, w, gen).to(dev)
    partner = ((torch.arange(n) + torch.randint(1, max(n, 2), (n,), generator=gen)) % n).to(dev)

    def where(k: str) -> torch.Tensor:
        return (kind == KINDS.index(k)).to(dev)[:, None, None, None]

    out = x.clone()
    out = torch.where(where("white_block") & blocks, torch.ones_like(x), out)
    out = torch.where(where("noise_block") & blocks, noise_block, out)
    out = torch.where(where("gaussian_noise"), x + gauss, out)
    out = torch.where(where("shadow") & shadow, x * SHADOW_FACTOR, out)
    out = torch.where(where("blend"), x + BLEND_WEIGHT * x[partner], out)
    return out.clamp_(0, 1).mul_(255).round_().div_(255), kind
