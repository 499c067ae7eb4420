"""Tidy result tables: one row per run × metric set, plus a mean ± std summary over seeds.

Detection rows carry ``uses_truth`` (true only for a detector that reads the ground truth: the oracle). Unlearning
rows carry the unlearner's ``seconds`` (wall) and ``cpu_seconds`` around the unlearning itself, its nominal
``budget_epochs`` (compute in training epochs of the same model), ``cost_vs_eu`` / ``cpu_cost_vs_eu`` (its seconds
over EU's on the same run and detector; NaN without EU), BackdoorBench's robust accuracy ``r_acc`` and defence
effectiveness ratio ``der`` (against the poisoned model of the same run), and the PSR and clean accuracy after the
relearning check (``psr_relearned``, ``acc_relearned``). Every row has ``state`` and its label ``status``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from unpoison.io import load_json
from unpoison.metrics import der
from unpoison.report.stats import OK, pm, summarise

DETECTION_COLUMNS = [
    "dataset",
    "attack",
    "seed",
    "detector",
    "n_flagged",
    "true_positives",
    "n_poisons",
    "tpr",
    "precision",
    "uses_truth",
    "status",
    "state",
]
UNLEARNING_COLUMNS = [
    "dataset",
    "attack",
    "seed",
    "detector",
    "unlearner",
    "clean_acc",
    "psr",
    "seconds",
    "cpu_seconds",
    "budget_epochs",
    "cost_vs_eu",
    "cpu_cost_vs_eu",
    "status",
    "r_acc",
    "der",
    "psr_relearned",
    "acc_relearned",
    "state",
]
REFERENCE_COLUMNS = [
    "dataset",
    "attack",
    "seed",
    "model",
    "clean_acc",
    "psr",
    "status",
    "r_acc",
    "psr_relearned",
    "acc_relearned",
    "state",
]
RUN_KEYS = ["dataset", "attack", "seed"]
SUMMARY_KEYS = ["dataset", "attack", "detector", "unlearner"]
TIMES = ["seconds", "cpu_seconds", "budget_epochs"]
SUMMARY_METRICS = [
    "n_flagged",
    "tpr",
    "precision",
    "clean_acc",
    "psr",
    "seconds",
    "cpu_seconds",
    "budget_epochs",
    "cost_vs_eu",
    "cpu_cost_vs_eu",
    "r_acc",
    "der",
    "psr_relearned",
    "acc_relearned",
]
NO_DETECTOR = "—"  # the detector of the reference rows (clean model, poisoned model)
TRUTH_MARK = "†"  # marks detectors that read the ground truth in Markdown tables


def read_rows(files: Iterable[str], columns: list[str]) -> pd.DataFrame:
    """The metrics JSONs as a frame with exactly ``columns`` (missing values NaN)."""
    return pd.DataFrame([load_json(f) for f in files], columns=columns)


def detection_table(files: Iterable[str], truth_detectors: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of detection metrics from ``metrics/detection/{detector}.json`` files; ``uses_truth`` is true for the
    detectors in ``truth_detectors`` (those that read the ground truth)."""
    df = read_rows(files, DETECTION_COLUMNS)
    df["uses_truth"] = df.detector.isin(list(truth_detectors))
    return df.sort_values(["dataset", "attack", "detector", "seed"]).reset_index(drop=True)


def unlearning_table(
    unlearned_files: Iterable[str], poisoned_files: Iterable[str], detectors: list[str]
) -> pd.DataFrame:
    """Rows of model metrics after unlearning; the poisoned model appears as unlearner ``none`` once per detector
    (zero time; measured even when the attack failed, its ``status`` then says so)."""
    rows = [load_json(f) for f in unlearned_files]
    poisoned = [load_json(f) for f in poisoned_files]
    for base in poisoned:
        rows += [{**base, "detector": d, "unlearner": "none", **dict.fromkeys(TIMES, 0.0)} for d in detectors]
    df = pd.DataFrame(rows, columns=[c for c in UNLEARNING_COLUMNS if c not in ("cost_vs_eu", "cpu_cost_vs_eu", "der")])
    keys = RUN_KEYS + ["detector"]
    eu = df[df.unlearner == "eu"].set_index(keys)[["seconds", "cpu_seconds"]].add_prefix("eu_")
    df = df.join(eu, on=keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["cost_vs_eu"] = df.seconds / df.eu_seconds.where(df.eu_seconds > 0)
        df["cpu_cost_vs_eu"] = df.cpu_seconds / df.eu_cpu_seconds.where(df.eu_cpu_seconds > 0)
    before = pd.DataFrame(poisoned, columns=RUN_KEYS + ["psr", "clean_acc"]).drop_duplicates(RUN_KEYS)
    df = df.join(before.set_index(RUN_KEYS).add_suffix("_before"), on=RUN_KEYS)
    df["der"] = [der(*v) for v in zip(df.psr_before, df.clean_acc_before, df.psr, df.clean_acc)]
    df = df[UNLEARNING_COLUMNS]
    return df.sort_values(["dataset", "attack", "detector", "unlearner", "seed"]).reset_index(drop=True)


def reference_table(poisoned_files: Iterable[str], clean_files: Iterable[str] = ()) -> pd.DataFrame:
    """Clean accuracy and PSR of the poisoned model (every run, also when its attack failed) and of the model
    trained on the clean data (how often a never-poisoned model already does what the attack wants)."""
    columns = [c for c in REFERENCE_COLUMNS if c != "model"]
    parts = [
        read_rows(files, columns).assign(model=model)
        for model, files in (("poisoned model", poisoned_files), ("clean model", clean_files))
    ]
    parts = [p for p in parts if len(p)]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REFERENCE_COLUMNS)
    return df[REFERENCE_COLUMNS].sort_values(["dataset", "attack", "model", "seed"]).reset_index(drop=True)


def reference_summary(reference: pd.DataFrame) -> pd.DataFrame:
    """The reference rows' mean ± std over EVERY seed (a poisoned model is measured also when its attack failed);
    ``attack_success`` of the poisoned model = the share of seeds whose attack took."""
    ref = reference.rename(columns={"model": "unlearner"}).assign(detector=NO_DETECTOR)
    out = summarise(ref.assign(state=OK), SUMMARY_KEYS, ["clean_acc", "psr", "r_acc", "psr_relearned", "acc_relearned"])
    real = summarise(ref, SUMMARY_KEYS, [])
    out["status"] = real["status"].to_numpy()
    out["attack_success"] = np.where(out.unlearner == "poisoned model", real["attack_success"].to_numpy(), np.nan)
    out["uses_truth"] = False
    return out


def summary_table(
    detection: pd.DataFrame, unlearning: pd.DataFrame, reference: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, attack, detector, unlearner), over the seeds whose result applies
    (``n_ok`` of ``n_seeds``; ``attack_success`` = n_ok / n_seeds), with the reference rows first per (dataset,
    attack): detector "—", unlearner "poisoned model" and "clean model" (when the grid has one)."""
    merged = unlearning.merge(detection.drop(columns=["status", "state"]), on=RUN_KEYS + ["detector"], how="left")
    out = summarise(merged, SUMMARY_KEYS, SUMMARY_METRICS)
    truth = merged.groupby(SUMMARY_KEYS, sort=True).uses_truth.max()
    out["uses_truth"] = [
        isinstance(v, (bool, np.bool_)) and bool(v)
        for v in (truth.get(tuple(k)) for k in out[SUMMARY_KEYS].itertuples(index=False))
    ]
    if reference is not None and len(reference):
        out = pd.concat([reference_summary(reference), out], ignore_index=True)
    out["_ref"] = out.detector != NO_DETECTOR  # reference rows first within each (dataset, attack)
    out = out.sort_values(["dataset", "attack", "_ref", "detector", "unlearner"], kind="stable").drop(columns="_ref")
    ordered = (
        ["n_seeds", "n_ok", "attack_success", "uses_truth"]
        + [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")]
        + ["status"]
    )
    for col in ordered:
        if col not in out:
            out[col] = float("nan")
    return out[SUMMARY_KEYS + ordered].reset_index(drop=True)


def pct(r: object, m: str) -> str:
    return pm(getattr(r, m + "_mean"), getattr(r, m + "_std"))


SUMMARY_HEADER = (
    "| dataset | attack | detector | unlearner | attack ok | flagged | TPR % | precision % | clean acc % "
    "| PSR % | R-Acc % | DER | PSR relearned % | seconds | × EU |"
)


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table with percentages as mean ± std (for the docs and the report).

    ``attack ok`` counts the seeds whose attack took; a row whose every seed failed reads its status. ``DER`` is
    BackdoorBench's defence effectiveness ratio against the poisoned model (0.5 = no effect), ``PSR relearned`` the
    PSR after the relearning check, ``seconds`` the unlearner's mean wall time and ``× EU`` its wall time over
    EU's. Detectors that read the ground truth (the oracle) are marked with a dagger and a note.
    """
    lines = [SUMMARY_HEADER, "|---|---|---|---|" + "---:|" * 11]
    for r in summary.itertuples(index=False):
        ok = "—" if pd.isna(r.attack_success) else f"{round(r.attack_success * r.n_seeds)}/{r.n_seeds}"
        if r.detector == NO_DETECTOR:
            cells = [
                "—",
                "—",
                "—",
                pct(r, "clean_acc"),
                pct(r, "psr"),
                pct(r, "r_acc"),
                "—",
                pct(r, "psr_relearned"),
                "—",
                "—",
            ]
        elif r.n_ok == 0:
            cells = [r.status] + ["—"] * 9
        else:
            flagged = "—" if pd.isna(r.n_flagged_mean) else f"{r.n_flagged_mean:.0f}"
            cells = [
                flagged,
                pct(r, "tpr"),
                pct(r, "precision"),
                pct(r, "clean_acc"),
                pct(r, "psr"),
                pct(r, "r_acc"),
                pm(r.der_mean, r.der_std, 1.0, 2),
                pct(r, "psr_relearned"),
                f"{r.seconds_mean:.1f}",
                pm(r.cost_vs_eu_mean, r.cost_vs_eu_std, 1.0, 2),
            ]
        det = f"{r.detector} {TRUTH_MARK}" if bool(r.uses_truth) else r.detector
        lines.append(f"| {r.dataset} | {r.attack} | {det} | {r.unlearner} | {ok} | " + " | ".join(cells) + " |")
    if summary.uses_truth.astype(bool).any():
        lines.append(
            f"\n{TRUTH_MARK} reads the ground truth (the oracle): an upper bound for the unlearners, not a defence."
        )
    return "\n".join(lines) + "\n"


SWEEP_KEYS = ["dataset", "attack", "detector", "tau", "k", "threshold"]


def sweep_table(files: Iterable[str]) -> pd.DataFrame:
    """Mean and std over seeds of the threshold sweep rows of every run (``metrics/sweep.csv``)."""
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    metrics = ["n_flagged", "tpr", "precision"]
    out = summarise(df, SWEEP_KEYS, metrics)
    out = out[SWEEP_KEYS + ["n_seeds"] + [f"{m}_mean" for m in metrics] + [f"{m}_std" for m in metrics]]
    out.attrs["seeds"] = sorted(df["seed"].unique().tolist())
    return out


def counterfactual_table(files: Iterable[str]) -> pd.DataFrame:
    """Rows of the counterfactual (paper Table 3) of every run, and their mean ± std over the seeds whose attack
    took."""
    rows = [row for f in files for row in load_json(f)["rows"]]
    df = pd.DataFrame(rows)
    out = summarise(df, ["dataset", "attack", "detector", "removed"], ["n_removed", "tpr", "clean_acc", "psr"])
    out.attrs["seeds"] = sorted(df["seed"].unique().tolist())
    return out


def counterfactual_markdown(table: pd.DataFrame) -> str:
    """Table 3 as Markdown: mean ± std over seeds, percentages."""
    lines = [
        "| dataset | attack | detector | retrained without | removed | TPR % | clean acc % | PSR % | seeds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples(index=False):
        what = "detected poisons" if r.removed == "detected" else "missed poisons"
        if r.n_ok == 0:
            cells = [r.status, "—", "—", "—"]
        else:
            cells = [f"{r.n_removed_mean:.1f}", pct(r, "tpr"), pct(r, "clean_acc"), pct(r, "psr")]
        seeds = f"{r.n_ok}" if r.n_ok == r.n_seeds else f"{r.n_ok} of {r.n_seeds}"
        lines.append(f"| {r.dataset} | {r.attack} | {r.detector} | {what} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n"
