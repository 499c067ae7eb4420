"""Detection (EK-FAC factors + scores) of one trained cifar10-cpu model on the local SLURM cluster, as K = 1 and
K = 2 shard jobs (`influence.shards`), wall time from the scheduler's own records (jobcomp.txt: first start to
last end of the run's influence jobs).

    python bench/slurm_shards.py --results /path/to/a/cifar10-cpu/run/results --seed 100 --shards 1 2

``--results`` is the ``results/`` folder of a finished ``experiments/cifar10-cpu.yaml`` run (only its dataset,
poisoned set, trained model and queries are used; the factors and scores are recomputed). The revision's tree
is exported with ``git archive`` into ``--work`` with a copy of those inputs (modification times kept, so
nothing upstream re-runs), then for each K the influence outputs are removed and the profile ``profiles/slurm``
submits the jobs to the cluster of ``scripts/slurm_cluster.sh`` (started here if needed: root, apt-get).
Each influence job gets ONE thread here (``resources.fit_ekfac`` / ``resources.score_probes`` set on the command
line; cifar10-cpu.yaml gives them 2), so K = 1 uses one of the node's 2 CPUs and K = 2 both: the scale-out a
cluster gives with one core (or GPU) per job. Run it alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _common import ROOT, write_section

from unpoison.slurm_records import job_records

STATE = Path(os.environ.get("UNPOISON_SLURM_DIR", "/tmp/unpoison-slurm"))
RUN_INPUTS = ("model.pt", "poisoned.pt", "queries.pt", "truth.json")
INFLUENCE_OUTPUTS = ("ekfac", "ekfac_shards", "scores", "score_shards")
SLURM_FLAGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
SLURM_FLAGS += ["--slurm-keep-successful-logs"]


def prepare(work: Path, results: Path, dataset: str, attack: str, seed: int) -> Path:
    """The exported tree in ``work`` with the run's inputs copied (mtimes kept); returns the run directory."""
    if work.exists():
        shutil.rmtree(work)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
    work.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    run = work / "results" / dataset / attack / f"s{seed}"
    run.mkdir(parents=True)
    src_run = results / dataset / attack / f"s{seed}"
    for name in RUN_INPUTS:
        for path in (src_run / name, src_run / f"{name}.meta.json"):
            if path.exists():
                shutil.copy2(path, run / path.name)
    for path in (results / dataset).glob("*"):  # the dataset files (clean.pt ...) beside the attack folders
        if path.is_file():
            shutil.copy2(path, work / "results" / dataset / path.name)
    return run


def jobcomp_records(work: Path) -> list[dict[str, str]]:
    """jobcomp.txt records of the jobs run in ``work``, each with its rule."""
    by_rule = job_records(work, (STATE / "jobcomp.txt").read_text().splitlines())
    return [{**rec, "rule": rule} for rule, recs in by_rule.items() for rec in recs]


def seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def run_k(work: Path, run: Path, shards: int, seed: int, config: str) -> dict[str, object]:
    """Remove the influence outputs, run them on SLURM with ``shards`` jobs per pass; the scheduler's timings."""
    for name in INFLUENCE_OUTPUTS:
        shutil.rmtree(run / name, ignore_errors=True)
    shutil.rmtree(work / ".snakemake" / "slurm_logs", ignore_errors=True)
    target = [str((run / "scores" / "both.pt").relative_to(work))]
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile", config]
    one_thread = "{threads: 1, mem_mb: 4000, runtime: 60, gpu: 0}"
    resources = f"resources={{fit_ekfac: {one_thread}, score_probes: {one_thread}}}"
    cmd += ["--config", f"seeds=[{seed}]", f"influence={{shards: {shards}}}", resources, "--rerun-triggers", "mtime"]
    cmd += [*SLURM_FLAGS, *target]
    env = {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf")}
    env.pop("SBATCH_PARTITION", None)
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-4000:])
    recs = [r for r in jobcomp_records(work) if r["rule"] not in {"prepare_dataset"}]
    start = min(seconds(r["StartTime"]) for r in recs)
    end = max(seconds(r["EndTime"]) for r in recs)
    rules = sorted({r["rule"] for r in recs})
    job_s = sum(seconds(r["EndTime"]) - seconds(r["StartTime"]) for r in recs)
    return {"shards": shards, "jobs": len(recs), "rules": rules, "wall": end - start, "job_seconds": job_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--dataset", default="cifar10_10k")
    ap.add_argument("--attack", default="badnet")
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--config", default="experiments/cifar10-cpu.yaml")
    ap.add_argument("--work", type=Path, default=Path("/tmp/unpoison-slurm-shards"))
    args = ap.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts/slurm_cluster.sh"), "start", str(STATE)], check=True)
    run = prepare(args.work, args.results.resolve(), args.dataset, args.attack, args.seed)
    rows = [run_k(args.work, run, k, args.seed, args.config) for k in args.shards]
    base = rows[0]["wall"]
    lines = [
        "| K | jobs | rules | scheduler wall s (first start → last end) | sum of job times s | speed-up vs K = "
        f"{rows[0]['shards']} |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shards']} | {r['jobs']} | {', '.join(r['rules'])} | {r['wall']:.0f} | {r['job_seconds']:.0f} "
            f"| {base / r['wall']:.2f}× |"
        )
    body = (
        f"Run `{args.dataset}/{args.attack}/s{args.seed}` of `{args.config}` (trained model reused), "
        "single-node cluster of `scripts/slurm_cluster.sh` (2 CPUs), `profiles/slurm`, each influence job 1 thread "
        "(`resources.fit_ekfac` / `score_probes` threads: 1). Wall = the scheduler's first StartTime to last EndTime (jobcomp.txt) of the "
        "run's jobs, so Snakemake's submission and polling gaps count.\n\n" + "\n".join(lines)
    )
    write_section(f"Influence shards on SLURM ({args.dataset})", body)


if __name__ == "__main__":
    main()
