"""Steps of rules/detector_inputs.smk: what non-influence detectors read — penultimate features once per trained
model, and a detector's own model once per dataset (trained on the clean images only)."""

from __future__ import annotations

from typing import Any, TextIO

import torch

from unpoison.artifacts import load_clean, load_poisoned
from unpoison.detectors import DETECTORS
from unpoison.execution import Execution
from unpoison.io import save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.training import penultimate_features


def extract_features(*, model: str, poisoned: str, features: str, execution: Execution) -> None:
    """Save the trained model's penultimate activations on its (poisoned) training set: float (N, D)."""
    net, _ = load_checkpoint(model)
    x, _ = load_poisoned(poisoned)
    feats = penultimate_features(net, x, execution.torch_device(), execution.get("eval_batch_size", 512))
    if not torch.isfinite(feats).all():
        raise FloatingPointError(f"{model}: the penultimate features hold NaN/inf values; the model is broken")
    save_torch(feats, features)
    save_meta(features, model=model, n=feats.shape[0], dim=feats.shape[1])


def train_detector_model(
    *,
    clean: str,
    method: str,
    settings: dict[str, Any],
    execution: Execution,
    model: str,
    log: TextIO | None = None,
) -> None:
    """Train a detector's per-dataset model on the dataset's CLEAN training images (never a poisoned set).

    ``settings`` are the detector settings that determine the model (its ``dataset_model_fields``); the meta JSON
    records the detector's training summary (e.g. FreqDef's held-out accuracy).
    """
    data = load_clean(clean)
    dev = execution.torch_device()
    payload, summary = DETECTORS[method].train_dataset_model(data.x_train, settings, dev, log)
    save_torch(payload, model)
    save_meta(model, method=method, settings=settings, device=str(dev), **summary)
