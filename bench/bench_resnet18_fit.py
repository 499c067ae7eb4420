"""The issue-21 case: EK-FAC factors of a standard torchvision ResNet-18 (ImageNet stem) on 32×32 CIFAR-10 images.

With that stem, 32×32 inputs reach layer4 as 1×1 maps, so 8 of the 9 positions of each 3×3 conv there are padding
and the 4,608-wide activation covariances have whole zero rows and columns; LAPACK's eigh may fail on them. This
script trains the model (torchvision ``resnet18(num_classes=10)`` behind a CIFAR normalisation, the project's
recipe for ``--epochs`` epochs) on the 10k-image subset, fits the factors with ``auto`` caps through
``fit_factors`` (logging the cost estimate and stage progress), and reports each stage's time and which covariance
matrices needed more than a plain eigh. Writes a section to BENCHMARKS.md.

    python bench/bench_resnet18_fit.py --data /work/shared/data/cifar10_10k.npz --epochs 12
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import timed, write_section
from torch import nn

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, fit_factors
from unpoison.training import TrainRecipe, batched_forward, train_model

DEV = torch.device("cpu")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Normalised(nn.Module):
    """A torchvision classifier behind the CIFAR normalisation (inputs in [0, 1])."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def main() -> None:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/cifar10_10k.npz")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lambda-max", default="auto")
    ap.add_argument("--covariance-max", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = np.load(args.data)
    x = torch.from_numpy(d["x_train"]).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(d["y_train"]).long()
    xt = torch.from_numpy(d["x_test"]).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(d["y_test"]).long()
    torch.manual_seed(0)
    model = Normalised(torchvision.models.resnet18(num_classes=10))
    recipe = TrainRecipe(
        epochs=args.epochs,
        batch_size=128,
        lr=0.1,
        milestones=[args.epochs // 2, 3 * args.epochs // 4],
        crop_padding=4,
        flip=True,
    )
    t_train, _ = timed(lambda: train_model(model, x, y, recipe, 0, DEV))
    model.eval()
    acc = float((batched_forward(model, xt, DEV, lambda b: model(b).argmax(1)) == yt).float().mean())
    lines: list[str] = []
    cap = lambda v: None if v == "all" else v if v == "auto" else int(v)  # noqa: E731
    settings = FactorSettings(
        batch_size=128, covariance_max_examples=cap(args.covariance_max), lambda_max_examples=cap(args.lambda_max)
    )
    with tempfile.TemporaryDirectory() as tmp:
        t_fit, report = timed(
            lambda: fit_factors(
                model,
                TensorDataset01(x, y),
                Path(tmp) / "f",
                settings,
                DEV,
                log=lambda line: (print(line, flush=True), lines.append(line)),
            )
        )
    s = report.seconds
    helped = report.helped()
    body = [
        f"torchvision `resnet18(num_classes=10)` (ImageNet stem) behind the CIFAR normalisation, trained {args.epochs} "
        f"epochs on {len(y):,} images in {t_train:.0f} s ({t_train / args.epochs:.0f} s per epoch), clean test accuracy "
        f"{100 * acc:.1f} %. Factors with covariance_max_examples = {args.covariance_max}, lambda_max_examples = "
        f"{args.lambda_max} (resolved: {report.n_covariance:,} / {report.n_lambda:,} examples): **{t_fit:.0f} s** in all.",
        "",
        "| stage | seconds | ÷ epoch |",
        "|---|---:|---:|",
        *[
            f"| {k} | {s[k]:.0f} | {s[k] / (t_train / args.epochs):.1f} |"
            for k in ("covariance", "eigendecomposition", "lambda")
        ],
        "",
        f"Covariance matrices that plain `torch.linalg.eigh` could not decompose ({len(helped)} of "
        f"{2 * len(report.eigen)}): " + ("; ".join(helped) if helped else "none") + ".",
        "",
        "The cost estimate the fit printed first:",
        "",
        "```",
        *[ln for ln in lines if ln.startswith(("EK-FAC", "  "))],
        "```",
    ]
    write_section("A torchvision ResNet-18 on 32×32 CIFAR-10: the EK-FAC fit (issue 21)", "\n".join(body))


if __name__ == "__main__":
    main()
