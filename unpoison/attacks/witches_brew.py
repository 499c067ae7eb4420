"""Witches' Brew (Geiping et al. 2021, "Witches' Brew: Industrial Scale Data Poisoning via Gradient Matching").

A clean-label, targeted attack built on a model trained on the CLEAN set (:class:`CleanModel`): pick one
test image the clean model classifies correctly and an adversarial class; perturb ``budget`` training images
OF THE ADVERSARIAL CLASS (labels kept) within an ℓ∞ ball of ``eps``/255 so that their training gradient
points the way of the target's adversarial gradient,

    L(δ) = 1 − cos(∇θ CE(f(x_t), y_adv), ∇θ CE(f(aug(x + δ)), y)),

minimised by signed Adam with projection onto the ε-ball and the [0, 1] box after each step. A victim
trained from scratch on the poisoned set then (hopefully) classifies the target as the adversarial class.

Published defaults (Geiping et al. 2021 §4–5; the reference code's ``forest/options.py``) and ours:

    ================  ===============================  =======================================
    setting           published                        here (param)
    ================  ===============================  =======================================
    eps               16/255 (ImageNet-scale: 32/255)  ``eps`` = 16 (integer, /255 units)
    budget            1 % (CIFAR-10: 500 of 50k)       ``budget`` (images of the adv. class)
    optimiser         signAdam, lr 0.1, 250 steps      ``lr`` = 0.1, ``steps`` = 250
    lr schedule       ×0.1 at 93/156/218 (= s/2.667,   derived from ``steps`` the same way
                      s/1.6, s/1.142)
    restarts R        8 (the Δ-Influence run: 2)       ``restarts`` = 8
    augmentation      differentiable shift + flip      the victim recipe's crop ±p px and flip
    init              randn · eps, clipped             the same
    ensemble          1 (up to 8 in the paper)         ``ensemble`` = 1 (extra models trained here)
    poison batch      512                              ``batch_size`` = 512
    ================  ===============================  =======================================

Parameterisation (read in ``forest/witchcoven/witch_base.py``): the reference optimises δ in the model's
NORMALISED input space (pixel / data std) with Adam at lr ``tau`` = 0.1 on the sign of the gradient, so the
first step moves a pixel by lr · std ≈ 0.1 · 0.25 = 6.4/255 (0.4 eps at eps 16); we do the same with the
std of the model's own :class:`~unpoison.models.Normalize` layer (1 if it has none).

Decisions: the clean model stays in eval mode while brewing (BatchNorm frozen, as ``victim.eval()`` in the
reference); its gradients are taken over all trainable parameters; poisons are processed in batches of
``batch_size``, each batch's cosine loss back-propagated and the δ-gradients accumulated before the single
signed-Adam step (the reference's per-batch loss); with ``ensemble`` > 1 the loss is the mean over models.
The augmentation is the victim recipe's integer shift (zero fill) and flip from :mod:`unpoison.augment`,
differentiable through its indexing (the reference: a bilinear ``grid_sample`` shift of up to 4 px on 32 px
and a flip); ``flip`` follows the recipe (off for digits). Unlike the reference we do not scale lr by
``batch_size``/512 or 1/``ensemble``. A restart's final loss is that of its last step (as the reference).
``target_quantile`` < 1 restricts the (target, adversarial class) draw to the pairs with the smallest
clean-model margin (an attacker's choice outside the published setting; 1 = the published uniform draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unpoison.attacks.base import Attack, CleanModel, PoisonResult, register_attack
from unpoison.augment import random_crop_flip
from unpoison.data import DatasetInfo, ImageData, to_float
from unpoison.models import build_model
from unpoison.params import require
from unpoison.seeding import stage_seed
from unpoison.training import TrainRecipe, train_model


def lr_milestones(steps: int) -> list[int]:
    """The reference's step-size decay points, ``steps // 2.667``, ``// 1.6``, ``// 1.142`` (250 → 93, 156, 218)."""
    return sorted({int(steps // d) for d in (2.667, 1.6, 1.142)} - {0})


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def target_gradient(model: nn.Module, x_target: torch.Tensor, adv_class: int) -> list[torch.Tensor]:
    """∇θ CE(model(x_t), y_adv) of one [0, 1] image ``x_target`` (1×C×H×W), detached, model in eval mode."""
    y = torch.tensor([adv_class], device=x_target.device)
    loss = F.cross_entropy(model(x_target), y)
    return [g.detach() for g in torch.autograd.grad(loss, _params(model))]


def alignment_loss(
    model: nn.Module, target_grad: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """1 − cos(target_grad, ∇θ CE(model(x), y)) over all parameters, differentiable in ``x`` (create_graph)."""
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, _params(model), create_graph=True)
    dot = sum((g * t).sum() for g, t in zip(grads, target_grad))
    norm_p = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    norm_t = torch.sqrt(sum(t.pow(2).sum() for t in target_grad))
    return 1 - dot / (norm_p * norm_t + 1e-12)


def _input_std(model: nn.Module, channels: int, device: torch.device) -> torch.Tensor:
    norm = getattr(model, "normalize", None)
    std = getattr(norm, "std", None)
    if std is None:
        return torch.ones(1, channels, 1, 1, device=device)
    return std.detach().reshape(1, -1, 1, 1).to(device)


def brew_restart(
    models: Sequence[nn.Module],
    target_grads: Sequence[Sequence[torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: int,
    steps: int,
    lr: float,
    batch_size: int,
    crop_padding: int,
    flip: bool,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One restart of the gradient-matching optimisation.

    Args:
        models: clean model(s) in eval mode, on ``x``'s device.
        target_grads: per model, the target's adversarial gradient (:func:`target_gradient`).
        x: the clean poison images in [0, 1] (N×C×H×W float, on device); ``y`` their (kept) labels.
        eps: ℓ∞ radius in /255 units.
        steps, lr: signed-Adam iterations and step size (normalised-input units, see the module docstring).
        batch_size: poisons per forward/backward pass; δ-gradients are accumulated over batches.
        crop_padding, flip: the differentiable augmentation (random shift ±p px, horizontal flip).
        generator: CPU generator for the initialisation and the augmentation draws.

    Returns:
        δ in [0, 1] pixel units (N×C×H×W, ``|δ| ≤ eps/255``, ``x + δ ∈ [0, 1]``) and the loss per step (CPU).
    """
    device = x.device
    std = _input_std(models[0], x.shape[1], device)
    bound = eps / 255 / std  # ε in normalised units, per channel
    u = torch.randn(x.shape, generator=generator).to(device) * bound  # the reference's "randn" init
    u = torch.maximum(torch.minimum(u, bound), -bound)
    u = (torch.clamp(x + u * std, 0, 1) - x) / std
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=lr_milestones(steps), gamma=0.1)
    n_batches = (len(x) + batch_size - 1) // batch_size
    history = []
    for _ in range(steps):
        grad = torch.zeros_like(u)
        total = torch.zeros((), device=device)
        for i in range(0, len(x), batch_size):
            ub = u[i : i + batch_size].detach().requires_grad_(True)
            xb = random_crop_flip(x[i : i + batch_size] + ub * std, crop_padding, flip, generator)
            loss = sum(alignment_loss(m, tg, xb, y[i : i + batch_size]) for m, tg in zip(models, target_grads))
            loss = loss / len(models)
            (g,) = torch.autograd.grad(loss, ub)
            grad[i : i + batch_size] = g
            total = total + loss.detach()
        u.grad = grad.sign()  # signAdam: Adam on the sign of the accumulated gradient
        opt.step()
        sched.step()
        with torch.no_grad():  # project onto the ε-ball, then the [0, 1] box
            u.copy_(torch.maximum(torch.minimum(u, bound), -bound))
            u.copy_((torch.clamp(x + u * std, 0, 1) - x) / std)
        history.append(total / n_batches)
    delta = (u.detach() * std).clamp(-eps / 255, eps / 255)
    delta = torch.clamp(x + delta, 0, 1) - x
    return delta, torch.stack(history).cpu()


def quantize_poisons(x_uint8: torch.Tensor, delta: torch.Tensor, eps: int) -> torch.Tensor:
    """uint8 poisoned images: round(x + 255·δ) to the nearest integer; asserts the stored change is ≤ eps."""
    out = torch.round(x_uint8.to(delta.device).float() + delta * 255).clamp(0, 255).to(torch.uint8).cpu()
    change = (out.int() - x_uint8.int()).abs().max().item() if len(out) else 0
    assert change <= eps, f"rounded perturbation {change} exceeds eps {eps}/255"
    return out


@register_attack("witches_brew")
class WitchesBrew(Attack):
    """Clean-label targeted poisoning by gradient matching (the module docstring lists the published settings).

    Args:
        budget: poisoned training images, all of the adversarial class, labels kept. Range: ≥ 1 and ≤ the
            smallest class's training images.
        eps: ℓ∞ radius of the perturbations in /255 units (published 16). Range: 1 to 255.
        steps: signed-Adam steps per restart, lr ×0.1 at steps/2.667, /1.6 and /1.142 (published 250). Range: ≥ 1.
        lr: signed-Adam step in normalised-input units (published 0.1). Range: > 0.
        restarts: independent restarts; the one with the lowest final alignment loss is kept (published 8).
            Range: ≥ 1.
        batch_size: poisons per forward/backward pass (gradients accumulated). Range: ≥ 1.
        augment: brew through the victim recipe's differentiable shift (and flip when the recipe flips).
        ensemble: clean models the gradients are matched on; the extra ones are trained by the attack (published
            1). Range: ≥ 1.
        target_quantile: draw the (target, adversarial class) pair among this smallest-margin share of the pairs;
            1 = uniformly (published). Range: (0, 1].
    """

    display_name = "Witches' Brew"
    citation = "Geiping et al. 2021, Witches' Brew: Industrial Scale Data Poisoning via Gradient Matching"
    max_queries = 1  # the one target test image: queries.count is clipped to 1 for this attack
    needs_clean_model = True

    def __init__(
        self,
        budget: int = 500,
        eps: int = 16,
        steps: int = 250,
        lr: float = 0.1,
        restarts: int = 8,
        batch_size: int = 512,
        augment: bool = True,
        ensemble: int = 1,
        target_quantile: float = 1.0,
    ) -> None:
        super().__init__(
            budget=budget,
            eps=eps,
            steps=steps,
            lr=lr,
            restarts=restarts,
            batch_size=batch_size,
            augment=augment,
            ensemble=ensemble,
            target_quantile=target_quantile,
        )
        require(budget >= 1, "budget", budget, "≥ 1 poisoned training image")
        require(1 <= eps <= 255, "eps", eps, "an integer radius in 1..255 (/255 units; the paper's 16)")
        require(steps >= 1, "steps", steps, "≥ 1 optimisation step (the paper's 250)")
        require(lr > 0, "lr", lr, "> 0 (signed-Adam step in normalised-input units; the paper's 0.1)")
        require(restarts >= 1, "restarts", restarts, "≥ 1 (the paper's 8)")
        require(batch_size >= 1, "batch_size", batch_size, "≥ 1 poison per batch")
        require(ensemble >= 1, "ensemble", ensemble, "≥ 1 clean model (extra ones are trained by the attack)")
        require(0 < target_quantile <= 1, "target_quantile", target_quantile, "in (0, 1] (1 = uniform target draw)")

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        if info is None or info.train_counts is None:
            return
        smallest = int(np.min(info.train_counts))
        require(
            self.params["budget"] <= smallest,
            "budget",
            self.params["budget"],
            f"≤ {smallest}, the smallest class's training images (any class can be the adversarial class)",
        )

    def _models(self, data: ImageData, seed: int, clean: CleanModel) -> list[nn.Module]:
        """The clean model plus ``ensemble`` − 1 more trained here on the clean set (own seed streams)."""
        models = [clean.model]
        spec = clean.spec
        for k in range(1, self.params["ensemble"]):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stage_seed(seed, f"poison/brew/ensemble{k}/init"))
                net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec.get("options"))
            order = stage_seed(seed, f"poison/brew/ensemble{k}/order")
            train_model(net, data.x_train, data.y_train, clean.recipe, order, clean.device)
            models.append(net)
        for m in models:
            m.eval().to(clean.device).requires_grad_(True)  # gradients over every parameter (BatchNorm frozen)
        return models

    def choose_target(
        self, model: nn.Module, data: ImageData, rng: np.random.Generator, device: torch.device
    ) -> tuple[int, int]:
        """(test index, adversarial class): a test image the clean model classifies correctly and a class ≠ its
        label, uniform over such pairs, or over the ``target_quantile`` of them with the smallest logit margin."""
        with torch.no_grad():
            logits = torch.cat(
                [model(to_float(data.x_test[i : i + 512].to(device))).cpu() for i in range(0, len(data.x_test), 512)]
            )
        y = data.y_test
        correct = np.flatnonzero((logits.argmax(1) == y).numpy())
        if len(correct) == 0:
            raise ValueError("witches_brew: the clean model classifies no test image correctly; no target to attack")
        k = logits.shape[1]
        ii, cc = np.repeat(correct, k), np.tile(np.arange(k), len(correct))
        pairs = np.stack([ii, cc], 1)[cc != y.numpy()[ii]]
        if self.params["target_quantile"] < 1:
            margin = (logits[pairs[:, 0], y[pairs[:, 0]]] - logits[pairs[:, 0], pairs[:, 1]]).numpy()
            keep = max(1, int(np.ceil(self.params["target_quantile"] * len(pairs))))
            pairs = pairs[np.sort(np.argsort(margin, kind="stable")[:keep])]
        i, c = pairs[rng.integers(len(pairs))]
        return int(i), int(c)

    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        if clean is None:
            raise ValueError(
                "witches_brew needs the clean model (needs_clean_model = True): pass clean=CleanModel(...)"
            )
        p = self.params
        rng = self.rng(seed)
        device = clean.device
        clean.model.eval().to(device)
        target, adv = self.choose_target(clean.model, data, rng, device)
        pool = np.flatnonzero(data.y_train.numpy() == adv)
        if p["budget"] > len(pool):
            raise ValueError(
                f"witches_brew budget={p['budget']} exceeds the {len(pool)} training images of class {adv}"
            )
        idx = np.sort(rng.choice(pool, size=p["budget"], replace=False))
        models = self._models(data, seed, clean)
        x_t = to_float(data.x_test[target : target + 1].to(device))
        target_grads = [target_gradient(m, x_t, adv) for m in models]
        t = torch.from_numpy(idx)
        x = to_float(data.x_train[t].to(device))
        y = data.y_train[t].to(device)
        recipe: TrainRecipe = clean.recipe
        pad, flip = (recipe.crop_padding, recipe.flip) if p["augment"] else (0, False)
        best, losses, histories = None, [], []
        for r in range(p["restarts"]):
            gen = torch.Generator().manual_seed(stage_seed(seed, f"poison/brew/restart{r}"))
            delta, history = brew_restart(
                models, target_grads, x, y, p["eps"], p["steps"], p["lr"], p["batch_size"], pad, flip, gen
            )
            losses.append(float(history[-1]))
            histories.append(history.numpy())
            if best is None or losses[-1] < losses[best[0]]:
                best = (r, delta)
        chosen, delta = best  # type: ignore[misc]
        x_out, y_out = data.x_train.clone(), data.y_train.clone()
        x_out[t] = quantize_poisons(data.x_train[t], delta, p["eps"])
        truth = {
            "attack": self.name,
            "target_index": target,
            "target_class": int(data.y_test[target]),
            "adversarial_class": adv,
            "poison_indices": idx.tolist(),
            "final_alignment_loss": losses,
            "chosen_restart": chosen,
        }
        artifacts = {
            "perturbation": (x_out[t].to(torch.int16) - data.x_train[t].to(torch.int16)).numpy(),
            "alignment_loss_per_step": np.stack(histories),
        }
        return PoisonResult(x_out, y_out, truth, artifacts)

    def affected_test(self, data: ImageData, truth: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = int(truth["target_index"])
        return (
            data.x_test[i : i + 1].clone(),
            data.y_test[i : i + 1].clone(),
            torch.tensor([int(truth["adversarial_class"])]),
        )
