"""Readable progress for long influence stages: a start line, periodic lines with an ETA, the stage's time.

Lines go to a ``log`` callable (``print`` by default, the audit's logger, or a rule log through stdout), never
tqdm carriage returns, so that a log file reads as a plain record of the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from unpoison.influence.errors import InfluenceStageError

Log = Callable[[str], None]


def print_log(line: str) -> None:
    """The default ``log``: print the line and flush (a rule's stdout goes to its log file)."""
    print(line, flush=True)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts work done in a stage and logs a line every ``step`` of the total or every ``every`` seconds.

    Args:
        stage: the stage's name, the first word of each line.
        total: the total amount of work (examples, or any additive weight such as n³ per matrix).
        log: where lines go.
        unit: what ``total`` counts, shown as ``done/total unit``; empty = show only the percentage.
        step: fraction of the total between two lines (0.1 = every 10 %).
        every: at most this many seconds between two lines.
    """

    def __init__(
        self, stage: str, total: float, log: Log, unit: str = "examples", step: float = 0.1, every: float = 60.0
    ):
        self.stage, self.total, self.log, self.unit = stage, max(float(total), 1e-12), log, unit
        self.step, self.every = step, every
        self.done = 0.0
        self.start = self.last_time = time.perf_counter()
        self.next_mark = step

    def advance(self, amount: float, note: str = "") -> None:
        """Record ``amount`` more work done; log a line when a mark or the time interval is passed."""
        self.done += amount
        now = time.perf_counter()
        fraction = self.done / self.total
        if fraction >= self.next_mark or now - self.last_time >= self.every:
            while self.next_mark <= fraction:
                self.next_mark += self.step
            self.last_time = now
            self.log(self.line(now, note))

    def line(self, now: float, note: str = "") -> str:
        elapsed = now - self.start
        fraction = min(self.done / self.total, 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        count = f"{self.done:,.0f}/{self.total:,.0f} {self.unit} " if self.unit else ""
        tail = f", {note}" if note else ""
        return f"{self.stage}: {count}({int(100 * fraction + 1e-9)} %), {format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}{tail}"


@contextlib.contextmanager
def stage(name: str, log: Log, detail: str = "", seconds: dict[str, float] | None = None) -> Iterator[None]:
    """Log the start and the time of stage ``name``; turn any failure inside it into :class:`InfluenceStageError`.

    Args:
        name: covariance, eigendecomposition, lambda or scores.
        log: where the lines go.
        detail: appended to the start line (e.g. how many examples).
        seconds: if given, ``seconds[name]`` receives the stage's wall time.
    """
    log(f"{name}: started{' (' + detail + ')' if detail else ''}")
    start = time.perf_counter()
    try:
        yield
    except InfluenceStageError:
        raise
    except Exception as err:  # KeyboardInterrupt and SIGTERM (unpoison.runtime.Terminated) pass through
        raise InfluenceStageError(name, err) from err
    took = time.perf_counter() - start
    if seconds is not None:
        seconds[name] = took
    log(f"{name}: done in {format_seconds(took)}")
