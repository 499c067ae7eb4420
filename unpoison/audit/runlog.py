"""The audit's run log (``audit.log`` in the output directory) and its one-line stage failures.

Every progress line goes to the console and, time-stamped, to ``audit.log`` (lines logged before the output
directory exists are written when it is created). A failure inside a stage becomes an
:class:`AuditStageError` whose message is one line: the stage, the module when known, the error and what to
try; the full traceback goes to ``audit.log``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from unpoison.audit.inputs import AuditError, first_line
from unpoison.influence import InfluenceStageError

LOG_NAME = "audit.log"

# functions (kronfluence's, the cost estimate's) → the audit's stage names, to tell which part of the fit failed
KRONFLUENCE_STAGES = {
    "resolve_caps": "factors: cost estimate",
    "fit_covariance_matrices": "factors: covariance",
    "perform_eigendecomposition": "factors: eigendecomposition",
    "fit_lambda_matrices": "factors: lambda",
    "compute_pairwise_scores": "scores",
}


class RunLog:
    """Callable logger: ``log("line")`` echoes the line and records it with a time stamp."""

    def __init__(self, echo: Callable[[str], None] | None = print) -> None:
        self.echo = echo
        self.path: Path | None = None
        self.pending: list[str] = []

    def __call__(self, message: str, echo: bool = True) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        if self.path is None:
            self.pending.append(line)
        else:
            with open(self.path, "a") as fh:
                fh.write(line)
        if echo and self.echo is not None:
            self.echo(message)

    def open(self, out: str | Path) -> Path:
        """Start ``out/audit.log`` (replacing an older one) with the lines logged so far."""
        self.path = Path(out) / LOG_NAME
        self.path.write_text("".join(self.pending))
        self.pending = []
        return self.path

    def record_traceback(self, exc: BaseException) -> None:
        """Append the full traceback of ``exc`` (when the log file exists)."""
        if self.path is not None:
            with open(self.path, "a") as fh:
                fh.write("".join(traceback.format_exception(exc)))


class AuditStageError(RuntimeError):
    """A failure inside a stage of the audit (not bad input): the stage, the module when known, the error and
    what to try, in one line; the original exception is the ``__cause__``.

    Attributes:
        stage: e.g. ``factors: eigendecomposition``; module: the tracked module's name or None; hint: what to
            try; log_path: the file holding the full traceback (None when no output directory exists yet).
    """

    def __init__(self, stage: str, module: str | None, cause: BaseException, hint: str, log_path: Path | None) -> None:
        self.stage, self.module, self.hint, self.log_path = stage, module, hint, log_path
        where = f"stage {stage!r}" + (f", module {module!r}" if module else "")
        tail = f" Full traceback: {log_path}" if log_path else ""
        super().__init__(
            f"{where} failed with {type(cause).__name__}: {first_line(cause).rstrip('.')}. Try: {hint}.{tail}"
        )


def locate(exc: BaseException) -> tuple[str | None, str | None]:
    """The kronfluence stage and the module name found in the traceback frames of ``exc`` (and its causes)."""
    from kronfluence.module.tracked_module import TrackedModule

    stage = module = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            stage = KRONFLUENCE_STAGES.get(frame.f_code.co_name, stage)
            name = frame.f_locals.get("module_name")
            owner = frame.f_locals.get("self")
            module = name if isinstance(name, str) else owner.name if isinstance(owner, TrackedModule) else module
            tb = tb.tb_next
        module = getattr(current, "module_name", None) or module  # an error that names its module itself
        current = current.__cause__ or current.__context__
    return stage, module


def hint(stage: str, exc: BaseException) -> str:
    """What to try after ``exc`` in ``stage``."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate" in text:
        if stage.startswith("factors"):
            return "a smaller --factor-batch-size (e.g. 32), or --covariance-max-examples / --lambda-max-examples"
        return "a smaller --score-batch-size (e.g. 32) and --query-batch-size (e.g. 8)"
    if "linalg" in type(exc).__module__ or "linalgerror" in type(exc).__name__.lower() or "eigh" in text:
        return (
            "this module's covariance could not be decomposed (e.g. a layer whose inputs are constant or mostly "
            "padding, like 3×3 convs on 1×1 feature maps); update unpoison, or report it with audit.log"
        )
    if isinstance(exc, FloatingPointError):
        return "check the weights for NaN/inf and the --mean/--std; influence scores must be finite"
    return (
        "check that the model's forward runs in eval mode on batches of training images and that its loss "
        "backpropagates to its Linear/Conv2d layers; rerun with --device cpu to rule out the GPU"
    )


@contextmanager
def stage(name: str, log: RunLog) -> Iterator[None]:
    """Run a stage: bad input (:class:`AuditError`) and interrupts pass through; any other failure becomes
    an :class:`AuditStageError` and its traceback goes to the run log."""
    try:
        yield
    except (AuditError, AuditStageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        found, module = locate(exc)
        where = found if found and (name == "factors" or found == name) else name
        cause, advice = exc, None
        if isinstance(exc, InfluenceStageError):  # the influence stages name themselves, the module and a hint
            where = exc.stage if exc.stage == "scores" else f"factors: {exc.stage}"
            module, cause, advice = exc.module or module, exc.__cause__ or exc, exc.hint
        log.record_traceback(exc)
        error = AuditStageError(where, module, cause, advice or hint(where, cause), log.path)
        log(f"error: {error}", echo=False)
        raise error from exc
