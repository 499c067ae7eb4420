"""Score many queries in one pass over the training set with fitted EK-FAC factors.

kronfluence facts this module relies on (verified on kronfluence 1.0.1, torch 2.14.1):
  * ``compute_pairwise_scores`` returns None when it computes: read ``load_pairwise_scores(name)``;
  * query gradients for ``query_batch_size`` queries are accumulated (``query_gradient_accumulation_steps``)
    so ALL queries are scored in a single pass over the training set; memory grows with
    (#queries × #parameters), see ``query_gradient_low_rank``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from kronfluence.analyzer import Analyzer
from torch import nn
from torch.utils.data import Dataset

from unpoison.influence.factors import FACTORS_NAME, make_analyzer
from unpoison.influence.progress import Log, Progress, print_log, stage
from unpoison.influence.settings import ScoreSettings

SCORES_NAME = "pairwise"


def check_factors_dir(factors_dir: str | os.PathLike[str]) -> Path:
    """The resolved factors directory, or FileNotFoundError naming the rule that makes it."""
    path = Path(factors_dir).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"EK-FAC factors not found at {path}: run the fit_ekfac rule first")
    return path


def link_factors(analyzer: Analyzer, factors_dir: Path) -> None:
    """Make ``factors_dir`` the analyzer's factors (a symlink: nothing is copied or written into it)."""
    os.symlink(factors_dir, analyzer.factors_output_dir(FACTORS_NAME), target_is_directory=True)


def check_scores(scores: torch.Tensor, n_queries: int, n_train: int) -> torch.Tensor:
    """``scores`` if it has shape (n_queries, n_train) and only finite values.

    Raises:
        RuntimeError: wrong shape; FloatingPointError: NaN or infinite scores (never flag silently).
    """
    if scores.shape != (n_queries, n_train):
        raise RuntimeError(
            f"kronfluence returned scores of shape {tuple(scores.shape)}, expected {(n_queries, n_train)}"
        )
    bad = ~torch.isfinite(scores)
    if bad.any():
        raise FloatingPointError(
            f"{int(bad.sum())} influence scores are NaN/inf (of {scores.numel()}): check the model checkpoint "
            "for NaN weights, or raise influence.damping_factor / disable influence.amp"
        )
    return scores


def score_queries(
    model: nn.Module,
    factors_dir: str | os.PathLike[str],
    queries: Dataset,
    train: Dataset,
    settings: ScoreSettings,
    device: torch.device,
    log: Log = print_log,
) -> torch.Tensor:
    """Pairwise EK-FAC influence of every training point on every query, in ONE pass over ``train``.

    Returns:
        float32 CPU tensor of shape (len(queries), len(train)); positive = the training point supports
        the query's label.

    Raises:
        FileNotFoundError: no factors directory; FloatingPointError: NaN/inf scores;
        InfluenceStageError: the pass failed (the message says what to try).
    """
    factors_dir = check_factors_dir(factors_dir)
    n_queries = len(queries)
    with tempfile.TemporaryDirectory(prefix="unpoison-scores.") as tmp:
        analyzer = make_analyzer(model, Path(tmp), device, settings)
        link_factors(analyzer, factors_dir)
        with stage("scores", log, f"{n_queries:,} queries × {len(train):,} training examples"):
            analyzer.task.meter = Progress("scores", len(train), log)  # type: ignore[attr-defined]
            analyzer.compute_pairwise_scores(
                scores_name=SCORES_NAME,
                factors_name=FACTORS_NAME,
                query_dataset=queries,
                train_dataset=train,
                per_device_query_batch_size=min(settings.query_batch_size, n_queries),
                per_device_train_batch_size=settings.train_batch_size,
                score_args=settings.arguments(n_queries),
                overwrite_output_dir=True,
            )
            scores = analyzer.load_pairwise_scores(SCORES_NAME)["all_modules"].float().cpu().clone()
    return check_scores(scores, n_queries, len(train))
