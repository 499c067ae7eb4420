"""Start-up cost of a pipeline job: the imports of each workflow script, timed in fresh interpreters.

A grid is mostly small jobs (detect, unlearn, evaluate: 780 of the 1,074 of experiments/digits-paper.yaml),
each a new Python process, so what their modules import is paid hundreds of times. Baseline: a bare
``import torch`` timed in the same loop; with ``--rev``, the same imports at another git revision too.

    python bench/job_startup.py --repeats 7 --rev f1c294b
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, write_section


def script_imports(script: Path) -> str:
    """The ``from unpoison... import ...`` lines of a workflow script, as one statement string."""
    lines = [ln for ln in script.read_text().splitlines() if re.match(r"(from|import) unpoison", ln)]
    return "; ".join(lines)


def time_import(statement: str, pythonpath: Path) -> float:
    """Wall seconds of a fresh interpreter running ``statement``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` written under ``into`` (git archive)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rev", default=None, help="also time the imports at this git revision")
    ap.add_argument("--scripts", nargs="*", default=["detect", "unlearn", "evaluate_model", "evaluate_detection"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"HEAD (work tree)": ROOT}
        if args.rev:
            trees[args.rev] = export(args.rev, Path(tmp))
        cases = {"import torch": ("import torch", ROOT)}
        for name in args.scripts:
            for label, tree in trees.items():
                cases[f"{name} @ {label}"] = (script_imports(tree / "workflow_scripts" / f"{name}.py"), tree)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
            for key, (stmt, tree) in cases.items():
                times[key].append(time_import(stmt, tree))
    base = statistics.median(times["import torch"])
    lines = ["| imports of | median s | × `import torch` |", "|---|---:|---:|"]
    for key, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {key} | {med:.2f} | {med / base:.2f} |")
    lines.append(f"\n{args.repeats} fresh interpreters per row, interleaved; medians.")
    write_section("Job start-up (bench/job_startup.py)", "\n".join(lines))


if __name__ == "__main__":
    main()
