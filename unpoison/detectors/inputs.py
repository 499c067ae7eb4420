"""What a detector may read, as one table: each input kind's artifact (where it lives in a run), its loader and
the :class:`~unpoison.detectors.base.DetectorInputs` fields it fills.

A detector lists the kinds it reads in ``Detector.reads`` (plus influence scores through ``probe`` and
``control_probe``); the detect rule wires the paths and the detect step loads them, both from this table, so a
new kind is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _load_model(path: str) -> Any:
    from unpoison.models import load_checkpoint

    return load_checkpoint(path)[0]


def _load_poisoned(path: str) -> Any:
    from unpoison.artifacts import load_poisoned

    return load_poisoned(path)


def _load_torch(path: str) -> Any:
    from unpoison.io import load_torch

    return load_torch(path)


def _load_json(path: str) -> Any:
    from unpoison.io import load_json

    return load_json(path)


@dataclass(frozen=True)
class InputKind:
    """One kind of detector input.

    Attributes:
        path: where the artifact lives; ``{run}`` is the run directory (``results/{dataset}/{attack}/s{seed}``),
            ``{dataset_dir}`` the dataset's (``results/{dataset}``), ``{detector}`` the configured detector name.
        fields: the DetectorInputs attributes filled by the loader's result (a tuple result for several).
        load: reads the artifact at a path.
        produced_by: the rule that makes it (for messages and docs).
    """

    path: str
    fields: tuple[str, ...]
    load: Callable[[str], Any]
    produced_by: str


INPUT_KINDS: dict[str, InputKind] = {
    "model": InputKind("{run}/model.pt", ("model",), _load_model, "train_model"),
    "poisoned": InputKind("{run}/poisoned.pt", ("x_train", "y_train"), _load_poisoned, "poison_dataset"),
    "features": InputKind("{run}/features.pt", ("features",), _load_torch, "extract_features"),
    "dataset_model": InputKind(
        "{dataset_dir}/detector_models/{detector}.pt", ("dataset_model",), _load_torch, "train_detector_model"
    ),
    "truth": InputKind("{run}/truth.json", ("truth",), _load_json, "poison_dataset"),
}
SCORES_PATH = "{run}/scores/{probe}.pt"  # influence scores of a probe (rule score_probes); controls_<probe> too


def input_path(kind: str, run: str, dataset_dir: str, detector: str) -> str:
    """The artifact path of ``kind`` for one run and configured detector."""
    return INPUT_KINDS[kind].path.format(run=run, dataset_dir=dataset_dir, detector=detector)


def load_input(kind: str, path: str) -> dict[str, Any]:
    """The DetectorInputs fields of ``kind`` read from ``path``."""
    spec = INPUT_KINDS[kind]
    value = spec.load(path)
    return dict(zip(spec.fields, value)) if len(spec.fields) > 1 else {spec.fields[0]: value}
