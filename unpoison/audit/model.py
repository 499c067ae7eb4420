"""The audited model: a state_dict and its architecture, read, built and put behind the audit's input
convention ([0, 1] images at the training images' size).

``--arch`` is a project model name, a torchvision name, ``module:Attr`` / ``file.py:Attr`` (user code, see
:mod:`unpoison.audit.user_code`) or ``torchscript`` (see :mod:`unpoison.audit.torchscript`); a Python
caller may also hand over the ``nn.Module`` itself. Every failure raises :class:`AuditError` with the fix.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unpoison.audit.inputs import AuditError, first_line
from unpoison.models import MODELS, Normalize


@dataclass
class ModelInfo:
    """How the audited model was obtained and what surrounds it (reported in summary.md and audit.json).

    Attributes:
        arch: ``--arch`` as given (a class name for a Python object); family: ``project``, ``torchvision``,
            ``import``, ``torchscript`` or ``object``; options: the keyword arguments it was built with.
        weights, weights_sha256: the weights file and its hash (None when none was read).
        normalisation: what normalises the inputs; input_size: (H, W) the images are resized to (None = kept);
            channels: the channels the network takes; notes: adjustments made (key prefixes, channel expansion).
        tracked: the Linear/Conv2d modules kronfluence tracks, as dicts (name, type, weight shape).
    """

    arch: str
    family: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    weights_sha256: str | None = None
    normalisation: str = "none (the model takes [0, 1] images)"
    input_size: tuple[int, int] | None = None
    channels: int = 3
    notes: list[str] = field(default_factory=list)
    tracked: list[dict[str, Any]] = field(default_factory=list)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``): a zip with ``<name>/constants.pkl`` and
    compiled code under ``<name>/code/``, which a ``torch.save`` file never has."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict, loaded with ``torch.load(weights_only=True)`` (never unpickling objects).

    A dict holding it under ``"state_dict"`` (the pipeline's checkpoints, Lightning) is unwrapped, and a
    ``module.`` prefix on every key (DataParallel) is removed.

    Raises:
        AuditError: missing file, a pickled model object, a TorchScript file, not a torch file, not a dict of
            tensors, or NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"--weights {str(path)!r}: file not found")
    if is_torchscript(path):  # torch.load would hand it to torch.jit.load (with a warning) and return a module
        raise AuditError(
            f"--weights {str(path)!r} is a TorchScript file: pass --arch torchscript (or give the state_dict of the "
            "eager model)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found is None:  # not a pickle of objects: garbage or a truncated file
            raise AuditError(f"--weights {str(path)!r} is not a readable torch file (garbage or truncated)") from err
        raise AuditError(
            f"--weights {str(path)!r} holds pickled Python objects ({found.group(1)}; e.g. a whole model saved with "
            "torch.save(model, ...)), which torch.load(weights_only=True) refuses: unpickling can run arbitrary "
            "code. Fix: where the model is built, save its weights only, torch.save(model.state_dict(), "
            "'weights.pt'), and pass that file"
        ) from err
    except Exception as err:  # truncated or not a torch file
        if "torch.jit.load" in str(err) or "TorchScript archive" in str(err):
            raise AuditError(
                f"--weights {str(path)!r} is a TorchScript file: pass --arch torchscript (or give the "
                "state_dict of the eager model)"
            ) from err
        raise AuditError(f"--weights {str(path)!r} is not a readable torch file ({first_line(err)})") from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AuditError(
            f"--weights {str(path)!r} holds a {type(obj).__name__}, not a state_dict (a dict of parameter name → "
            "tensor); save it with torch.save(model.state_dict(), 'weights.pt')"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    broken = [k for k, v in obj.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise AuditError(
            f"--weights {str(path)!r} has NaN/inf values in {len(broken)} tensor(s) {broken[:5]}: the model diverged "
            "or the file is damaged; export the weights of a healthy model"
        )
    return obj


class InputAdapter(nn.Module):
    """A network behind the audit's input convention: [0, 1] images at the training images' size, expanded
    from 1 to ``channels`` channels when needed, resized to ``size`` (bilinear, antialiased) when given, then
    normalised with the user's statistics (identity when none are given)."""

    def __init__(
        self,
        net: nn.Module,
        channels: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.channels = channels
        self.size = tuple(size) if size is not None else None
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare(x))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input for [0, 1] images ``x``."""
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return self.normalize(x)


def check_stats(values: Sequence[float] | None, name: str, channels: int) -> list[float] | None:
    """Per-channel ``--mean``/``--std`` (one value is repeated), or raise naming the fix."""
    if values is None:
        return None
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise AuditError(f"--{name} has {len(values)} values; give one per input channel ({channels}) or one for all")
    if name == "std" and min(values) <= 0:
        raise AuditError(f"--std values must be > 0, got {values}")
    return values


def align_keys(state: dict[str, torch.Tensor], expected: Sequence[str]) -> tuple[dict[str, torch.Tensor], str | None]:
    """``state`` with a prefix every key carries and the model's keys lack (``model.``, ``net.``) removed, or
    one the model's keys all carry added; unchanged otherwise. Returns the note to report, if any."""
    want = set(expected)
    if set(state) == want or not state or not want:
        return state, None
    for keys, other, strip in ((list(state), want, True), (list(want), set(state), False)):
        prefix = keys[0].split(".", 1)[0] + "."
        if len(prefix) > 1 and all(k.startswith(prefix) for k in keys) and {k[len(prefix) :] for k in keys} == other:
            if strip:
                return {k[len(prefix) :]: v for k, v in state.items()}, f"removed the prefix {prefix!r} from the keys"
            return {prefix + k: v for k, v in state.items()}, f"added the prefix {prefix!r} to the weights' keys"
    return state, None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str, hint: str) -> str | None:
    """Load ``state`` strictly, or raise naming the first missing, unexpected and mis-shaped keys and the fix.

    Returns:
        A note when a common key prefix was removed or added (see :func:`align_keys`).
    """
    expected = model.state_dict()
    state, note = align_keys(state, list(expected))
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s) {missing[:5]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s) {unexpected[:5]}")
        if shapes:
            problems.append(f"{len(shapes)} size mismatch(es): {'; '.join(shapes[:3])}")
        raise AuditError(f"--weights {path!r} does not fit the architecture: {', '.join(problems)}. Fix: {hint}")
    model.load_state_dict(state)
    return note


def is_project_model(arch: str, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``arch`` means a project model: a registered name that is not also a torchvision name, or a
    name in both (``resnet18``) whose weights carry the project models' ``normalize.*`` buffers."""
    import torchvision

    if arch not in MODELS:
        return False
    return arch not in torchvision.models.list_models() or any(k.startswith("normalize.") for k in state)


def first_conv_channels(net: nn.Module) -> int | None:
    """Input channels of the network's first Conv2d (in module order), None without one."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None


def adapt(
    net: nn.Module,
    info: ModelInfo,
    in_channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: Sequence[int] | None,
    log: Callable[[str], None],
) -> nn.Module:
    """Put ``net`` behind :class:`InputAdapter` when it needs normalising, resizing or 1→3 channels (recorded in
    ``info``); a network needing none of them is returned as it is (its module names stay the user's)."""
    if (mean is None) != (std is None):
        raise AuditError(
            "give both --mean and --std (the statistics your model normalised its inputs with), or neither"
        )
    channels = first_conv_channels(net) or in_channels
    if not (channels == in_channels or (in_channels == 1 and channels == 3)):
        channels = in_channels  # let the input check report what the model takes
    info.channels = channels
    mean, std = check_stats(mean, "mean", channels), check_stats(std, "std", channels)
    if mean is not None:
        info.normalisation = f"mean {mean}, std {std} (applied by the audit)"
    if input_size is not None:
        info.input_size = (int(input_size[0]), int(input_size[1]))
    if channels != in_channels:
        info.notes.append(f"grayscale images are repeated across the {channels} channels the model takes")
        log(f"note: {info.notes[-1]}")
    if mean is None and input_size is None and channels == in_channels:
        return net.eval()
    return InputAdapter(net, channels, mean, std, info.input_size).eval()


def weights_hint(arch: str, num_classes: int) -> str:
    """The fix to name when weights do not fit ``arch``."""
    return (
        f"check --arch {arch}, --num-classes {num_classes} and --model-option (the architecture's keyword "
        "arguments, e.g. width) against the model that produced the file"
    )
