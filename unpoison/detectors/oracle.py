"""The oracle: flags a seeded random share of the TRUE poisons (it reads the ground truth).

Not a defence: it isolates the unlearner from the detector. ``fraction: 1`` hands every unlearner exactly
the poisons (no clean point in the forget set, none missed); smaller fractions model a detector that is
perfectly precise but misses poisons (Potion's "discovery share"; the paper's counterfactual, Table 3). It is the
ONLY detector that reads ``truth``: the workflow gives ``truth.json`` to no other detect job, and
the tables mark its rows (``uses_truth``).
"""

from __future__ import annotations

import math

import numpy as np

from unpoison.detectors.base import Detector, DetectorInputs, register_detector
from unpoison.params import require
from unpoison.seeding import stage_rng


def oracle_flags(poison_indices: list[int] | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``ceil(fraction · n)`` of the ``n`` poison indices, drawn without replacement from the run's
    ``detect/oracle`` stream; sorted int64.

    Args:
        poison_indices: the true poisons (from ``truth.json``).
        fraction: the share to flag, in (0, 1].
        seed: the run's seed.
    """
    poisons = np.unique(np.asarray(poison_indices, dtype=np.int64))
    k = math.ceil(fraction * len(poisons) - 1e-9)  # 0.1 · 40 is 4.000000000000001 in floats: still 4
    chosen = stage_rng(seed, "detect/oracle").choice(poisons, size=k, replace=False) if k else poisons[:0]
    return np.sort(chosen).astype(np.int64)


@register_detector("oracle")
class Oracle(Detector):
    """Flag ``ceil(fraction · #poisons)`` true poisons chosen at random by the run's seed.

    Args:
        fraction: the share of the true poisons flagged (1: all of them). Range: (0, 1].
    """

    display_name = "oracle"
    citation = "an upper bound reading the ground truth (not a defence)"
    reads = ("truth",)

    def __init__(self, fraction: float = 1.0) -> None:
        require(0 < fraction <= 1, "fraction", fraction, "in (0, 1] (the share of the true poisons to flag)")
        super().__init__(fraction=fraction)

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        if inputs.truth is None or inputs.seed is None:
            raise ValueError("the oracle needs the ground truth (truth.json) and the run's seed")
        return oracle_flags(inputs.truth["poison_indices"], self.params["fraction"], inputs.seed)
