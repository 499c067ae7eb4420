"""Job runtime: failure tracebacks in the rule log, SIGTERM as an exception, no stray temporary files."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, ScoreSettings, fit_factors, score_queries
from unpoison.io import atomic_path
from unpoison.models import build_model
from unpoison.runtime import Terminated, logged

ROOT = Path(__file__).resolve().parents[1]
DEV = torch.device("cpu")


def test_failure_writes_traceback_to_the_log_and_reraises(tmp_path):
    log = tmp_path / "logs/job.log"
    with pytest.raises(ValueError, match="boom"):
        with logged(str(log)):
            print("before the failure")
            raise ValueError("boom")
    text = log.read_text()
    assert "before the failure" in text
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text


def test_success_and_clean_exit_log_no_failure(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit):
        with logged(str(log)):
            print("done")
            sys.exit(0)
    assert log.read_text() == "done\n"


def test_sigterm_handler_is_restored_after_the_job(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with logged(str(tmp_path / "job.log")):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def fail_after(model: nn.Module, calls: int, sigterm: bool = False) -> nn.Module:
    """``model`` (module names unchanged) whose forward raises, or sends the process SIGTERM, after ``calls`` calls."""
    left = [calls]

    def hook(module: nn.Module, args) -> None:
        left[0] -= 1
        if left[0] < 0:
            if sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("forward failed on purpose")

    model.register_forward_pre_hook(hook)
    return model


def _tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=g)
    torch.manual_seed(0)
    return build_model("digits_cnn", 10, 1, {"width": 4}).eval(), TensorDataset01(x, torch.arange(64) % 10)


def test_fit_that_fails_midway_leaves_no_temporary_directory(tmp_path):
    model, train = _tiny()
    out = tmp_path / "run/ekfac"
    # 64 points in batches of 16: 4 covariance forwards, then the lambda stage fails on its second batch
    with pytest.raises(RuntimeError, match="on purpose"):
        fit_factors(fail_after(model, 5), train, out, FactorSettings(batch_size=16), DEV)
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_scoring_that_fails_midway_leaves_no_temporary_directory(tmp_path, monkeypatch):
    model, train = _tiny()
    factors = tmp_path / "ekfac"
    fit_factors(model, train, factors, FactorSettings(batch_size=32), DEV)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with pytest.raises(RuntimeError, match="on purpose"):
        score_queries(fail_after(model, 3), factors, train, train, ScoreSettings(train_batch_size=16), DEV)
    assert list(tmp.iterdir()) == []


def test_atomic_write_that_fails_leaves_neither_artifact_nor_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "a.pt") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


SIGTERM_JOB = """
import sys, tempfile, torch
from test_runtime import DEV, _tiny, fail_after
from unpoison.influence import FactorSettings, ScoreSettings, fit_factors, score_queries
from unpoison.runtime import logged

work, stage = sys.argv[1], sys.argv[2]
tempfile.tempdir = work + "/tmp"
model, train = _tiny()
if stage == "score":
    fit_factors(model, train, work + "/run/ekfac", FactorSettings(batch_size=32), DEV)
with logged(work + "/job.log"):
    if stage == "fit":
        fit_factors(fail_after(model, 5, sigterm=True), train, work + "/run/ekfac", FactorSettings(batch_size=16), DEV)
    else:
        score_queries(fail_after(model, 3, sigterm=True), work + "/run/ekfac", train, train, ScoreSettings(train_batch_size=16), DEV)
"""


@pytest.mark.parametrize("stage", ["fit", "score"])
def test_sigterm_during_a_job_cleans_up_and_logs(tmp_path, stage):
    """A job killed with SIGTERM (Snakemake, scancel, a time limit) removes its temporary directories."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "run").mkdir()
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SIGTERM_JOB))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), stage], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0
    assert "Terminated: received SIGTERM" in proc.stderr  # the console shows it
    log = (tmp_path / "job.log").read_text()
    assert "Traceback" in log and "Terminated: received SIGTERM" in log
    assert list((tmp_path / "tmp").iterdir()) == []
    assert [p.name for p in (tmp_path / "run").iterdir()] == (["ekfac"] if stage == "score" else [])


def test_terminated_is_not_an_ordinary_exception():
    assert not issubclass(Terminated, Exception)


@pytest.mark.parametrize(
    "module",
    [
        "unpoison.stages.detect",
        "unpoison.stages.unlearn",
        "unpoison.stages.evaluate",
        "unpoison.stages.train",
        "unpoison.stages.influence",
    ],
)
def test_small_job_modules_do_not_import_torchvision_or_sklearn(module):
    """detect/unlearn/evaluate jobs are most of a grid's jobs, and select_queries/select_controls/fit_ekfac need no
    image transform; torchvision (which pulls in torch._dynamo) and scikit-learn cost ≈1–2 s of start-up each, so
    they are imported only where used (scoring imports the probes' transforms itself)."""
    code = f"import sys, {module}; print(sorted(m for m in ('torchvision', 'sklearn') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["unpoison.stages.report", "unpoison.stages.paper"])
def test_table_and_figure_jobs_do_not_import_torch(module):
    """A job's runtime no longer imports torch itself: the report steps (tables, figures) start ~2 s faster."""
    assert _python(f"import sys, unpoison.runtime, {module}; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_thread_cap_holds_whether_torch_is_imported_before_or_after(when):
    """A one-thread job gets one thread where torch would take every core (2 on CI's machine); torch does not
    go above the core count, so the cap can only be tested downwards."""
    code = f"""
        from unpoison.runtime import logged
        {"import torch" if when == "before" else ""}
        with logged(None, threads=1):
            import torch
            print(torch.get_num_threads())
        """
    assert _python(code) == "1"


def test_resource_record_path_reads_the_last_logs_folder_as_benchmarks():
    from unpoison.runtime import resource_record_path

    assert resource_record_path("results/d/a/s0/logs/fit_ekfac.log") == Path("results/d/a/s0/benchmarks/fit_ekfac.tsv")
    assert resource_record_path("results/logs/figures/x.log") == Path("results/benchmarks/figures/x.tsv")
    assert resource_record_path("logs/run/logs/unlearn/d/eu.log") == Path("logs/run/benchmarks/unlearn/d/eu.tsv")
    assert resource_record_path("results/job.log") == Path("results/job.resources.tsv")  # a rule of the user's
    assert resource_record_path("out/logs.log") == Path("out/logs.resources.tsv")


def test_the_resource_record_counts_the_process_from_its_start(tmp_path):
    """Wall seconds from the process's start (imports included): more than the 0.3 s it waited, at most what the
    parent saw; peak RSS of a process that touched 200 MB is at least that."""
    import time

    code = f"""
        import numpy as np, time
        from unpoison.runtime import process_seconds, write_resource_record
        a = np.ones(200 * 2**20, dtype=np.uint8)
        time.sleep(0.3)
        write_resource_record({str(tmp_path / "r.tsv")!r}, process_seconds())
        """
    start = time.perf_counter()
    _python(code)
    outside = time.perf_counter() - start
    header, row = (tmp_path / "r.tsv").read_text().splitlines()
    rec = dict(zip(header.split("\t"), row.split("\t")))
    assert 0.3 <= float(rec["s"]) <= outside + 0.02  # /proc counts in 10 ms ticks
    assert float(rec["max_rss"]) >= 200 and float(rec["cpu_time"]) > 0
    assert rec["h:m:s"] == time.strftime("%H:%M:%S", time.gmtime(float(rec["s"])))


def test_the_peak_memory_is_the_jobs_not_its_parents(tmp_path):
    """A job started by a process holding 600 MB (Snakemake's main process holds torch) reports its own peak:
    ``getrusage`` would report the parent's, kept across ``exec``."""
    record = tmp_path / "r.tsv"
    child = f"from unpoison.runtime import write_resource_record; write_resource_record({str(record)!r}, 1.0)"
    parent = f"""
        import numpy as np, os, subprocess, sys
        held = np.ones(600 * 2**20, dtype=np.uint8)
        subprocess.run([sys.executable, "-c", {child!r}], check=True, env=os.environ)
        """
    _python(parent)
    header, row = record.read_text().splitlines()
    assert float(dict(zip(header.split("\t"), row.split("\t")))["max_rss"]) < 300


FAST_EXIT_JOB = """
import atexit, sys
from types import SimpleNamespace
from unpoison.runtime import run_step

work = sys.argv[1]


class Named(dict):
    pass


def step(*, out, log):
    atexit.register(lambda: open(work + "/atexit_ran", "w").close())
    print("step ran", file=log)
    open(out, "w").write("done")


job = SimpleNamespace(input=Named(), output=Named(out=work + "/out.txt"), params=Named(),
                      log=[work + "/logs/step.log"], threads=1, rule="step")
if sys.argv[2] == "job":
    snakemake = job  # the object Snakemake gives a rule's script: this process is the job
run_step(job, step)
open(work + "/after_run_step", "w").close()
"""


@pytest.mark.parametrize("as_job", [True, False])
def test_a_finished_job_ends_its_process_after_the_exit_handlers(tmp_path, as_job):
    """In the job's own process, nothing after run_step runs (the interpreter's teardown is skipped), yet atexit
    handlers, the log and the output are all there and the status is 0; called from other code, it returns."""
    script = tmp_path / "job.py"
    script.write_text(FAST_EXIT_JOB)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "job" if as_job else "library"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.txt").read_text() == "done" and (tmp_path / "atexit_ran").exists()
    assert "step ran" in (tmp_path / "logs/step.log").read_text()
    assert (tmp_path / "benchmarks/step.tsv").exists()
    assert (tmp_path / "after_run_step").exists() is not as_job
