"""The paper's tables (Tables 1–5) from the tidy CSVs of whatever grid ran.

Pure functions over DataFrames. Every table is built twice: a long, machine-readable frame (one row per
table row × dataset × attack, with means, stds, seed count and the printed ``cell``) and a Markdown pivot
of it (rows × dataset/attack columns). A cell that cannot be filled says why in its text ("not run (add
`frequency` to detectors)", "n/a (attack failed: ...)", "missing: ..."), so every table always exists.

Detectors are identified by the :class:`PaperGrid` mapping name → (method, points) that the workflow
passes from the config, so named variants (``delta_influence_5pts: {method: delta_influence, n_points: 5}``)
land in the right cell without any naming convention.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from unpoison.report.stats import OK, pm, seed_word, summarise
from unpoison.status import no_query

# What the paper shows, as registered method names: Table 1's row order, Table 2's ablation, Tables 4-5's points.
PAPER_ORDER = ["spectral_signatures", "activation_clustering", "frequency", "ekfac", "delta_influence"]
ABLATION = ["delta_influence", "label_only", "image_only"]
POINTS = (1, 5, 10)
DETECTION_METRICS = ["precision", "tpr", "n_flagged"]
LONG_COLUMNS = [
    "detector",
    "label",
    "method",
    "points",
    "dataset",
    "attack",
    "n_seeds",
    "precision_mean",
    "precision_std",
    "tpr_mean",
    "tpr_std",
    "n_flagged_mean",
    "cell",
]


@dataclass(frozen=True)
class Detector:
    """A configured detector: its name, the registered method it runs, and how many affected test points it
    intersects (None for detectors that read no test point)."""

    name: str
    method: str
    points: int | None = None
    label: str = ""  # how tables print it (:func:`label`)


def label(name: str, method: str, display: Mapping[str, str]) -> str:
    """A detector's printed name: its method's display name; a named variant shows its config name after its
    method's (``Δ-Influence: delta_influence_5pts``)."""
    shown = display.get(method) or method
    return shown if name == method else f"{shown}: {name}"


@dataclass(frozen=True)
class PaperGrid:
    """What was configured: the grid's datasets, attacks and seeds, detectors (in config order) and unlearners
    (name → method), the counterfactual's detectors; and from the registries, each detector method's display name
    and the attacks that affect no test point."""

    datasets: list[str]
    attacks: list[str]
    detectors: list[Detector]
    unlearners: dict[str, str] = field(default_factory=dict)
    counterfactual: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    no_query_attacks: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PaperGrid:
        """From the workflow's ``params.grid``: ``detectors`` maps name → {method, points}, ``unlearners`` name →
        method, ``display`` method → display name, ``no_query_attacks`` the attacks without an affected point."""
        display = dict(d.get("display", {}))
        dets = []
        for name, spec in d.get("detectors", {}).items():
            points = spec.get("points")
            dets.append(
                Detector(
                    name, spec["method"], None if points is None else int(points), label(name, spec["method"], display)
                )
            )
        return cls(
            list(d.get("datasets", [])),
            list(d.get("attacks", [])),
            dets,
            dict(d.get("unlearners", {})),
            list(d.get("counterfactual", [])),
            [int(s) for s in d.get("seeds", [])],
            display,
            list(d.get("no_query_attacks", [])),
        )

    def placeholder(self, method: str, points: int | None = None) -> Detector:
        """The row of a method the grid did not run."""
        return Detector(method, method, points, label(method, method, self.display))

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(dataset, attack) pairs: the tables' columns."""
        return [(ds, a) for ds in self.datasets for a in self.attacks]

    def detector(self, name: str) -> Detector | None:
        return next((d for d in self.detectors if d.name == name), None)

    def with_method(self, method: str) -> list[Detector]:
        """The configured detectors running ``method``: the one named like it first, then by points and config order."""
        found = [d for d in self.detectors if d.method == method]
        return sorted(found, key=lambda d: (d.name != method, d.points if d.points is not None else math.inf))

    def ordered(self) -> list[Detector]:
        """The configured detectors in the paper's order (:data:`PAPER_ORDER`), then the others in config order."""
        first = [d for name in PAPER_ORDER for d in self.detectors if d.name == name]
        return first + [d for d in self.detectors if d.name not in PAPER_ORDER]

    def pick(self, method: str) -> Detector | None:
        """The detector named ``method``, else the first variant running it, else None."""
        found = self.with_method(method)
        return found[0] if found else None

    def unlearner_for(self, method: str) -> str | None:
        """The unlearner named ``method``, else the first configured one running it, else None."""
        if self.unlearners.get(method) == method:
            return method
        return next((n for n, m in self.unlearners.items() if m == method), None)


def aggregate(rows: pd.DataFrame, metrics: Iterable[str]) -> dict[str, Any]:
    """One group of :func:`unpoison.report.stats.summarise` as a dict: ``n_seeds`` (the rows averaged: those that
    apply), ``<m>_mean``/``<m>_std`` per metric and ``note``: None, or why the group has no usable row or which
    seeds were left out."""
    metrics = list(metrics)
    if len(rows) == 0:
        return {
            "n_seeds": 0,
            "note": "missing: no rows",
            **{f"{m}_{s}": math.nan for m in metrics for s in ("mean", "std")},
        }
    g = summarise(rows.assign(_group=0), ["_group"], metrics).iloc[0]
    out: dict[str, Any] = {"n_seeds": int(g.n_ok), "note": None if g.status == OK else str(g.status)}
    out.update({f"{m}_{s}": float(g[f"{m}_{s}"]) for m in metrics for s in ("mean", "std")})
    return out


def _not_run_detector(method: str, points: int | None = None) -> str:
    if points is None:
        return f"not run (add `{method}` to detectors)"
    return (
        f"not run (add a `{method}` detector with n_points: {points} to detectors, e.g. "
        f"`{method}_{points}pts` of experiments/points.yaml)"
    )


def detection_cell(agg: Mapping[str, Any]) -> str:
    """``prec ± std / TPR ± std (n seeds)`` in percent, or the reason there is no number."""
    if agg["n_seeds"] == 0 or math.isnan(agg["precision_mean"]):
        return agg["note"] or "missing"
    cell = f"{pm(agg['precision_mean'], agg['precision_std'])} / {pm(agg['tpr_mean'], agg['tpr_std'])} ({seed_word(agg['n_seeds'])})"
    return f"{cell}; {agg['note']}" if agg["note"] else cell


def _detection_rows(detection: pd.DataFrame, grid: PaperGrid, rows: list[tuple[Detector, str | None]]) -> pd.DataFrame:
    """The long table of ``rows`` (detector, reason it was not run or None) × the grid's columns."""
    out = []
    for det, reason in rows:
        for ds, att in grid.columns:
            rec: dict[str, Any] = {
                "detector": det.name,
                "label": det.label,
                "method": det.method,
                "points": det.points,
                "dataset": ds,
                "attack": att,
            }
            if reason is not None:
                rec.update(n_seeds=0, cell=reason)
            else:
                sel = detection[
                    (detection.dataset == ds) & (detection.attack == att) & (detection.detector == det.name)
                ]
                agg = aggregate(sel, DETECTION_METRICS)
                if len(sel) == 0:
                    agg["note"] = "missing: no rows in detection.csv (not run yet?)"
                rec.update({k: v for k, v in agg.items() if k != "note"}, cell=detection_cell(agg))
            out.append(rec)
    df = pd.DataFrame(out).reindex(columns=LONG_COLUMNS)
    df["points"] = df["points"].astype("Int64")
    return df


def table1(detection: pd.DataFrame, grid: PaperGrid) -> pd.DataFrame:
    """Paper Table 1, precision / TPR: the paper's detectors in its order (a missing one says how to add it),
    then every other configured detector (ablations, named variants, oracles) in config order."""
    rows: list[tuple[Detector, str | None]] = []
    for name in PAPER_ORDER:
        det = grid.detector(name)
        rows.append((det, None) if det else (grid.placeholder(name), _not_run_detector(name)))
    rows += [(d, None) for d in grid.detectors if d.name not in PAPER_ORDER]
    return _detection_rows(detection, grid, rows)


def table2(detection: pd.DataFrame, grid: PaperGrid) -> pd.DataFrame:
    """Paper Table 2, the ablation: every configured detector running delta_influence, label_only or image_only
    (by method, fewest points first); a method not configured gets one row saying so."""
    rows: list[tuple[Detector, str | None]] = []
    for method in ABLATION:
        found = grid.with_method(method)
        rows += [(d, None) for d in found] if found else [(grid.placeholder(method), _not_run_detector(method))]
    return _detection_rows(detection, grid, rows)


def points_table(detection: pd.DataFrame, grid: PaperGrid, method: str) -> pd.DataFrame:
    """Paper Tables 4 (``delta_influence``) and 5 (``ekfac``, "boosted"): the detectors running ``method`` by the
    number of affected test points they intersect. The rows 1, 5 and 10 always exist (a missing one says how
    to add it); other point counts that ran follow."""
    found = [d for d in grid.with_method(method) if d.points is not None]
    counts = sorted(set(POINTS) | {d.points for d in found})
    rows: list[tuple[Detector, str | None]] = []
    for n in counts:
        at = [d for d in found if d.points == n]
        rows += [(d, None) for d in at] if at else [(grid.placeholder(method, n), _not_run_detector(method, n))]
    return _detection_rows(detection, grid, rows)


CF_COLUMNS = [
    "detector",
    "removed",
    "dataset",
    "attack",
    "n_seeds",
    "n_removed_mean",
    "psr_mean",
    "psr_std",
    "clean_acc_mean",
    "clean_acc_std",
    "cell",
]
REMOVED = {"detected": "detected poisons", "missed": "missed poisons"}


def table3(counterfactual: pd.DataFrame | None, grid: PaperGrid) -> pd.DataFrame:
    """Paper Table 3, the counterfactual: PSR and clean accuracy after retraining without the poisons a detector
    found vs without those it missed, from ``results/tables/counterfactual.csv`` (None: not configured)."""
    detectors = [d for d in grid.counterfactual if grid.detector(d)]
    out = []
    if not detectors:
        unknown = [d for d in grid.counterfactual if not grid.detector(d)]
        reason = (
            f"not run (`{'`, `'.join(unknown)}` in counterfactual: but not in detectors)"
            if unknown
            else "not run (add `delta_influence` to counterfactual:)"
        )
        detectors_reason = [(d, reason) for d in (unknown or ["delta_influence"])]
    else:
        detectors_reason = [(d, None) for d in detectors]
    for det, reason in detectors_reason:
        for removed in REMOVED:
            for ds, att in grid.columns:
                rec: dict[str, Any] = {"detector": det, "removed": removed, "dataset": ds, "attack": att, "n_seeds": 0}
                sel = pd.DataFrame()
                if reason is None and counterfactual is not None:
                    sel = counterfactual[
                        (counterfactual.dataset == ds)
                        & (counterfactual.attack == att)
                        & (counterfactual.detector == det)
                        & (counterfactual.removed == removed)
                    ]
                if reason is not None:
                    rec["cell"] = reason
                elif att in grid.no_query_attacks:
                    rec["cell"] = no_query(f"{att} affects no test point; the counterfactual does not apply").label
                elif counterfactual is None or len(sel) == 0:
                    rec["cell"] = "missing: no rows in counterfactual.csv (not run yet?)"
                else:
                    r = sel.iloc[0]
                    status = str(r.get("status", OK)) if "status" in sel.columns and pd.notna(r.get("status")) else OK
                    rec.update({c: r[c] for c in CF_COLUMNS if c in sel.columns and c not in rec})
                    # seeds averaged: those whose attack took (n_ok) when the summary says which
                    n_avg = int(r.n_ok) if "n_ok" in sel.columns and pd.notna(r.get("n_ok")) else int(r.n_seeds)
                    rec["n_seeds"] = n_avg
                    if status != OK and (pd.isna(r.get("psr_mean")) or n_avg == 0):
                        rec["cell"] = status
                    else:
                        rec["cell"] = (
                            f"PSR {pm(r.psr_mean, r.psr_std)} / acc {pm(r.clean_acc_mean, r.clean_acc_std)} "
                            f"({_count(r.n_removed_mean)} removed, {seed_word(n_avg)})"
                        )
                        if status != OK:  # e.g. "attack failed on 1 of 3 seeds (…): metrics over the others"
                            rec["cell"] += f"; {status}"
                out.append(rec)
    return pd.DataFrame(out).reindex(columns=CF_COLUMNS)


def _count(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def markdown(
    long: pd.DataFrame, row_keys: list[str], title: str, headers: Mapping[str, str] | None = None, legend: str = ""
) -> str:
    """A long table as Markdown: one line per distinct ``row_keys`` (in first-seen order), one column per
    (dataset, attack) holding ``cell``. ``headers`` renames the row-key columns; ``detector`` values that are
    registered methods print with the paper's names."""
    headers = dict(headers or {})
    cols = list(dict.fromkeys(zip(long.dataset, long.attack)))
    names = [headers.get(k, k) for k in row_keys] + [f"{d} / {a}" for d, a in cols]
    lines = [f"**{title}**", ""] + ([legend, ""] if legend else [])
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(row_keys) + "---:|" * len(cols)]
    cells = {(tuple(r[k] for k in row_keys), (r["dataset"], r["attack"])): r["cell"] for _, r in long.iterrows()}
    for key in dict.fromkeys(tuple(r[k] for k in row_keys) for _, r in long.iterrows()):
        shown = [_show(k, v, long) for k, v in zip(row_keys, key)]
        lines.append("| " + " | ".join(shown + [str(cells.get((key, c), "missing")) for c in cols]) + " |")
    return "\n".join(lines) + "\n"


def _show(key: str, value: Any, long: pd.DataFrame) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if key == "detector" and "label" in long.columns:
        return str(long.loc[long.detector == value, "label"].iloc[0])
    if key == "removed":
        return REMOVED.get(str(value), str(value))
    return str(value)


DETECTION_LEGEND = "Cells: precision % ± std / TPR % ± std over seeds (seed count)."


def paper_tables(
    detection: pd.DataFrame, counterfactual: pd.DataFrame | None, grid: PaperGrid
) -> dict[str, tuple[pd.DataFrame, str]]:
    """All five tables: name → (long DataFrame for the CSV, Markdown)."""
    t1 = table1(detection, grid)
    t2 = table2(detection, grid)
    t3 = table3(counterfactual, grid)
    t4 = points_table(detection, grid, "delta_influence")
    t5 = points_table(detection, grid, "ekfac")
    pts = {"points": "test points"}
    return {
        "table1": (
            t1,
            markdown(t1, ["detector", "points"], "Table 1: detection precision / TPR", pts, DETECTION_LEGEND),
        ),
        "table2": (
            t2,
            markdown(
                t2, ["detector", "points"], "Table 2: ablation of Δ-Influence's transforms", pts, DETECTION_LEGEND
            ),
        ),
        "table3": (
            t3,
            markdown(
                t3,
                ["detector", "removed"],
                "Table 3: counterfactual (exact unlearning without the detected vs the missed poisons)",
                {"removed": "retrained without"},
                "Cells: PSR % ± std / clean accuracy % ± std (poisons removed, seed count).",
            ),
        ),
        "table4": (
            t4,
            markdown(
                t4,
                ["points", "detector"],
                "Table 4: Δ-Influence with 1, 5 and 10 affected test points",
                pts,
                DETECTION_LEGEND,
            ),
        ),
        "table5": (
            t5,
            markdown(
                t5,
                ["points", "detector"],
                "Table 5: EK-FAC (boosted) with 1, 5 and 10 affected test points",
                pts,
                DETECTION_LEGEND,
            ),
        ),
    }
