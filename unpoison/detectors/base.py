"""The detector interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.params import require
from unpoison.registry import Registry


@dataclass
class DetectorInputs:
    """What a defender holds: influence scores per probe, and optionally the model and training set.

    ``scores[probe]`` is a dict with ``"scores"`` float (q, 1 + n_b, N) — column 0 is the untransformed
    query, columns 1.. the transformed ones — and ``"labels"`` (q, 1 + n_b).
    """

    scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    model: nn.Module | None = None
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None


class Detector(ABC):
    """One detection method; ``params`` come from ``detector_settings.<name>`` in the config."""

    name: str = ""
    probe: str | None = None  # influence-score file it reads ("base", "both", "label", "image"), or None
    needs_model: bool = False  # whether it reads the trained model and the training set

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        """Return the sorted, unique indices of flagged training points (int64)."""

    def check(self, n_b: int) -> None:
        """Validate parameters before any job runs (raise ValueError naming key, value and what is allowed)."""


DETECTORS: Registry[Detector] = Registry("detector")
register_detector = DETECTORS.register  # class decorator: @register_detector("name")
get_detector = DETECTORS.create  # get_detector(name, params) -> Detector


def intersect_over_points(flags: torch.Tensor) -> np.ndarray:
    """Indices flagged for EVERY test point: ``flags`` is a boolean (q, N) matrix (SPEC: several points)."""
    return torch.nonzero(flags.all(dim=0)).flatten().numpy().astype(np.int64)


def check_n_points(n_points: int | None) -> None:
    """``n_points`` (how many affected test points a detector intersects) is null (all) or ≥ 1."""
    require(n_points is None or n_points >= 1, "n_points", n_points, "null (every scored test point) or ≥ 1")


def select_points(scores: torch.Tensor, n_points: int | None) -> torch.Tensor:
    """The first ``n_points`` test points of a (q, ...) score tensor (all when None)."""
    if n_points is None:
        return scores
    if n_points > scores.shape[0]:
        raise ValueError(f"n_points={n_points} but only {scores.shape[0]} test points were scored: raise queries.count")
    return scores[:n_points]
