"""Device selection: ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Literal

import torch

AmpName = Literal["none", "bf16", "fp16"]  # autocast choices in the config


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a config value (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) into a :class:`torch.device`.

    Raises:
        ValueError: if CUDA is requested but not available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} was requested but CUDA is not available; use device: auto or cpu")
        return torch.device(name)
    raise ValueError(f"device: {name!r} is not one of auto, cpu, cuda, cuda:N")


def autocast_dtype(name: str | None) -> torch.dtype | None:
    """Map a config AMP name (``none``/``bf16``/``fp16``) to a dtype (``None`` = full precision)."""
    table = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise ValueError(f"amp: {name!r} is not one of none, bf16, fp16")
    return table[name]


def autocast(device: torch.device, amp: str | None) -> AbstractContextManager:
    """``torch.autocast`` on ``device`` with the config's AMP dtype, or a no-op for ``none``."""
    dtype = autocast_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
