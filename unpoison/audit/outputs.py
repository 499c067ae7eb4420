"""The audit's outputs, each written atomically: flagged.csv/.npy, scores.pt, a contact sheet of the most
collapsed training images, the collapse plot, audit.json and summary.md (written last)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from unpoison.audit.core import AuditResult, AuditSettings, Queries  # noqa: E402
from unpoison.audit.inputs import TrainingSet  # noqa: E402
from unpoison.influence.progress import format_seconds  # noqa: E402
from unpoison.io import atomic_path, save_json, save_npy, save_torch  # noqa: E402
from unpoison.report.figures import plot_collapse  # noqa: E402

FILES = {
    "flagged.csv": "the flagged training images, most collapsed first: index, file, label, collapse count, base "
    "influence",
    "flagged.npy": "the same indices (int64, sorted), into the training set in the order the audit read it",
    "top_collapsed.png": "contact sheet of the most collapsed training images (red title: flagged)",
    "collapse.png": "Δ per transform and the collapse count, flagged vs the other training images (first image)",
    "scores.pt": "the raw influence scores (q, 1 + n_b, N), to re-apply other τ/k without re-scoring",
    "audit.json": "inputs (with the tracked modules), settings, counts and times, machine-readable",
    "audit.log": "the run log: every progress line, time-stamped, and the full traceback of a failure",
}


CAVEATS = [  # the caveats section of summary.md
    "- τ and k are fixed at the paper's defaults, NOT tuned: an audit has no ground truth. Other values can be "
    "re-applied to `scores.pt` without re-scoring.",
    "- Flags are candidates, not proof. With one image, expect clean images among them (on the pipeline's digits "
    "benchmark one image finds every poison at about 40 % precision); several suspicious images of one attack, "
    "intersected, are far more precise. Look at the contact sheet before removing anything.",
    "- The audited label should be the one the model gives the image (the attacker's target). An image the "
    "attack does not affect gives no signal, and poisons the audited image does not rely on are not found.",
    "- The model must see its inputs as in training: project models normalise themselves; any other model "
    "gets [0, 1] images normalised by --mean/--std (none given = no normalisation) at --input-size (none = the "
    "images' size). A low agreement with the training labels above means this is wrong.",
    "- Only the Linear and Conv2d modules listed above enter the influence (EK-FAC); the transforms are drawn from "
    "the augmentation families listed under Settings (choose them with --augmentations when the model was "
    "trained with augmentations that make some of them ordinary for it).",
]


def ranking(result: AuditResult) -> np.ndarray:
    """Every training index, most collapsed first: by the smallest collapse count over the suspicious images
    (what the rule compares with n_b − k, so flagged points come first), then by mean base influence."""
    worst = result.collapse.min(dim=0).values.numpy()
    base = result.scores[:, 0].mean(dim=0).numpy()
    return np.lexsort((-base, -worst))


def flagged_table(train: TrainingSet, result: AuditResult) -> pd.DataFrame:
    """One row per flagged training image, most collapsed first."""
    order = ranking(result)
    is_flagged = np.zeros(len(order), dtype=bool)
    is_flagged[result.flagged] = True
    rows = order[is_flagged[order]]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(rows) + 1),
            "index": rows,
            "file": [train.names[i] for i in rows],
            "label": train.y[rows].numpy(),
            "class": [train.classes[int(train.y[i])] for i in rows],
            "collapse_count": result.collapse.min(dim=0).values.numpy()[rows],
            "base_influence": result.scores[:, 0].mean(dim=0).numpy()[rows],
        }
    )
    if len(result.collapse) > 1:
        for q in range(len(result.collapse)):
            table[f"collapse_count_q{q + 1}"] = result.collapse[q].numpy()[rows]
            table[f"base_influence_q{q + 1}"] = result.scores[q, 0].numpy()[rows]
    return table


def contact_sheet(train: TrainingSet, result: AuditResult, n_b: int, out: Path, size: int = 32) -> None:
    """The ``size`` most collapsed training images with file, label and collapse count (red: flagged)."""
    top = ranking(result)[:size]
    flagged = set(result.flagged.tolist())
    worst = result.collapse.min(dim=0).values
    cols = min(8, len(top))
    rows = math.ceil(len(top) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.95 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, top.tolist()):
        img = train.x[i].permute(1, 2, 0).float().numpy() / (255.0 if train.x.dtype == torch.uint8 else 1.0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        name = Path(train.names[i]).name
        ax.set_title(
            f"{name[:14]}\n{train.classes[int(train.y[i])][:10]} · {int(worst[i])}/{n_b}",
            fontsize=7,
            color="tab:red" if i in flagged else "0.35",
        )
    fig.suptitle(
        f"most collapsed training images: file, label · collapse count (red: flagged, {len(flagged)} in all)",
        fontsize=9,
    )
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def model_lines(inputs: dict[str, Any]) -> list[str]:
    """summary.md's lines on the model: what it is, its weights and inputs, the modules EK-FAC tracks."""
    tracked = inputs.get("tracked", [])
    kinds = ", ".join(f"{sum(m['type'] == t for m in tracked)} {t}" for t in sorted({m["type"] for m in tracked}))
    names = ", ".join(f"`{m['name']}`" for m in tracked[:40])
    names += f", … ({len(tracked) - 40} more)" if len(tracked) > 40 else ""
    weights = (
        f"weights `{inputs['weights']}` (sha256 {(inputs.get('weights_sha256') or '?')[:12]})"
        if inputs.get("weights")
        else "no weights file (the model as built)"
    )
    size = inputs.get("input_size")
    lines = [
        f"- model: `{inputs['arch']}` ({inputs['family']}), {inputs['num_classes']} outputs, options "
        f"{inputs['options'] or '{}'}, {weights}; input normalisation: {inputs['normalisation']}; input size: "
        + (f"resized to {size[0]}×{size[1]} for the model" if size else "the images' own"),
        f"- modules EK-FAC tracks ({len(tracked)}: {kinds}; all others are ignored by the influence): {names}",
    ]
    return lines + [f"- note: {note}" for note in inputs.get("notes", [])]


def families_text(result: AuditResult) -> str:
    """The augmentation families drawn, with counts (over all suspicious images)."""
    counts = pd.Series([a for row in result.augmentations for a in row]).value_counts().sort_index()
    return ", ".join(f"{k} ×{v}" for k, v in counts.items())


def fit_lines(result: AuditResult, settings: AuditSettings) -> list[str]:
    """summary.md's lines on the factor fit: examples per stage (with the caps asked for), times, and the
    modules whose covariance needed help to be eigendecomposed."""
    fit, t = result.fit, result.seconds
    times = f"Wall time: factors {t['factors']:.1f} s, scores {t['scores']:.1f} s, total {t['total']:.1f} s."
    if fit is None:
        return [times]
    n = len(result.collapse[0])
    stages = ", ".join(f"{k} {format_seconds(v)}" for k, v in fit.seconds.items() if k != "total")
    helped = fit.helped()
    help_text = f"{len(helped)} covariance(s) needed help:\n\n" + "".join(f"- {h}\n" for h in helped)
    return [
        f"\nEK-FAC factors: covariances on {fit.n_covariance:,} of {n:,} training images (covariance_max_examples "
        f"{settings.covariance_max_examples}), eigenvalue corrections on {fit.n_lambda:,} (lambda_max_examples "
        f"{settings.lambda_max_examples}; `auto` caps a stage whose estimated cost exceeds 2 training epochs). "
        f"Stages: {stages}. {times}",
        "\nEigendecomposition: " + (help_text if helped else "every covariance decomposed with plain `eigh`."),
    ]


HOW_TO_READ = (
    "For each suspicious image z, the audit computed the EK-FAC influence of every training image on z with "
    "the label above (positive = the training image pushes the model towards that label), then on n_b "
    "transformed copies of z, each with a random other label and a random augmentation (families under Settings). "
    "Δ(i, j) is the change of training image i's influence "
    "under transform j. Ordinary training images support many copies and labels; a poison's influence is tied "
    "to the exact trigger–label pair and collapses under nearly every transform. A training image is flagged "
    "when at least n_b − k of its Δ are below τ, for EVERY suspicious image. `collapse_count` is that number "
    "(the smallest over the images); `base_influence` its influence on the image itself (mean over images).\n"
)


def summary_markdown(
    inputs: dict[str, Any],
    train: TrainingSet,
    queries: Queries,
    result: AuditResult,
    settings: AuditSettings,
    table: pd.DataFrame,
    files: list[str],
) -> str:
    """summary.md: inputs, settings, counts, top entries, how to read it and its caveats."""
    n, n_flag = len(train.y), len(result.flagged)
    by_label = pd.Series(train.y[result.flagged].numpy()).map(lambda c: train.classes[c]).value_counts()
    qrows = "".join(
        f"| {p} | {train.classes[int(y)]} ({int(y)}, {src}) | {train.classes[pr]} ({pr}), p = {conf:.3f} | {alone} |\n"
        for p, y, src, pr, conf, alone in zip(
            queries.paths,
            queries.labels,
            queries.label_source,
            queries.predicted,
            queries.confidence,
            result.per_image_flagged,
        )
    )
    c, h, w = train.image_shape
    s = settings
    lines = [
        "# Δ-Influence audit\n",
        f"**{n_flag} of {n} training images flagged ({100 * n_flag / n:.2f} %)**"
        + (f", by assigned label: {', '.join(f'{k} ×{v}' for k, v in by_label.items())}." if n_flag else "."),
        "\n## Inputs\n",
        *model_lines(inputs),
        f"- training set: `{train.path}` ({train.kind}), {n} images of {c}×{h}×{w}, {len(train.classes)} classes; "
        f"the model classifies **{100 * result.train_agreement:.1f} %** of them as labelled"
        + (
            " — LOW: check the architecture, --mean/--std and the class-folder → label mapping"
            if result.train_agreement < 0.5
            else ""
        ),
        "- suspicious images (audited with the label shown; `predicted` = the model's own):\n",
        "| image | audited label | model predicts | flagged by this image alone |\n|---|---|---|---:|\n" + qrows,
        "## Settings\n",
        f"n_b = {s.n_b} transforms per image, τ = {s.tau:g}, k = {s.k} (flag when ≥ n_b − k = {s.n_b - s.k} of the "
        f"{s.n_b} transforms collapse), seed {s.seed}, device {s.device}; batch sizes: factors {s.factor_batch_size}, "
        f"scores {s.score_batch_size}, queries {s.query_batch_size}; augmentation families: {families_text(result)}.",
        *fit_lines(result, settings),
        f"\n## Top entries (of {n_flag}; all in flagged.csv)\n",
        _md_table(table.head(20)[["rank", "index", "file", "class", "collapse_count", "base_influence"]])
        if n_flag
        else "none flagged\n",
        "## How to read it\n",
        HOW_TO_READ,
        "Files:\n",
        "".join(f"- `{f}`: {FILES[f]}\n" for f in files if f in FILES),
        "## Caveats\n",
        *CAVEATS,
    ]
    return "\n".join(lines) + "\n"


def _collapse_figures(
    out: Path, train: TrainingSet, queries: Queries, result: AuditResult, settings: AuditSettings
) -> list[str]:
    """One collapse histogram per suspicious image (flagged vs not; the audit has no ground truth)."""
    marked = np.zeros(len(train.y), dtype=bool)
    marked[result.flagged] = True
    names = []
    for q in range(len(queries.paths)):
        name = "collapse.png" if q == 0 else f"collapse_q{q + 1}.png"
        plot_collapse(
            result.scores[q].numpy(),
            marked,
            str(out / name),
            settings.tau,
            settings.k,
            ("not flagged", "flagged"),
            f"{Path(queries.paths[q]).name} as {train.classes[int(queries.labels[q])]}: no ground truth",
        )
        names.append(name)
    return names


def write_outputs(
    out: str | Path,
    inputs: dict[str, Any],
    train: TrainingSet,
    queries: Queries,
    result: AuditResult,
    settings: AuditSettings,
    sheet_size: int = 32,
) -> list[str]:
    """Write every output into ``out`` (each atomically; summary.md last) and return their names."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = flagged_table(train, result)
    with atomic_path(out / "flagged.csv") as tmp:
        table.to_csv(tmp, index=False)
    save_npy(result.flagged.astype(np.int64), out / "flagged.npy")
    save_torch(
        {
            "scores": result.scores,
            "labels": result.probe_labels,
            "augmentations": result.augmentations,
            "query_files": queries.paths,
            "train_files": train.names,
        },
        out / "scores.pt",
    )
    contact_sheet(train, result, settings.n_b, out / "top_collapsed.png", sheet_size)
    files = ["flagged.csv", "flagged.npy", "scores.pt", "top_collapsed.png"]
    files += _collapse_figures(out, train, queries, result, settings)
    summary = {
        "inputs": inputs,
        "settings": asdict(settings),
        "fit": result.fit.to_json() if result.fit else None,
        "n_train": len(train.y),
        "n_flagged": len(result.flagged),
        "flagged_per_image": result.per_image_flagged,
        "train_agreement": result.train_agreement,
        "queries": [
            {"file": p, "label": int(y), "label_source": s, "predicted": pr, "confidence": c}
            for p, y, s, pr, c in zip(
                queries.paths, queries.labels, queries.label_source, queries.predicted, queries.confidence
            )
        ],
        "seconds": result.seconds,
    }
    save_json(summary, out / "audit.json")
    files.append("audit.json")
    files += ["audit.log"] if (out / "audit.log").exists() else []
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(inputs, train, queries, result, settings, table, files))
    return [f for f in files if f != "audit.log"] + ["summary.md"]
