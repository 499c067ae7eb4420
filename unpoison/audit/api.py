"""One call from a model, its training set and suspicious images to the audit's outputs: :func:`audit` (the
CLI's body; from Python it takes files or objects)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unpoison.audit.build import build_audit_model, prepare_object_model
from unpoison.audit.core import AuditResult, AuditSettings, Queries, check_labels, load_queries, run_audit
from unpoison.audit.inputs import AuditError, TrainingSet
from unpoison.audit.model import ModelInfo
from unpoison.audit.model_checks import check_forward, check_trackable
from unpoison.audit.objects import query_items, training_set_from
from unpoison.audit.outputs import write_outputs
from unpoison.audit.runlog import RunLog, stage
from unpoison.influence.probes import augmentation_families


def check_geometry(train: TrainingSet, input_size: Sequence[int] | None, augmentations: Sequence[str] | None) -> None:
    """``input_size`` is two positive integers; every augmentation family applies to these images."""
    if input_size is not None and (len(input_size) != 2 or min(int(v) for v in input_size) < 1):
        raise AuditError(f"--input-size {list(input_size)}: give the height and width the model takes, e.g. 224 224")
    c, h, w = train.image_shape
    available = sorted(augmentation_families(min(h, w), c))
    unknown = sorted(set(augmentations or ()) - set(available))
    if unknown:
        raise AuditError(
            f"--augmentations {unknown}: not a family for these {c}-channel images; choose from "
            f"{available} (color_switch needs 3 channels)"
        )


def read_training_set(
    train: Any,
    num_classes: int | None,
    out: Path,
    sheet_size: int,
    input_size: Sequence[int] | None,
    settings: AuditSettings,
    log: RunLog,
) -> tuple[TrainingSet, int]:
    """The training set and the number of outputs, with every check that needs no model."""
    if sheet_size < 1:
        raise AuditError(f"--sheet-size {sheet_size}: must be ≥ 1")
    if out.exists() and not out.is_dir():
        raise AuditError(f"--out {str(out)!r} exists and is not a directory")
    data = training_set_from(train)
    k = num_classes if num_classes is not None else len(data.classes)
    if k < 2:
        raise AuditError(f"--num-classes {k}: a classifier has at least 2 outputs")
    check_labels(data, k)
    check_geometry(data, input_size, settings.augmentations)
    log(
        f"training set: {len(data.y)} images of {'×'.join(map(str, data.image_shape))} ({data.x.dtype}) from "
        f"{data.path} ({data.kind}), {k} classes"
    )
    return data, k


def log_queries(q: Queries, data: TrainingSet, log: RunLog) -> None:
    """One line per suspicious image: the label audited, where it came from, the model's prediction."""
    for name, y, src, pred, conf in zip(q.paths, q.labels.tolist(), q.label_source, q.predicted, q.confidence):
        note = "" if src == "predicted" or y == pred else "  (differs from the model's prediction: is it affected?)"
        log(
            f"{name}: audited as label {y} ({data.classes[y]}, {src}); the model predicts {pred} with p = "
            f"{conf:.3f}{note}"
        )


def prepare_model(
    model: nn.Module | str,
    train: TrainingSet,
    num_classes: int,
    weights: str | Path | None,
    model_options: dict[str, Any] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: Sequence[int] | None,
    log: RunLog,
) -> tuple[nn.Module, ModelInfo]:
    """The audited model from an ``--arch`` string or an nn.Module (a copy: the caller's model is not changed),
    checked: trackable layers, runs on the training images, (batch, num_classes) logits."""
    sample = train.x[:2].float() / 255 if train.x.dtype == torch.uint8 else train.x[:2].float()
    if isinstance(model, str):
        net, info = build_audit_model(model, weights, num_classes, sample, model_options, mean, std, input_size, log)
    else:
        if model_options:
            raise AuditError("model_options apply to an --arch string; an nn.Module is already built")
        net, info = prepare_object_model(copy.deepcopy(model), sample, weights, mean, std, input_size, log)
    check_trackable(net, info)
    check_forward(net, sample, num_classes, info)
    kinds = {t: sum(m["type"] == t for m in info.tracked) for t in sorted({m["type"] for m in info.tracked})}
    log(
        f"model: {info.arch} ({info.family}); EK-FAC tracks {len(info.tracked)} modules "
        f"({', '.join(f'{v} {k}' for k, v in kinds.items())}); input normalisation: {info.normalisation}"
    )
    return net, info


def audit(
    model: nn.Module | str,
    train: Any,
    queries: Any,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    settings: AuditSettings | None = None,
    num_classes: int | None = None,
    model_options: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: Sequence[int] | None = None,
    sheet_size: int = 32,
    log: Callable[[str], None] | None = print,
) -> AuditResult:
    """Audit a trained model with Δ-Influence: which training images make it give the suspicious images
    their label? No attack metadata or ground truth is read.

    Args:
        model: an ``nn.Module`` taking [0, 1] images (after ``mean``/``std`` when given), or an ``--arch``
            string: a project model, a torchvision name, ``module:Class`` / ``file.py:Class`` (a class or
            factory of your code, called with ``model_options``) or ``torchscript``.
        train: the training set as the model saw it (no random augmentation): an ImageFolder root or .npz path,
            a torch Dataset of (image, label) items, or (x, y) arrays; images uint8 or float in [0, 1],
            C×H×W (see :mod:`unpoison.audit.objects`).
        queries: the suspicious image(s): paths ``path[:label]``, images, ``(image, label)`` pairs or one
            q×C×H×W batch; without a label the model's prediction is audited.
        out: output directory (created; files in it are replaced atomically; ``audit.log`` is the run log).
        weights: a state_dict file (required with an ``--arch`` name; with ``torchscript`` the jit file).
        settings: n_b, τ, k, seed, device, batch sizes, caps, augmentation families (:class:`AuditSettings`).
        num_classes, model_options: the model's outputs (default: the training set's classes) and kwargs.
        mean, std: per-channel statistics the model normalised its [0, 1] inputs with (applied by the audit).
        input_size: (H, W) the model takes when it differs from the images' size (resized before the model).
        sheet_size: images on the contact sheet.
        log: called with progress lines (None: silent); they also go to ``out/audit.log``.

    Returns:
        The :class:`AuditResult` (also written to ``out``: see :mod:`unpoison.audit.outputs`).

    Raises:
        AuditError: bad input, with the problem and the fix (nothing is written). AuditStageError: a stage
            failed; one line names it, the module if known, and what to try.
    """
    settings = settings or AuditSettings()
    runlog = log if isinstance(log, RunLog) else RunLog(log)
    out = Path(out)
    data, k = read_training_set(train, num_classes, out, sheet_size, input_size, settings, runlog)
    net, info = prepare_model(model, data, k, weights, model_options, mean, std, input_size, runlog)
    q = load_queries(query_items(queries, data.image_shape), data, net, k, settings.device)
    log_queries(q, data, runlog)
    out.mkdir(parents=True, exist_ok=True)
    runlog.open(out)
    torch.manual_seed(settings.seed)  # nothing should draw from the global stream; fixed anyway
    result = run_audit(net, data, q, k, settings, out, runlog)
    inputs = {**asdict(info), "num_classes": k, "train": data.path, "queries": list(q.paths)}
    with stage("outputs", runlog):
        files = write_outputs(out, inputs, data, q, result, settings, sheet_size)
    runlog(f"flagged {len(result.flagged)} of {len(data.y)} training images; wrote {', '.join(files)}, audit.log")
    return result
