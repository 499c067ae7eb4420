"""The threshold sweep's grid (config ``sweep``): the values each swept detector setting takes, by setting name.

A detector declares which of its settings the sweep varies (``Detector.sweep_params``: Δ-Influence ``tau`` and
``k``, EK-FAC ``threshold``); the evaluate step runs the detector itself at every combination, from the saved
scores and with no re-scoring, so a sweep row equals what the detector flags at that setting. An evaluation: it
reads the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from unpoison.params import require
from unpoison.registry import ConfigSettings

SWEEP_COLUMNS = ["detector", "tau", "k", "threshold", "n_flagged", "true_positives", "n_poisons", "tpr", "precision"]


@dataclass
class SweepGrid(ConfigSettings):
    """The grid swept for every run; defaults are the paper's (τ × k for Δ-Influence, thresholds for EK-FAC)."""

    config_key: ClassVar[str] = "sweep"

    taus: list[float] = field(default_factory=lambda: [0.0, -1.0, -5.0, -10.0, -100.0])
    ks: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    thresholds: list[float] = field(default_factory=lambda: [0.0, 10.0, 100.0, 500.0])
    n_points: int = 1  # affected test points intersected (the first n of the run's queries)

    def __post_init__(self) -> None:
        require(len(self.taus) > 0 and len(self.ks) > 0, "taus", self.taus, "non-empty lists (taus and ks)")
        require(all(k >= 0 for k in self.ks), "ks", self.ks, "integers ≥ 0")
        require(self.n_points >= 1, "n_points", self.n_points, "≥ 1")

    def values(self, setting: str) -> list[Any]:
        """The values of one detector setting (``tau``, ``k`` or ``threshold``)."""
        grid = {"tau": self.taus, "k": self.ks, "threshold": self.thresholds}
        if setting not in grid:
            raise ValueError(f"sweep: no values for setting {setting!r}; the grid has {sorted(grid)}")
        return list(grid[setting])
