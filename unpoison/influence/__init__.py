"""EK-FAC influence through kronfluence: the Task, factor fitting (one job or K shard jobs), batched query scoring,
cost estimates and probe transforms."""

from unpoison.influence.cost import CostEstimate, estimate_cost, resolve_caps
from unpoison.influence.errors import InfluenceStageError
from unpoison.influence.factors import FitReport, fit_factors
from unpoison.influence.probes import PROBES, ProbeSet, build_probe_set
from unpoison.influence.score_shards import gather_scores, score_shard
from unpoison.influence.scores import score_queries
from unpoison.influence.settings import FactorSettings, ScoreSettings
from unpoison.influence.shards import aggregate_covariance, aggregate_lambda, fit_covariance_shard, fit_lambda_shard
from unpoison.influence.task import ClassificationTask

__all__ = [
    "PROBES",
    "ClassificationTask",
    "CostEstimate",
    "FactorSettings",
    "FitReport",
    "InfluenceStageError",
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
