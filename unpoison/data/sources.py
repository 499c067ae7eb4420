"""Dataset sources: scikit-learn digits (embedded default) and generic ``.npz`` arrays.

Torchvision sources (CIFAR-10/100, Imagenette, ImageFolder) register themselves from
:mod:`unpoison.data.torchvision_sources`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unpoison.data.core import DatasetError, ImageData

Loader = Callable[..., ImageData]
Counter = Callable[..., np.ndarray | None]
SOURCES: dict[str, Loader] = {}
COUNTERS: dict[str, Counter] = {}


def register_source(name: str) -> Callable[[Loader], Loader]:
    """Decorator adding a loader ``f(**settings) -> ImageData`` to :data:`SOURCES`."""

    def deco(fn: Loader) -> Loader:
        SOURCES[name] = fn
        return fn

    return deco


def register_counter(name: str) -> Callable[[Counter], Counter]:
    """Decorator adding a cheap per-class train counter ``f(**settings) -> counts | None`` to :data:`COUNTERS`.

    A counter raises :class:`DatasetError` when the data is missing and cannot be fetched, and returns
    ``None`` when it cannot count yet (e.g. the files will be downloaded by the prepare rule).
    """

    def deco(fn: Counter) -> Counter:
        COUNTERS[name] = fn
        return fn

    return deco


def _nhwc_to_tensor(x: np.ndarray, key: str, where: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise DatasetError(f"{where}: array {key!r} must be uint8 (0..255), got {x.dtype}")
    if x.ndim == 3:  # N×H×W grayscale
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{where}: array {key!r} must be N×H×W×C (or N×H×W), got shape {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@register_source("sklearn_digits")
def load_sklearn_digits(test_fraction: float = 0.2, split_seed: int = 0, **_: Any) -> ImageData:
    """scikit-learn's 1,797 8×8 handwritten digits (ships with the package: no download).

    Pixels 0..16 are rescaled to uint8 0..255; the train/test split is stratified by class and fixed by
    ``split_seed`` (independent of the experiment seed, so every seed shares one clean dataset).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )
    return ImageData(
        _nhwc_to_tensor(x_tr, "x_train", "sklearn_digits"),
        torch.from_numpy(y_tr),
        _nhwc_to_tensor(x_te, "x_test", "sklearn_digits"),
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


@register_source("npz")
def load_npz(path: str | None = None, **_: Any) -> ImageData:
    """A user's own arrays: ``x_train``/``x_test`` uint8 N×H×W×C, ``y_train``/``y_test`` integers,
    optional ``classes`` (names in label order)."""
    p = _check_npz_path(path)
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise DatasetError(f"{p}: missing arrays {missing}; a dataset .npz needs {list(NPZ_KEYS)}")
        classes = [str(c) for c in z["classes"]] if "classes" in z.files else []
        return ImageData(
            _nhwc_to_tensor(z["x_train"], "x_train", str(p)),
            torch.from_numpy(z["y_train"].astype(np.int64)),
            _nhwc_to_tensor(z["x_test"], "x_test", str(p)),
            torch.from_numpy(z["y_test"].astype(np.int64)),
            classes,
        )


def load_dataset(settings: dict[str, Any]) -> ImageData:
    """Load the dataset described by one ``dataset_settings`` entry (``source`` picks the loader)."""
    source = settings.get("source")
    if source not in SOURCES:
        raise DatasetError(f"dataset source {source!r} is unknown; choose one of {sorted(SOURCES)}")
    kwargs = {k: v for k, v in settings.items() if k != "source"}
    return SOURCES[source](**kwargs)


def train_class_counts(settings: dict[str, Any]) -> np.ndarray | None:
    """Per-class training-set sizes, cheaply where possible (used to validate poison counts before any job).

    Dispatches to the source's counter in :data:`COUNTERS`.

    Args:
        settings: one ``dataset_settings`` entry restricted to the loader's keys (``source``, ``path``, ...).

    Returns:
        Counts indexed by label, or ``None`` for sources that cannot count cheaply, or whose files are
        missing but will be downloaded (they are checked when poisoning).

    Raises:
        DatasetError: the dataset is missing (and will not be downloaded) or malformed.
    """
    counter = COUNTERS.get(settings.get("source"))  # type: ignore[arg-type]
    if counter is None:
        return None
    return counter(**{k: v for k, v in settings.items() if k != "source"})


@register_counter("npz")
def _count_npz(path: str | None = None, **_: Any) -> np.ndarray:
    p = _check_npz_path(path)
    with np.load(p, allow_pickle=False) as z:
        if "y_train" not in z.files:
            raise DatasetError(f"{p}: missing array 'y_train'")
        return np.bincount(z["y_train"].astype(np.int64))


@register_counter("sklearn_digits")
def _count_sklearn_digits(**settings: Any) -> np.ndarray:
    return np.bincount(load_sklearn_digits(**settings).y_train.numpy())
