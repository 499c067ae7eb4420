"""Stage: the counterfactual of paper Table 3 (SPEC §2), an evaluation that reads ground truth BY DESIGN.

With a detector's flags, retrain from scratch (exact unlearning, the dataset's recipe and the run's seed)
once without the DETECTED true poisons and once without the MISSED ones (all poisons minus the detected).
If the detected poisons carry the attack, removing them alone removes it, while removing only the missed
ones leaves it in place: the poisons a detector misses would then not matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unpoison.attacks import get_attack
from unpoison.device import resolve_device
from unpoison.io import load_json, load_npy, save_json
from unpoison.metrics import model_metrics
from unpoison.models import load_checkpoint
from unpoison.provenance import provenance
from unpoison.stages.data import load_clean, load_poisoned
from unpoison.status import OK, read_query_status
from unpoison.training import TrainRecipe
from unpoison.unlearners import UnlearnInputs, get_unlearner


def split_poisons(flagged: np.ndarray, poison_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(detected, missed): the true poisons a detector flagged, and the rest of the poisons."""
    poisons = np.asarray(poison_indices, dtype=np.int64)
    detected = np.intersect1d(poisons, np.asarray(flagged, dtype=np.int64))
    return detected, np.setdiff1d(poisons, detected)


def counterfactual(
    model: str, clean: str, poisoned: str, flagged: str, truth: str, attack: str, attack_params: dict[str, Any],
    recipe: dict[str, Any], seed: int, device: str, ids: dict[str, Any], out: str, batch_size: int = 512, log=None,
    queries: str | None = None,
) -> None:
    """Retrain without the detected poisons and without the missed ones; write TPR, PSR and clean accuracy
    (rows with NaN metrics and a ``status`` saying why, without retraining, when the run's attack failed or
    affects no test point)."""
    status = read_query_status(queries)
    if status:
        nan = float("nan")
        rows = [{**ids, "removed": r, "n_removed": nan, "tpr": nan, "clean_acc": nan, "psr": nan, "status": status}
                for r in ("detected", "missed")]
        save_json({"rows": rows}, out)
        return
    net, spec = load_checkpoint(model)
    x, y = load_poisoned(poisoned)
    facts = load_json(truth)
    detected, missed = split_poisons(load_npy(flagged), facts["poison_indices"])
    dev = resolve_device(device)
    data, atk = load_clean(clean), get_attack(attack, attack_params)
    tpr = len(detected) / max(1, len(detected) + len(missed))
    rows = []
    for removed, forget in (("detected", detected), ("missed", missed)):
        inputs = UnlearnInputs(net, spec, x, y, forget, TrainRecipe.from_dict(recipe), seed, dev, log)
        retrained = get_unlearner("eu").unlearn(inputs)
        metrics = model_metrics(retrained, data, atk, facts, dev, batch_size)
        rows.append({**ids, "removed": removed, "n_removed": int(len(forget)), "tpr": tpr, **metrics, "status": OK})
    save_json({"rows": rows, "provenance": provenance(seed=seed)}, out)
