"""Control queries: clean test images the model gets right, scored through the same probes as the affected
query, so that a detector can set its threshold from the data alone (no ground truth).

A defender always has such images: their own held-out test set, of which the model classifies most
correctly. Selection never reads ``truth.json``; it draws ``count`` correctly classified natural test images
from the run seed's ``controls`` stream, of the class the model predicts for the defender's (first) query when
one is given — the suspicious image's own predicted label, which the defender sees — else of any class.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from unpoison.data import ImageData
from unpoison.seeding import stage_rng
from unpoison.training import predict


def select_controls(
    model: nn.Module,
    data: ImageData,
    count: int,
    seed: int,
    device: torch.device,
    batch_size: int = 512,
    label: int | None = None,
) -> dict[str, torch.Tensor]:
    """``count`` test images the model classifies correctly (as ``label``, when given), drawn by ``seed``.

    Returns:
        {"x": uint8 images, "labels": the model's predictions (= their true labels), "test_index": their
        indices in the test set}.

    Raises:
        ValueError: fewer than ``count`` such test images.
    """
    pred = predict(model, data.x_test, device, batch_size)
    right = (pred == data.y_test).numpy()
    if label is not None:
        right &= pred.numpy() == int(label)
    right = np.flatnonzero(right)
    if len(right) < count:
        which = f"correctly as class {label} (the query's predicted class)" if label is not None else "correctly"
        raise ValueError(
            f"queries.controls: {count} control queries requested but the model classifies only {len(right)} test "
            f"images {which}; lower queries.controls"
        )
    chosen = np.sort(stage_rng(seed, "controls").choice(right, size=count, replace=False))
    idx = torch.from_numpy(chosen)
    return {"x": data.x_test[idx].clone(), "labels": pred[idx].clone(), "test_index": idx}


def normalised_margin(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The Δ-Influence statistic of every (test point, training point), in units of the point's influence spread.

    With Δ(i, j) = s_j(i) − s_0(i), the paper's rule "#{j : Δ(i, j) < τ} ≥ n_b − k" holds exactly when the
    (k+1)-th largest Δ(i, ·) is below τ. That value is returned, divided by the spread over training points
    of the untransformed scores s_0(·) of the same test point (influence scales differ by orders of magnitude
    between queries, so thresholds are only comparable after this). The spread is robust — 1.4826 × the
    median absolute deviation, the standard deviation only if that is 0 — because the poisons' large
    influence on an affected query would inflate a standard deviation and shrink every normalised value.

    Args:
        scores: float (q, 1 + n_b, N), column 0 the untransformed query.
        k: transforms allowed not to collapse (0 ≤ k < n_b).

    Returns:
        float64 (q, N).
    """
    n_b = scores.shape[1] - 1
    if not 0 <= k < n_b:
        raise ValueError(f"k={k} must satisfy 0 ≤ k < n_b = {n_b}")
    s = scores.double()
    delta = s[:, 1:, :] - s[:, :1, :]
    margin = delta.topk(k + 1, dim=1).values[:, k, :]
    base = s[:, 0, :]
    mad = 1.4826 * (base - base.median(dim=1, keepdim=True).values).abs().median(dim=1, keepdim=True).values
    spread = torch.where(mad > 0, mad, base.std(dim=1, keepdim=True)).clamp_min(torch.finfo(torch.float64).tiny)
    return margin / spread


def control_threshold(control_scores: torch.Tensor, k: int, alpha: float) -> float:
    """The threshold τ̃ that flags a fraction ``alpha`` of (control query, training point) pairs.

    Args:
        control_scores: float (c, 1 + n_b, N) of the control queries.
        k: as in :func:`normalised_margin`.
        alpha: the false-positive rate tolerated on clean queries, in (0, 1).
    """
    m = normalised_margin(control_scores, k).flatten()
    return (
        float(torch.quantile(m, alpha, interpolation="lower"))
        if m.numel() <= 16_000_000
        else float(np.quantile(m.numpy(), alpha, method="lower"))
    )
