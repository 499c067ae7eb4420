"""Shared plumbing of the CIFAR-10 audit benchmarks (``audit_custom_demo.py``, ``audit_resnet18.py``).

A user's situation, rebuilt with ground truth kept aside: a model trained OUTSIDE the project's model registry
on the 10k-image CIFAR-10 subset with a BadNet patch or a Blend pattern (``--attack``), exported as a user holds it (a plain state_dict of a
network that takes NORMALISED inputs, the poisoned training set as an .npz, triggered test images the model
calls the target as PNGs); the truth goes to a separate folder; the audit CLI runs in its own process on the
exported files only; the truth is read only to score ``flagged.csv`` (5 images, intersected) and the raw
``scores.pt`` column of each image alone (the rule re-applied with the same τ, k: what a one-image audit of that
image flags, since each image's draws and scores do not depend on the others).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from unpoison.attacks import get_attack  # noqa: E402
from unpoison.data import load_dataset  # noqa: E402
from unpoison.metrics import detection_metrics  # noqa: E402
from unpoison.models import CIFAR_MEAN, CIFAR_STD, Normalize  # noqa: E402
from unpoison.queries import select_queries  # noqa: E402
from unpoison.seeding import stage_seed  # noqa: E402
from unpoison.training import TrainRecipe, accuracy, train_model  # noqa: E402

DATA = "../shared/data/cifar10_10k.npz"  # relative to the working directory, as experiments/cifar10-cpu.yaml


ATTACKS = {  # the poisons these demos can plant (settings as experiments/cifar10-cpu.yaml)
    # a 3×3 white/black checkerboard 1 px from the bottom-right corner, victim class → target
    "badnet": {"pattern": "checkerboard", "size": 3, "value": 255, "margin": 1},
    # a seeded uniform-noise pattern blended at α = 0.2 into images of every class, relabelled to the target
    "blend": {"alpha": 0.2},
}


def poison_attack(name: str, count: int):
    """The attack ``name`` of :data:`ATTACKS` with ``count`` poisons."""
    return get_attack(name, {"count": count, **ATTACKS[name]})


def prepare(
    run: Path,
    net: nn.Module,
    seed: int,
    recipe: TrainRecipe,
    count: int,
    n_queries: int,
    data_path: Path,
    device: torch.device,
    attack_name: str = "badnet",
) -> dict:
    """Poison, train ``net`` (behind CIFAR normalisation), export the user's files and the truth; return facts.

    Skipped when ``run/facts.json`` exists (the inputs are reused: training is the expensive part)."""
    if (run / "facts.json").exists():
        return json.loads((run / "facts.json").read_text())
    if not data_path.is_file():
        raise SystemExit(f"--data {data_path}: not found; give the path of cifar10_10k.npz")
    data = load_dataset({"source": "npz", "path": str(data_path)})
    attack = poison_attack(attack_name, count)
    poisoned = attack.poison(data, seed)
    wrapped = nn.Sequential(Normalize(CIFAR_MEAN, CIFAR_STD), net)  # the user's training transform normalises
    start, cpu = time.perf_counter(), time.process_time()
    train_model(
        wrapped, poisoned.x_train, poisoned.y_train, recipe, stage_seed(seed, "train/order"), device, log=sys.stdout
    )
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    x_aff, _, target = attack.affected_test(data, poisoned.truth)
    queries, _ = select_queries(wrapped, data, attack, poisoned.truth, n_queries, seed, device)  # (queries, status)
    inputs, truth = run / "inputs", run / "truth"
    inputs.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), inputs / "model_state.pt")  # the network alone: it takes normalised inputs
    np.savez(
        inputs / "train.npz",
        x_train=poisoned.x_train.permute(0, 2, 3, 1).numpy(),
        y_train=poisoned.y_train.numpy(),
        classes=np.array(data.classes),
    )
    for j in range(len(queries["x"])):
        Image.fromarray(queries["x"][j].permute(1, 2, 0).numpy()).save(inputs / f"query{j + 1}.png")
    (truth / "poisons.json").write_text(
        json.dumps(
            {
                "poison_indices": [int(i) for i in poisoned.truth["poison_indices"]],
                "victim": poisoned.truth.get("victim"),
                "target": poisoned.truth["target"],
            }
        )
    )
    facts = {
        "attack": attack_name,
        "seed": seed,
        "train_s": train_s,
        "train_cpu_s": train_cpu,
        "epochs": recipe.epochs,
        "clean_acc": accuracy(wrapped, data.x_test, data.y_test, device),
        "psr": accuracy(wrapped, x_aff, target, device),
        "n_poisons": len(poisoned.truth["poison_indices"]),
        "n_queries": len(queries["x"]),
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    (run / "facts.json").write_text(json.dumps(facts, indent=1))
    return facts


def audit_options(run: Path, arch: str, options: dict, n_queries: int) -> list[str]:
    """The CLI options a user would type for the exported files."""
    inputs = run / "inputs"
    argv = [
        "--arch",
        arch,
        "--weights",
        str(inputs / "model_state.pt"),
        "--train",
        str(inputs / "train.npz"),
        "--mean",
        *map(str, CIFAR_MEAN),
        "--std",
        *map(str, CIFAR_STD),
    ]
    argv += [a for k, v in options.items() for a in ("--model-option", f"{k}={v}")]
    return argv + [a for j in range(n_queries) for a in ("--query", str(inputs / f"query{j + 1}.png"))]


def run_cli(argv: list[str], out: Path, log_to: Path | None = None) -> tuple[float, float]:
    """The audit CLI in its own process; returns its wall and CPU seconds (the child's user + system)."""
    cmd = [sys.executable, "-m", "unpoison.audit", *argv, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print("$ python -m unpoison.audit", " ".join(argv), "--out", out, flush=True)
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def score(audit_dir: Path, truth_dir: Path) -> list[dict]:
    """Rows: the intersection of every image (``flagged.csv``) and each image alone (from ``scores.pt``)."""
    poisons = json.loads((truth_dir / "poisons.json").read_text())["poison_indices"]
    report = json.loads((audit_dir / "audit.json").read_text())
    s = report["settings"]
    scores = torch.load(audit_dir / "scores.pt", weights_only=True)["scores"]
    collapse = ((scores[:, 1:] - scores[:, :1]) < s["tau"]).sum(dim=1)
    rows = []
    flagged = pd.read_csv(audit_dir / "flagged.csv")["index"].to_numpy()
    rows.append({"images": len(scores), "which": "all, intersected", **detection_metrics(flagged, poisons)})
    for q in range(len(scores)):
        alone = torch.nonzero(collapse[q] >= s["n_b"] - s["k"]).flatten().numpy()
        rows.append({"images": 1, "which": f"query{q + 1} alone", **detection_metrics(alone, poisons)})
    return rows


def fit_text(report: dict) -> str:
    """The factor fit in one sentence: examples per stage, stage times, modules whose eigh needed help."""
    fit = report.get("fit") or {}
    if not fit:
        return ""
    helped = [
        f"{m} {f} ({r['solver']}, jitter {r['jitter']:.1e})"
        for m, fs in fit["eigendecomposition"]["modules"].items()
        for f, r in fs.items()
        if r["helped"]
    ]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in fit.get("seconds", {}).items() if k != "total")
    return (
        f" Factors: covariances on {fit['n_covariance']:,} images, eigenvalue corrections on {fit['n_lambda']:,} "
        f"({stages}); eigendecomposition help: {'; '.join(helped) if helped else 'none'}."
    )


def table(rows: list[dict], facts: dict, seconds: dict, report: dict | None = None) -> str:
    """The markdown lines of one run: 1 image (the first, and mean ± std over the images alone) and all."""
    df = pd.DataFrame(rows)
    alone, first, both = df.iloc[1:], df.iloc[1], df.iloc[0]

    def fmt(r: pd.Series) -> str:
        return (
            f"{r['n_flagged']} | {r['true_positives']} / {r['n_poisons']} | {100 * r['tpr']:.1f} | "
            f"{100 * r['precision']:.1f}"
        )

    lines = [
        "| suspicious images | flagged | poisons found | TPR % | precision % |",
        "|---|---:|---:|---:|---:|",
        f"| 1 (query1) | {fmt(first)} |",
        f"| 1, mean ± std over the {len(alone)} images alone | {alone['n_flagged'].mean():.1f} ± "
        f"{alone['n_flagged'].std(ddof=0):.1f} | | "
        f"{100 * alone['tpr'].mean():.1f} ± {100 * alone['tpr'].std(ddof=0):.1f} | "
        f"{100 * alone['precision'].mean():.1f} ± {100 * alone['precision'].std(ddof=0):.1f} |",
        f"| {int(both['images'])}, intersected | {fmt(both)} |",
    ]
    times = (
        f"\nmodel: {facts['parameters'] / 1e6:.2f} M parameters, {facts['epochs']} epochs in "
        f"{facts['train_s'] / 60:.1f} min wall; clean accuracy {100 * facts['clean_acc']:.1f} %, "
        f"PSR {100 * facts['psr']:.1f} %, "
        f"{facts['n_poisons']} {facts.get('attack', 'badnet')} poisons. Audit ({int(both['images'])} images in one run): "
        f"{seconds['wall'] / 60:.1f} min wall, {seconds['cpu'] / 60:.1f} min CPU; inside it factors "
        f"{seconds['factors']:.0f} s, scores {seconds['scores']:.0f} s." + fit_text(report or {}) + "\n"
    )
    return "\n".join(lines) + times
