"""Stages: score detections and models against the ground truth (the only readers of truth.json)."""

from __future__ import annotations

from typing import Any

from unpoison.attacks import get_attack
from unpoison.device import resolve_device
from unpoison.io import load_json, load_npy, load_torch, meta_path, save_json
from unpoison.metrics import detection_metrics, model_metrics
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_clean


def evaluate_detection(flagged: str, truth: str, ids: dict[str, Any], out: str) -> None:
    """Detection metrics of one flagged set; ``ids`` (dataset, attack, seed, detector) go into the row."""
    save_json({**ids, **detection_metrics(load_npy(flagged), load_json(truth)["poison_indices"])}, out)


def evaluate_model(
    model: str, clean: str, truth: str, attack: str, attack_params: dict[str, Any], device: str,
    ids: dict[str, Any], out: str, batch_size: int = 512,
) -> None:
    """Clean accuracy and PSR of a model, with the unlearning's ``seconds``, ``cpu_seconds`` and
    ``budget_epochs`` from an unlearned model's meta file (0 for the poisoned model)."""
    net, _ = load_checkpoint(model)
    m = model_metrics(net, load_clean(clean), get_attack(attack, attack_params), load_json(truth), resolve_device(device), batch_size)
    meta = meta_path(model)
    info = load_json(meta) if meta.exists() and ids.get("unlearner", "none") != "none" else {}
    times = {
        "seconds": float(info.get("seconds", 0.0)),
        "cpu_seconds": float(info.get("cpu_seconds", float("nan")) if info else 0.0),
        "budget_epochs": float(info.get("report", {}).get("budget_epochs", float("nan")) if info else 0.0),
    }
    save_json({**ids, **m, **times}, out)


def sweep_thresholds(both: str, base: str, truth: str, grid: dict[str, Any], ids: dict[str, Any], out: str) -> None:
    """TPR/precision over the τ × k grid (Δ-Influence) and the EK-FAC thresholds, from saved scores (CSV)."""
    import pandas as pd

    from unpoison.report.tables import write_csv
    from unpoison.sweep import SweepGrid, threshold_sweep

    rows = threshold_sweep(
        load_torch(both)["scores"], load_torch(base)["scores"], load_json(truth)["poison_indices"], SweepGrid.from_dict(grid)
    )
    write_csv(pd.DataFrame([{**ids, **r} for r in rows]), out)
