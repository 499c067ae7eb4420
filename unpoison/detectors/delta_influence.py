"""Δ-Influence (Li et al. 2024) and its label-only / image-only ablations.

Δ(i, j) = score(train_i, g_j(z_te)) − score(train_i, z_te). Flag train_i when its influence collapses
under nearly all transforms: #{j : Δ(i, j) < τ} ≥ n_b − k. With several affected test points, flag the
intersection of the per-point sets. Paper defaults: τ = 0, k = 1.
"""

from __future__ import annotations

import numpy as np
import torch

from unpoison.detectors.base import (
    Detector,
    DetectorInputs,
    check_k,
    check_n_points,
    intersect_over_points,
    register_detector,
    select_points,
)
from unpoison.params import require


def collapse_counts(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """#{j : Δ(i, j) < τ} per test point and training point: int (q, N), from scores (q, 1 + n_b, N) whose column 0
    is the untransformed query (Δ(i, j) = column j − column 0)."""
    return ((scores[:, 1:, :] - scores[:, :1, :]) < tau).sum(dim=1)


def delta_flags(scores: torch.Tensor, tau: float, k: int) -> torch.Tensor:
    """Boolean (q, N): the Δ-Influence rule per test point (collapse under at least n_b − k transforms)."""
    return collapse_counts(scores, tau) >= (scores.shape[1] - 1 - k)


class _DeltaRule(Detector):
    """Shared implementation; subclasses pick the probe.

    Args:
        tau: a transform collapses training point i when Δ(i, j) < tau (the paper: 0). Range: a finite number.
        k: a point is flagged when it collapses under at least n_b − k of the n_b transforms (the paper: 1).
            Range: 0 ≤ k < ``influence.n_b``.
        n_points: intersect the flags of the first n affected test points; null = all ``queries.count`` of them.
            Range: null or 1 to ``queries.count``.
    """

    def __init__(self, tau: float = 0.0, k: int = 1, n_points: int | None = None) -> None:
        super().__init__(tau=tau, k=k, n_points=n_points)
        require(k >= 0, "k", k, "≥ 0 (and < influence.n_b)")
        check_n_points(n_points)

    def check(self, n_b: int) -> None:
        check_k(self.params["k"], n_b)

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        scores = select_points(inputs.scores[self.probe]["scores"], self.params["n_points"])
        self.check(scores.shape[1] - 1)
        return intersect_over_points(delta_flags(scores, self.params["tau"], self.params["k"]))


@register_detector("delta_influence")
class DeltaInfluence(_DeltaRule):
    """Δ-Influence: random label AND random augmentation per transform."""

    display_name = "Δ-Influence"
    citation = "Li et al. 2024, Δ-Influence: Unlearning Poisons via Influence Functions"
    probe = "both"
    collapse_figure = True
    sweep_params = ("tau", "k")


@register_detector("label_only")
class LabelOnly(_DeltaRule):
    """Ablation (paper Table 2): same image, random labels."""

    display_name = "label-only ablation"
    citation = "Li et al. 2024 (Table 2)"
    probe = "label"


@register_detector("image_only")
class ImageOnly(_DeltaRule):
    """Ablation (paper Table 2): augmented image, the query's label."""

    display_name = "image-only ablation"
    citation = "Li et al. 2024 (Table 2)"
    probe = "image"
