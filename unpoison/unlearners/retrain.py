"""Retraining-based unlearners: EU (exact, from scratch) and CF (catastrophic forgetting, fine-tune)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from unpoison.models import build_model
from unpoison.params import bind_params
from unpoison.seeding import stage_seed
from unpoison.training import TrainRecipe, train_model
from unpoison.unlearners.base import ComputeBudget, Unlearner, UnlearnInputs, needs_retain, register_unlearner


@register_unlearner("none")
class NoUnlearning(Unlearner):
    """The poisoned model as it is: the reference point before unlearning."""

    display_name = "none (poisoned model)"
    citation = "the reference point before unlearning"

    produces_model = False

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        self.report = {"budget_epochs": 0.0}
        return inputs.model


@register_unlearner("eu")
class ExactUnlearning(Unlearner):
    """Retrain from scratch on the retain set with the original recipe; initialisation and data order come
    from the run seed's own ``unlearn/eu/init`` and ``unlearn/eu/order`` streams.

    Compute: the recipe's epochs over the retain set, ``epochs · |S_r| / N`` training epochs.
    """

    display_name = "EU"
    citation = "exact unlearning: retraining without the forget set (Goel et al. 2024, Corrective Machine Unlearning)"

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        keep = inputs.retain_mask()
        needs_retain(inputs, "eu")
        torch.manual_seed(stage_seed(inputs.seed, "unlearn/eu/init"))
        spec = inputs.spec
        model = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec.get("options"))
        order = stage_seed(inputs.seed, "unlearn/eu/order")
        train_model(model, inputs.x_train[keep], inputs.y_train[keep], inputs.recipe, order, inputs.device, inputs.log)
        budget = ComputeBudget(train=inputs.recipe.epochs * int(keep.sum()))
        self.report = {"budget_epochs": budget.epochs(len(inputs.y_train))}
        return model


@register_unlearner("cf")
class CatastrophicForgetting(Unlearner):
    """Fine-tune the trained model on the retain set.

    ``params`` override the original recipe (e.g. ``epochs``, ``lr``, ``milestones``); with none, the full
    original recipe runs from the trained weights, as in the Δ-Influence reference code. Data order and
    augmentation come from the run seed's ``unlearn/cf`` stream. Compute: the (overridden) recipe's epochs
    over the retain set.
    """

    display_name = "CF"
    citation = "catastrophic forgetting: fine-tuning on the retain set (Goel et al. 2024)"

    @classmethod
    def bind_params(cls, params: dict[str, Any] | None, key: str) -> dict[str, Any]:
        """The given recipe overrides, checked against :class:`TrainRecipe`'s keys and types."""
        full = bind_params(TrainRecipe, params, key)
        return {k: full[k] for k in sorted(params or {})}

    def check(self, recipe: TrainRecipe) -> None:
        """The overrides applied to a dataset's recipe still make a valid recipe (e.g. milestones < epochs)."""
        TrainRecipe(**{**recipe.to_dict(), **self.params})  # __post_init__ names the key that breaks

    def unlearn(self, inputs: UnlearnInputs) -> nn.Module:
        if self.forgets_nothing(inputs):
            return inputs.model
        recipe: TrainRecipe = replace(inputs.recipe, **self.params)
        model = copy.deepcopy(inputs.model)
        keep = inputs.retain_mask()
        needs_retain(inputs, "cf")
        order = stage_seed(inputs.seed, "unlearn/cf")
        train_model(model, inputs.x_train[keep], inputs.y_train[keep], recipe, order, inputs.device, inputs.log)
        self.report = {
            "budget_epochs": ComputeBudget(train=recipe.epochs * int(keep.sum())).epochs(len(inputs.y_train))
        }
        return model
