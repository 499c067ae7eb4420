"""Run status: whether a stage's result applies, as one typed value that travels in artifacts' metadata.

Query selection (the scenario's oracle) knows whether the attack took: when the poisoned model classifies fewer
affected test points as the target than ``queries.count``, it writes :attr:`State.ATTACK_FAILED` into the queries'
metadata; an attack that affects no test point by design (Gaussian poisoning) gets :attr:`State.NO_QUERY`. Every
stage downstream reads the status of its inputs with :func:`read_status`, writes a well-formed "not applicable"
artifact when the status blocks it (empty flags, the model unchanged, NaN metrics) and passes the status on in
its own metadata, so the other runs of the grid complete. Tables carry the value as two columns: ``state`` (for
logic) and ``status`` (its :attr:`Status.label`, for people).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


class State(str, Enum):
    """Why a result does (not) apply."""

    OK = "ok"
    ATTACK_FAILED = "attack_failed"  # too few affected test points are classified as the target
    NO_QUERY = "no_query"  # the attack affects no test point by design: query-based stages do not apply
    TOO_FEW_POINTS = "too_few_points"  # a detector asks for more affected test points than the attack gives


@dataclass(frozen=True)
class Status:
    """A :class:`State` and the reason behind it (empty when ok)."""

    state: State = State.OK
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state is State.OK

    @property
    def label(self) -> str:
        """The row label tables print: ``ok`` or ``n/a (...)`` with the reason."""
        if self.state is State.OK:
            return "ok"
        if self.state is State.ATTACK_FAILED:
            return f"n/a (attack failed: {self.reason})"
        if self.state is State.NO_QUERY:
            return f"n/a (no affected test point: {self.reason})"
        return f"n/a ({self.reason})"

    def blocks(self, reads_query: bool) -> bool:
        """Whether a stage is not applicable under this status: a failed attack blocks everything downstream of
        the queries; a missing query blocks only what reads one (``reads_query``)."""
        if self.state is State.NO_QUERY:
            return reads_query
        return not self.ok

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state.value, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Status:
        """The status of a ``to_dict`` record; None or an empty record is ok."""
        if not d:
            return OK
        return cls(State(d["state"]), str(d.get("reason", "")))


OK = Status()


def attack_failed(reason: str) -> Status:
    return Status(State.ATTACK_FAILED, reason)


def no_query(reason: str) -> Status:
    return Status(State.NO_QUERY, reason)


def read_status(path: str | Path | None) -> Status:
    """The status recorded in the metadata JSON beside an artifact (ok without a path, a meta file or a record)."""
    if not path:
        return OK
    from unpoison.io import load_json, meta_path

    meta = meta_path(path)
    return Status.from_dict(load_json(meta).get("status")) if meta.exists() else OK
