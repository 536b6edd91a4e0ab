"""NYU Depth v2, labelled subset: ``nyu_depth_v2_labeled.mat`` plus the official ``splits.mat``.

Supported files (the originals, unchanged):

* ``nyu_depth_v2_labeled.mat``: MATLAB v7.3, i.e. HDF5, read with h5py. MATLAB stores arrays
  column-major, so h5py sees the dimensions reversed:
  ``images`` (N, 3, 640, 480) uint8 -> ``transpose(0, 3, 2, 1)`` gives N x 480 x 640 x 3 RGB;
  ``depths`` (N, 640, 480) float metres and ``labels`` (N, 640, 480) uint16 (894 classes,
  0 = unlabelled) -> transposed the same way. ``names`` (1, 894), when present, holds
  references to the class names (uint16 character arrays), used for the raw class names.
* ``splits.mat``: MATLAB v5 (scipy.io.loadmat) with ``trainNdxs`` (795) and ``testNdxs``
  (654, the Eigen test set), 1-based indices into the labelled set.

Labels: ``classes`` picks the class set, shipped in ``training/data/nyu_classes.yaml`` (its
header names the sources):

* ``"nyu40"``: the 40 classes of Gupta et al. (CVPR 2013), ids 0..39 (wall, floor, cabinet, ...,
  otherprop), the usual NYU v2 segmentation benchmark;
* ``"nyu13"``: the 13 classes of Couprie et al. (ICLR 2013), ids 0..12 (bed, books, ceiling, ...);
* ``"raw"`` (default): no class set. ``labels`` are all 255 unless ``label_mapping`` is given:
  an integer array indexed by raw id (``mapping[0]`` should be 255) whose values are class ids
  0..254 or 255 (ignore), with its ``class_names``.

Raw id 0 (unlabelled) is 255 (ignore) in every class set. ``raw_labels=True`` puts the uint16
raw ids in ``sample.meta["raw_labels"]``. Depth: invalid (0) where the file has 0 / NaN; the
labelled set's depths are in-painted, so nearly every pixel is valid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.base import CorruptSampleError, SampleDataset, Transform
from training.data.sample import IGNORE_LABEL, Sample

# Colour camera of the Kinect used for NYU Depth v2 (Silberman et al. toolbox camera_params.m),
# for the 640x480 images of the labelled set.
NYU_INTRINSICS = CameraIntrinsics(
    fx=518.857901, fy=519.469611, cx=325.582449, cy=253.736166, width=640, height=480
)
NYU_NUM_RAW_CLASSES = 894
SPLITS = ("train", "test", "all")
NYU_CLASS_SETS = ("raw", "nyu40", "nyu13")
# Raw ids and names of the official file's ``names`` that the class tables rely on.
_RAW_NAME_CHECKS = {3: "cabinet", 4: "ceiling", 5: "chair", 11: "floor", 19: "table", 21: "wall"}
_CLASS_FILE = "nyu_classes.yaml"


@cache
def _class_table() -> dict[str, Any]:
    import yaml

    text = resources.files("training.data").joinpath(_CLASS_FILE).read_text(encoding="utf-8")
    table = yaml.safe_load(text)
    raw_to_40 = np.asarray(table["nyu40"]["from_raw"], dtype=np.int64)
    to_13 = np.asarray(table["nyu13"]["from_nyu40"], dtype=np.int64)
    # A damaged data file must not silently mislabel: check its shape and ranges.
    if raw_to_40.shape != (NYU_NUM_RAW_CLASSES,) or raw_to_40.min() < 1 or raw_to_40.max() > 40:
        raise ValueError(f"{_CLASS_FILE}: nyu40.from_raw must be 894 ids in 1..40")
    if to_13.shape != (41,) or to_13[0] != 0 or to_13[1:].min() < 1 or to_13.max() > 13:
        raise ValueError(f"{_CLASS_FILE}: nyu13.from_nyu40 must be 41 ids, 0 then 1..13")
    if len(table["nyu40"]["names"]) != 40 or len(table["nyu13"]["names"]) != 13:
        raise ValueError(f"{_CLASS_FILE}: expected 40 and 13 class names")
    return {
        "raw_to_40": raw_to_40,
        "to_13": to_13,
        "names40": table["nyu40"]["names"],
        "names13": table["nyu13"]["names"],
    }


def nyu_class_mapping(classes: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The standard NYU v2 class set ``classes`` (``"nyu40"`` or ``"nyu13"``).

    Returns:
        ``(mapping, names)``: ``mapping`` (895,) uint8 indexed by raw id 0..894, giving class
        ids ``0..len(names) - 1`` and 255 for raw id 0 (unlabelled); ``names[i]`` is class i.

    Raises:
        ValueError: unknown class set.
    """
    if classes not in ("nyu40", "nyu13"):
        raise ValueError(f"classes must be 'nyu40' or 'nyu13' here, got {classes!r}")
    table = _class_table()
    ids = table["raw_to_40"] if classes == "nyu40" else table["to_13"][table["raw_to_40"]]
    mapping = np.full(NYU_NUM_RAW_CLASSES + 1, IGNORE_LABEL, dtype=np.uint8)
    mapping[1:] = ids - 1  # the tables count classes from 1; Sample labels count from 0
    names = table["names40"] if classes == "nyu40" else table["names13"]
    return mapping, tuple(str(n) for n in names)


def read_nyu_splits(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read ``splits.mat`` (MATLAB v5) into 0-based index arrays ``{"train", "test"}``.

    Raises:
        ValueError: the file lacks ``trainNdxs`` / ``testNdxs`` or holds indices < 1.
    """
    from scipy.io import loadmat  # scipy only needed for this file

    mat = loadmat(str(path))
    out = {}
    for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
        if key not in mat:
            raise ValueError(f"{path} has no {key!r}; is it the official NYU splits.mat?")
        idx = np.asarray(mat[key]).reshape(-1).astype(np.int64)
        if idx.size and idx.min() < 1:
            raise ValueError(f"{path}: {key} must be 1-based indices, found {idx.min()}")
        out[split] = idx - 1
    return out


def _decode_matlab_string(arr: np.ndarray) -> str:
    return "".join(chr(int(c)) for c in np.asarray(arr).reshape(-1))


class NYUDepthV2Dataset(SampleDataset):
    """The 1449 labelled NYU Depth v2 images (see the module docstring for the format).

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        split: ``"train"`` (795), ``"test"`` (654) or ``"all"``.
        splits_path: the official ``splits.mat``; required unless ``split == "all"``.
        classes: ``"nyu40"``, ``"nyu13"`` or ``"raw"`` (see the module docstring).
        label_mapping: with ``classes="raw"``: your own raw id -> class id array.
        class_names: names of the classes of ``label_mapping`` (default ``class_<i>``).
        raw_labels: also return the raw uint16 ids in ``meta["raw_labels"]``.
        transform: applied to every sample.

    Raises:
        ValueError: unknown split, missing splits file, malformed mapping, or a file without
            the expected datasets, or ``label_mapping`` / ``class_names`` with a named class
            set.
    """

    name = "nyu_depth_v2"

    def __init__(
        self,
        mat_path: str | os.PathLike[str],
        split: str = "train",
        splits_path: str | os.PathLike[str] | None = None,
        classes: str = "raw",
        label_mapping: Sequence[int] | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        raw_labels: bool = False,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        import h5py

        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if classes not in NYU_CLASS_SETS:
            raise ValueError(f"classes must be one of {NYU_CLASS_SETS}, got {classes!r}")
        if classes != "raw":
            if label_mapping is not None or class_names is not None:
                raise ValueError(
                    f"classes={classes!r} brings its own mapping and names; give label_mapping "
                    "and class_names only with classes='raw'"
                )
            label_mapping, class_names = nyu_class_mapping(classes)
        self.classes = classes
        self.mat_path = Path(mat_path)
        if not self.mat_path.is_file():
            raise ValueError(f"NYU file {self.mat_path} not found")
        self.raw_labels = raw_labels
        with h5py.File(self.mat_path, "r") as f:
            for key in ("images", "depths"):
                if key not in f:
                    raise ValueError(
                        f"{self.mat_path} has no {key!r} dataset; use nyu_depth_v2_labeled.mat"
                    )
            shape = f["images"].shape
            if len(shape) != 4 or shape[1] != 3:
                raise ValueError(f"{self.mat_path}: images must be (N, 3, W, H), got {shape}")
            self._count = int(shape[0])
            self._has_labels = "labels" in f
            self._raw_names = self._read_names(f)
        if classes != "raw":
            self._check_raw_order(classes)
        width, height = int(shape[2]), int(shape[3])
        # The labelled set is 640x480; other sizes (resampled copies) scale the camera.
        self.intrinsics = NYU_INTRINSICS.scaled(width, height)
        if split == "all":
            self.indices = np.arange(self._count)
        else:
            if splits_path is None:
                raise ValueError(f"split {split!r} needs splits_path (the official splits.mat)")
            self.indices = read_nyu_splits(splits_path)[split]
            if self.indices.size and self.indices.max() >= self._count:
                raise ValueError(
                    f"splits file indexes image {self.indices.max() + 1} but {self.mat_path} "
                    f"holds {self._count}"
                )
        self._lut = None
        if label_mapping is not None:
            lut = np.asarray(label_mapping)
            if lut.ndim != 1 or lut.size == 0 or lut.min() < 0 or lut.max() > IGNORE_LABEL:
                raise ValueError(
                    "label_mapping must be a 1-D array indexed by raw NYU id with values in "
                    f"0..{IGNORE_LABEL} (255 = ignore)"
                )
            full = np.full(65536, IGNORE_LABEL, dtype=np.uint8)
            full[: lut.size] = lut.astype(np.uint8)
            self._lut = full
            n_classes = (
                int(lut[lut != IGNORE_LABEL].max()) + 1 if (lut != IGNORE_LABEL).any() else 0
            )
            if class_names is not None and len(class_names) < n_classes:
                raise ValueError(
                    f"label_mapping uses {n_classes} classes but {len(class_names)} names given"
                )
            self.class_names = (
                tuple(class_names)
                if class_names is not None
                else tuple(f"class_{i}" for i in range(n_classes))
            )
        self._file: Any = None
        self._pid = -1

    @staticmethod
    def _read_names(f: Any) -> tuple[str, ...]:
        if "names" not in f:
            return ()
        try:
            refs = np.asarray(f["names"]).reshape(-1)
            return tuple(_decode_matlab_string(f[ref][()]) for ref in refs)
        except (KeyError, TypeError, ValueError, OSError):
            return ()

    def _check_raw_order(self, classes: str) -> None:
        # The standard tables index the official file's raw ids; a copy with its classes
        # renumbered would be mislabelled silently. Files without ``names`` cannot be checked.
        for raw_id, name in _RAW_NAME_CHECKS.items():
            if len(self._raw_names) >= raw_id and self._raw_names[raw_id - 1] != name:
                raise ValueError(
                    f"{self.mat_path}: raw class {raw_id} is {self._raw_names[raw_id - 1]!r}, "
                    f"not {name!r}: its classes are not in the order of the official "
                    f"nyu_depth_v2_labeled.mat, which classes={classes!r} requires"
                )

    @property
    def raw_class_names(self) -> tuple[str, ...]:
        """Names of raw ids 1..894 (``raw_class_names[id - 1]``), from the file's ``names``."""
        return self._raw_names

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles do not survive pickling / fork: each worker opens its own.
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = -1
        return state

    def _h5(self) -> Any:
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.mat_path, "r")
            self._pid = os.getpid()
        return self._file

    def path_of(self, index: int) -> str:
        return f"{self.mat_path}[{int(self.indices[index])}]"

    def load(self, index: int) -> Sample:
        i = int(self.indices[index])
        f = self._h5()
        try:
            image = np.ascontiguousarray(np.asarray(f["images"][i]).transpose(2, 1, 0))
            depth = np.asarray(f["depths"][i], dtype=np.float32).T
            raw = np.asarray(f["labels"][i]).T if self._has_labels else None
        except (OSError, KeyError, ValueError) as err:
            raise CorruptSampleError(self.path_of(index), f"cannot read: {err}") from err
        if image.dtype != np.uint8:
            raise CorruptSampleError(
                self.path_of(index), f"images must be uint8, got {image.dtype}"
            )
        labels = None
        meta: dict[str, Any] = {}
        if raw is not None:
            raw = raw.astype(np.uint16, copy=False)
            if self._lut is not None:
                labels = self._lut[raw]
            if self.raw_labels:
                meta["raw_labels"] = np.ascontiguousarray(raw)
        return Sample.build(image, self.intrinsics, depth=depth, labels=labels, meta=meta)
