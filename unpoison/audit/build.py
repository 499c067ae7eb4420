"""Build the audited model from ``--arch`` (+ ``--weights``, ``--model-option``) or take a Python object, and
put it behind the audit's input convention (see :mod:`unpoison.audit.model`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unpoison.audit.inputs import AuditError
from unpoison.audit.model import (
    InputAdapter,
    ModelInfo,
    adapt,
    check_stats,
    is_project_model,
    load_weights,
    read_state_dict,
    sha256,
    weights_hint,
)
from unpoison.audit.torchscript import convert_scripted, load_scripted, scripted_channels
from unpoison.audit.user_code import build_user_model, is_import_spec
from unpoison.models import MODELS, build_model
from unpoison.params import ParamError

TORCHSCRIPT = "torchscript"


def _named(
    arch: str,
    weights: str,
    num_classes: int,
    in_channels: int,
    options: dict[str, Any],
    info: ModelInfo,
    normalised: bool,
) -> nn.Module:
    """A project model (normalises itself) or a torchvision architecture, with ``weights`` loaded."""
    import torchvision

    state = read_state_dict(weights)
    if is_project_model(arch, state):
        info.family, info.normalisation = "project", "inside the model (project model)"
        if normalised:
            raise AuditError(
                f"--mean/--std do not apply to {arch!r}: project models normalise their inputs "
                "themselves, with the statistics stored in the state_dict; remove --mean/--std"
            )
        try:
            net = build_model(arch, num_classes, in_channels, options)
        except ParamError as err:
            raise AuditError(f"--model-option: {err}") from err
    elif arch in torchvision.models.list_models():
        info.family = "torchvision"
        try:
            net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **options)
        except TypeError as err:
            raise AuditError(f"--model-option for torchvision {arch!r}: {err}") from err
    else:
        raise AuditError(
            f"--arch {arch!r} is neither a project model ({', '.join(sorted(MODELS))}), a torchvision architecture "
            "(torchvision.models.list_models(), e.g. resnet18), MODULE:NAME / FILE.py:NAME (your own class or "
            "function) nor torchscript"
        )
    note = load_weights(net, state, weights, weights_hint(arch, num_classes))
    info.notes += [note] if note else []
    return net


def _imported(
    arch: str,
    weights: str | None,
    num_classes: int,
    options: dict[str, Any],
    info: ModelInfo,
    log: Callable[[str], None],
) -> nn.Module:
    """The user's class or factory, built with ``options``, with ``weights`` loaded when given."""
    info.family = "import"
    net, info.options = build_user_model(arch, options, num_classes)
    if weights is None:
        info.notes.append("no --weights: the model keeps the weights its constructor gave it")
        log(f"note: {info.notes[-1]} (make sure that is the trained model)")
        return net
    note = load_weights(net, read_state_dict(weights), weights, weights_hint(arch, num_classes))
    info.notes += [note] if note else []
    return net


def _torchscript(
    weights: str,
    sample: torch.Tensor,
    options: dict[str, Any],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: Sequence[int] | None,
    info: ModelInfo,
) -> nn.Module:
    """The TorchScript model in ``weights``, converted so kronfluence can hook its layers."""
    if options:
        raise AuditError(
            f"--model-option {sorted(options)} does not apply to --arch torchscript (the file holds the "
            "built model); remove it"
        )
    info.family = TORCHSCRIPT
    scripted = load_scripted(weights)
    channels = scripted_channels(scripted) or sample.shape[1]
    if channels != sample.shape[1] and not (sample.shape[1] == 1 and channels == 3):
        channels = sample.shape[1]
    pre = InputAdapter(
        nn.Identity(),
        channels,
        check_stats(mean, "mean", channels),
        check_stats(std, "std", channels),
        tuple(input_size) if input_size is not None else None,
    )
    net, created = convert_scripted(scripted, pre.prepare(sample), weights)
    info.notes.append(f"converted from TorchScript; {len(created)} Linear/Conv2d layers rebuilt as modules")
    return net


def build_audit_model(
    arch: str,
    weights: str | Path | None,
    num_classes: int,
    sample: torch.Tensor,
    options: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, ModelInfo]:
    """Build ``arch`` with ``weights``; the model takes [0, 1] images like ``sample`` and is in eval mode.

    Args:
        arch: a model registered in :mod:`unpoison.models` (normalises its inputs itself), a torchvision name
            (``torchvision.models.list_models()``; a name in both is resolved by :func:`is_project_model`),
            ``module:Attr`` or ``file.py:Attr`` (a class or function of the user's code, called with
            ``options``; ``num_classes`` is passed when it takes that argument and ``options`` do not set it),
            or ``torchscript`` (``weights`` is then the ``torch.jit.save`` file).
        weights: a plain state_dict file (see :func:`read_state_dict`); optional for ``module:Attr`` only.
        num_classes: the model's outputs; sample: a few training images, float [0, 1] B×C×H×W.
        options: keyword options of the architecture.
        mean, std: per-channel statistics the model was trained with (inputs in [0, 1]), applied by the audit;
            None = no normalisation. Not accepted for project models (they normalise themselves).
        input_size: (H, W) the model takes, when it differs from the images' size (they are resized).
        log: called with notes on adjustments.

    Returns:
        The model and its :class:`ModelInfo`.

    Raises:
        AuditError: unknown architecture or option, a failed import, weights that do not fit.
    """
    options = dict(options or {})
    info = ModelInfo(arch=arch, family="", options=options)
    if weights is not None:
        info.weights, info.weights_sha256 = str(weights), sha256(weights) if Path(weights).is_file() else None
    elif not is_import_spec(arch):
        raise AuditError(
            f"--weights is required with --arch {arch} (only MODULE:NAME may build a trained model "
            "itself). Fix: --weights the state_dict file"
        )
    in_channels = int(sample.shape[1])
    if arch == TORCHSCRIPT:
        net = _torchscript(str(weights), sample, options, mean, std, input_size, info)
    elif is_import_spec(arch):
        net = _imported(arch, None if weights is None else str(weights), num_classes, options, info, log)
    else:
        net = _named(arch, str(weights), num_classes, in_channels, options, info, mean is not None or std is not None)
    return adapt(net, info, in_channels, mean, std, input_size, log), info


def prepare_object_model(
    model: nn.Module,
    sample: torch.Tensor,
    weights: str | Path | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, ModelInfo]:
    """A caller's ``nn.Module`` (``weights`` loaded into it when given) behind the audit's input convention."""
    if not isinstance(model, nn.Module):
        raise AuditError(f"model: a {type(model).__name__} is neither a torch.nn.Module nor an --arch string")
    info = ModelInfo(arch=type(model).__name__, family="object")
    if weights is not None:
        info.weights, info.weights_sha256 = str(weights), sha256(weights) if Path(weights).is_file() else None
        note = load_weights(model, read_state_dict(weights), str(weights), "give the weights of this model's class")
        info.notes += [note] if note else []
    return adapt(model, info, int(sample.shape[1]), mean, std, input_size, log), info
