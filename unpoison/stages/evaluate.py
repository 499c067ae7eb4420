"""Stages: score detections and models against the ground truth (the only readers of truth.json)."""

from __future__ import annotations

from typing import Any

from unpoison.attacks import get_attack
from unpoison.device import resolve_device
from unpoison.io import load_json, load_npy, load_torch, meta_path, save_json
from unpoison.metrics import detection_metrics, model_metrics
from unpoison.models import load_checkpoint
from unpoison.provenance import provenance
from unpoison.stages.data import load_clean, load_poisoned
from unpoison.status import OK, flags_status, query_status, read_attack_failure, status_of


def evaluate_detection(flagged: str, truth: str, ids: dict[str, Any], out: str) -> None:
    """Detection metrics of one flagged set; ``ids`` (dataset, attack, seed, detector) go into the row. When the
    flags are not applicable (their meta says why: ``detect`` records an attack that failed on this run, for every
    detector, and a query-based detector without a query), the metrics are NaN and ``status`` says why."""
    poisons = load_json(truth)["poison_indices"]
    status = flags_status(flagged) or OK
    if status != OK:
        metrics = {**dict.fromkeys(("n_flagged", "true_positives", "tpr", "precision"), float("nan")), "n_poisons": len(poisons)}
    else:
        metrics = detection_metrics(load_npy(flagged), poisons)
    save_json({**ids, **metrics, "status": status, "provenance": provenance(seed=ids.get("seed"))}, out)


def evaluate_model(
    model: str, clean: str, truth: str, attack: str, attack_params: dict[str, Any], device: str,
    ids: dict[str, Any], out: str, batch_size: int = 512, queries: str | None = None, skip_if_failed: bool = False,
    poisoned: str | None = None,
) -> None:
    """Clean accuracy and PSR of a model, with the unlearning's ``seconds``, ``cpu_seconds`` and
    ``budget_epochs`` from an unlearned model's meta file (0 for the poisoned model).

    Args:
        queries: the run's queries; the row's ``status`` says whether its attack took.
        skip_if_failed: when the attack failed, or the unlearned model's meta says it is not applicable (its
            detector needed a query the attack does not give), write NaN metrics instead of evaluating (the
            model is then just the poisoned one: there was no affected point to defend).
        poisoned: the poisoned training set, read when the attack's own metrics need it (Gaussian poisoning).
    """
    failed = read_attack_failure(queries)
    meta = meta_path(model)
    info = load_json(meta) if meta.exists() and ids.get("unlearner", "none") != "none" else {}
    status = status_of(failed) if failed else (info.get("not_applicable") or OK)
    if status != OK and skip_if_failed:
        row = {**ids, "clean_acc": float("nan"), "psr": float("nan"), "seconds": 0.0, "cpu_seconds": 0.0, "budget_epochs": 0.0}
        save_json({**row, "status": status, "provenance": provenance(seed=ids.get("seed"))}, out)
        return
    net, _ = load_checkpoint(model)
    atk = get_attack(attack, attack_params)
    x_poisoned = load_poisoned(poisoned)[0] if poisoned and atk.metrics_read_poisoned else None
    seed = int(ids.get("seed", 0))
    m = model_metrics(net, load_clean(clean), atk, load_json(truth), resolve_device(device), batch_size, x_poisoned, seed)
    times = {
        "seconds": float(info.get("seconds", 0.0)),
        "cpu_seconds": float(info.get("cpu_seconds", float("nan")) if info else 0.0),
        "budget_epochs": float(info.get("report", {}).get("budget_epochs", float("nan")) if info else 0.0),
    }
    save_json({**ids, **m, **times, "status": status, "provenance": provenance(seed=ids.get("seed"))}, out)


def sweep_thresholds(both: str, base: str, truth: str, grid: dict[str, Any], ids: dict[str, Any], out: str) -> None:
    """TPR/precision over the τ × k grid (Δ-Influence) and the EK-FAC thresholds, from saved scores (CSV; no
    rows when the run's attack failed)."""
    import pandas as pd

    from unpoison.report.tables import write_csv
    from unpoison.sweep import SWEEP_COLUMNS, SweepGrid, threshold_sweep

    scores_both, scores_base = load_torch(both), load_torch(base)
    if query_status(scores_both):  # no query was scored: a header-only table
        write_csv(pd.DataFrame(columns=[*ids, *SWEEP_COLUMNS]), out)
        return
    rows = threshold_sweep(scores_both["scores"], scores_base["scores"], load_json(truth)["poison_indices"], SweepGrid.from_dict(grid))
    write_csv(pd.DataFrame([{**ids, **r} for r in rows]), out)
