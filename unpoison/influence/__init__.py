"""EK-FAC influence through kronfluence: the Task, factor fitting, batched query scoring, probe transforms."""

from unpoison.influence.errors import InfluenceStageError
from unpoison.influence.factors import FitReport, fit_factors
from unpoison.influence.probes import PROBES, ProbeSet, build_probe_set
from unpoison.influence.scores import score_queries
from unpoison.influence.settings import FactorSettings, ScoreSettings
from unpoison.influence.task import ClassificationTask

__all__ = [
    "PROBES",
    "ClassificationTask",
    "FactorSettings",
    "FitReport",
    "InfluenceStageError",
    "ProbeSet",
    "ScoreSettings",
    "build_probe_set",
    "fit_factors",
    "score_queries",
]
