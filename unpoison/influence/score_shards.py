"""The score pass as K shard jobs over disjoint parts of the training set, and the gather of their parts.

    score_shard(i)   factors/, queries, train → part_i.pt   scores of every query on training part i
    gather_scores    part_0.pt … part_K-1.pt → (q, N)        the tensor :func:`score_queries` returns

Part i is kronfluence's data partition i of the score pass (``ScoreArguments.data_partitions`` with
``target_data_partitions``): the i-th of K contiguous, near-equal ranges of the training set in its order.
Each shard computes the query gradients itself (cheap next to the pass over its training part).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from kronfluence.score.pairwise import load_pairwise_scores
from torch import nn
from torch.utils.data import Dataset

from unpoison.influence.factors import FACTORS_NAME, make_analyzer
from unpoison.influence.progress import Log, Progress, print_log, stage
from unpoison.influence.scores import SCORES_NAME, check_factors_dir, check_scores, link_factors
from unpoison.influence.settings import ScoreSettings
from unpoison.influence.shards import check_shard, shard_range
from unpoison.io import load_torch, save_torch


def score_shard(
    model: nn.Module,
    factors_dir: str | os.PathLike[str],
    queries: Dataset,
    train: Dataset,
    settings: ScoreSettings,
    device: torch.device,
    shard: int,
    shards: int,
    out_path: str | os.PathLike[str],
    log: Log = print_log,
) -> None:
    """Score every query against part ``shard`` of ``shards`` of ``train`` (ONE pass over that part).

    Reads: the model, ``factors_dir`` (from :func:`fit_factors` or :func:`aggregate_lambda`), the queries and
    the training set. Writes: ``out_path``, a torch file ``{"scores": float32 (q, stop - start), "start",
    "stop", "shard", "shards", "n_train", "n_queries"}``.
    """
    check_shard(shard, shards)
    factors_dir = check_factors_dir(factors_dir)
    start, stop = shard_range(len(train), shard, shards)
    n_queries = len(queries)
    with tempfile.TemporaryDirectory(prefix="unpoison-scores.") as tmp:
        analyzer = make_analyzer(model, Path(tmp), device, settings)
        link_factors(analyzer, factors_dir)
        with stage(
            "scores",
            log,
            f"shard {shard + 1}/{shards}: training examples {start:,}–{stop - 1:,} of "
            f"{len(train):,}, {n_queries:,} queries",
        ):
            analyzer.task.meter = Progress("scores", stop - start, log)  # type: ignore[attr-defined]
            analyzer.compute_pairwise_scores(
                scores_name=SCORES_NAME,
                factors_name=FACTORS_NAME,
                query_dataset=queries,
                train_dataset=train,
                per_device_query_batch_size=min(settings.query_batch_size, n_queries),
                per_device_train_batch_size=settings.train_batch_size,
                score_args=settings.arguments(n_queries, shards),
                target_data_partitions=[shard],
                overwrite_output_dir=True,
            )
            part = load_pairwise_scores(analyzer.scores_output_dir(SCORES_NAME), partition=(shard, 0))
            scores = part["all_modules"].float().cpu().clone()
    scores = check_scores(scores, n_queries, stop - start)
    save_torch(
        {
            "scores": scores,
            "start": start,
            "stop": stop,
            "shard": shard,
            "shards": shards,
            "n_train": len(train),
            "n_queries": n_queries,
        },
        out_path,
    )


def gather_scores(paths: list[str | os.PathLike[str]]) -> torch.Tensor:
    """The (q, N) scores of all training points from the parts written by :func:`score_shard`.

    Raises:
        ValueError: parts of different passes, a missing or repeated shard, or ranges that do not tile 0 … N.
    """
    parts = sorted((load_torch(p) | {"path": str(p)} for p in paths), key=lambda part: part["shard"])
    if not parts:
        raise ValueError("gather_scores: no score parts given")
    first = parts[0]
    expected = list(range(first["shards"]))
    if [p["shard"] for p in parts] != expected:
        raise ValueError(f"score parts of shards {[p['shard'] for p in parts]} given, expected each of {expected} once")
    stop = 0
    for p in parts:
        same = (p["shards"], p["n_train"], p["n_queries"]) == (first["shards"], first["n_train"], first["n_queries"])
        if not same or p["start"] != stop:
            raise ValueError(
                f"{p['path']} does not continue the scores of {first['path']} (shards, training set "
                "size, queries or range differ): re-run the score shards together"
            )
        stop = p["stop"]
    if stop != first["n_train"]:
        raise ValueError(f"the score parts cover training examples 0 … {stop - 1}, not all {first['n_train']}")
    return torch.cat([p["scores"] for p in parts], dim=1)
