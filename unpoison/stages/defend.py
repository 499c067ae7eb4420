"""Stages: detect (never reads ground truth); unlearn the flagged points."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from unpoison.detectors import DetectorInputs, get_detector
from unpoison.device import resolve_device
from unpoison.io import load_npy, load_torch, save_meta, save_npy
from unpoison.models import load_checkpoint, save_checkpoint
from unpoison.stages.data import load_poisoned
from unpoison.status import not_applicable, read_attack_failure
from unpoison.training import TrainRecipe
from unpoison.unlearners import UnlearnInputs, get_unlearner


def detect(
    detector: str, params: dict[str, Any], out: str, scores: dict[str, str] | None = None,
    model: str | None = None, poisoned: str | None = None, features: str | None = None,
    dataset_model: str | None = None, queries: str | None = None,
) -> None:
    """Run one detector on the inputs it declared and save the flagged training indices (sorted int64 ``.npy``).

    Args:
        detector: registered name; ``params`` its normalised settings.
        out: the ``.npy`` to write (a meta JSON goes beside it).
        scores: probe name → influence-score file.
        model, poisoned, features, dataset_model: the trained model, the training set, its penultimate
            features, and the detector's own per-dataset model, when the detector reads them.
        queries: the run's queries; when they record that the attack failed, no detector runs and the flags
            are empty, with ``not_applicable`` in the meta file.
    """
    failed = read_attack_failure(queries)
    if failed:
        save_npy(np.empty(0, dtype=np.int64), out)
        save_meta(out, detector=detector, params=params, n_flagged=0, not_applicable=not_applicable(failed))
        return
    inputs = DetectorInputs(scores={p: load_torch(path) for p, path in (scores or {}).items()})
    if model:
        inputs.model, _ = load_checkpoint(model)
    if poisoned:
        inputs.x_train, inputs.y_train = load_poisoned(poisoned)
    if features:
        inputs.features = load_torch(features)
    if dataset_model:
        inputs.dataset_model = load_torch(dataset_model)
    flagged = get_detector(detector, params).detect(inputs)
    save_npy(flagged, out)
    save_meta(out, detector=detector, params=params, n_flagged=len(flagged))


def unlearn(
    unlearner: str, params: dict[str, Any], model: str, poisoned: str, flagged: str,
    recipe: dict[str, Any], seed: int, device: str, out: str, log=None, queries: str | None = None,
) -> None:
    """Unlearn the flagged points from ``model``; the meta file records the wall-clock seconds. When the run's
    ``queries`` record that the attack failed, the model is written unchanged with ``not_applicable`` in its meta."""
    net, spec = load_checkpoint(model)
    failed = read_attack_failure(queries)
    if failed:
        save_checkpoint(out, net, spec)
        save_meta(out, unlearner=unlearner, params=params, seconds=0.0, n_forget=0, seed=seed, not_applicable=not_applicable(failed))
        return
    x, y = load_poisoned(poisoned)
    forget = load_npy(flagged)
    method = get_unlearner(unlearner, params)
    start = time.perf_counter()
    result = method.unlearn(
        UnlearnInputs(net, spec, x, y, forget, TrainRecipe.from_dict(recipe), seed, resolve_device(device), log)
    )
    seconds = time.perf_counter() - start
    save_checkpoint(out, result, spec)
    save_meta(out, unlearner=unlearner, params=params, seconds=seconds, n_forget=len(forget), seed=seed)
