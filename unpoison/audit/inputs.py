"""The audit's file inputs: the training set (ImageFolder tree or .npz) and the suspicious images.

Nothing here knows about attacks or ground truth. Every failure raises :class:`AuditError` whose message
names the file or option, what is wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unpoison.data import DatasetError
from unpoison.data.sources import labels_to_tensor, nhwc_to_tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class AuditError(ValueError):
    """Bad audit input; the message names the problem and the fix."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type name."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


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
        x: N×C×H×W images, uint8 (files) or float32 in [0, 1] (Python objects); y: int64 labels (the model's
            output index).
        names: one name per image (ImageFolder: the path relative to the root; otherwise the row index).
        classes: class name per label index; kind: ``imagefolder``, ``npz``, ``tensors`` or ``dataset``;
            path: where it was read (a description for Python objects).
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
        (f, d.name)
        for d in classes_dirs
        for f in sorted(d.rglob("*"))
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
        raise AuditError(
            f"{path}: unreadable as an .npz ({err}); write it with np.savez(path, x_train=..., y_train=...)"
        ) from err
    if len(x) != len(y) or len(x) == 0:
        raise AuditError(
            f"{path}: {len(x)} images but {len(y)} labels; x_train and y_train must match and not be empty"
        )
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
        raise AuditError(
            f"--query {path}:{text}: the label must be an output index or a class name of the training "
            f"set ({classes[:20]})"
        )
    if not 0 <= label < num_classes:
        raise AuditError(
            f"--query {path}:{text}: label {label} is out of range; the model has {num_classes} outputs "
            f"(0..{num_classes - 1})"
        )
    return label


def match_shape(x: torch.Tensor, shape: tuple[int, int, int], name: str) -> torch.Tensor:
    """A suspicious image (C×H×W) made to match the training images' ``shape`` (C, H, W).

    A grayscale image for a colour training set is expanded; a colour image whose three channels are equal is
    accepted for a grayscale set. Any other channel or size difference is an error naming the fix.
    """
    c, h, w = shape
    if tuple(x.shape[1:]) != (h, w):
        raise AuditError(
            f"--query {name} is {x.shape[1]}×{x.shape[2]} pixels (H×W) but the training images are {h}×{w}: "
            f"resize/crop it to {h}×{w} the way the training images were prepared (the model's own input size "
            "is set with --input-size)"
        )
    if x.shape[0] == c:
        return x
    if c == 3 and x.shape[0] == 1:
        return x.expand(3, -1, -1).contiguous()
    if x.shape[0] == 3 and bool((x[0] == x[1]).all() and (x[1] == x[2]).all()):
        return x[:1].contiguous()
    what = "a colour (3-channel) image" if x.shape[0] == 3 else f"a {x.shape[0]}-channel image"
    have = "are grayscale (1 channel)" if c == 1 else f"have {c} channels"
    raise AuditError(
        f"--query {name} is {what} but the training images {have}: convert it the way the training images were "
        "made, e.g. PIL's Image.open(p).convert('L').save(...) for grayscale"
    )


def load_query_image(path: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """A suspicious image file as uint8 C×H×W matching the training images' ``shape`` (see :func:`match_shape`)."""
    return match_shape(read_image(path), shape, path)
