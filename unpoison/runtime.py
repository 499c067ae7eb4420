"""Process set-up shared by stage entry points: log redirection and CPU thread count."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator, TextIO

import torch


@contextlib.contextmanager
def logged(log_path: str | None, threads: int | None = None) -> Iterator[TextIO]:
    """Send stdout/stderr to ``log_path`` (Snakemake's ``log:`` does not redirect by itself) and cap
    torch's intra-op threads at the job's ``threads``."""
    if threads:
        torch.set_num_threads(int(threads))
    if not log_path:
        yield sys.stderr
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        yield fh
