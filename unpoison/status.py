"""Run status: did the attack take, so that the defender could be handed an affected test point?

Query selection (the scenario's oracle) records ``attack_failed: <reason>`` in ``queries.pt`` when the poisoned
model classifies fewer affected test points as the target than ``queries.count``. Every stage downstream of the
queries then writes a well-formed "not applicable" artifact (empty flags, the model unchanged, a metrics row
with NaN metrics) carrying :func:`not_applicable`, instead of failing, so the other runs of the grid complete.
"""

from __future__ import annotations

from typing import Any

OK = "ok"  # the status of a metrics row whose run's attack took


def not_applicable(reason: str) -> str:
    """The status of a row that does not apply because the run's attack failed."""
    return f"n/a (attack failed: {reason})"


def attack_failure(payload: dict[str, Any]) -> str | None:
    """The reason recorded in a queries (or scores) payload when the attack failed, else None."""
    reason = payload.get("attack_failed") if isinstance(payload, dict) else None
    return str(reason) if reason else None


def read_attack_failure(queries: str | None) -> str | None:
    """:func:`attack_failure` of the ``queries.pt`` at ``queries`` (None when no path is given)."""
    if not queries:
        return None
    from unpoison.io import load_torch

    return attack_failure(load_torch(queries))


def status_of(reason: str | None) -> str:
    """``ok``, or :func:`not_applicable` of the failure reason."""
    return OK if reason is None else not_applicable(reason)
