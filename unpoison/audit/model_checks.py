"""Checks on the built model before any computation: layers kronfluence can track, and the input size and
output the audit needs. Each failure raises :class:`AuditError` naming what the model takes and the fix."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn

from unpoison.audit.inputs import AuditError, first_line
from unpoison.audit.model import InputAdapter, ModelInfo

PROBE_SIZES = (8, 16, 28, 32, 64, 96, 128, 224)  # square sizes tried to tell the user what the model takes


def tracked_modules(model: nn.Module) -> tuple[list[dict[str, Any]], list[str], Counter]:
    """The leaf modules kronfluence tracks (exactly ``nn.Linear``/``nn.Conv2d``), the subclasses of those it
    cannot wrap, and a count of the other leaf types holding parameters (ignored by EK-FAC)."""
    from kronfluence.module.tracked_module import TrackedModule

    supported = tuple(TrackedModule.SUPPORTED_MODULES)
    tracked, subclasses, ignored = [], [], Counter()
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        if type(module) in supported:
            tracked.append({"name": name, "type": type(module).__name__, "weight": list(module.weight.shape)})
        elif isinstance(module, supported):
            subclasses.append(f"{name} ({type(module).__name__})")
        elif any(True for _ in module.parameters(recurse=False)):
            ignored[type(module).__name__] += 1
    return tracked, subclasses, ignored


def check_trackable(model: nn.Module, info: ModelInfo) -> None:
    """Record the tracked modules in ``info``; raise when there are none or kronfluence would fail on one."""
    tracked, subclasses, ignored = tracked_modules(model)
    if subclasses:
        raise AuditError(
            f"{len(subclasses)} module(s) are subclasses of nn.Linear/nn.Conv2d, which kronfluence cannot wrap (it "
            f"tracks exactly those two classes): {subclasses[:5]}. Fix: build these layers as nn.Linear/nn.Conv2d "
            "themselves (a subclass adding nothing to forward can be replaced one for one)"
        )
    if not tracked:
        kinds = ", ".join(f"{k} ×{v}" for k, v in ignored.most_common(8)) or "none with parameters"
        raise AuditError(
            "the model has no nn.Linear or nn.Conv2d module, the only layers kronfluence's EK-FAC can track (its "
            f"layers with parameters: {kinds}). Fix: build the model's layers from nn.Linear/nn.Conv2d modules "
            "(weights used through F.linear/F.conv2d or in a TorchScript module are invisible to it; for a "
            "TorchScript file use --arch torchscript)"
        )
    info.tracked = tracked
    if ignored:
        info.notes.append(f"not tracked (no EK-FAC factors): {', '.join(f'{k} ×{v}' for k, v in ignored.items())}")


def _runs(net: nn.Module, shape: tuple[int, int, int]) -> bool:
    try:
        with torch.no_grad():
            net(torch.zeros(1, *shape))
        return True
    except Exception:  # any failure means: not this shape
        return False


def accepted_shapes(
    net: nn.Module, channels: list[int], sizes: tuple[int, ...] = PROBE_SIZES
) -> list[tuple[int, int, int]]:
    """The C×S×S inputs (``channels`` × square ``sizes``) on which ``net`` runs (eval mode, no gradients)."""
    return [(c, s, s) for c in channels for s in sizes if _runs(net, (c, s, s))]


def _input_error(model: nn.Module, sample: torch.Tensor, err: Exception, info: ModelInfo) -> AuditError:
    net = model.net if isinstance(model, InputAdapter) else model
    c, h, w = sample.shape[1:]
    resized = f", resized to {info.input_size[0]}×{info.input_size[1]} by --input-size" if info.input_size else ""
    given = f"{c}×{h}×{w}{resized}"
    shapes = accepted_shapes(net, sorted({1, 3, info.channels}))
    tried = f"tried 1 and 3 channels at {', '.join(map(str, PROBE_SIZES))} px"
    head = f"the model fails on the training images ({given}) with {type(err).__name__}: {first_line(err)}."
    if not shapes:
        return AuditError(
            f"{head} It ran on no other input either ({tried}). Fix: check that --arch builds the "
            "network the weights come from and that its forward takes one batch of images"
        )
    sizes = sorted({(s[1], s[2]) for s in shapes if s[0] == info.channels}, key=lambda s: abs(s[0] - h))
    if sizes:
        hs, ws = sizes[0]
        return AuditError(
            f"{head} It runs on {info.channels}×{hs}×{ws} ({tried}): it expects {hs}×{ws} images, given {h}×{w}. Fix: "
            f"if the model was trained on {hs}×{ws} images, give the training and suspicious images at that size, "
            f"or pass --input-size {hs} {ws} to have the audit resize them for the model (the probe augmentations "
            "still act at the images' own size)"
        )
    other = shapes[0]
    return AuditError(
        f"{head} It runs on {other[0]}-channel inputs ({'×'.join(map(str, other))}), the training images have {c}. "
        f"Fix: give the training and suspicious images with {other[0]} channel(s), as the model was trained"
    )


def check_forward(model: nn.Module, sample: torch.Tensor, num_classes: int, info: ModelInfo) -> None:
    """The model runs on ``sample`` (training images, [0, 1] floats) and returns (batch, num_classes) logits."""
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as err:  # the model's own error: explain it in terms of sizes
        raise _input_error(model, sample, err, info) from err
    if not isinstance(out, torch.Tensor):
        raise AuditError(
            f"the model returns a {type(out).__name__}, not a tensor of logits: the audit needs forward(images) → "
            "(batch, classes). Fix: wrap it (a module whose forward returns the logits, e.g. out[0] or "
            "out['logits']) and give that class or function as --arch / model="
        )
    if out.ndim != 2 or out.shape[0] != len(sample):
        raise AuditError(
            f"the model returns shape {tuple(out.shape)} for {len(sample)} images; the audit needs "
            "(batch, classes) logits. Fix: give a model whose forward returns them"
        )
    if out.shape[1] != num_classes:
        raise AuditError(
            f"the model gives {out.shape[1]} outputs but the audit expects {num_classes} (the training "
            f"set's classes or --num-classes): pass --num-classes {out.shape[1]} if the model has more "
            "outputs than the training set has classes, or check the --model-option / num_classes it "
            "was built with"
        )
    if not bool(torch.isfinite(out).all()):
        raise AuditError("the model gives NaN/inf logits on the training images: check the weights and --mean/--std")
