"""Fit EK-FAC factors once per trained model and score many queries in one pass over the training set.

kronfluence facts this module relies on (verified on kronfluence 1.0.1, torch 2.14.1):
  * outputs live in ``{output_dir}/{analysis_name}/factors_{name}`` and ``.../scores_{name}``; a stage
    whose files exist is SKIPPED whatever its arguments, so we always pass ``overwrite_output_dir=True``
    and leave staleness to Snakemake;
  * ``compute_pairwise_scores`` returns None when it computes: read ``load_pairwise_scores(name)``;
  * without an explicit batch size it searches from 4096 down, which is slow on CPU: we always pass one;
  * query gradients for ``query_batch_size`` queries are accumulated
    (``query_gradient_accumulation_steps``) so ALL queries are scored in a single pass over the training
    set; memory grows with (#queries × #parameters), see ``query_gradient_low_rank``;
  * ``covariance_max_examples`` / ``lambda_max_examples`` make a stage use the FIRST n examples of the
    dataset (``FactorComputer`` partitions ``range(n)``), not a random sample. Datasets are often sorted by
    class (the CIFAR-10 subset is), so with a cap we hand kronfluence the training set in a random order
    drawn from the fit's own seed stream (``factors``): each capped stage sees a uniform random subset,
    and an uncapped stage still sums over every example. Without a cap the order is left alone.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from kronfluence.analyzer import Analyzer, prepare_model
from kronfluence.arguments import FactorArguments, ScoreArguments
from kronfluence.utils.dataset import DataLoaderKwargs
from torch import nn
from torch.utils.data import Dataset, Subset

from unpoison.device import AmpName, autocast_dtype
from unpoison.influence.task import ClassificationTask
from unpoison.io import apply_umask
from unpoison.params import require
from unpoison.registry import ConfigSettings
from unpoison.seeding import stage_rng

FACTORS_NAME = "ekfac"
_ANALYSIS = "analysis"


@dataclass
class FactorSettings(ConfigSettings):
    """EK-FAC fitting knobs (kronfluence ``FactorArguments``), CPU-safe defaults (config: influence.factors)."""

    config_key: ClassVar[str] = "influence.factors"
    execution_fields: ClassVar[tuple[str, ...]] = ("batch_size", "num_workers", "pin_memory")

    batch_size: int = 128  # per-device batch for the covariance and lambda stages (sums: no effect on results)
    amp: AmpName = "none"  # none | bf16 | fp16 autocast (GPU)
    # Subsample the covariance / lambda (eigenvalue-correction) stage to a uniform random subset of this
    # many training points, drawn by the seed (None = all). kronfluence alone would take the first n.
    covariance_max_examples: int | None = None
    lambda_max_examples: int | None = None
    num_workers: int = 0  # DataLoader workers (data are in-memory tensors: 0 is usually fastest)
    pin_memory: bool = False

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "≥ 1")
        for name in ("covariance_max_examples", "lambda_max_examples"):
            value = getattr(self, name)
            require(value is None or value >= 1, name, value, "null (all training points) or ≥ 1")
        require(self.num_workers >= 0, "num_workers", self.num_workers, "≥ 0")

    def arguments(self) -> FactorArguments:
        return FactorArguments(
            strategy="ekfac",
            amp_dtype=autocast_dtype(self.amp),
            covariance_max_examples=self.covariance_max_examples,
            lambda_max_examples=self.lambda_max_examples,
        )


@dataclass
class ScoreSettings(ConfigSettings):
    """Pairwise-scoring knobs (kronfluence ``ScoreArguments``), CPU-safe defaults (config: influence.scores)."""

    config_key: ClassVar[str] = "influence.scores"
    execution_fields: ClassVar[tuple[str, ...]] = ("train_batch_size", "query_batch_size", "num_workers", "pin_memory")

    train_batch_size: int = 128  # per-device training batch while scoring
    query_batch_size: int = 64  # queries whose gradients are computed together; ALL are scored in one pass
    amp: AmpName = "none"  # none | bf16 | fp16 autocast (GPU)
    query_gradient_low_rank: int | None = None  # low-rank query gradients (saves memory), None = exact
    damping_factor: float | None = 1e-8  # kronfluence's default; None = 0.1 × mean eigenvalue (heuristic)
    num_workers: int = 0
    pin_memory: bool = False

    def __post_init__(self) -> None:
        require(self.train_batch_size >= 1, "train_batch_size", self.train_batch_size, "≥ 1")
        require(self.query_batch_size >= 1, "query_batch_size", self.query_batch_size, "≥ 1")
        rank = self.query_gradient_low_rank
        require(rank is None or rank >= 1, "query_gradient_low_rank", rank, "null (exact) or ≥ 1")
        damping = self.damping_factor
        require(damping is None or damping >= 0, "damping_factor", damping, "null (heuristic) or ≥ 0")
        require(self.num_workers >= 0, "num_workers", self.num_workers, "≥ 0")

    def arguments(self, n_queries: int) -> ScoreArguments:
        steps = max(1, math.ceil(n_queries / self.query_batch_size))
        return ScoreArguments(
            damping_factor=self.damping_factor,
            amp_dtype=autocast_dtype(self.amp),
            query_gradient_low_rank=self.query_gradient_low_rank,
            query_gradient_accumulation_steps=steps,
        )


def _analyzer(
    model: nn.Module, root: Path, device: torch.device, settings: FactorSettings | ScoreSettings
) -> Analyzer:
    logging.getLogger("kronfluence").setLevel(logging.WARNING)
    task = ClassificationTask()
    prepared = prepare_model(copy.deepcopy(model).eval(), task)
    analyzer = Analyzer(
        analysis_name=_ANALYSIS,
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


def fit_factors(
    model: nn.Module,
    train: Dataset,
    out_dir: str | os.PathLike[str],
    settings: FactorSettings,
    device: torch.device,
    seed: int = 0,
) -> None:
    """Fit EK-FAC factors (covariances, eigendecomposition, eigenvalue corrections) on ``train``.

    The true-Fisher labels are sampled from the model and, when ``settings`` caps a stage, the subsample is
    a uniform random one (see :func:`subsample_order`); both draw from the run's ``factors`` stream of
    ``seed``. The factors land in ``out_dir`` (a directory), moved there only once complete; a temporary
    directory beside it (``.ekfac.*``) is removed whatever happens.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rng = stage_rng(seed, "factors")
    fisher_seed = int(rng.integers(2**63))
    order = subsample_order(len(train), settings, rng)
    dataset = train if order is None else Subset(train, order.tolist())
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".ekfac.") as tmp:
        analyzer = _analyzer(model, Path(tmp), device, settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(fisher_seed)
            analyzer.fit_all_factors(
                factors_name=FACTORS_NAME,
                dataset=dataset,
                per_device_batch_size=settings.batch_size,
                factor_args=settings.arguments(),
                overwrite_output_dir=True,
            )
        built = analyzer.factors_output_dir(FACTORS_NAME)
        apply_umask(built)  # safetensors writes 0600 files: make them readable like any other artifact
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(built, out_dir)


def score_queries(
    model: nn.Module,
    factors_dir: str | os.PathLike[str],
    queries: Dataset,
    train: Dataset,
    settings: ScoreSettings,
    device: torch.device,
) -> torch.Tensor:
    """Pairwise EK-FAC influence of every training point on every query, in ONE pass over ``train``.

    Returns:
        float32 CPU tensor of shape (len(queries), len(train)); positive = the training point supports
        the query's label.

    Raises:
        FloatingPointError: if any score is NaN or infinite.
    """
    factors_dir = Path(factors_dir).resolve()
    if not factors_dir.is_dir():
        raise FileNotFoundError(f"EK-FAC factors not found at {factors_dir}: run the fit_ekfac rule first")
    with tempfile.TemporaryDirectory(prefix="unpoison-scores.") as tmp:
        analyzer = _analyzer(model, Path(tmp), device, settings)
        os.symlink(factors_dir, analyzer.factors_output_dir(FACTORS_NAME), target_is_directory=True)
        n_queries = len(queries)
        analyzer.compute_pairwise_scores(
            scores_name="pairwise",
            factors_name=FACTORS_NAME,
            query_dataset=queries,
            train_dataset=train,
            per_device_query_batch_size=min(settings.query_batch_size, n_queries),
            per_device_train_batch_size=settings.train_batch_size,
            score_args=settings.arguments(n_queries),
            overwrite_output_dir=True,
        )
        scores = analyzer.load_pairwise_scores("pairwise")["all_modules"].float().cpu().clone()
    if scores.shape != (len(queries), len(train)):
        raise RuntimeError(f"kronfluence returned scores of shape {tuple(scores.shape)}, expected {(len(queries), len(train))}")
    bad = ~torch.isfinite(scores)
    if bad.any():
        raise FloatingPointError(
            f"{int(bad.sum())} influence scores are NaN/inf (of {scores.numel()}): check the model checkpoint "
            "for NaN weights, or raise influence.damping_factor / disable influence.amp"
        )
    return scores
