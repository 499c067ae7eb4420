"""The audit itself: EK-FAC factors on the user's training set, the suspicious images and their n_b transforms
scored in one pass, and the Δ-Influence rule (the ``delta_influence`` detector, intersected over images).

The pieces are the pipeline's own (:func:`unpoison.influence.fit_factors`,
:func:`unpoison.influence.build_probe_set`, :func:`unpoison.influence.score_queries`, the registered
``delta_influence`` detector); only the inputs differ: no attack, no ground truth.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.audit.inputs import AuditError, TrainingSet
from unpoison.audit.objects import QueryItem, resolve_label
from unpoison.audit.runlog import RunLog, stage
from unpoison.data import TensorDataset01
from unpoison.detectors import get_detector
from unpoison.detectors.base import DetectorInputs
from unpoison.detectors.delta_influence import collapse_counts
from unpoison.device import resolve_device
from unpoison.influence import FactorSettings, FitReport, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.influence.probe_scores import StackedProbes
from unpoison.influence.settings import Cap
from unpoison.training import batched_forward


def is_cap(value: object) -> bool:
    """A stage cap: ``auto``, None (every example) or a positive count."""
    return value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


@dataclass
class AuditSettings:
    """The audit's knobs (CLI options of the same names with ``-`` for ``_``).

    τ and k are the paper's defaults and are NOT tuned: an audit has no ground truth to tune them on.
    """

    n_b: int = 50  # transformed copies of each suspicious image (random label + random augmentation)
    tau: float = 0.0  # Δ(i, j) < tau counts as a collapse of training point i's influence under transform j
    k: int = 1  # flag a point when at least n_b - k of its n_b transforms collapse
    seed: int = 0  # Fisher-label sampling, factor subsampling and the transforms' draws
    device: str = "auto"  # auto = CUDA when present, else CPU
    factor_batch_size: int = 128  # factor fitting batch (sums: no effect on results)
    score_batch_size: int = 128  # training batch while scoring
    query_batch_size: int = 64  # query gradients computed this many at a time; all are scored in one pass
    query_gradient_low_rank: int | None = None  # rank of the stored query gradients (None = exact; saves memory)
    # fit the eigenvalue corrections / covariances on a random subset: a count, None = all, "auto" = a cap
    # chosen from the estimated cost of the stage (unpoison.influence.cost) when it exceeds 2 training epochs
    lambda_max_examples: Cap = "auto"
    covariance_max_examples: Cap = "auto"
    augmentations: tuple[str, ...] | None = None  # augmentation families of the transforms (None = all that apply)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AuditSettings:
        """The settings among resolved CLI/YAML ``options`` (other keys, e.g. ``arch``, are left out); a list of
        augmentations becomes a tuple. Missing keys keep their defaults."""
        picked = {f.name: options[f.name] for f in fields(cls) if f.name in options}
        if picked.get("augmentations") is not None:
            picked["augmentations"] = tuple(picked["augmentations"])
        return cls(**picked)

    def __post_init__(self) -> None:
        checks = [
            (self.n_b >= 1, "n_b", self.n_b, "≥ 1"),
            (0 <= self.k < self.n_b, "k", self.k, f"0 ≤ k < n_b = {self.n_b}"),
            (math.isfinite(self.tau), "tau", self.tau, "a finite number"),
            (self.seed >= 0, "seed", self.seed, "≥ 0"),
            (self.factor_batch_size >= 1, "factor_batch_size", self.factor_batch_size, "≥ 1"),
            (self.score_batch_size >= 1, "score_batch_size", self.score_batch_size, "≥ 1"),
            (self.query_batch_size >= 1, "query_batch_size", self.query_batch_size, "≥ 1"),
            (
                self.query_gradient_low_rank is None or self.query_gradient_low_rank >= 1,
                "query_gradient_low_rank",
                self.query_gradient_low_rank,
                "≥ 1 or unset (exact)",
            ),
            (
                is_cap(self.lambda_max_examples),
                "lambda_max_examples",
                self.lambda_max_examples,
                "auto, all (null) or ≥ 1",
            ),
            (
                is_cap(self.covariance_max_examples),
                "covariance_max_examples",
                self.covariance_max_examples,
                "auto, all (null) or ≥ 1",
            ),
            (
                self.augmentations is None or len(self.augmentations) >= 1,
                "augmentations",
                self.augmentations,
                "one or more family names, or unset (all)",
            ),
        ]
        for ok, name, value, allowed in checks:
            if not ok:
                raise AuditError(f"--{name.replace('_', '-')} {value!r}: must be {allowed}")
        try:
            resolve_device(self.device)
        except ValueError as err:
            raise AuditError(f"--{err}") from err


@dataclass
class Queries:
    """The suspicious images: their names (file paths, or ``query[j]`` for Python objects), q×C×H×W images
    (uint8, or float in [0, 1]), the label each is audited with, where that label came from (``given`` or
    ``predicted``), the model's prediction and its softmax probability."""

    paths: list[str]
    x: torch.Tensor
    labels: torch.Tensor
    label_source: list[str]
    predicted: list[int]
    confidence: list[float]


@dataclass
class AuditResult:
    """What the audit found, indexed like the training set.

    Attributes:
        flagged: sorted int64 indices flagged for EVERY suspicious image.
        scores: float (q, 1 + n_b, N) influence; column 0 the image with its label, then the transforms.
        probe_labels: (q, 1 + n_b) labels of those columns; augmentations: (q, n_b) family names.
        collapse: int (q, N) #{j : Δ(i, j) < τ} per image; per_image_flagged: how many each image flags alone.
        train_agreement: share of training images the model classifies as labelled (a sanity check).
        seconds: wall time per step; fit: the factor fit's report (resolved caps, cost estimate, stage times,
            the modules whose eigendecomposition needed jitter or another solver).
    """

    flagged: np.ndarray
    scores: torch.Tensor
    probe_labels: torch.Tensor
    augmentations: list[list[str]]
    collapse: torch.Tensor
    per_image_flagged: list[int]
    train_agreement: float
    seconds: dict[str, float] = field(default_factory=dict)
    fit: FitReport | None = None


def check_labels(train: TrainingSet, num_classes: int) -> None:
    """Every training label is an output of the model (raise naming the first image that is not)."""
    bad = torch.nonzero((train.y < 0) | (train.y >= num_classes)).flatten()
    if len(bad):
        i = int(bad[0])
        raise AuditError(
            f"training image {train.names[i]!r} has label {int(train.y[i])}, out of range for a model with "
            f"{num_classes} outputs (0..{num_classes - 1}), {len(bad)} image(s) in all: pass --num-classes, or "
            "fix the class folders / y_train (folders named by integers are the output index)"
        )


def _probabilities(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return batched_forward(model, x, device, lambda xb: torch.softmax(model(xb).float(), dim=1))


def load_queries(
    items: list[QueryItem], train: TrainingSet, model: nn.Module, num_classes: int, device: str = "auto"
) -> Queries:
    """The suspicious images with their labels; an omitted label is the model's prediction (the usual case)."""
    if not items:
        raise AuditError("give at least one suspicious image: --query path[:label]")
    images = [item.x for item in items]
    if any(im.is_floating_point() for im in images):
        images = [im.float() / 255 if im.dtype == torch.uint8 else im for im in images]
    x = torch.stack(images)
    probs = _probabilities(model, x, resolve_device(device))
    if probs.shape[1] != num_classes:
        raise AuditError(f"the model gives {probs.shape[1]} outputs but --num-classes is {num_classes}")
    predicted = probs.argmax(1)
    labels, sources = [], []
    for item, pred in zip(items, predicted.tolist()):
        given = item.label is not None
        labels.append(resolve_label(item, train.classes, num_classes) if given else pred)
        sources.append("given" if given else "predicted")
    return Queries(
        [item.name for item in items],
        x,
        torch.tensor(labels, dtype=torch.int64),
        sources,
        predicted.tolist(),
        probs.max(1).values.tolist(),
    )


def query_memory_line(model: nn.Module, n_queries: int, rank: int | None) -> str:
    """How much memory the scoring pass holds for the preconditioned query gradients (kronfluence keeps one
    per query and tracked module, all at once), with the levers when that is a large share of the machine."""
    per_query = 0
    for m in model.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            d_out = m.weight.shape[0]
            d_in = m.weight.numel() // d_out + (m.bias is not None)
            per_query += d_out * d_in if rank is None else min(d_out * d_in, rank * (d_out + d_in))
    gb = 4 * n_queries * per_query / 1e9
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        total = float("inf")
    line = f"scoring holds {n_queries} query gradients of {per_query / 1e6:.1f} M values each: ~{gb:.1f} GB"
    if gb > 0.4 * total:
        line += (
            f", a large share of this machine's {total:.0f} GB: fewer --query images, a smaller --n-b or "
            "--query-gradient-low-rank 32 reduce it"
        )
    return line


def _probe_stack(queries: Queries, num_classes: int, settings: AuditSettings) -> StackedProbes:
    """Each query and its n_b transforms (label + augmentation, probe ``both``) stacked for one score pass."""
    probe_set = build_probe_set(
        queries.x,
        queries.labels,
        num_classes,
        settings.n_b,
        settings.seed,
        ("both",),
        families=settings.augmentations,
    )
    return StackedProbes.of({"": probe_set})


def _influence_settings(settings: AuditSettings) -> tuple[FactorSettings, ScoreSettings]:
    """The audit's factor and score settings in the influence package's types."""
    factors = FactorSettings(
        batch_size=settings.factor_batch_size,
        lambda_max_examples=settings.lambda_max_examples,
        covariance_max_examples=settings.covariance_max_examples,
    )
    scoring = ScoreSettings(
        train_batch_size=settings.score_batch_size,
        query_batch_size=settings.query_batch_size,
        query_gradient_low_rank=settings.query_gradient_low_rank,
    )
    return factors, scoring


def run_audit(
    model: nn.Module,
    train: TrainingSet,
    queries: Queries,
    num_classes: int,
    settings: AuditSettings,
    work_dir: str | Path,
    log: RunLog,
) -> AuditResult:
    """Fit EK-FAC factors on ``train``, score each query and its n_b transforms in ONE pass, apply the rule.

    Args:
        model: the audited model (takes [0, 1] images), in eval mode.
        train: its training set; queries: the suspicious images and their labels.
        num_classes: the model's outputs (random transform labels are drawn among them).
        settings: n_b, τ, k, seed, device, batch sizes, subsampling caps, augmentation families.
        work_dir: an existing directory for the factors' temporary files (removed afterwards).
        log: the run log (progress lines; a failing stage's traceback).

    Raises:
        AuditStageError: a stage failed (NaN/inf influence scores included: never flags silently).
    """
    device = resolve_device(settings.device)
    detector = get_detector("delta_influence", {"tau": settings.tau, "k": settings.k})
    data = TensorDataset01(train.x, train.y)
    seconds: dict[str, float] = {}
    with stage("model check", log):
        agreement = float((_probabilities(model, train.x, device).argmax(1) == train.y).float().mean())
    log(f"the model classifies {100 * agreement:.1f} % of the {len(train.y)} training images as labelled")
    with stage("probes", log):
        probes = _probe_stack(queries, num_classes, settings)
    start = time.perf_counter()
    factors, scoring = _influence_settings(settings)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".audit-factors.") as tmp:
        log(f"fitting EK-FAC factors on {len(train.y)} training images ({device}) ...")
        with stage("factors", log):
            report = fit_factors(model, data, Path(tmp) / "ekfac", factors, device, settings.seed, log=log)
        seconds["factors"] = time.perf_counter() - start
        log(
            f"factors fitted in {seconds['factors']:.1f} s; scoring {len(probes.labels)} queries "
            f"({len(queries.labels)} image(s) × (1 + n_b = {settings.n_b})) in one pass ..."
        )
        log(query_memory_line(model, len(probes.labels), settings.query_gradient_low_rank))
        with stage("scores", log):
            scores = score_queries(model, Path(tmp) / "ekfac", probes.dataset(), data, scoring, device, log)
        seconds["scores"] = time.perf_counter() - start - seconds["factors"]
    both = probes.split(scores, "both")  # the pipeline's score-file layout: (q, 1 + n_b, N), query in column 0
    flagged = detector.detect(DetectorInputs(scores={"both": both}))
    collapse = collapse_counts(both["scores"], settings.tau)
    alone = [int((c >= settings.n_b - settings.k).sum()) for c in collapse]
    seconds["total"] = time.perf_counter() - start
    return AuditResult(
        flagged, both["scores"], both["labels"], both["augmentations"], collapse, alone, agreement, seconds, report
    )
