"""The audit's inputs as Python objects (a notebook never writes files to call :func:`unpoison.audit.audit`).

Training set: a path (ImageFolder root or .npz), a torch ``Dataset`` whose items are ``(image, label)``, or
``(x, y)`` arrays. Suspicious images: paths (``path[:label]``), images, ``(image, label)`` pairs, or one
q×C×H×W batch. An image is a torch tensor or numpy array, C×H×W (or H×W×C for numpy, or H×W), either uint8
(0..255) or float in [0, 1] — NOT normalised: the probe augmentations act on [0, 1] images, and the
model's normalisation is given separately (``mean``/``std``) — or a PIL image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unpoison.audit.inputs import (
    AuditError,
    TrainingSet,
    load_training_set,
    match_shape,
    parse_query,
    query_label,
    read_image,
)

FORMS = (
    "a path (ImageFolder root or .npz), a torch Dataset of (image, label) items, or (x, y) with x N×C×H×W "
    "(uint8, or float in [0, 1]) and y integer labels"
)


def check_range(low: float, high: float, where: str) -> None:
    """Float images must be in [0, 1]: a wider range means normalised images (raise naming the fix)."""
    if low < -1e-6 or high > 1 + 1e-6:
        raise AuditError(
            f"{where}: float image values span [{low:.3g}, {high:.3g}], outside [0, 1]: the images look normalised. "
            "Fix: give the un-normalised images (e.g. drop transforms.Normalize from the dataset) and pass the "
            "statistics as mean=..., std=... (--mean/--std)"
        )


def as_image(obj: Any, where: str) -> torch.Tensor:
    """One image as C×H×W, uint8 or float32 in [0, 1] (see the module's accepted forms)."""
    if type(obj).__module__.startswith("PIL."):
        obj = np.array(obj.convert("L" if obj.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"), dtype=np.uint8)
    if isinstance(obj, np.ndarray):
        if obj.ndim == 3 and obj.shape[-1] in (1, 3) and obj.shape[0] not in (1, 3):
            obj = obj.transpose(2, 0, 1)  # H×W×C
        obj = torch.from_numpy(np.ascontiguousarray(obj))
    if not isinstance(obj, torch.Tensor):
        raise AuditError(
            f"{where}: a {type(obj).__name__} is not an image; give a tensor or array (C×H×W) or a PIL image"
        )
    x = obj.detach().cpu()
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise AuditError(f"{where}: image of shape {tuple(obj.shape)}; expected C×H×W with 1 or 3 channels (or H×W)")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise AuditError(f"{where}: image dtype {x.dtype}; give uint8 (0..255) or float in [0, 1]")
    check_range(float(x.min()), float(x.max()), where)
    return x.float().clamp(0, 1).contiguous()


def stack_images(images: list[torch.Tensor], names: Sequence[str], what: str) -> torch.Tensor:
    """One N×C×H×W tensor (float32 if any image is float, else uint8); raise naming the first odd shape."""
    shape = images[0].shape
    for name, im in zip(names, images):
        if im.shape != shape:
            raise AuditError(
                f"{what}: image {name} is {tuple(im.shape)}, image {names[0]} is {tuple(shape)} (C×H×W); "
                "all must have one size and channel count"
            )
    if any(im.is_floating_point() for im in images):
        return torch.stack([im.float() / 255 if im.dtype == torch.uint8 else im for im in images])
    return torch.stack(images)


def as_label(obj: Any, where: str) -> int:
    """An integer class label from an int, numpy integer or one-element tensor."""
    if isinstance(obj, torch.Tensor) and obj.numel() == 1 and not obj.is_floating_point():
        return int(obj.item())
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    raise AuditError(f"{where}: label {obj!r} is not an integer class index")


def _classes(source: Any, labels: torch.Tensor) -> list[str]:
    found = getattr(source, "classes", None)
    top = int(labels.max()) + 1 if len(labels) else 0
    if isinstance(found, (list, tuple)) and len(found) >= top and all(isinstance(c, str) for c in found):
        return list(found)
    return [str(i) for i in range(top)]


def from_dataset(ds: Any) -> TrainingSet:
    """Read every ``(image, label)`` item of a map-style Dataset once (it must not augment randomly)."""
    n = len(ds)
    if n == 0:
        raise AuditError("train: the Dataset is empty")
    first, again = ds[0], ds[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise AuditError(f"train: Dataset items must be (image, label) pairs, item 0 is a {type(first).__name__}")
    if not torch.equal(as_image(first[0], "train[0]"), as_image(again[0], "train[0]")):
        raise AuditError(
            "train: the Dataset returns a different image each time item 0 is read (random "
            "augmentation?). Fix: give the training images without random transforms (e.g. only "
            "ToTensor())"
        )
    images, labels = [], []
    for i in range(n):
        item = ds[i]
        images.append(as_image(item[0], f"train[{i}]"))
        labels.append(as_label(item[1], f"train[{i}]"))
    names = [str(i) for i in range(n)]
    y = torch.tensor(labels, dtype=torch.int64)
    return TrainingSet(stack_images(images, names, "train"), y, names, _classes(ds, y), "dataset", type(ds).__name__)


def from_arrays(x: Any, y: Any) -> TrainingSet:
    """``(x, y)``: x N×C×H×W (numpy uint8 may be N×H×W×C), uint8 or float in [0, 1]; y N integer labels."""
    if isinstance(x, np.ndarray):
        x = x.transpose(0, 3, 1, 2) if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else x
        x = torch.from_numpy(np.ascontiguousarray(x))
    y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise AuditError(
            f"train: x must be N×C×H×W images with 1 or 3 channels, got shape {tuple(getattr(x, 'shape', ()))}; {FORMS}"
        )
    if y.ndim != 1 or len(y) != len(x) or y.is_floating_point() or len(x) == 0:
        raise AuditError(
            f"train: y must hold one integer label per image ({len(x)}), got shape {tuple(y.shape)} {y.dtype}"
        )
    x = x.detach().cpu()
    if x.is_floating_point():
        check_range(float(x.min()), float(x.max()), "train x")
        x = x.float()
    elif x.dtype != torch.uint8:
        raise AuditError(f"train: x has dtype {x.dtype}; give uint8 (0..255) or float in [0, 1]")
    names = [str(i) for i in range(len(x))]
    y = y.detach().cpu().to(torch.int64)
    return TrainingSet(x.contiguous(), y, names, _classes(None, y), "tensors", f"{len(x)} images given as arrays")


def training_set_from(train: Any) -> TrainingSet:
    """The training set from any accepted form (see the module docstring)."""
    if isinstance(train, TrainingSet):
        return train
    if isinstance(train, (str, os.PathLike)):
        return load_training_set(train)
    if isinstance(train, (tuple, list)) and len(train) == 2 and isinstance(train[0], (torch.Tensor, np.ndarray)):
        return from_arrays(train[0], train[1])
    if hasattr(train, "__getitem__") and hasattr(train, "__len__"):
        return from_dataset(train)
    raise AuditError(f"train: a {type(train).__name__} is not a training set; give {FORMS}")


@dataclass
class QueryItem:
    """One suspicious image: a name for the reports, the image (C×H×W) and its label (text, index or None)."""

    name: str
    x: torch.Tensor
    label: str | int | None


def query_items(queries: Any, shape: tuple[int, int, int]) -> list[QueryItem]:
    """Suspicious images from paths (``path[:label]``), images, ``(image, label)`` pairs or a q×C×H×W batch,
    each matched to the training images' ``shape`` (C, H, W)."""
    if isinstance(queries, (torch.Tensor, np.ndarray)) and queries.ndim == 4:
        queries = list(queries)
    if isinstance(queries, (str, os.PathLike, torch.Tensor, np.ndarray)) or type(queries).__module__.startswith("PIL."):
        queries = [queries]
    items = []
    for j, q in enumerate(queries):
        image, label = (q[0], q[1]) if isinstance(q, tuple) and len(q) == 2 else (q, None)
        if isinstance(image, (str, os.PathLike)):
            path, text = parse_query(str(image)) if label is None else (str(image), None)
            items.append(QueryItem(path, match_shape(read_image(path), shape, path), label if text is None else text))
        else:
            name = f"query[{j}]"
            items.append(QueryItem(name, match_shape(as_image(image, name), shape, name), label))
    if not items:
        raise AuditError("give at least one suspicious image: --query path[:label] (Python: queries=[image, ...])")
    return items


def resolve_label(item: QueryItem, classes: list[str], num_classes: int) -> int:
    """The output index of a given label (an index or a class name)."""
    if isinstance(item.label, (int, np.integer)) or isinstance(item.label, torch.Tensor):
        text = str(as_label(item.label, f"--query {item.name}"))
    else:
        text = str(item.label)
    return query_label(text, classes, num_classes, item.name)
