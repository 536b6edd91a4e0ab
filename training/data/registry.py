"""The one table of data sets: a recipe's ``data.dataset`` name -> loader class.

Every tool (trainer, ``depth-perception eval``, the teacher) builds its data with
:func:`make_dataset`, so a loader in :data:`DATASET_SPECS` can be chosen by any recipe, and
``training.data`` exports the same classes by name. Adding a loader is one
:class:`DatasetSpec` line in :data:`DATASET_SPECS`; the loader is a
:class:`~training.data.base.SampleDataset` whose first argument is the path that
``data.root`` gives, which takes ``split`` if it has splits and ``transform``, and whose
other constructor arguments are ``data.options``.

Two kinds of entries:

* rendered (``synthetic``, ``synthetic_sequence``): procedural worlds drawn at exactly the
  network input size; ``data.family`` picks the world and gives the depth range;
* on disk (everything else): built from ``data.root`` + ``data.options``, then resized to the
  input size with :class:`~training.data.augment.Resize` (intrinsics follow). ``"{split}"`` in a
  string option is replaced by the split name, e.g. kitti_raw's
  ``split_file: splits/eigen_zhou/{split}_files.txt``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from training.config import DataConfig


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of the table.

    Attributes:
        name: The recipe's ``data.dataset``.
        loader: ``"module:Class"`` of the loader, imported on first use (some need h5py,
            scipy or rosbags, which ``import training.data`` must not).
        summary: One line for listings and error messages.
        rendered: Procedural data drawn at the input size (``data.family`` selects the world).
    """

    name: str
    loader: str
    summary: str
    rendered: bool = False

    @property
    def module(self) -> str:
        return self.loader.split(":")[0]

    @property
    def class_name(self) -> str:
        return self.loader.split(":")[1]

    def load_class(self) -> type:
        """The loader class (imports its module)."""
        return getattr(importlib.import_module(self.module), self.class_name)


DATASET_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "synthetic",
        "training.data.synthetic:SyntheticDataset",
        "procedural indoor/road frames with exact depth and labels (no download)",
        rendered=True,
    ),
    DatasetSpec(
        "synthetic_sequence",
        "training.data.synthetic:SyntheticSequenceDataset",
        "procedural frames with neighbours and exact poses (self-supervised)",
        rendered=True,
    ),
    DatasetSpec(
        "nyu_depth_v2",
        "training.data.nyu:NYUDepthV2Dataset",
        "NYU Depth v2 labelled set: nyu_depth_v2_labeled.mat + splits.mat",
    ),
    DatasetSpec(
        "kitti_depth",
        "training.data.kitti:KittiDepthDataset",
        "KITTI depth prediction ground truth paired with KITTI raw images",
    ),
    DatasetSpec(
        "kitti_selection",
        "training.data.kitti:KittiSelectionDataset",
        "KITTI depth_selection/val_selection_cropped (1000 frames, own intrinsics)",
    ),
    DatasetSpec(
        "kitti_raw",
        "training.data.kitti:KittiRawSequenceDataset",
        "KITTI raw frames with neighbours from a split file (self-supervised)",
    ),
    DatasetSpec(
        "cityscapes",
        "training.data.cityscapes:CityscapesDataset",
        "Cityscapes leftImg8bit + gtFine labels + disparity depth",
    ),
    DatasetSpec(
        "sunrgbd",
        "training.data.sunrgbd:SunRGBDDataset",
        "SUN RGB-D official tree: SUNRGBD/ + SUNRGBDtoolbox/ (37 classes, allsplit.mat)",
    ),
    DatasetSpec(
        "sunrgbd_flat",
        "training.data.sunrgbd:SunRGBDFlatDataset",
        "SUN RGB-D in a flat image/depth/label/intrinsics tree numbered 1..10335",
    ),
    DatasetSpec(
        "rosbag",
        "training.data.rosbag:RosbagDataset",
        "your rosbag2 recording: RGB + registered depth (16UC1 mm / 32FC1 m) + camera_info",
    ),
    DatasetSpec(
        "middlebury",
        "training.data.middlebury:MiddleburyDataset",
        "Middlebury 2014 scenes: <scene>/im0.png + disp0.pfm + calib.txt (real-image benchmark)",
    ),
    DatasetSpec(
        "middlebury_skimage",
        "training.data.middlebury:MiddleburySkimageDataset",
        "Middlebury 2014 Motorcycle from the scikit-image wheel (built in, takes no root)",
    ),
)


def _index(specs: Sequence[DatasetSpec]) -> dict[str, DatasetSpec]:
    table: dict[str, DatasetSpec] = {}
    for spec in specs:
        if spec.name in table:
            raise ValueError(f"data set {spec.name!r} is registered twice")
        table[spec.name] = spec
    return table


_TABLE = _index(DATASET_SPECS)
DATASETS: tuple[str, ...] = tuple(_TABLE)


def list_datasets() -> tuple[str, ...]:
    """Names a recipe's ``data.dataset`` accepts, in table order."""
    return DATASETS


def get_dataset_spec(name: str) -> DatasetSpec:
    """The table entry of ``name``.

    Raises:
        ValueError: unknown name (the message lists the choices).
    """
    if name not in _TABLE:
        choices = "\n".join(f"  {s.name}: {s.summary}" for s in DATASET_SPECS)
        raise ValueError(f"unknown data set {name!r}; available:\n{choices}")
    return _TABLE[name]


def family_for_classes(class_names: Sequence[str]) -> str | None:
    """The synthetic family whose classes are ``class_names``, or None."""
    from depth_perception.synthetic.classes import FAMILIES, classes_for

    for family in FAMILIES:
        if tuple(classes_for(family)[0]) == tuple(class_names):
            return family
    return None


def data_depth_range(cfg: DataConfig) -> tuple[float, float] | None:
    """Nominal (min, max) depth of the data in metres, when the data set defines one."""
    if get_dataset_spec(cfg.dataset).rendered:
        from depth_perception.synthetic.randomized import depth_range_for

        # data.options.domain: default | randomized (the randomised world reaches nearer)
        return depth_range_for(cfg.family, str(cfg.options.get("domain", "default")))
    return None


def _build_rendered(spec: DatasetSpec, cfg: DataConfig, split: str, length: int | None) -> Any:
    options = dict(cfg.options)
    frames = int(options.pop("frames_per_scene", 8))
    if length is not None and "num_scenes" not in options:
        options["num_scenes"] = max(1, math.ceil(length / frames))
    return spec.load_class()(
        family=cfg.family,
        split=split,
        width=cfg.width,
        height=cfg.height,
        frames_per_scene=frames,
        **options,
    )


def _build_on_disk(spec: DatasetSpec, cfg: DataConfig, split: str) -> Any:
    from training.data.augment import Resize

    cls = spec.load_class()
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {
        k: v.replace("{split}", split) if isinstance(v, str) else v for k, v in cfg.options.items()
    }
    if cfg.root is not None:
        first = next(iter(params))
        if first == "transform":
            raise ValueError(f"data set {spec.name!r} is built in and takes no root")
        kwargs.setdefault(first, cfg.root)
    if "split" in params:
        kwargs["split"] = split
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"data set {spec.name!r} does not take {unknown}; its arguments: "
            f"{', '.join(p for p in params if p != 'transform')}"
        )
    return cls(**kwargs, transform=Resize(cfg.width, cfg.height))


def make_dataset(cfg: DataConfig, split: str, *, length: int | None = None) -> Dataset:
    """The (un-augmented) data set of ``split`` at the network input size.

    Training augmentation is added by the trainer with
    :class:`~training.data.augment.SeededAugmentation`.

    Args:
        cfg: Data configuration.
        split: Split name (``train``, ``val``, ``test``; which exist depends on the data set).
        length: Use only the first ``length`` samples (None: all).

    Raises:
        ValueError: unknown data set name, or options its constructor does not take.
    """
    spec = get_dataset_spec(cfg.dataset)
    if spec.rendered:
        dataset = _build_rendered(spec, cfg, split, length)
    else:
        dataset = _build_on_disk(spec, cfg, split)
    if cfg.pseudo_labels and split == cfg.train_split:
        from training.data.pseudo_labels import PseudoLabelDataset

        dataset = PseudoLabelDataset(dataset, cfg.pseudo_labels)
    if length is not None and length < len(dataset):
        from torch.utils.data import Subset

        from training.data.base import class_names_of

        subset = Subset(dataset, range(int(length)))
        subset.class_names = class_names_of(dataset)  # type: ignore[attr-defined]
        return subset
    return dataset
