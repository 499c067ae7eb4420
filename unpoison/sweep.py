"""Threshold sweep from saved influence scores: TPR and precision of Δ-Influence over the paper's τ × k grid
and of the EK-FAC baseline over its thresholds, with no re-scoring (paper §5; SPEC §2–3).

This is evaluation: it reads the ground truth, so it belongs to the evaluate stage, never to a detector.
The rule is the same as the detectors' (`unpoison.detectors.delta_influence.delta_flags`, per test point,
intersected over the first ``n_points`` points), so a sweep row equals what the detector would flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from unpoison.detectors.base import intersect_over_points
from unpoison.detectors.delta_influence import delta_flags
from unpoison.metrics import detection_metrics
from unpoison.params import require
from unpoison.registry import ConfigSettings


SWEEP_COLUMNS = ["detector", "tau", "k", "threshold", "n_flagged", "true_positives", "n_poisons", "tpr", "precision"]


@dataclass
class SweepGrid(ConfigSettings):
    """The grid swept for every run (config: ``sweep``); defaults are the paper's."""

    config_key: ClassVar[str] = "sweep"

    taus: list[float] = field(default_factory=lambda: [0.0, -1.0, -5.0, -10.0, -100.0])
    ks: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    thresholds: list[float] = field(default_factory=lambda: [0.0, 10.0, 100.0, 500.0])  # EK-FAC
    n_points: int = 1  # affected test points intersected (the first n of the run's queries)

    def __post_init__(self) -> None:
        require(len(self.taus) > 0 and len(self.ks) > 0, "taus", self.taus, "non-empty lists (taus and ks)")
        require(all(k >= 0 for k in self.ks), "ks", self.ks, "integers ≥ 0")
        require(self.n_points >= 1, "n_points", self.n_points, "≥ 1")


def threshold_sweep(
    both: torch.Tensor, base: torch.Tensor, poison_indices: list[int], grid: SweepGrid
) -> list[dict[str, Any]]:
    """Detection metrics over the grid.

    Args:
        both: Δ-Influence scores (q, 1 + n_b, N), column 0 the untransformed query.
        base: base-query scores (q, 1, N).
        poison_indices: the true poisons (evaluation only).
        grid: τ values, k values (k ≥ n_b are skipped), EK-FAC thresholds, n_points.

    Returns:
        One row per setting: detector, tau, k, threshold, n_flagged, true_positives, n_poisons, tpr, precision.
    """
    q = min(grid.n_points, both.shape[0])
    both, base = both[:q], base[:q]
    n_b = both.shape[1] - 1
    rows: list[dict[str, Any]] = []
    for tau in grid.taus:
        for k in grid.ks:
            if k >= n_b:
                continue
            flagged = intersect_over_points(delta_flags(both, tau, k))
            rows.append({"detector": "delta_influence", "tau": tau, "k": k, "threshold": np.nan,
                         **detection_metrics(flagged, poison_indices)})
    for t in grid.thresholds:
        flagged = intersect_over_points(base[:, 0, :] > t)
        rows.append({"detector": "ekfac", "tau": np.nan, "k": np.nan, "threshold": t,
                     **detection_metrics(flagged, poison_indices)})
    return rows
