"""Smooth (low-frequency) trigger of Zeng et al. 2021, "Rethinking the backdoor attacks' triggers: a frequency
perspective", dirty label.

The trigger ``v`` (C×H×W, values in [0, ``magnitude``]) is a universal adversarial perturbation computed on a
model trained on the CLEAN training set (rule ``train_clean``): over ``n_images`` victim-class training images,
in a random order per pass, every image that ``clip(x + v)`` does not yet send to the target class gets the
minimal targeted DeepFool step ``r`` that carries it across (linearised steps on the logit difference
target − current class, overshoot 0.02, at most ``deepfool_steps``), and the trigger becomes
``v ← scale(blur(v + blur(r)))``: Gaussian low-pass filtering of the step and of the sum, then min–max scaling
into [0, ``magnitude``] (the published code's update; it keeps the trigger that sends the most of those images
to the target over ``passes`` passes). ``count`` victim-class training images get ``clip(x + v, 0, 1)``
(rounded back to uint8) and the target label; the affected test inputs are the triggered victim-class test
images.

Published values (32×32 CIFAR): ``sigma`` = 6 px with a 30-tap kernel (5σ wide; zero padding), magnitude 0.2
in [0, 1] pixel units. Here the blur is torchvision's ``gaussian_blur`` (reflect padding, no dark border) with
an odd kernel of ``2·round(2.5σ) + 1`` taps (31 at σ = 6). ``sigma`` is in pixels of the dataset's images; to
keep the same cut-off relative to the image, scale it with the side: σ = 6 · side / 32 (8×8 digits: 1.5 px,
a 9-tap kernel; 160-px Imagenette: 30 px, 151 taps). The kernel's half-width must stay below the image side
(reflect padding), which :meth:`Smooth.check` verifies before any job.

Departures from the published code, all stated: the victim and target classes are drawn per seed (the
published code re-targets to the dominant class the perturbation reaches); DeepFool steps from the class the
image currently has (the published code keeps its initial class); images are clipped to [0, 1] during the
search as they are when applied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from unpoison.attacks.base import (
    Attack,
    CleanModel,
    PoisonResult,
    check_victim_counts,
    draw_victim_target,
    register_attack,
)
from unpoison.data import DatasetInfo, ImageData, to_float
from unpoison.params import require
from unpoison.training import predict

OVERSHOOT = 0.02  # DeepFool's overshoot (published)


def kernel_size(sigma: float) -> int:
    """Odd Gaussian kernel covering ±2.5σ: ``2·round(2.5σ) + 1`` taps (31 at the published σ = 6 px)."""
    return 2 * int(round(2.5 * sigma)) + 1


def low_pass(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a C×H×W (or N×C×H×W) float tensor, reflect padding."""
    # imported here: torchvision pulls in torch._dynamo (≈1 s), and every pipeline job imports the attacks
    from torchvision.transforms.v2.functional import gaussian_blur

    k = kernel_size(sigma)
    return gaussian_blur(v, [k, k], [sigma, sigma])


def minmax_scale(v: torch.Tensor, magnitude: float) -> torch.Tensor:
    """``v`` mapped linearly onto [0, magnitude] (all zeros when ``v`` is constant)."""
    lo, hi = v.min(), v.max()
    if float(hi - lo) <= 0.0:
        return torch.zeros_like(v)
    return (v - lo) / (hi - lo) * magnitude


def apply_trigger(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """uint8 images ``x`` (N×C×H×W) with the trigger added: ``round(255 · clip(x/255 + v, 0, 1))``."""
    return (to_float(x) + v.to(torch.float32)).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def targeted_deepfool(model: nn.Module, x: torch.Tensor, target: int, steps: int) -> tuple[torch.Tensor, bool]:
    """The minimal linearised perturbation carrying one image ``x`` (1×C×H×W, [0, 1]) to class ``target``.

    Each step linearises ``f = logit_target − logit_current`` and moves by ``|f| · ∇f / ‖∇f‖²`` (DeepFool with
    one candidate class); the total is scaled by 1 + overshoot. Returns (perturbation, reached the target).
    """
    r_tot = torch.zeros_like(x)
    for _ in range(steps):
        xp = (x + (1.0 + OVERSHOOT) * r_tot).detach().requires_grad_(True)
        logits = model(xp)[0]
        current = int(logits.argmax())
        if current == target:
            return (1.0 + OVERSHOOT) * r_tot, True
        f = logits[target] - logits[current]
        (w,) = torch.autograd.grad(f, xp)
        norm2 = float(w.pow(2).sum())
        if not math.isfinite(norm2) or norm2 == 0.0:
            return r_tot, False
        r_tot = r_tot + (f.detach().abs() + 1e-4) / norm2 * w
    with torch.no_grad():
        reached = int(model(x + (1.0 + OVERSHOOT) * r_tot).argmax(1)) == target
    return (1.0 + OVERSHOOT) * r_tot, reached


def universal_smooth_trigger(
    model: nn.Module,
    images: torch.Tensor,
    target: int,
    magnitude: float,
    sigma: float,
    passes: int,
    deepfool_steps: int,
    rng: np.random.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, list[float]]:
    """Zeng et al.'s smooth universal perturbation towards ``target`` over uint8 ``images`` (N×C×H×W).

    Returns:
        (the best trigger, C×H×W float32 on CPU in [0, magnitude]; the target rate on ``images`` after each pass).
    """
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    x01 = to_float(images).to(device)
    v = torch.zeros(images.shape[1:], device=device)
    best, best_rate, rates = v.clone(), -1.0, []
    targets = torch.full((len(images),), target)
    for _ in range(passes):
        for i in rng.permutation(len(images)):
            xv = (x01[i : i + 1] + v).clamp(0.0, 1.0)
            with torch.no_grad():
                if int(model(xv).argmax(1)) == target:
                    continue
            r, reached = targeted_deepfool(model, xv, target, deepfool_steps)
            if reached:
                v = minmax_scale(low_pass(v + low_pass(r[0], sigma), sigma), magnitude)
        rate = float((predict(model, apply_trigger(images, v.cpu()), device) == targets).float().mean())
        rates.append(rate)
        if rate > best_rate:
            best, best_rate = v.clone(), rate
    for p in model.parameters():
        p.requires_grad_(True)
    return best.cpu(), rates


@register_attack("smooth")
class Smooth(Attack):
    """Low-frequency universal-perturbation trigger (Zeng et al. 2021), optimised on a clean model.

    Args:
        count: poisoned training images (victim class, triggered, relabelled to the target). Range: ≥ 1 and ≤ the
            smallest class's training images.
        magnitude: the trigger's values lie in [0, magnitude] of the [0, 1] pixel range (published 0.2). Range:
            (0, 1].
        sigma: σ of the Gaussian low-pass filter in pixels of the dataset's images (published 6 on 32×32; scale by
            side/32). Range: > 0, with the blur kernel's half-width below the image side.
        passes: passes over the search images; the pass with the highest target rate is kept. Range: ≥ 1.
        n_images: victim-class training images the trigger is computed on (published 100). Range: ≥ 1 and ≤ the
            smallest class's training images.
        deepfool_steps: DeepFool steps per image at most. Range: ≥ 1.
    """

    needs_clean_model = True
    display_name = "smooth trigger"
    citation = "Zeng et al. 2021, Rethinking the Backdoor Attacks' Triggers: A Frequency Perspective"

    def __init__(
        self,
        count: int = 500,
        magnitude: float = 0.2,
        sigma: float = 6.0,
        passes: int = 5,
        n_images: int = 100,
        deepfool_steps: int = 50,
    ) -> None:
        super().__init__(
            count=count,
            magnitude=magnitude,
            sigma=sigma,
            passes=passes,
            n_images=n_images,
            deepfool_steps=deepfool_steps,
        )
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(0.0 < magnitude <= 1.0, "magnitude", magnitude, "in (0, 1] (pixel units of [0, 1] images)")
        require(sigma > 0.0, "sigma", sigma, "> 0 pixels")
        require(passes >= 1, "passes", passes, "≥ 1 pass over the images")
        require(n_images >= 1, "n_images", n_images, "≥ 1 victim-class training image")
        require(deepfool_steps >= 1, "deepfool_steps", deepfool_steps, "≥ 1 DeepFool step per image")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is None:
            return
        if info.image_shape is not None:
            side = min(info.image_shape[1:])
            k = kernel_size(self.params["sigma"])
            require(
                k // 2 < side,
                "sigma",
                self.params["sigma"],
                f"small enough that the {k}-tap blur kernel's half-width ({k // 2} px) is below the {side}-px image "
                f"side (published σ = 6 px on 32×32: scale it by side/32, i.e. {6 * side / 32:g} px here)",
            )
        check_victim_counts(self.params["count"], info, n_queries)
        if info.train_counts is not None:
            smallest = int(min(info.train_counts))
            require(
                self.params["n_images"] <= smallest,
                "n_images",
                self.params["n_images"],
                f"≤ {smallest}, the smallest class's training images (the trigger is searched on victim-class images)",
            )

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        if clean is None:
            raise ValueError("the smooth attack needs the clean model (rule train_clean): pass clean=CleanModel(...)")
        p = self.params
        rng = self.rng(seed)
        victim, target = draw_victim_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() == victim)
        if p["count"] > len(pool):
            raise ValueError(
                f"smooth count={p['count']} exceeds the {len(pool)} training images of victim class {victim}"
            )
        idx = np.sort(rng.choice(pool, size=p["count"], replace=False))
        if p["n_images"] > len(pool):
            raise ValueError(
                f"smooth n_images={p['n_images']} exceeds the {len(pool)} training images of victim class {victim}"
            )
        search = np.sort(rng.choice(pool, size=p["n_images"], replace=False))
        v, rates = universal_smooth_trigger(
            clean.model,
            data.x_train[torch.from_numpy(search)],
            target,
            p["magnitude"],
            p["sigma"],
            p["passes"],
            p["deepfool_steps"],
            rng,
            clean.device,
        )
        x, y = data.x_train.clone(), data.y_train.clone()
        t = torch.from_numpy(idx)
        x[t] = apply_trigger(x[t], v)
        y[t] = target
        truth = {
            "attack": self.name,
            "victim": victim,
            "target": target,
            "poison_indices": idx.tolist(),
            "trigger": v.tolist(),  # C×H×W in [0, magnitude]: evaluation re-applies it to the test images
            "search_target_rate": rates,  # per pass, on the search images, clean model (the attacker's own check)
        }
        example = np.stack([data.x_train[idx[0]].numpy(), x[idx[0]].numpy()])  # one poison: clean, triggered
        return PoisonResult(x, y, truth, artifacts={"trigger": v.numpy(), "example": example})

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        keep = data.y_test == truth["victim"]
        v = torch.tensor(truth["trigger"], dtype=torch.float32)
        y = data.y_test[keep]
        return apply_trigger(data.x_test[keep], v), y, torch.full_like(y, truth["target"])
