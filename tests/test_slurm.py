"""profiles/slurm: what it gives the plugin (fast, always), and the tiny workflow through it on a real
single-node SLURM cluster (scripts/slurm_cluster.sh).

Checks that the SLURM run's tables equal a local run's, that every job went out with its rule's threads
(--cpus-per-task), mem_mb (--mem) and runtime (-t) and the account given through SBATCH_ACCOUNT, while rules
without `resources:` keep the profile's defaults, and that exactly the rules given `gpu: 1` (fit_ekfac,
score_probes; score_probes also with a GPU type, `gpu_model`) asked for and were allocated a GPU, in the
`gpu` partition that profiles/slurm/partitions.example.yaml routes GPU jobs to (every other job: `batch`).
The cluster's GPUs are only counts (scripts/slurm_cluster.sh): no device exists, so the jobs run on the CPU.
The job records are the scheduler's: its completed-job log (jobcomp/filetxt: CPUs, memory, time limit,
partition, account; no slurmdbd, so no sacct) and `scontrol show job -d` taken right after the run (the
GPU request, TresPerJob, and allocation, JOB_GRES, which jobcomp does not record); the kept SLURM logs
(.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log) map job ids to rules.

The cluster tests run when CI=true or UNPOISON_SLURM_TEST=1 and then FAIL if they cannot (not root and no
cluster running, slurm not installable, plugin missing); otherwise they are skipped. UNPOISON_SLURM_TEST=0
skips them anywhere. Root is needed to install slurm-wlm/munge (apt-get) and start the daemons, unless
`scripts/slurm_cluster.sh status` already succeeds; a cluster running before the test is left running, one
it started is stopped (by PID).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from snakemake_cli import snakemake_cmd

from unpoison.slurm_records import job_records

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
STATE = Path(os.environ.get("UNPOISON_SLURM_DIR", "/tmp/unpoison-slurm"))

# Distinct per-rule resources, so that each job record shows which rule's settings reached sbatch. The
# influence rules take a GPU; train_model and unlearn are GPU rules too but keep gpu: 0 (no GPU request).
RESOURCES = {
    "train_model": {"threads": 2, "mem_mb": 1800, "runtime": 17, "gpu": 0},
    "fit_ekfac": {"threads": 1, "mem_mb": 1700, "runtime": 16, "gpu": 1},
    "score_probes": {"threads": 2, "mem_mb": 1600, "runtime": 14, "gpu": 1},
    "unlearn": {"threads": 1, "mem_mb": 1900, "runtime": 13, "gpu": 0},
    "evaluate_models": {"threads": 1, "mem_mb": 1400, "runtime": 12, "gpu": 0},
}
GPU_RULES = {rule for rule, r in RESOURCES.items() if r["gpu"]}
# Rules that read `resources.<rule>` but are not set above fall back to the config's `resources.default`.
CONFIG_DEFAULT = {"threads": 1, "mem_mb": 1500, "runtime": 15, "gpu": 0}
RESOURCE_RULES = {"poison_dataset"}  # resources.poison_dataset applies to attacks that run the clean model only
# Every other rule: one CPU and profiles/slurm's default-resources (mem_mb 4000, runtime 60).
PROFILE_DEFAULTS = {"threads": 1, "mem_mb": 4000, "runtime": 60}
ACCOUNT = "unpoison-test"
# GPU jobs to `gpu`, the others to `batch` (not the cluster's Default partition), by the plugin's partition file.
PARTITIONS_FILE = ROOT / "profiles" / "slurm" / "partitions.example.yaml"
GPU_PARTITION, CPU_PARTITION = "gpu", "batch"
GPU_TYPE = "fake"  # the test cluster's GPU type; score_probes asks for it by name (gpu_model), fit_ekfac for any
RESOURCES_CONFIG = (
    "resources={default: {threads: 1, mem_mb: 1500, runtime: 15, gpu: 0}, "
    + ", ".join(
        f"{rule}: {{threads: {r['threads']}, mem_mb: {r['mem_mb']}, runtime: {r['runtime']}, gpu: {r['gpu']}}}"
        for rule, r in RESOURCES.items()
    )
    + "}"
)
SLURM_FLAGS = [
    "--set-resources",
    f"score_probes:gpu_model={GPU_TYPE}",  # --gpus=fake:1, as on a site with GPU types
    "--slurm-status-command",
    "squeue",  # no slurmdbd: with sacct (the default when installed) the plugin hangs
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",  # job id -> rule, for the job records
]
RUN_TIMEOUT = 1200
SCONTROL_JOBS = "scontrol_jobs.txt"  # in the SLURM run's directory

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
        "mem_mb": "4000",
        "runtime": "60",
        "slurm_partition": "'gpu-a100'",
        "slurm_account": "'123456'",
    }


class Resources(dict):
    """A job's resources as the plugin reads them (job.resources.get(...) and job.resources.name)."""

    __getattr__ = dict.__getitem__


@pytest.mark.parametrize(
    ("gpu_resources", "gpu_flags"),
    [
        ({"gpu": 0}, []),  # no GPU request at all
        ({"gpu": 1}, ["--gpus=1"]),
        ({"gpu": 2, "gpu_model": "a100"}, ["--gpus=a100:2"]),  # --set-resources <rule>:gpu_model=a100
        ({"gpu": 0, "gres": "gpu:1"}, ["--gres=gpu:1"]),  # for a cluster that takes --gres but not --gpus
    ],
)
def test_plugin_turns_threads_and_gpu_into_sbatch_flags(gpu_resources, gpu_flags):
    """What snakemake-executor-plugin-slurm makes of a rule with threads: 4, mem_mb, runtime and GPU resources
    (docs/cluster.md lists these forms)."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=Resources(mem_mb=8000, runtime=600, **gpu_resources), threads=4)
    params = {
        "run_uuid": "u",
        "slurm_logfile": "log",
        "comment_str": "rule",
        "account": "",
        "partition": "",
        "workdir": "/w",
    }
    flags = (get_submit_command(job, params) + set_gres_string(job)).split()
    assert (
        "--cpus-per-task=4" in flags
        and flags[flags.index("--mem") + 1] == "8000"
        and flags[flags.index("-t") + 1] == "600"
    )
    assert [f for f in flags if f.startswith(("--gpus", "--gres"))] == gpu_flags


@pytest.mark.parametrize(
    ("gpu_resources", "partition"),
    [({"gpu": 0}, "batch"), ({"gpu": 1}, "gpu"), ({"gpu": 2}, "gpu"), ({"gpu": 3}, None), ({"gres": "gpu:1"}, "gpu")],
)
def test_partition_file_sends_gpu_jobs_to_the_gpu_partition(gpu_resources, partition):
    """profiles/slurm/partitions.example.yaml through the plugin's own partition choice: GPU jobs to `gpu`
    (up to its max_gpu; beyond it no partition fits and the plugin falls back to the default), others to `batch`."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.partitions import (
        get_best_partition,
        read_partition_file,
    )

    logger = SimpleNamespace(debug=print, info=print, warning=print)
    job = SimpleNamespace(resources=Resources(mem_mb=4000, runtime=60, **gpu_resources), threads=1, name="rule")
    assert get_best_partition(read_partition_file(PARTITIONS_FILE), job, logger) == partition


# ---- the real cluster ----


def cannot_run(message: str):
    """Fail where the test is required (CI / UNPOISON_SLURM_TEST=1), else skip with the reason."""
    if REQUIRED:
        pytest.fail(f"SLURM test required (CI=true or UNPOISON_SLURM_TEST=1) but cannot run: {message}", pytrace=False)
    pytest.skip(message)


def cluster(action: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), action, str(STATE)], capture_output=True, text=True, timeout=timeout, check=False
    )


# One detector and the tables only (no sweep, counterfactual or figures): every GPU rule and the rules around
# them still run, in 12 jobs; each SLURM job costs two Snakemake start-ups (~7 s of CPU each).
GRID = ["detectors=[delta_influence]", "counterfactual=[]"]
TARGET = "results/tables/summary.csv"


def slurm_cmd(workdir: Path, *args: str) -> list[str]:
    return [
        *snakemake_cmd(workdir, configfiles=[TINY]),
        "--config",
        RESOURCES_CONFIG,
        *GRID,
        *args,
        TARGET,
    ]


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
        self.started_here = False  # the test stops only a cluster it started
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
        status = cluster("status")
        if status.returncode == 0:
            return None  # a running, current cluster: used and left running
        if status.stdout.count(" running (pid ") == 3:  # munged, slurmctld, slurmd up, but the node or config is not
            return (
                "the test cluster runs but is not usable as it is (not the test's to stop):\n"
                f"{status.stdout}{status.stderr}"
            )
        if os.geteuid() != 0:
            return (
                f"no test cluster running and not root: run 'sudo {SCRIPT} start' first (installs slurm-wlm "
                "and munge if missing, starts munged, slurmctld, slurmd as root)"
            )
        t0 = time.monotonic()
        self.started_here = True
        proc = cluster("start", timeout=900)
        self.timings["cluster_start_s"] = time.monotonic() - t0
        if proc.returncode != 0:
            cluster("stop")
            return f"{SCRIPT} start failed:\n{proc.stdout}\n{proc.stderr}"
        return None

    def _run_both(self) -> str | None:
        for d in (self.slurm_dir, self.local_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SBATCH_ACCOUNT": ACCOUNT, "SNAKEMAKE_SLURM_PARTITIONS": str(PARTITIONS_FILE)}
        env.pop("SBATCH_PARTITION", None)  # a partition given to every job would win over the partition file
        t0 = time.monotonic()
        with (
            open(self.local_dir / "snakemake.out", "w") as local_out,
            open(self.slurm_dir / "snakemake.out", "w") as slurm_out,
        ):
            local = subprocess.Popen(
                slurm_cmd(self.local_dir, "--cores", "2"), stdout=local_out, stderr=subprocess.STDOUT
            )
            slurm = subprocess.Popen(
                slurm_cmd(self.slurm_dir, "--profile", str(ROOT / "profiles/slurm"), *SLURM_FLAGS),
                stdout=slurm_out,
                stderr=subprocess.STDOUT,
                env=env,
            )
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
            return (
                tail(self.slurm_dir / "snakemake.out") + "\n--- slurmctld.log ---\n" + tail(STATE / "log/slurmctld.log")
            )
        # the scheduler's record of every job it still holds (finished ones for MinJobAge): GPU request, allocation
        jobs = subprocess.run(
            ["scontrol", "show", "job", "--details", "--oneliner"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "SLURM_CONF": str(STATE / "slurm.conf")},
        )
        if jobs.returncode != 0:
            return f"scontrol show job failed: {jobs.stderr}"
        (self.slurm_dir / SCONTROL_JOBS).write_text(jobs.stdout)
        return None

    def stop_cluster(self) -> None:
        if self.started_here:
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


def completed_jobs(workdir: Path) -> dict[str, list[dict[str, str]]]:
    """Completed-job log (jobcomp.txt) records of the run in `workdir`, by rule."""
    return job_records(workdir, (STATE / "jobcomp.txt").read_text().splitlines())


def scheduler_jobs(workdir: Path) -> dict[str, list[dict[str, str]]]:
    """`scontrol show job --details` records of the run in `workdir` (taken right after it), by rule."""
    return job_records(workdir, (workdir / SCONTROL_JOBS).read_text().splitlines())


@needs_cluster
def test_slurm_run_gives_the_local_tables(runs):
    slurm_dir, local_dir = runs
    keys = {
        "detection": ["dataset", "attack", "seed", "detector"],
        "unlearning": ["dataset", "attack", "seed", "detector", "unlearner"],
    }
    for table, key in keys.items():
        on_slurm = pd.read_csv(slurm_dir / f"results/tables/{table}.csv").sort_values(key, ignore_index=True)
        local = pd.read_csv(local_dir / f"results/tables/{table}.csv").sort_values(key, ignore_index=True)
        assert len(local) > 0
        # wall and CPU times (and their ratios to EU's) vary; everything else is deterministic by seed on CPU
        timing = ["seconds", "cpu_seconds", "cost_vs_eu", "cpu_cost_vs_eu"]
        pd.testing.assert_frame_equal(
            on_slurm.drop(columns=timing, errors="ignore"), local.drop(columns=timing, errors="ignore"), obj=table
        )


EXPECTED_RULES = {
    "prepare_dataset",
    "poison_dataset",
    "train_model",
    "select_queries",
    "evaluate_models",
    "fit_ekfac",
    "score_probes",
    "detect",
    "evaluate_detection",
    "unlearn",
    "make_tables",
}


@needs_cluster
def test_jobs_were_submitted_with_each_rules_threads_memory_and_runtime(runs):
    slurm_dir, _ = runs
    records = completed_jobs(slurm_dir)
    assert set(records) == EXPECTED_RULES, sorted(records)
    for rule, recs in records.items():
        want = RESOURCES.get(rule, CONFIG_DEFAULT if rule in RESOURCE_RULES else PROFILE_DEFAULTS)
        for rec in recs:
            where = (rule, rec["JobId"])
            assert rec["JobState"] == "COMPLETED", where
            tres = dict(kv.split("=", 1) for kv in rec["Tres"].split(","))
            assert rec["ProcCnt"] == str(want["threads"]) and tres["cpu"] == str(want["threads"]), (where, rec)
            assert tres["mem"] == f"{want['mem_mb']}M", (where, rec)
            assert rec["TimeLimit"] == str(want["runtime"]), (where, rec)  # minutes
            assert rec["Account"] == ACCOUNT, (where, rec)
            assert rec["Partition"] == (GPU_PARTITION if rule in GPU_RULES else CPU_PARTITION), (where, rec)


@needs_cluster
def test_exactly_the_rules_given_a_gpu_asked_for_one_and_got_it(runs):
    """The scheduler's job records: the request (TresPerJob, from --gpus; TresPerNode would be --gres) and the
    allocation (JOB_GRES) of each job; the CPU jobs carry neither."""
    slurm_dir, _ = runs
    records = scheduler_jobs(slurm_dir)
    # every job of the run is there (MinJobAge keeps finished jobs for an hour), retries included
    assert set(records) == EXPECTED_RULES, sorted(records)
    assert sorted(r["JobId"] for recs in records.values() for r in recs) == sorted(
        r["JobId"] for recs in completed_jobs(slurm_dir).values() for r in recs
    )
    assert GPU_RULES == {"fit_ekfac", "score_probes"}
    requested = {"fit_ekfac": "gres:gpu:1", "score_probes": f"gres:gpu:{GPU_TYPE}:1"}  # any GPU / a GPU of a type
    for rule, recs in records.items():
        for rec in recs:
            where = (rule, rec["JobId"], rec.get("TresPerJob"), rec.get("TresPerNode"), rec.get("JOB_GRES"))
            assert rec["JobState"] == "COMPLETED", where
            assert "TresPerNode" not in rec, where  # --gres: nothing here asks for it
            if rule in GPU_RULES:
                assert rec.get("TresPerJob") == requested[rule], where
                assert rec["JOB_GRES"] == f"gpu:{GPU_TYPE}:1", where  # allocated one of the node's GPUs
                assert rec["Partition"] == GPU_PARTITION, where
            else:
                assert "TresPerJob" not in rec and rec["JOB_GRES"] == "(null)", where
                assert rec["Partition"] == CPU_PARTITION, where
