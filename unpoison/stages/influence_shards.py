"""Steps of rules/influence_shards.smk: with ``influence.shards`` K > 1, the covariance, lambda and score passes of
a model run as K jobs over disjoint parts of the training set (kronfluence's data partitions), with one
aggregation after the covariance shards (the eigendecomposition, once). ``fit_ekfac`` then sums the lambda shards
and ``score_probes`` gathers the score parts (rules/influence.smk), so detectors see the same artifacts as with one
job. Each step skips its work when the queries' status says there is nothing to score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unpoison.artifacts import load_poisoned
from unpoison.data import TensorDataset01
from unpoison.execution import Execution
from unpoison.influence import ScoreSettings
from unpoison.influence.score_shards import score_shard as score_part
from unpoison.influence.shards import aggregate_covariance as aggregate
from unpoison.influence.shards import fit_covariance_shard as covariance_part
from unpoison.influence.shards import fit_lambda_shard as lambda_part
from unpoison.io import save_torch
from unpoison.models import load_checkpoint
from unpoison.stages.influence import check_fitted, factor_pass_inputs, run_probe_sets, skip_fit
from unpoison.status import read_status


def fit_covariance_shard(
    *,
    model: str,
    poisoned: str,
    queries: str,
    shard_dir: str,
    settings: dict[str, Any],
    seed: int,
    shard: int,
    shards: int,
    execution: Execution,
) -> None:
    """The covariance pass over part ``shard`` of ``shards`` of the training set, into ``shard_dir``."""
    if skip_fit(shard_dir, read_status(queries), seed, settings):
        return
    net, train, factor_settings, device = factor_pass_inputs(model, poisoned, settings, execution)
    covariance_part(net, train, shard_dir, factor_settings, device, seed, shard, shards)


def aggregate_covariance(
    *,
    model: str,
    queries: str,
    covariance_shards: Sequence[str],
    eigen: str,
    settings: dict[str, Any],
    seed: int,
    execution: Execution,
) -> None:
    """Sum the covariance shards and eigen-decompose them once (robustly), into ``eigen``."""
    if skip_fit(eigen, read_status(queries), seed, settings):
        return
    net, _ = load_checkpoint(model)
    aggregate(net, list(covariance_shards), eigen, execution.torch_device())


def fit_lambda_shard(
    *,
    model: str,
    poisoned: str,
    queries: str,
    eigen: str,
    shard_dir: str,
    settings: dict[str, Any],
    seed: int,
    shard: int,
    shards: int,
    execution: Execution,
) -> None:
    """The lambda (eigenvalue-correction) pass over part ``shard`` of the training set, in the eigenbasis ``eigen``."""
    if skip_fit(shard_dir, read_status(queries), seed, settings):
        return
    net, train, factor_settings, device = factor_pass_inputs(model, poisoned, settings, execution)
    lambda_part(net, train, eigen, shard_dir, factor_settings, device, seed, shard, shards)


def score_shard(
    *,
    model: str,
    poisoned: str,
    queries: str,
    factors: str,
    n_b: int,
    settings: dict[str, Any],
    seed: int,
    shard: int,
    shards: int,
    probes: list[str],
    execution: Execution,
    part: str,
    controls: str | None = None,
) -> None:
    """Every query of every needed probe (``probes``: the score files ``score_probes`` writes) against part
    ``shard`` of ``shards`` of the training set, in one pass over that part; an empty part file when the queries'
    status says there is nothing to score."""
    if not read_status(queries).ok:
        save_torch({"skipped": True}, part)
        return
    check_fitted(factors, queries)
    net, spec = load_checkpoint(model)
    x, y = load_poisoned(poisoned)
    stacked = run_probe_sets(queries, controls, probes, spec["num_classes"], n_b, seed)
    score_part(
        net,
        factors,
        stacked.dataset(),
        TensorDataset01(x, y),
        ScoreSettings.from_dict(execution.merged(settings)),
        execution.torch_device(),
        shard,
        shards,
        part,
    )
