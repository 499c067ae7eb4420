"""The audit's inputs: a user's state_dict and architecture, training set and suspicious images.

Nothing here knows about attacks or ground truth. Every failure raises :class:`AuditError` whose message
names the file or option, what is wrong and how to fix it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from unpoison.data import DatasetError
from unpoison.data.sources import labels_to_tensor, nhwc_to_tensor
from unpoison.models import MODELS, Normalize, build_model
from unpoison.params import ParamError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class AuditError(ValueError):
    """Bad audit input; the message names the problem and the fix."""


# ---- images ---------------------------------------------------------------------------------------


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file to uint8 C×H×W at its own size: 1 channel for grayscale files, else 3 (RGB;
    an alpha channel is dropped, palettes are expanded).

    Raises:
        AuditError: the file is missing or cannot be decoded.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise AuditError(f"image not found: {str(path)!r}")
    try:
        with Image.open(path) as im:
            gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            arr = np.array(im.convert("L" if gray else "RGB"), dtype=np.uint8)  # a writable copy
    except OSError as err:  # PIL.UnidentifiedImageError is an OSError
        raise AuditError(f"cannot decode image {str(path)!r} ({err}): give a PNG or JPEG file") from err
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


# ---- the training set -----------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """The training set as the model was trained on it.

    Attributes:
        x: uint8 N×C×H×W images; y: int64 labels (the model's output index).
        names: one name per image (ImageFolder: the path relative to the root; npz: the row index).
        classes: class name per label index; kind: ``imagefolder`` or ``npz``; path: where it was read.
    """

    x: torch.Tensor
    y: torch.Tensor
    names: list[str]
    classes: list[str]
    kind: str
    path: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)


def _folder_labels(class_names: list[str]) -> tuple[dict[str, int], list[str]]:
    """Label of each class folder and the class-name list: folders named by integers ARE the model's output
    index ("10" is class 10); other names get torchvision's sorted order."""
    if all(name.isdigit() for name in class_names):
        top = max(int(n) for n in class_names)
        return {n: int(n) for n in class_names}, [str(i) for i in range(top + 1)]
    ordered = sorted(class_names)
    return {n: i for i, n in enumerate(ordered)}, ordered


def load_image_folder(root: str | Path) -> TrainingSet:
    """Read ``root/<class>/<image>`` (torchvision's ImageFolder layout); names are paths relative to ``root``.

    Images must all have one size; if any is colour, grayscale ones are expanded to RGB.
    """
    root = Path(root)
    classes_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [p.name for p in classes_dirs]
    if {"train"} <= set(names) and {"val", "test"} & set(names):
        raise AuditError(
            f"{str(root)!r} holds train/ and val/ (or test/) folders: pass the training split itself, "
            f"--train {root / 'train'}"
        )
    files = [
        (f, d.name) for d in classes_dirs for f in sorted(d.rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise AuditError(
            f"no images found under {str(root)!r}: the training set must be an ImageFolder tree, "
            f"root/<class>/<image> with {', '.join(IMAGE_SUFFIXES)} files (or an .npz with x_train, y_train)"
        )
    label_of, classes = _folder_labels(sorted({c for _, c in files}))
    images = [read_image(f) for f, _ in files]
    size = images[0].shape[1:]
    for (f, _), im in zip(files, images):
        if im.shape[1:] != size:
            raise AuditError(
                f"training images differ in size: {f} is {im.shape[1]}×{im.shape[2]}, {files[0][0]} is "
                f"{size[0]}×{size[1]} (H×W); resize/crop them to the size the model was trained on"
            )
    channels = max(im.shape[0] for im in images)
    x = torch.stack([im.expand(channels, -1, -1) for im in images]).contiguous()
    y = torch.tensor([label_of[c] for _, c in files], dtype=torch.int64)
    rel = [str(f.relative_to(root)) for f, _ in files]
    return TrainingSet(x, y, rel, classes, "imagefolder", str(root))


def load_npz_train(path: str | Path) -> TrainingSet:
    """Read ``x_train`` (uint8 N×H×W×C or N×H×W) and ``y_train`` (integers) and optional ``classes`` from an
    .npz, as the pipeline's ``npz`` source does (other arrays are ignored); names are the row indices."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train") if k not in z.files]
            if missing:
                raise AuditError(f"{path}: missing arrays {missing}; the training .npz needs x_train and y_train")
            x = nhwc_to_tensor(z["x_train"], "x_train", str(path))
            y = labels_to_tensor(z["y_train"], "y_train", str(path))
            classes = [str(c) for c in z["classes"]] if "classes" in z.files else []
    except AuditError:
        raise
    except DatasetError as err:  # wrong dtype, shape or channels: its message names the array and the fix
        raise AuditError(str(err)) from err
    except (OSError, ValueError, EOFError) as err:
        raise AuditError(f"{path}: unreadable as an .npz ({err}); write it with np.savez(path, x_train=..., y_train=...)") from err
    if len(x) != len(y) or len(x) == 0:
        raise AuditError(f"{path}: {len(x)} images but {len(y)} labels; x_train and y_train must match and not be empty")
    if int(y.min()) < 0:
        raise AuditError(f"{path}: y_train holds label {int(y.min())}; labels are output indices ≥ 0")
    classes = classes or [str(i) for i in range(int(y.max()) + 1)]
    return TrainingSet(x, y, [str(i) for i in range(len(x))], classes, "npz", str(path))


def load_training_set(path: str | Path) -> TrainingSet:
    """An ImageFolder directory or an .npz file (see :func:`load_image_folder`, :func:`load_npz_train`)."""
    p = Path(path)
    if p.is_dir():
        return load_image_folder(p)
    if p.is_file() and p.suffix == ".npz":
        return load_npz_train(p)
    what = "not found" if not p.exists() else "neither a directory nor an .npz file"
    raise AuditError(f"--train {str(path)!r}: {what}; give an ImageFolder root (root/<class>/<image>) or an .npz")


# ---- the model ------------------------------------------------------------------------------------


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict, loaded with ``torch.load(weights_only=True)`` (never unpickling objects).

    A dict holding it under ``"state_dict"`` (the pipeline's checkpoints, Lightning) is unwrapped, and a
    ``module.`` prefix on every key (DataParallel) is removed.

    Raises:
        AuditError: missing file, a pickled model object, not a torch file, not a dict of tensors, or NaN/inf
            values.
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"--weights {str(path)!r}: file not found")
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
        raise AuditError(f"--weights {str(path)!r} is not a readable torch file ({_first_line(err)})") from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AuditError(
            f"--weights {str(path)!r} holds a {type(obj).__name__}, not a state_dict (a dict of parameter name → "
            "tensor); save it with torch.save(model.state_dict(), 'weights.pt')"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    broken = [k for k, v in obj.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise AuditError(
            f"--weights {str(path)!r} has NaN/inf values in {len(broken)} tensor(s) {broken[:5]}: the model diverged "
            "or the file is damaged; export the weights of a healthy model"
        )
    return obj


class InputAdapter(nn.Module):
    """A torchvision network behind the project's input convention: [0, 1] images, expanded from 1 to 3
    channels when needed, then normalised with the user's statistics (identity when none are given)."""

    def __init__(self, net: nn.Module, channels: int, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        super().__init__()
        self.net = net
        self.channels = channels
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.net(self.normalize(x))


def _stats(values: Sequence[float] | None, name: str, channels: int) -> list[float] | None:
    if values is None:
        return None
    values = list(values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise AuditError(f"--{name} has {len(values)} values; give one per input channel ({channels}) or one for all")
    if name == "std" and min(values) <= 0:
        raise AuditError(f"--std values must be > 0, got {values}")
    return values


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str, hint: str) -> None:
    """Load ``state`` strictly, or raise naming the first missing, unexpected and mis-shaped keys and the fix."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in expected.items() if k in state and state[k].shape != v.shape
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


def is_project_model(arch: str, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``arch`` means a project model: a registered name that is not also a torchvision name, or a
    name in both (``resnet18``) whose weights carry the project models' ``normalize.*`` buffers."""
    import torchvision

    if arch not in MODELS:
        return False
    return arch not in torchvision.models.list_models() or any(k.startswith("normalize.") for k in state)


def build_audit_model(
    arch: str,
    weights: str | Path,
    num_classes: int,
    in_channels: int,
    options: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build ``arch`` and load ``weights`` into it; the model takes [0, 1] images and is in eval mode.

    Args:
        arch: a model registered in :mod:`unpoison.models` (it normalises its inputs itself, with statistics
            stored in its state_dict) or a torchvision architecture name (``torchvision.models.list_models()``);
            a name in both is resolved by :func:`is_project_model`.
        weights: a plain state_dict file (see :func:`read_state_dict`).
        num_classes: the model's outputs; in_channels: channels of the training images (1 or 3).
        options: keyword options of the architecture (project models: e.g. ``width``).
        mean, std: per-channel statistics the torchvision model was trained with (inputs in [0, 1]); None =
            no normalisation. Not accepted for project models.

    Raises:
        AuditError: unknown architecture or option, statistics given to a project model, or weights that do
            not fit (the first missing/unexpected keys or mismatched shapes, and the fix).
    """
    import torchvision

    options = dict(options or {})
    state = read_state_dict(weights)
    hint = f"check --arch {arch}, --num-classes {num_classes} and --model-option (e.g. width) against the model that produced the file"
    if is_project_model(arch, state):
        if mean is not None or std is not None:
            raise AuditError(
                f"--mean/--std do not apply to {arch!r}: project models normalise their inputs themselves, with the "
                "statistics stored in the state_dict; remove --mean/--std"
            )
        try:
            model = build_model(arch, num_classes, in_channels, options)
        except ParamError as err:
            raise AuditError(f"--model-option: {err}") from err
        _load_weights(model, state, str(weights), hint)
        return model.eval()
    if arch not in torchvision.models.list_models():
        raise AuditError(
            f"--arch {arch!r} is neither a project model ({', '.join(sorted(MODELS))}) nor a torchvision "
            "architecture (torchvision.models.list_models(), e.g. resnet18)"
        )
    if (mean is None) != (std is None):
        raise AuditError("give both --mean and --std (the statistics your model normalised its inputs with), or neither")
    try:
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **options)
    except TypeError as err:
        raise AuditError(f"--model-option for torchvision {arch!r}: {err}") from err
    _load_weights(net, state, str(weights), hint)
    return InputAdapter(net, 3, _stats(mean, "mean", 3), _stats(std, "std", 3)).eval()


# ---- the suspicious images ------------------------------------------------------------------------


def parse_query(spec: str) -> tuple[str, str | None]:
    """``path[:label]`` → (path, label text or None); a path that exists as given is never split."""
    if Path(spec).exists() or ":" not in spec:
        return spec, None
    path, label = spec.rsplit(":", 1)
    return path, (label or None)


def query_label(text: str, classes: list[str], num_classes: int, path: str) -> int:
    """The output index ``text`` names: an integer, or a class name of the training set."""
    if text.lstrip("-").isdigit():
        label = int(text)
    elif text in classes:
        label = classes.index(text)
    else:
        raise AuditError(f"--query {path}:{text}: the label must be an output index or a class name of the training set ({classes[:20]})")
    if not 0 <= label < num_classes:
        raise AuditError(f"--query {path}:{text}: label {label} is out of range; the model has {num_classes} outputs (0..{num_classes - 1})")
    return label


def load_query_image(path: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """A suspicious image as uint8 C×H×W matching the training images' ``shape`` (C, H, W).

    A grayscale image for a colour training set is expanded; a colour image whose three channels are equal is
    accepted for a grayscale set. Any other channel or size difference is an error naming the fix.
    """
    x = read_image(path)
    c, h, w = shape
    if x.shape[1:] != (h, w):
        raise AuditError(
            f"--query {path} is {x.shape[1]}×{x.shape[2]} pixels (H×W) but the training images are {h}×{w}: "
            f"resize/crop it to {h}×{w} the way the training images were prepared"
        )
    if x.shape[0] == c:
        return x
    if c == 3:
        return x.expand(3, -1, -1).contiguous()
    if bool((x[0] == x[1]).all() and (x[1] == x[2]).all()):
        return x[:1].contiguous()
    raise AuditError(
        f"--query {path} is a colour (3-channel) image but the training images are grayscale (1 channel): convert "
        "it the way the training images were made, e.g. PIL's Image.open(p).convert('L').save(...)"
    )
