"""Stages: score detections and models against the ground truth (the only readers of truth.json)."""

from __future__ import annotations

from typing import Any

from unpoison.attacks import get_attack
from unpoison.device import resolve_device
from unpoison.io import load_json, load_npy, load_torch, meta_path, save_json
from unpoison.metrics import detection_metrics, model_metrics
from unpoison.models import load_checkpoint
from unpoison.provenance import provenance
from unpoison.stages.data import load_clean


def evaluate_detection(flagged: str, truth: str, ids: dict[str, Any], out: str) -> None:
    """Detection metrics of one flagged set; ``ids`` (dataset, attack, seed, detector) go into the row."""
    metrics = detection_metrics(load_npy(flagged), load_json(truth)["poison_indices"])
    save_json({**ids, **metrics, "provenance": provenance(seed=ids.get("seed"))}, out)


def evaluate_model(
    model: str, clean: str, truth: str, attack: str, attack_params: dict[str, Any], device: str,
    ids: dict[str, Any], out: str, batch_size: int = 512,
) -> None:
    """Clean accuracy and PSR of a model; ``seconds`` is the unlearning time from its meta file (0 if none)."""
    net, _ = load_checkpoint(model)
    m = model_metrics(net, load_clean(clean), get_attack(attack, attack_params), load_json(truth), resolve_device(device), batch_size)
    meta = meta_path(model)
    seconds = float(load_json(meta).get("seconds", 0.0)) if meta.exists() and ids.get("unlearner", "none") != "none" else 0.0
    save_json({**ids, **m, "seconds": seconds, "provenance": provenance(seed=ids.get("seed"))}, out)


def sweep_thresholds(both: str, base: str, truth: str, grid: dict[str, Any], ids: dict[str, Any], out: str) -> None:
    """TPR/precision over the τ × k grid (Δ-Influence) and the EK-FAC thresholds, from saved scores (CSV)."""
    import pandas as pd

    from unpoison.report.tables import write_csv
    from unpoison.sweep import SweepGrid, threshold_sweep

    rows = threshold_sweep(
        load_torch(both)["scores"], load_torch(base)["scores"], load_json(truth)["poison_indices"], SweepGrid.from_dict(grid)
    )
    write_csv(pd.DataFrame([{**ids, **r} for r in rows]), out)
