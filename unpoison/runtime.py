"""Process set-up shared by stage entry points: log redirection, failure logging, SIGTERM, thread count.

Every workflow script is ``run_step(snakemake, <stage function of the rule's name>)``: :func:`run_step` calls the
stage with the rule's named inputs, outputs and params as keyword arguments, inside :func:`logged`, which

  * sends stdout/stderr to the rule's log file (Snakemake's ``log:`` does not redirect by itself);
  * on an exception writes the traceback to that log and re-raises, so the job fails and Snakemake's
    console shows the traceback too (on a cluster the log is often the only trace of a failure);
  * turns SIGTERM (what Snakemake, SLURM's ``scancel`` and time limits send to a job) into a
    :class:`Terminated` exception, so ``finally`` blocks and ``with`` exits run and temporary
    directories (``RUN/.ekfac.*``, ``$TMPDIR/unpoison-scores.*``) and half-written files are removed;
  * caps torch's intra-op threads at the job's ``threads`` (without importing torch: a job that never uses it,
    e.g. a table or a figure, starts ~2 s faster);
  * writes the job's resource record (:func:`resource_record_path`): wall and CPU seconds since the process
    started, peak RSS, block I/O. Snakemake's own ``benchmark:`` sampler reads ``/proc/<pid>/smaps`` of every job
    process twice a second from the main process, ~25 ms of system CPU per sample for a process holding torch:
    ~20 CPU s of the default run's ~600 (BENCHMARKS.md, "Default run"); the kernel's own counters cost nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
RECORD_COLUMNS = ("s", "h:m:s", "max_rss", "io_in", "io_out", "mean_load", "cpu_time")


class Terminated(BaseException):
    """The job received SIGTERM. A BaseException (like KeyboardInterrupt) so ``except Exception`` lets it pass."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the clean-up of the first
    raise Terminated(f"received {signal.Signals(signum).name}: cleaning up and stopping")


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (outside it: a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_failure(exc: BaseException) -> bool:
    return not (isinstance(exc, SystemExit) and exc.code in (0, None))


@contextlib.contextmanager
def logged(log_path: str | None, threads: int | None = None) -> Iterator[TextIO]:
    """Run a job's body with its output, and its traceback if it fails, in ``log_path``.

    Args:
        log_path: the rule's log file (truncated at the start); None keeps output on stderr.
        threads: the job's thread count for torch's intra-op pool (None: leave as is).

    Yields:
        The stream output goes to (the log file, or stderr without a log).

    Raises:
        Whatever the body raises, after its traceback is written to the log; SIGTERM during the body
        raises :class:`Terminated`.
    """
    if threads:
        cap_threads(int(threads))
    with terminate_as_exception():
        if not log_path:
            yield sys.stderr
            return
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                yield fh
            except BaseException as exc:
                if _is_failure(exc):
                    fh.write("\nJOB FAILED\n")
                    traceback.print_exc(file=fh)
                    fh.flush()
                raise


def cap_threads(threads: int) -> None:
    """Cap torch's intra-op thread pool at ``threads``, whether or not torch is imported yet.

    torch reads ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` when it first sizes its pool, so setting them covers a
    later import; an already imported torch is capped directly.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def resource_record_path(log_path: str | os.PathLike[str]) -> Path:
    """Where a job's resource record goes: its log's path with the last ``logs`` folder read as ``benchmarks``
    and ``.tsv`` for the suffix (``RUN/logs/fit_ekfac.log`` → ``RUN/benchmarks/fit_ekfac.tsv``); beside the log as
    ``<name>.resources.tsv`` when no folder of its path is named ``logs`` (e.g. a rule of your own)."""
    parts = list(Path(log_path).with_suffix(".tsv").parts)
    if "logs" not in parts[:-1]:
        return Path(log_path).with_suffix(".resources.tsv")
    at = len(parts) - 2 - parts[-2::-1].index("logs")
    parts[at] = "benchmarks"
    return Path(*parts)


def process_seconds() -> float | None:
    """Wall seconds since this process started (interpreter start-up and imports included); None without
    Linux's ``/proc``."""
    try:
        with open("/proc/self/stat") as fh:  # field 22: start time in clock ticks since boot
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of ``/proc/self/status`` where there is one.

    Not ``getrusage``'s ``ru_maxrss`` on Linux: it keeps the high-water mark of the image before ``exec``, so
    a job forked from Snakemake's main process (which holds torch) would report that process's ~700 MB.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))


def maxrss_mb(usage: resource.struct_rusage) -> float:
    """``ru_maxrss`` of a ``getrusage`` result in MB (it counts bytes on macOS, KiB elsewhere)."""
    return usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def write_resource_record(path: str | os.PathLike[str], wall: float) -> None:
    """One row in the columns Snakemake's benchmark files use (MB and seconds): wall ``s``, peak RSS of this
    process (:func:`peak_rss_mb`) or its largest child, block I/O, CPU seconds of the process and its children, mean load in %."""
    from unpoison.io import atomic_path

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(r.ru_utime + r.ru_stime for r in (own, kids))
    mb = 512 / 2**20  # getrusage counts 512-byte blocks
    row = (
        f"{wall:.4f}",
        time.strftime("%H:%M:%S", time.gmtime(wall)),
        f"{max(peak_rss_mb(), maxrss_mb(kids)):.2f}",
        f"{(own.ru_inblock + kids.ru_inblock) * mb:.2f}",
        f"{(own.ru_oublock + kids.ru_oublock) * mb:.2f}",
        f"{100 * cpu / wall if wall > 0 else 0.0:.2f}",
        f"{cpu:.2f}",
    )
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(RECORD_COLUMNS) + "\n" + "\t".join(row) + "\n")


def end_job_process() -> None:
    """End a finished job's process now (status 0), without the interpreter's teardown.

    With torch imported, that teardown (mostly the final garbage collections over torch's objects) costs ~0.6 CPU
    seconds per job, ~8 % of the default run's CPU (BENCHMARKS.md, "Default run"). Everything a normal exit
    does for a job still happens: the atexit handlers run (logging's flush, multiprocessing's worker clean-up,
    temporary directories' finalisers), then the standard streams are flushed; the outputs were closed by the
    step. Without CPython's ``atexit._run_exitfuncs`` it returns and the process exits normally.
    """
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:
        return
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def step_arguments(job: Any) -> dict[str, Any]:
    """The named inputs, outputs and params of a Snakemake job object as one keyword mapping.

    Raises:
        TypeError: a name occurs twice (an input and an output named alike): rename one in the rule.
    """
    kwargs: dict[str, Any] = {}
    for part in (job.input, job.output, job.params):
        for name, value in part.items():
            if name in kwargs:
                raise TypeError(
                    f"rule {getattr(job, 'rule', '?')}: {name!r} names two of its inputs/outputs/params; rename one"
                )
            kwargs[name] = value
    return kwargs


def run_step(job: Any, step: Callable[..., Any]) -> None:
    """Run the stage function ``step`` for a Snakemake job (the ``snakemake`` object of a rule's script).

    The rule's named inputs, outputs and params become ``step``'s keyword arguments; ``log`` (the open log
    stream) is added when ``step`` takes it. Output, failures and SIGTERM are handled by :func:`logged`, and
    torch's threads are capped at the job's ``threads``. A job that succeeds writes its resource record beside
    its log (:func:`resource_record_path`) and, when ``job`` is the ``snakemake`` object of the running script
    (the process is the job's own), ends the process (:func:`end_job_process`).
    """
    import inspect

    from unpoison.registry import load_env_plugins

    start = time.perf_counter()
    load_env_plugins()
    kwargs = step_arguments(job)
    log_path = job.log[0] if job.log else None
    gc.freeze()  # the imported modules' objects: later collections skip them (~0.2 s of a 30-epoch digits training)
    with logged(log_path, job.threads) as log:
        if "log" in inspect.signature(step).parameters:
            kwargs["log"] = log
        step(**kwargs)
    if log_path:
        wall = process_seconds()
        record = resource_record_path(log_path)
        try:
            write_resource_record(record, time.perf_counter() - start if wall is None else wall)
        except OSError as err:  # the step's outputs are done: a record that cannot be written fails nothing
            print(f"warning: resource record {record} not written ({err})", file=sys.stderr)
    if job is vars(sys.modules["__main__"]).get("snakemake"):  # this process is the job: nothing runs after it
        end_job_process()
