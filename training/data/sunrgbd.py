"""SUN RGB-D (10335 RGB-D images, 37 classes + void) in a flat, preprocessed layout.

Supported layout (one file per image, matched by the image number at the end of the stem,
e.g. ``00042`` or ``img-000042``, numbered 1..10335 in the toolbox's order)::

    <root>/image/<n>.jpg|png          colour image
    <root>/depth/<n>.png              uint16 depth, see depth_encoding
    <root>/label/<n>.png              uint8/uint16 class ids, 0 = void, 1..37 = classes
    <root>/intrinsics/<n>.txt         3x3 K, 9 numbers row-major (the toolbox's intrinsics.txt)

Splits follow the SUN RGB-D benchmark: ``test`` = images 1..5050, ``train`` = 5051..10335.

``depth_encoding``:

* ``"bitshift"`` (default): the PNGs of the SUN RGB-D toolbox (``depth_bfx/*.png``), whose
  16 bits are rotated by 3: ``depth = ((d >> 3) | (d << 13)) / 1000`` m (uint16 arithmetic,
  as ``read3dPoints.m``); the toolbox also clamps to 8 m, which ``max_depth`` reproduces.
* ``"mm"``: plain uint16 millimetres (``depth = d / 1000``), as many converted copies store it.

Labels: void 0 -> 255 (ignore), classes 1..37 -> 0..36 (:data:`SUNRGBD_CLASSES`); ids above
37 -> 255.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


class SunRGBDDataset(SampleDataset):
    """SUN RGB-D with depth, 37-class labels and per-image intrinsics (layout: module docstring).

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

    name = "sunrgbd"
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
        try:
            k = np.loadtxt(k_path, dtype=np.float64).reshape(-1)
            if k.size != 9:
                raise ValueError(f"expected 9 numbers, got {k.size}")
        except (OSError, ValueError) as err:
            raise CorruptSampleError(k_path, f"cannot read intrinsics: {err}") from err
        h, w = image.shape[:2]
        intrinsics = CameraIntrinsics.from_matrix(k, w, h)
        labels = _LUT[raw.astype(np.uint16, copy=False)]
        return Sample.build(image, intrinsics, depth=depth, labels=labels, meta={"number": n})
