"""Datasets: every source yields an :class:`ImageData` of uint8 NCHW images and int64 labels.

Images stay uint8 (0..255) until a model's own normalisation layer; :func:`to_float` maps them to [0, 1].
Sources are a registry (:data:`SOURCES`): add a loader function and one entry (and, optionally, a cheap
describer in :data:`DESCRIBERS` so the config is checked against the data's shape and class sizes before
any job without loading every image).
"""

from unpoison.data import folder_sources as _folder_sources  # noqa: F401  (registers imagenette, imagefolder)
from unpoison.data import torchvision_sources as _torchvision_sources  # noqa: F401  (registers cifar10, cifar100)
from unpoison.data.core import DatasetError, DatasetInfo, ImageData, TensorDataset01, to_float
from unpoison.data.sources import (
    DESCRIBERS,
    SOURCES,
    describe_dataset,
    load_dataset,
    register_describer,
    register_source,
)

__all__ = [
    "ImageData",
    "DatasetError",
    "to_float",
    "TensorDataset01",
    "DatasetInfo",
    "SOURCES",
    "DESCRIBERS",
    "register_source",
    "register_describer",
    "load_dataset",
    "describe_dataset",
]
