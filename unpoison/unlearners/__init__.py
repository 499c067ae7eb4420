"""Unlearners (a registry): remove the influence of flagged training points from a trained model.

The retain set is every training point minus the flagged ones; the forget set is the flagged ones.
Unlearners never see the ground truth. ``none`` is the poisoned model itself (the "before" row).
Add one: a module with an :class:`Unlearner` subclass decorated by :func:`register_unlearner`, imported below.
"""

from unpoison.unlearners import (  # noqa: F401  (registers ssd, potion: synaptic dampening)
    distillation,  # noqa: F401  (registers scrub, badt: teacher-student)
    gradient_ascent,  # noqa: F401  (registers ga, neggrad_plus)
    potion,
    retrain,  # noqa: F401  (registers none, eu, cf)
    ssd,
)
from unpoison.unlearners.base import UNLEARNERS, Unlearner, UnlearnInputs, get_unlearner, register_unlearner

__all__ = ["UNLEARNERS", "UnlearnInputs", "Unlearner", "get_unlearner", "register_unlearner"]
