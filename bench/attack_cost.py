"""Generation cost of an attack in training epochs of the same model: ``Attack.poison`` timed against training
epochs of the dataset's model with its recipe, back to back in one process (wall and CPU seconds; the ratio of
CPU seconds is what to read on a shared machine).

Attacks built on the clean model get an UNTRAINED model of the dataset's architecture: their cost does not
depend on the weights (fixed step counts, no early stop), and the clean model itself (rule ``train_clean``,
one full training, shared by every such attack of the seed) is not part of it.

    PYTHONPATH=. python bench/attack_cost.py --dataset digits --attacks blend wanet sig label_consistent
    PYTHONPATH=. python bench/attack_cost.py --configfile experiments/cifar10-cpu.yaml --dataset cifar10_10k \
        --attacks label_consistent --train-epochs 1
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import machine
from brew_success import merged_config, shortened

from unpoison.attacks import CleanModel, get_attack
from unpoison.config import normalised_source
from unpoison.data import load_dataset
from unpoison.models import build_model
from unpoison.training import TrainRecipe, train_model


def clock(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", action="append", default=[])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--attacks", nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="poison() calls per attack (the fastest is reported)")
    ap.add_argument("--train-epochs", type=int, default=None, help="epochs timed (default: the recipe's)")
    args = ap.parse_args()
    cfg = merged_config(args.configfile)["dataset_settings"][args.dataset]
    data = load_dataset(normalised_source(cfg))
    recipe = TrainRecipe.from_dict(cfg["train"])
    model = cfg["model"]
    options = {k: v for k, v in model.items() if k != "name"}
    spec = {
        "name": model["name"],
        "num_classes": data.num_classes,
        "in_channels": data.x_train.shape[1],
        "options": options,
    }
    dev = torch.device("cpu")

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(spec["name"], spec["num_classes"], spec["in_channels"], options)

    timed = shortened(recipe, args.train_epochs)
    train_w, train_c = clock(lambda: train_model(fresh(), data.x_train, data.y_train, timed, 0, dev))
    epoch_w, epoch_c = train_w / timed.epochs, train_c / timed.epochs
    print(machine())
    print(
        f"training: {timed.epochs} epochs of {len(data.y_train)} images, "
        f"{epoch_w:.3f} s wall / {epoch_c:.3f} CPU-s per epoch"
    )
    print("| attack | settings | poison() s wall / CPU | training epoch s wall / CPU | cost, epochs (CPU) |")
    print("|---|---|---:|---:|---:|")
    for name in args.attacks:
        params = cfg["attacks"][name]
        atk = get_attack(name, params)
        clean = CleanModel(fresh().eval(), spec, recipe, dev) if atk.needs_clean_model else None
        runs = [clock(lambda: atk.poison(data, args.seed, clean)) for _ in range(args.repeats)]
        w, c = min(runs, key=lambda r: r[1])
        print(
            f"| {name} | {params} | {w:.3f} / {c:.3f} | {epoch_w:.3f} / {epoch_c:.3f} | {c / epoch_c:.3f} |", flush=True
        )


if __name__ == "__main__":
    main()
