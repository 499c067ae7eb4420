"""Steps of rules/influence.smk: fit EK-FAC factors once per model; pick control queries; score every probe of
every query in one pass over the training set.

kronfluence and the probes' torchvision transforms are imported by the steps that use them: picking control
queries needs neither, and torchvision's import (it pulls in ``torch._dynamo``) alone costs ~1.6 s of a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from unpoison.artifacts import load_clean, load_poisoned
from unpoison.controls import select_controls as choose_controls
from unpoison.data import TensorDataset01
from unpoison.execution import Execution
from unpoison.influence.settings import FactorSettings
from unpoison.io import load_json, load_torch, save_json, save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.provenance import provenance
from unpoison.status import read_status

if TYPE_CHECKING:
    from unpoison.influence.probe_scores import StackedProbes

SKIPPED = "SKIPPED.json"  # the only file of a factor directory that was not fitted (nothing to score)


def skip_fit(out_dir: str, status: Any, seed: int, settings: dict[str, Any]) -> bool:
    """When the queries' status says there is nothing to score (the attack failed, or it affects no test point),
    write ``SKIPPED.json`` with it into ``out_dir`` instead of fitting anything: True."""
    if status.ok:
        return False
    print(f"no query to score ({status.label}): EK-FAC factors not fitted", flush=True)
    record = {
        "skipped": True,
        "seed": seed,
        "settings": settings,
        "status": status.to_dict(),
        "provenance": provenance(seed=seed),
    }
    save_json(record, Path(out_dir) / SKIPPED)
    return True


def factor_pass_inputs(
    model: str, poisoned: str, settings: dict[str, Any], execution: Execution
) -> tuple[torch.nn.Module, TensorDataset01, FactorSettings, torch.device]:
    """What a factor pass over the training set reads (the whole fit, or a covariance or lambda shard): the model,
    the (poisoned) training set, the factor settings with the execution ones merged in, and the device."""
    net, _ = load_checkpoint(model)
    x, y = load_poisoned(poisoned)
    return net, TensorDataset01(x, y), FactorSettings.from_dict(execution.merged(settings)), execution.torch_device()


def fit_ekfac(
    *,
    model: str,
    poisoned: str,
    queries: str,
    factors: str,
    settings: dict[str, Any],
    seed: int,
    execution: Execution,
    eigen: str | None = None,
    lambda_shards: Sequence[str] = (),
) -> None:
    """Fit EK-FAC factors of ``model`` on the full (poisoned) training set into the directory ``factors`` (or, with
    ``influence.shards`` K > 1, sum the K lambda shards fitted on the eigenbasis ``eigen``), logging each stage's
    progress, its time and any covariance the eigendecomposition needed help with (``fit_report.json``).

    Nothing is fitted when the queries' status says there is nothing to score: ``factors`` then holds only
    ``SKIPPED.json``, which :func:`score_probes` accepts for exactly such queries.
    """
    from unpoison.influence import fit_factors
    from unpoison.influence.shards import aggregate_lambda

    if skip_fit(factors, read_status(queries), seed, settings):
        return
    if lambda_shards:
        aggregate_lambda(load_checkpoint(model)[0], eigen, list(lambda_shards), factors)
        return
    net, train, factor_settings, device = factor_pass_inputs(model, poisoned, settings, execution)
    fit_factors(net, train, factors, factor_settings, device, seed)


def select_controls(
    *,
    clean: str,
    model: str,
    queries: str,
    controls: str,
    n_controls: int,
    seed: int,
    execution: Execution,
) -> None:
    """Pick ``n_controls`` correctly classified test images by ``seed`` (its ``controls`` stream): of the first query's
    predicted class when ``queries`` holds one, else of any class; never reads ground truth."""
    net, _ = load_checkpoint(model)
    q = load_torch(queries)
    label = int(q["labels"][0]) if len(q.get("labels", [])) else None
    chosen = choose_controls(
        net, load_clean(clean), n_controls, seed, execution.torch_device(), execution.get("eval_batch_size", 512), label
    )
    save_torch(chosen, controls)
    save_meta(controls, count=n_controls, seed=seed, test_index=chosen["test_index"], label=label)


def write_empty_scores(
    outputs: dict[str, str], n_b: int, n_train: int, seed: int, settings: dict[str, Any], status: dict[str, str]
) -> None:
    """Score files with no query row, whose metadata carries the status that says why."""
    for probe, path in outputs.items():
        cols = 1 if probe == "base" else 1 + n_b
        payload = {"scores": torch.empty(0, cols, n_train), "labels": torch.empty(0, cols, dtype=torch.int64)}
        save_torch({**payload, **({"augmentations": []} if probe != "base" else {})}, path)
        save_meta(path, probe=probe, n_b=n_b, seed=seed, settings=settings, status=status)


def check_fitted(factors: str, queries: str) -> None:
    """Refuse factors that were skipped (nothing to score when they were fitted) for queries that now hold one."""
    if (Path(factors) / SKIPPED).exists():
        raise ValueError(
            f"{factors} holds no EK-FAC factors: they were skipped because the queries had nothing to score when "
            f"they were fitted ({load_json(Path(factors) / SKIPPED)}), but {queries} now holds a query. "
            f"Delete {factors} and re-run to fit them."
        )


def run_probe_sets(
    queries: str, controls: str | None, outputs: Sequence[str], num_classes: int, n_b: int, seed: int
) -> StackedProbes:
    """The probe sets the outputs ask for: each needed probe of the queries and, for ``controls_<probe>`` outputs,
    of the control queries (their transforms from their own ``probes/controls`` stream), stacked."""
    from unpoison.influence import build_probe_set
    from unpoison.influence.probe_scores import StackedProbes

    q = load_torch(queries)
    probes = tuple(p for p in outputs if p != "base" and not p.startswith("controls_"))
    control_probes = tuple(p.removeprefix("controls_") for p in outputs if p.startswith("controls_"))
    sets = {"": build_probe_set(q["x"], q["labels"], num_classes, n_b, seed, probes)}
    if control_probes:
        if controls is None:
            raise ValueError(f"outputs {sorted(outputs)} ask for control scores but no controls file was given")
        c = load_torch(controls)
        sets["controls_"] = build_probe_set(
            c["x"], c["labels"], num_classes, n_b, seed, control_probes, "probes/controls"
        )
    return StackedProbes.of(sets)


def score_probes(
    *,
    model: str,
    poisoned: str,
    queries: str,
    n_b: int,
    settings: dict[str, Any],
    seed: int,
    execution: Execution,
    factors: str | None = None,
    controls: str | None = None,
    parts: Sequence[str] = (),
    **outputs: str,
) -> None:
    """Score the base queries and the transformed queries of every requested probe in ONE pass over the training
    set (or, with ``parts``, gather the score shards of ``influence.shards`` K passes over its parts).

    ``outputs`` maps probe name (``base``, ``both``, ``label``, ``image``; ``controls_<probe>`` for the control
    queries of ``controls``) to its output file: ``scores`` (q, 1 + n_b, N) with the untransformed query in column
    0 (``base``: (q, 1, N)), the query ``labels`` per column and, for transformed probes, the augmentation names.
    """
    from unpoison.influence import ScoreSettings, score_queries
    from unpoison.influence.score_shards import gather_scores

    x, y = load_poisoned(poisoned)
    status = read_status(queries)
    if not status.ok:  # no affected point to score: empty score files that say why
        return write_empty_scores(outputs, n_b, len(y), seed, settings, status.to_dict())
    net, spec = load_checkpoint(model)
    stacked = run_probe_sets(queries, controls, list(outputs), spec["num_classes"], n_b, seed)
    if parts:
        scores = gather_scores(list(parts))
    else:
        check_fitted(factors, queries)
        scores = score_queries(
            net,
            factors,
            stacked.dataset(),
            TensorDataset01(x, y),
            ScoreSettings.from_dict(execution.merged(settings)),
            execution.torch_device(),
        )
    for name, path in outputs.items():
        save_torch(stacked.split(scores, name), path)
        save_meta(
            path,
            probe=name,
            n_b=n_b,
            seed=seed,
            settings=settings,
            n_queries_in_pass=len(stacked.labels),
            shards=max(1, len(parts)),
            status=status.to_dict(),
        )
