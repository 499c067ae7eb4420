"""The Gaussian Unlearning Score table and figure (attacks measured by it: Gaussian poisoning).

Rows come from the same metrics JSONs as the other tables (the poisoned model and every detector × unlearner);
a model's ``gus_*`` fields are written by :func:`unpoison.gus.gaussian_unlearning_score` during evaluation. The
reference for "unlearned" is EU on the oracle's complete forget set: retraining without every noisy point.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unpoison.io import load_json  # noqa: E402
from unpoison.report.figures import placeholder, save_figure  # noqa: E402
from unpoison.report.stats import ok_rows, summarise  # noqa: E402

GUS_METRICS = ["gus_mean", "gus_tpr_at_1fpr", "gus_auc", "clean_acc", "seconds"]
GUS_COLUMNS = [
    "dataset",
    "attack",
    "seed",
    "detector",
    "unlearner",
    "clean_acc",
    "gus_mean",
    "gus_std",
    "gus_tpr_at_1fpr",
    "gus_auc",
    "gus_null_mean",
    "gus_null_std",
    "gus_n_points",
    "seconds",
    "status",
    "state",
]
KEYS = ["dataset", "attack", "detector", "unlearner"]
POISONED = ("—", "poisoned model")  # (detector, unlearner) of the reference row


def gus_rows(poisoned_files: Iterable[str], unlearned_files: Iterable[str]) -> pd.DataFrame:
    """One row per model with a Gaussian Unlearning Score (``gus_values`` kept for the figure); unlearned models
    whose detector did not apply keep their row with NaN scores and its ``status``."""
    rows = []
    for f in poisoned_files:
        r = load_json(f)
        rows.append({**r, "detector": POISONED[0], "unlearner": POISONED[1], "seconds": 0.0})
    rows += [load_json(f) for f in unlearned_files]
    df = pd.DataFrame(rows)
    for c in GUS_COLUMNS + ["gus_values"]:
        if c not in df:
            df[c] = np.nan
    df["gus_values"] = [v if isinstance(v, list) else [] for v in df.gus_values]
    return (
        df[GUS_COLUMNS + ["gus_values"]]
        .sort_values(["dataset", "attack", "detector", "unlearner", "seed"])
        .reset_index(drop=True)
    )


def gus_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of the GUS metrics per (dataset, attack, detector, unlearner), over rows whose status
    applies (``n_ok`` of ``n_seeds``); the poisoned model first within each (dataset, attack)."""
    out = summarise(rows, KEYS, GUS_METRICS)
    out["_ref"] = out.unlearner != POISONED[1]
    return (
        out.sort_values(["dataset", "attack", "_ref", "detector", "unlearner"], kind="stable")
        .drop(columns="_ref")
        .reset_index(drop=True)
    )


def gus_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table: mean I over the poisons, TPR at 1 % FPR and AUC against fresh noise."""
    lines = [
        "| dataset | detector | unlearner | seeds | mean I | TPR @ 1 % FPR % | AUC | clean acc % | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples(index=False):
        if r.n_ok == 0:  # no seed applies: say why
            lines.append(f"| {r.dataset} | {r.detector} | {r.unlearner} | {r.n_seeds} | {r.status} | — | — | — | — |")
            continue
        cells = [
            f"{r.gus_mean_mean:.2f} ± {r.gus_mean_std:.2f}",
            f"{100 * r.gus_tpr_at_1fpr_mean:.1f} ± {100 * r.gus_tpr_at_1fpr_std:.1f}",
            f"{r.gus_auc_mean:.2f} ± {r.gus_auc_std:.2f}",
            f"{100 * r.clean_acc_mean:.1f} ± {100 * r.clean_acc_std:.1f}",
            f"{r.seconds_mean:.1f}",
        ]
        lines.append(f"| {r.dataset} | {r.detector} | {r.unlearner} | {r.n_seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_gus(rows: pd.DataFrame, out: str, title: str = "") -> None:
    """Per model (poisoned, then each detector × unlearner that applied): the poisons' I values pooled over seeds,
    their mean, and the null band (N(0, 1): the central 98 %, i.e. ±2.33); a model that still carries the noise
    sits below the band."""
    rows = rows[ok_rows(rows) & (rows.gus_values.map(len) > 0)]
    if rows.empty:
        placeholder(out, title, "no model with a Gaussian Unlearning Score in this grid")
        return
    groups = list(rows.groupby(["detector", "unlearner"], sort=False))
    groups.sort(key=lambda kv: (kv[0][1] != POISONED[1], kv[0]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(groups) + 2), 4))
    ax.axhspan(-2.326, 2.326, color="0.9", label="null: 98 % of N(0, 1)")
    ax.axhline(0, color="0.6", lw=0.8)
    rng = np.random.default_rng(0)  # horizontal jitter only
    for i, ((_det, unl), g) in enumerate(groups):
        values = np.concatenate([np.asarray(v, dtype=float) for v in g.gus_values])
        ax.scatter(
            i + rng.uniform(-0.18, 0.18, len(values)),
            values,
            s=8,
            alpha=0.5,
            color="C3" if unl == POISONED[1] else "C0",
        )
        ax.plot([i - 0.3, i + 0.3], [values.mean()] * 2, color="k", lw=2)
    ax.set_xticks(
        range(len(groups)),
        [u if d == POISONED[0] else f"{u}\n({d})" for (d, u), _ in groups],
        rotation=60,
        fontsize=7,
        ha="right",
    )
    ax.set(ylabel="I = ⟨∇ₓℓ, δ − μ⟩ / sd   (per poison)", title=title or "Gaussian Unlearning Score")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, out)
