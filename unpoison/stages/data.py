"""Stages: prepare the clean dataset; poison it."""

from __future__ import annotations

from typing import Any

from unpoison.attacks import get_attack
from unpoison.data import ImageData, load_dataset
from unpoison.io import load_torch, save_json, save_meta, save_torch


def prepare_dataset(settings: dict[str, Any], out: str) -> None:
    """Load a dataset from its source and save it as uint8 NCHW tensors (``clean.pt``)."""
    data = load_dataset(settings)
    save_torch(data.to_dict(), out)
    save_meta(out, settings=settings, n_train=len(data.y_train), n_test=len(data.y_test), shape=data.image_shape)


def load_clean(path: str) -> ImageData:
    """Read ``clean.pt``."""
    return ImageData.from_dict(load_torch(path))


def poison_dataset(clean: str, attack: str, params: dict[str, Any], seed: int, out: str, truth_out: str) -> None:
    """Poison the training set; write the poisoned set and, separately, the ground truth."""
    data = load_clean(clean)
    result = get_attack(attack, params).poison(data, seed)
    save_torch({"x_train": result.x_train, "y_train": result.y_train}, out)
    save_meta(out, attack=attack, params=params, seed=seed)
    save_json({**result.truth, "params": params, "seed": seed}, truth_out)


def load_poisoned(path: str):
    """(x_train, y_train) of ``poisoned.pt``."""
    d = load_torch(path)
    return d["x_train"], d["y_train"]
