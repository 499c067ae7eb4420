"""Step of rules/unlearn.smk: remove the flagged points' influence from the trained model (never reads truth)."""

from __future__ import annotations

import time
from typing import Any, TextIO

import torch

from unpoison.artifacts import load_poisoned
from unpoison.execution import Execution
from unpoison.io import load_npy, save_meta
from unpoison.models import load_checkpoint, save_checkpoint
from unpoison.status import read_status
from unpoison.training import TrainRecipe
from unpoison.unlearners import UnlearnInputs, get_unlearner


def unlearn(
    *,
    model: str,
    poisoned: str,
    flagged: str,
    method: str,
    settings: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    execution: Execution,
    unlearned: str,
    log: TextIO | None = None,
) -> None:
    """Unlearn the flagged points from ``model`` with unlearner ``method`` and save the result at ``unlearned``.

    The meta file records the unlearner's wall-clock ``seconds`` and the process's ``cpu_seconds`` (both around
    :meth:`Unlearner.unlearn` only: loading and saving are excluded), the forget-set size, the unlearner's report
    (``budget_epochs``: its compute in training epochs of the same model, and what the method adds) and the
    status of the flags: when they do not apply (the attack failed, or a query-based detector on an attack without
    a query), the model is written unchanged with that status.
    """
    net, spec = load_checkpoint(model)
    status = read_status(flagged)
    if not status.ok:
        save_checkpoint(unlearned, net, spec)
        save_meta(
            unlearned, unlearner=method, params=settings, seconds=0.0, n_forget=0, seed=seed, status=status.to_dict()
        )
        return
    x, y = load_poisoned(poisoned)
    forget = load_npy(flagged)
    unlearner = get_unlearner(method, settings)
    dev = execution.torch_device()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = unlearner.unlearn(UnlearnInputs(net, spec, x, y, forget, TrainRecipe.from_dict(recipe), seed, dev, log))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    for name, value in result.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise FloatingPointError(f"{method} produced NaN/inf weights in {name}: the model is not saved")
    save_checkpoint(unlearned, result, spec)
    save_meta(
        unlearned,
        unlearner=method,
        params=settings,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        n_forget=len(forget),
        seed=seed,
        device=str(dev),
        report=unlearner.report,
        status=status.to_dict(),
    )
