"""Batched scoring of n_b + 1 queries in ONE pass over the training set vs one query per pass.

The reference Δ-Influence code scored one query per pass (query batch size 1): n_b + 1 passes per
detection. kronfluence scores a whole query batch in one pass. This script times both on a trained run
of the pipeline (model, poisoned set, queries, EK-FAC factors), checks the scores agree, and writes the
ratio to BENCHMARKS.md. With ``--per-query N`` only N single-query passes are timed and the per-query
total is extrapolated to n_b + 1 passes (stated in the output).

    python bench/bench_scoring_batched.py --run results/digits/badnet/s0
"""

from __future__ import annotations

import argparse

import torch
from _common import timed, write_section

from unpoison.data import TensorDataset01
from unpoison.influence import ScoreSettings, build_probe_set, score_queries
from unpoison.io import load_torch
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_poisoned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="results/digits/badnet/s0", help="a pipeline run directory (after score_probes)")
    ap.add_argument("--n-b", type=int, default=50)
    ap.add_argument(
        "--per-query", type=int, default=0, help="time only this many single-query passes and extrapolate (0 = all)"
    )
    ap.add_argument("--train-batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")

    model, spec = load_checkpoint(f"{args.run}/model.pt")
    x, y = load_poisoned(f"{args.run}/poisoned.pt")
    q = load_torch(f"{args.run}/queries.pt")
    ps = build_probe_set(q["x"][:1], q["labels"][:1], spec["num_classes"], args.n_b, seed=0, probes=("both",))
    train = TensorDataset01(x, y)
    factors = f"{args.run}/ekfac"
    n_q = len(ps.labels)
    settings = ScoreSettings(train_batch_size=args.train_batch_size, query_batch_size=n_q)

    t_batched, batched = timed(
        lambda: score_queries(model, factors, TensorDataset01(ps.images, ps.labels), train, settings, dev)
    )
    n_single = args.per_query or n_q
    single_rows, t_single = [], 0.0
    for i in range(n_single):
        t, s = timed(
            lambda: score_queries(
                model, factors, TensorDataset01(ps.images[i : i + 1], ps.labels[i : i + 1]), train, settings, dev
            )
        )
        t_single += t
        single_rows.append(s)
    single = torch.cat(single_rows)
    ref = batched[:n_single]
    max_rel = float((single - ref).abs().max() / ref.abs().max())
    per_query_total = t_single / n_single * n_q
    extrapolated = n_single < n_q
    body = f"""
Run `{args.run}` ({spec["name"]}, {sum(p.numel() for p in model.parameters()):,} parameters, {len(train):,} training points),
n_b = {args.n_b}: {n_q} queries (the base query + n_b transformed copies, probe `both`).

| mode | passes over the training set | wall seconds |
|---|---:|---:|
| batched (one pass, kronfluence query batch = {n_q}) | 1 | {t_batched:.1f} |
| one query per pass (reference code) | {n_q} | {per_query_total:.1f}{" (extrapolated from %d timed passes)" % n_single if extrapolated else ""} |

**Speed-up of batched scoring: {per_query_total / t_batched:.1f}×.** Scores agree: max |difference| / max |score| =
{max_rel:.1e} over the {n_single} compared queries (float32 summation order).
"""
    write_section(f"Batched vs per-query scoring ({spec['name']})", body)


if __name__ == "__main__":
    main()
