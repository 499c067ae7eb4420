"""Stages: what non-influence detectors read — penultimate features once per trained model, and the
frequency detector's classifier once per dataset (trained on the clean images only)."""

from __future__ import annotations

from typing import Any, TextIO

import torch

from unpoison.detectors.frequency import frequency_checkpoint, train_frequency_classifier
from unpoison.device import resolve_device
from unpoison.io import save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_clean, load_poisoned
from unpoison.training import penultimate_features


def extract_features(model: str, poisoned: str, device: str, batch_size: int, out: str) -> None:
    """Save the trained model's penultimate activations on its (poisoned) training set: float (N, D)."""
    net, _ = load_checkpoint(model)
    x, _ = load_poisoned(poisoned)
    feats = penultimate_features(net, x, resolve_device(device), batch_size)
    if not torch.isfinite(feats).all():
        raise FloatingPointError(f"{model}: the penultimate features hold NaN/inf values; the model is broken")
    save_torch(feats, out)
    save_meta(out, model=model, n=feats.shape[0], dim=feats.shape[1])


def train_frequency(clean: str, settings: dict[str, Any], device: str, out: str, log: TextIO | None = None) -> None:
    """Train the frequency detector's classifier on a dataset's CLEAN training images.

    ``settings`` are the detector settings that determine the classifier (``seed``, ``epochs``, ``lr``);
    the meta JSON records its held-out accuracy on its own synthetic clean/triggered pairs.
    """
    data = load_clean(clean)
    dev = resolve_device(device)
    net, summary = train_frequency_classifier(data.x_train, settings["seed"], settings["epochs"], settings["lr"], dev, log)
    save_torch(frequency_checkpoint(net, data.image_shape), out)
    save_meta(out, settings=settings, device=str(dev), **summary)
