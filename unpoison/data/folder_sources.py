"""Folder-backed sources through torchvision: Imagenette and any ImageFolder tree.

Images are decoded with PIL, resized so the shorter side is ``image_size`` and centre-cropped to a square
(uint8 N×3×S×S in memory: Imagenette at 160 px is about 1 GB). Settings are documented in
:mod:`unpoison.data.torchvision_sources`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unpoison.data.core import DatasetError, DatasetInfo, ImageData
from unpoison.data.sources import register_describer, register_source
from unpoison.data.torchvision_sources import (
    DOWNLOADABLE,
    check_image_size,
    class_counts,
    dataset_root,
    download_failed,
    not_found,
)

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
    raise not_found(
        "imagenette", folder, missing, root, f"{folder.name}/ with train/ and val/ (one folder per WordNet id)"
    )


def _open_imagenette(root: Path, split: str, size: str, download: bool, loader: Callable[[str], Any]) -> Any:
    from torchvision.datasets import Imagenette

    present = _imagenette_present(root, size, download)
    try:  # torchvision downloads only when the variant's folder is absent
        return Imagenette(str(root), split=split, size=size, download=download, loader=loader)
    except KeyError as err:  # a folder that is not one of Imagenette's ten WordNet ids
        raise _folder_error("imagenette", root, KeyError(f"unknown WordNet id {err}")) from err
    except (OSError, RuntimeError, ValueError) as err:
        if not present:
            raise download_failed("imagenette", root, err) from err
        raise _folder_error("imagenette", root, err) from err


@register_source("imagenette")
def load_imagenette(
    root: str | None = None, download: bool = False, size: int | str = 160, image_size: int = 160
) -> ImageData:
    """Imagenette: 10 easy ImageNet classes (9,469 train and 3,925 val images), via torchvision.

    Args:
        root: directory holding ``imagenette2-160/`` (``imagenette2-320/`` or ``imagenette2/`` for other
            sizes), or receiving it when ``download`` is true. Range: required (a path).
        download: fetch the archive (94 MB for the 160-px variant) when files are missing.
        size: which published variant to read: its shorter side in pixels, or "full". Range: 160, 320 or "full".
        image_size: side of the square uint8 images after resizing the shorter side and centre cropping. Range:
            ≥ 1 pixel.

    Returns:
        The dataset as uint8 N×3×image_size×image_size tensors; class names are the common names
        ("tench", "English springer", ...) in WordNet-id order.

    Raises:
        DatasetError: files missing with ``download: false``, unreadable, or the download failed.
    """
    path = dataset_root("imagenette", root)
    variant = _imagenette_size(size)
    side = check_image_size("imagenette", image_size)
    loader = functools.partial(read_square_image, image_size=side)
    train = _open_imagenette(path, "train", variant, download, loader)
    test = _open_imagenette(path, "val", variant, False, loader)
    x_train, y_train = _stack(train, side)
    x_test, y_test = _stack(test, side)
    y_test = _align("imagenette", list(train.wnids), list(test.wnids), y_test)
    return ImageData(x_train, y_train, x_test, y_test, [str(names[0]) for names in train.classes])


@register_describer("imagenette")
def _describe_imagenette(
    root: str | None = None, download: bool = False, size: int | str = 160, image_size: int = 160
) -> DatasetInfo:
    path = dataset_root("imagenette", root)
    variant = _imagenette_size(size)
    shape = (3, check_image_size("imagenette", image_size), image_size)
    if not _imagenette_present(path, variant, download):
        return DatasetInfo(shape)
    # loader=str: file paths only, nothing is decoded
    train = _open_imagenette(path, "train", variant, False, loader=str)
    test = _open_imagenette(path, "val", variant, False, loader=str)
    k = len(train.classes)
    labels = [[ds[i][1] for i in range(len(ds))] for ds in (train, test)]  # loader=str makes this cheap
    y_test = _align("imagenette", list(train.wnids), list(test.wnids), torch.as_tensor(labels[1], dtype=torch.int64))
    return DatasetInfo(shape, class_counts(labels[0], k), class_counts(y_test.numpy(), k))


# ---- ImageFolder ----------------------------------------------------------------------------------


def _imagefolder_splits(root: str | None, download: bool) -> tuple[Path, Path]:
    path = dataset_root("imagefolder", root)
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
def load_imagefolder(root: str | None = None, image_size: int = 160, download: bool = False) -> ImageData:
    """Your own images in torchvision's ImageFolder layout: ``root/{train,val}/<class>/<image>``.

    Class labels follow the sorted names of ``train/``'s sub-folders; ``test/`` is used when there is no
    ``val/``. The test split may lack some classes, but may not add new ones.

    Args:
        root: directory with ``train/`` and ``val/`` (or ``test/``), one sub-folder per class. Range: required
            (a path).
        image_size: side of the square uint8 images after resizing the shorter side and centre cropping. Range:
            ≥ 1 pixel.
        download: accepted only to give a clear error: there is nothing to download. Range: false.

    Returns:
        The dataset as uint8 N×3×image_size×image_size tensors; class names are the folder names.

    Raises:
        DatasetError: folders missing or empty, a test class unknown to train, or an undecodable image.
    """
    train_dir, test_dir = _imagefolder_splits(root, download)
    side = check_image_size("imagefolder", image_size)
    loader = functools.partial(read_square_image, image_size=side)
    train = _open_imagefolder(train_dir, loader)
    test = _open_imagefolder(test_dir, loader)
    x_train, y_train = _stack(train, side)
    x_test, y_test = _stack(test, side)
    y_test = _align("imagefolder", list(train.classes), list(test.classes), y_test)
    return ImageData(x_train, y_train, x_test, y_test, list(train.classes))


@register_describer("imagefolder")
def _describe_imagefolder(root: str | None = None, image_size: int = 160, download: bool = False) -> DatasetInfo:
    train_dir, test_dir = _imagefolder_splits(root, download)
    side = check_image_size("imagefolder", image_size)
    train = _open_imagefolder(train_dir, loader=str)  # file discovery only, nothing is decoded
    test = _open_imagefolder(test_dir, loader=str)
    k = len(train.classes)
    y_test = _align(
        "imagefolder", list(train.classes), list(test.classes), torch.as_tensor(test.targets, dtype=torch.int64)
    )
    return DatasetInfo((3, side, side), class_counts(train.targets, k), class_counts(y_test.numpy(), k))
