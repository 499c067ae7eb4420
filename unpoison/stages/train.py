"""Steps of rules/train.smk: train the (poisoned) model and the clean model; select the defender's queries."""

from __future__ import annotations

from typing import Any, TextIO

import torch

from unpoison.artifacts import load_clean, load_poisoned
from unpoison.attacks import get_attack
from unpoison.execution import Execution
from unpoison.io import load_json, load_torch, save_meta, save_torch
from unpoison.models import build_model, load_checkpoint, save_checkpoint
from unpoison.queries import select_queries as choose_queries
from unpoison.seeding import stage_seed
from unpoison.training import TrainRecipe
from unpoison.training import train_model as fit_model


def model_spec(architecture: dict[str, Any], clean: str) -> dict[str, Any]:
    """Architecture spec from the config's ``model:`` entry and the dataset's shape and classes.

    ``clean.pt`` is memory-mapped: only the class names and the image shape are read, not the images.
    """
    d = load_torch(clean, mmap=True)
    options = {k: v for k, v in architecture.items() if k != "name"}
    return {
        "name": architecture["name"],
        "num_classes": len(d["classes"]),
        "in_channels": int(d["x_train"].shape[1]),
        "options": options,
    }


def fit_fresh_model(
    x: torch.Tensor,
    y: torch.Tensor,
    spec: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    stream: str,
    execution: Execution,
    out: str,
    log: TextIO | None = None,
    **meta: Any,
) -> None:
    """Train a fresh model of ``spec`` on (x, y) and save it; initialisation and data order come from ``seed``'s
    ``{stream}/init`` and ``{stream}/order`` streams."""
    dev = execution.torch_device()
    torch.manual_seed(stage_seed(seed, f"{stream}/init"))
    net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
    summary = fit_model(net, x, y, TrainRecipe.from_dict(recipe), stage_seed(seed, f"{stream}/order"), dev, log)
    save_checkpoint(out, net, spec)
    save_meta(out, spec=spec, recipe=recipe, seed=seed, device=str(dev), **meta, **summary)


def train_model(
    *,
    clean: str,
    poisoned: str,
    architecture: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    execution: Execution,
    model: str,
    log: TextIO | None = None,
) -> None:
    """Train a model from scratch on the poisoned training set (streams ``train/init``, ``train/order``)."""
    spec = model_spec(architecture, clean)
    x, y = load_poisoned(poisoned)
    fit_fresh_model(x, y, spec, recipe, seed, "train", execution, model, log)


def train_clean(
    *,
    clean: str,
    architecture: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    execution: Execution,
    model: str,
    log: TextIO | None = None,
) -> None:
    """Train the dataset's model on its CLEAN training set (for attacks built on a clean model, and the clean
    reference row); streams ``clean/init`` and ``clean/order``."""
    data = load_clean(clean)
    fit_fresh_model(
        data.x_train,
        data.y_train,
        model_spec(architecture, clean),
        recipe,
        seed,
        "clean",
        execution,
        model,
        log,
        training_set="clean",
    )


def select_queries(
    *,
    clean: str,
    truth: str,
    model: str,
    attack: str,
    attack_settings: dict[str, Any],
    n_queries: int,
    seed: int,
    execution: Execution,
    queries: str,
) -> None:
    """Pick ``n_queries`` affected test points the model classifies as the target (the scenario's oracle); the run's
    status (attack failed, or no affected test point by design) goes into the queries' metadata."""
    net, _ = load_checkpoint(model)
    chosen, status = choose_queries(
        net,
        load_clean(clean),
        get_attack(attack, attack_settings),
        load_json(truth),
        n_queries,
        seed,
        execution.torch_device(),
        execution.get("eval_batch_size", 512),
    )
    save_torch(chosen, queries)
    save_meta(queries, count=n_queries, seed=seed, test_index=chosen["test_index"], status=status.to_dict())
