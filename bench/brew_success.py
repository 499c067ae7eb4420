"""Witches' Brew success study: clean model → brew → victim retrained FROM SCRATCH → does the target flip?

For each seed: train (or reuse from ``bench/out``) a clean model on the clean training set with the dataset's
recipe (streams ``clean/init``, ``clean/order`` of ``--clean-seed``, default the run's seed), brew with the
``witches_brew`` settings of the config (overridden by ``--set key=value``), retrain the victim from scratch on
the poisoned set with the same recipe but the run's own ``train/init`` / ``train/order`` streams (as the
pipeline's ``train_model``), and report whether the target is classified as the adversarial class, the
victim's probability of that class, the final alignment loss and the brew's cost in training epochs of the
same model (clean-training seconds / epochs). One JSON line per run is appended to ``--out``.

    PYTHONPATH=. python bench/brew_success.py --dataset digits --seeds 0 1 2 3 4 --set budget=14 restarts=2
    PYTHONPATH=. python bench/brew_success.py --configfile experiments/cifar10-cpu.yaml --dataset cifar10_10k \
        --epochs 12 --clean-seed 0 --seeds 0 1 2 --set budget=100 restarts=1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _common import ROOT, machine

from unpoison.attacks import ATTACKS, CleanModel, PoisonResult, get_attack
from unpoison.config import SOURCE_EXCLUDED
from unpoison.data import ImageData, load_dataset, to_float
from unpoison.models import build_model
from unpoison.seeding import stage_seed
from unpoison.training import TrainRecipe, accuracy, train_model

OUT = ROOT / "bench" / "out"


def merged_config(configfiles: list[str]) -> dict[str, Any]:
    """config.yaml with each ``--configfile`` layered on top (recursive update, as Snakemake does)."""

    def update(base: dict, new: dict) -> dict:
        for k, v in new.items():
            base[k] = update(dict(base.get(k) or {}), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        return base

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for path in configfiles:
        cfg = update(cfg, yaml.safe_load(Path(path).read_text()))
    return cfg


def shortened(recipe: TrainRecipe, epochs: int | None) -> TrainRecipe:
    """The recipe with ``epochs`` epochs and its lr milestones scaled by the same factor (None = unchanged)."""
    if epochs is None or epochs == recipe.epochs:
        return recipe
    ms = sorted({round(m * epochs / recipe.epochs) for m in recipe.milestones} & set(range(1, epochs)))
    return TrainRecipe.from_dict({**recipe.to_dict(), "epochs": epochs, "milestones": ms})


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values parsed as YAML (``eps=16``, ``augment=false``)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def train_fresh(
    spec: dict,
    data_x: torch.Tensor,
    data_y: torch.Tensor,
    recipe: TrainRecipe,
    seed: int,
    prefix: str,
    device: torch.device,
) -> tuple[torch.nn.Module, float]:
    """A model trained from scratch with ``seed``'s ``{prefix}/init`` and ``{prefix}/order`` streams; (model, seconds)."""
    torch.manual_seed(stage_seed(seed, f"{prefix}/init"))
    net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
    summary = train_model(net, data_x, data_y, recipe, stage_seed(seed, f"{prefix}/order"), device)
    return net, float(summary["seconds"])


def clean_model(
    dataset: str, spec: dict, data: ImageData, recipe: TrainRecipe, seed: int, device: torch.device
) -> tuple[torch.nn.Module, float]:
    """The clean model of ``seed`` (cached in bench/out with its training seconds)."""
    tag = json.dumps([spec, recipe.to_dict(), seed], sort_keys=True)
    path = OUT / f"clean_{dataset}_s{seed}_e{recipe.epochs}_{spec['options'].get('width')}.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        if blob["tag"] == tag:
            net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
            net.load_state_dict(blob["state_dict"])
            return net.eval().to(device), float(blob["seconds"])
    net, seconds = train_fresh(spec, data.x_train, data.y_train, recipe, seed, "clean", device)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save({"tag": tag, "seconds": seconds, "state_dict": net.state_dict()}, path)
    return net, seconds


def table(paths: list[str]) -> str:
    """A markdown table of the JSON lines in ``paths``, one row per setting (label): flips, losses, cost."""
    groups: dict[str, list[dict]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            groups.setdefault(row["label"], []).append(row)
    out = [
        "| setting | seeds | flipped | p(adv) on target | best alignment loss | brew, training epochs | brew s (per step) | victim acc % |",
        "|---|---|---:|---|---|---:|---:|---:|",
    ]
    for label, rows in groups.items():
        rows = sorted(rows, key=lambda r: r["seed"])
        flips = sum(r["flipped"] for r in rows)
        p_adv = ", ".join(f"{r['p_adv']:.2f}" for r in rows)
        loss = ", ".join(f"{min(r['final_alignment_loss']):.3f}" for r in rows)
        cost = sum(r["brew_epochs"] for r in rows) / len(rows)
        acc = 100 * sum(r["victim_acc"] for r in rows) / len(rows)
        secs = sum(r["brew_seconds"] for r in rows) / len(rows)
        per_step = secs / (rows[0]["params"]["steps"] * rows[0]["params"]["restarts"])
        seeds = ",".join(str(r["seed"]) for r in rows)
        out.append(
            f"| {label} | {seeds} | {flips}/{len(rows)} | {p_adv} | {loss} | {cost:.0f} | {secs:.0f} ({per_step:.2f}) | {acc:.1f} |"
        )
    return "\n".join(out)


def step_cost(
    spec: dict,
    data: ImageData,
    recipe: TrainRecipe,
    params: dict,
    device: torch.device,
    steps: int = 5,
    batches: int = 10,
) -> str:
    """Seconds per brew step on ``budget`` poisons vs per training batch, timed back to back on an untrained
    model (cost does not depend on the weights); the implied brew cost in training epochs."""
    from unpoison.attacks.witches_brew import brew_restart, target_gradient

    torch.manual_seed(0)
    net = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"]).to(device)
    probe = TrainRecipe.from_dict({**recipe.to_dict(), "epochs": 1, "milestones": []})
    n = batches * recipe.batch_size
    start = time.perf_counter()
    train_model(net, data.x_train[:n], data.y_train[:n], probe, 0, device)
    per_batch = (time.perf_counter() - start) / batches
    epoch = per_batch * len(data.x_train) / recipe.batch_size
    net.eval()
    x = to_float(data.x_train[: params["budget"]].to(device))
    y = data.y_train[: params["budget"]].to(device)
    grads = [target_gradient(net, to_float(data.x_test[:1].to(device)), 0)]
    start = time.perf_counter()
    brew_restart(
        [net],
        grads,
        x,
        y,
        params["eps"],
        steps,
        params["lr"],
        params["batch_size"],
        recipe.crop_padding,
        recipe.flip,
        torch.Generator().manual_seed(0),
    )
    per_step = (time.perf_counter() - start) / steps
    total = per_step * params["steps"] * params["restarts"] * params["ensemble"]
    return (
        f"training batch {per_batch:.3f} s (epoch ≈ {epoch:.1f} s); brew step on {params['budget']} poisons "
        f"{per_step:.3f} s = {per_step / epoch:.3f} epochs; {params['steps']} steps × {params['restarts']} restarts "
        f"× {params['ensemble']} models ≈ {total / epoch:.1f} training epochs"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", nargs="*", default=None, help="only print the markdown table of these JSON-lines files")
    ap.add_argument("--configfile", nargs="*", default=[], help="experiment files layered on config.yaml")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--clean-seed", type=int, default=None, help="one clean model for every seed (default: per seed)")
    ap.add_argument("--epochs", type=int, default=None, help="shorten the recipe (milestones scaled) for CPU budgets")
    ap.add_argument("--set", nargs="*", default=[], help="witches_brew overrides, key=value")
    ap.add_argument("--label", default="", help="a name for this setting in the output")
    ap.add_argument("--control", action="store_true", help="no poisons: the victim on the clean set, same target")
    ap.add_argument("--cost-only", action="store_true", help="only time brew steps against training batches")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(OUT / "brew_success.jsonl"))
    args = ap.parse_args()
    if args.table is not None:
        print(table(args.table or [args.out]))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = merged_config(args.configfile)
    settings = cfg["dataset_settings"][args.dataset]
    data = load_dataset({k: v for k, v in settings.items() if k not in SOURCE_EXCLUDED})
    recipe = shortened(TrainRecipe.from_dict(settings["train"]), args.epochs)
    model_cfg = dict(settings["model"])
    name = model_cfg.pop("name")
    spec = {"name": name, "num_classes": data.num_classes, "in_channels": data.x_train.shape[1], "options": model_cfg}
    params = {**settings.get("attacks", {}).get("witches_brew", {}), **parse_sets(args.set)}
    params = ATTACKS.normalise("witches_brew", params, "witches_brew")
    attack = get_attack("witches_brew", params)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"# {machine()}\n# {args.dataset} recipe {recipe.to_dict()}\n# witches_brew {params}", flush=True)
    if args.cost_only:
        print(step_cost(spec, data, recipe, params, device))
        return
    rows = []
    for seed in args.seeds:
        cseed = seed if args.clean_seed is None else args.clean_seed
        net, clean_s = clean_model(args.dataset, spec, data, recipe, cseed, device)
        epoch_s = clean_s / recipe.epochs
        clean_acc = accuracy(net, data.x_test, data.y_test, device)
        start = time.perf_counter()
        if args.control:  # the same target and class, victim trained on the CLEAN set (no poisons)
            target, adv_class = attack.choose_target(net, data, attack.rng(seed), device)
            truth = {
                "target_index": target,
                "target_class": int(data.y_test[target]),
                "adversarial_class": adv_class,
                "final_alignment_loss": [float("nan")],
                "chosen_restart": 0,
            }
            result = PoisonResult(data.x_train, data.y_train, truth, {"perturbation": torch.zeros(1).numpy()})
        else:
            result = attack.poison(data, seed, CleanModel(net, spec, recipe, device))
        brew_s = time.perf_counter() - start
        t = result.truth
        print(
            f"seed {seed}: clean acc {clean_acc:.3f}, epoch {epoch_s:.1f} s; brewed in {brew_s:.0f} s "
            f"({brew_s / epoch_s:.1f} epochs), final alignment loss {t['final_alignment_loss']}",
            flush=True,
        )
        victim, victim_s = train_fresh(spec, result.x_train, result.y_train, recipe, seed, "train", device)
        x_t, _, adv = attack.affected_test(data, t)
        with torch.no_grad():
            prob = torch.softmax(victim.eval()(to_float(x_t.to(device))), 1)[0].cpu()
        row = {
            "label": args.label,
            "dataset": args.dataset,
            "seed": seed,
            "clean_seed": cseed,
            "params": params,
            "epochs": recipe.epochs,
            "target_index": t["target_index"],
            "target_class": t["target_class"],
            "adversarial_class": t["adversarial_class"],
            "victim_pred": int(prob.argmax()),
            "flipped": bool(int(prob.argmax()) == int(adv[0])),
            "p_adv": float(prob[int(adv[0])]),
            "p_true": float(prob[t["target_class"]]),
            "final_alignment_loss": t["final_alignment_loss"],
            "chosen_restart": t["chosen_restart"],
            "clean_acc": clean_acc,
            "victim_acc": accuracy(victim, data.x_test, data.y_test, device),
            "brew_seconds": brew_s,
            "epoch_seconds": epoch_s,
            "brew_epochs": brew_s / epoch_s,
            "victim_seconds": victim_s,
            "max_change": int(abs(result.artifacts["perturbation"]).max()),
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    flips = sum(r["flipped"] for r in rows)
    loss = [min(r["final_alignment_loss"]) for r in rows]
    print(
        f"\n{args.label or args.dataset}: {flips}/{len(rows)} flipped; best alignment loss "
        f"{min(loss):.3f}–{max(loss):.3f}; brew {sum(r['brew_epochs'] for r in rows) / len(rows):.1f} epochs per target"
    )


if __name__ == "__main__":
    main()
