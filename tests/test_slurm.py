"""profiles/slurm: what it gives the plugin (fast, always), and the tiny workflow through it on a real
single-node SLURM cluster (scripts/slurm_cluster.sh).

Checks that the SLURM run's tables equal a local run's, and that every job went out with its rule's
threads (--cpus-per-task), mem_mb (--mem) and runtime (-t), and with the partition and account given
through SBATCH_PARTITION / SBATCH_ACCOUNT, while rules without `resources:` keep the profile's defaults.
The job records come from the cluster's completed-job log (jobcomp/filetxt: no slurmdbd, no sacct); the
kept SLURM logs (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log) map job ids to rules.

The cluster tests run when CI=true or UNPOISON_SLURM_TEST=1 and then FAIL if they cannot (not root and no
cluster running, slurm not installable, plugin missing); otherwise they are skipped. UNPOISON_SLURM_TEST=0
skips them anywhere. Root is needed to install slurm-wlm/munge (apt-get) and start the daemons, unless
`scripts/slurm_cluster.sh status` already succeeds; a cluster running before the test is left running, one
it started is stopped (by PID).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
STATE = Path(os.environ.get("UNPOISON_SLURM_DIR", "/tmp/unpoison-slurm"))

# Distinct per-rule resources, so that each job record shows which rule's settings reached sbatch.
RESOURCES = {
    "train_model": {"threads": 2, "mem_mb": 1800, "runtime": 17},
    "fit_ekfac": {"threads": 1, "mem_mb": 1700, "runtime": 16},
    "score_probes": {"threads": 2, "mem_mb": 1600, "runtime": 14},
    "unlearn": {"threads": 1, "mem_mb": 1900, "runtime": 13},
}
# Every other rule: one CPU and profiles/slurm's default-resources (mem_mb 4000, runtime 60).
PROFILE_DEFAULTS = {"threads": 1, "mem_mb": 4000, "runtime": 60}
PARTITION, ACCOUNT = "batch", "unpoison-test"  # `batch` is not the cluster's Default partition
RESOURCES_CONFIG = "resources={default: {threads: 1, mem_mb: 1500, runtime: 15, gpu: 0}, " + ", ".join(
    f"{rule}: {{threads: {r['threads']}, mem_mb: {r['mem_mb']}, runtime: {r['runtime']}, gpu: 0}}"
    for rule, r in RESOURCES.items()
) + "}"
SLURM_FLAGS = [
    "--slurm-status-command", "squeue",  # no slurmdbd: with sacct (the default when installed) the plugin hangs
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-keep-successful-logs",  # job id -> rule, for the job records
]
RUN_TIMEOUT = 1200

_setting = os.environ.get("UNPOISON_SLURM_TEST", "").strip().lower()
REQUIRED = _setting in {"1", "true", "yes"} or (_setting == "" and os.environ.get("CI", "").lower() == "true")

needs_cluster = pytest.mark.skipif(
    not REQUIRED,
    reason="real SLURM cluster test (5-10 min on 2 cores, needs root): runs with CI=true or UNPOISON_SLURM_TEST=1",
)


# ---- fast checks, no cluster: the profile's default-resources and the plugin's sbatch flags ----


def profile_default_resources(monkeypatch, **env: str) -> dict[str, str]:
    from snakemake.profiles import ProfileConfigFileParser

    for var in ("SBATCH_PARTITION", "SBATCH_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with open(ROOT / "profiles/slurm/config.yaml") as f:
        parsed = ProfileConfigFileParser().parse(f)
    return dict(entry.split("=", 1) for entry in parsed["default-resources"])


def test_profile_keeps_its_defaults_when_partition_and_account_are_given(monkeypatch):
    assert profile_default_resources(monkeypatch) == {"mem_mb": "4000", "runtime": "60"}
    # no cpus_per_task: it would override every rule's threads
    assert profile_default_resources(monkeypatch, SBATCH_PARTITION="gpu-a100", SBATCH_ACCOUNT="123456") == {
        "mem_mb": "4000", "runtime": "60", "slurm_partition": "'gpu-a100'", "slurm_account": "'123456'"}


@pytest.mark.parametrize("gpu", [0, 1])
def test_plugin_turns_threads_and_gpu_into_sbatch_flags(gpu):
    """What snakemake-executor-plugin-slurm makes of a rule with threads: 4, gpu, mem_mb and runtime."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(gpu=gpu, mem_mb=8000, runtime=600), threads=4)
    params = dict(run_uuid="u", slurm_logfile="log", comment_str="rule", account="", partition="", workdir="/w")
    flags = (get_submit_command(job, params) + set_gres_string(job)).split()
    assert "--cpus-per-task=4" in flags and flags[flags.index("--mem") + 1] == "8000" and flags[flags.index("-t") + 1] == "600"
    assert [f for f in flags if f.startswith("--gpus")] == ([f"--gpus={gpu}"] if gpu else [])  # gpu 0: no GPU request


# ---- the real cluster ----


def cannot_run(message: str):
    """Fail where the test is required (CI / UNPOISON_SLURM_TEST=1), else skip with the reason."""
    if REQUIRED:
        pytest.fail(f"SLURM test required (CI=true or UNPOISON_SLURM_TEST=1) but cannot run: {message}", pytrace=False)
    pytest.skip(message)


def cluster(action: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action, str(STATE)], capture_output=True, text=True, timeout=timeout)


# One detector and the tables only (no sweep, counterfactual or figures): every GPU rule and the rules around
# them still run, in 12 jobs; each SLURM job costs two Snakemake start-ups (~7 s of CPU each).
GRID = ["detectors=[delta_influence]", "counterfactual=[]"]
TARGET = "results/tables/summary.csv"


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(TINY), "--config", RESOURCES_CONFIG, *GRID, *args, TARGET]


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path} missing)"


class BackgroundRun:
    """Cluster start-up and the two tiny runs (through SLURM, and locally as the reference), in a thread.

    The SLURM run mostly waits (job start-up, and the plugin's status polls, which back off by 10 s after every
    check that finds no finished job), so conftest.py starts this thread as soon as the cluster tests are
    collected and the rest of the suite runs meanwhile; the `runs` fixture joins it.
    """

    def __init__(self, base: Path) -> None:
        self.base, self.error, self.timings = base, None, {}
        self.already_running = False
        self.slurm_dir, self.local_dir = base / "slurm_run", base / "local_run"
        self.thread = threading.Thread(target=self._run, name="slurm-test-run", daemon=True)

    def _run(self) -> None:
        try:
            self.error = self._start_cluster() or self._run_both()
        except Exception as exc:  # noqa: BLE001 (reported by the fixture)
            self.error = f"{type(exc).__name__}: {exc}"

    def _start_cluster(self) -> str | None:
        if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
            return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
        self.already_running = cluster("status").returncode == 0
        if self.already_running:
            return None
        if os.geteuid() != 0:
            return (f"no test cluster running and not root: run 'sudo {SCRIPT} start' first (installs slurm-wlm "
                    "and munge if missing, starts munged, slurmctld, slurmd as root)")
        t0 = time.monotonic()
        proc = cluster("start", timeout=900)
        self.timings["cluster_start_s"] = time.monotonic() - t0
        if proc.returncode != 0:
            cluster("stop")
            return f"{SCRIPT} start failed:\n{proc.stdout}\n{proc.stderr}"
        return None

    def _run_both(self) -> str | None:
        for d in (self.slurm_dir, self.local_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SBATCH_PARTITION": PARTITION, "SBATCH_ACCOUNT": ACCOUNT}
        t0 = time.monotonic()
        with open(self.local_dir / "snakemake.out", "w") as local_out, open(self.slurm_dir / "snakemake.out", "w") as slurm_out:
            local = subprocess.Popen(snakemake_cmd(self.local_dir, "--cores", "2"), stdout=local_out, stderr=subprocess.STDOUT)
            slurm = subprocess.Popen(snakemake_cmd(self.slurm_dir, "--profile", str(ROOT / "profiles/slurm"), *SLURM_FLAGS),
                                     stdout=slurm_out, stderr=subprocess.STDOUT, env=env)
            try:
                local_rc = local.wait(timeout=RUN_TIMEOUT)
                slurm_rc = slurm.wait(timeout=max(60, RUN_TIMEOUT - (time.monotonic() - t0)))
            finally:
                for proc in (local, slurm):
                    if proc.poll() is None:
                        proc.kill()  # the cluster's jobs are cancelled when the cluster is stopped
        self.timings["tiny_slurm_run_s"] = time.monotonic() - t0
        if local_rc != 0:
            return "local reference run failed:\n" + tail(self.local_dir / "snakemake.out")
        if slurm_rc != 0:
            return (tail(self.slurm_dir / "snakemake.out") + "\n--- slurmctld.log ---\n" + tail(STATE / "log/slurmctld.log"))
        return None

    def stop_cluster(self) -> None:
        if not self.already_running and cluster("status").returncode == 0:
            proc = cluster("stop", timeout=120)
            assert proc.returncode == 0, proc.stderr


_background: BackgroundRun | None = None


def start_background_run(base: Path) -> None:
    """Called by conftest.py when the cluster tests are selected and required: start the run now."""
    global _background
    if _background is None:
        _background = BackgroundRun(base)
        _background.thread.start()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(slurm_dir, local_dir): the tiny config through profiles/slurm on the cluster and, concurrently, locally
    with --cores 2 (started in the background at collection time; started here if it was not)."""
    if _background is None:
        start_background_run(tmp_path_factory.mktemp("slurm"))
    bg = _background
    try:
        bg.thread.join(timeout=RUN_TIMEOUT + 1000)
        if bg.thread.is_alive():
            pytest.fail("the background SLURM test run did not finish in time", pytrace=False)
        if bg.error:
            if bg.error.startswith(("snakemake-executor-plugin-slurm is not", "no test cluster", str(SCRIPT))):
                cannot_run(bg.error)
            pytest.fail(bg.error, pytrace=False)
        print(f"\nSLURM test timings: {bg.timings}")
        yield bg.slurm_dir, bg.local_dir
    finally:
        bg.stop_cluster()


def job_records(workdir: Path) -> dict[str, list[dict[str, str]]]:
    """Completed-job records (jobcomp.txt) of the jobs of the run in `workdir`, by rule."""
    rule_of = {}  # job id -> rule, from .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<jobid>.log
    for log in (workdir / ".snakemake/slurm_logs").rglob("*.log"):
        rule_dir = next(p for p in log.relative_to(workdir / ".snakemake/slurm_logs").parts if p.startswith("rule_"))
        rule_of[log.stem] = rule_dir.removeprefix("rule_")
    records = {}
    for line in (STATE / "jobcomp.txt").read_text().splitlines():
        rec = dict(re.findall(r"(\w+)=(\S*)", line))
        if rec.get("WorkDir") == str(workdir) and rec.get("JobId") in rule_of:
            records.setdefault(rule_of[rec["JobId"]], []).append(rec)
    return records


@needs_cluster
def test_slurm_run_gives_the_local_tables(runs):
    slurm_dir, local_dir = runs
    keys = {"detection": ["dataset", "attack", "seed", "detector"],
            "unlearning": ["dataset", "attack", "seed", "detector", "unlearner"]}
    for table, key in keys.items():
        on_slurm = pd.read_csv(slurm_dir / f"results/tables/{table}.csv").sort_values(key, ignore_index=True)
        local = pd.read_csv(local_dir / f"results/tables/{table}.csv").sort_values(key, ignore_index=True)
        assert len(local) > 0
        # wall and CPU times (and their ratios to EU's) vary; everything else is deterministic by seed on CPU
        timing = ["seconds", "cpu_seconds", "cost_vs_eu", "cpu_cost_vs_eu"]
        pd.testing.assert_frame_equal(on_slurm.drop(columns=timing, errors="ignore"),
                                      local.drop(columns=timing, errors="ignore"), obj=table)


@needs_cluster
def test_jobs_were_submitted_with_each_rules_threads_memory_and_runtime(runs):
    slurm_dir, _ = runs
    records = job_records(slurm_dir)
    expected_rules = {"prepare_dataset", "poison_dataset", "train_model", "select_queries", "evaluate_poisoned",
                      "fit_ekfac", "score_probes", "detect", "evaluate_detection", "unlearn", "evaluate_unlearned",
                      "make_tables"}
    assert set(records) == expected_rules, sorted(records)
    for rule, recs in records.items():
        want = RESOURCES.get(rule, PROFILE_DEFAULTS)
        for rec in recs:
            where = (rule, rec["JobId"])
            assert rec["JobState"] == "COMPLETED", where
            tres = dict(kv.split("=", 1) for kv in rec["Tres"].split(","))
            assert rec["ProcCnt"] == str(want["threads"]) and tres["cpu"] == str(want["threads"]), (where, rec)
            assert tres["mem"] == f"{want['mem_mb']}M", (where, rec)
            assert rec["TimeLimit"] == str(want["runtime"]), (where, rec)  # minutes
            assert rec["Partition"] == PARTITION and rec["Account"] == ACCOUNT, (where, rec)
