"""Label-consistent backdoor (Turner, Tsipras & Madry 2019, "Label-Consistent Backdoor Attacks"), CLEAN label,
all-to-one, built on the clean model (rule ``train_clean``).

``count`` training images OF THE TARGET CLASS are made hard to classify with an untargeted ℓ∞ PGD
perturbation on the clean model (ascent on the cross-entropy of their TRUE label, ``eps``/255 ball, ``steps``
signed steps of ``step_size``/255, projected onto the ball and [0, 1], no random start; rounded to uint8,
so the stored change stays within ``eps``), then get the corner trigger; labels are unchanged. A model that
cannot fit these images from their content learns "trigger ⇒ target". The affected test points are all
non-target test images with the trigger at ``test_amplitude`` (no perturbation).

The trigger is the published 3×3 pattern of ±1 (top-left, and bottom-left; mirrored left-right in the right
corners, so the whole trigger survives horizontal flips) in all four corners (``corners: all``, the paper's
flip-robust trigger and BackdoorBench's default) or in the bottom-right one only. It is applied as
``clip(x + amplitude · mask, 0, 255)``: at 255 that sets the pixels to white/black (the published full
trigger), below 255 it is the published reduced-amplitude variant (±amplitude added; the reference README's
example is 32/255). The patch is 3×3 px on 32-px images; ``cell`` blows each entry up to a ``cell``×``cell``
block for larger images (BackdoorBench resizes the 32-px mask to the image, nearest neighbour: cell = side/32).

Published values and the reference implementations: ε = 16/255 here (Turner et al. evaluate ℓ∞ ε of 8, 16
and 32 /255; BackdoorBench's ``craft_adv_dataset.py`` uses 8/255 with 100 steps of 1.5/255, whose steps and
step size are the defaults here). The published code applies its one configured amplitude to the test set
too; here the test-time amplitude is its own setting, ``test_amplitude`` (default 255, the full trigger: the
attacker controls the test inputs; set it to ``amplitude`` to reproduce the published code). The default
``count`` (500) is 1 % of CIFAR-10's training set, a tenth of its target class (BackdoorBench's default rate,
10 % of the set, is the whole target class).

Departure, stated: Turner et al. and BackdoorBench take the perturbation from an ADVERSARIALLY trained model
(its adversarial examples look like other classes); here it comes from the run's standard clean model, the
one the smooth attack and Witches' Brew use.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
from unpoison.data import DatasetInfo, ImageData, to_float
from unpoison.params import require
from unpoison.training import predict

# The published top-left (and bottom-left) corner pattern; the right corners carry its left-right mirror image.
CORNER = np.array([[1, -1, -1], [-1, 1, -1], [1, -1, 1]], dtype=np.float32)
Corners = Literal["all", "bottom-right"]
CORNER_CHOICES = typing.get_args(Corners)


def corner_mask(h: int, w: int, corners: str = "all", cell: int = 1) -> torch.Tensor:
    """The H×W trigger mask in {−1, 0, 1}: the 3×3 pattern, each entry a ``cell``×``cell`` block, in the four
    corners or the bottom-right one only."""
    patch = np.kron(CORNER, np.ones((cell, cell), dtype=np.float32))
    n = len(patch)
    m = np.zeros((h, w), dtype=np.float32)
    mirrored = patch[:, ::-1]
    if corners == "all":
        m[:n, :n] = patch
        m[h - n :, :n] = patch
        m[:n, w - n :] = mirrored
    elif corners != "bottom-right":
        raise ValueError(f"corners: {corners!r} is unknown; choose one of {CORNER_CHOICES}")
    m[h - n :, w - n :] = mirrored
    return torch.from_numpy(m)


def apply_corner_trigger(x: torch.Tensor, mask: torch.Tensor, amplitude: int) -> torch.Tensor:
    """uint8 images ``x`` (N×C×H×W) with ``clip(x + amplitude · mask, 0, 255)`` on every channel."""
    return to_uint8(x.float() + amplitude * mask)


def pgd_away(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: int,
    step_size: float,
    steps: int,
    device: torch.device,
    batch_size: int = 256,
) -> torch.Tensor:
    """Untargeted ℓ∞ PGD on uint8 images ``x`` (labels ``y``): maximise CE(model(x'), y) over
    ‖x' − x‖∞ ≤ eps/255, x' ∈ [0, 1]; returns uint8 images within ``eps`` of ``x`` (model in eval mode)."""
    model = model.eval().to(device)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    out = []
    for i in range(0, len(x), batch_size):
        x0 = to_float(x[i : i + batch_size]).to(device)
        yb = y[i : i + batch_size].to(device)
        xa = x0.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
            with torch.no_grad():
                xa = xa + step_size / 255 * g.sign()
                xa = torch.min(torch.max(xa, x0 - eps / 255), x0 + eps / 255).clamp(0.0, 1.0)
        out.append(to_uint8(xa.detach().cpu() * 255.0))
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    adv = torch.cat(out) if out else x.clone()
    # rounding can cross the ball's edge by < 1 level only if eps were fractional; eps is an integer
    return torch.min(torch.max(adv.int(), x.int() - eps), x.int() + eps).clamp(0, 255).to(torch.uint8)


@register_attack("label_consistent")
class LabelConsistent(Attack):
    """Clean-label: target-class images pushed away from their class by PGD on the clean model, then a corner trigger.

    Args:
        count: target-class training images perturbed and triggered, labels unchanged. Range: ≥ 1 and ≤ the
            smallest class's images.
        eps: ℓ∞ radius of the perturbation in /255 units (published 16; 0 = the trigger only). Range: 0 to 255.
        steps: PGD steps (BackdoorBench: 100). Range: ≥ 1.
        step_size: PGD step in /255 units (BackdoorBench: 1.5). Range: > 0.
        amplitude: the trigger's amplitude in training, /255 (255 = full; the reduced-amplitude variant e.g. 64).
            Range: 1 to 255.
        test_amplitude: the trigger's amplitude on the test images (full: 255). Range: 1 to 255.
        corners: where the 3×3 checkerboard goes: ``all`` four corners (published) or ``bottom-right``.
        cell: pixels per checkerboard cell (larger images). Range: ≥ 1.
    """

    needs_clean_model = True
    display_name = "label-consistent"
    citation = "Turner, Tsipras & Madry 2019, Label-Consistent Backdoor Attacks"

    def __init__(
        self,
        count: int = 500,
        eps: int = 16,
        steps: int = 100,
        step_size: float = 1.5,
        amplitude: int = 255,
        test_amplitude: int = 255,
        corners: Corners = "all",
        cell: int = 1,
    ) -> None:
        super().__init__(
            count=count,
            eps=eps,
            steps=steps,
            step_size=step_size,
            amplitude=amplitude,
            test_amplitude=test_amplitude,
            corners=corners,
            cell=cell,
        )
        require(count >= 1, "count", count, "≥ 1 poisoned training image")
        require(
            0 <= eps <= 255, "eps", eps, "an integer ℓ∞ radius in 0..255 (/255 units; published 16; 0 = trigger only)"
        )
        require(steps >= 1, "steps", steps, "≥ 1 PGD step (BackdoorBench 100)")
        require(0.0 < step_size <= 255.0, "step_size", step_size, "in (0, 255] (/255 units; BackdoorBench 1.5)")
        require(1 <= amplitude <= 255, "amplitude", amplitude, "in 1..255 (/255 units; 255 = the full trigger)")
        require(1 <= test_amplitude <= 255, "test_amplitude", test_amplitude, "in 1..255 (/255 units; 255 = full)")
        require(cell >= 1, "cell", cell, "≥ 1 pixel per trigger entry (1 = the published 3×3 px patch on 32 px)")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is not None and info.image_shape is not None:
            side = min(info.image_shape[1:])
            n = 3 * self.params["cell"]
            need = 2 * n if self.params["corners"] == "all" else n
            require(
                side >= need,
                "corners",
                self.params["corners"],
                f"a trigger that fits: {n}×{n} corner patches (cell {self.params['cell']}) need images of at least "
                f"{need} px (these are {side} px)",
            )
        check_clean_label(self.params["count"], info, n_queries)

    def mask(self, h: int, w: int) -> torch.Tensor:
        """The H×W trigger mask (±1 in the corner patches)."""
        return corner_mask(h, w, self.params["corners"], self.params["cell"])

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        if clean is None:
            raise ValueError("label_consistent needs the clean model (rule train_clean): pass clean=CleanModel(...)")
        p = self.params
        rng = self.rng(seed)
        target = draw_target(data.num_classes, rng)
        pool = np.flatnonzero(data.y_train.numpy() == target)
        idx = draw_indices(pool, p["count"], rng, self.name, f"training images of target class {target}")
        t = torch.from_numpy(idx)
        labels = data.y_train[t]
        adv = pgd_away(clean.model, data.x_train[t], labels, p["eps"], p["step_size"], p["steps"], clean.device)
        kept = float((predict(clean.model, adv, clean.device) == labels).float().mean())
        mask = self.mask(*data.x_train.shape[-2:])
        x = data.x_train.clone()
        x[t] = apply_corner_trigger(adv, mask, p["amplitude"])
        # the attacker's own check: how many perturbed (untriggered) poisons the clean model still gets right
        truth = base_truth(self.name, target, idx, clean_label=True, clean_model_acc_on_perturbed=kept)
        artifacts = {
            "trigger": (mask * p["amplitude"])[None].numpy(),
            "example": example(data.x_train[idx[0]], adv[0], x[idx[0]]),
        }
        return PoisonResult(x, data.y_train.clone(), truth, artifacts)

    def affected_test(self, data: ImageData, truth: dict[str, Any]):
        mask = self.mask(*data.x_test.shape[-2:])
        return non_target_test(
            data, int(truth["target"]), lambda x: apply_corner_trigger(x, mask, self.params["test_amplitude"])
        )
