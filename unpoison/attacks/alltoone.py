"""Helpers shared by the all-to-one attacks (blend, wanet, sig, label_consistent).

All-to-one: one target class is drawn per seed; the trigger sends images of EVERY other class to it. The
affected test points are therefore all test images outside the target class with the test-time trigger
(their true labels kept for robust accuracy). Dirty-label attacks (blend, wanet) poison images drawn from
the non-target classes and relabel them; clean-label attacks (sig, label_consistent) poison target-class
images and keep their labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require


def draw_target(num_classes: int, rng: np.random.Generator) -> int:
    """The attacker's target class, uniform over the classes."""
    return int(rng.integers(num_classes))


def draw_indices(pool: np.ndarray, count: int, rng: np.random.Generator, attack: str, what: str) -> np.ndarray:
    """``count`` distinct indices of ``pool`` (sorted), or a ValueError naming the attack and the pool."""
    if count > len(pool):
        raise ValueError(f"{attack} count={count} exceeds the {len(pool)} {what}")
    return np.sort(rng.choice(pool, size=count, replace=False))


def check_queries(info: DatasetInfo, n_queries: int) -> None:
    """``n_queries`` fits the affected test points: the test images outside the target class, whichever class
    the seed draws (so outside the largest test class)."""
    if info.test_counts is None:
        return
    counts = np.asarray(info.test_counts)
    fewest = int(counts.sum() - counts.max())
    if n_queries > fewest:
        raise ValueError(
            f"queries.count: {n_queries} affected test points requested, but only {fewest} test images lie outside "
            f"the largest class (the affected points are triggered non-target test images); use ≤ {fewest}"
        )


def check_dirty_label(
    count: int, info: DatasetInfo | None, n_queries: int, extra: int = 0, extra_key: str = ""
) -> None:
    """Dirty-label all-to-one: ``count`` poisons fit the non-target training images for any target (the set
    minus its largest class), and ``count`` + ``extra`` (e.g. WaNet's noise images) fit the training set."""
    if info is None:
        return
    if info.train_counts is not None:
        counts = np.asarray(info.train_counts)
        room = int(counts.sum() - counts.max())
        require(
            count <= room,
            "count",
            count,
            f"≤ {room}, the training images outside the largest class (any class can be the target)",
        )
        if extra:
            n = int(counts.sum())
            require(
                count + extra <= n,
                extra_key,
                extra,
                f"such that count + {extra} noise images ≤ {n}, the training set's size",
            )
    check_queries(info, n_queries)


def check_clean_label(count: int, info: DatasetInfo | None, n_queries: int) -> None:
    """Clean-label: ``count`` poisons fit the smallest class's training images (any class can be the target)."""
    if info is None:
        return
    if info.train_counts is not None:
        smallest = int(np.min(info.train_counts))
        require(
            count <= smallest,
            "count",
            count,
            f"≤ {smallest}, the smallest class's training images (any class can be the target)",
        )
    check_queries(info, n_queries)


def non_target_test(
    data: ImageData, target: int, trigger: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The affected test points of an all-to-one attack: (triggered non-target test images, their true labels,
    the target label for each)."""
    keep = data.y_test != target
    y = data.y_test[keep]
    return trigger(data.x_test[keep]), y, torch.full_like(y, target)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images on the 0..255 scale, rounded and clipped to uint8."""
    return x.round().clamp_(0, 255).to(torch.uint8)


def example(*images: torch.Tensor) -> np.ndarray:
    """A row of C×H×W uint8 images (e.g. one poison before and after) as an N×C×H×W array (artifact)."""
    return np.stack([img.numpy() for img in images])


def base_truth(name: str, target: int, poison_indices: np.ndarray, **more: Any) -> dict[str, Any]:
    """The ground-truth record every all-to-one attack writes (``poison_indices`` is what evaluation reads)."""
    return {
        "attack": name,
        "label_mode": "all-to-one",
        "target": int(target),
        "poison_indices": poison_indices.tolist(),
        **more,
    }
