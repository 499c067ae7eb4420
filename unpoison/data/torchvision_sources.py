"""Torchvision-backed sources: CIFAR-10, CIFAR-100, Imagenette and any ImageFolder tree.

Each loader reads the whole dataset into memory once as uint8 N×3×H×W (CIFAR-10: 180 MB; Imagenette at
160 px: about 1 GB). CIFAR is taken straight from torchvision's arrays (no per-image work); folder formats
are decoded with PIL, resized so the shorter side is ``image_size`` and centre-cropped to a square.

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

import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unpoison.data.core import DatasetError, ImageData
from unpoison.data.sources import _nhwc_to_tensor, register_counter, register_source

DOWNLOADABLE = ("cifar10", "cifar100", "imagenette")


def _root(source: str, root: str | None) -> Path:
    if not root:
        raise DatasetError(
            f"source {source} needs `root:`, the directory holding (or receiving, with `download: true`) the files"
        )
    return Path(root).expanduser().resolve()


def _not_found(source: str, where: Path, missing: list[str], root: Path, holds: str) -> DatasetError:
    return DatasetError(
        f"{source} dataset not found at {str(where)!r} (missing: {', '.join(missing)}): set `download: true` in "
        f"this dataset's `dataset_settings.<name>` entry to download it into {str(root)!r}, or point `root:` at a "
        f"directory that already holds {holds}"
    )


def _download_failed(source: str, root: Path, err: Exception) -> DatasetError:
    return DatasetError(
        f"{source}: could not download into {str(root)!r} ({type(err).__name__}: {err}); check the network, or "
        "fetch the archive elsewhere, unpack it under `root:` and set `download: false`"
    )


def _check_image_size(source: str, image_size: Any) -> int:
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
    raise _not_found(source, folder, missing, root, f"{cls.base_folder}/ (the unpacked {cls.filename})")


def _open_cifar(source: str, root: Path, train: bool, download: bool) -> Any:
    """The torchvision dataset object, with its errors turned into :class:`DatasetError`."""
    cls = _cifar_class(source)
    _cifar_present(source, root, download)
    try:  # torchvision checks every file's md5; with download it re-fetches a missing or corrupted copy
        return cls(str(root), train=train, download=download)
    except (RuntimeError, OSError) as err:
        if download:
            raise _download_failed(source, root, err) from err
        raise DatasetError(
            f"{source} files at {str(root / cls.base_folder)!r} are unreadable or failed torchvision's md5 check "
            "(corrupted or partial copy): delete that folder and set `download: true` in this dataset's "
            f"`dataset_settings.<name>` entry, or point `root:` at an intact copy ({err})"
        ) from err


def _load_cifar(source: str, root: str | None, download: bool) -> ImageData:
    path = _root(source, root)
    train = _open_cifar(source, path, True, download)
    test = _open_cifar(source, path, False, False)  # the train call downloaded whatever was missing
    return ImageData(
        _nhwc_to_tensor(train.data, "x_train", source),
        torch.as_tensor(np.asarray(train.targets, dtype=np.int64)),
        _nhwc_to_tensor(test.data, "x_test", source),
        torch.as_tensor(np.asarray(test.targets, dtype=np.int64)),
        [str(c) for c in train.classes],
    )


@register_source("cifar10")
def load_cifar10(root: str | None = None, download: bool = False, **_: Any) -> ImageData:
    """CIFAR-10: 50,000 train and 10,000 test 32×32 RGB images in 10 classes.

    Args:
        root: directory holding ``cifar-10-batches-py/`` (or receiving it when ``download`` is true).
        download: fetch the 163 MB archive from the authors' site when files are missing.

    Returns:
        The dataset as uint8 N×3×32×32 tensors with the official class names.

    Raises:
        DatasetError: files missing with ``download: false``, corrupted, or the download failed.
    """
    return _load_cifar("cifar10", root, download)


@register_source("cifar100")
def load_cifar100(root: str | None = None, download: bool = False, **_: Any) -> ImageData:
    """CIFAR-100 with its 100 fine labels: 50,000 train and 10,000 test 32×32 RGB images.

    Args:
        root: directory holding ``cifar-100-python/`` (or receiving it when ``download`` is true).
        download: fetch the 161 MB archive from the authors' site when files are missing.

    Returns:
        The dataset as uint8 N×3×32×32 tensors with the fine class names.

    Raises:
        DatasetError: files missing with ``download: false``, corrupted, or the download failed.
    """
    return _load_cifar("cifar100", root, download)


def _count_cifar(source: str, root: str | None, download: bool) -> np.ndarray | None:
    path = _root(source, root)
    if not _cifar_present(source, path, download):
        return None
    try:
        train = _open_cifar(source, path, True, False)  # never download here: the prepare rule does
    except DatasetError:
        if download:  # corrupted copy: torchvision re-downloads it in the prepare rule
            return None
        raise
    # unpickling the batches is the cheapest way to the labels (~1 s for CIFAR-10 on one core)
    return np.bincount(np.asarray(train.targets, dtype=np.int64), minlength=len(train.classes))


@register_counter("cifar10")
def _count_cifar10(root: str | None = None, download: bool = False, **_: Any) -> np.ndarray | None:
    return _count_cifar("cifar10", root, download)


@register_counter("cifar100")
def _count_cifar100(root: str | None = None, download: bool = False, **_: Any) -> np.ndarray | None:
    return _count_cifar("cifar100", root, download)


# ---- decoding folder formats ----------------------------------------------------------------------


def read_square_image(path: str, image_size: int) -> torch.Tensor:
    """Decode an image file to uint8 3×S×S: RGB, shorter side resized to ``image_size``, centre crop.

    Args:
        path: image file (any format PIL reads; grayscale, palette and CMYK become RGB).
        image_size: side S of the square output in pixels.

    Returns:
        A uint8 tensor of shape (3, image_size, image_size).

    Raises:
        DatasetError: the file cannot be decoded.
    """
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    try:
        with Image.open(path) as im:
            x = F.pil_to_tensor(im.convert("RGB"))
    except OSError as err:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"cannot decode image {path!r}: {err}") from err
    x = F.resize(x, [image_size], antialias=True)  # shorter side → image_size, aspect ratio kept
    return F.center_crop(x, [image_size, image_size])


def _stack(dataset: Any, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All (image, label) pairs of a dataset whose loader is :func:`read_square_image`, as two tensors."""
    x = torch.empty((len(dataset), 3, image_size, image_size), dtype=torch.uint8)
    y = torch.empty(len(dataset), dtype=torch.int64)
    for i in range(len(dataset)):
        x[i], y[i] = dataset[i]
    return x, y


def _align(source: str, train_names: list[str], test_names: list[str], y_test: torch.Tensor) -> torch.Tensor:
    """Re-index test labels onto the train folders' class order (a test split may lack some classes)."""
    if test_names == train_names:
        return y_test
    extra = sorted(set(test_names) - set(train_names))
    if extra:
        raise DatasetError(f"{source}: test classes {extra} have no training folder; train classes: {train_names}")
    index = {name: i for i, name in enumerate(train_names)}
    return torch.tensor([index[name] for name in test_names], dtype=torch.int64)[y_test]


def _folder_error(source: str, where: Path, err: Exception) -> DatasetError:
    return DatasetError(f"{source}: cannot read the image folders under {str(where)!r}: {err}")


# ---- Imagenette -----------------------------------------------------------------------------------

_IMAGENETTE_SIZES = {"160": "160px", "160px": "160px", "320": "320px", "320px": "320px", "full": "full"}
# torchvision unpacks imagenette2-160.tgz (etc.) under root; the split folders hold one folder per WordNet id
_IMAGENETTE_FOLDERS = {"160px": "imagenette2-160", "320px": "imagenette2-320", "full": "imagenette2"}


def _imagenette_size(size: Any) -> str:
    key = str(size).lower()
    if isinstance(size, bool) or key not in _IMAGENETTE_SIZES:
        raise DatasetError(f"imagenette: `size` must be 160, 320 or 'full' (the published variants), got {size!r}")
    return _IMAGENETTE_SIZES[key]


def _imagenette_present(root: Path, size: str, download: bool) -> bool:
    """True when both split folders exist; False when the variant's folder is absent but will be downloaded.

    Raises:
        DatasetError: folders missing and ``download`` is false, or a partial copy (torchvision would not
            re-download it, since it only checks that the variant's folder exists).
    """
    folder = root / _IMAGENETTE_FOLDERS[size]
    missing = [f"{folder.name}/{split}/" for split in ("train", "val") if not (folder / split).is_dir()]
    if not missing:
        return True
    if folder.is_dir():
        raise DatasetError(
            f"imagenette copy at {str(folder)!r} is incomplete (missing: {', '.join(missing)}): delete that folder "
            "and set `download: true` in this dataset's `dataset_settings.<name>` entry, or point `root:` at a "
            "complete copy"
        )
    if download:
        return False
    raise _not_found("imagenette", folder, missing, root, f"{folder.name}/ with train/ and val/ (one folder per WordNet id)")


def _open_imagenette(root: Path, split: str, size: str, download: bool, loader: Callable[[str], Any]) -> Any:
    from torchvision.datasets import Imagenette

    present = _imagenette_present(root, size, download)
    try:  # torchvision downloads only when the variant's folder is absent
        return Imagenette(str(root), split=split, size=size, download=download, loader=loader)
    except KeyError as err:  # a folder that is not one of Imagenette's ten WordNet ids
        raise _folder_error("imagenette", root, KeyError(f"unknown WordNet id {err}")) from err
    except (OSError, RuntimeError, ValueError) as err:
        if not present:
            raise _download_failed("imagenette", root, err) from err
        raise _folder_error("imagenette", root, err) from err


@register_source("imagenette")
def load_imagenette(
    root: str | None = None, download: bool = False, size: int | str = 160, image_size: int = 160, **_: Any
) -> ImageData:
    """Imagenette: 10 easy ImageNet classes (9,469 train and 3,925 val images), via torchvision.

    Args:
        root: directory holding ``imagenette2-160/`` (``imagenette2-320/`` or ``imagenette2/`` for other
            sizes), or receiving it when ``download`` is true.
        download: fetch the archive (94 MB for the 160-px variant) when files are missing.
        size: which published variant to read: 160, 320 (shorter side in pixels) or "full".
        image_size: side of the square uint8 images after resizing the shorter side and centre cropping.

    Returns:
        The dataset as uint8 N×3×image_size×image_size tensors; class names are the common names
        ("tench", "English springer", ...) in WordNet-id order.

    Raises:
        DatasetError: files missing with ``download: false``, unreadable, or the download failed.
    """
    path = _root("imagenette", root)
    variant = _imagenette_size(size)
    side = _check_image_size("imagenette", image_size)
    loader = functools.partial(read_square_image, image_size=side)
    train = _open_imagenette(path, "train", variant, download, loader)
    test = _open_imagenette(path, "val", variant, False, loader)
    x_train, y_train = _stack(train, side)
    x_test, y_test = _stack(test, side)
    y_test = _align("imagenette", list(train.wnids), list(test.wnids), y_test)
    return ImageData(x_train, y_train, x_test, y_test, [str(names[0]) for names in train.classes])


@register_counter("imagenette")
def _count_imagenette(
    root: str | None = None, download: bool = False, size: int | str = 160, **_: Any
) -> np.ndarray | None:
    path = _root("imagenette", root)
    variant = _imagenette_size(size)
    if not _imagenette_present(path, variant, download):
        return None
    train = _open_imagenette(path, "train", variant, False, loader=str)  # loader=str: paths, no decoding
    labels = np.fromiter((train[i][1] for i in range(len(train))), dtype=np.int64, count=len(train))
    return np.bincount(labels, minlength=len(train.classes))


# ---- ImageFolder ----------------------------------------------------------------------------------


def _imagefolder_splits(root: str | None, download: bool) -> tuple[Path, Path]:
    path = _root("imagefolder", root)
    if download:
        raise DatasetError(
            f"imagefolder: `download: true` is not possible (only {', '.join(DOWNLOADABLE)} download); "
            f"remove it and point `root:` ({str(path)!r}) at your own train/ and val/ folders"
        )
    train = path / "train"
    test = next((path / name for name in ("val", "test") if (path / name).is_dir()), None)
    if not train.is_dir() or test is None:
        missing = [name for name, ok in (("train/", train.is_dir()), ("val/ (or test/)", test is not None)) if not ok]
        raise DatasetError(
            f"imagefolder dataset not found at {str(path)!r} (missing: {', '.join(missing)}): an image folder "
            "cannot be downloaded (`download: true` applies only to "
            f"{', '.join(DOWNLOADABLE)}); point `root:` at a directory with train/ and val/ (or test/), each "
            "holding one sub-folder of images per class"
        )
    return train, test


def _open_imagefolder(split: Path, loader: Callable[[str], Any]) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(split), loader=loader)
    except (OSError, ValueError) as err:  # no class folders, or a class folder without images
        raise _folder_error("imagefolder", split, err) from err


@register_source("imagefolder")
def load_imagefolder(root: str | None = None, image_size: int = 160, download: bool = False, **_: Any) -> ImageData:
    """Your own images in torchvision's ImageFolder layout: ``root/{train,val}/<class>/<image>``.

    Class labels follow the sorted names of ``train/``'s sub-folders; ``test/`` is used when there is no
    ``val/``. The test split may lack some classes, but may not add new ones.

    Args:
        root: directory with ``train/`` and ``val/`` (or ``test/``).
        image_size: side of the square uint8 images after resizing the shorter side and centre cropping.
        download: must stay false (accepted only to give a clear error).

    Returns:
        The dataset as uint8 N×3×image_size×image_size tensors; class names are the folder names.

    Raises:
        DatasetError: folders missing or empty, a test class unknown to train, or an undecodable image.
    """
    train_dir, test_dir = _imagefolder_splits(root, download)
    side = _check_image_size("imagefolder", image_size)
    loader = functools.partial(read_square_image, image_size=side)
    train = _open_imagefolder(train_dir, loader)
    test = _open_imagefolder(test_dir, loader)
    x_train, y_train = _stack(train, side)
    x_test, y_test = _stack(test, side)
    y_test = _align("imagefolder", list(train.classes), list(test.classes), y_test)
    return ImageData(x_train, y_train, x_test, y_test, list(train.classes))


@register_counter("imagefolder")
def _count_imagefolder(root: str | None = None, download: bool = False, **_: Any) -> np.ndarray:
    train_dir, _test_dir = _imagefolder_splits(root, download)
    train = _open_imagefolder(train_dir, loader=str)  # file discovery only, nothing is decoded
    return np.bincount(np.asarray(train.targets, dtype=np.int64), minlength=len(train.classes))
