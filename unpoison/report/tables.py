"""Tidy result tables: one row per run × metric set, plus a mean ± std summary over seeds."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from unpoison.io import atomic_path, load_json, meta_path, save_json
from unpoison.provenance import provenance, provenance_line

DETECTION_COLUMNS = ["dataset", "attack", "seed", "detector", "n_flagged", "true_positives", "n_poisons", "tpr", "precision"]
UNLEARNING_COLUMNS = ["dataset", "attack", "seed", "detector", "unlearner", "clean_acc", "psr", "seconds"]
RUN_KEYS = ["dataset", "attack", "seed"]


def detection_table(files: Iterable[str]) -> pd.DataFrame:
    """Rows of detection metrics from ``metrics/detection/{detector}.json`` files."""
    rows = [load_json(f) for f in files]
    df = pd.DataFrame(rows, columns=DETECTION_COLUMNS)
    return df.sort_values(["dataset", "attack", "detector", "seed"]).reset_index(drop=True)


def unlearning_table(unlearned_files: Iterable[str], poisoned_files: Iterable[str], detectors: list[str]) -> pd.DataFrame:
    """Rows of model metrics after unlearning; the poisoned model appears as unlearner ``none`` once per detector."""
    rows = [load_json(f) for f in unlearned_files]
    for f in poisoned_files:
        base = load_json(f)
        rows += [{**base, "detector": d, "unlearner": "none", "seconds": 0.0} for d in detectors]
    df = pd.DataFrame(rows, columns=UNLEARNING_COLUMNS)
    return df.sort_values(["dataset", "attack", "detector", "unlearner", "seed"]).reset_index(drop=True)


def summary_table(detection: pd.DataFrame, unlearning: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (dataset, attack, detector, unlearner)."""
    merged = unlearning.merge(detection, on=RUN_KEYS + ["detector"], how="left")
    keys = ["dataset", "attack", "detector", "unlearner"]
    metrics = ["n_flagged", "tpr", "precision", "clean_acc", "psr", "seconds"]
    grouped = merged.groupby(keys, sort=True)[metrics]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    ordered = ["n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    return out[ordered].reset_index()


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table with percentages as mean ± std (for the README and the report)."""
    lines = [
        "| dataset | attack | detector | unlearner | flagged | TPR % | precision % | clean acc % | PSR % | seconds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples(index=False):
        def pct(m: str) -> str:
            return f"{100 * getattr(r, m + '_mean'):.1f} ± {100 * getattr(r, m + '_std'):.1f}"

        lines.append(
            f"| {r.dataset} | {r.attack} | {r.detector} | {r.unlearner} | {r.n_flagged_mean:.0f} | {pct('tpr')} | "
            f"{pct('precision')} | {pct('clean_acc')} | {pct('psr')} | {r.seconds_mean:.1f} |"
        )
    return "\n".join(lines) + "\n"


SWEEP_KEYS = ["dataset", "attack", "detector", "tau", "k", "threshold"]


def sweep_table(files: Iterable[str]) -> pd.DataFrame:
    """Mean and std over seeds of the threshold sweep rows of every run (``metrics/sweep.csv``)."""
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    grouped = df.groupby(SWEEP_KEYS, dropna=False, sort=True)[["n_flagged", "tpr", "precision"]]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    out = out.reset_index()
    out.attrs["seeds"] = sorted(df["seed"].unique().tolist())
    return out


def counterfactual_table(files: Iterable[str]) -> pd.DataFrame:
    """Rows of the counterfactual (paper Table 3) of every run, and their mean ± std over seeds."""
    rows = [row for f in files for row in load_json(f)["rows"]]
    df = pd.DataFrame(rows)
    grouped = df.groupby(["dataset", "attack", "detector", "removed"], sort=True)[["n_removed", "tpr", "clean_acc", "psr"]]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    out = out.reset_index()
    out.attrs["seeds"] = sorted(df["seed"].unique().tolist())
    return out


def counterfactual_markdown(table: pd.DataFrame) -> str:
    """Table 3 as Markdown: mean ± std over seeds, percentages."""
    lines = [
        "| dataset | attack | detector | retrained without | removed | TPR % | clean acc % | PSR % | seeds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples(index=False):
        def pct(m: str) -> str:
            return f"{100 * getattr(r, m + '_mean'):.1f} ± {100 * getattr(r, m + '_std'):.1f}"

        what = "detected poisons" if r.removed == "detected" else "missed poisons"
        lines.append(
            f"| {r.dataset} | {r.attack} | {r.detector} | {what} | {r.n_removed_mean:.1f} | {pct('tpr')} | "
            f"{pct('clean_acc')} | {pct('psr')} | {r.n_seeds} |"
        )
    return "\n".join(lines) + "\n"


def table_seeds(df: pd.DataFrame, seeds: Iterable[int] | None = None) -> list[int] | None:
    """The seeds a table holds: ``seeds`` if given, else its ``seed`` column, else ``df.attrs["seeds"]``."""
    if seeds is not None:
        return sorted({int(s) for s in seeds})
    if "seed" in df.columns:
        return sorted({int(s) for s in df["seed"].dropna()})
    return df.attrs.get("seeds")


def write_csv(df: pd.DataFrame, path: str, seeds: Iterable[int] | None = None) -> None:
    """Write a table atomically, and beside it (``<path>.meta.json``) its provenance: code version, config
    hash, the seeds it holds (``seeds`` or :func:`table_seeds`), library versions."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    save_json({"n_rows": len(df), "provenance": provenance(seeds=table_seeds(df, seeds))}, meta_path(path))


def write_text(text: str, path: str, seeds: Iterable[int] | None = None) -> None:
    """Write a Markdown table atomically; with ``seeds``, a provenance line follows it."""
    if seeds is not None:
        text = text.rstrip("\n") + "\n\n" + provenance_line(provenance(seeds=sorted({int(s) for s in seeds}))) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
