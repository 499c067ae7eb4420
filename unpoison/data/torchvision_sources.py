"""Torchvision-backed sources: CIFAR-10, CIFAR-100, Imagenette and any ImageFolder tree.

Each loader reads the whole dataset into memory once as uint8 N×3×H×W (CIFAR-10: 180 MB; Imagenette at
160 px: about 1 GB). CIFAR is taken straight from torchvision's arrays (no per-image work); folder formats
are decoded with PIL, resized so the shorter side is ``image_size`` and centre-cropped to a square.

Folder formats (Imagenette, ImageFolder) live in :mod:`unpoison.data.folder_sources`.

Settings (one ``dataset_settings`` entry each):

* ``cifar10`` / ``cifar100``: ``root`` (directory holding ``cifar-10-batches-py/`` or
  ``cifar-100-python/``), ``download`` (default false).
* ``imagenette``: ``root`` (directory holding ``imagenette2-160/``), ``download`` (default false),
  ``size`` (the published variant: 160, 320 or "full"; default 160), ``image_size`` (default 160).
* ``imagefolder``: ``root`` (directory with ``train/`` and ``val/`` or ``test/``, one sub-folder per class),
  ``image_size`` (default 160). There is nothing to download.

torchvision is imported lazily, so importing :mod:`unpoison.data` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from unpoison.data.core import DatasetError, DatasetInfo, ImageData
from unpoison.data.sources import nhwc_to_tensor, register_describer, register_source

DOWNLOADABLE = ("cifar10", "cifar100", "imagenette")


def dataset_root(source: str, root: str | None) -> Path:
    if not root:
        raise DatasetError(
            f"source {source} needs `root:`, the directory holding (or receiving, with `download: true`) the files"
        )
    return Path(root).expanduser().resolve()


def not_found(source: str, where: Path, missing: list[str], root: Path, holds: str) -> DatasetError:
    return DatasetError(
        f"{source} dataset not found at {str(where)!r} (missing: {', '.join(missing)}): set `download: true` in "
        f"this dataset's `dataset_settings.<name>` entry to download it into {str(root)!r}, or point `root:` at a "
        f"directory that already holds {holds}"
    )


def download_failed(source: str, root: Path, err: Exception) -> DatasetError:
    return DatasetError(
        f"{source}: could not download into {str(root)!r} ({type(err).__name__}: {err}); check the network, or "
        "fetch the archive elsewhere, unpack it under `root:` and set `download: false`"
    )


def check_image_size(source: str, image_size: Any) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DatasetError(f"{source}: `image_size` must be a positive integer (pixels), got {image_size!r}")
    return image_size


# ---- CIFAR-10 / CIFAR-100 -------------------------------------------------------------------------


def _cifar_class(source: str) -> Any:
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if source == "cifar10" else CIFAR100


def _cifar_present(source: str, root: Path, download: bool) -> bool:
    """True when every CIFAR file exists; False when some are missing but will be downloaded.

    Raises:
        DatasetError: files are missing and ``download`` is false.
    """
    cls = _cifar_class(source)
    folder = root / cls.base_folder
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return True
    if download:
        return False
    raise not_found(source, folder, missing, root, f"{cls.base_folder}/ (the unpacked {cls.filename})")


def _open_cifar(source: str, root: Path, train: bool, download: bool) -> Any:
    """The torchvision dataset object, with its errors turned into :class:`DatasetError`."""
    cls = _cifar_class(source)
    _cifar_present(source, root, download)
    try:  # torchvision checks every file's md5; with download it re-fetches a missing or corrupted copy
        return cls(str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:
        if download:
            raise download_failed(source, root, err) from err
        raise DatasetError(
            f"{source} files at {str(root / cls.base_folder)!r} are unreadable or failed torchvision's md5 check "
            "(corrupted or partial copy): delete that folder and set `download: true` in this dataset's "
            f"`dataset_settings.<name>` entry, or point `root:` at an intact copy ({err})"
        ) from err


def _load_cifar(source: str, root: str | None, download: bool) -> ImageData:
    path = dataset_root(source, root)
    train = _open_cifar(source, path, True, download)
    test = _open_cifar(source, path, False, False)  # the train call downloaded whatever was missing
    return ImageData(
        nhwc_to_tensor(train.data, "x_train", source),
        torch.as_tensor(np.asarray(train.targets, dtype=np.int64)),
        nhwc_to_tensor(test.data, "x_test", source),
        torch.as_tensor(np.asarray(test.targets, dtype=np.int64)),
        [str(c) for c in train.classes],
    )


@register_source("cifar10")
def load_cifar10(root: str | None = None, download: bool = False) -> ImageData:
    """CIFAR-10: 50,000 train and 10,000 test 32×32 RGB images in 10 classes.

    Args:
        root: directory holding ``cifar-10-batches-py/`` (or receiving it when ``download`` is true). Range:
            required (a path; ``~`` expands).
        download: fetch the 163 MB archive from the authors' site when files are missing; false stops before
            any job when they are.

    Returns:
        The dataset as uint8 N×3×32×32 tensors with the official class names.

    Raises:
        DatasetError: files missing with ``download: false``, corrupted, or the download failed.
    """
    return _load_cifar("cifar10", root, download)


@register_source("cifar100")
def load_cifar100(root: str | None = None, download: bool = False) -> ImageData:
    """CIFAR-100 with its 100 fine labels: 50,000 train and 10,000 test 32×32 RGB images.

    Args:
        root: directory holding ``cifar-100-python/`` (or receiving it when ``download`` is true). Range:
            required (a path; ``~`` expands).
        download: fetch the 161 MB archive from the authors' site when files are missing; false stops before
            any job when they are.

    Returns:
        The dataset as uint8 N×3×32×32 tensors with the fine class names.

    Raises:
        DatasetError: files missing with ``download: false``, corrupted, or the download failed.
    """
    return _load_cifar("cifar100", root, download)


def class_counts(targets: Any, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)


def _describe_cifar(source: str, root: str | None, download: bool) -> DatasetInfo:
    shape = (3, 32, 32)
    path = dataset_root(source, root)
    if not _cifar_present(source, path, download):
        return DatasetInfo(shape)
    try:
        train = _open_cifar(source, path, True, False)  # never download here: the prepare rule does
        test = _open_cifar(source, path, False, False)
    except DatasetError:
        if download:  # corrupted copy: torchvision re-downloads it in the prepare rule
            return DatasetInfo(shape)
        raise
    # unpickling the batches is the cheapest way to the labels (~1 s for CIFAR-10 on one core)
    k = len(train.classes)
    return DatasetInfo(shape, class_counts(train.targets, k), class_counts(test.targets, k))


@register_describer("cifar10")
def _describe_cifar10(root: str | None = None, download: bool = False) -> DatasetInfo:
    return _describe_cifar("cifar10", root, download)


@register_describer("cifar100")
def _describe_cifar100(root: str | None = None, download: bool = False) -> DatasetInfo:
    return _describe_cifar("cifar100", root, download)
