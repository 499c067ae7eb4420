"""EK-FAC influence through kronfluence: the Task, factor fitting, batched query scoring, probe transforms."""

from unpoison.influence.task import ClassificationTask
from unpoison.influence.kfac import FactorSettings, ScoreSettings, fit_factors, score_queries
from unpoison.influence.probes import PROBES, ProbeSet, build_probe_set

__all__ = [
    "ClassificationTask",
    "FactorSettings",
    "ScoreSettings",
    "fit_factors",
    "score_queries",
    "PROBES",
    "ProbeSet",
    "build_probe_set",
]
