"""The in-memory dataset type shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


class DatasetError(ValueError):
    """A dataset could not be found or has the wrong format; the message says where and how to fix it."""


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
        for name in ("y_train", "y_test"):
            setattr(self, name, getattr(self, name).to(torch.int64))
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise DatasetError("images and labels differ in length")
        if not self.classes:
            n = int(max(self.y_train.max(), self.y_test.max())) + 1
            self.classes = [str(i) for i in range(n)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

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
    def from_dict(cls, d: dict[str, Any]) -> "ImageData":
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
