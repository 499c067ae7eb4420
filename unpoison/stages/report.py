"""Steps of rules/report.smk: the tidy tables of the whole grid and the per-(dataset, attack) figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from unpoison.io import write_csv, write_text
from unpoison.report import figures, gus, tables


def make_tables(
    *,
    detection: Sequence[str],
    unlearned: Sequence[str],
    poisoned: Sequence[str],
    clean_model: Sequence[str],
    detectors: list[str],
    with_none: bool,
    truth_detectors: list[str],
    detection_csv: str,
    unlearning_csv: str,
    summary_csv: str,
    summary_md: str,
) -> None:
    """detection.csv, unlearning.csv (with the poisoned model as ``none`` when it is in the grid), summary.csv and
    summary.md from every run's metrics JSONs."""
    det = tables.detection_table(detection, truth_detectors)
    unl = tables.unlearning_table(unlearned, poisoned if with_none else [], detectors)
    summary = tables.summary_table(det, unl, tables.reference_table(poisoned, clean_model))
    write_csv(det, detection_csv)
    write_csv(unl, unlearning_csv)
    write_csv(summary, summary_csv, seeds=det.seed)
    write_text(tables.summary_markdown(summary), summary_md, seeds=det.seed)


def make_sweep_table(*, sweep: Sequence[str], sweep_csv: str) -> None:
    """The threshold sweep of every run, mean ± std over seeds."""
    write_csv(tables.sweep_table(sweep), sweep_csv)


def make_counterfactual_table(
    *, counterfactual: Sequence[str], counterfactual_csv: str, counterfactual_md: str
) -> None:
    """Paper Table 3's rows over every run (CSV and Markdown)."""
    table = tables.counterfactual_table(counterfactual)
    write_csv(table, counterfactual_csv)
    write_text(tables.counterfactual_markdown(table), counterfactual_md, seeds=table.attrs["seeds"])


def make_gus_table(*, poisoned: Sequence[str], unlearned: Sequence[str], gus_csv: str, gus_md: str) -> None:
    """The Gaussian Unlearning Score of the poisoned model and every detector × unlearner (CSV and Markdown)."""
    rows = gus.gus_rows(poisoned, unlearned)
    write_csv(rows[gus.GUS_COLUMNS], gus_csv, seeds=rows.seed)
    write_text(gus.gus_markdown(gus.gus_summary(rows)), gus_md, seeds=rows.seed)


def plot_threshold_sweep(*, sweep_csv: str, dataset: str, attack: str, figure: str) -> None:
    """Precision against TPR over the swept settings of one (dataset, attack)."""
    df = pd.read_csv(sweep_csv)
    df = df[(df.dataset == dataset) & (df.attack == attack)]
    seeds = df.n_seeds.max() if len(df) else 0
    figures.plot_threshold_sweep(df, figure, f"{dataset} / {attack}: threshold sweep ({seeds} seeds)")


def plot_influence_collapse(
    *,
    scores: Sequence[str],
    truth: Sequence[str],
    seeds: list[int],
    settings: dict[str, Any],
    dataset: str,
    attack: str,
    detector: str,
    figure: str,
) -> None:
    """Δ per transform, poisons vs clean points, for the first seed whose attack took (one detector's τ and k)."""
    tau, k = settings["tau"], settings["k"]
    title = f"{dataset} / {attack} / seed {{seed}}: {detector} (τ={tau:g}, k={k})"
    drawn = figures.plot_influence_collapse(list(zip(seeds, scores, truth)), figure, tau, k, title)
    print(f"drew seed {drawn}" if drawn is not None else "no seed has an affected test point: placeholder")


def plot_psr_vs_accuracy(*, unlearning_csv: str, dataset: str, attack: str, unlearners: list[str], figure: str) -> None:
    """PSR against clean accuracy after each trained unlearner, per detector, for one (dataset, attack)."""
    df = pd.read_csv(unlearning_csv)
    df = df[(df.dataset == dataset) & (df.attack == attack)]
    figures.plot_psr_vs_accuracy(df, figure, unlearners, f"{dataset} / {attack}: PSR vs clean accuracy")


def plot_relearning(*, unlearning_csv: str, dataset: str, attack: str, figure: str) -> None:
    """PSR after unlearning and after the relearning check, per detector × unlearner, for one (dataset, attack)."""
    df = pd.read_csv(unlearning_csv)
    df = df[(df.dataset == dataset) & (df.attack == attack)]
    figures.plot_relearning(df, figure, f"{dataset} / {attack}: does the backdoor come back after clean fine-tuning?")


def plot_gus(*, poisoned: Sequence[str], unlearned: Sequence[str], dataset: str, attack: str, figure: str) -> None:
    """Each noisy point's Gaussian Unlearning Score per model against the null band."""
    gus.plot_gus(gus.gus_rows(poisoned, unlearned), figure, f"{dataset} × {attack}: Gaussian Unlearning Score")
