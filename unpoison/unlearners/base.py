"""The unlearner interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from unpoison.registry import Registry
from unpoison.training import TrainRecipe


@dataclass
class UnlearnInputs:
    """Everything an unlearner may use: the trained model, how to rebuild it, the training data and recipe."""

    model: nn.Module
    spec: dict[str, Any]  # architecture spec (see unpoison.models.save_checkpoint)
    x_train: torch.Tensor
    y_train: torch.Tensor
    forget: np.ndarray  # flagged training indices
    recipe: TrainRecipe  # the original training recipe
    seed: int
    device: torch.device
    log: TextIO | None = None

    def retain_mask(self) -> torch.Tensor:
        mask = torch.ones(len(self.y_train), dtype=torch.bool)
        mask[torch.as_tensor(self.forget, dtype=torch.int64)] = False
        return mask


class Unlearner(ABC):
    """One unlearning method; ``params`` come from ``unlearner_settings.<name>``."""

    name: str = ""
    produces_model: bool = True  # False only for ``none`` (evaluate the poisoned model itself)

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        """Return the unlearned model (a new module or ``inputs.model`` modified)."""


UNLEARNERS: Registry[Unlearner] = Registry("unlearner")
register_unlearner = UNLEARNERS.register  # class decorator: @register_unlearner("name")
get_unlearner = UNLEARNERS.create  # get_unlearner(name, params) -> Unlearner
