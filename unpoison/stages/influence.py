"""Stages: fit EK-FAC factors once per model; score every probe of every query in one pass."""

from __future__ import annotations

from typing import Any

import torch

from unpoison.data import TensorDataset01
from unpoison.device import resolve_device
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.io import load_torch, save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_poisoned
from unpoison.status import attack_failure


def fit(model: str, poisoned: str, settings: dict[str, Any], seed: int, device: str, out_dir: str) -> None:
    """Fit EK-FAC factors of ``model`` on the full (poisoned) training set into ``out_dir``."""
    net, _ = load_checkpoint(model)
    x, y = load_poisoned(poisoned)
    fit_factors(net, TensorDataset01(x, y), out_dir, FactorSettings.from_dict(settings), resolve_device(device), seed)


def score(
    model: str,
    poisoned: str,
    queries: str,
    factors: str,
    n_b: int,
    settings: dict[str, Any],
    seed: int,
    device: str,
    outputs: dict[str, str],
) -> None:
    """Score the base queries and the transformed queries of every requested probe in ONE pass.

    ``outputs`` maps probe name (``base``, ``both``, ``label``, ``image``) to its output path. Each file holds
    ``scores`` (q, 1 + n_b, N) with the untransformed query in column 0 (``base``: (q, 1, N)), the query
    ``labels`` per column, and for transformed probes the augmentation family names.
    """
    x, y = load_poisoned(poisoned)
    q = load_torch(queries)
    failed = attack_failure(q)
    if failed:  # no affected point to score: well-formed empty score files that say why
        for probe, path in outputs.items():
            cols = 1 if probe == "base" else 1 + n_b
            payload = {"scores": torch.empty(0, cols, len(y)), "labels": torch.empty(0, cols, dtype=torch.int64), "attack_failed": failed}
            save_torch({**payload, **({"augmentations": []} if probe != "base" else {})}, path)
            save_meta(path, probe=probe, n_b=n_b, seed=seed, settings=settings, attack_failed=failed)
        return
    net, spec = load_checkpoint(model)
    probes = tuple(p for p in outputs if p != "base")
    ps = build_probe_set(q["x"], q["labels"], spec["num_classes"], n_b, seed, probes)
    scores = score_queries(
        net, factors, TensorDataset01(ps.images, ps.labels), TensorDataset01(x, y),
        ScoreSettings.from_dict(settings), resolve_device(device),
    )
    for probe, path in outputs.items():
        cols = ps.base_rows[:, None]
        if probe != "base":
            cols = torch.cat([cols, ps.probe_rows[probe]], dim=1)
        payload: dict[str, Any] = {"scores": scores[cols].contiguous(), "labels": ps.labels[cols].contiguous()}
        if probe != "base":
            payload["augmentations"] = ps.augmentations
        save_torch(payload, path)
        save_meta(path, probe=probe, n_b=n_b, seed=seed, settings=settings, n_queries_in_pass=len(ps.labels))
