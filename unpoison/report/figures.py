"""Figures of the tidy results: influence collapse (paper Figure 2), PSR vs clean accuracy per unlearner, the
threshold sweep, attack artifacts. Every writer goes through :func:`save_figure` (atomic PNG)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unpoison.io import atomic_path, load_json, load_torch  # noqa: E402
from unpoison.report.stats import ok_rows  # noqa: E402
from unpoison.status import read_status  # noqa: E402


def save_figure(fig: plt.Figure, path: str) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def placeholder(out: str, title: str, message: str) -> None:
    """A PNG that says why there is nothing to plot (the attack failed, a detector was not run, ...), so that the
    figure file always exists."""
    fig, ax = plt.subplots(figsize=(6.5, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=12, weight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.3, message, ha="center", va="center", fontsize=10, wrap=True, transform=ax.transAxes)
    save_figure(fig, out)


def plot_collapse(
    scores: np.ndarray,
    marked: np.ndarray,
    out: str,
    tau: float = 0.0,
    k: int = 1,
    groups: tuple[str, str] = ("clean", "poison"),
    title: str = "",
) -> None:
    """Δ(i, j) per transform for two groups of training points, and how many transforms collapse each
    point's influence (the rule's :func:`~unpoison.detectors.delta_influence.collapse_counts`), with the decision
    threshold n_b − k.

    Args:
        scores: float (1 + n_b) × N influence of one test point, the untransformed query in row 0.
        marked: boolean (N,), the second group (drawn in red): true poisons, or the points a detector flagged.
        out: PNG path (written atomically).
        tau, k: the decision rule's threshold and slack.
        groups: names of the unmarked and the marked group in the legends.
    """
    import torch

    from unpoison.detectors.delta_influence import collapse_counts

    scores_t = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    counts = collapse_counts(scores_t[None], tau)[0].numpy()
    delta = (scores_t[1:] - scores_t[:1]).numpy()
    n_b = delta.shape[0]
    marked = np.asarray(marked, dtype=bool)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = np.arange(1, n_b + 1)
    parts = [(~marked, "tab:gray", groups[0]), (marked, "tab:red", groups[1])]
    parts = [(mask, colour, label) for mask, colour, label in parts if mask.any()]  # an empty group has no curve
    for mask, colour, label in parts:
        d = delta[:, mask]
        ax1.plot(xs, np.median(d, axis=1), color=colour, label=f"{label} (median, n={mask.sum()})")
        ax1.fill_between(xs, np.quantile(d, 0.1, axis=1), np.quantile(d, 0.9, axis=1), color=colour, alpha=0.25)
    ax1.axhline(tau, color="k", lw=0.8, ls="--")
    ax1.set(
        xlabel="transform j",
        ylabel="Δ(i, j) = score(g_j(z)) − score(z)",
        title="influence change per transform (10–90 %)",
    )
    ax1.legend(fontsize=8)
    bins = np.arange(n_b + 2) - 0.5
    for mask, colour, label in parts:
        ax2.hist(counts[mask], bins=bins, color=colour, alpha=0.7, label=label, log=True)
    ax2.axvline(n_b - k - 0.5, color="k", ls="--", lw=1, label=f"flag ≥ n_b − k = {n_b - k}")
    ax2.set(xlabel=f"#transforms with Δ < τ = {tau:g}", ylabel="training points", title="collapse count")
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, out)


def plot_influence_collapse(
    runs: Sequence[tuple[int, str, str]],
    out: str,
    tau: float = 0.0,
    k: int = 1,
    title: str = "",
) -> int | None:
    """:func:`plot_collapse` of the first test point of the first run, in the given (seed) order, whose attack
    took, poisons (from its truth file) vs clean points.

    Args:
        runs: ``(seed, scores path, truth path)`` per seed; a run without an affected query (its attack failed
            on that seed) is skipped, so a Witches' Brew that failed on the first seed still gets a figure.
        title: may hold ``{seed}``, filled with the seed drawn.

    Returns:
        The seed drawn, or None when no run had a query (a placeholder then gives the first run's reason).
    """
    first_reason = None
    for seed, scores, truth in runs:
        status = read_status(scores)
        if not status.ok:
            first_reason = first_reason or status.label
            continue
        s = load_torch(scores)["scores"][0].numpy()  # (1 + n_b, N) for the first test point
        poison = np.zeros(s.shape[1], dtype=bool)
        poison[load_json(truth)["poison_indices"]] = True
        plot_collapse(s, poison, out, tau, k, ("clean", "poison"), title.format(seed=seed))
        return seed
    seeds = ", ".join(str(seed) for seed, _, _ in runs)
    placeholder(out, title.format(seed=seeds), f"no seed has an affected test point: {first_reason}")
    return None


def plot_psr_vs_accuracy(unlearning: pd.DataFrame, out: str, unlearners: Sequence[str], title: str = "") -> None:
    """One panel per unlearner: PSR against clean accuracy after it, per detector (mean ± std over seeds); the
    poisoned model is the black cross. Rows that do not apply (the attack failed) are left out."""
    df = unlearning[ok_rows(unlearning)]
    fig, axes = plt.subplots(1, max(1, len(unlearners)), figsize=(5.2 * max(1, len(unlearners)), 4.2), squeeze=False)
    base = df[df.unlearner == "none"].drop_duplicates(["dataset", "attack", "seed"])
    for ax, unlearner in zip(axes[0], unlearners):
        if len(base):
            ax.errorbar(
                100 * base.clean_acc.mean(),
                100 * base.psr.mean(),
                xerr=100 * base.clean_acc.std(ddof=0),
                yerr=100 * base.psr.std(ddof=0),
                fmt="X",
                color="k",
                ms=9,
                label="poisoned model",
            )
        for det, g in df[df.unlearner == unlearner].groupby("detector"):
            ax.errorbar(
                100 * g.clean_acc.mean(),
                100 * g.psr.mean(),
                xerr=100 * g.clean_acc.std(ddof=0),
                yerr=100 * g.psr.std(ddof=0),
                fmt="o",
                capsize=3,
                label=det,
            )
        ax.set(xlabel="clean test accuracy %", ylabel="poison success rate %", title=f"after {unlearner}")
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, out)


def plot_relearning(unlearning: pd.DataFrame, out: str, title: str = "") -> None:
    """PSR before and after the relearning check per detector × unlearner (mean over seeds): an arrow from each
    model's PSR to its PSR after a brief clean fine-tune; a backdoor that comes back points up."""
    df = unlearning[ok_rows(unlearning)].dropna(subset=["psr", "psr_relearned"])
    if df.empty:
        placeholder(out, title, "no model with a relearning check (relearning disabled, or no attack took)")
        return
    means = df.groupby(["detector", "unlearner"], sort=True)[["psr", "psr_relearned"]].mean().reset_index()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(means) + 2), 4.2))
    for x, r in enumerate(means.itertuples(index=False)):
        before, after = 100 * r.psr, 100 * r.psr_relearned
        colour = "tab:red" if after > before + 5 else "tab:blue"
        ax.annotate("", (x, after), (x, before), arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
        ax.plot([x], [before], "o", color="k", ms=4)
    ax.set_xticks(
        range(len(means)),
        [f"{u}\n({d})" for d, u in zip(means.detector, means.unlearner)],
        rotation=60,
        fontsize=7,
        ha="right",
    )
    ax.set(ylabel="PSR % (dot: after unlearning; arrow: after relearning)", ylim=(-5, 105), title=title)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, out)


def plot_threshold_sweep(sweep: pd.DataFrame, out: str, title: str = "") -> None:
    """Precision against TPR over each detector's swept settings, means over seeds: one line per detector and,
    for a detector sweeping τ and k, per k (points annotated with τ or the threshold)."""
    if sweep.empty:
        placeholder(out, title, "no run with a successful attack: nothing to sweep")
        return
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    for det, rows in sweep.groupby("detector", sort=False):
        by_k = rows.k.notna().any()
        for k, part in rows.groupby("k") if by_k else [(None, rows)]:
            along = "tau" if part.tau.notna().any() else "threshold"
            part = part.sort_values(along)
            name = f"{det} k={int(k)}" if k is not None else f"{det} ({along})"
            ax.plot(100 * part.tpr_mean, 100 * part.precision_mean, marker="o", label=name)
            for r in part.itertuples(index=False):
                text = f"τ={r.tau:g}" if along == "tau" else f"{r.threshold:g}"
                ax.annotate(text, (100 * r.tpr_mean, 100 * r.precision_mean), fontsize=6, alpha=0.7)
    ax.set(xlabel="TPR % (poisons found)", ylabel="precision % (flags that are poisons)", title=title)
    ax.set_xlim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out)


def plot_artifact(array: np.ndarray, out: str, title: str = "") -> None:
    """An attack's artifact as an image: C×H×W (or H×W) one image, N×C×H×W a row of images.

    uint8 arrays are shown as pixels (0..255); float arrays (e.g. a trigger in [0, 0.2]) are scaled so that
    their largest value is white, and the title states the range.
    """
    a = np.asarray(array)
    images = a[None] if a.ndim == 3 else (a[None, None] if a.ndim == 2 else a)
    if images.ndim != 4:
        raise ValueError(f"artifact of shape {a.shape} is not an image or a stack of images")
    if a.dtype == np.uint8:
        shown, note = images.astype(np.float32) / 255.0, "pixels 0..255"
    else:
        top = float(np.abs(images).max()) or 1.0
        shown, note = (
            np.clip(images / top, 0.0, 1.0),
            f"values {float(a.min()):.3g}..{float(a.max()):.3g}, max shown white",
        )
    fig, axes = plt.subplots(1, len(shown), figsize=(2.2 * len(shown), 2.6), squeeze=False)
    for ax, img in zip(axes[0], shown):
        hwc = np.transpose(img, (1, 2, 0))
        ax.imshow(hwc[..., 0] if hwc.shape[-1] == 1 else hwc, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.axis("off")
    fig.suptitle(f"{title} ({note})", fontsize=8)
    save_figure(fig, out)
