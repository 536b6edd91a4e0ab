"""Data sets of the training subpackage: one :class:`Sample` format for every source.

The loaders (``torch.utils.data.Dataset`` of :class:`Sample`, pure numpy until
:func:`collate`) are the entries of the one table, :data:`~training.data.registry.DATASET_SPECS`:
a recipe selects one by name (``data.dataset``) and :func:`make_dataset` builds it; this package
also exports each loader class by its class name (``training.data.NYUDepthV2Dataset``, ...),
looked up in the same table. ``python -c "import training.data as d; print(d.DATASETS)"``
lists the names.

The loader modules are imported on first use so that ``import training.data`` needs neither
h5py, scipy nor rosbags.
"""

from __future__ import annotations

from typing import Any

from training.data.augment import SeededAugmentation, training_augmentations
from training.data.base import CorruptSampleError, SampleDataset, class_names_of
from training.data.registry import (
    DATASET_SPECS,
    DATASETS,
    DatasetSpec,
    data_depth_range,
    family_for_classes,
    get_dataset_spec,
    list_datasets,
    make_dataset,
)
from training.data.robust import SkipCorrupt
from training.data.sample import (
    IGNORE_LABEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Sample,
    collate,
    make_collate,
    relative_pose,
)

# Loader class name -> its table entry (one table: the registry's).
_LOADERS = {spec.class_name: spec for spec in DATASET_SPECS}

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "IGNORE_LABEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptSampleError",
    "DatasetSpec",
    "Sample",
    "SampleDataset",
    "SeededAugmentation",
    "SkipCorrupt",
    "class_names_of",
    "collate",
    "data_depth_range",
    "family_for_classes",
    "get_dataset_spec",
    "list_datasets",
    "make_collate",
    "make_dataset",
    "relative_pose",
    "training_augmentations",
    *_LOADERS,
]


def __getattr__(name: str) -> Any:
    if name in _LOADERS:
        return _LOADERS[name].load_class()
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")
