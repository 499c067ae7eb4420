"""Stages: fit EK-FAC factors once per model; score every probe of every query in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from unpoison.data import TensorDataset01
from unpoison.device import resolve_device
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.io import load_json, load_torch, save_json, save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.provenance import provenance
from unpoison.stages.data import load_poisoned
from unpoison.status import query_keys


SKIPPED = "SKIPPED.json"  # the only file of a factor directory that was not fitted (nothing to score)


def fit(
    model: str, poisoned: str, settings: dict[str, Any], seed: int, device: str, out_dir: str, queries: str | None = None
) -> None:
    """Fit EK-FAC factors of ``model`` on the full (poisoned) training set into ``out_dir``.

    When ``queries`` records that there is no query to score (the attack failed, or it affects no test point),
    nothing is fitted: ``out_dir`` holds only ``SKIPPED.json`` with the reason, which :func:`score` accepts for
    exactly such queries. On a GPU cluster this saves one factor fit per failed attack (a brew that did not flip its target).
    """
    why = query_keys(load_torch(queries)) if queries else {}
    if why:
        print(f"no query to score ({why}): EK-FAC factors not fitted", flush=True)
        record = {"skipped": True, "seed": seed, "settings": settings, **why, "provenance": provenance(seed=seed)}
        save_json(record, Path(out_dir) / SKIPPED)
        return
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
    controls: str | None = None,
) -> None:
    """Score the base queries and the transformed queries of every requested probe in ONE pass.

    ``outputs`` maps probe name (``base``, ``both``, ``label``, ``image``) to its output path. Each file holds
    ``scores`` (q, 1 + n_b, N) with the untransformed query in column 0 (``base``: (q, 1, N)), the query
    ``labels`` per column, and for transformed probes the augmentation family names. Names
    ``controls_<probe>`` score the control queries of ``controls`` (clean test images the model gets right)
    through that probe, in the same pass, with transforms drawn from their own ``probes/controls`` stream.
    """
    x, y = load_poisoned(poisoned)
    q = load_torch(queries)
    why = query_keys(q)
    if why:  # no affected point to score (attack failed, or none by design): empty score files that say why
        for probe, path in outputs.items():
            cols = 1 if probe == "base" else 1 + n_b
            payload = {"scores": torch.empty(0, cols, len(y)), "labels": torch.empty(0, cols, dtype=torch.int64), **why}
            save_torch({**payload, **({"augmentations": []} if probe != "base" else {})}, path)
            save_meta(path, probe=probe, n_b=n_b, seed=seed, settings=settings, **why)
        return
    if (Path(factors) / SKIPPED).exists():
        raise ValueError(
            f"{factors} holds no EK-FAC factors: they were skipped because the queries had nothing to score when "
            f"they were fitted ({load_json(Path(factors) / SKIPPED)}), but {queries} now holds a query. "
            f"Delete {factors} and re-run to fit them."
        )
    net, spec = load_checkpoint(model)
    probes = tuple(p for p in outputs if p != "base" and not p.startswith("controls_"))
    control_probes = tuple(p.removeprefix("controls_") for p in outputs if p.startswith("controls_"))
    sets = {"": build_probe_set(q["x"], q["labels"], spec["num_classes"], n_b, seed, probes)}
    if control_probes:
        if controls is None:
            raise ValueError(f"outputs {sorted(outputs)} ask for control scores but no controls file was given")
        c = load_torch(controls)
        sets["controls_"] = build_probe_set(c["x"], c["labels"], spec["num_classes"], n_b, seed, control_probes, "probes/controls")
    offsets, start = {}, 0
    for prefix, ps in sets.items():
        offsets[prefix], start = start, start + len(ps.labels)
    scores = score_queries(
        net, factors,
        TensorDataset01(torch.cat([ps.images for ps in sets.values()]), torch.cat([ps.labels for ps in sets.values()])),
        TensorDataset01(x, y), ScoreSettings.from_dict(settings), resolve_device(device),
    )
    for name, path in outputs.items():
        prefix = "controls_" if name.startswith("controls_") else ""
        probe, ps = name.removeprefix(prefix), sets[prefix]
        cols = ps.base_rows[:, None]
        if probe != "base":
            cols = torch.cat([cols, ps.probe_rows[probe]], dim=1)
        cols = cols + offsets[prefix]
        labels = torch.cat([s.labels for s in sets.values()])
        payload: dict[str, Any] = {"scores": scores[cols].contiguous(), "labels": labels[cols].contiguous()}
        if probe != "base":
            payload["augmentations"] = ps.augmentations
        save_torch(payload, path)
        save_meta(path, probe=name, n_b=n_b, seed=seed, settings=settings, n_queries_in_pass=start)
