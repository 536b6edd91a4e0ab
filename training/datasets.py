"""Building the data sets a :class:`~training.config.DataConfig` describes.

One factory for the trainer, ``depth-perception eval`` and the teacher, so every tool reads the
same data the same way. ``synthetic`` renders the procedural worlds of
``depth_perception.synthetic`` at exactly the network input size; the on-disk data sets of
``training.data`` are built from ``data.options`` (their constructor arguments, e.g.
``mat_path`` for NYU) and resized to the input size.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from training.config import DataConfig

# name -> "module:Class" of the on-disk loaders (imported lazily; some need h5py).
_DISK_DATASETS: dict[str, str] = {
    "nyu_depth_v2": "training.data.nyu:NYUDepthV2Dataset",
    "kitti_depth": "training.data.kitti:KittiDepthDataset",
    "kitti_selection": "training.data.kitti:KittiSelectionDataset",
    "cityscapes": "training.data.cityscapes:CityscapesDataset",
    "sunrgbd": "training.data.sunrgbd:SunRGBDDataset",
    "kitti_raw": "training.data.kitti:KittiRawSequenceDataset",
}
# Rendered on the fly: single frames, and frames with neighbours + exact poses (self-supervised).
_SYNTHETIC_DATASETS: tuple[str, ...] = ("synthetic", "synthetic_sequence")
DATASETS: tuple[str, ...] = (*_SYNTHETIC_DATASETS, *_DISK_DATASETS)


def family_for_classes(class_names: Sequence[str]) -> str | None:
    """The synthetic family whose classes are ``class_names``, or None."""
    from depth_perception.synthetic.classes import FAMILIES, classes_for

    for family in FAMILIES:
        if tuple(classes_for(family)[0]) == tuple(class_names):
            return family
    return None


def data_depth_range(cfg: DataConfig) -> tuple[float, float] | None:
    """Nominal (min, max) depth of the data in metres, when the data set defines one."""
    if cfg.dataset in _SYNTHETIC_DATASETS:
        from depth_perception.synthetic.randomized import depth_range_for

        # data.options.domain: default | randomized (the randomised world reaches nearer)
        return depth_range_for(cfg.family, str(cfg.options.get("domain", "default")))
    return None


def training_augmentations(cfg: DataConfig) -> list[Callable]:
    """Random crop (``random_crop``), flips and photometric jitter of the training split."""
    from training.data import augment

    transforms: list[Callable] = []
    if cfg.random_crop is not None:
        transforms.append(augment.RandomCrop(*cfg.random_crop))
    if cfg.augment:
        transforms += [augment.RandomHorizontalFlip(0.5), augment.ColorJitter()]
    return transforms


class SeededAugmentation(Dataset):
    """Applies random transforms with a generator seeded by ``(seed, epoch, index)``.

    Each sample's augmentation is then a function of the sample and the epoch alone, not of
    the DataLoader worker that loads it or of how many samples that worker loaded before, so a
    resumed run sees exactly the data an uninterrupted one would. Call :meth:`set_epoch` before
    each epoch (before the DataLoader starts its workers).

    Args:
        dataset: The un-augmented data set.
        transforms: ``training.data.augment`` transforms; random ones get the explicit ``rng``.
        seed: Run seed.
    """

    def __init__(self, dataset: Dataset, transforms: Sequence[Callable], seed: int) -> None:
        self.dataset = dataset
        self.transforms = list(transforms)
        self.seed = int(seed)
        self.epoch = 0
        self.class_names = class_names_of(dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        from training.data.augment import RandomTransform

        sample = self.dataset[index]
        if not self.transforms:
            return sample
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))
        for t in self.transforms:
            sample = t(sample, rng) if isinstance(t, RandomTransform) else t(sample)
        return sample


def make_dataset(
    cfg: DataConfig,
    split: str,
    *,
    length: int | None = None,
) -> Dataset:
    """The (un-augmented) data set of ``split`` at the network input size.

    Training augmentation is added by the trainer with :class:`SeededAugmentation`.

    Args:
        cfg: Data configuration.
        split: Split name (``train``, ``val``, ``test``).
        length: Use only the first ``length`` samples (None: all).

    Raises:
        ValueError: unknown data set name, or options its constructor does not take.
    """
    if cfg.dataset in _SYNTHETIC_DATASETS:
        from training.data.synthetic import SyntheticDataset, SyntheticSequenceDataset

        options = dict(cfg.options)
        frames = int(options.pop("frames_per_scene", 8))
        if length is not None and "num_scenes" not in options:
            options["num_scenes"] = max(1, math.ceil(length / frames))
        synthetic_cls = (
            SyntheticSequenceDataset if cfg.dataset == "synthetic_sequence" else SyntheticDataset
        )
        dataset = synthetic_cls(
            family=cfg.family,
            split=split,
            width=cfg.width,
            height=cfg.height,
            frames_per_scene=frames,
            **options,
        )
    elif cfg.dataset in _DISK_DATASETS:
        import importlib

        module, cls_name = _DISK_DATASETS[cfg.dataset].split(":")
        cls = getattr(importlib.import_module(module), cls_name)
        params = inspect.signature(cls).parameters
        # "{split}" in a string option names a per-split file, e.g. kitti_raw's
        # split_file: splits/eigen_zhou/{split}_files.txt
        kwargs: dict[str, Any] = {
            k: v.replace("{split}", split) if isinstance(v, str) else v
            for k, v in cfg.options.items()
        }
        if cfg.root is not None:
            first = next(iter(params))
            kwargs.setdefault(first, cfg.root)
        if "split" in params:
            kwargs["split"] = split
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"data set {cfg.dataset!r} does not take {unknown}; its arguments: "
                f"{', '.join(p for p in params if p != 'transform')}"
            )
        from training.data.augment import Resize

        dataset = cls(**kwargs, transform=Resize(cfg.width, cfg.height))
    else:
        raise ValueError(f"unknown data set {cfg.dataset!r}; available: {', '.join(DATASETS)}")
    if cfg.pseudo_labels and split == cfg.train_split:
        from training.teacher import PseudoLabelDataset

        dataset = PseudoLabelDataset(dataset, cfg.pseudo_labels)
    if length is not None and length < len(dataset):
        subset = Subset(dataset, range(int(length)))
        subset.class_names = dataset.class_names  # type: ignore[attr-defined]
        return subset
    return dataset


def class_names_of(dataset: Dataset) -> tuple[str, ...]:
    """``class_names`` of a data set or of the data set inside a Subset."""
    while not hasattr(dataset, "class_names") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return tuple(getattr(dataset, "class_names", ()))


def make_collate(mean: Sequence[float], std: Sequence[float], keep_raw: bool = False) -> Callable:
    """``training.data.collate`` with the model's normalisation fixed.

    ``keep_raw`` adds the [0, 1] images photometric (self-supervised) losses need.
    """
    from training.data.sample import collate

    return partial(collate, mean=tuple(mean), std=tuple(std), keep_raw=keep_raw)
