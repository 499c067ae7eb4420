"""Fit EK-FAC factors once per trained model through kronfluence's public stages, robustly and with progress.

kronfluence facts this module relies on (verified on kronfluence 1.0.1, torch 2.14.1):
  * outputs live in ``{output_dir}/{analysis_name}/factors_{name}``; a stage whose files exist is SKIPPED
    whatever its arguments, so we always pass ``overwrite_output_dir=True`` and leave staleness to Snakemake;
  * without an explicit batch size it searches from 4096 down, which is slow on CPU: we always pass one;
  * ``covariance_max_examples`` / ``lambda_max_examples`` make a stage use the FIRST n examples of the
    dataset (``FactorComputer`` partitions ``range(n)``), not a random sample. Datasets are often sorted by
    class (the CIFAR-10 subset is), so with a cap we hand kronfluence the training set in a random order
    drawn from the fit's own seed stream (``factors``): each capped stage sees a uniform random subset,
    and an uncapped stage still sums over every example. Without a cap the order is left alone.

The stages run as ``fit_covariance_matrices`` → eigendecomposition → ``fit_lambda_matrices``; the
eigendecomposition is :func:`unpoison.influence.eigen.decompose_covariances` (kronfluence's per-matrix steps,
plus a retry for matrices ``eigh`` cannot decompose) saved with kronfluence's ``save_eigendecomposition``.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kronfluence.analyzer import Analyzer, prepare_model
from kronfluence.arguments import FactorArguments
from kronfluence.factor.eigen import save_eigendecomposition
from kronfluence.module.utils import get_tracked_module_names
from kronfluence.utils.dataset import DataLoaderKwargs
from torch import nn
from torch.utils.data import Dataset, Subset

from unpoison.influence.eigen import EigenRecord, decompose_covariances, describe, records_to_json
from unpoison.influence.progress import Log, Progress, print_log, stage
from unpoison.influence.settings import FactorSettings, ScoreSettings
from unpoison.influence.task import ClassificationTask
from unpoison.io import apply_umask, save_json
from unpoison.seeding import stage_rng

FACTORS_NAME = "ekfac"
ANALYSIS = "analysis"
REPORT = "fit_report.json"  # our record beside kronfluence's files: caps, times, what each eigendecomposition took


def make_analyzer(
    model: nn.Module, root: Path, device: torch.device, settings: FactorSettings | ScoreSettings
) -> Analyzer:
    """A kronfluence Analyzer on a prepared deep copy of ``model`` (in eval mode), writing under ``root``."""
    logging.getLogger("kronfluence").setLevel(logging.WARNING)
    # kronfluence 1.0.1 calls the deprecated torch.cuda.amp.GradScaler at every stage; harmless, and noise in logs
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler", category=FutureWarning)
    task = ClassificationTask()
    prepared = prepare_model(copy.deepcopy(model).eval(), task)
    analyzer = Analyzer(
        analysis_name=ANALYSIS,
        model=prepared,
        task=task,
        cpu=device.type == "cpu",
        disable_tqdm=True,
        output_dir=str(root),
    )
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=settings.num_workers, pin_memory=settings.pin_memory))
    return analyzer


def subsample_order(n: int, settings: FactorSettings, rng: np.random.Generator) -> np.ndarray | None:
    """The order to hand kronfluence the ``n`` training points in: a random permutation when a cap of
    ``settings`` subsamples a stage (kronfluence takes the first examples), else None (keep the order)."""
    caps = [c for c in (settings.covariance_max_examples, settings.lambda_max_examples) if c is not None]
    if not caps or min(caps) >= n:
        return None
    return rng.permutation(n)


def stage_examples(n: int, cap: int | None) -> int:
    """How many examples a stage with cap ``cap`` (None = all) uses out of ``n``."""
    return n if cap is None else min(cap, n)


@dataclass
class FitPlan:
    """Everything a fit (or each shard of it) derives from the training set, the settings and the seed.

    Attributes:
        settings: with the caps resolved (no ``auto``); fisher_seed: seeds torch's CPU generator before the
        covariance stage (the true-Fisher labels); dataset: the training set, in a random order drawn by the
        seed when a stage is capped; n_covariance / n_lambda: the examples each stage uses (the first ones).
    """

    settings: FactorSettings
    fisher_seed: int
    dataset: Dataset
    n_covariance: int
    n_lambda: int


def plan_fit(train: Dataset, settings: FactorSettings, seed: int) -> FitPlan:
    """The fit's plan: Fisher-label seed and subsample order, both from the run's ``factors`` stream of ``seed``.

    Raises:
        ValueError: ``settings`` still holds an ``auto`` cap (resolve it with
            :func:`unpoison.influence.cost.resolve_caps`).
    """
    if settings.has_auto:
        raise ValueError("resolve the 'auto' caps (unpoison.influence.cost.resolve_caps) before planning the fit")
    rng = stage_rng(seed, "factors")
    fisher_seed = int(rng.integers(2**63))
    order = subsample_order(len(train), settings, rng)
    dataset = train if order is None else Subset(train, order.tolist())
    n = len(train)
    return FitPlan(
        settings,
        fisher_seed,
        dataset,
        stage_examples(n, settings.covariance_max_examples),
        stage_examples(n, settings.lambda_max_examples),
    )


@dataclass
class FitReport:
    """What a fit did: resolved settings, examples per stage, wall time per stage, and per module what each
    eigendecomposition took (see :class:`unpoison.influence.eigen.EigenRecord`)."""

    settings: dict[str, Any]
    n_covariance: int
    n_lambda: int
    seconds: dict[str, float] = field(default_factory=dict)
    eigen: dict[str, dict[str, EigenRecord]] = field(default_factory=dict)
    shards: int = 1
    cost: dict[str, Any] | None = None

    def helped(self) -> list[str]:
        """One line per covariance matrix that plain ``eigh`` could not decompose, and what did."""
        return [
            f"{module} {factor} covariance ({r.size}×{r.size}): {describe(r)}"
            for module, factors in self.eigen.items()
            for factor, r in factors.items()
            if r.helped
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "n_covariance": self.n_covariance,
            "n_lambda": self.n_lambda,
            "seconds": self.seconds,
            "shards": self.shards,
            "cost": self.cost,
            "eigendecomposition": records_to_json(self.eigen),
        }


def eigendecompose(analyzer: Analyzer, factor_args: FactorArguments, log: Log) -> dict[str, dict[str, EigenRecord]]:
    """The eigendecomposition stage on the covariances in ``analyzer``'s factors directory, saved beside them."""
    covariances = analyzer.load_covariance_matrices(FACTORS_NAME)
    if covariances is None:
        raise FileNotFoundError(f"no covariance matrices in {analyzer.factors_output_dir(FACTORS_NAME)}")
    modules = get_tracked_module_names(analyzer.model)
    eigen, records = decompose_covariances(
        covariances, modules, analyzer.state.device, factor_args.eigendecomposition_dtype, log
    )
    save_eigendecomposition(
        output_dir=analyzer.factors_output_dir(FACTORS_NAME), factors=eigen, metadata=factor_args.to_str_dict()
    )
    return records


def fit_stages(analyzer: Analyzer, plan: FitPlan, log: Log, report: FitReport) -> None:
    """Covariance → eigendecomposition → lambda, each logged, timed and failing as :class:`InfluenceStageError`."""
    args, batch = plan.settings.arguments(), plan.settings.batch_size
    task: ClassificationTask = analyzer.task  # type: ignore[assignment]
    common = {
        "factors_name": FACTORS_NAME,
        "dataset": plan.dataset,
        "per_device_batch_size": batch,
        "factor_args": args,
        "overwrite_output_dir": True,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.fisher_seed)
        with stage("covariance", log, f"{plan.n_covariance:,} examples", report.seconds):
            task.meter = Progress("covariance", plan.n_covariance, log)
            analyzer.fit_covariance_matrices(**common)
        with stage("eigendecomposition", log, "", report.seconds):
            report.eigen = eigendecompose(analyzer, args, log)
        with stage("lambda", log, f"{plan.n_lambda:,} examples", report.seconds):
            task.meter = Progress("lambda", plan.n_lambda, log)
            analyzer.fit_lambda_matrices(**common)
    task.meter = None


def replace_dir(built: Path, out_dir: Path) -> None:
    """Make ``built`` readable like any other artifact (safetensors writes 0600 files) and move it onto ``out_dir``."""
    apply_umask(built)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(built, out_dir)


def publish(built: Path, out_dir: Path, report: FitReport) -> None:
    """Write the report beside the factors and move the directory onto ``out_dir``."""
    save_json(report.to_json(), built / REPORT)
    replace_dir(built, out_dir)


def fit_factors(
    model: nn.Module,
    train: Dataset,
    out_dir: str | os.PathLike[str],
    settings: FactorSettings,
    device: torch.device,
    seed: int = 0,
    log: Log = print_log,
) -> FitReport:
    """Fit EK-FAC factors (covariances, eigendecomposition, eigenvalue corrections) on ``train``.

    The one fitting function of the pipeline's ``fit_ekfac`` job and of the audit. The true-Fisher labels
    are sampled from the model and, when ``settings`` caps a stage, the subsample is a uniform random one
    (see :func:`subsample_order`); both draw from the run's ``factors`` stream of ``seed``. ``auto`` caps
    are resolved from the estimated cost (:func:`unpoison.influence.cost.resolve_caps`). The factors land
    in ``out_dir`` (a directory) with ``fit_report.json``, moved there only once complete; a temporary
    directory beside it (``.ekfac.*``) is removed whatever happens.

    Returns:
        the :class:`FitReport` also written to ``out_dir/fit_report.json``.

    Raises:
        InfluenceStageError: a stage failed; the message names it, the module when known, and what to try.
    """
    from unpoison.influence.cost import resolve_caps  # cost imports this module

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    settings, cost = resolve_caps(model, train, settings, log, device)
    plan = plan_fit(train, settings, seed)
    report = FitReport(settings.to_dict(), plan.n_covariance, plan.n_lambda, cost=cost)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".ekfac.") as tmp:
        analyzer = make_analyzer(model, Path(tmp), device, settings)
        fit_stages(analyzer, plan, log, report)
        report.seconds["total"] = time.perf_counter() - start
        for line in report.helped():
            log(f"eigendecomposition needed help: {line}")
        publish(analyzer.factors_output_dir(FACTORS_NAME), out_dir, report)
    return report
