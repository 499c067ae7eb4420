"""The one exception type an influence stage raises when it fails, naming the stage, the module and what to try."""

from __future__ import annotations

STAGES = ("covariance", "eigendecomposition", "lambda", "scores")

HINTS = {
    "covariance": "check that the model's forward pass runs on these images and gives finite outputs (a checkpoint "
    "with NaN weights fails here); if memory ran out, lower influence.factors.batch_size (audit: "
    "--factor-batch-size) or cap covariance_max_examples",
    "eigendecomposition": "the layer's covariance holds NaN/inf values or cannot be decomposed even with jitter: "
    "check the layer's activations for NaN/inf (a checkpoint with NaN weights), or fit on more training images",
    "lambda": "check that the model's forward pass runs on these images and gives finite outputs; if memory ran "
    "out, lower influence.factors.batch_size (audit: --factor-batch-size); if it is too slow, cap "
    "lambda_max_examples (or set it to auto)",
    "scores": "if memory ran out, lower influence.scores.train_batch_size / query_batch_size (audit: "
    "--score-batch-size / --query-batch-size) or set query_gradient_low_rank; check that the factors were "
    "fitted on this very model",
}


class InfluenceStageError(RuntimeError):
    """A failure inside an EK-FAC stage (covariance, eigendecomposition, lambda or scores).

    Attributes:
        stage: one of :data:`STAGES`; module: the tracked module's name when known, else None;
        hint: what to try.
    """

    def __init__(self, stage: str, cause: BaseException | str, module: str | None = None, hint: str | None = None):
        self.stage = stage
        self.module = module
        self.hint = hint or HINTS.get(stage, "")
        where = f" in module {module!r}" if module else ""
        what = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"EK-FAC {stage} stage failed{where}: {what}. Try: {self.hint}")
