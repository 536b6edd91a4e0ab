"""Data sets of the training subpackage: one :class:`Sample` format for every source.

Loaders (all ``torch.utils.data.Dataset`` of :class:`Sample`, pure numpy until
:func:`collate`):

* :class:`~training.data.nyu.NYUDepthV2Dataset` (h5py), KITTI
  (:class:`~training.data.kitti.KittiDepthDataset`,
  :class:`~training.data.kitti.KittiSelectionDataset`,
  :class:`~training.data.kitti.KittiRawSequenceDataset`),
  :class:`~training.data.sunrgbd.SunRGBDDataset`,
  :class:`~training.data.cityscapes.CityscapesDataset`,
  :class:`~training.data.synthetic.SyntheticDataset` /
  :class:`~training.data.synthetic.SyntheticSequenceDataset`,
  :class:`~training.data.rosbag.RosbagDataset` (rosbags),
  :class:`~training.data.middlebury.MiddleburyDataset` /
  :class:`~training.data.middlebury.MiddleburySkimageDataset` (real-image benchmark).

The loader modules are imported on first use so that ``import training.data`` needs neither
h5py, scipy nor rosbags.
"""

from __future__ import annotations

import importlib
from typing import Any

from training.data.base import CorruptSampleError, SampleDataset
from training.data.robust import SkipCorrupt
from training.data.sample import (
    IGNORE_LABEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Sample,
    collate,
    relative_pose,
)

_LAZY = {
    "NYUDepthV2Dataset": "training.data.nyu",
    "KittiDepthDataset": "training.data.kitti",
    "KittiSelectionDataset": "training.data.kitti",
    "KittiRawSequenceDataset": "training.data.kitti",
    "SunRGBDDataset": "training.data.sunrgbd",
    "CityscapesDataset": "training.data.cityscapes",
    "SyntheticDataset": "training.data.synthetic",
    "SyntheticSequenceDataset": "training.data.synthetic",
    "RosbagDataset": "training.data.rosbag",
    "MiddleburyDataset": "training.data.middlebury",
    "MiddleburySkimageDataset": "training.data.middlebury",
}

__all__ = [
    "IGNORE_LABEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptSampleError",
    "Sample",
    "SampleDataset",
    "SkipCorrupt",
    "collate",
    "relative_pose",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")
