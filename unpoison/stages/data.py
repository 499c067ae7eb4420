"""Stages: prepare the clean dataset; poison it (with the clean model, for attacks that need one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import numpy as np

from unpoison.attacks import CleanModel, get_attack
from unpoison.data import ImageData, load_dataset
from unpoison.device import resolve_device
from unpoison.io import load_torch, save_json, save_meta, save_npy, save_torch
from unpoison.models import load_checkpoint
from unpoison.training import TrainRecipe


def prepare_dataset(settings: dict[str, Any], out: str) -> None:
    """Load a dataset from its source and save it as uint8 NCHW tensors (``clean.pt``)."""
    data = load_dataset(settings)
    save_torch(data.to_dict(), out)
    save_meta(out, settings=settings, n_train=len(data.y_train), n_test=len(data.y_test), shape=data.image_shape)


def load_clean(path: str) -> ImageData:
    """Read ``clean.pt``."""
    return ImageData.from_dict(load_torch(path))


def load_clean_model(path: str, recipe: dict[str, Any], device: str) -> CleanModel:
    """The model of rule ``train_clean`` as a :class:`CleanModel` (eval mode, on the resolved device)."""
    net, spec = load_checkpoint(path)
    dev = resolve_device(device)
    return CleanModel(net.to(dev).eval(), spec, TrainRecipe.from_dict(recipe), dev)


def poison_dataset(
    clean: str, attack: str, params: dict[str, Any], seed: int, out: str, truth_out: str,
    clean_model: str | None = None, recipe: dict[str, Any] | None = None, device: str = "auto",
    artifacts: dict[str, tuple[str, str]] | None = None, log: TextIO | None = None,
) -> None:
    """Poison the training set; write the poisoned set, separately the ground truth, and the attack's artifacts.

    Args:
        clean_model, recipe: the clean model's checkpoint and the dataset's recipe, for attacks with
            ``needs_clean_model`` (``device`` is where the attack runs it).
        artifacts: artifact name → (``.npy`` path, ``.png`` path) for every name the attack declares in
            ``artifact_names``. Artifacts it returns without declaring them are saved as ``<name>.npy`` in the
            directory of the first declared one, else in ``artifacts/`` beside ``out`` (not tracked by the DAG).
    """
    data = load_clean(clean)
    atk = get_attack(attack, params)
    model = None
    if atk.needs_clean_model:
        if clean_model is None or recipe is None:
            raise ValueError(f"attack {attack!r} needs the clean model (rule train_clean) and the recipe")
        model = load_clean_model(clean_model, recipe, device)
    result = atk.poison(data, seed, model)
    save_torch({"x_train": result.x_train, "y_train": result.y_train}, out)
    save_meta(out, attack=attack, params=params, seed=seed, clean_model=clean_model)
    save_json({**result.truth, "params": params, "seed": seed}, truth_out)
    _save_artifacts(attack, result.artifacts, artifacts or {}, Path(out).parent / "artifacts", log)
    for npy in [Path(paths[0]) for paths in (artifacts or {}).values()]:
        save_meta(npy, attack=attack, params=params, seed=seed, clean_model=clean_model)


def _save_artifacts(
    attack: str, arrays: dict[str, np.ndarray], declared: dict[str, tuple[str, str]], fallback: Path, log: TextIO | None
) -> None:
    missing = sorted(set(declared) - set(arrays))
    if missing:
        raise ValueError(f"attack {attack!r} declares artifact(s) {missing} in artifact_names but did not return them")
    for name, (npy, png) in declared.items():
        save_npy(np.asarray(arrays[name]), npy)
        from unpoison.report.figures import plot_artifact

        plot_artifact(np.asarray(arrays[name]), png, f"{attack}: {name}")
    for name in sorted(set(arrays) - set(declared)):
        where = Path(next(iter(declared.values()))[0]).parent if declared else fallback
        save_npy(np.asarray(arrays[name]), where / f"{name}.npy")
        print(f"artifact {name!r} saved to {where / (name + '.npy')} (not in {attack}.artifact_names: untracked)", file=log)


def load_poisoned(path: str):
    """(x_train, y_train) of ``poisoned.pt``."""
    d = load_torch(path)
    return d["x_train"], d["y_train"]
