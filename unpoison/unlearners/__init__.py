"""Unlearners (a registry): remove the influence of flagged training points from a trained model.

The retain set is every training point minus the flagged ones; the forget set is the flagged ones.
Unlearners never see the ground truth. ``none`` is the poisoned model itself (the "before" row).
Add one: a module with an :class:`Unlearner` subclass decorated by :func:`register_unlearner`, imported below.
"""

from unpoison.unlearners.base import UNLEARNERS, UnlearnInputs, Unlearner, get_unlearner, register_unlearner
from unpoison.unlearners import retrain  # noqa: F401  (registers none, eu, cf)
from unpoison.unlearners import ssd, potion  # noqa: F401  (registers ssd, potion: synaptic dampening)
from unpoison.unlearners import distillation  # noqa: F401  (registers scrub, badt: teacher-student)
from unpoison.unlearners import gradient_ascent  # noqa: F401  (registers ga, neggrad_plus)

__all__ = ["UNLEARNERS", "UnlearnInputs", "Unlearner", "get_unlearner", "register_unlearner"]
