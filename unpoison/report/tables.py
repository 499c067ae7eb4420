"""Tidy result tables: one row per run × metric set, plus a mean ± std summary over seeds.

Detection rows carry ``uses_truth`` (true only for the oracle, which reads the ground truth). Unlearning rows
carry the unlearner's ``seconds`` (wall) and ``cpu_seconds`` around the unlearning itself, its nominal
``budget_epochs`` (compute in training epochs of the same model, from the unlearner's report) and
``cost_vs_eu`` / ``cpu_cost_vs_eu``: its seconds divided by EU's on the same run and detector (NaN when EU is
not in the grid).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from unpoison.io import atomic_path, load_json, meta_path, save_json
from unpoison.provenance import provenance, provenance_line
from unpoison.status import NO_QUERY_PREFIX, OK  # OK: a row whose run's attack took; else "n/a (...)" with the reason

DETECTION_COLUMNS = ["dataset", "attack", "seed", "detector", "n_flagged", "true_positives", "n_poisons", "tpr", "precision",
                     "uses_truth", "status"]
UNLEARNING_COLUMNS = ["dataset", "attack", "seed", "detector", "unlearner", "clean_acc", "psr", "seconds", "cpu_seconds",
                      "budget_epochs", "cost_vs_eu", "cpu_cost_vs_eu", "status"]
REFERENCE_COLUMNS = ["dataset", "attack", "seed", "model", "clean_acc", "psr", "status"]
RUN_KEYS = ["dataset", "attack", "seed"]
SUMMARY_KEYS = ["dataset", "attack", "detector", "unlearner"]
TIMES = ["seconds", "cpu_seconds", "budget_epochs"]
SUMMARY_METRICS = ["n_flagged", "tpr", "precision", "clean_acc", "psr", "seconds", "cpu_seconds", "budget_epochs",
                   "cost_vs_eu", "cpu_cost_vs_eu"]
NO_DETECTOR = "—"  # the detector of the reference rows (clean model, poisoned model)
TRUTH_MARK = "†"  # marks detectors that read the ground truth in Markdown tables


def _with_status(df: pd.DataFrame) -> pd.DataFrame:
    """``status`` filled with ``ok`` where a row has none (rows written before the failure path existed)."""
    status = df["status"] if "status" in df else pd.Series(index=df.index, dtype=object)
    df["status"] = [s if isinstance(s, str) else OK for s in status]
    return df


def _rows(files: Iterable[str], columns: list[str]) -> pd.DataFrame:
    return _with_status(pd.DataFrame([load_json(f) for f in files], columns=columns))


def detection_table(files: Iterable[str], truth_detectors: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of detection metrics from ``metrics/detection/{detector}.json`` files (``status`` n/a: NaN metrics);
    ``uses_truth`` is true for the detectors in ``truth_detectors`` (those declaring ``needs_truth``: the
    oracle and its variants)."""
    df = _rows(files, DETECTION_COLUMNS)
    df["uses_truth"] = df.detector.isin(list(truth_detectors))
    return df.sort_values(["dataset", "attack", "detector", "seed"]).reset_index(drop=True)


def unlearning_table(unlearned_files: Iterable[str], poisoned_files: Iterable[str], detectors: list[str]) -> pd.DataFrame:
    """Rows of model metrics after unlearning; the poisoned model appears as unlearner ``none`` once per
    detector (zero time; measured even when the attack failed, its ``status`` then says so); ``cost_vs_eu`` is
    each row's seconds over the ``eu`` row's of its run and detector."""
    rows = [load_json(f) for f in unlearned_files]
    for f in poisoned_files:
        base = load_json(f)
        rows += [{**base, "detector": d, "unlearner": "none", **dict.fromkeys(TIMES, 0.0)} for d in detectors]
    df = _with_status(pd.DataFrame(rows, columns=[c for c in UNLEARNING_COLUMNS if "cost_vs_eu" not in c]))
    keys = RUN_KEYS + ["detector"]
    eu = df[df.unlearner == "eu"].set_index(keys)[["seconds", "cpu_seconds"]].add_prefix("eu_")
    df = df.join(eu, on=keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["cost_vs_eu"] = df.seconds / df.eu_seconds.where(df.eu_seconds > 0)
        df["cpu_cost_vs_eu"] = df.cpu_seconds / df.eu_cpu_seconds.where(df.eu_cpu_seconds > 0)
    df = df[UNLEARNING_COLUMNS]
    return df.sort_values(["dataset", "attack", "detector", "unlearner", "seed"]).reset_index(drop=True)


def reference_table(poisoned_files: Iterable[str], clean_files: Iterable[str] = ()) -> pd.DataFrame:
    """Clean accuracy and PSR of the poisoned model (every run, also when its attack failed) and of the model
    trained on the clean data (``metrics/clean_model.json``: how often a never-poisoned model already does
    what the attack wants), one row per run and model."""
    parts = [_rows(files, REFERENCE_COLUMNS[:3] + REFERENCE_COLUMNS[4:]).assign(model=model)
             for model, files in (("poisoned model", poisoned_files), ("clean model", clean_files))]
    df = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame(columns=REFERENCE_COLUMNS)
    if "model" in df and (df["model"] == "clean model").any():
        df.loc[df["model"] == "clean model", "status"] = OK  # the clean model's numbers never depend on the attack taking
    return df[REFERENCE_COLUMNS].sort_values(["dataset", "attack", "model", "seed"]).reset_index(drop=True)


def _group_status(status: pd.Series) -> str:
    failed = status[status != OK]
    if failed.empty:
        return OK
    if len(failed) == len(status) or failed.iloc[0].startswith(NO_QUERY_PREFIX):
        return str(failed.iloc[0])
    return f"attack failed on {len(failed)} of {len(status)} seeds ({failed.iloc[0]}): metrics over the others"


def _summarise(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean/std over seeds of the rows whose status is ok; n_seeds, n_ok, attack_success and status per group."""
    ok = df[df.status == OK]
    grouped = ok.groupby(keys, sort=True)[metrics]
    stats = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    all_groups = df.groupby(keys, sort=True)
    out = pd.DataFrame({"n_seeds": all_groups.size(), "status": all_groups["status"].agg(_group_status)})
    out["n_ok"] = ok.groupby(keys, sort=True).size().reindex(out.index).fillna(0).astype(int)
    out["attack_success"] = out.n_ok / out.n_seeds
    out.loc[out.status.str.startswith(NO_QUERY_PREFIX), "attack_success"] = float("nan")  # no query by design
    out = out.join(stats)
    for m in metrics:
        for s in ("mean", "std"):
            if f"{m}_{s}" not in out:
                out[f"{m}_{s}"] = float("nan")
    return out.reset_index()


def summary_table(detection: pd.DataFrame, unlearning: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, attack, detector, unlearner), over the seeds whose attack took
    (``n_ok`` of ``n_seeds``; ``attack_success`` = n_ok / n_seeds), with reference rows first per
    (dataset, attack): detector "—", unlearner "poisoned model" (every seed, also those whose attack failed) and
    "clean model" (the model trained on the clean data, when the grid has one). ``uses_truth`` marks rows
    whose detector reads the ground truth (the oracle)."""
    merged = unlearning.merge(detection.drop(columns="status"), on=RUN_KEYS + ["detector"], how="left")
    out = _summarise(merged, SUMMARY_KEYS, SUMMARY_METRICS)
    truth = merged.groupby(SUMMARY_KEYS, sort=True).uses_truth.max()
    out["uses_truth"] = [isinstance(v, (bool, np.bool_)) and bool(v) for v in (truth.get(tuple(k)) for k in out[SUMMARY_KEYS].itertuples(index=False))]
    if reference is not None and len(reference):
        ref = reference.rename(columns={"model": "unlearner"}).assign(detector=NO_DETECTOR)
        refs = _summarise(ref.assign(status=OK), SUMMARY_KEYS, ["clean_acc", "psr"])  # every seed is measured
        grouped = ref.groupby(SUMMARY_KEYS, sort=True).status
        keys = list(zip(*(refs[k] for k in SUMMARY_KEYS)))
        refs["status"] = [grouped.agg(_group_status)[k] for k in keys]
        took = grouped.agg(lambda st: float((st == OK).mean()))
        refs["attack_success"] = [took[k] if k[3] == "poisoned model" else float("nan") for k in keys]
        refs["uses_truth"] = False
        out = pd.concat([refs, out], ignore_index=True)
    out["_ref"] = out.detector != NO_DETECTOR  # reference rows first within each (dataset, attack)
    out = out.sort_values(["dataset", "attack", "_ref", "detector", "unlearner"], kind="stable").drop(columns="_ref")
    ordered = (["n_seeds", "n_ok", "attack_success", "uses_truth"]
               + [f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std")] + ["status"])
    for col in ordered:
        if col not in out:
            out[col] = float("nan")
    return out[SUMMARY_KEYS + ordered].reset_index(drop=True)


def _pct(r: Any, m: str) -> str:
    return _pm(getattr(r, m + "_mean"), getattr(r, m + "_std"))


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table with percentages as mean ± std (for the README and the report).

    ``attack ok`` counts the seeds whose attack took (the defender could be handed an affected point); a row
    whose every seed failed reads ``n/a (attack failed: …)``. ``seconds`` is the unlearner's mean wall time;
    ``× EU`` its wall time over EU's on the same runs (mean ± std over seeds). Detectors that read the ground
    truth (the oracle) are marked with a dagger and a note.
    """
    lines = [
        "| dataset | attack | detector | unlearner | attack ok | flagged | TPR % | precision % | clean acc % | PSR % | seconds | × EU |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples(index=False):
        ok = "—" if pd.isna(r.attack_success) else f"{round(r.attack_success * r.n_seeds)}/{r.n_seeds}"
        if r.detector == NO_DETECTOR:
            cells = ["—", "—", "—", _pct(r, "clean_acc"), _pct(r, "psr"), "—", "—"]
        elif r.n_ok == 0:
            cells = [r.status, "—", "—", "—", "—", "—", "—"]
        else:
            flagged = "—" if pd.isna(r.n_flagged_mean) else f"{r.n_flagged_mean:.0f}"
            cells = [flagged, _pct(r, "tpr"), _pct(r, "precision"), _pct(r, "clean_acc"), _pct(r, "psr"),
                     f"{r.seconds_mean:.1f}", _pm(r.cost_vs_eu_mean, r.cost_vs_eu_std, 1.0, 2)]
        det = f"{r.detector} {TRUTH_MARK}" if bool(r.uses_truth) else r.detector
        lines.append(f"| {r.dataset} | {r.attack} | {det} | {r.unlearner} | {ok} | " + " | ".join(cells) + " |")
    if summary.uses_truth.astype(bool).any():
        lines.append(f"\n{TRUTH_MARK} reads the ground truth (the oracle): an upper bound for the unlearners, not a defence.")
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
    """Rows of the counterfactual (paper Table 3) of every run, and their mean ± std over the seeds whose
    attack took."""
    rows = [row for f in files for row in load_json(f)["rows"]]
    df = _with_status(pd.DataFrame(rows))
    out = _summarise(df, ["dataset", "attack", "detector", "removed"], ["n_removed", "tpr", "clean_acc", "psr"])
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
            cells = [f"{r.n_removed_mean:.1f}", _pct(r, "tpr"), _pct(r, "clean_acc"), _pct(r, "psr")]
        seeds = f"{r.n_ok}" if r.n_ok == r.n_seeds else f"{r.n_ok} of {r.n_seeds}"
        lines.append(f"| {r.dataset} | {r.attack} | {r.detector} | {what} | " + " | ".join(cells) + f" | {seeds} |")
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
