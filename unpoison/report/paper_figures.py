"""The paper's Figures 2–5 from the tidy unlearning table and the per-dataset collapse figures.

Every function writes its PNG atomically and always writes one: when the grid lacks what a figure needs,
the PNG states what is missing and how to add it (see :func:`placeholder`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unpoison.report.figures import placeholder, save_figure  # noqa: E402
from unpoison.report.paper import PaperGrid, aggregate  # noqa: E402
from unpoison.report.stats import seed_word  # noqa: E402


def assemble(panels: Mapping[str, str | None], out: str, title: str, missing: str = "not available") -> None:
    """Paper Figure 2: the existing per-(dataset, attack) PNGs stacked one under another, each titled by its key;
    a key mapped to None gets a panel saying ``missing``. No panel at all: a :func:`placeholder`."""
    if not panels:
        placeholder(out, title, missing)
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for ax, (name, path) in zip(axes[:, 0], panels.items()):
        ax.axis("off")
        ax.set_title(name, fontsize=11)
        if path:
            ax.imshow(mpimg.imread(path))
        else:
            ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=10, transform=ax.transAxes)
    fig.suptitle(title)
    save_figure(fig, out)


def _reference(df: pd.DataFrame, ds: str, att: str) -> dict | None:
    """The poisoned model (unlearner ``none``) of a (dataset, attack), once per seed."""
    base = df[(df.dataset == ds) & (df.attack == att) & (df.unlearner == "none")]
    base = base.drop_duplicates(["dataset", "attack", "seed"]) if "seed" in base.columns else base
    return aggregate(base, ["psr", "clean_acc"]) if len(base) else None


def _panels(grid: PaperGrid, rows: int) -> tuple[plt.Figure, np.ndarray]:
    cols = max(1, len(grid.columns))
    return plt.subplots(
        rows, cols, figsize=(max(5.5, 0.6 * len(grid.detectors) + 2.5) * cols, 3.4 * rows), squeeze=False
    )


def plot_after_unlearner(
    unlearning: pd.DataFrame, grid: PaperGrid, unlearner_method: str, out: str, title: str
) -> None:
    """Paper Figure 3 (``eu``) and Figure 5 (``scrub``): PSR and clean accuracy after one unlearner per detector,
    mean ± std over seeds, one column of panels per (dataset, attack); the poisoned model is a dashed line."""
    name = grid.unlearner_for(unlearner_method)
    if name is None:
        placeholder(out, title, f"no {unlearner_method.upper()} in unlearners (add `{unlearner_method}` to unlearners)")
        return
    if not grid.detectors:
        placeholder(out, title, "no detectors configured")
        return
    fig, axes = _panels(grid, 2)
    for c, (ds, att) in enumerate(grid.columns):
        ref = _reference(unlearning, ds, att)
        for r, (metric, what) in enumerate((("psr", "PSR %"), ("clean_acc", "clean accuracy %"))):
            ax = axes[r, c]
            xs, labels = np.arange(len(grid.detectors)), []
            for x, det in zip(xs, grid.ordered()):
                sel = unlearning[
                    (unlearning.dataset == ds)
                    & (unlearning.attack == att)
                    & (unlearning.detector == det.name)
                    & (unlearning.unlearner == name)
                ]
                agg = aggregate(sel, [metric])
                labels.append(det.label)
                if agg["n_seeds"] and not math.isnan(agg[f"{metric}_mean"]):
                    ax.bar(x, 100 * agg[f"{metric}_mean"], yerr=100 * agg[f"{metric}_std"], capsize=3, color="tab:blue")
                    ax.annotate(f"n={agg['n_seeds']}", (x, 2), ha="center", fontsize=6, color="white")
                else:
                    ax.text(
                        x,
                        50,
                        agg["note"] if agg["note"] != "missing: no rows" else "not run",
                        rotation=90,
                        ha="center",
                        va="center",
                        fontsize=6,
                    )
            if ref and ref["n_seeds"]:
                ax.axhline(100 * ref[f"{metric}_mean"], color="k", ls="--", lw=1, label="poisoned model")
                ax.legend(fontsize=7, loc="upper right")
            ax.set_xticks(xs, labels, rotation=35, ha="right", fontsize=7)
            ax.set(ylabel=what, ylim=(0, 105))
            if r == 0:
                ax.set_title(f"{ds} / {att}: after {name}")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)


def _point(ax: plt.Axes, agg: dict, label: str, **style) -> None:
    """One aggregate as a point: clean accuracy against PSR (%), ± std error bars."""
    ax.errorbar(
        100 * agg["clean_acc_mean"],
        100 * agg["psr_mean"],
        xerr=100 * agg["clean_acc_std"],
        yerr=100 * agg["psr_std"],
        label=label,
        **style,
    )


def plot_unlearners(unlearning: pd.DataFrame, grid: PaperGrid, detector_method: str, out: str, title: str) -> None:
    """Paper Figure 4: PSR against clean accuracy after every configured unlearner on one detector's flags
    (``delta_influence``: the one so named, else its first variant), mean ± std over seeds; ``none`` is the
    poisoned model."""
    det = grid.pick(detector_method)
    trained = [u for u, m in grid.unlearners.items() if m != "none"]
    if det is None:
        placeholder(out, title, f"not run (add `{detector_method}` to detectors)")
        return
    if not trained:
        placeholder(out, title, "only `none` in unlearners (add eu, cf or scrub to unlearners)")
        return
    fig, axes = plt.subplots(
        1, max(1, len(grid.columns)), figsize=(5.5 * max(1, len(grid.columns)), 4.2), squeeze=False
    )
    for ax, (ds, att) in zip(axes[0], grid.columns):
        shown = 0
        ref = _reference(unlearning, ds, att)
        if ref and ref["n_seeds"]:
            _point(ax, ref, f"poisoned model ({seed_word(ref['n_seeds'])})", fmt="X", color="k", ms=9)
            shown += 1
        for u in trained:
            sel = unlearning[
                (unlearning.dataset == ds)
                & (unlearning.attack == att)
                & (unlearning.detector == det.name)
                & (unlearning.unlearner == u)
            ]
            agg = aggregate(sel, ["psr", "clean_acc"])
            if agg["n_seeds"] and not math.isnan(agg["psr_mean"]):
                _point(ax, agg, f"{u} ({seed_word(agg['n_seeds'])})", fmt="o", capsize=3)
                shown += 1
        if not shown:
            ax.text(0.5, 0.5, "missing: no rows in unlearning.csv", ha="center", transform=ax.transAxes)
        ax.set(
            xlabel="clean test accuracy %",
            ylabel="poison success rate %",
            title=f"{ds} / {att}: on {det.label}'s flags",
        )
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        if shown:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out)


# The registered method each paper figure is about (Figure 2 and 4: a detector; Figures 3 and 5: an unlearner).
FIGURE_METHODS = {"figure2": "delta_influence", "figure3": "eu", "figure4": "delta_influence", "figure5": "scrub"}
FIGURE_TITLES = {
    "figure2": "Figure 2: influence collapse (Δ per transform, poisons vs clean points; first seed whose attack took)",
    "figure3": "Figure 3: PSR and clean accuracy after exact unlearning (EU) per detector",
    "figure4": "Figure 4: unlearners on Δ-Influence's flags",
    "figure5": "Figure 5: SCRUB per detector",
}


def write_paper(
    detection: pd.DataFrame,
    unlearning: pd.DataFrame,
    counterfactual: pd.DataFrame | None,
    grid: PaperGrid,
    collapse: Mapping[str, Mapping[str, str]],
    outputs: Mapping[str, str],
    seeds: list[int] | None = None,
) -> None:
    """Write every paper table (``tableN`` CSV with its provenance sidecar, ``tableN_md`` Markdown) and figure
    (``figureN``) named in ``outputs``.

    Args:
        detection, unlearning: ``results/tables/{detection,unlearning}.csv`` (extra columns are ignored).
        counterfactual: ``results/tables/counterfactual.csv``, or None when the grid has no counterfactual.
        grid: what was configured (:class:`PaperGrid`).
        collapse: detector name → {"dataset / attack": its influence-collapse PNG}; Figure 2 shows the detector the
            paper's Figure 2 is about (:data:`FIGURE_METHODS`).
        outputs: output key → path.
        seeds: the seeds the tables aggregate (default: the detection table's ``seed`` column, else the grid's).
    """
    from unpoison.io import write_csv, write_text
    from unpoison.report.paper import paper_tables

    if seeds is None:
        seeds = sorted({int(s) for s in detection["seed"].dropna()}) if "seed" in detection.columns else []
        seeds = seeds or grid.seeds
    for name, (long, md) in paper_tables(detection, counterfactual, grid).items():
        if name in outputs:
            write_csv(long, outputs[name], seeds=seeds)
        if f"{name}_md" in outputs:
            write_text(md, outputs[f"{name}_md"], seeds=seeds)
    if "figure2" in outputs:
        method = FIGURE_METHODS["figure2"]
        det = grid.pick(method)
        if det is None:
            placeholder(outputs["figure2"], FIGURE_TITLES["figure2"], f"not run (add `{method}` to detectors)")
        else:
            assemble(
                dict(collapse.get(det.name, {})),
                outputs["figure2"],
                FIGURE_TITLES["figure2"],
                "missing: no influence-collapse figure",
            )
    for name in ("figure3", "figure5"):
        if name in outputs:
            plot_after_unlearner(unlearning, grid, FIGURE_METHODS[name], outputs[name], FIGURE_TITLES[name])
    if "figure4" in outputs:
        plot_unlearners(unlearning, grid, FIGURE_METHODS["figure4"], outputs["figure4"], FIGURE_TITLES["figure4"])
