"""Datasets: every source yields an :class:`ImageData` of uint8 NCHW images and int64 labels.

Images stay uint8 (0..255) until a model's own normalisation layer; :func:`to_float` maps them to [0, 1].
Sources are a registry (:data:`SOURCES`): add a loader function and one entry.
"""

from unpoison.data.core import ImageData, DatasetError, to_float, TensorDataset01
from unpoison.data.sources import SOURCES, load_dataset, train_class_counts

__all__ = [
    "ImageData",
    "DatasetError",
    "to_float",
    "TensorDataset01",
    "SOURCES",
    "load_dataset",
    "train_class_counts",
]
