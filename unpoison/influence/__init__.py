"""EK-FAC influence through kronfluence: the Task, factor fitting (one job or K shard jobs), batched query scoring,
cost estimates and probe transforms.

Names are imported from their modules on first use (PEP 562): the workflow reads only the settings classes when it
parses the config, and importing kronfluence and torchvision there would cost every Snakemake invocation ~1.6 s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "CostEstimate": "cost",
    "estimate_cost": "cost",
    "resolve_caps": "cost",
    "InfluenceStageError": "errors",
    "FitReport": "factors",
    "fit_factors": "factors",
    "PROBES": "probes",
    "ProbeSet": "probes",
    "build_probe_set": "probes",
    "gather_scores": "score_shards",
    "score_shard": "score_shards",
    "score_queries": "scores",
    "FactorSettings": "settings",
    "ScoreSettings": "settings",
    "aggregate_covariance": "shards",
    "aggregate_lambda": "shards",
    "fit_covariance_shard": "shards",
    "fit_lambda_shard": "shards",
    "ClassificationTask": "task",
}

__all__ = [
    "ClassificationTask",
    "CostEstimate",
    "FactorSettings",
    "FitReport",
    "InfluenceStageError",
    "PROBES",
    "ProbeSet",
    "ScoreSettings",
    "aggregate_covariance",
    "aggregate_lambda",
    "build_probe_set",
    "estimate_cost",
    "fit_covariance_shard",
    "fit_factors",
    "fit_lambda_shard",
    "gather_scores",
    "resolve_caps",
    "score_queries",
    "score_shard",
]

if TYPE_CHECKING:
    from unpoison.influence.cost import CostEstimate, estimate_cost, resolve_caps
    from unpoison.influence.errors import InfluenceStageError
    from unpoison.influence.factors import FitReport, fit_factors
    from unpoison.influence.probes import PROBES, ProbeSet, build_probe_set
    from unpoison.influence.score_shards import gather_scores, score_shard
    from unpoison.influence.scores import score_queries
    from unpoison.influence.settings import FactorSettings, ScoreSettings
    from unpoison.influence.shards import (
        aggregate_covariance,
        aggregate_lambda,
        fit_covariance_shard,
        fit_lambda_shard,
    )
    from unpoison.influence.task import ClassificationTask


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
