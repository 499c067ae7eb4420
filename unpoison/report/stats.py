"""The one aggregator and formatter of every table and figure: mean ± std over seeds of the rows whose result
applies (``state`` ok), with how many seeds that is and why the others are missing."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from unpoison.status import State

OK = State.OK.value


def ok_rows(df: pd.DataFrame) -> pd.Series:
    """Which rows apply: ``state`` ok (a table without a ``state`` column: every row)."""
    if "state" not in df.columns:
        return pd.Series(True, index=df.index)
    return df["state"].isna() | (df["state"].astype(str) == OK)


def seed_word(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def group_status(rows: pd.DataFrame) -> str:
    """One label for a group of seeds: ``ok``; the shared reason when no seed applies (each reason with its seed
    count when they differ) or when the attack affects no test point by design; else how many seeds are left out."""
    ok = ok_rows(rows)
    if ok.all():
        return OK
    failed = rows[~ok]
    first = str(failed["status"].iloc[0])
    if ok.any():
        if (failed["state"].astype(str) == State.NO_QUERY.value).any():
            return first
        return f"attack failed on {len(failed)} of {len(rows)} seeds ({first}): metrics over the others"
    counts = failed["status"].astype(str).value_counts(sort=False)
    if len(counts) == 1:
        return first
    return "; ".join(f"{why} ({seed_word(n)})" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def summarise(df: pd.DataFrame, keys: list[str], metrics: Iterable[str]) -> pd.DataFrame:
    """Per group of ``keys``: ``n_seeds`` (rows), ``n_ok`` (rows that apply), ``attack_success`` (n_ok / n_seeds;
    NaN for an attack without a query by design), ``status`` (:func:`group_status`) and ``<m>_mean``/``<m>_std``
    (ddof = 0) of each metric over the rows that apply."""
    metrics = list(metrics)
    df = df.copy()
    for m in metrics:
        df[m] = pd.to_numeric(df[m], errors="coerce") if m in df.columns else np.nan
    ok = df[ok_rows(df)]
    grouped = ok.groupby(keys, sort=True, dropna=False)[metrics]
    stats = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    everything = df.groupby(keys, sort=True, dropna=False)
    out = pd.DataFrame({"n_seeds": everything.size()})
    out["status"] = [group_status(g) for _, g in everything]
    out["n_ok"] = ok.groupby(keys, sort=True, dropna=False).size().reindex(out.index).fillna(0).astype(int)
    out["attack_success"] = out.n_ok / out.n_seeds
    if "state" in df.columns:
        no_query = everything["state"].agg(lambda s: (s.astype(str) == State.NO_QUERY.value).any())
        out.loc[no_query.reindex(out.index).fillna(False).astype(bool), "attack_success"] = float("nan")
    out = out.join(stats)
    for m in metrics:
        for s in ("mean", "std"):
            if f"{m}_{s}" not in out:
                out[f"{m}_{s}"] = float("nan")
    return out.reset_index()


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (percent by default); ``—`` when the mean is not a number."""
    if mean is None or not math.isfinite(float(mean)):
        return "—"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"
