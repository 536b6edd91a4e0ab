"""SUN RGB-D (10335 RGB-D images, 37 classes + void): the official release, or a flat copy.

:class:`SunRGBDDataset` (``sunrgbd``) reads the two official downloads as they unpack, from a
``root`` holding both::

    <root>/SUNRGBD/<sensor>/<source>/<scene>/       SUNRGBD.zip (kv1, kv2, realsense, xtion)
        image/<name>.jpg                            colour image
        depth_bfx/<name>.png                        depth, the release's refined maps (default)
        depth/<name>.png                            depth as captured (``depth="raw"``)
        intrinsics.txt                              3x3 K, 9 numbers row-major
    <root>/SUNRGBDtoolbox/                          SUNRGBDtoolbox.zip
        Metadata/SUNRGBDMeta.mat                    MATLAB v5: 1 x 10335 struct SUNRGBDMeta,
                                                    ``rgbpath`` / ``rgbname`` / ``depthname``
        Metadata/SUNRGBD2Dseg.mat                   MATLAB v7.3 (HDF5): SUNRGBD2Dseg.seglabel,
                                                    one W x H map of 0..37 per image
        traintestSUNRGBD/allsplit.mat               MATLAB v5: ``alltrain`` (5285 scene paths),
                                                    ``alltest`` (5050)

Image i of ``SUNRGBDMeta`` is the scene directory of its ``rgbpath`` (the part after
``SUNRGBD/``, so the toolbox's own ``/n/fs/sun3d/data/`` prefix does not matter) and has the
labels ``SUNRGBD2Dseg.seglabel{i}`` (the toolbox keeps both files in the same order). A scene
is in ``train`` / ``test`` when its directory is in ``alltrain`` / ``alltest`` of
``allsplit.mat``, the standard 5285 / 5050 benchmark split. Scenes whose directory is not
under ``SUNRGBD/`` (a partial download) are left out and counted in ``missing``.

Some repackagings (e.g. the 37-class tarballs in github.com/ankurhanda/sunrgbd-meta-data) number
the images 1..10335 with the test set first (1..5050) and the training set after
(5051..10335): :class:`SunRGBDFlatDataset` (``sunrgbd_flat``) reads such a flat tree::

    <root>/image/<n>.jpg|png          colour image
    <root>/depth/<n>.png              uint16 depth, see depth_encoding
    <root>/label/<n>.png              uint8/uint16 class ids, 0 = void, 1..37 = classes
    <root>/intrinsics/<n>.txt         3x3 K, 9 numbers row-major

Depth: the official PNGs (``depth_bfx`` and ``depth``) rotate their 16 bits by 3:
``depth = ((d >> 3) | (d << 13)) / 1000`` m (uint16 arithmetic, as the toolbox's
``read3dPoints.m``), which also clamps to 8 m (``max_depth``); 0 is invalid. Flat copies use
either that (``depth_encoding="bitshift"``) or plain millimetres (``"mm"``).

Labels: void 0 -> 255 (ignore), classes 1..37 -> 0..36 (:data:`SUNRGBD_CLASSES`, the toolbox's
``seg37list``); ids above 37 -> 255.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.base import (
    CorruptSampleError,
    SampleDataset,
    Transform,
    check_same_size,
    read_label_png,
    read_png_u16,
    read_rgb,
)
from training.data.sample import IGNORE_LABEL, Sample

log = logging.getLogger(__name__)

SUNRGBD_CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor_mat",
    "clothes",
    "ceiling",
    "books",
    "fridge",
    "tv",
    "paper",
    "towel",
    "shower_curtain",
    "box",
    "whiteboard",
    "person",
    "night_stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
)
SUNRGBD_NUM_IMAGES = 10335
SUNRGBD_NUM_TEST = 5050
_NUMBER = re.compile(r"(\d+)$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# 0 (void) and ids > 37 -> ignore; 1..37 -> 0..36
_LUT = np.full(65536, IGNORE_LABEL, dtype=np.uint8)
_LUT[1 : len(SUNRGBD_CLASSES) + 1] = np.arange(len(SUNRGBD_CLASSES), dtype=np.uint8)


def decode_sunrgbd_depth(raw: np.ndarray, encoding: str = "bitshift") -> np.ndarray:
    """uint16 SUN RGB-D depth PNG values -> float32 metres (0 stays 0 = invalid).

    Raises:
        ValueError: unknown encoding or non-uint16 input.
    """
    if raw.dtype != np.uint16:
        raise ValueError(f"SUN RGB-D depth must be uint16, got {raw.dtype}")
    if encoding == "bitshift":
        # rotate right by 3 bits within 16 bits (uint16 shifts drop the overflow, like MATLAB)
        mm = (raw >> np.uint16(3)) | (raw << np.uint16(13))
    elif encoding == "mm":
        mm = raw
    else:
        raise ValueError(f"depth_encoding must be 'bitshift' or 'mm', got {encoding!r}")
    return mm.astype(np.float32) / np.float32(1000.0)


def _number(path: Path) -> int | None:
    m = _NUMBER.search(path.stem)
    return int(m.group(1)) if m else None


def _index_dir(directory: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if directory.is_dir():
        for p in directory.iterdir():
            n = _number(p)
            if n is not None and p.suffix.lower() in suffixes:
                out[n] = p
    return out


def read_intrinsics_txt(path: Path, width: int, height: int) -> CameraIntrinsics:
    """A SUN RGB-D ``intrinsics.txt`` (3x3 K, 9 numbers row-major) for a width x height image.

    Raises:
        CorruptSampleError: missing file or not 9 numbers.
    """
    try:
        k = np.loadtxt(path, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"expected 9 numbers, got {k.size}")
    except (OSError, ValueError) as err:
        raise CorruptSampleError(path, f"cannot read intrinsics: {err}") from err
    return CameraIntrinsics.from_matrix(k, width, height)


def _after_sunrgbd(path: str) -> str:
    """The part of a toolbox path after ``SUNRGBD/``, without a trailing slash."""
    path = str(path).replace("\\", "/").rstrip("/")
    marker = "SUNRGBD/"
    at = path.find(marker)
    return path[at + len(marker) :] if at >= 0 else path.lstrip("/")


def _cellstr(value: Any) -> list[str]:
    """A MATLAB cell array of strings read by scipy (squeezed) as a list of str."""
    return [str(v) for v in np.atleast_1d(np.asarray(value, dtype=object)).reshape(-1)]


def read_sunrgbd_meta(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """``SUNRGBDMeta.mat``: per image (toolbox order) its ``scene`` directory (relative to
    ``SUNRGBD/``), ``rgbname`` and ``depthname``.

    Raises:
        ValueError: the file has no ``SUNRGBDMeta`` struct with ``rgbpath``.
    """
    from scipy.io import loadmat  # scipy only needed for the toolbox files

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    if "SUNRGBDMeta" not in mat:
        raise ValueError(
            f"{path} has no SUNRGBDMeta; is it the toolbox's Metadata/SUNRGBDMeta.mat?"
        )
    out = []
    for entry in np.atleast_1d(mat["SUNRGBDMeta"]).reshape(-1):
        try:
            rgbpath = str(entry.rgbpath)
        except AttributeError as err:
            raise ValueError(f"{path}: SUNRGBDMeta entries have no rgbpath") from err
        scene = _after_sunrgbd(rgbpath).rsplit("/", 2)[0]  # drop image/<name>.jpg
        rgbname = str(getattr(entry, "rgbname", "") or rgbpath.rsplit("/", 1)[-1])
        depthname = str(getattr(entry, "depthname", "") or Path(rgbname).stem + ".png")
        out.append({"scene": scene, "rgbname": rgbname, "depthname": depthname})
    return out


def read_sunrgbd_split(path: str | os.PathLike[str]) -> dict[str, set[str]]:
    """``allsplit.mat``: ``{"train": scenes of alltrain, "test": scenes of alltest}``, each a
    set of scene directories relative to ``SUNRGBD/``.

    Raises:
        ValueError: the file lacks ``alltrain`` / ``alltest``.
    """
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    out = {}
    for split, key in (("train", "alltrain"), ("test", "alltest")):
        if key not in mat:
            raise ValueError(f"{path} has no {key!r}; is it traintestSUNRGBD/allsplit.mat?")
        out[split] = {_after_sunrgbd(p) for p in _cellstr(mat[key])}
    return out


class SunRGBDDataset(SampleDataset):
    """SUN RGB-D from the official release tree and toolbox (layout: module docstring).

    Args:
        root: directory holding ``SUNRGBD/`` (and ``SUNRGBDtoolbox/`` unless ``toolbox``).
        split: ``"train"`` (allsplit.mat's alltrain), ``"test"`` (alltest) or ``"all"``.
        toolbox: the unpacked ``SUNRGBDtoolbox`` directory (default ``<root>/SUNRGBDtoolbox``).
        depth: ``"bfx"`` (``depth_bfx/``, the release's refined maps) or ``"raw"``
            (``depth/``).
        max_depth: depths above it are clamped to it (the toolbox uses 8 m); None keeps them.
        transform: applied to every sample.

    Raises:
        ValueError: unknown split or depth, missing toolbox files, files that disagree
            (image counts), or no scene of the split on disk.
    """

    name = "sunrgbd"
    class_names = SUNRGBD_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        toolbox: str | os.PathLike[str] | None = None,
        depth: str = "bfx",
        max_depth: float | None = 8.0,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        import h5py

        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if depth not in ("bfx", "raw"):
            raise ValueError(f"depth must be 'bfx' (depth_bfx/) or 'raw' (depth/), got {depth!r}")
        self.root = Path(root)
        self.data_dir = self.root / "SUNRGBD"
        if not self.data_dir.is_dir():
            raise ValueError(f"{self.data_dir} not found; unpack SUNRGBD.zip into {self.root}")
        tb = Path(toolbox) if toolbox is not None else self.root / "SUNRGBDtoolbox"
        meta_path = tb / "Metadata" / "SUNRGBDMeta.mat"
        self.seg_path = tb / "Metadata" / "SUNRGBD2Dseg.mat"
        split_path = tb / "traintestSUNRGBD" / "allsplit.mat"
        for f in (meta_path, self.seg_path, split_path):
            if not f.is_file():
                raise ValueError(f"{f} not found; unpack SUNRGBDtoolbox.zip (or set toolbox)")
        self.depth_dir = "depth_bfx" if depth == "bfx" else "depth"
        self.max_depth = max_depth
        meta = read_sunrgbd_meta(meta_path)
        with h5py.File(self.seg_path, "r") as f:
            try:
                n_seg = int(np.asarray(f["SUNRGBD2Dseg"]["seglabel"]).size)
            except KeyError as err:
                raise ValueError(
                    f"{self.seg_path} has no SUNRGBD2Dseg.seglabel; is it the toolbox's "
                    "Metadata/SUNRGBD2Dseg.mat?"
                ) from err
        if n_seg != len(meta):
            raise ValueError(
                f"{self.seg_path} has {n_seg} label maps but {meta_path} {len(meta)} images"
            )
        wanted = None if split == "all" else read_sunrgbd_split(split_path)[split]
        self.images: list[tuple[int, dict[str, str]]] = []
        self.missing = 0
        for i, m in enumerate(meta):
            if wanted is not None and m["scene"] not in wanted:
                continue
            if not (self.data_dir / m["scene"]).is_dir():
                self.missing += 1
                continue
            self.images.append((i, m))
        if self.missing:
            log.warning(
                "%s: %d %s scenes of the toolbox are not on disk (left out)",
                self.data_dir,
                self.missing,
                split,
            )
        if not self.images:
            raise ValueError(
                f"no {split} scene of {meta_path.name} under {self.data_dir} "
                f"({len(meta)} images in the toolbox, {self.missing} of the split missing)"
            )
        self._file: Any = None
        self._refs: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles do not survive pickling / fork: each worker opens its own.
        state = self.__dict__.copy()
        state["_file"] = None
        state["_refs"] = None
        state["_pid"] = -1
        return state

    def _seg(self) -> Any:
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.seg_path, "r")
            self._pid = os.getpid()
            # one reference per image; read once per handle, not per sample
            self._refs = np.asarray(self._file["SUNRGBD2Dseg"]["seglabel"]).reshape(-1)
        return self._file

    def scene_dir(self, index: int) -> Path:
        """The scene directory of sample ``index``."""
        return self.data_dir / self.images[index][1]["scene"]

    def path_of(self, index: int) -> str:
        return str(self.scene_dir(index) / "image" / self.images[index][1]["rgbname"])

    def _labels(self, index: int) -> np.ndarray:
        i = self.images[index][0]
        f = self._seg()
        try:
            # MATLAB stores the W x H map column-major: h5py reads it as (W, H).
            raw = np.asarray(f[self._refs[i]][()]).T
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise CorruptSampleError(f"{self.seg_path}[{i}]", f"cannot read: {err}") from err
        if raw.ndim != 2:
            raise CorruptSampleError(f"{self.seg_path}[{i}]", f"label map is {raw.shape}")
        return raw

    def load(self, index: int) -> Sample:
        i, m = self.images[index]
        scene = self.scene_dir(index)
        image = read_rgb(scene / "image" / m["rgbname"])
        depth_path = scene / self.depth_dir / m["depthname"]
        depth = decode_sunrgbd_depth(read_png_u16(depth_path), "bitshift")
        if self.max_depth is not None:
            np.minimum(depth, np.float32(self.max_depth), out=depth)
        check_same_size(depth_path, "depth", depth, image.shape)
        raw = self._labels(index)
        check_same_size(f"{self.seg_path}[{i}]", "label map", raw, image.shape)
        h, w = image.shape[:2]
        intrinsics = read_intrinsics_txt(scene / "intrinsics.txt", w, h)
        # seglabel is stored as double: values 0..37 are exact, anything else is ignored.
        ids = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)
        labels = _LUT[ids]
        return Sample.build(
            image,
            intrinsics,
            depth=depth,
            labels=labels,
            meta={"scene": m["scene"], "number": i + 1},
        )


class SunRGBDFlatDataset(SampleDataset):
    """SUN RGB-D in a flat numbered layout (module docstring), e.g. a third-party repackaging.

    Args:
        root: directory holding ``image/``, ``depth/``, ``label/`` and ``intrinsics/``.
        split: ``"train"`` (images 5051..10335), ``"test"`` (1..5050) or ``"all"``.
        depth_encoding: ``"bitshift"`` (toolbox PNGs) or ``"mm"``.
        max_depth: depths above it are clamped to it (the toolbox uses 8 m); None keeps them.
        transform: applied to every sample.

    Images without a depth, label or intrinsics file are kept and fail when loaded (wrap the
    data set in :class:`training.data.robust.SkipCorrupt` to skip them).

    Raises:
        ValueError: unknown split or encoding, or no image of the split found.
    """

    name = "sunrgbd_flat"
    class_names = SUNRGBD_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        depth_encoding: str = "bitshift",
        max_depth: float | None = 8.0,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if depth_encoding not in ("bitshift", "mm"):
            raise ValueError(f"depth_encoding must be 'bitshift' or 'mm', got {depth_encoding!r}")
        self.root = Path(root)
        self.depth_encoding = depth_encoding
        self.max_depth = max_depth
        images = _index_dir(self.root / "image", _IMAGE_SUFFIXES)
        self._depth = _index_dir(self.root / "depth", (".png",))
        self._label = _index_dir(self.root / "label", (".png",))
        self._intr = _index_dir(self.root / "intrinsics", (".txt",))

        def in_split(n: int) -> bool:
            if split == "test":
                return 1 <= n <= SUNRGBD_NUM_TEST
            if split == "train":
                return n > SUNRGBD_NUM_TEST
            return True

        self.numbers = sorted(n for n in images if in_split(n))
        self._images = images
        if not self.numbers:
            raise ValueError(
                f"no {split} images under {self.root / 'image'} (numbered 1..5050 test, "
                "5051..10335 train)"
            )

    def __len__(self) -> int:
        return len(self.numbers)

    def path_of(self, index: int) -> str:
        return str(self._images[self.numbers[index]])

    def _need(self, table: dict[int, Path], n: int, what: str) -> Path:
        if n not in table:
            raise CorruptSampleError(self._images[n], f"no {what} file for image {n}")
        return table[n]

    def load(self, index: int) -> Sample:
        n = self.numbers[index]
        image = read_rgb(self._images[n])
        depth_path = self._need(self._depth, n, "depth")
        label_path = self._need(self._label, n, "label")
        k_path = self._need(self._intr, n, "intrinsics")
        depth = decode_sunrgbd_depth(read_png_u16(depth_path), self.depth_encoding)
        if self.max_depth is not None:
            np.minimum(depth, np.float32(self.max_depth), out=depth)
        raw = read_label_png(label_path)
        check_same_size(depth_path, "depth", depth, image.shape)
        check_same_size(label_path, "label", raw, image.shape)
        h, w = image.shape[:2]
        intrinsics = read_intrinsics_txt(k_path, w, h)
        labels = _LUT[raw.astype(np.uint16, copy=False)]
        return Sample.build(image, intrinsics, depth=depth, labels=labels, meta={"number": n})
