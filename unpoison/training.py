"""Training and inference: the recipe is data (a dataclass filled from the config), not code.

The paper's recipe (Li et al. 2024, after the Corrective Machine Unlearning bench): 40 epochs, batch 128, SGD
momentum 0.9 Nesterov, lr 0.1, weight decay 5e-4, lr ×0.1 at epochs 14/25/35, random crop ±4 px + horizontal flip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from unpoison.augment import random_crop_flip
from unpoison.data import to_float
from unpoison.device import AmpName, autocast
from unpoison.params import require
from unpoison.registry import ConfigSettings


@dataclass
class TrainRecipe(ConfigSettings):
    """Hyperparameters of one training run (units in the names or comments)."""

    config_key: ClassVar[str] = "train"
    execution_fields: ClassVar[tuple[str, ...]] = ("eval_batch_size",)

    epochs: int = 40
    batch_size: int = 128  # ≥ 2 (BatchNorm)
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [14, 25, 35])  # epochs where lr ×= gamma
    gamma: float = 0.1
    crop_padding: int = 4  # random-crop shift in pixels (0 = off)
    flip: bool = True  # random horizontal flip
    amp: AmpName = "none"  # none | bf16 | fp16 autocast (CUDA; bf16 also works on CPU but is slow there)
    channels_last: bool = False  # NHWC memory format (faster convolutions on recent GPUs)
    eval_batch_size: int = 512  # inference batch (execution only: never changes results)

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", self.epochs, "≥ 1")
        require(self.batch_size >= 2, "batch_size", self.batch_size, "≥ 2 (BatchNorm needs two images per batch)")
        require(self.lr > 0, "lr", self.lr, "> 0 (the SGD peak learning rate)")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")
        ms = list(self.milestones)
        require(
            all(1 <= m < self.epochs for m in ms) and ms == sorted(set(ms)),
            "milestones",
            ms,
            f"increasing epochs in 1..{self.epochs - 1} (epochs = {self.epochs}; a later step never happens)",
        )
        require(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        require(self.crop_padding >= 0, "crop_padding", self.crop_padding, "≥ 0 pixels")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "≥ 1")


class Stepper:
    """``loss → backward → optimiser step`` with autocast and, for fp16 on CUDA, gradient scaling."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, amp: str) -> None:
        self.optimizer = optimizer
        self.device = device
        self.amp = amp
        self.scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16" and device.type == "cuda"))

    def autocast(self):
        """The forward pass's autocast context (the recipe's ``amp``)."""
        return autocast(self.device, self.amp)

    def step(self, loss: torch.Tensor) -> float:
        """One update; raises ``FloatingPointError`` when the loss is not finite (e.g. gradient ascent diverged)."""
        value = float(loss.detach())
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"the unlearning loss became {value}: lower the lr or the budget")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    seed: int,
    device: torch.device,
    log: Any = None,
) -> dict[str, Any]:
    """Train ``model`` in place on uint8 images ``x`` with labels ``y``; return a summary.

    Shuffling and augmentation draw from a generator seeded with ``seed`` (callers pass a stage seed of
    :mod:`unpoison.seeding`, e.g. ``train/order``); model initialisation is the caller's (seed it before
    building the model). Data stays on ``device`` as uint8 to save memory.
    """
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    x_dev, y_dev = x.to(device), y.to(device)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(recipe.milestones), gamma=recipe.gamma)
    stepper = Stepper(opt, device, recipe.amp)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x_dev)
    start = time.perf_counter()
    losses: list[float] = []
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        total, count = 0.0, 0
        for i in range(0, n, recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one sample
                continue
            xb = random_crop_flip(x_dev[idx], recipe.crop_padding, recipe.flip, gen)
            xb = to_float(xb)
            if recipe.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with stepper.autocast():
                loss = loss_fn(model(xb), y_dev[idx])
            total += stepper.step(loss) * len(idx)
            count += len(idx)
        sched.step()
        losses.append(total / max(count, 1))
        if not torch.isfinite(torch.tensor(losses[-1])):
            raise FloatingPointError(f"training loss became {losses[-1]} at epoch {epoch + 1}: lower the lr")
        if log is not None:
            print(f"epoch {epoch + 1}/{recipe.epochs} loss {losses[-1]:.4f}", file=log, flush=True)
    model.eval()
    return {"seconds": time.perf_counter() - start, "loss_per_epoch": losses, "n_train": n}


@torch.no_grad()
def batched_forward(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """``fn(xb)`` (default ``model(xb)``) over uint8 or [0, 1] float images ``x`` in batches, in eval mode.

    Each batch is moved to ``device`` and converted to [0, 1] floats there (uint8 crosses the bus, not
    float32); the outputs are concatenated on the CPU. An empty ``x`` gives an empty tensor.
    """
    model.eval().to(device)
    fn = fn or model
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        out.append(fn(to_float(xb) if xb.dtype == torch.uint8 else xb).cpu())
    return torch.cat(out) if out else torch.empty(0)


def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels for uint8 or [0,1] float images (CPU int64 tensor)."""
    return batched_forward(model, x, device, lambda xb: model(xb).argmax(1), batch_size).long()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 512) -> float:
    """Fraction of ``x`` classified as ``y``."""
    if len(x) == 0:
        return float("nan")
    return float((predict(model, x, device, batch_size) == y.cpu()).float().mean())


def penultimate_features(
    model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512
) -> torch.Tensor:
    """``model.features(x)`` (the activations its linear head reads) of uint8 or [0, 1] images, in eval mode.

    Returns:
        A CPU float32 tensor of shape (N, D).
    """
    return batched_forward(model, x, device, lambda xb: model.features(xb).flatten(1).float(), batch_size)
