"""Dataset sources: scikit-learn digits (embedded default) and generic ``.npz`` arrays.

Torchvision sources (CIFAR-10/100, Imagenette, ImageFolder) register themselves from
:mod:`unpoison.data.torchvision_sources`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unpoison.data.core import DatasetError, DatasetInfo, ImageData

Loader = Callable[..., ImageData]
Describer = Callable[..., DatasetInfo | None]
SOURCES: dict[str, Loader] = {}
DESCRIBERS: dict[str, Describer] = {}


def register_source(name: str) -> Callable[[Loader], Loader]:
    """Decorator adding a loader ``f(**settings) -> ImageData`` to :data:`SOURCES`.

    The loader's keyword parameters ARE the source's settings: the config check rejects any other key, so
    give every parameter a type annotation and a default, and no ``**kwargs``.
    """

    def deco(fn: Loader) -> Loader:
        SOURCES[name] = fn
        return fn

    return deco


def register_describer(name: str) -> Callable[[Describer], Describer]:
    """Decorator adding a cheap ``f(**settings) -> DatasetInfo | None`` to :data:`DESCRIBERS`.

    A describer raises :class:`DatasetError` when the data is missing (and cannot be fetched) or malformed,
    and returns ``None`` (or a partial :class:`DatasetInfo`) when it cannot look yet, e.g. files that the
    prepare rule will download. Sources without one are loaded in full to be described.
    """

    def deco(fn: Describer) -> Describer:
        DESCRIBERS[name] = fn
        return fn

    return deco


def nhwc_to_tensor(x: np.ndarray, key: str, where: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise DatasetError(f"{where}: array {key!r} must be uint8 (0..255), got {x.dtype}")
    if x.ndim == 3:  # N×H×W grayscale
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{where}: array {key!r} must be N×H×W×C (or N×H×W), got shape {x.shape}")
    if x.shape[-1] not in (1, 3):
        hint = (
            "; it looks like N×C×H×W: store it as N×H×W×C (x.transpose(0, 2, 3, 1))"
            if x.shape[1] in (1, 3)
            else "; only 1 (grayscale) or 3 (RGB) channels are supported"
        )
        raise DatasetError(
            f"{where}: array {key!r} of shape {x.shape} has {x.shape[-1]} channels in its last axis{hint}"
        )
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def labels_to_tensor(y: np.ndarray, key: str, where: str) -> torch.Tensor:
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)):
        raise DatasetError(
            f"{where}: array {key!r} must be a 1-D array of integer class labels, got {y.dtype} of shape {y.shape}"
        )
    return torch.from_numpy(y.astype(np.int64))


@register_source("sklearn_digits")
def load_sklearn_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 8×8 handwritten digits (ships with the package: no download).

    Pixels 0..16 are rescaled to uint8 0..255; the train/test split is stratified by class and fixed by
    ``split_seed`` (independent of the experiment seed, so every seed shares one clean dataset).

    Args:
        test_fraction: stratified share of the 1,797 images held out for testing (0.2: 360 images). Range:
            0.05 to 0.5.
        split_seed: seed of the train/test split, shared by every experiment seed. Range: ≥ 0.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.05 <= test_fraction <= 0.5:
        raise DatasetError(
            f"sklearn_digits: test_fraction {test_fraction!r} must be between 0.05 and 0.5 (at least ~90 test images)"
        )
    if split_seed < 0:
        raise DatasetError(f"sklearn_digits: split_seed {split_seed!r} must be ≥ 0")

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    return ImageData(
        nhwc_to_tensor(x_tr, "x_train", "sklearn_digits"),
        torch.from_numpy(y_tr),
        nhwc_to_tensor(x_te, "x_test", "sklearn_digits"),
        torch.from_numpy(y_te),
        [str(c) for c in digits.target_names],
    )


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_npz_path(path: str | None) -> Path:
    if not path:
        raise DatasetError("source npz needs a `path:` to a .npz file with x_train, y_train, x_test, y_test")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(
            f"npz dataset not found at {str(p.resolve())!r}: set the dataset's `path:` in the config "
            "(e.g. --config 'dataset_settings={...}') to a .npz with uint8 NHWC x_train/x_test and integer "
            "y_train/y_test"
        )
    return p


def _read_npz(p: Path) -> ImageData:
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise DatasetError(f"{p}: missing arrays {missing}; a dataset .npz needs {list(NPZ_KEYS)}")
        classes = [str(c) for c in z["classes"]] if "classes" in z.files else []
        try:
            return ImageData(
                nhwc_to_tensor(z["x_train"], "x_train", str(p)),
                labels_to_tensor(z["y_train"], "y_train", str(p)),
                nhwc_to_tensor(z["x_test"], "x_test", str(p)),
                labels_to_tensor(z["y_test"], "y_test", str(p)),
                classes,
            )
        except DatasetError as err:
            msg = str(err)
            raise (err if msg.startswith(str(p)) else DatasetError(f"{p}: {msg}")) from None


@register_source("npz")
def load_npz(path: str | None = None) -> ImageData:
    """A user's own arrays: ``x_train``/``x_test`` uint8 N×H×W×C (or N×H×W), ``y_train``/``y_test`` integer
    labels 0..K−1, optional ``classes`` (K names in label order).

    Args:
        path: the ``.npz`` file holding ``x_train``, ``y_train``, ``x_test``, ``y_test`` (docs/datasets.md).
            Range: required; the file must exist and be readable (checked before any job).

    Raises:
        DatasetError: the file is missing, unreadable (truncated, not a .npz, pickled objects) or its arrays
            have the wrong keys, dtypes, shapes, channel counts or label ranges; the message names the file.
    """
    p = _check_npz_path(path)
    try:
        return _read_npz(p)
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise DatasetError(
            f"{p}: unreadable as a .npz dataset ({type(err).__name__}: {err}); the file is truncated, corrupted or "
            "not written by numpy.savez — re-create it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from err


def load_dataset(settings: dict[str, Any]) -> ImageData:
    """Load the dataset described by one ``dataset_settings`` entry (``source`` picks the loader)."""
    source = settings.get("source")
    if source not in SOURCES:
        raise DatasetError(f"dataset source {source!r} is unknown; choose one of {sorted(SOURCES)}")
    kwargs = {k: v for k, v in settings.items() if k != "source"}
    return SOURCES[source](**kwargs)


def describe_dataset(settings: dict[str, Any]) -> DatasetInfo | None:
    """Image shape and per-class counts of both splits, cheaply where the source allows.

    Used to validate a config before any job (poison counts vs class sizes, triggers vs image size, queries
    vs affected test images). Sources without a describer are loaded in full, which also validates them.

    Args:
        settings: one ``dataset_settings`` entry restricted to the loader's keys (``source``, ``path``, ...).

    Returns:
        The dataset's :class:`DatasetInfo` (some fields ``None`` when unknown), or ``None`` when nothing can
        be known yet (files that the prepare rule will download).

    Raises:
        DatasetError: the dataset is missing (and will not be downloaded) or malformed.
    """
    source = settings.get("source")
    kwargs = {k: v for k, v in settings.items() if k != "source"}
    describer = DESCRIBERS.get(source)  # type: ignore[arg-type]
    if describer is not None:
        return describer(**kwargs)
    return load_dataset(settings).info()
