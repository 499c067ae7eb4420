"""Demo: audit a model class defined OUTSIDE the package, through the import path, with the truth kept aside.

The model is the PreAct-ResNet18 below (the structure of BackdoorBench's ``models/preact_resnet.py``, with a
``width`` argument: 64 is the published network; the default here is 32, a quarter of the compute, so that
training fits on 2 CPU cores). It takes NORMALISED inputs, as BackdoorBench's do. It is trained on the 10k
CIFAR-10 subset with a BadNet patch on ``--count`` victim-class images relabelled to the target; the files
a user holds are exported and the audit CLI is run on them in its own process, with this file as the
architecture::

    python -m unpoison.audit --arch bench/audit_custom_demo.py:PreActResNet18 --model-option width=32 \\
        --weights .../model_state.pt --mean 0.4914 0.4822 0.4465 --std 0.247 0.2435 0.2616 \\
        --train .../train.npz --query .../query1.png ... --query .../query5.png --out .../audit

Run (about an hour on 2 CPU cores; under the shared lock on the project machine)::

    PYTHONPATH=. python bench/audit_custom_demo.py --seed 0              # → bench/out/audit_custom_demo/
    PYTHONPATH=. python bench/audit_custom_demo.py --seed 0 --audit-option=--lambda-max-examples=2000 --tag lam2000

The trained inputs are reused by later runs with the same ``--out``/seed (delete ``s{seed}/`` to retrain).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, 1×1 conv shortcut when shapes change."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct-ResNet18 for 32×32 images (3×3 stem, no max-pool); ``width`` = channels of the first stage."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(width, 2, 1)
        self.layer2 = self._make_layer(2 * width, 2, 2)
        self.layer3 = self._make_layer(4 * width, 2, 2)
        self.layer4 = self._make_layer(8 * width, 2, 2)
        self.bn = nn.BatchNorm2d(8 * width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(8 * width, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = self.avgpool(F.relu(self.bn(out)))
        return self.linear(out.view(out.size(0), -1))


def main() -> None:
    from _common import machine
    from audit_cifar import ATTACKS, DATA, audit_options, prepare, run_cli, score, table

    from unpoison.device import resolve_device
    from unpoison.seeding import stage_seed
    from unpoison.training import TrainRecipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument(
        "--count",
        type=int,
        default=250,
        help="poisoned training images (250 = 2.5 %% of 10k, as experiments/cifar10-cpu.yaml)",
    )
    p.add_argument("--attack", choices=sorted(ATTACKS), default="badnet", help="the poison (audit_cifar.ATTACKS)")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="train without random crops and flips (a fixed trigger is learnt in fewer epochs)",
    )
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--device", default="cpu")
    p.add_argument("--audit-option", action="append", default=[], help="extra audit CLI option, e.g. --n-b=50")
    p.add_argument("--tag", default="", help="suffix of the audit's output folder")
    p.add_argument("--audit-queries", type=int, default=None, help="audit only the first N suspicious images")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "audit_custom_demo"))
    args = p.parse_args()
    run = Path(args.out) / f"s{args.seed}"
    torch.manual_seed(stage_seed(args.seed, "train/init"))
    net = PreActResNet18(num_classes=10, width=args.width)
    m1, m2 = round(args.epochs * 0.5), round(args.epochs * 0.8)
    recipe = TrainRecipe(
        epochs=args.epochs,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        milestones=[m1, m2],
        crop_padding=0 if args.no_augment else 4,
        flip=not args.no_augment,
    )
    facts = prepare(
        run, net, args.seed, recipe, args.count, args.queries, Path(args.data), resolve_device(args.device), args.attack
    )
    if facts["n_queries"] == 0:
        raise SystemExit(
            f"the attack failed (PSR {100 * facts['psr']:.1f} %): no triggered test image is classified "
            f"as the target; train longer (--epochs) or delete {run} and try another seed"
        )
    out = run / f"audit{'_' + args.tag if args.tag else ''}"
    n_queries = min(facts["n_queries"], args.audit_queries or facts["n_queries"])
    argv = audit_options(run, "bench/audit_custom_demo.py:PreActResNet18", {"width": args.width}, n_queries)
    wall, cpu = run_cli(argv + ["--seed", str(args.seed), "--device", args.device, *args.audit_option], out)
    report = json.loads((out / "audit.json").read_text())
    inner = report["seconds"]
    rows = score(out, run / "truth")
    body = (
        f"PreAct-ResNet18 (width {args.width}) from `bench/audit_custom_demo.py`, seed {args.seed}, trained "
        f"{'without' if args.no_augment else 'with'} crops and flips, audited with "
        f"`{' '.join(args.audit_option) or 'the default settings'}`; {datetime.date.today()}, {machine()}.\n\n"
        + table(rows, facts, {"wall": wall, "cpu": cpu, **inner}, report)
    )
    (out / "results.md").write_text(body)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(body)


if __name__ == "__main__":
    main()
