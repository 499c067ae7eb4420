"""Poisoning attacks (a registry). Each attack module defines an :class:`Attack` and registers it.

An attack turns clean training data into poisoned training data plus the ground truth (kept apart in
``truth.json``, read only by evaluation and by the scenario's query selection), and says which test
inputs it affects (for the poison success rate and for choosing the defender's query).
"""

from unpoison.attacks import badnet, blend, gaussian, label_consistent, sig, smooth, wanet, witches_brew  # noqa: F401  (register each attack)  # noqa: F401  (BackdoorBench's standard attacks)
from unpoison.attacks.base import ATTACKS, Attack, CleanModel, PoisonResult, get_attack, register_attack

__all__ = ["ATTACKS", "Attack", "CleanModel", "PoisonResult", "get_attack", "register_attack"]
