"""Stage: choose the control queries (clean test images the model gets right; never reads ground truth)."""

from __future__ import annotations

from unpoison.controls import select_controls
from unpoison.device import resolve_device
from unpoison.io import save_meta, save_torch
from unpoison.models import load_checkpoint
from unpoison.stages.data import load_clean


def controls(clean: str, model: str, count: int, seed: int, device: str, out: str, batch_size: int = 512) -> None:
    """Pick ``count`` correctly classified test images by ``seed`` (its ``controls`` stream) and save them."""
    net, _ = load_checkpoint(model)
    chosen = select_controls(net, load_clean(clean), count, seed, resolve_device(device), batch_size)
    save_torch(chosen, out)
    save_meta(out, count=count, seed=seed, test_index=chosen["test_index"])
