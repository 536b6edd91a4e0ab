"""Data sets of the training subpackage: one :class:`Sample` format for every source.

The loaders (``torch.utils.data.Dataset`` of :class:`Sample`, pure numpy until
:func:`collate`) are the entries of the one table, :data:`~training.data.registry.DATASET_SPECS`:
a recipe selects one by name (``data.dataset``) and :func:`make_dataset` builds it; this package
also exports each loader class by its class name (``training.data.NYUDepthV2Dataset``, ...),
looked up in the same table. ``python -c "import training.data as d; print(d.DATASETS)"``
lists the names.

Every module is imported on first use: ``import training.data`` needs neither torch, cv2,
h5py, scipy nor rosbags, so the command line can offer the table's names cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

from training.data.registry import DATASET_SPECS, DATASETS

# Everything is imported on first use, so that ``import training.data.registry`` (the table,
# which the command line's argparse choices read) costs neither torch nor cv2.
_EXPORTS = {
    "BatchAspect": "training.data.augment",
    "ObjectPaste": "training.data.augment",
    "SeededAugmentation": "training.data.augment",
    "thing_class_ids": "training.data.augment",
    "training_augmentations": "training.data.augment",
    "CorruptSampleError": "training.data.base",
    "SampleDataset": "training.data.base",
    "class_names_of": "training.data.base",
    "DatasetSpec": "training.data.registry",
    "data_depth_range": "training.data.registry",
    "family_for_classes": "training.data.registry",
    "get_dataset_spec": "training.data.registry",
    "list_datasets": "training.data.registry",
    "make_dataset": "training.data.registry",
    "SkipCorrupt": "training.data.robust",
    "IGNORE_LABEL": "training.data.sample",
    "IMAGENET_MEAN": "training.data.sample",
    "IMAGENET_STD": "training.data.sample",
    "Sample": "training.data.sample",
    "collate": "training.data.sample",
    "make_collate": "training.data.sample",
    "relative_pose": "training.data.sample",
}
# Loader class name -> its table entry (one table: the registry's).
_LOADERS = {spec.class_name: spec for spec in DATASET_SPECS}

__all__ = ["DATASETS", "DATASET_SPECS", *_EXPORTS, *_LOADERS]


def __getattr__(name: str) -> Any:
    if name in _LOADERS:
        return _LOADERS[name].load_class()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")
