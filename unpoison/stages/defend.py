"""Stages: detect (only the oracle, which declares `needs_truth`, reads the ground truth); unlearn the flagged points."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from unpoison.detectors import DetectorInputs, get_detector
from unpoison.device import resolve_device
from unpoison.io import load_json, load_npy, load_torch, save_meta, save_npy
from unpoison.models import load_checkpoint, save_checkpoint
from unpoison.stages.data import load_poisoned
from unpoison.status import attack_failure, flags_status, no_query, no_query_status, not_applicable, read_attack_failure
from unpoison.training import TrainRecipe
from unpoison.unlearners import UnlearnInputs, get_unlearner


def detect(
    detector: str, params: dict[str, Any], out: str, scores: dict[str, str] | None = None,
    model: str | None = None, poisoned: str | None = None, features: str | None = None,
    dataset_model: str | None = None, queries: str | None = None, truth: str | None = None, seed: int | None = None,
) -> None:
    """Run one detector on the inputs it declared and save the flagged training indices (sorted int64 ``.npy``).

    Args:
        detector: registered name; ``params`` its normalised settings.
        out: the ``.npy`` to write (a meta JSON goes beside it).
        scores: probe name → influence-score file.
        model, poisoned, features, dataset_model: the trained model, the training set, its penultimate
            features, and the detector's own per-dataset model, when the detector reads them.
        queries: the run's queries; when they record that the attack failed, no detector runs and the flags
            are empty, with ``not_applicable`` in the meta file; when the attack affects no test point by design
            (``no_query``), the same holds for detectors that read query scores, and the others run.
        truth: the ground truth (``truth.json``), given ONLY to detectors that declare ``needs_truth``
            (the oracle); refused for any other.
        seed: the run's seed (for detectors that draw at random).
    """
    det = get_detector(detector, params)
    if truth and not det.needs_truth:
        raise ValueError(f"detector {detector!r} does not declare needs_truth and must not read {truth}")
    def not_applicable_flags(status: str) -> None:  # empty flags whose meta says why (unpoison.status.flags_status)
        save_npy(np.empty(0, dtype=np.int64), out)
        save_meta(out, detector=detector, params=params, n_flagged=0, not_applicable=status, uses_truth=det.needs_truth)

    q = load_torch(queries) if queries else {}
    failed, missing = attack_failure(q), no_query(q)
    if failed or (missing and (det.probe or det.control_probe)):
        return not_applicable_flags(not_applicable(failed) if failed else no_query_status(missing))
    inputs = DetectorInputs(scores={p: load_torch(path) for p, path in (scores or {}).items()}, seed=seed)
    wanted, scored = params.get("n_points"), min((len(s["scores"]) for p, s in inputs.scores.items() if not p.startswith("controls_")), default=None)
    if wanted and scored is not None and wanted > scored:  # e.g. 5 points of an attack with one target image
        return not_applicable_flags(f"n/a (n_points = {wanted}, but the attack gives {scored} affected test point(s))")
    if model:
        inputs.model, _ = load_checkpoint(model)
    if poisoned:
        inputs.x_train, inputs.y_train = load_poisoned(poisoned)
    if features:
        inputs.features = load_torch(features)
    if dataset_model:
        inputs.dataset_model = load_torch(dataset_model)
    if truth:
        inputs.truth = load_json(truth)
    flagged = det.detect(inputs)
    save_npy(flagged, out)
    save_meta(out, detector=detector, params=params, n_flagged=len(flagged), uses_truth=det.needs_truth)


def unlearn(
    unlearner: str, params: dict[str, Any], model: str, poisoned: str, flagged: str,
    recipe: dict[str, Any], seed: int, device: str, out: str, log=None, queries: str | None = None,
) -> None:
    """Unlearn the flagged points from ``model``.

    The meta file records the unlearner's wall-clock ``seconds`` and the process's ``cpu_seconds`` (both
    around :meth:`Unlearner.unlearn` only: loading and saving are excluded), the forget-set size and the
    unlearner's report (``budget_epochs``: its compute in training epochs of the same model, and what the
    method adds, e.g. Potion's search step). When the run's ``queries`` record that the attack failed, or the
    flags are themselves not applicable (a query-based detector on an attack without a query), the model is
    written unchanged with ``not_applicable`` in its meta.
    """
    net, spec = load_checkpoint(model)
    failed = read_attack_failure(queries)
    status = not_applicable(failed) if failed else flags_status(flagged)
    if status:
        save_checkpoint(out, net, spec)
        save_meta(out, unlearner=unlearner, params=params, seconds=0.0, n_forget=0, seed=seed, not_applicable=status)
        return
    x, y = load_poisoned(poisoned)
    forget = load_npy(flagged)
    method = get_unlearner(unlearner, params)
    dev = resolve_device(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = method.unlearn(UnlearnInputs(net, spec, x, y, forget, TrainRecipe.from_dict(recipe), seed, dev, log))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    for name, value in result.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise FloatingPointError(f"{unlearner} produced NaN/inf weights in {name}: the model is not saved")
    save_checkpoint(out, result, spec)
    save_meta(out, unlearner=unlearner, params=params, seconds=seconds, cpu_seconds=cpu_seconds,
              n_forget=len(forget), seed=seed, device=str(dev), report=method.report)
