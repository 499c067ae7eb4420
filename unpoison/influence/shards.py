"""The EK-FAC fit as K shard jobs over disjoint parts of the training set, for a cluster to run in parallel.

Jobs and the directories they read and write (each one a plain directory, written atomically):

    fit_covariance_shard(i)   train           → cov_shard_i/      kronfluence's covariance partition i
    aggregate_covariance      cov_shard_0..K-1 → eigen/           summed covariances + eigendecomposition (once)
    fit_lambda_shard(i)       train, eigen/   → lambda_shard_i/   kronfluence's lambda partition i
    aggregate_lambda          eigen/, lambda_shard_0..K-1 → ekfac/  the factors, in fit_factors' format

The data partitions are kronfluence's own (``covariance_data_partitions`` / ``lambda_data_partitions`` with
``target_data_partitions``, aggregated by ``aggregate_covariance_matrices`` / ``aggregate_lambda_matrices``):
partition i of a stage is the i-th of K contiguous, near-equal ranges of the examples that stage uses (after
the seed's random order when a stage is capped, exactly as in the single job). Every shard derives the same
plan (caps, order, Fisher seed) from the training set, the settings and the seed, and resumes the true-Fisher
label stream where the single job would be at its first example (:mod:`unpoison.influence.fisher`), so each
example gets the same sampled label as in :func:`unpoison.influence.fit_factors`. The factors then differ from
the single job's only by float summation order (tests/test_influence_shards.py states the tolerance).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from kronfluence.analyzer import Analyzer
from kronfluence.utils.dataset import make_indices_partition
from torch import nn
from torch.utils.data import Dataset

from unpoison.influence.cost import resolve_caps
from unpoison.influence.eigen import EigenRecord
from unpoison.influence.factors import (
    FACTORS_NAME,
    REPORT,
    FitPlan,
    FitReport,
    eigendecompose,
    make_analyzer,
    plan_fit,
    publish,
    replace_dir,
)
from unpoison.influence.fisher import fisher_state, num_outputs
from unpoison.influence.progress import Log, Progress, print_log, stage
from unpoison.influence.settings import FactorSettings
from unpoison.io import load_json, save_json

SHARD = "shard.json"  # each shard directory's record: which part of which fit it holds
ARGS = "factor_arguments.json"  # kronfluence's saved FactorArguments


def check_shard(shard: int, shards: int) -> None:
    """Raise ValueError unless 0 ≤ shard < shards and shards ≥ 2 (one job is :func:`fit_factors` itself)."""
    if shards < 2:
        raise ValueError(
            f"influence.shards = {shards}: shard jobs need ≥ 2 shards; with 1, run fit_factors / score_queries"
        )
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is out of range for {shards} shards (0 … {shards - 1})")


def shard_range(examples: int, shard: int, shards: int) -> tuple[int, int]:
    """kronfluence's data partition ``shard`` of ``shards`` over ``examples`` examples: (start, stop)."""
    if examples < shards:
        raise ValueError(f"{shards} shards need at least {shards} examples in each stage, got {examples}")
    return make_indices_partition(total_data_examples=examples, partition_size=shards)[shard]


def fit_key(plan: FitPlan, n_train: int, seed: int, shards: int) -> dict[str, Any]:
    """What must agree between the shards of one fit (checked when they are aggregated)."""
    science = plan.settings.science()
    return {"n_train": n_train, "seed": seed, "shards": shards, "settings": science, "fisher_seed": plan.fisher_seed}


def _publish_shard(built: Path, out: Path, shard: int, record: dict, shard_dir: Path) -> None:
    """Move kronfluence's files of partition ``shard`` (and its arguments) with ``record`` into ``shard_dir``."""
    out.mkdir()
    for path in built.glob(f"*_data_partition{shard}_*"):
        shutil.move(str(path), out / path.name)
    for path in [built / ARGS, *built.glob("*_dataset_metadata.json")]:
        shutil.copy(path, out / path.name)
    save_json(record, out / SHARD)
    replace_dir(out, shard_dir)


def _factor_shard(
    model: nn.Module,
    train: Dataset,
    shard_dir: Path,
    settings: FactorSettings,
    device: torch.device,
    seed: int,
    shard: int,
    shards: int,
    stage_name: str,
    log: Log,
    eigen_dir: Path | None = None,
) -> None:
    """One covariance or lambda shard: kronfluence's partition ``shard`` of the stage into ``shard_dir``."""
    check_shard(shard, shards)
    resolved, _ = resolve_caps(model, train, settings, log, device, measure=False)
    plan = plan_fit(train, resolved, seed)
    examples = plan.n_covariance if stage_name == "covariance" else plan.n_lambda
    start, stop = shard_range(examples, shard, shards)
    args = resolved.arguments(shards)
    shard_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=shard_dir.parent, prefix=f".{shard_dir.name}.") as tmp:
        analyzer = make_analyzer(model, Path(tmp), device, resolved)
        built = analyzer.factors_output_dir(FACTORS_NAME)
        if eigen_dir is not None:
            link_eigendecomposition(eigen_dir, built)
        fit = analyzer.fit_covariance_matrices if stage_name == "covariance" else analyzer.fit_lambda_matrices
        seconds: dict[str, float] = {}
        with (
            torch.random.fork_rng(devices=[]),
            stage(
                stage_name, log, f"shard {shard + 1}/{shards}: examples {start:,}–{stop - 1:,} of {examples:,}", seconds
            ),
        ):
            analyzer.task.resume_state = fisher_state(  # type: ignore[attr-defined]
                plan.fisher_seed, stage_name, start, plan.n_covariance, num_outputs(model, train)
            )
            analyzer.task.meter = Progress(stage_name, stop - start, log)  # type: ignore[attr-defined]
            fit(
                factors_name=FACTORS_NAME,
                dataset=plan.dataset,
                per_device_batch_size=resolved.batch_size,
                factor_args=args,
                target_data_partitions=[shard],
                overwrite_output_dir=True,
            )
        record = {"stage": stage_name, "shard": shard, "start": start, "stop": stop, "seconds": seconds[stage_name]}
        _publish_shard(built, Path(tmp) / "out", shard, fit_key(plan, len(train), seed, shards) | record, shard_dir)


def fit_covariance_shard(
    model: nn.Module,
    train: Dataset,
    shard_dir: str | os.PathLike[str],
    settings: FactorSettings,
    device: torch.device,
    seed: int,
    shard: int,
    shards: int,
    log: Log = print_log,
) -> None:
    """The covariance pass over part ``shard`` of ``shards`` of ``train``, into the directory ``shard_dir``.

    Reads: the model and the training set. Writes: ``shard_dir`` with kronfluence's covariance partition
    files, its ``factor_arguments.json`` and ``shard.json`` (the part, the plan, the time).
    """
    _factor_shard(model, train, Path(shard_dir), settings, device, seed, shard, shards, "covariance", log)


def fit_lambda_shard(
    model: nn.Module,
    train: Dataset,
    eigen_dir: str | os.PathLike[str],
    shard_dir: str | os.PathLike[str],
    settings: FactorSettings,
    device: torch.device,
    seed: int,
    shard: int,
    shards: int,
    log: Log = print_log,
) -> None:
    """The lambda pass over part ``shard`` of ``shards`` of ``train``, with the eigenbasis of ``eigen_dir``.

    Reads: the model, the training set and ``eigen_dir`` (:func:`aggregate_covariance`'s output). Writes:
    ``shard_dir`` with kronfluence's lambda partition files, ``factor_arguments.json`` and ``shard.json``.
    """
    _factor_shard(model, train, Path(shard_dir), settings, device, seed, shard, shards, "lambda", log, Path(eigen_dir))


def link_eigendecomposition(eigen_dir: Path, factors_dir: Path) -> None:
    """Give a lambda shard's factors directory the eigendecomposition (symlinks) and the arguments (a copy:
    kronfluence rewrites it)."""
    eigen_dir = Path(eigen_dir).resolve()
    if not (eigen_dir / ARGS).is_file():
        raise FileNotFoundError(f"{eigen_dir} holds no aggregated covariance: run aggregate_covariance first")
    factors_dir.mkdir(parents=True, exist_ok=True)
    for path in eigen_dir.glob("*_eigen*.safetensors"):
        os.symlink(path, factors_dir / path.name)
    shutil.copy(eigen_dir / ARGS, factors_dir / ARGS)


def read_shards(shard_dirs: list[str | os.PathLike[str]], stage_name: str) -> list[dict[str, Any]]:
    """The shard records, checked: one per shard 0 … K-1, all of the same fit and stage.

    Raises:
        ValueError: naming the directory that does not belong, or the missing shards.
    """
    records = []
    for d in map(Path, shard_dirs):
        if not (d / SHARD).is_file():
            raise FileNotFoundError(f"{d} is not a finished {stage_name} shard (no {SHARD})")
        records.append(load_json(d / SHARD) | {"dir": str(d)})
    key = lambda r: {k: r[k] for k in ("n_train", "seed", "shards", "settings", "fisher_seed")}
    for r in records:
        if r["stage"] != stage_name or key(r) != key(records[0]):
            raise ValueError(
                f"{r['dir']} is not a {stage_name} shard of the same fit as {records[0]['dir']}: "
                f"{key(r) | {'stage': r['stage']}} vs {key(records[0])}; re-run the shards together"
            )
    found = sorted(r["shard"] for r in records)
    if found != list(range(records[0]["shards"])):
        raise ValueError(f"{stage_name} shards {found} given, expected each of 0 … {records[0]['shards'] - 1} once")
    return sorted(records, key=lambda r: r["shard"])


def _aggregate(
    model: nn.Module, shard_dirs: list, stage_name: str, device: torch.device, tmp: Path, base: Path | None = None
) -> tuple[Analyzer, list[dict[str, Any]]]:
    """An analyzer whose factors directory holds ``base``'s files (copied) and every shard's partition files
    (linked), after kronfluence's aggregation of them; the links are then removed."""
    records = read_shards(shard_dirs, stage_name)
    analyzer = make_analyzer(model, tmp, device, FactorSettings())
    built = analyzer.factors_output_dir(FACTORS_NAME)
    if base is not None:
        shutil.copytree(base, built)
    built.mkdir(parents=True, exist_ok=True)
    links = []
    for r in records:
        for path in Path(r["dir"]).resolve().glob("*_data_partition*.safetensors"):
            os.symlink(path, built / path.name)
            links.append(built / path.name)
    for path in Path(records[0]["dir"]).glob("*.json"):
        if path.name != SHARD:
            shutil.copy(path, built / path.name)
    aggregate = (
        analyzer.aggregate_covariance_matrices if stage_name == "covariance" else analyzer.aggregate_lambda_matrices
    )
    aggregate(factors_name=FACTORS_NAME)
    for link in links:
        link.unlink()
    return analyzer, records


def aggregate_covariance(
    model: nn.Module,
    shard_dirs: list[str | os.PathLike[str]],
    eigen_dir: str | os.PathLike[str],
    device: torch.device,
    log: Log = print_log,
) -> FitReport:
    """Sum the covariance shards (kronfluence's ``aggregate_covariance_matrices``) and eigen-decompose once.

    Reads: every covariance shard directory. Writes: ``eigen_dir`` with the summed covariances, their
    eigendecomposition (robust, as in :func:`fit_factors`), ``factor_arguments.json`` and ``fit_report.json``.
    """
    eigen_dir = Path(eigen_dir)
    eigen_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=eigen_dir.parent, prefix=f".{eigen_dir.name}.") as tmp:
        analyzer, records = _aggregate(model, shard_dirs, "covariance", device, Path(tmp))
        first = records[0]
        report = FitReport(first["settings"], 0, 0, shards=first["shards"])
        report.n_covariance = records[-1]["stop"]
        report.seconds["covariance"] = sum(r["seconds"] for r in records)
        args = FactorSettings(**first["settings"]).arguments(first["shards"])  # kronfluence's JSON holds dtype names
        with stage("eigendecomposition", log, "", report.seconds):
            report.eigen = eigendecompose(analyzer, args, log)
        for line in report.helped():
            log(f"eigendecomposition needed help: {line}")
        publish(analyzer.factors_output_dir(FACTORS_NAME), eigen_dir, report)
    return report


def aggregate_lambda(
    model: nn.Module,
    eigen_dir: str | os.PathLike[str],
    shard_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    log: Log = print_log,
) -> FitReport:
    """Sum the lambda shards (kronfluence's ``aggregate_lambda_matrices``) into the final factors directory.

    Reads: ``eigen_dir`` and every lambda shard directory. Writes: ``out_dir`` in :func:`fit_factors`' format
    (kronfluence's factor files and ``fit_report.json``), which :func:`score_queries` and the score shards read.
    """
    start = time.perf_counter()
    out_dir, eigen_dir = Path(out_dir), Path(eigen_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        analyzer, records = _aggregate(model, shard_dirs, "lambda", torch.device("cpu"), Path(tmp), base=eigen_dir)
        built = analyzer.factors_output_dir(FACTORS_NAME)
        saved = load_json(built / REPORT)
        (built / REPORT).unlink()
        report = FitReport(saved["settings"], saved["n_covariance"], records[-1]["stop"], shards=saved["shards"])
        report.seconds = saved["seconds"] | {"lambda": sum(r["seconds"] for r in records)}
        report.eigen = saved_records(saved)
        log(f"lambda: {len(records)} shards aggregated in {time.perf_counter() - start:.1f} s")
        publish(built, out_dir, report)
    return report


def saved_records(saved: dict[str, Any]) -> dict[str, dict[str, EigenRecord]]:
    """The eigendecomposition records of a saved ``fit_report.json``, as :class:`EigenRecord` objects."""
    modules = saved["eigendecomposition"]["modules"]
    return {
        m: {f: EigenRecord(**{k: v for k, v in r.items() if k != "helped"}) for f, r in fr.items()}
        for m, fr in modules.items()
    }
