"""The Gaussian Unlearning Score (Pawelczyk et al., ICLR 2025): does a model still carry the noise it was
trained on? An evaluation metric: it reads the poison indices and the exact stored perturbations.

For each poisoned training point (clean image x, label y, stored perturbation δ), with g = ∇ₓ ℓ(θ; x, y) the
cross-entropy gradient at the CLEAN image in [0, 1] pixel units (model in eval mode):

    I = ⟨g, δ − μ(x)⟩ / sqrt(Σᵢ gᵢ² v(xᵢ))

where μ, v are the per-pixel mean and variance of the rounded, clipped noise channel
(:func:`channel_moments`). Without rounding and clipping this is the published
⟨g, ξ⟩ / (σ ‖g‖); under the null (θ never saw δ, so g is independent of it) I has mean 0 and variance 1 exactly,
and is close to N(0, 1). A model that fitted x + δ to y has a lower loss along δ, so its I is NEGATIVE: the
detection score is −I. The null is also drawn empirically: ``n_null`` fresh perturbations through the same
channel on the same points, scored with the same gradients; TPR at 1 % FPR and AUC compare the poisons' −I with
the null's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from unpoison.data import to_float
from unpoison.params import require
from unpoison.seeding import stage_seed


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


def input_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    """Per-example ∇ₓ CE(model(x), y) at uint8 images ``x`` in [0, 1] pixel units (eval mode; float32, CPU).

    The loss is summed over the batch: in eval mode examples do not interact, so each image's gradient is its own.
    """
    model.eval().to(device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i : i + batch_size].to(device)).requires_grad_(True)
        loss = F.cross_entropy(model(xb).float(), y[i : i + batch_size].to(device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, xb)
        out.append(grad.detach().cpu())
    return torch.cat(out) if out else torch.empty(0, *x.shape[1:])


def score_perturbations(grad: torch.Tensor, clean: torch.Tensor, delta: torch.Tensor, sigma: float) -> torch.Tensor:
    """I for each row: ⟨g, δ − μ(x)⟩ / sqrt(Σ g² v(x)) (float64; NaN where the gradient is exactly zero).

    Args:
        grad: (N, ...) input gradients at the clean images.
        clean: (N, ...) uint8 clean images (their pixel values select μ and v).
        delta: (N, ...) or (N, D, ...) perturbations in [0, 1] units (D draws per point).
        sigma: the noise std of the channel.
    """
    mean, var = channel_moments(sigma)
    p = clean.long()
    g = grad.double().flatten(1)[:, None, :]
    mu, v = mean[p].flatten(1)[:, None, :], var[p].flatten(1)[:, None, :]
    one_draw = delta.dim() == clean.dim()
    d = (delta.double()[:, None] if one_draw else delta.double()).flatten(2)  # (N, D, pixels); D = 1 for one draw
    denom = (g**2 * v).sum(2).sqrt()
    scores = ((d - mu) * g).sum(2) / denom.where(denom > 0, torch.tensor(float("nan"), dtype=torch.float64))
    return scores[:, 0] if one_draw else scores


def null_draws(clean: torch.Tensor, sigma: float, n_draws: int, generator: torch.Generator) -> torch.Tensor:
    """(N, n_draws, ...) fresh perturbations of the clean images through the attack's channel ([0, 1] units)."""
    z = torch.randn((len(clean), n_draws, *clean.shape[1:]), generator=generator, dtype=torch.float64)
    x = clean[:, None].expand(-1, n_draws, *clean.shape[1:])
    return (noisy_pixels(x, z, sigma).double() - x.double()) / 255.0


def gus_summary(real: np.ndarray, null: np.ndarray, fpr: float = 0.01) -> dict[str, Any]:
    """Mean of I over the poisons, the null's mean/std, and TPR at ``fpr`` and AUC of −I (poisons vs null)."""
    real, null = real[np.isfinite(real)], null[np.isfinite(null)]
    if len(real) == 0 or len(null) == 0:
        nan = float("nan")
        return {
            "gus_mean": nan,
            "gus_std": nan,
            "gus_null_mean": nan,
            "gus_null_std": nan,
            "gus_tpr_at_1fpr": nan,
            "gus_auc": nan,
        }
    from sklearn.metrics import roc_auc_score  # imported here: evaluate jobs import this module

    threshold = np.quantile(-null, 1.0 - fpr)
    labels = np.r_[np.ones(len(real)), np.zeros(len(null))]
    return {
        "gus_mean": float(real.mean()),
        "gus_std": float(real.std()),
        "gus_null_mean": float(null.mean()),
        "gus_null_std": float(null.std()),
        "gus_tpr_at_1fpr": float((-real > threshold).mean()),
        "gus_auc": float(roc_auc_score(labels, -np.r_[real, null])),
    }


def gaussian_unlearning_score(
    model: nn.Module,
    clean: torch.Tensor,
    poisoned: torch.Tensor,
    labels: torch.Tensor,
    sigma: float,
    device: torch.device,
    seed: int,
    n_null: int = 100,
    batch_size: int = 256,
) -> dict[str, Any]:
    """The GUS of ``model`` on the poisoned points: :func:`gus_summary` plus the per-poison values
    (``gus_values``), the number of points scored and of null draws.

    Args:
        clean, poisoned: uint8 images of the poisoned points before and after the attack (δ = their difference).
        labels: their (unchanged) labels.
        seed: the run's seed (its ``gus/null`` stream draws the null perturbations).
    """
    grad = input_gradients(model, clean, labels, device, batch_size)
    delta = (poisoned.double() - clean.double()) / 255.0
    real = score_perturbations(grad, clean, delta, sigma).numpy()
    gen = torch.Generator().manual_seed(stage_seed(seed, "gus/null"))
    null = torch.cat(
        [
            score_perturbations(
                grad[i : i + 64], clean[i : i + 64], null_draws(clean[i : i + 64], sigma, n_null, gen), sigma
            )
            for i in range(0, len(clean), 64)
        ]
    ).numpy()
    return {
        **gus_summary(real, null.ravel()),
        "gus_values": [float(v) for v in real],
        "gus_n_points": int(len(real)),
        "gus_n_null": int(null.size),
    }
