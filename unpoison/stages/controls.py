"""Stage: choose the control queries (clean test images the model gets right; never reads ground truth)."""

from __future__ import annotations

from unpoison.controls import select_controls
from unpoison.device import resolve_device
from unpoison.io import load_torch, save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_clean


def controls(
    clean: str, model: str, count: int, seed: int, device: str, out: str, batch_size: int = 512, queries: str | None = None
) -> None:
    """Pick ``count`` correctly classified test images by ``seed`` (its ``controls`` stream) and save them: of
    the first query's predicted class when ``queries`` holds one, else of any class."""
    net, _ = load_checkpoint(model)
    q = load_torch(queries) if queries else {}
    label = int(q["labels"][0]) if len(q.get("labels", [])) else None
    chosen = select_controls(net, load_clean(clean), count, seed, resolve_device(device), batch_size, label)
    save_torch(chosen, out)
    save_meta(out, count=count, seed=seed, test_index=chosen["test_index"], label=label)
