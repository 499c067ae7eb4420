"""Tidy result tables: one row per run × metric set, plus a mean ± std summary over seeds.

Detection rows carry ``uses_truth`` (true only for the oracle, which reads the ground truth). Unlearning rows
carry the unlearner's ``seconds`` (wall) and ``cpu_seconds`` around the unlearning itself, its nominal
``budget_epochs`` (compute in training epochs of the same model, from the unlearner's report) and
``cost_vs_eu`` / ``cpu_cost_vs_eu``: its seconds divided by EU's on the same run and detector (NaN when EU is
not in the grid).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from unpoison.io import atomic_path, load_json

DETECTION_COLUMNS = ["dataset", "attack", "seed", "detector", "n_flagged", "true_positives", "n_poisons", "tpr", "precision",
                     "uses_truth"]
UNLEARNING_COLUMNS = ["dataset", "attack", "seed", "detector", "unlearner", "clean_acc", "psr", "seconds", "cpu_seconds",
                      "budget_epochs", "cost_vs_eu", "cpu_cost_vs_eu"]
RUN_KEYS = ["dataset", "attack", "seed"]
TIMES = ["seconds", "cpu_seconds", "budget_epochs"]
TRUTH_MARK = "†"  # marks detectors that read the ground truth in Markdown tables


def detection_table(files: Iterable[str], truth_detectors: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of detection metrics from ``metrics/detection/{detector}.json`` files; ``uses_truth`` is true for
    the detectors in ``truth_detectors`` (those declaring ``needs_truth``: the oracle and its variants)."""
    rows = [load_json(f) for f in files]
    df = pd.DataFrame(rows, columns=DETECTION_COLUMNS)
    df["uses_truth"] = df.detector.isin(list(truth_detectors))
    return df.sort_values(["dataset", "attack", "detector", "seed"]).reset_index(drop=True)


def unlearning_table(unlearned_files: Iterable[str], poisoned_files: Iterable[str], detectors: list[str]) -> pd.DataFrame:
    """Rows of model metrics after unlearning; the poisoned model appears as unlearner ``none`` once per
    detector (zero time); ``cost_vs_eu`` is each row's seconds over the ``eu`` row's of its run and detector."""
    rows = [load_json(f) for f in unlearned_files]
    for f in poisoned_files:
        base = load_json(f)
        rows += [{**base, "detector": d, "unlearner": "none", **dict.fromkeys(TIMES, 0.0)} for d in detectors]
    df = pd.DataFrame(rows, columns=UNLEARNING_COLUMNS[:-2])
    keys = RUN_KEYS + ["detector"]
    eu = df[df.unlearner == "eu"].set_index(keys)[["seconds", "cpu_seconds"]].add_prefix("eu_")
    df = df.join(eu, on=keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["cost_vs_eu"] = df.seconds / df.eu_seconds.where(df.eu_seconds > 0)
        df["cpu_cost_vs_eu"] = df.cpu_seconds / df.eu_cpu_seconds.where(df.eu_cpu_seconds > 0)
    df = df[UNLEARNING_COLUMNS]
    return df.sort_values(["dataset", "attack", "detector", "unlearner", "seed"]).reset_index(drop=True)


SUMMARY_METRICS = ["n_flagged", "tpr", "precision", "clean_acc", "psr", "seconds", "cpu_seconds", "budget_epochs",
                   "cost_vs_eu", "cpu_cost_vs_eu"]


def summary_table(detection: pd.DataFrame, unlearning: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (dataset, attack, detector, unlearner)."""
    merged = unlearning.merge(detection, on=RUN_KEYS + ["detector"], how="left")
    keys = ["dataset", "attack", "detector", "unlearner"]
    grouped = merged.groupby(keys, sort=True)[SUMMARY_METRICS]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    out.insert(1, "uses_truth", merged.groupby(keys, sort=True).uses_truth.max().fillna(False).astype(bool))
    ordered = ["n_seeds", "uses_truth"] + [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")]
    return out[ordered].reset_index()


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table with percentages as mean ± std (for the README and the report).

    ``seconds`` is the unlearner's mean wall time; ``× EU`` its wall time over EU's on the same runs (mean ±
    std over seeds). Detectors that read the ground truth (the oracle) are marked with a dagger and a note.
    """
    lines = [
        "| dataset | attack | detector | unlearner | flagged | TPR % | precision % | clean acc % | PSR % | seconds | × EU |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples(index=False):
        def pct(m: str) -> str:
            return _pm(getattr(r, m + "_mean"), getattr(r, m + "_std"))

        det = f"{r.detector} {TRUTH_MARK}" if r.uses_truth else r.detector
        lines.append(
            f"| {r.dataset} | {r.attack} | {det} | {r.unlearner} | {r.n_flagged_mean:.0f} | {pct('tpr')} | "
            f"{pct('precision')} | {pct('clean_acc')} | {pct('psr')} | {r.seconds_mean:.1f} | "
            f"{_pm(r.cost_vs_eu_mean, r.cost_vs_eu_std, 1.0, 2)} |"
        )
    if summary.uses_truth.any():
        lines.append(f"\n{TRUTH_MARK} reads the ground truth (the oracle): an upper bound for the unlearners, not a defence.")
    return "\n".join(lines) + "\n"


SWEEP_KEYS = ["dataset", "attack", "detector", "tau", "k", "threshold"]


def sweep_table(files: Iterable[str]) -> pd.DataFrame:
    """Mean and std over seeds of the threshold sweep rows of every run (``metrics/sweep.csv``)."""
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    grouped = df.groupby(SWEEP_KEYS, dropna=False, sort=True)[["n_flagged", "tpr", "precision"]]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    return out.reset_index()


def counterfactual_table(files: Iterable[str]) -> pd.DataFrame:
    """Rows of the counterfactual (paper Table 3) of every run, and their mean ± std over seeds."""
    rows = [row for f in files for row in load_json(f)["rows"]]
    df = pd.DataFrame(rows)
    grouped = df.groupby(["dataset", "attack", "detector", "removed"], sort=True)[["n_removed", "tpr", "clean_acc", "psr"]]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", grouped.size())
    return out.reset_index()


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


def write_csv(df: pd.DataFrame, path: str) -> None:
    """Write a table atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_text(text: str, path: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
