"""Spectral Signatures (Tran et al. 2018), the standard per-label form.

Per assigned (training) label with n points: centre the trained model's penultimate activations, take
the top right singular vector v of the centred matrix, score each point by its squared projection
⟨x − mean, v⟩², and flag the ``ceil(1.5 · eps · n)`` highest scores (at most n). The Δ-Influence
reference ran an uncentred whole-dataset variant with absolute thresholds; the standard per-class one is implemented here.

``eps`` is the defender's assumed upper bound on the fraction of poisons among one label's points, set
before seeing any attack. Default 0.1: the larger of the two poison rates Tran et al. evaluate (5 % and
10 % of the attacked label) — a defender who does not know the attack bounds it by the worse case tested
in the method's paper. It is NOT derived from any attack's poison count in this pipeline. The price of the
bound is that 15 % of every label is flagged, poisoned or not (precision ≤ poisons / (0.15 · N)); when a
label holds more than ``1.5 · eps`` poisons, some are necessarily missed.
"""

from __future__ import annotations

import math

import numpy as np

from unpoison.detectors.base import Detector, DetectorInputs, label_groups, labelled_features, register_detector
from unpoison.params import require


def spectral_scores(feats: np.ndarray) -> np.ndarray:
    """Squared projections of the centred rows of ``feats`` (n, D) onto their top right singular vector."""
    centred = feats - feats.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


def n_removed(eps: float, n: int) -> int:
    """How many of a label's ``n`` points are flagged: ``ceil(1.5 · eps · n)``, at most ``n``."""
    return min(n, math.ceil(1.5 * eps * n - 1e-9))  # the tolerance keeps 1.5 · 0.1 · 200 at 30, not 31


@register_detector("spectral_signatures")
class SpectralSignatures(Detector):
    """Flag the ``ceil(1.5 · eps · n)`` largest spectral scores of every label.

    Args:
        eps: the defender's assumed upper bound on the poisoned fraction of one label (Tran et al.'s larger tested
            rate, 0.1). Range: (0, 1).
    """

    display_name = "Spectral Signatures"
    citation = "Tran et al. 2018, Spectral Signatures in Backdoor Attacks"
    reads = ("features", "poisoned")

    def __init__(self, eps: float = 0.1) -> None:
        super().__init__(eps=eps)
        require(0 < eps < 1, "eps", eps, "in (0, 1): the assumed upper bound on the poisoned fraction of a label")

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        feats, labels = labelled_features(inputs)
        flagged = []
        for idx in label_groups(labels):
            if len(idx) < 2:  # one point has no direction of variance
                continue
            scores = spectral_scores(feats[idx])
            top = np.argsort(-scores, kind="stable")[: n_removed(self.params["eps"], len(idx))]
            flagged.append(idx[top])
        return np.sort(np.concatenate(flagged)).astype(np.int64) if flagged else np.empty(0, dtype=np.int64)
