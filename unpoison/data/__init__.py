"""Datasets: every source yields an :class:`ImageData` of uint8 NCHW images and int64 labels.

Images stay uint8 (0..255) until a model's own normalisation layer; :func:`to_float` maps them to [0, 1].
Sources are a registry (:data:`SOURCES`): add a loader function and one entry (and, optionally, a cheap
per-class counter in :data:`COUNTERS` so poison counts are checked before any job).
"""

from unpoison.data.core import ImageData, DatasetError, to_float, TensorDataset01
from unpoison.data.sources import COUNTERS, SOURCES, load_dataset, register_counter, register_source, train_class_counts
from unpoison.data import torchvision_sources as _torchvision_sources  # noqa: F401  (registers cifar10, cifar100, imagenette, imagefolder)

__all__ = [
    "ImageData",
    "DatasetError",
    "to_float",
    "TensorDataset01",
    "SOURCES",
    "COUNTERS",
    "register_source",
    "register_counter",
    "load_dataset",
    "train_class_counts",
]
