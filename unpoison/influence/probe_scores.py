"""Score probe sets: the queries of one or several :class:`ProbeSet` stacked into one query set, scored in one pass
(or as shard parts) and split back per probe. The one flow of the pipeline's scoring steps and of the audit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from unpoison.data import TensorDataset01
from unpoison.influence.probes import ProbeSet


@dataclass
class StackedProbes:
    """Several probe sets (keyed by a name prefix, e.g. ``""`` for the queries and ``"controls_"`` for the control
    queries) as one query set, and where each set's rows start."""

    sets: dict[str, ProbeSet]
    images: torch.Tensor
    labels: torch.Tensor
    offsets: dict[str, int]

    @classmethod
    def of(cls, sets: Mapping[str, ProbeSet]) -> StackedProbes:
        offsets, start = {}, 0
        for prefix, ps in sets.items():
            offsets[prefix], start = start, start + len(ps.labels)
        images = torch.cat([ps.images for ps in sets.values()])
        labels = torch.cat([ps.labels for ps in sets.values()])
        return cls(dict(sets), images, labels, offsets)

    def dataset(self) -> TensorDataset01:
        return TensorDataset01(self.images, self.labels)

    def split(self, scores: torch.Tensor, name: str) -> dict[str, Any]:
        """The payload of one probe file from the stacked (rows, N) scores: ``name`` is a probe (``base``,
        ``both``, ...), prefixed by its set (``controls_both``). ``scores`` (q, 1 [+ n_b], N) with the untransformed
        query in column 0, the query ``labels`` per column and, for transformed probes, the augmentation names."""
        prefix = next((p for p in sorted(self.sets, key=len, reverse=True) if name.startswith(p)), "")
        probe, ps = name.removeprefix(prefix), self.sets[prefix]
        cols = ps.columns(probe) + self.offsets[prefix]
        payload: dict[str, Any] = {"scores": scores[cols].contiguous(), "labels": self.labels[cols].contiguous()}
        if probe != "base":
            payload["augmentations"] = ps.augmentations
        return payload
