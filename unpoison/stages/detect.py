"""Step of rules/detect.smk: run one detector on the inputs it declared (only the oracle reads the ground truth)."""

from __future__ import annotations

from typing import Any

import numpy as np

from unpoison.detectors import DetectorInputs, get_detector
from unpoison.detectors.inputs import INPUT_KINDS, load_input
from unpoison.io import load_torch, save_meta, save_npy
from unpoison.status import OK, State, Status, read_status


def detect(*, method: str, settings: dict[str, Any], seed: int, queries: str, flagged: str, **inputs: str) -> None:
    """Run detector ``method`` with its normalised ``settings`` and save the flagged training indices (sorted int64
    ``.npy`` at ``flagged``, a meta JSON beside it).

    Args:
        queries: the run's queries; their status decides whether the detector applies (a failed attack: no
            detector runs; no affected point by design: detectors that read query scores do not).
        inputs: ``scores_<probe>`` → influence-score files, and one path per input kind the detector reads
            (:data:`unpoison.detectors.inputs.INPUT_KINDS`).
    """
    det = get_detector(method, settings)
    if "truth" in inputs and not det.needs_truth():
        raise ValueError(f"detector {method!r} does not read `truth` and must not be given {inputs['truth']}")
    status = read_status(queries)
    if status.blocks(det.reads_query()):
        return write_flags(flagged, np.empty(0, dtype=np.int64), method, settings, det.needs_truth(), status)
    scores = {k.removeprefix("scores_"): load_torch(p) for k, p in inputs.items() if k.startswith("scores_")}
    wanted = settings.get("n_points")
    scored = min((len(s["scores"]) for p, s in scores.items() if not p.startswith("controls_")), default=None)
    if wanted and scored is not None and wanted > scored:  # e.g. 5 points of an attack with one target image
        status = Status(
            State.TOO_FEW_POINTS, f"n_points = {wanted}, but the attack gives {scored} affected test point(s)"
        )
        return write_flags(flagged, np.empty(0, dtype=np.int64), method, settings, det.needs_truth(), status)
    fields: dict[str, Any] = {}
    for kind, path in inputs.items():
        if kind in INPUT_KINDS:
            fields.update(load_input(kind, path))
    flags = det.detect(DetectorInputs(scores=scores, seed=seed, **fields))
    write_flags(flagged, flags, method, settings, det.needs_truth(), OK)  # the flags apply


def write_flags(
    out: str, flags: np.ndarray, method: str, settings: dict[str, Any], uses_truth: bool, status: Status
) -> None:
    """Save flagged indices with a meta JSON: the detector, its settings, the count and the run's status."""
    save_npy(flags, out)
    save_meta(
        out, detector=method, params=settings, n_flagged=len(flags), uses_truth=uses_truth, status=status.to_dict()
    )
