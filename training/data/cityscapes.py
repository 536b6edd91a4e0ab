"""Cityscapes: fine semantic labels (19 train ids) and depth from the stereo disparity.

Supported layout (the official archives leftImg8bit, gtFine, disparity, camera)::

    <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png
    <root>/disparity/<split>/<city>/<name>_disparity.png    (optional)
    <root>/camera/<split>/<city>/<name>_camera.json         (optional)

Labels: label ids 7, 8, 11, 12, 13, 17, 19..28, 31, 32, 33 -> train ids 0..18
(:data:`CITYSCAPES_CLASSES`), every other id -> 255. A missing gtFine file (the test split)
gives all-255 labels.

Depth: disparity PNG uint16 ``p``, ``d = (p - 1) / 256`` px for ``p > 0``, ``p = 0`` invalid;
``depth = baseline * fx / d`` with ``extrinsic.baseline`` (m) and ``intrinsic.fx`` from the
camera JSON, which also gives ``fy``, ``u0``, ``v0``. Pixels with ``d <= 0`` are invalid. When
the camera JSON is missing, the intrinsics fall back to :data:`CITYSCAPES_DEFAULT_CAMERA`
(approximate, scaled from 2048x1024 to the image size; depth is then left invalid).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.classes import CITYSCAPES_CLASSES
from training.data.base import (
    CorruptSampleError,
    SampleDataset,
    Transform,
    check_same_size,
    lookup_table,
    read_label_png,
    read_png_u16,
    read_rgb,
)
from training.data.sample import Sample

log = logging.getLogger(__name__)

# label id -> train id of the 19 evaluated classes (cityscapesscripts/helpers/labels.py)
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    label_id: train_id
    for train_id, label_id in enumerate(
        (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
    )
}
_LUT = lookup_table(LABEL_ID_TO_TRAIN_ID)

CITYSCAPES_SIZE = (2048, 1024)
# Camera of the city of Aachen (camera/train/aachen/*_camera.json), used only when a frame's
# JSON is missing: the cities' calibrations differ by about 1 %.
CITYSCAPES_DEFAULT_CAMERA = {
    "fx": 2262.52,
    "fy": 2265.3017905988554,
    "u0": 1096.98,
    "v0": 513.137,
    "baseline": 0.209313,
}


def read_cityscapes_camera(path: str | os.PathLike[str]) -> dict[str, float]:
    """``fx, fy, u0, v0, baseline`` from a Cityscapes ``*_camera.json``.

    Raises:
        CorruptSampleError: unreadable JSON or missing keys.
    """
    try:
        data = json.loads(Path(path).read_text())
        intr, extr = data["intrinsic"], data["extrinsic"]
        return {
            "fx": float(intr["fx"]),
            "fy": float(intr["fy"]),
            "u0": float(intr["u0"]),
            "v0": float(intr["v0"]),
            "baseline": float(extr["baseline"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptSampleError(path, f"cannot read camera JSON: {err!r}") from err


def disparity_to_depth(raw: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Cityscapes uint16 disparity PNG -> float32 depth in metres, 0 where invalid."""
    disparity = (raw.astype(np.float32) - np.float32(1.0)) / np.float32(256.0)
    valid = (raw > 0) & (disparity > 0)
    depth = np.zeros(raw.shape, dtype=np.float32)
    depth[valid] = np.float32(baseline * fx) / disparity[valid]
    return depth


class CityscapesDataset(SampleDataset):
    """Cityscapes left images with 19-class labels and disparity depth (layout: module docstring).

    Args:
        root: directory holding ``leftImg8bit/``, ``gtFine/`` and optionally ``disparity/``
            and ``camera/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        depth: load depth from the disparity maps when present.
        transform: applied to every sample.

    Raises:
        ValueError: unknown split or no image found.
    """

    name = "cityscapes"
    class_names = CITYSCAPES_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        depth: bool = True,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.with_depth = depth
        self.images = sorted((self.root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        if not self.images:
            raise ValueError(
                f"no images under {self.root}/leftImg8bit/{split}/<city>/*_leftImg8bit.png"
            )
        self._warned_camera = False

    def __len__(self) -> int:
        return len(self.images)

    def path_of(self, index: int) -> str:
        return str(self.images[index])

    def _sibling(self, index: int, folder: str, suffix: str) -> Path:
        img = self.images[index]
        base = img.name[: -len("_leftImg8bit.png")]
        return self.root / folder / self.split / img.parent.name / f"{base}_{suffix}"

    def load(self, index: int) -> Sample:
        image = read_rgb(self.images[index])
        h, w = image.shape[:2]
        label_path = self._sibling(index, "gtFine", "gtFine_labelIds.png")
        labels = None
        if label_path.is_file():
            raw = read_label_png(label_path)
            check_same_size(label_path, "labels", raw, image.shape)
            labels = _LUT[raw.astype(np.uint16, copy=False)]
        cam_path = self._sibling(index, "camera", "camera.json")
        if cam_path.is_file():
            cam = read_cityscapes_camera(cam_path)
        else:
            if not self._warned_camera:
                log.warning("no %s: using the default Cityscapes camera", cam_path)
                self._warned_camera = True
            cam = dict(CITYSCAPES_DEFAULT_CAMERA)
        try:
            if cam_path.is_file():
                intrinsics = CameraIntrinsics(cam["fx"], cam["fy"], cam["u0"], cam["v0"], w, h)
            else:
                # the default camera is for the full 2048x1024 frames
                intrinsics = CameraIntrinsics(
                    cam["fx"], cam["fy"], cam["u0"], cam["v0"], *CITYSCAPES_SIZE
                ).scaled(w, h)
        except ValueError as err:
            raise CorruptSampleError(cam_path, str(err)) from err
        depth = None
        disp_path = self._sibling(index, "disparity", "disparity.png")
        if self.with_depth and cam_path.is_file() and disp_path.is_file():
            raw_disp = read_png_u16(disp_path)
            check_same_size(disp_path, "disparity", raw_disp, image.shape)
            depth = disparity_to_depth(raw_disp, cam["fx"], cam["baseline"])
        return Sample.build(image, intrinsics, depth=depth, labels=labels)
