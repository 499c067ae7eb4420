"""Readers of the pipeline's artifacts: the clean dataset, the poisoned training set, a model checkpoint as the
clean model an attack builds on."""

from __future__ import annotations

from typing import Any

import torch

from unpoison.data import ImageData
from unpoison.io import load_torch


def load_clean(path: str) -> ImageData:
    """The dataset of ``clean.pt`` (rule ``prepare_dataset``)."""
    return ImageData.from_dict(load_torch(path))


def load_poisoned(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_train, y_train) of ``poisoned.pt`` (rule ``poison_dataset``): uint8 N×C×H×W images, int64 labels."""
    d = load_torch(path)
    return d["x_train"], d["y_train"]


def load_clean_model(path: str, recipe: dict[str, Any], device: torch.device):
    """The model of rule ``train_clean`` as an :class:`unpoison.attacks.CleanModel` (eval mode, on ``device``)."""
    from unpoison.attacks import CleanModel
    from unpoison.models import load_checkpoint
    from unpoison.training import TrainRecipe

    net, spec = load_checkpoint(path)
    return CleanModel(net.to(device).eval(), spec, TrainRecipe.from_dict(recipe), device)
