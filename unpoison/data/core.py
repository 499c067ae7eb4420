"""The in-memory dataset type shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class DatasetError(ValueError):
    """A dataset could not be found or has the wrong format; the message says where and how to fix it."""


@dataclass
class DatasetInfo:
    """What the config checks need to know about a dataset before any job runs.

    Fields are ``None`` when they cannot be known cheaply yet (e.g. files that the prepare rule will download).
    """

    image_shape: tuple[int, int, int] | None = None  # C, H, W
    train_counts: np.ndarray | None = None  # training images per class, indexed by label
    test_counts: np.ndarray | None = None  # test images per class


@dataclass
class ImageData:
    """Train and test images (uint8, N×C×H×W) with int64 labels and class names."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("x_train", "x_test"):
            x = getattr(self, name)
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise DatasetError(f"{name} must be a uint8 N×C×H×W tensor, got {x.dtype} of shape {tuple(x.shape)}")
            if len(x) == 0:
                raise DatasetError(f"{name} is empty: both splits need at least one image")
            if x.shape[1] not in (1, 3):
                raise DatasetError(f"{name} has {x.shape[1]} channels; only 1 (grayscale) or 3 (RGB) are supported")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(
                f"x_train images are {tuple(self.x_train.shape[1:])} (C×H×W) but x_test images are "
                f"{tuple(self.x_test.shape[1:])}: both splits must have one image shape"
            )
        for name in ("y_train", "y_test"):
            y = getattr(self, name)
            if y.dtype.is_floating_point or y.dtype == torch.bool or y.ndim != 1:
                raise DatasetError(
                    f"{name} must be a 1-D tensor of integer labels, got {y.dtype} of shape {tuple(y.shape)}"
                )
            setattr(self, name, y.to(torch.int64))
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise DatasetError(
                f"images and labels differ in length (train {len(self.x_train)} vs {len(self.y_train)}, "
                f"test {len(self.x_test)} vs {len(self.y_test)})"
            )
        low = int(min(self.y_train.min(), self.y_test.min()))
        if low < 0:
            raise DatasetError(f"labels must be ≥ 0 (class indices), found {low}")
        top = int(max(self.y_train.max(), self.y_test.max()))
        if not self.classes:
            self.classes = [str(i) for i in range(top + 1)]
        elif top >= len(self.classes):
            raise DatasetError(
                f"label {top} is out of range for the {len(self.classes)} class names given: labels must be "
                f"0..{len(self.classes) - 1}"
            )
        if len(self.classes) < 2:
            raise DatasetError(f"a classifier needs at least 2 classes, got {len(self.classes)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def info(self) -> DatasetInfo:
        """Shape and per-class counts of both splits."""
        k = self.num_classes
        return DatasetInfo(
            self.image_shape,
            np.bincount(self.y_train.numpy(), minlength=k),
            np.bincount(self.y_test.numpy(), minlength=k),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of tensors and strings, loadable with ``torch.load(weights_only=True)``."""
        return {
            "x_train": self.x_train,
            "y_train": self.y_train,
            "x_test": self.x_test,
            "y_test": self.y_test,
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageData:
        return cls(d["x_train"], d["y_train"], d["x_test"], d["y_test"], list(d["classes"]))


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 in [0, 1] (no normalisation: models normalise themselves)."""
    return x.float().div_(255.0)


class TensorDataset01(Dataset):
    """(image in [0,1], label) pairs from uint8 image and label tensors; used by kronfluence loaders."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x = x
        self.y = y.to(torch.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        return (to_float(x) if x.dtype == torch.uint8 else x), self.y[i]
