"""The issue-21 case end to end: a torchvision ResNet-18 (default ImageNet stem, ``num_classes=10``) trained
~12 epochs on the 10k CIFAR-10 subset with a BadNet patch, audited through the CLI as a user would::

    python -m unpoison.audit --arch resnet18 --weights .../model_state.pt --mean 0.4914 0.4822 0.4465 \\
        --std 0.247 0.2435 0.2616 --train .../train.npz --query .../query1.png ... --out .../audit

With that stem, 32×32 inputs reach ``layer4`` as 1×1 maps: 8 of the 9 unfolded positions of each 3×3 conv
are padding, and its 4,608-wide activation covariance has whole zero rows and columns. Run::

    PYTHONPATH=. python bench/audit_resnet18.py --seed 0                       # default audit settings
    PYTHONPATH=. python bench/audit_resnet18.py --seed 0 --tag all --audit-option=--lambda-max-examples=10000

The trained inputs are reused by later runs with the same ``--out``/seed (delete ``s{seed}/`` to retrain).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torchvision
    from _common import machine
    from audit_cifar import ATTACKS, DATA, audit_options, prepare, run_cli, score, table

    from unpoison.device import resolve_device
    from unpoison.seeding import stage_seed
    from unpoison.training import TrainRecipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD lr (0.1 diverged in epoch 1 with this stem)")
    p.add_argument(
        "--count",
        type=int,
        default=250,
        help="poisoned training images (250 = 2.5 %% of 10k, as experiments/cifar10-cpu.yaml)",
    )
    p.add_argument("--attack", choices=sorted(ATTACKS), default="badnet", help="the poison (audit_cifar.ATTACKS)")
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--device", default="cpu")
    p.add_argument("--audit-option", action="append", default=[], help="extra audit CLI option, e.g. --n-b=50")
    p.add_argument("--tag", default="", help="suffix of the audit's output folder")
    p.add_argument("--audit-queries", type=int, default=None, help="audit only the first N suspicious images")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "audit_resnet18"))
    args = p.parse_args()
    run = Path(args.out) / f"s{args.seed}"
    torch.manual_seed(stage_seed(args.seed, "train/init"))
    net = torchvision.models.resnet18(weights=None, num_classes=10)
    recipe = TrainRecipe(
        epochs=args.epochs,
        batch_size=128,
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        milestones=[round(args.epochs * 0.5), round(args.epochs * 0.8)],
        crop_padding=4,
        flip=True,
    )
    facts = prepare(
        run, net, args.seed, recipe, args.count, args.queries, Path(args.data), resolve_device(args.device), args.attack
    )
    if facts["n_queries"] == 0:
        raise SystemExit(f"the attack failed (PSR {100 * facts['psr']:.1f} %); delete {run} and train longer")
    out = run / f"audit{'_' + args.tag if args.tag else ''}"
    argv = audit_options(run, "resnet18", {}, min(facts["n_queries"], args.audit_queries or facts["n_queries"]))
    wall, cpu = run_cli(argv + ["--seed", str(args.seed), "--device", args.device, *args.audit_option], out)
    report = json.loads((out / "audit.json").read_text())
    rows = score(out, run / "truth")
    body = (
        f"torchvision resnet18 (ImageNet stem), seed {args.seed}, audited with "
        f"`{' '.join(args.audit_option) or 'the default settings'}`; {datetime.date.today()}, {machine()}.\n\n"
        + table(rows, facts, {"wall": wall, "cpu": cpu, **report["seconds"]}, report)
    )
    (out / "results.md").write_text(body)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(body)


if __name__ == "__main__":
    main()
