"""Paper-scale cost model: each EK-FAC stage of ResNet-18 in training epochs, measured at CPU scale, and the
GPU-hours of experiments/paper.yaml they imply (an ESTIMATE; the section states its assumptions).

Per model (resnet18_cifar on 32×32 CIFAR images; resnet18 with the ImageNet stem on 160×160 Imagenette images;
random pixels: the cost does not depend on them), in ONE process on the CPU:
  * one training step per image (the paper's recipe, batch 128, on ``--n-epoch`` images);
  * the covariance pass per image (``--n-cov`` images), the eigendecompositions (once), the lambda pass per image
    (``--n-lambda`` images), from fit_factors' own stage times;
  * the score pass per training image with ``--queries`` queries and with 4, to split a per-query term.
Each stage is converted into training epochs of the full set (per-image cost ratio × N) next to the FLOP
estimate of unpoison.influence.cost. Writes a section to BENCHMARKS.md.

    python bench/bench_paper_cost.py --epoch-seconds 15 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import timed, write_section

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, ScoreSettings, fit_factors, score_queries
from unpoison.influence.cost import estimate_cost
from unpoison.models import build_model
from unpoison.training import TrainRecipe, train_model

DEV = torch.device("cpu")
CASES = {  # name: (model, options, side, N of the paper's training set, models in paper.yaml's grid)
    "CIFAR-10/100 (resnet18_cifar, 32 px, N = 50,000)": ("resnet18_cifar", {"width": 64}, 32, 50_000, 12),
    "Imagenette (resnet18, 160 px, N = 9,469)": ("resnet18", {"width": 64}, 160, 9_469, 6),
}
RECIPE = dict(
    epochs=1,
    batch_size=128,
    lr=0.1,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    milestones=[],
    gamma=0.1,
    crop_padding=4,
    flip=True,
)


def images(n: int, side: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def measure(name: str, options: dict, side: int, n_full: int, args) -> dict:
    """Seconds per image of each stage at CPU scale, and the FLOP estimate's ratios at the full N."""
    torch.manual_seed(0)
    model = build_model(name, 10, 3, options)
    x, y = images(max(args.n_epoch, args.n_cov, 2 * args.n_score), side)
    t_epoch, _ = timed(
        lambda: train_model(
            build_model(name, 10, 3, options), x[: args.n_epoch], y[: args.n_epoch], TrainRecipe(**RECIPE), 0, DEV
        )
    )
    model.eval()
    train = TensorDataset01(x[: args.n_cov], y[: args.n_cov])
    with tempfile.TemporaryDirectory() as tmp:
        report = fit_factors(
            model,
            train,
            Path(tmp) / "f",
            FactorSettings(batch_size=32, lambda_max_examples=args.n_lambda),
            DEV,
            log=print,
        )
        scoring = ScoreSettings(train_batch_size=32, query_batch_size=args.queries)
        slope = {}  # seconds per training image of the score pass, for q queries (the slope between two set sizes)
        for q in (4, args.queries):
            qx, qy = images(q, side, seed=1)
            t = [
                timed(
                    lambda n=n: score_queries(
                        model,
                        Path(tmp) / "f",
                        TensorDataset01(qx, qy),
                        TensorDataset01(x[:n], y[:n]),
                        scoring,
                        DEV,
                        log=print,
                    )
                )[0]
                for n in (args.n_score, 2 * args.n_score)
            ]
            slope[q] = (t[1] - t[0]) / args.n_score
    per_query = (slope[args.queries] - slope[4]) / (args.queries - 4)  # seconds per training image and query
    est = estimate_cost(model, train, n_queries=151, measure=False)
    est.n_train = n_full
    epoch_img = t_epoch / args.n_epoch
    s = report.seconds
    return {
        "epoch_img": epoch_img,
        "covariance": s["covariance"] / args.n_cov / epoch_img,
        "lambda": s["lambda"] / args.n_lambda / epoch_img,
        "scores_pass": (slope[4] - 4 * per_query) / epoch_img,
        "scores_query": per_query / epoch_img,
        "eigen_s": s["eigendecomposition"],
        "helped": report.helped(),
        "flops": {k: v / est.per_image["epoch"] for k, v in est.per_image.items() if k != "eigendecomposition"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-epoch", type=int, default=256)
    ap.add_argument("--n-cov", type=int, default=256)
    ap.add_argument("--n-lambda", type=int, default=16)
    ap.add_argument("--n-score", type=int, default=128)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument(
        "--epoch-seconds",
        type=float,
        nargs=2,
        default=[15.0, 5.0],
        help="ASSUMED GPU seconds per training epoch: CIFAR (50k, resnet18_cifar) and Imagenette (9.5k)",
    )
    ap.add_argument(
        "--width", type=int, default=64, help="ResNet-18 width (64 = the paper's; smaller for a smoke test)"
    )
    ap.add_argument("--dry", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        case: measure(name, {"width": args.width}, side, n, args) for case, (name, _, side, n, _) in CASES.items()
    }
    lines = [
        f"Measured on the CPU with random pixels: training step on {args.n_epoch} images, covariance on {args.n_cov}, "
        f"lambda on {args.n_lambda}, score pass per training image (the slope between {args.n_score} and {2 * args.n_score} images) "
        f"with 4 and {args.queries} queries "
        "(the per-query term extrapolated to the paper's 151 = 1 + 3 × 50 scored queries). Stage costs per image "
        "divided by a training step's, i.e. in **training epochs of the full set** (the eigendecomposition: CPU "
        "seconds, once per model).",
        "",
        "| model | stage | measured CPU, epochs | FLOP estimate, epochs |",
        "|---|---|---:|---:|",
    ]
    for case, r in results.items():
        f = r["flops"]
        lines += [
            f"| {case} | covariance (all N) | {r['covariance']:.1f} | {f['covariance']:.1f} |",
            f"| | lambda (all N) | {r['lambda']:.1f} | {f['lambda']:.1f} |",
            f"| | scores, 151 queries | {r['scores_pass'] + 151 * r['scores_query']:.1f} | {f['scores']:.1f} |",
            f"| | eigendecomposition | {r['eigen_s']:.0f} s (CPU, once) | — |",
        ]
        if r["helped"]:
            lines.append(f"| | eigh needed help | {'; '.join(r['helped'])} | |")
    lines += ["", *grid_hours(results, args.epoch_seconds)]
    if args.dry:
        print("\n".join(lines))
        return
    write_section("Paper-scale cost model: EK-FAC stages of ResNet-18 in training epochs", "\n".join(lines))


def detection_epochs(r: dict, n_full: int, lambda_cap: int | None, source: str) -> float:
    """Covariance + lambda (capped) + scores in training epochs of the full set, measured or from FLOPs."""
    f = (
        r["flops"]
        if source == "flops"
        else {
            "covariance": r["covariance"],
            "lambda": r["lambda"],
            "scores": r["scores_pass"] + 151 * r["scores_query"],
        }
    )
    share = 1.0 if lambda_cap is None else min(lambda_cap, n_full) / n_full
    return f["covariance"] + share * f["lambda"] + f["scores"]


def grid_hours(results: dict, epoch_seconds: list[float]) -> list[str]:
    """GPU-hours of paper.yaml's GPU jobs from epochs per job (an estimate; assumptions in the text)."""
    other = 40 + 40 * 2 * 7 / 1 + 40  # train_model + unlearn (eu, cf ≈ full recipe each, 7 detectors) + counterfactual
    clean = 40 / 2  # train_clean: one per dataset × seed, shared by the model's two attacks
    lines = [
        "GPU-hours of `experiments/paper.yaml` (18 models: 12 CIFAR-10/100, 6 Imagenette), **an estimate**. "
        f"Assumptions: one GPU epoch takes {epoch_seconds[0]:g} s (CIFAR, 50k) and {epoch_seconds[1]:g} s (Imagenette, "
        "9.5k) (pass `--epoch-seconds` with your GPU's figures); each EK-FAC stage costs on the GPU the same number of "
        "training epochs as measured here on the CPU (the FLOP column says what it would cost if the GPU ran every "
        "stage at the same FLOP rate as training); per model: training 40 epochs, EU and CF unlearning ≈ 40 epochs "
        "each for each of 7 detectors, counterfactual retraining 40, half a clean model (train_clean is shared by "
        "two attacks); smooth's DeepFool, FreqDef (10 small-CNN epochs per dataset), evaluation and the CPU jobs are "
        "left out; the eigendecompositions run on the GPU in seconds and are left out.",
        "",
        "| lambda_max_examples | detection epochs per model CIFAR / Imagenette | detection GPU-h (18 models) "
        "| all GPU jobs GPU-h | detection wall time per model, K = 1 / 4 / 8 shards (CIFAR, min) |",
        "|---|---:|---:|---:|---|",
    ]
    cases = list(results.values())
    for cap in (None, 5000, 2000):
        d = [detection_epochs(r, n, cap, "measured") for r, n in zip(cases, (50_000, 9_469))]
        det_h = (12 * d[0] * epoch_seconds[0] + 6 * d[1] * epoch_seconds[1]) / 3600
        rest_h = (12 * (other + clean) * epoch_seconds[0] + 6 * (other + clean) * epoch_seconds[1]) / 3600
        wall = " / ".join(f"{d[0] * epoch_seconds[0] / k / 60:.1f}" for k in (1, 4, 8))
        lines.append(
            f"| {cap or 'all (paper.yaml today)'} | {d[0]:.1f} / {d[1]:.1f} | {det_h:.1f} | {det_h + rest_h:.0f} "
            f"| {wall} |"
        )
    lines += [
        "",
        "K shards cut a model's detection wall time about K-fold on K GPUs (each shard also recomputes the "
        "151 query gradients and pays a job start-up) but not its GPU-hours; the grid's GPU-hours are "
        "dominated by the 14 unlearning runs per model, not by detection.",
    ]
    return lines


if __name__ == "__main__":
    main()
