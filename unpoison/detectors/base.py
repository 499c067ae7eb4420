"""The detector interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unpoison.params import ParamError, require
from unpoison.registry import Registry


@dataclass
class DetectorInputs:
    """What a defender holds: whatever the detector declared it reads. The ground truth (``truth``) is
    there only for a detector that reads it (the oracle, an upper bound, not a defence).

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
    truth: dict[str, Any] | None = None  # truth.json: ONLY for a detector that reads `truth` (the oracle)
    seed: int | None = None  # the run's seed (for detectors that draw at random)


class Detector(ABC):
    """One detection method; ``params`` come from ``detector_settings.<name>`` in the config.

    A detector declares what it reads, and the workflow wires its inputs from that: ``probe`` (the influence
    scores of the affected queries: ``base``, ``both``, ``label`` or ``image``), ``control_probe`` (the same for the
    control queries, from the same scoring pass: ``inputs.scores["controls_<probe>"]``) and ``reads``, other input
    kinds of :data:`unpoison.detectors.inputs.INPUT_KINDS` (``model``, ``poisoned``, ``features``,
    ``dataset_model``, ``truth``). Only an upper bound that is not a defence (the oracle) may read ``truth``; its
    rows are marked in the tables. A detector that reads ``dataset_model`` trains that model once per dataset on
    the CLEAN training images in :meth:`train_dataset_model` (rule ``train_detector_model``), from the settings
    listed in ``dataset_model_fields`` (the others, e.g. a threshold, only re-run detection).
    """

    name: str = ""
    display_name: ClassVar[str] = ""  # how tables and figures print it
    citation: ClassVar[str] = ""  # the paper it implements
    probe: ClassVar[str | None] = None
    control_probe: ClassVar[str | None] = None
    reads: ClassVar[tuple[str, ...]] = ()
    dataset_model_fields: ClassVar[tuple[str, ...]] = ()
    collapse_figure: ClassVar[bool] = False  # draw its influence-collapse figure (a Δ-rule on probe scores)
    sweep_params: ClassVar[tuple[str, ...]] = ()  # its settings the threshold sweep varies (config `sweep:`)

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        """Return the sorted, unique indices of flagged training points (int64)."""

    @classmethod
    def needs_truth(cls) -> bool:
        """Whether it reads the attack's ground truth (only the oracle, an upper bound)."""
        return "truth" in cls.reads

    @classmethod
    def reads_query(cls) -> bool:
        """Whether it reads influence scores of the defender's queries (it cannot run without an affected point)."""
        return cls.probe is not None or cls.control_probe is not None

    @classmethod
    def train_dataset_model(
        cls, x_train: torch.Tensor, settings: dict[str, Any], device: torch.device, log: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train the detector's per-dataset model on the CLEAN training images: (checkpoint payload, summary)."""
        raise NotImplementedError(f"{cls.name} reads no dataset_model")

    def check(self, n_b: int) -> None:
        """Validate parameters before any job runs (raise ValueError naming key, value and what is allowed)."""


DETECTORS: Registry[Detector] = Registry("detector")
register_detector = DETECTORS.register  # class decorator: @register_detector("name")
get_detector = DETECTORS.create  # get_detector(name, params) -> Detector


def intersect_over_points(flags: torch.Tensor) -> np.ndarray:
    """Indices flagged for EVERY test point: ``flags`` is a boolean (q, N) matrix (several affected points)."""
    return torch.nonzero(flags.all(dim=0)).flatten().numpy().astype(np.int64)


def query_and_control_scores(det: Detector, inputs: DetectorInputs) -> tuple[torch.Tensor, torch.Tensor]:
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
        raise ValueError(
            f"{int((~np.isfinite(feats)).sum())} penultimate features are NaN or infinite: the model is broken"
        )
    return feats, labels


def label_groups(labels: np.ndarray) -> list[np.ndarray]:
    """The indices of each label present in ``labels``, in label order."""
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]
