"""Choose the defender's query: affected test points that the poisoned model gets wrong.

This is the scenario's oracle step (the defender is handed one or a few affected test points), so it
reads the attack's ground truth; what it writes holds only the images, the model's predicted labels and
their test indices, never poison indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.attacks import Attack
from unpoison.data import ImageData
from unpoison.seeding import stage_rng
from unpoison.status import OK, Status, attack_failed, no_query
from unpoison.training import predict


def select_queries(
    model: nn.Module,
    data: ImageData,
    attack: Attack,
    truth: dict[str, Any],
    count: int,
    seed: int,
    device: torch.device,
    batch_size: int = 512,
) -> tuple[dict[str, Any], Status]:
    """Pick ``count`` affected test inputs the model classifies as the attacker's target, by ``seed``
    (its ``queries`` stream).

    Returns:
        ({"x": uint8 images, "labels": the model's predictions (= target), "test_index": positions among
        the attack's affected test inputs}, the run's status). When fewer than ``count`` affected inputs are
        classified as the target, the attack failed: the three tensors are empty and the status says why
        (downstream stages then write "not applicable" results, see :mod:`unpoison.status`). An attack that
        affects no test point by design (``Attack.affects_test`` false) gets empty tensors and a no-query status.
        ``count`` is clipped to the attack's ``max_queries`` (Witches' Brew: its one target image).
    """
    x_aff, _, target = attack.affected_test(data, truth)
    if attack.max_queries is not None:
        count = min(count, attack.max_queries)
    if not attack.affects_test:
        empty = torch.empty(0, dtype=torch.int64)
        reason = f"{attack.name} affects no test point; query-based detectors do not apply"
        return {"x": x_aff[:0].clone(), "labels": empty, "test_index": empty.clone()}, no_query(reason)
    pred = predict(model, x_aff, device, batch_size)
    hit = np.flatnonzero((pred == target).numpy())
    if len(hit) < count:
        reason = (
            f"only {len(hit)} of {len(x_aff)} affected test points are classified as the target "
            f"(queries.count = {count})"
        )
        empty = torch.empty(0, dtype=torch.int64)
        return {"x": x_aff[:0].clone(), "labels": empty, "test_index": empty.clone()}, attack_failed(reason)
    rng = stage_rng(seed, "queries")
    chosen = np.sort(rng.choice(hit, size=count, replace=False))
    idx = torch.from_numpy(chosen)
    return {"x": x_aff[idx].clone(), "labels": pred[idx].clone(), "test_index": idx}, OK
