"""Δ-Influence with a threshold set from control queries instead of ground truth.

The paper fixes τ = 0, k = 1 (and tuned them on ground truth). Here τ comes from the data: the same probes
are scored for ``queries.controls`` clean test images the model gets right (:mod:`unpoison.controls`), and τ̃
is the ``alpha``-quantile of the normalised Δ-Influence statistic over every (control, training point) pair —
the rule would flag a fraction ``alpha`` of training points for a clean query. A training point is flagged
for the affected query when its statistic is below τ̃ (intersected over several affected points, as the
paper's detector). ``alpha`` is a false-positive rate on clean queries, set a priori (default 1 %), never
tuned on results.
"""

from __future__ import annotations

import numpy as np

from unpoison.controls import control_threshold, normalised_margin
from unpoison.detectors.base import (
    Detector,
    DetectorInputs,
    check_k,
    check_n_points,
    intersect_over_points,
    query_and_control_scores,
    register_detector,
)
from unpoison.params import require


@register_detector("delta_influence_controls")
class ControlCalibratedDeltaInfluence(Detector):
    """Δ-Influence (random label + augmentation probes) with τ set from control queries at level ``alpha``.

    Args:
        alpha: the share of training points the rule would flag for a clean query (sets τ; a priori, not tuned).
            Range: (0, 1).
        k: transforms a flagged point may survive, as Δ-Influence's k. Range: 0 ≤ k < ``influence.n_b``.
        n_points: intersect the flags of the first n affected test points; null = all ``queries.count`` of them.
            Range: null or 1 to ``queries.count``.
    """

    display_name = "Δ-Influence (calibrated τ)"
    citation = "this project (docs/methods.md): τ from the control queries' Δ statistic"
    probe = "both"
    control_probe = "both"

    def __init__(self, alpha: float = 0.01, k: int = 1, n_points: int | None = None) -> None:
        super().__init__(alpha=alpha, k=k, n_points=n_points)
        require(0 < alpha < 1, "alpha", alpha, "in (0, 1): the fraction of training points flagged for a clean query")
        require(k >= 0, "k", k, "≥ 0 (and < influence.n_b)")
        check_n_points(n_points)
        self.threshold: float | None = None  # τ̃ of the last detect() call

    def check(self, n_b: int) -> None:
        check_k(self.params["k"], n_b)

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        scores, controls = query_and_control_scores(self, inputs)
        k = self.params["k"]
        self.check(scores.shape[1] - 1)
        self.threshold = control_threshold(controls, k, self.params["alpha"])
        return intersect_over_points(normalised_margin(scores, k) < self.threshold)
