"""Run status: did the attack take, so that the defender could be handed an affected test point?

Query selection (the scenario's oracle) records ``attack_failed: <reason>`` in ``queries.pt`` when the poisoned
model classifies fewer affected test points as the target than ``queries.count``. Every stage downstream of the
queries then writes a well-formed "not applicable" artifact (empty flags, the model unchanged, a metrics row
with NaN metrics) carrying :func:`not_applicable`, instead of failing, so the other runs of the grid complete.

An attack that affects no test point by design (Gaussian poisoning, which is measured by its unlearning score)
records ``no_query: <reason>`` instead: only the stages that need a query (influence scoring and the detectors
that read it, the threshold sweep, the counterfactual) write "not applicable" artifacts, with
:func:`no_query_status`; detectors that read only the model and the training set (and the oracle) still run,
and an unlearner handed not-applicable flags passes the model through (:func:`flags_status`).
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


NO_QUERY_PREFIX = "n/a (no affected test point"


def no_query_status(reason: str) -> str:
    """The status of a query-based row in a run whose attack affects no test point by design."""
    return f"{NO_QUERY_PREFIX}: {reason})"


def no_query(payload: dict[str, Any]) -> str | None:
    """The reason recorded in a queries (or scores) payload when the attack affects no test point, else None."""
    reason = payload.get("no_query") if isinstance(payload, dict) else None
    return str(reason) if reason else None


def query_status(payload: dict[str, Any]) -> str | None:
    """Why a stage that needs the defender's query does not apply (attack failed, or no affected test point by
    design), as a row status; None when the payload holds a query."""
    failed = attack_failure(payload)
    if failed:
        return not_applicable(failed)
    missing = no_query(payload)
    return no_query_status(missing) if missing else None


def read_query_status(queries: str | None) -> str | None:
    """:func:`query_status` of the ``queries.pt`` at ``queries`` (None when no path is given)."""
    if not queries:
        return None
    from unpoison.io import load_torch

    return query_status(load_torch(queries))


def query_keys(payload: dict[str, Any]) -> dict[str, str]:
    """The ``attack_failed`` / ``no_query`` entries of a queries payload, to copy into what is derived from it."""
    return {k: str(payload[k]) for k in ("attack_failed", "no_query") if isinstance(payload, dict) and payload.get(k)}


def flags_status(flagged: str) -> str | None:
    """The ``not_applicable`` status recorded in a flagged-index file's meta, else None."""
    from unpoison.io import load_json, meta_path

    meta = meta_path(flagged)
    return load_json(meta).get("not_applicable") if meta.exists() else None


def status_of(reason: str | None) -> str:
    """``ok``, or :func:`not_applicable` of the failure reason."""
    return OK if reason is None else not_applicable(reason)
