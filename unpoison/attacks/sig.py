"""Sinusoidal-signal backdoor (Barni, Kallas & Tondi 2019, "A new Backdoor Attack in CNNs by training set
corruption without label poisoning"), CLEAN label, all-to-one.

The signal is a horizontal sinusoid ``v(i, j) = Δ · sin(2π j f / W)`` (pixel units 0..255, the same on every
row and channel). It is added to ``count`` training images OF THE TARGET CLASS, ``clip(x + v, 0, 255)``
(rounded), whose labels stay as they are: the model learns "signal ⇒ target" from correctly labelled images.
The affected test points are all non-target test images with the signal at ``delta_test``.

Published values: Δ = 20 and f = 6 for training (Barni et al.'s sinusoidal signal; Trojanzoo's default
Δ = 20/255); BackdoorBench's ``config/attack/sig/default.yaml`` uses Δ = 40 at training and
test time. ``delta_test`` defaults to the training Δ (BackdoorBench uses one value for both); a stronger test
signal is the setting to raise. BackdoorBench's poisoning rate is 10 % of the whole training set (on
CIFAR-10, every target-class image); the default ``count`` here (500) is 1 % of CIFAR-10's training set,
a tenth of its target class.

``f`` counts periods across the image width, so the same ``f`` is a finer stripe on a smaller image; the
sampled signal aliases when ``f`` ≥ W/2 (at f = W/2 it vanishes), which :meth:`Sig.check` refuses. To keep
the stripe width in pixels of the 32-px original on W-px images use f = 6 · W/32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unpoison.attacks.alltoone import (
    base_truth,
    check_clean_label,
    draw_indices,
    draw_target,
    example,
    non_target_test,
    to_uint8,
)
from unpoison.attacks.base import Attack, CleanModel, PoisonResult, register_attack
from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require


def sig_signal(shape: tuple[int, ...], delta: float, f: float) -> torch.Tensor:
    """The C×H×W float signal ``Δ · sin(2π j f / W)`` (column ``j``), pixel units."""
    c, h, w = shape
    row = delta * torch.sin(2 * np.pi * torch.arange(w, dtype=torch.float64) * f / w)
    return row.float().expand(c, h, w).clone()


def add_signal(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """uint8 images ``x`` (N×C×H×W) plus the signal ``v``, rounded and clipped to 0..255."""
    return to_uint8(x.float() + v)


@register_attack("sig")
class Sig(Attack):
    """Clean-label horizontal sinusoid v(i, j) = Δ·sin(2πjf/W) on target-class training images, labels unchanged.

    Args:
        count: target-class training images that get the signal. Range: ≥ 1 and ≤ the smallest class's images.
        delta: the signal's amplitude in training, pixel units 0–255 (published 20). Range: (0, 255].
        f: periods across the image width (published 6 on 32 px). Range: > 0.
        delta_test: the amplitude on the test images; null = delta. Range: (0, 255] or null.
    """

    display_name = "SIG"
    citation = (
        "Barni, Kallas & Tondi 2019, A New Backdoor Attack in CNNs by Training Set Corruption without Label Poisoning"
    )

    def __init__(self, count: int = 500, delta: float = 20.0, f: float = 6.0, delta_test: float | None = None) -> None:
        super().__init__(count=count, delta=delta, f=f, delta_test=delta_test)
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(0.0 < delta <= 255.0, "delta", delta, "in (0, 255] (amplitude in pixel units 0..255; published 20)")
        require(f > 0.0, "f", f, "> 0 periods across the image width (published 6)")
        if delta_test is not None:
            require(0.0 < delta_test <= 255.0, "delta_test", delta_test, "in (0, 255], or null for the training delta")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is not None and info.image_shape is not None:
            w = info.image_shape[2]
            require(
                self.params["f"] < w / 2,
                "f",
                self.params["f"],
                f"< {w / 2:g} (half the {w}-px width: a finer sinusoid aliases, and f = W/2 samples to zero; "
                f"f = 6 · W/32 = {6 * w / 32:g} keeps the published stripe width)",
            )
        check_clean_label(self.params["count"], info, n_queries)

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        rng = self.rng(seed)
        target = draw_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() == target)
        idx = draw_indices(pool, self.params["count"], rng, self.name, f"training images of target class {target}")
        v = sig_signal(tuple(data.x_train.shape[1:]), self.params["delta"], self.params["f"])
        x = data.x_train.clone()
        t = torch.from_numpy(idx)
        x[t] = add_signal(x[t], v)
        truth = base_truth(self.name, target, idx, clean_label=True)
        artifacts = {"signal": v.numpy(), "example": example(data.x_train[idx[0]], x[idx[0]])}
        return PoisonResult(x, data.y_train.clone(), truth, artifacts)

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        p = self.params
        v = sig_signal(
            tuple(data.x_test.shape[1:]), p["delta_test"] if p["delta_test"] is not None else p["delta"], p["f"]
        )
        return non_target_test(data, int(truth["target"]), lambda x: add_signal(x, v))
