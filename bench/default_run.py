"""The default run (`snakemake --cores N` on config.yaml) from a fresh export of each revision, timed one after the
other on the same machine: wall time, job count and the process CPU time of the whole run.

    python bench/default_run.py --revs 50ba440 HEAD --cores 2

Run it alone: the jobs compete for the cores with anything else. Each revision's tree is exported with
`git archive` into a temporary directory (nothing of the working tree is used) and its tables are kept for a
comparison of the numbers (columns both revisions have, time columns excluded).
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import ROOT, write_section

TIME_COLUMNS = ("seconds", "cost_vs_eu")


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run(tree: Path, cores: int) -> dict[str, float]:
    """Wall seconds, jobs and child CPU seconds of one default run in ``tree``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores)], cwd=tree, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    jobs = re.findall(r"(\d+) of (\d+) steps \(100%\) done", proc.stdout + proc.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "jobs": int(jobs[-1][1]) if jobs else -1, "cpu": cpu}


def same_tables(a: Path, b: Path) -> list[str]:
    """Per table of results/tables/: identical on the shared columns (time columns excluded), or how it differs."""
    lines = []
    for f in sorted((a / "results/tables").glob("*.csv")):
        x, y = pd.read_csv(f), pd.read_csv(b / "results/tables" / f.name)
        cols = [c for c in x.columns if c in y.columns and not any(t in c for t in TIME_COLUMNS)]
        keys = [
            c
            for c in ("dataset", "attack", "seed", "detector", "unlearner", "removed", "tau", "k", "threshold")
            if c in cols
        ]
        xs, ys = (t[cols].sort_values(keys).reset_index(drop=True) for t in (x, y))
        same = xs.shape == ys.shape and xs.equals(ys)
        lines.append(f"`{f.name}`: {'identical' if same else 'DIFFERENT'} on {len(cols)} shared columns")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revs", nargs="+", default=["HEAD"])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="copy the last revision's results/ here")
    args = ap.parse_args()
    rows, trees = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rev in args.revs:
            tree = export(rev, Path(tmp) / rev.replace("/", "_"))
            r = run(tree, args.cores)
            trees.append(tree)
            rows.append(f"| {rev} | {r['jobs']} | {r['wall']:.0f} | {r['cpu']:.0f} |")
        compare = same_tables(trees[0], trees[-1]) if len(trees) > 1 else []
        if args.keep:
            shutil.copytree(trees[-1] / "results", args.keep, dirs_exist_ok=True)
    body = "\n".join(["| revision | jobs | wall s | CPU s (all jobs) |", "|---|---:|---:|---:|", *rows])
    if compare:
        body += f"\n\nTables of {args.revs[-1]} against {args.revs[0]}: " + "; ".join(compare) + "."
    write_section("Default run, before and after (bench/default_run.py)", body)


if __name__ == "__main__":
    main()
