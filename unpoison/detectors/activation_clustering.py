"""Activation Clustering (Chen et al. 2018): poisons of a label form their own cluster in activation space.

Per assigned (training) label: the trained model's penultimate activations → ``PCA(n_components)`` →
``KMeans(2)``; the smaller cluster is flagged. As in the Δ-Influence paper's baseline, every label is
clustered and its smaller cluster flagged (no per-label "is this label poisoned" test), so clean labels
contribute false positives. The paper found ``n_components = 3`` best everywhere. Labels with fewer than
``n_components + 2`` points cannot be split meaningfully and flag nothing.
"""

from __future__ import annotations

import numpy as np

from unpoison.detectors.base import Detector, DetectorInputs, label_groups, labelled_features, register_detector
from unpoison.params import require

RANDOM_STATE = 0  # fixed: the same features always give the same clusters


def smaller_cluster(feats: np.ndarray, n_components: int) -> np.ndarray:
    """Positions (into ``feats``) of the smaller of two KMeans clusters of the PCA-reduced rows.

    Args:
        feats: (n, D) activations of one label.
        n_components: PCA dimensions (capped at D and n − 1).

    Returns:
        Sorted int64 positions; empty when ``n < n_components + 2`` or all rows coincide.
    """
    from sklearn.cluster import KMeans  # imported here: every detect job imports the registry (≈0.5 s)
    from sklearn.decomposition import PCA

    n, d = feats.shape
    if n < n_components + 2:
        return np.empty(0, dtype=np.int64)
    reduced = PCA(n_components=min(n_components, d, n - 1), random_state=RANDOM_STATE).fit_transform(feats)
    if np.ptp(reduced, axis=0).max(initial=0.0) == 0.0:  # identical points: nothing to separate
        return np.empty(0, dtype=np.int64)
    assign = KMeans(n_clusters=2, n_init=10, random_state=RANDOM_STATE).fit_predict(reduced)
    counts = np.bincount(assign, minlength=2)
    return np.flatnonzero(assign == int(np.argmin(counts))).astype(np.int64)  # a tie flags cluster 0


@register_detector("activation_clustering")
class ActivationClustering(Detector):
    """Flag the smaller of two activation clusters of every label.

    Args:
        n_components: PCA dimensions of each label's activations before KMeans(2) (the paper's best: 3). Range: ≥ 1.
    """

    display_name = "Activation Clustering"
    citation = "Chen et al. 2018, Detecting Backdoor Attacks on Deep Neural Networks by Activation Clustering"
    reads = ("features", "poisoned")

    def __init__(self, n_components: int = 3) -> None:
        super().__init__(n_components=n_components)
        require(n_components >= 1, "n_components", n_components, "≥ 1 (PCA dimensions before clustering)")

    def detect(self, inputs: DetectorInputs) -> np.ndarray:
        feats, labels = labelled_features(inputs)
        flagged = [idx[smaller_cluster(feats[idx], self.params["n_components"])] for idx in label_groups(labels)]
        return np.sort(np.concatenate(flagged)).astype(np.int64) if flagged else np.empty(0, dtype=np.int64)
