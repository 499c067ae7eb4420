"""Poison detectors (a registry). A detector maps the defender's inputs to flagged training indices.

Detectors never see the ground truth, except the ``oracle`` (it lists ``truth`` in ``reads``), an upper bound
whose rows the tables mark. Each declares what it reads (``probe`` / ``control_probe``: which influence-score
files; ``reads``: other input kinds of :data:`unpoison.detectors.inputs.INPUT_KINDS`, e.g. the trained model,
the poisoned training set, the penultimate features or a model of its own trained once per dataset on the clean
images), so the workflow wires its inputs from the registry and adding a detector needs no edit to the rules:
write a module with a :class:`Detector` subclass decorated by :func:`register_detector`, and import it below (or
list it under the config's ``plugins:``; docs/architecture.md).
"""

from unpoison.detectors import (  # noqa: F401  (register)  # noqa: F401  (register)  # noqa: F401  (register)
    activation_clustering,
    calibrated,
    contrast,
    delta_influence,
    ekfac,
    frequency,  # noqa: F401  (register)
    oracle,  # noqa: F401  (register; reads truth.json, see its docstring)
    spectral_signatures,
)
from unpoison.detectors.base import DETECTORS, Detector, DetectorInputs, get_detector, register_detector

__all__ = ["DETECTORS", "Detector", "DetectorInputs", "get_detector", "register_detector"]
