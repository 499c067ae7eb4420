"""The unlearner interface and registry, and what every unlearner shares: the forget/retain split, the
empty-forget rule, logging and the compute budget in training epochs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

import numpy as np
import torch
from torch import nn

from unpoison.registry import Registry
from unpoison.training import TrainRecipe


@dataclass
class UnlearnInputs:
    """Everything an unlearner may use: the trained model, how to rebuild it, the training data and recipe.

    ``x_train``/``y_train`` are the (poisoned) training set as trained on; ``forget`` the flagged indices.
    Unlearners never see which points are truly poisoned.
    """

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

    def forget_indices(self) -> torch.Tensor:
        """The flagged training indices, unique and sorted (int64)."""
        return torch.unique(torch.as_tensor(np.asarray(self.forget), dtype=torch.int64))

    def retain_indices(self) -> torch.Tensor:
        """Every training index that is not flagged, sorted (int64)."""
        return torch.nonzero(self.retain_mask()).flatten()


def log_line(inputs: UnlearnInputs, message: str) -> None:
    """Write one line to the job's log (nothing without a log)."""
    if inputs.log is not None:
        print(message, file=inputs.log, flush=True)


@dataclass
class ComputeBudget:
    """Compute spent by an unlearner, counted in passes over single training images.

    ``train`` counts forward + backward passes of the model being changed (what one training epoch does
    once per image); ``forward`` counts forward-only passes (frozen teachers, accuracy checks), each
    weighed as 1/3 of a training pass (a backward pass costs about twice a forward one).
    """

    train: float = 0.0
    forward: float = 0.0

    def epochs(self, n_train: int) -> float:
        """The budget in training epochs of the same model on the ``n_train``-image training set."""
        return (self.train + self.forward / 3.0) / max(n_train, 1)


class Unlearner(ABC):
    """One unlearning method; ``params`` come from ``unlearner_settings.<name>``.

    After :meth:`unlearn`, ``report`` holds what the run did (always ``budget_epochs``: the compute in
    training epochs of the same model; method-specific entries such as Potion's search step). The unlearn
    stage writes it into the unlearned model's meta JSON.
    """

    name: str = ""
    display_name: ClassVar[str] = ""  # how tables and figures print it
    citation: ClassVar[str] = ""  # the paper it implements
    produces_model: ClassVar[bool] = True  # False only for ``none`` (evaluate the poisoned model itself)

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.report: dict[str, Any] = {}

    @abstractmethod
    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        """Return the unlearned model (a new module or ``inputs.model`` modified)."""

    def check(self, recipe: TrainRecipe) -> None:
        """Validate the settings against a dataset's training recipe before any job runs (raise ValueError naming
        the key, the value and what is allowed)."""

    def forgets_nothing(self, inputs: UnlearnInputs) -> bool:
        """True when nothing was flagged: the unlearner then returns the model unchanged (logged, budget 0).

        Every unlearner calls this first: with an empty forget set there is nothing to remove, so the
        trained model is the answer (retraining it, or dampening by importances of no data, would only
        add noise or divide by zero).
        """
        if len(inputs.forget) > 0:
            return False
        log_line(
            inputs,
            f"{self.name}: the forget set is empty (the detector flagged nothing): the model is returned unchanged",
        )
        self.report = {"budget_epochs": 0.0, "empty_forget": True}
        return True


UNLEARNERS: Registry[Unlearner] = Registry("unlearner")
register_unlearner = UNLEARNERS.register  # class decorator: @register_unlearner("name")
get_unlearner = UNLEARNERS.create  # get_unlearner(name, params) -> Unlearner


def needs_retain(inputs: UnlearnInputs, name: str) -> torch.Tensor:
    """The retain indices; raise ``ValueError`` naming the unlearner when every training point was flagged."""
    retain = inputs.retain_indices()
    if len(retain) == 0:
        raise ValueError(f"{name}: every training point was flagged, so there is no retain set to train on")
    return retain


__all__ = [
    "ComputeBudget",
    "UNLEARNERS",
    "UnlearnInputs",
    "Unlearner",
    "get_unlearner",
    "log_line",
    "needs_retain",
    "register_unlearner",
]
