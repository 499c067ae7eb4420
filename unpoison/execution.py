"""Execution settings: how a job runs (device, batch sizes of sums and inference, loader workers), never
what it computes.

Rules pass them as one ``params: execution=Execution(...)`` object. Snakemake's params re-run trigger
records only parameters of builtin types (``snakemake.persistence``: others are "unrepresentable" and
skipped), so changing ``device: auto`` to ``cpu``, an evaluation batch size or the score stage's training
batch re-runs no job, while every science setting (plain dicts and numbers in ``params:``) still does.
``tests/test_workflow.py`` checks both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Execution:
    """Device and the execution-only fields of one stage's settings.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (resolved inside the job).
        settings: execution-only keys of the stage's settings section (e.g. ``train_batch_size``).
    """

    device: str = "auto"
    settings: dict[str, Any] = field(default_factory=dict)

    def merged(self, science: dict[str, Any]) -> dict[str, Any]:
        """The stage's full settings: its science plus these execution keys."""
        return {**science, **self.settings}

    def torch_device(self):
        """The resolved torch device (``auto`` → CUDA when present, else CPU)."""
        from unpoison.device import resolve_device

        return resolve_device(self.device)

    def get(self, key: str, default: Any = None) -> Any:
        """One execution setting (e.g. ``eval_batch_size``), or ``default``."""
        return self.settings.get(key, default)
