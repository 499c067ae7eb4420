"""EK-FAC influence baseline: flag training points whose influence on the query exceeds a threshold.

The paper's grid is threshold ∈ {0, 10, 100, 500}; the scale of influence depends on the model and
dataset. With several test points, flagged sets are intersected ("EK-FAC (boosted)").
"""

from __future__ import annotations

import numpy as np

from unpoison.detectors.base import (
    Detector,
    DetectorInputs,
    check_n_points,
    intersect_over_points,
    register_detector,
    select_points,
)


@register_detector("ekfac")
class EKFACThreshold(Detector):
    """Flag i when score(train_i, z_te) > ``threshold``.

    Args:
        threshold: influence above which a training point is flagged (the paper's grid: 0, 10, 100, 500). Range:
            a finite number.
        n_points: intersect the flags of the first n affected test points; null = all ``queries.count`` of them.
            Range: null or 1 to ``queries.count``.
    """

    display_name = "EK-FAC"
    citation = "Grosse et al. 2023, Studying Large Language Model Generalization with Influence Functions"
    probe = "base"
    sweep_params = ("threshold",)

    def __init__(self, threshold: float = 0.0, n_points: int | None = None) -> None:
        super().__init__(threshold=threshold, n_points=n_points)
        check_n_points(n_points)

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        scores = select_points(inputs.scores[self.probe]["scores"], self.params["n_points"])
        return intersect_over_points(scores[:, 0, :] > self.params["threshold"])
