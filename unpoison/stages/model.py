"""Stages: train the (poisoned) model and the clean model; select the defender's queries."""

from __future__ import annotations

from typing import Any

import torch

from unpoison.attacks import get_attack
from unpoison.device import resolve_device
from unpoison.io import load_json, load_torch, save_meta, save_torch
from unpoison.models import build_model, load_checkpoint, save_checkpoint
from unpoison.queries import select_queries
from unpoison.seeding import stage_seed
from unpoison.stages.data import load_clean, load_poisoned
from unpoison.training import TrainRecipe, train_model


def model_spec(model: dict[str, Any], clean: str) -> dict[str, Any]:
    """Architecture spec from the config's ``model:`` entry and the dataset's shape and classes.

    ``clean.pt`` is memory-mapped: only the class names and the image shape are read, not the images.
    """
    d = load_torch(clean, mmap=True)
    options = {k: v for k, v in model.items() if k != "name"}
    return {"name": model["name"], "num_classes": len(d["classes"]), "in_channels": int(d["x_train"].shape[1]), "options": options}


def _fit(
    x: torch.Tensor, y: torch.Tensor, spec: dict[str, Any], recipe: dict[str, Any], seed: int, stream: str,
    device: str, out: str, log=None, **meta: Any,
) -> None:
    """Train a fresh model of ``spec`` on (x, y); initialisation and data order from ``seed``'s
    ``{stream}/init`` and ``{stream}/order`` streams."""
    dev = resolve_device(device)
    torch.manual_seed(stage_seed(seed, f"{stream}/init"))
    net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
    summary = train_model(net, x, y, TrainRecipe.from_dict(recipe), stage_seed(seed, f"{stream}/order"), dev, log)
    save_checkpoint(out, net, spec)
    save_meta(out, spec=spec, recipe=recipe, seed=seed, device=str(dev), **meta, **summary)


def train(
    clean: str, poisoned: str, model: dict[str, Any], recipe: dict[str, Any], seed: int, device: str, out: str, log=None
) -> None:
    """Train a model from scratch on the poisoned training set; initialisation and data order come from
    ``seed``'s ``train/init`` and ``train/order`` streams."""
    spec = model_spec(model, clean)
    x, y = load_poisoned(poisoned)
    _fit(x, y, spec, recipe, seed, "train", device, out, log)


def train_clean(clean: str, model: dict[str, Any], recipe: dict[str, Any], seed: int, device: str, out: str, log=None) -> None:
    """Train the dataset's model with its recipe on the CLEAN training set (for attacks built on a clean model,
    and the clean reference row); initialisation and order from ``seed``'s ``clean/init``, ``clean/order``."""
    data = load_clean(clean)
    _fit(data.x_train, data.y_train, model_spec(model, clean), recipe, seed, "clean", device, out, log, training_set="clean")


def queries(
    clean: str, truth: str, model: str, attack: str, attack_params: dict[str, Any], count: int, seed: int, device: str,
    out: str, batch_size: int = 512,
) -> None:
    """Pick ``count`` affected test points the model misclassifies as the target (the scenario's oracle); when
    there are too few, record ``attack_failed`` instead (the run's defence is then not applicable)."""
    net, _ = load_checkpoint(model)
    chosen = select_queries(
        net, load_clean(clean), get_attack(attack, attack_params), load_json(truth), count, seed, resolve_device(device),
        batch_size,
    )
    save_torch(chosen, out)
    save_meta(out, count=count, seed=seed, test_index=chosen["test_index"], attack_failed=chosen.get("attack_failed"),
              no_query=chosen.get("no_query"))
