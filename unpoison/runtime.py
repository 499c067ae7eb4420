"""Process set-up shared by stage entry points: log redirection, failure logging, SIGTERM, thread count.

Every workflow script is ``run_step(snakemake, <stage function of the rule's name>)``: :func:`run_step` calls the
stage with the rule's named inputs, outputs and params as keyword arguments, inside :func:`logged`, which

  * sends stdout/stderr to the rule's log file (Snakemake's ``log:`` does not redirect by itself);
  * on an exception writes the traceback to that log and re-raises, so the job fails and Snakemake's
    console shows the traceback too (on a cluster the log is often the only trace of a failure);
  * turns SIGTERM (what Snakemake, SLURM's ``scancel`` and time limits send to a job) into a
    :class:`Terminated` exception, so ``finally`` blocks and ``with`` exits run and temporary
    directories (``RUN/.ekfac.*``, ``$TMPDIR/unpoison-scores.*``) and half-written files are removed;
  * caps torch's intra-op threads at the job's ``threads``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import torch


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
        torch.set_num_threads(int(threads))
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
    torch's threads are capped at the job's ``threads``.
    """
    import inspect

    from unpoison.registry import load_env_plugins

    load_env_plugins()
    kwargs = step_arguments(job)
    with logged(job.log[0] if job.log else None, job.threads) as log:
        if "log" in inspect.signature(step).parameters:
            kwargs["log"] = log
        step(**kwargs)
