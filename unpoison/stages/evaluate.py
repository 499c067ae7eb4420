"""Steps of rules/evaluate.smk: score detections and models against the ground truth (with query selection, the only
readers of truth.json), the threshold sweep, and the counterfactual of paper Table 3."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from unpoison.io import load_json, load_npy, load_torch, meta_path, save_json, write_csv
from unpoison.metrics import detection_metrics, model_metrics
from unpoison.provenance import provenance
from unpoison.status import OK, State, Status, read_status
from unpoison.sweep import SWEEP_COLUMNS, SweepGrid

if TYPE_CHECKING:
    from unpoison.execution import Execution

# The steps that run models import torch and the registries inside their functions: evaluate_detection (one job
# per run) then starts without them.

NAN = float("nan")


def as_list(value: str | Sequence[str]) -> list[str]:
    """A rule's input or output that may be one path or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def status_fields(status: Status) -> dict[str, str]:
    """A metrics row's ``state`` (for logic) and ``status`` (its label, for people)."""
    return {"state": status.state.value, "status": status.label}


def evaluate_detection(
    *,
    flagged: str | Sequence[str],
    truth: str,
    metrics: str | Sequence[str],
    detectors: Sequence[str],
    ids: dict[str, Any],
) -> None:
    """Detection metrics of each detector's flags (``flagged`` and ``metrics`` follow ``detectors``' order). Flags
    that do not apply (their meta status says why) get NaN metrics and that status."""
    poisons = load_json(truth)["poison_indices"]
    for name, flags, out in zip(detectors, as_list(flagged), as_list(metrics), strict=True):
        status = read_status(flags)
        if status.ok:
            row = detection_metrics(load_npy(flags), poisons)
        else:
            row = {**dict.fromkeys(("n_flagged", "true_positives", "tpr", "precision"), NAN), "n_poisons": len(poisons)}
        save_json(
            {**ids, "detector": name, **row, **status_fields(status), "provenance": provenance(seed=ids["seed"])}, out
        )


class ModelEvaluator:
    """Everything a run's model metrics share: the test data, the attack, its truth, the device."""

    def __init__(
        self,
        clean: str,
        truth: str,
        attack: str,
        attack_settings: dict[str, Any],
        poisoned: str,
        execution: Execution,
        seed: int,
    ) -> None:
        from unpoison.artifacts import load_clean, load_poisoned
        from unpoison.attacks import get_attack

        self.data, self.truth = load_clean(clean), load_json(truth)
        self.attack = get_attack(attack, attack_settings)
        self.x_poisoned, self.y_poisoned = load_poisoned(poisoned)
        self.device, self.batch_size = execution.torch_device(), execution.get("eval_batch_size", 512)
        self.seed = seed

    def metrics(self, net) -> dict[str, Any]:
        x_poisoned = self.x_poisoned if self.attack.metrics_read_poisoned else None
        return model_metrics(
            net, self.data, self.attack, self.truth, self.device, self.batch_size, x_poisoned, self.seed
        )


def _unlearned_row(path: str, flags: str, measure: Callable, times: dict[str, float]) -> dict[str, Any]:
    """An unlearned model's metrics and costs, or NaN metrics and its status when its flags did not apply."""
    from unpoison.models import load_checkpoint

    info = load_json(meta_path(path))
    status = Status.from_dict(info.get("status"))
    row: dict[str, Any] = status_fields(status)
    if not status.ok:
        return {**row, "clean_acc": NAN, "psr": NAN, **times}
    return {
        **row,
        **measure(load_checkpoint(path)[0], load_npy(flags)),
        "seconds": float(info.get("seconds", 0.0)),
        "cpu_seconds": float(info.get("cpu_seconds", NAN)),
        "budget_epochs": float(info.get("report", {}).get("budget_epochs", NAN)),
    }


def evaluate_models(
    *,
    model: str,
    clean: str,
    truth: str,
    queries: str,
    poisoned: str,
    attack: str,
    attack_settings: dict[str, Any],
    ids: dict[str, Any],
    recipe: dict[str, Any],
    relearning: dict[str, Any],
    execution: Execution,
    poisoned_metrics: str,
    unlearned: str | Sequence[str] = (),
    unlearned_metrics: str | Sequence[str] = (),
    flagged: str | Sequence[str] = (),
    pairs: Sequence[Sequence[str]] = (),
    clean_model: str | None = None,
    clean_model_metrics: str | None = None,
    log: TextIO | None = None,
) -> None:
    """Clean accuracy, PSR, R-Acc, the attack's own metrics and (with ``relearning``) the same after a brief clean
    fine-tune, of the run's poisoned model, every unlearned model (``pairs`` = their (detector, unlearner), in the
    order of ``unlearned`` and ``unlearned_metrics``; ``flagged`` = each pair's flags, whose complement is the retain
    set relearning samples from) and, when given, the model trained on the clean data.

    An unlearned model whose flags did not apply (its meta status says why) gets NaN metrics and that status; the
    poisoned model is always measured, its status says when the attack failed.
    """
    from unpoison.models import load_checkpoint
    from unpoison.relearn import RelearnSettings, relearn_metrics
    from unpoison.training import TrainRecipe

    ev = ModelEvaluator(clean, truth, attack, attack_settings, poisoned, execution, ids["seed"])
    relearn = RelearnSettings.from_dict(relearning)
    train_recipe = TrainRecipe.from_dict(recipe)

    def measure(net, forget: np.ndarray) -> dict[str, Any]:
        row = ev.metrics(net)
        if relearn.enabled:
            row.update(relearn_metrics(net, ev, forget, train_recipe, relearn, log))
        return row

    run_status = read_status(queries)
    poisoned_status = run_status if run_status.state is State.ATTACK_FAILED else OK
    net, _ = load_checkpoint(model)
    times = dict.fromkeys(("seconds", "cpu_seconds", "budget_epochs"), 0.0)
    row = {**ids, **measure(net, np.empty(0, dtype=np.int64)), **times, **status_fields(poisoned_status)}
    save_json({**row, "provenance": provenance(seed=ids["seed"])}, poisoned_metrics)
    for (detector, unlearner), path, flags, out in zip(
        pairs, as_list(unlearned), as_list(flagged), as_list(unlearned_metrics), strict=True
    ):
        row = {**ids, "detector": detector, "unlearner": unlearner, **_unlearned_row(path, flags, measure, times)}
        save_json({**row, "provenance": provenance(seed=ids["seed"])}, out)
    if clean_model and clean_model_metrics:
        row = {**ids, **ev.metrics(load_checkpoint(clean_model)[0]), **times, **status_fields(OK)}
        save_json({**row, "provenance": provenance(seed=ids["seed"])}, clean_model_metrics)


def sweep_thresholds(
    *,
    truth: str,
    grid: dict[str, Any],
    detectors: dict[str, dict[str, Any]],
    ids: dict[str, Any],
    sweep: str,
    **scores: str,
) -> None:
    """Detection metrics of each sweeping detector (name → {method, settings}) over the grid of its
    ``sweep_params`` (config ``sweep``: taus, ks, thresholds), from its saved scores (``scores_<probe>`` inputs),
    intersecting the first ``n_points`` affected points; a header-only table when no query was scored."""
    import pandas as pd

    settings = SweepGrid.from_dict(grid)
    payloads = {k.removeprefix("scores_"): load_torch(p) for k, p in scores.items()}
    statuses = [read_status(p) for p in scores.values()]
    rows: list[dict[str, Any]] = []
    if all(s.ok for s in statuses):
        poisons = load_json(truth)["poison_indices"]
        for name, spec in detectors.items():
            rows += sweep_detector(name, spec["method"], spec["settings"], payloads, poisons, settings)
    write_csv(pd.DataFrame([{**ids, **r} for r in rows], columns=[*ids, *SWEEP_COLUMNS]), sweep)


def sweep_detector(
    name: str,
    method: str,
    settings: dict[str, Any],
    scores: dict[str, dict[str, Any]],
    poisons: list[int],
    grid: SweepGrid,
) -> list[dict[str, Any]]:
    """One detector's rows of the sweep: every combination of the grid's values of its sweep parameters."""
    from unpoison.detectors import DETECTORS, DetectorInputs, get_detector

    params = DETECTORS[method].sweep_params
    probe = DETECTORS[method].probe
    n_b = scores[probe]["scores"].shape[1] - 1
    n_points = min(grid.n_points, scores[probe]["scores"].shape[0])
    rows = []
    for combo in itertools.product(*(grid.values(p) for p in params)):
        values = dict(zip(params, combo))
        if "k" in values and values["k"] >= n_b:  # k must be < n_b
            continue
        det = get_detector(method, {**settings, **values, "n_points": n_points})
        flagged = det.detect(DetectorInputs(scores=scores))
        full = {p: values.get(p, NAN) for p in ("tau", "k", "threshold")}
        rows.append({"detector": name, **full, **detection_metrics(flagged, poisons)})
    return rows


def counterfactual(
    *,
    model: str,
    clean: str,
    poisoned: str,
    flagged: str,
    truth: str,
    attack: str,
    attack_settings: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    ids: dict[str, Any],
    execution: Execution,
    metrics: str,
    log: TextIO | None = None,
) -> None:
    """Retrain from scratch (exact unlearning, the run's recipe and seed) once without the DETECTED true poisons and
    once without the MISSED ones; write TPR, PSR and clean accuracy. An evaluation that reads ground truth by
    design: if the detected poisons carry the attack, removing them alone removes it. Rows with NaN metrics and the
    flags' status when the flags do not apply."""
    from unpoison.models import load_checkpoint
    from unpoison.training import TrainRecipe
    from unpoison.unlearners import UnlearnInputs, get_unlearner

    status = read_status(flagged)
    if not status.ok:
        rows = [
            {**ids, "removed": r, "n_removed": NAN, "tpr": NAN, "clean_acc": NAN, "psr": NAN, **status_fields(status)}
            for r in ("detected", "missed")
        ]
        save_json({"rows": rows}, metrics)
        return
    net, spec = load_checkpoint(model)
    ev = ModelEvaluator(clean, truth, attack, attack_settings, poisoned, execution, seed)
    x, y = ev.x_poisoned, ev.y_poisoned
    detected, missed = split_poisons(load_npy(flagged), ev.truth["poison_indices"])
    tpr = len(detected) / max(1, len(detected) + len(missed))
    rows = []
    for removed, forget in (("detected", detected), ("missed", missed)):
        inputs = UnlearnInputs(net, spec, x, y, forget, TrainRecipe.from_dict(recipe), seed, ev.device, log)
        retrained = get_unlearner("eu").unlearn(inputs)
        rows.append(
            {
                **ids,
                "removed": removed,
                "n_removed": int(len(forget)),
                "tpr": tpr,
                **ev.metrics(retrained),
                **status_fields(OK),
            }
        )
    save_json({"rows": rows, "provenance": provenance(seed=seed)}, metrics)


def split_poisons(flagged: np.ndarray, poison_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(detected, missed): the true poisons a detector flagged, and the rest of the poisons."""
    poisons = np.asarray(poison_indices, dtype=np.int64)
    detected = np.intersect1d(poisons, np.asarray(flagged, dtype=np.int64))
    return detected, np.setdiff1d(poisons, detected)
