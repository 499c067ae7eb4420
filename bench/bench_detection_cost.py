"""Detection cost (EK-FAC factors + scores) against the model's training time, per cap setting, with TPR/precision.

On a finished pipeline run (model, poisoned set, queries, truth, and the train_model benchmark), in ONE process:
  1. one training epoch with the run's recipe (the unit), and the run's full training time from its benchmark;
  2. for each ``--settings COV:LAMBDA`` (a count, ``all`` or ``auto``): the factor fit (stage times from its
     report), the score pass over all probes of the run's queries exactly as the pipeline builds them (seed of
     the run), and the Δ-Influence (τ = 0, k = 1) and EK-FAC (threshold 0) flags scored against the truth;
  3. optionally (``--shards K``) the first setting's fit and score pass as K shard jobs run one after another:
     summed job time and whether the flags are the same.
Truth is read only to measure detection quality. Writes a section to BENCHMARKS.md.

    python bench/bench_detection_cost.py --run /tmp/influence-cifar/results/cifar10_10k/badnet/s100 \\
        --settings all:2000 5000:2000 3000:1300 auto:auto --shards 2
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import timed, write_section

from unpoison.data import TensorDataset01
from unpoison.detectors import get_detector
from unpoison.detectors.base import DetectorInputs
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.influence.score_shards import gather_scores, score_shard
from unpoison.influence.shards import aggregate_covariance, aggregate_lambda, fit_covariance_shard, fit_lambda_shard
from unpoison.io import load_json, load_torch
from unpoison.metrics import detection_metrics
from unpoison.models import build_model, load_checkpoint
from unpoison.stages.data import load_poisoned
from unpoison.training import TrainRecipe, train_model

DEV = torch.device("cpu")


def cap(text: str) -> int | None | str:
    return None if text == "all" else text if text == "auto" else int(text)


def detect(scores: torch.Tensor, probes, poisons) -> tuple[dict, dict, np.ndarray]:
    """Δ-Influence and EK-FAC metrics from (q_all, N) scores laid out by ``probes``."""
    cols = torch.cat([probes.base_rows[:, None], probes.probe_rows["both"]], dim=1)
    inputs = DetectorInputs(
        scores={
            "both": {"scores": scores[cols], "labels": probes.labels[cols]},
            "base": {"scores": scores[probes.base_rows[:, None]], "labels": probes.labels[probes.base_rows[:, None]]},
        }
    )
    delta = get_detector("delta_influence", {"tau": 0.0, "k": 1}).detect(inputs)
    ekfac = get_detector("ekfac", {"threshold": 0.0}).detect(inputs)
    return detection_metrics(delta, poisons), detection_metrics(ekfac, poisons), np.asarray(delta)


def sharded(model, train, queries, settings, scoring, seed, k, root: Path) -> tuple[float, torch.Tensor]:
    """The fit and the score pass as k shard jobs, one after another: (summed seconds, scores)."""
    quiet = lambda line: None
    start = time.perf_counter()
    for i in range(k):
        fit_covariance_shard(model, train, root / f"cov{i}", settings, DEV, seed, i, k, log=quiet)
    aggregate_covariance(model, [root / f"cov{i}" for i in range(k)], root / "eigen", DEV, log=quiet)
    for i in range(k):
        fit_lambda_shard(model, train, root / "eigen", root / f"lam{i}", settings, DEV, seed, i, k, log=quiet)
    aggregate_lambda(model, root / "eigen", [root / f"lam{i}" for i in range(k)], root / "ekfac", log=quiet)
    for i in range(k):
        score_shard(model, root / "ekfac", queries, train, scoring, DEV, i, k, root / f"s{i}.pt", log=quiet)
    scores = gather_scores([root / f"s{i}.pt" for i in range(k)])
    return time.perf_counter() - start, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--settings", nargs="+", default=["all:2000", "auto:auto"], help="COV:LAMBDA caps")
    ap.add_argument("--n-b", type=int, default=50)
    ap.add_argument("--factor-batch", type=int, default=128)
    ap.add_argument("--score-batch", type=int, default=64)
    ap.add_argument("--shards", type=int, default=0)
    ap.add_argument("--title", default="", help="appended to the BENCHMARKS.md section title (a second table)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    seed = int(re.search(r"/s(\d+)/?$", str(run)).group(1))
    model, spec = load_checkpoint(run / "model.pt")
    x, y = load_poisoned(run / "poisoned.pt")
    q = load_torch(run / "queries.pt")
    poisons = load_json(run / "truth.json")["poison_indices"]
    recipe = TrainRecipe.from_dict(load_json(run / "model.pt.meta.json")["recipe"])
    with open(run / "benchmarks/train_model.tsv") as f:
        t_train = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    train = TensorDataset01(x, y)
    probes = build_probe_set(q["x"], q["labels"], spec["num_classes"], args.n_b, seed, ("both",))
    queries = TensorDataset01(probes.images, probes.labels)
    scoring = ScoreSettings(train_batch_size=args.score_batch)
    pipeline_flags = np.load(run / "flagged/delta_influence.npy")

    torch.manual_seed(0)
    fresh = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec["options"])
    t_epoch, _ = timed(
        lambda: train_model(fresh, x, y, TrainRecipe(**{**recipe.to_dict(), "epochs": 1, "milestones": []}), 0, DEV)
    )

    rows, first_flags = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(args.settings):
            c, lam = map(cap, text.split(":"))
            settings = FactorSettings(batch_size=args.factor_batch, covariance_max_examples=c, lambda_max_examples=lam)
            t_fit, report = timed(
                lambda: fit_factors(model, train, Path(tmp) / f"f{i}", settings, DEV, seed, log=print)
            )
            t_score, scores = timed(
                lambda: score_queries(model, Path(tmp) / f"f{i}", queries, train, scoring, DEV, log=print)
            )
            delta, ekfac, flags = detect(scores, probes, poisons)
            rows.append(
                (text, report, t_fit, t_score, delta, ekfac, np.array_equal(np.sort(flags), np.sort(pipeline_flags)))
            )
            first_flags = flags if first_flags is None else first_flags
            print(rows[-1][0], t_fit, t_score, delta, ekfac, flush=True)
        shard_line = ""
        if args.shards >= 2:
            c, lam = map(cap, args.settings[0].split(":"))
            settings = FactorSettings(batch_size=args.factor_batch, covariance_max_examples=c, lambda_max_examples=lam)
            t_sharded, scores = sharded(
                model, train, queries, settings, scoring, seed, args.shards, Path(tmp) / "shards"
            )
            delta, _, flags = detect(scores, probes, poisons)
            same = np.array_equal(flags, first_flags)
            shard_line = (
                f"\nSharded, setting `{args.settings[0]}`, K = {args.shards} shard jobs run one after another in one "
                f"process: factors + scores {t_sharded:.0f} s in all (single jobs: {rows[0][2] + rows[0][3]:.0f} s); "
                f"Δ-Influence flags {'identical' if same else 'DIFFERENT'} (TPR {100 * delta['tpr']:.1f} %).\n"
            )

    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        f"Run `{run}` (seed {seed}): {spec['name']} {spec['options']} ({n_params:,} parameters), {len(train):,} training "
        f"images, {len(poisons)} poisons, {len(q['labels'])} query, n_b = {args.n_b} ({len(queries)} scored queries). "
        f"**Full training: {t_train:.0f} s** (train_model benchmark, {recipe.epochs} epochs); one epoch measured here: "
        f"{t_epoch:.1f} s. Factor batch {args.factor_batch}, score batch {args.score_batch}.",
        "",
        "| caps cov:lambda | examples cov / lambda | covariance s | eigen s | lambda s | scores s | detection ÷ epoch "
        "| detection ÷ training | Δ-Influence TPR | precision | EK-FAC TPR | precision | flags = pipeline's |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for text, r, t_fit, t_score, d, e, same in rows:
        s = r.seconds
        lines.append(
            f"| {text} | {r.n_covariance:,} / {r.n_lambda:,} | {s['covariance']:.0f} | {s['eigendecomposition']:.1f} "
            f"| {s['lambda']:.0f} | {t_score:.0f} | {(t_fit + t_score) / t_epoch:.1f} | **{(t_fit + t_score) / t_train:.3f}** "
            f"| {100 * d['tpr']:.1f} % | {100 * d['precision']:.1f} % | {100 * e['tpr']:.1f} % | {100 * e['precision']:.1f} % "
            f"| {'yes' if same else 'no'} |"
        )
    write_section(
        f"Detection cost against training ({spec['name']}, seed {seed}){args.title}",
        "\n".join(lines) + "\n" + shard_line,
    )


if __name__ == "__main__":
    main()
