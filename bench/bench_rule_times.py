"""Per-rule wall time of a pipeline run, from Snakemake's benchmark files (``RUN/benchmarks/**/*.tsv``).

python bench/bench_rule_times.py --results results --dataset cifar10_10k
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from _common import write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--dataset", default="cifar10_10k")
    ap.add_argument("--total", type=float, default=None, help="end-to-end wall seconds of the run, if measured")
    args = ap.parse_args()
    rows = []
    for tsv in sorted(Path(args.results, args.dataset).glob("*/s*/benchmarks/**/*.tsv")):
        rel = tsv.relative_to(Path(args.results, args.dataset))
        attack, seed = rel.parts[0], rel.parts[1]
        job = "/".join(tsv.relative_to(tsv.parents[len(rel.parts) - 4]).with_suffix("").parts)
        b = pd.read_csv(tsv, sep="\t").iloc[0]
        rows.append({"attack": attack, "seed": seed, "job": job, "s": b["s"], "max_rss_mb": b["max_rss"]})
    if not rows:
        raise SystemExit(f"no benchmark files under {args.results}/{args.dataset}: run the pipeline first")
    df = pd.DataFrame(rows)
    lines = ["| attack | seed | job | wall s | max RSS MB |", "|---|---|---|---:|---:|"]
    for r in df.itertuples(index=False):
        lines.append(f"| {r.attack} | {r.seed} | {r.job} | {r.s:.0f} | {r.max_rss_mb:.0f} |")
    lines.append(
        f"\nSum of benchmarked jobs: {df.s.sum():.0f} s (jobs without `benchmark:` — data preparation, "
        "queries, detection, evaluation, tables — take seconds each)."
    )
    if args.total:
        lines.append(
            f"End-to-end wall time of the run (`time snakemake ...`, 2 cores): {args.total:.0f} s = {args.total / 60:.1f} min."
        )
    write_section(f"Per-rule wall time ({args.dataset})", "\n".join(lines))


if __name__ == "__main__":
    main()
