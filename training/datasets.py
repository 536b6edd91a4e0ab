"""Former home of the data set factory; kept so existing imports keep working.

The one data set table and :func:`make_dataset` live in :mod:`training.data.registry`; the
augmentation wrapper in :mod:`training.data.augment` and :func:`make_collate` in
:mod:`training.data.sample`. Import them from ``training.data``; this module only re-exports
them and will go once nothing imports it.
"""

from training.data.augment import SeededAugmentation, training_augmentations
from training.data.base import class_names_of
from training.data.registry import (
    DATASETS,
    data_depth_range,
    family_for_classes,
    make_dataset,
)
from training.data.sample import make_collate

__all__ = [
    "DATASETS",
    "SeededAugmentation",
    "class_names_of",
    "data_depth_range",
    "family_for_classes",
    "make_collate",
    "make_dataset",
    "training_augmentations",
]
