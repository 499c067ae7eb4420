"""The detector interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.params import ParamError, require
from unpoison.registry import Registry


@dataclass
class DetectorInputs:
    """What a defender holds: whatever the detector declared it reads. The ground truth (``truth``) is
    there only for a detector that declares ``needs_truth`` (the oracle, an upper bound, not a defence).

    ``scores[probe]`` is a dict with ``"scores"`` float (q, 1 + n_b, N) — column 0 is the untransformed
    query, columns 1.. the transformed ones — and ``"labels"`` (q, 1 + n_b). ``x_train``/``y_train`` are the
    (poisoned) training set as trained on: uint8 N×C×H×W images and their assigned labels.
    """

    scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    model: nn.Module | None = None
    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    features: torch.Tensor | None = None  # float (N, D): the trained model's penultimate activations
    dataset_model: dict[str, Any] | None = None  # the detector's own per-dataset artifact, as saved
    truth: dict[str, Any] | None = None  # truth.json: ONLY for detectors with needs_truth
    seed: int | None = None  # the run's seed (for detectors that draw at random)


class Detector(ABC):
    """One detection method; ``params`` come from ``detector_settings.<name>`` in the config."""

    name: str = ""
    probe: str | None = None  # influence-score file it reads ("base", "both", "label", "image"), or None
    # probe whose scores it also reads for the run's CONTROL queries (clean test images the model gets right),
    # from the same scoring pass: ``inputs.scores["controls_<probe>"]``
    control_probe: str | None = None
    needs_model: bool = False  # whether it reads the trained model and the training set
    needs_features: bool = False  # whether it reads the model's penultimate features (+ the training set)
    # Name of a model the detector trains once per dataset (on the CLEAN training images, by its own rule
    # `train_<name>`), read with the training set; ``dataset_model_fields`` are the settings that determine
    # that model (the others, e.g. a threshold, only re-run detection).
    needs_dataset_model: str | None = None
    dataset_model_fields: tuple[str, ...] = ()
    # Whether it reads the attack's ground truth (truth.json). Only the oracle may: its rows are an upper
    # bound that uses the truth, marked as such in the tables; the workflow gives truth.json to no other.
    needs_truth: bool = False

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        """Return the sorted, unique indices of flagged training points (int64)."""

    @classmethod
    def reads_training_set(cls) -> bool:
        """Whether the detector reads the (poisoned) training set: images and/or assigned labels."""
        return cls.needs_model or cls.needs_features or cls.needs_dataset_model is not None

    def check(self, n_b: int) -> None:
        """Validate parameters before any job runs (raise ValueError naming key, value and what is allowed)."""


DETECTORS: Registry[Detector] = Registry("detector")
register_detector = DETECTORS.register  # class decorator: @register_detector("name")
get_detector = DETECTORS.create  # get_detector(name, params) -> Detector


def intersect_over_points(flags: torch.Tensor) -> np.ndarray:
    """Indices flagged for EVERY test point: ``flags`` is a boolean (q, N) matrix (SPEC: several points)."""
    return torch.nonzero(flags.all(dim=0)).flatten().numpy().astype(np.int64)


def query_and_control_scores(det: "Detector", inputs: "DetectorInputs") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_points`` query score tensors of ``det.probe`` and the control queries' of
    ``det.control_probe`` (both (q, 1 + n_b, N)); raises when the controls are missing or do not match."""
    key = f"controls_{det.control_probe}"
    if key not in inputs.scores:
        raise ValueError(f"{det.name} needs the control queries' scores ({key}); none were given")
    scores = select_points(inputs.scores[det.probe]["scores"], det.params["n_points"])
    controls = inputs.scores[key]["scores"]
    if controls.shape[1:] != scores.shape[1:]:
        raise ValueError(f"control scores {tuple(controls.shape)} do not match the queries' {tuple(scores.shape)}")
    return scores, controls


def check_k(k: int, n_b: int) -> None:
    """The Δ-Influence rules' ``k`` (transforms a flagged point may survive) must satisfy 0 ≤ k < n_b."""
    if not 0 <= k < n_b:
        raise ParamError(
            f"k: {k} must satisfy 0 ≤ k < n_b (influence.n_b = {n_b}); "
            "the rule flags points whose influence drops under at least n_b − k transforms"
        )


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


def labelled_features(inputs: DetectorInputs) -> tuple[np.ndarray, np.ndarray]:
    """The penultimate features (float64 (N, D)) and assigned training labels (int64 (N,)) of ``inputs``.

    Raises:
        ValueError: features or labels missing, of different lengths, or not finite.
    """
    if inputs.features is None or inputs.y_train is None:
        raise ValueError("this detector needs the model's penultimate features and the training labels")
    feats = inputs.features.detach().cpu().double().numpy()
    labels = inputs.y_train.cpu().numpy().astype(np.int64)
    if feats.ndim != 2 or len(feats) != len(labels):
        raise ValueError(f"features of shape {feats.shape} do not match {len(labels)} training labels")
    if not np.isfinite(feats).all():
        raise ValueError(f"{int((~np.isfinite(feats)).sum())} penultimate features are NaN or infinite: the model is broken")
    return feats, labels


def label_groups(labels: np.ndarray) -> list[np.ndarray]:
    """The indices of each label present in ``labels``, in label order."""
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]
