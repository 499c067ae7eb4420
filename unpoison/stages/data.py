"""Steps of rules/data.smk: prepare the clean dataset; poison it (on the clean model, for attacks built on one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import numpy as np

from unpoison.artifacts import load_clean, load_clean_model
from unpoison.attacks import get_attack
from unpoison.data import load_dataset
from unpoison.execution import Execution
from unpoison.io import save_json, save_meta, save_npy, save_torch


def prepare_dataset(*, settings: dict[str, Any], clean: str) -> None:
    """Load a dataset from its source (``settings``) and save it as uint8 NCHW tensors at ``clean``."""
    data = load_dataset(settings)
    save_torch(data.to_dict(), clean)
    save_meta(clean, settings=settings, n_train=len(data.y_train), n_test=len(data.y_test), shape=data.image_shape)


def poison_dataset(
    *,
    clean: str,
    attack: str,
    attack_settings: dict[str, Any],
    seed: int,
    recipe: dict[str, Any] | None,
    execution: Execution,
    poisoned: str,
    truth: str,
    artifacts: str,
    clean_model: str | None = None,
    log: TextIO | None = None,
) -> None:
    """Poison the training set; write the poisoned set, separately the ground truth, and the attack's artifacts.

    Args:
        clean_model, recipe: the clean model's checkpoint and the dataset's recipe, for attacks that declare
            ``needs_clean_model`` (run on ``execution``'s device).
        artifacts: a directory receiving ``<name>.npy`` and ``<name>.png`` for every array the attack returns,
            plus ``example`` (one poisoned training image before and after) when the attack gives none.
    """
    data = load_clean(clean)
    atk = get_attack(attack, attack_settings)
    model = None
    if atk.needs_clean_model:
        if clean_model is None or recipe is None:
            raise ValueError(f"attack {attack!r} needs the clean model (rule train_clean) and the recipe")
        model = load_clean_model(clean_model, recipe, execution.torch_device())
    result = atk.poison(data, seed, model)
    save_torch({"x_train": result.x_train, "y_train": result.y_train}, poisoned)
    save_meta(poisoned, attack=attack, params=attack_settings, seed=seed, clean_model=clean_model)
    save_json({**result.truth, "params": attack_settings, "seed": seed}, truth)
    arrays = dict(result.artifacts)
    if "example" not in arrays and result.truth.get("poison_indices"):
        first = int(result.truth["poison_indices"][0])
        arrays["example"] = np.stack([data.x_train[first].numpy(), result.x_train[first].numpy()])
    save_artifacts(attack, arrays, Path(artifacts), log)


def save_artifacts(attack: str, arrays: dict[str, np.ndarray], where: Path, log: TextIO | None = None) -> None:
    """Each array as ``<name>.npy`` and a picture ``<name>.png`` in ``where`` (created)."""
    from unpoison.report.figures import plot_artifact

    where.mkdir(parents=True, exist_ok=True)
    for name, array in sorted(arrays.items()):
        save_npy(np.asarray(array), where / f"{name}.npy")
        plot_artifact(np.asarray(array), str(where / f"{name}.png"), f"{attack}: {name}")
        print(f"artifact {name}: {where / name}.npy/.png", file=log)
