"""Demo of ``unpoison-audit`` end to end, with ground truth kept aside to score it.

Per seed, from the embedded default's digits settings in ``config.yaml`` (nothing of a pipeline run is read):
  1. build the inputs a user would hold: a BadNet-poisoned digits model (the library's ``badnet`` attack and
     ``train_model``, seeded like the pipeline's stages) exported as a plain state_dict, the poisoned training
     set as an ImageFolder tree of PNGs (``train/<label>/<index>.png``), and one (``--queries``: several)
     triggered test image the model classifies as the target (``query.png``, chosen like the pipeline's query). The truth (poison files) goes to ``truth/poisons.json``;
  2. run the audit CLI on ``inputs/`` only, as a separate process (``python -m unpoison.audit``);
  3. score its ``flagged.csv`` against ``truth/poisons.json`` (the ONLY step that reads it): TPR, precision.

    PYTHONPATH=. python bench/audit_demo.py --seeds 0 1 2            # ~1 min per seed on 2 CPU cores
    PYTHONPATH=. python bench/audit_demo.py --seeds 0 --format npz    # the training set as an .npz instead
    PYTHONPATH=. python bench/audit_demo.py --queries 5 --out bench/out/audit_demo_5q   # 5 suspicious images

Outputs under ``--out`` (default ``bench/out/audit_demo``): ``s{seed}/inputs``, ``s{seed}/truth``,
``s{seed}/audit`` (the audit's outputs) and ``results.md`` (the table). ``--benchmarks`` also writes it to
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
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
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from unpoison.attacks import get_attack  # noqa: E402
from unpoison.data import load_dataset  # noqa: E402
from unpoison.device import resolve_device  # noqa: E402
from unpoison.metrics import detection_metrics  # noqa: E402
from unpoison.models import build_model  # noqa: E402
from unpoison.queries import select_queries  # noqa: E402
from unpoison.seeding import stage_seed  # noqa: E402
from unpoison.training import TrainRecipe, accuracy, train_model  # noqa: E402

MODEL_KEYS = ("model", "train", "attacks")  # the rest of a dataset_settings entry is the source's settings


def _png(x: torch.Tensor, path: Path) -> None:
    """Save a uint8 C×H×W image losslessly."""
    arr = x.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def build_inputs(seed: int, run: Path, fmt: str, n_queries: int, device: torch.device) -> tuple[list[str], dict]:
    """Steps 1: train the poisoned model and export what a user would hold; return the CLI's input options."""
    settings = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset_settings"]["digits"]
    data = load_dataset({k: v for k, v in settings.items() if k not in MODEL_KEYS})
    attack = get_attack("badnet", settings["attacks"]["badnet"])
    poisoned = attack.poison(data, seed)
    model_cfg = dict(settings["model"])
    name = model_cfg.pop("name")
    torch.manual_seed(stage_seed(seed, "train/init"))
    net = build_model(name, data.num_classes, data.image_shape[0], model_cfg)
    start = time.perf_counter()
    train_model(
        net,
        poisoned.x_train,
        poisoned.y_train,
        TrainRecipe.from_dict(settings["train"]),
        stage_seed(seed, "train/order"),
        device,
    )
    train_s = time.perf_counter() - start
    x_aff, _, target = attack.affected_test(data, poisoned.truth)
    psr = accuracy(net, x_aff, target, device)
    query, _ = select_queries(net, data, attack, poisoned.truth, n_queries, seed, device)

    inputs, truth = run / "inputs", run / "truth"
    inputs.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), inputs / "model_state.pt")  # a plain state_dict, as a user would export it
    if fmt == "imagefolder":
        names = [f"{int(y)}/{i:04d}.png" for i, y in enumerate(poisoned.y_train)]
        for i, name_i in enumerate(names):
            _png(poisoned.x_train[i], inputs / "train" / name_i)
        train_arg = inputs / "train"
    else:
        names = [str(i) for i in range(len(poisoned.y_train))]
        train_arg = inputs / "train.npz"
        np.savez(train_arg, x_train=poisoned.x_train.permute(0, 2, 3, 1).numpy(), y_train=poisoned.y_train.numpy())
    queries = [inputs / ("query.png" if j == 0 else f"query{j + 1}.png") for j in range(n_queries)]
    for j, path in enumerate(queries):
        _png(query["x"][j], path)
    truth.mkdir(parents=True, exist_ok=True)
    idx = poisoned.truth["poison_indices"]
    (truth / "poisons.json").write_text(
        json.dumps(
            {
                "poison_files": [names[i] for i in idx],
                "victim": poisoned.truth["victim"],
                "target": poisoned.truth["target"],
            },
            indent=1,
        )
    )
    options = [
        "--arch",
        name,
        "--weights",
        str(inputs / "model_state.pt"),
        "--train",
        str(train_arg),
        *(a for path in queries for a in ("--query", str(path))),
    ]
    options += [a for k, v in model_cfg.items() for a in ("--model-option", f"{k}={v}")]
    facts = {
        "train_s": train_s,
        "psr": psr,
        "clean_acc": accuracy(net, data.x_test, data.y_test, device),
        "target": poisoned.truth["target"],
        "n_poisons": len(idx),
    }
    return options, facts


def run_audit_cli(options: list[str], out: Path, seed: int, device: str) -> tuple[float, float]:
    """Step 2: the audit CLI in its own process, reading only ``inputs/``; returns its wall and CPU seconds."""
    cmd = [sys.executable, "-m", "unpoison.audit", *options, "--out", str(out), "--seed", str(seed), "--device", device]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print("$", " ".join(cmd[1:]), flush=True)
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)


def score(audit_dir: Path, truth_dir: Path) -> dict:
    """Step 3 (the only reader of the truth): TPR and precision of the flagged files."""
    flagged = pd.read_csv(audit_dir / "flagged.csv", dtype={"file": str})["file"].tolist()
    poisons = json.loads((truth_dir / "poisons.json").read_text())["poison_files"]
    names = sorted(set(flagged) | set(poisons))
    code = {n: i for i, n in enumerate(names)}
    return detection_metrics(np.array([code[f] for f in flagged], dtype=np.int64), [code[p] for p in poisons])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default=str(ROOT / "bench/out/audit_demo"))
    p.add_argument("--format", choices=("imagefolder", "npz"), default="imagefolder")
    p.add_argument("--device", default="auto")
    p.add_argument("--queries", type=int, default=1, help="suspicious images (triggered test images) per model")
    p.add_argument("--benchmarks", action="store_true", help="also write the table to BENCHMARKS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    rows = []
    for seed in args.seeds:
        run = Path(args.out) / f"s{seed}"
        options, facts = build_inputs(seed, run, args.format, args.queries, device)
        audit_s, audit_cpu = run_audit_cli(options, run / "audit", seed, args.device)
        inner = json.loads((run / "audit" / "audit.json").read_text())["seconds"]
        m = score(run / "audit", run / "truth")
        rows.append(
            {
                "seed": seed,
                "clean acc %": 100 * facts["clean_acc"],
                "PSR %": 100 * facts["psr"],
                "poisons": m["n_poisons"],
                "flagged": m["n_flagged"],
                "TP": m["true_positives"],
                "TPR %": 100 * m["tpr"],
                "precision %": 100 * m["precision"],
                "train s": facts["train_s"],
                "audit wall s": audit_s,
                "audit CPU s": audit_cpu,
                "factors s": inner["factors"],
                "scores s": inner["scores"],
            }
        )
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    mean = {c: df[c].mean() for c in df.columns if c != "seed"}
    std = {c: df[c].std(ddof=0) for c in df.columns if c != "seed"}
    table = (
        df.round(1).to_markdown(index=False)
        + "\n\n"
        + "mean ± std over seeds: "
        + ", ".join(
            f"{c} {mean[c]:.1f} ± {std[c]:.1f}"
            for c in ("TPR %", "precision %", "flagged", "audit wall s", "audit CPU s")
        )
        + "\n"
    )
    body = (
        f"`unpoison-audit` on a BadNet-poisoned digits model (config.yaml's digits settings, n_b = 50, τ = 0, "
        f"k = 1, {args.queries} suspicious image(s), training set as {args.format}); truth read only to score. `audit wall s` "
        "is the CLI process end to end (start-up, PNG decoding, factors, scores, outputs); `factors s`/`scores s` "
        f"are its stages; `train s` the demo's training.\n\n{table}"
    )
    (Path(args.out) / "results.md").write_text(body)
    print(body)
    if args.benchmarks:
        sys.path.insert(0, str(ROOT / "bench"))
        from _common import write_section

        write_section("Audit demo (unpoison-audit, digits BadNet)", body)


if __name__ == "__main__":
    main()
