"""One call from files to outputs: :func:`audit` (the CLI's body, usable from Python)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from unpoison.audit.core import AuditResult, AuditSettings, check_labels, load_queries, run_audit
from unpoison.audit.inputs import AuditError, InputAdapter, build_audit_model, load_training_set
from unpoison.audit.outputs import write_outputs


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def audit(
    arch: str,
    weights: str | Path,
    train: str | Path,
    queries: Sequence[str],
    out: str | Path,
    settings: AuditSettings | None = None,
    num_classes: int | None = None,
    model_options: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    sheet_size: int = 32,
    log: Callable[[str], None] = print,
) -> AuditResult:
    """Audit a trained model with Δ-Influence: which training images make it give the suspicious images
    their label? No attack metadata or ground truth is read.

    Args:
        arch: a project model name (``digits_cnn``, ``resnet9``, ...) or a torchvision architecture name.
        weights: a plain state_dict file, loaded with ``weights_only=True``.
        train: the training set: an ImageFolder root (``root/<class>/<image>``) or an .npz with x_train, y_train.
        queries: suspicious image files as ``path[:label]``; without a label the model's prediction is used.
        out: output directory (created; files in it are replaced atomically).
        settings: n_b, τ, k, seed, device, batch sizes (defaults: :class:`AuditSettings`).
        num_classes: the model's outputs (default: the training set's number of classes).
        model_options: the architecture's keyword options (e.g. ``{"width": 32}``).
        mean, std: input statistics of a torchvision model trained on normalised [0, 1] images.
        sheet_size: images on the contact sheet.
        log: called with progress lines.

    Returns:
        The :class:`AuditResult` (also written to ``out``: see :mod:`unpoison.audit.outputs`).

    Raises:
        AuditError: bad input, with the problem and the fix in the message.
    """
    settings = settings or AuditSettings()
    if sheet_size < 1:
        raise AuditError(f"--sheet-size {sheet_size}: must be ≥ 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AuditError(f"--out {str(out)!r} exists and is not a directory")
    data = load_training_set(train)
    k = num_classes if num_classes is not None else len(data.classes)
    if k < 2:
        raise AuditError(f"--num-classes {k}: a classifier has at least 2 outputs")
    check_labels(data, k)
    log(f"training set: {len(data.y)} images of {'×'.join(map(str, data.image_shape))} from {data.path} ({data.kind}), {k} classes")
    model = build_audit_model(arch, weights, k, data.image_shape[0], model_options, mean, std)
    q = load_queries(list(queries), data, model, k, settings.device)
    for path, y, src, pred, conf in zip(q.paths, q.labels.tolist(), q.label_source, q.predicted, q.confidence):
        note = "" if src == "predicted" or y == pred else "  (differs from the model's prediction: is the image affected?)"
        log(f"{path}: audited as label {y} ({data.classes[y]}, {src}); the model predicts {pred} with p = {conf:.3f}{note}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)  # nothing should draw from the global stream; fixed anyway
    result = run_audit(model, data, q, k, settings, out, log)
    family = "torchvision" if isinstance(model, InputAdapter) else "project"
    normalisation = "inside the model (project model)" if family == "project" else (
        f"mean {list(mean)}, std {list(std)}" if mean is not None else "none (the model takes [0, 1] images)"
    )
    inputs = {
        "arch": arch, "family": family, "weights": str(weights), "weights_sha256": _sha256(weights), "num_classes": k,
        "options": dict(model_options or {}), "normalisation": normalisation, "train": str(train),
        "queries": list(queries),
    }
    files = write_outputs(out, inputs, data, q, result, settings, sheet_size)
    log(f"flagged {len(result.flagged)} of {len(data.y)} training images; wrote {', '.join(files)} to {out}")
    return result
