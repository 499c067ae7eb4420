"""Influence stages in units of one training epoch of the same model and data, and their levers.

On a finished pipeline run (model, poisoned set, queries, truth), in ONE process:
  1. one training epoch with the run's recipe (the unit);
  2. the factor stage (EK-FAC covariance + eigendecomposition + lambda) for each ``--lambda-max`` value,
     and, with those factors, Δ-Influence's TPR/precision (τ = 0, k = 1) and EK-FAC's (threshold 0);
  3. the score stage (base query + n_b transforms, probe ``both``, one pass) for each score setting.
Truth is read here only to measure detection quality. Writes a section to BENCHMARKS.md.

    python bench/bench_stages.py --run results/cifar10_10k/badnet/s0 --lambda-max none 2000 1000 500
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import timed, write_section

from unpoison.data import TensorDataset01
from unpoison.detectors.delta_influence import delta_flags
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.io import load_json, load_torch
from unpoison.metrics import detection_metrics
from unpoison.models import build_model, load_checkpoint
from unpoison.stages.data import load_poisoned
from unpoison.training import TrainRecipe, train_model


def _parse_opt_int(v: str) -> int | None:
    return None if v.lower() == "none" else int(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="results/cifar10_10k/badnet/s0")
    ap.add_argument("--n-b", type=int, default=50)
    ap.add_argument("--lambda-max", nargs="+", default=["none", "2000", "1000"], help="lambda_max_examples values")
    ap.add_argument("--factor-batch", type=int, default=128)
    ap.add_argument("--train-batch", nargs="+", type=int, default=[256], help="score-stage training batch sizes")
    ap.add_argument("--low-rank", nargs="+", default=["none"], help="query_gradient_low_rank values")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    run = Path(args.run)

    model, spec = load_checkpoint(run / "model.pt")
    x, y = load_poisoned(run / "poisoned.pt")
    q = load_torch(run / "queries.pt")
    poisons = load_json(run / "truth.json")["poison_indices"]
    recipe = TrainRecipe.from_dict(load_json(run / "model.pt.meta.json")["recipe"])
    train = TensorDataset01(x, y)
    ps = build_probe_set(q["x"][:1], q["labels"][:1], spec["num_classes"], args.n_b, seed=0, probes=("both",))
    queries = TensorDataset01(ps.images, ps.labels)

    torch.manual_seed(0)
    fresh = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
    one = TrainRecipe(**{**recipe.to_dict(), "epochs": 1, "milestones": []})
    t_epoch, _ = timed(lambda: train_model(fresh, x, y, one, 0, dev))

    rows, score_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for lam in map(_parse_opt_int, args.lambda_max):
            fdir = Path(tmp) / f"f{lam}"
            t_fit, _ = timed(
                lambda: fit_factors(
                    model, train, fdir, FactorSettings(batch_size=args.factor_batch, lambda_max_examples=lam), dev, 0
                )
            )
            scores = score_queries(
                model, fdir, queries, train, ScoreSettings(train_batch_size=args.train_batch[0]), dev
            )
            s = scores[None]  # (1, 1 + n_b, N)
            delta = detection_metrics(np.flatnonzero(delta_flags(s, 0.0, 1)[0].numpy()), poisons)
            ekfac = detection_metrics(np.flatnonzero((s[0, 0] > 0).numpy()), poisons)
            rows.append((lam, t_fit, delta, ekfac))
            print(lam, t_fit, delta, ekfac, flush=True)
        fdir = Path(tmp) / f"f{_parse_opt_int(args.lambda_max[0])}"
        for tb in args.train_batch:
            for lr in map(_parse_opt_int, args.low_rank):
                st = ScoreSettings(train_batch_size=tb, query_batch_size=len(queries), query_gradient_low_rank=lr)
                t_score, _ = timed(lambda: score_queries(model, fdir, queries, train, st, dev))
                score_rows.append((tb, lr, t_score))
                print(tb, lr, t_score, flush=True)

    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        f"Run `{run}`: {spec['name']} {spec['options']} ({n_params:,} parameters), {len(train):,} training images "
        f"{tuple(x.shape[1:])}, {len(poisons)} poisons. **One training epoch = {t_epoch:.1f} s** (batch {recipe.batch_size}, "
        f"crop+flip augmentation).",
        "",
        "Factor stage (covariance + eigendecomposition + lambda, batch %d) and detection with those factors:"
        % args.factor_batch,
        "",
        "| lambda_max_examples | factor stage s | ÷ epoch | Δ-Influence TPR | Δ-Influence precision | EK-FAC TPR | EK-FAC precision |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lam, t_fit, d, e in rows:
        lines.append(
            f"| {lam or 'all'} | {t_fit:.0f} | {t_fit / t_epoch:.1f} | {100 * d['tpr']:.1f} % | {100 * d['precision']:.1f} % "
            f"| {100 * e['tpr']:.1f} % | {100 * e['precision']:.1f} % |"
        )
    lines += [
        "",
        f"Score stage: {len(queries)} queries (base + n_b = {args.n_b} transforms) in ONE pass over the training set:",
        "",
        "| train batch | query_gradient_low_rank | score stage s | ÷ epoch |",
        "|---:|---|---:|---:|",
    ]
    for tb, lr, t in score_rows:
        lines.append(f"| {tb} | {lr or 'exact'} | {t:.0f} | {t / t_epoch:.1f} |")
    write_section(f"Influence stages in training epochs ({spec['name']}, {len(train)} images)", "\n".join(lines))


if __name__ == "__main__":
    main()
