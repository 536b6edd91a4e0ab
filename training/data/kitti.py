"""KITTI: depth-prediction ground truth paired with KITTI raw images, and raw sequences.

Supported layouts (the official archives, unpacked unchanged):

* KITTI raw (``raw_root``): ``<raw_root>/<date>/<drive>/image_02|image_03/data/<frame>.png``
  (rectified, synchronised RGB, 10 Hz) and ``<raw_root>/<date>/calib_cam_to_cam.txt`` with
  ``P_rect_02`` / ``P_rect_03`` (3x4, row-major) and ``S_rect_0x`` (width height). The
  intrinsics of ``image_0x`` are fx = P[0,0], fy = P[1,1], cx = P[0,2], cy = P[1,2] (the
  stereo baseline term P[0,3] does not enter a monocular camera). ``<drive>`` is e.g.
  ``2011_09_26_drive_0001_sync`` and ``<date>`` its first 10 characters.
* Depth prediction (``depth_root``, data_depth_annotated):
  ``<depth_root>/train|val/<drive>/proj_depth/groundtruth/image_02|image_03/<frame>.png``,
  uint16 PNG, depth = value / 256 m, 0 = no measurement.
* Depth selection (``depth_selection/val_selection_cropped``): ``image/<drive>_image_<frame>_
  image_0x.png``, ``groundtruth_depth/<drive>_groundtruth_depth_<frame>_image_0x.png`` and
  ``intrinsics/<drive>_image_<frame>_image_0x.txt`` (a 3x3 K as 9 numbers); 1000 crops of
  1216x352.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.base import (
    CorruptSampleError,
    SampleDataset,
    Transform,
    check_same_size,
    read_png_u16,
    read_rgb,
)
from training.data.sample import Sample

log = logging.getLogger(__name__)

KITTI_CAMERAS = ("image_02", "image_03")
KITTI_FRAME_RATE_HZ = 10.0
# monodepth2 split files name the camera by side
_SIDE_TO_CAMERA = {"l": "image_02", "r": "image_03", "2": "image_02", "3": "image_03"}


def read_calib_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray | str]:
    """Parse a KITTI ``key: v1 v2 ...`` calibration file.

    Numeric entries become float64 arrays; others (``calib_time``) stay strings.

    Raises:
        CorruptSampleError: missing file or a line without ``key:``.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "calibration file not found")
    out: dict[str, np.ndarray | str] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise CorruptSampleError(path, f"line {lineno} has no 'key:' ({line[:40]!r})")
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def kitti_intrinsics(
    calib: dict[str, np.ndarray | str], camera: str, width: int, height: int
) -> CameraIntrinsics:
    """Intrinsics of ``camera`` (``image_02`` ...) from a parsed ``calib_cam_to_cam.txt``.

    Raises:
        ValueError: no ``P_rect_0x`` of 12 numbers for that camera.
    """
    key = f"P_rect_{camera[-2:]}"
    p = calib.get(key)
    if not isinstance(p, np.ndarray) or p.size != 12:
        raise ValueError(f"calibration has no 3x4 {key} for {camera}")
    return CameraIntrinsics.from_matrix(p.reshape(3, 4), width, height)


def read_kitti_depth(path: str | os.PathLike[str]) -> np.ndarray:
    """A KITTI uint16 depth PNG in metres (value / 256, 0 = invalid) as float32."""
    return read_png_u16(path).astype(np.float32) / np.float32(256.0)


class _CalibCache:
    """Parsed calib_cam_to_cam.txt per date directory (a handful per data set)."""

    def __init__(self, raw_root: Path) -> None:
        self.raw_root = raw_root
        self._calib: dict[str, dict[str, np.ndarray | str]] = {}

    def intrinsics(self, date: str, camera: str, width: int, height: int) -> CameraIntrinsics:
        if date not in self._calib:
            self._calib[date] = read_calib_file(self.raw_root / date / "calib_cam_to_cam.txt")
        calib = self._calib[date]
        path = self.raw_root / date / "calib_cam_to_cam.txt"
        size = calib.get(f"S_rect_{camera[-2:]}")
        if isinstance(size, np.ndarray) and size.size == 2:
            if (round(size[0]), round(size[1])) != (width, height):
                raise CorruptSampleError(
                    path,
                    f"S_rect says {size[0]:.0f}x{size[1]:.0f} but the image is {width}x{height}",
                )
        try:
            return kitti_intrinsics(calib, camera, width, height)
        except ValueError as err:
            raise CorruptSampleError(path, str(err)) from err


def _date_of(drive: str) -> str:
    # drives are named <date>_drive_<nnnn>_sync
    return drive[:10]


def _frame_files(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        return {}
    return {int(p.stem): p for p in directory.glob("*.png") if p.stem.isdigit()}


class KittiDepthDataset(SampleDataset):
    """KITTI depth prediction ground truth with the matching raw RGB frames.

    Args:
        depth_root: root of data_depth_annotated (holds ``train/`` and ``val/``).
        raw_root: root of KITTI raw (holds ``<date>/``).
        split: ``"train"`` or ``"val"``.
        cameras: which cameras to use.
        transform: applied to every sample.

    Ground-truth frames whose RGB image is missing (raw drive not downloaded) are left out,
    with one warning giving the count.

    Raises:
        ValueError: unknown split / camera or no frame found.
    """

    name = "kitti_depth"

    def __init__(
        self,
        depth_root: str | os.PathLike[str],
        raw_root: str | os.PathLike[str],
        split: str = "train",
        cameras: Sequence[str] = KITTI_CAMERAS,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        bad = [c for c in cameras if c not in KITTI_CAMERAS]
        if bad or not cameras:
            raise ValueError(f"cameras must be a subset of {KITTI_CAMERAS}, got {tuple(cameras)}")
        self.depth_root = Path(depth_root)
        self.raw_root = Path(raw_root)
        self._calib = _CalibCache(self.raw_root)
        self.items: list[tuple[Path, Path, str, str]] = []  # (gt, rgb, date, camera)
        missing = 0
        split_dir = self.depth_root / split
        for drive_dir in sorted(p for p in split_dir.glob("*") if p.is_dir()):
            drive = drive_dir.name
            date = _date_of(drive)
            for camera in cameras:
                gts = _frame_files(drive_dir / "proj_depth" / "groundtruth" / camera)
                rgbs = _frame_files(self.raw_root / date / drive / camera / "data")
                for frame in sorted(gts):
                    if frame in rgbs:
                        self.items.append((gts[frame], rgbs[frame], date, camera))
                    else:
                        missing += 1
        if missing:
            log.warning(
                "%d KITTI ground-truth frames of %s have no RGB image under %s (left out)",
                missing,
                split_dir,
                self.raw_root,
            )
        if not self.items:
            raise ValueError(
                f"no KITTI depth frames found: expected {split_dir}/<drive>/proj_depth/"
                f"groundtruth/image_0x/*.png with RGB under "
                f"{self.raw_root}/<date>/<drive>/image_0x/data/"
            )

    def __len__(self) -> int:
        return len(self.items)

    def path_of(self, index: int) -> str:
        return str(self.items[index][0])

    def load(self, index: int) -> Sample:
        gt_path, rgb_path, date, camera = self.items[index]
        image = read_rgb(rgb_path)
        depth = read_kitti_depth(gt_path)
        check_same_size(gt_path, "ground truth", depth, image.shape)
        h, w = image.shape[:2]
        intrinsics = self._calib.intrinsics(date, camera, w, h)
        return Sample.build(image, intrinsics, depth=depth, meta={"rgb_path": str(rgb_path)})


class KittiSelectionDataset(SampleDataset):
    """The ``val_selection_cropped`` set (1000 frames of 1216x352) with its own intrinsics.

    Args:
        root: the ``val_selection_cropped`` directory (holds ``image/``,
            ``groundtruth_depth/`` and ``intrinsics/``).
        transform: applied to every sample.
    """

    name = "kitti_selection"

    def __init__(self, root: str | os.PathLike[str], transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.images = sorted((self.root / "image").glob("*_image_*.png"))
        if not self.images:
            raise ValueError(f"no images under {self.root / 'image'}; give val_selection_cropped")

    def __len__(self) -> int:
        return len(self.images)

    def path_of(self, index: int) -> str:
        return str(self.images[index])

    def load(self, index: int) -> Sample:
        rgb_path = self.images[index]
        stem = rgb_path.stem
        # <drive>_image_<frame>_image_0x: only the first "_image_" names the file kind
        gt_path = (
            self.root
            / "groundtruth_depth"
            / (stem.replace("_sync_image_", "_sync_groundtruth_depth_", 1) + ".png")
        )
        k_path = self.root / "intrinsics" / f"{stem}.txt"
        image = read_rgb(rgb_path)
        depth = read_kitti_depth(gt_path) if gt_path.is_file() else None
        if depth is not None:
            check_same_size(gt_path, "ground truth", depth, image.shape)
        try:
            k = np.loadtxt(k_path, dtype=np.float64).reshape(-1)
            if k.size not in (9, 12):
                raise ValueError(f"expected 9 or 12 numbers, got {k.size}")
        except (OSError, ValueError) as err:
            raise CorruptSampleError(k_path, f"cannot read intrinsics: {err}") from err
        h, w = image.shape[:2]
        intrinsics = CameraIntrinsics.from_matrix(k, w, h)
        return Sample.build(image, intrinsics, depth=depth)


_SPLIT_LINE = re.compile(r"^(\S+)\s+(\d+)\s+(\S+)$")


class KittiRawSequenceDataset(SampleDataset):
    """KITTI raw frames with temporal neighbours, for self-supervised (SfM) training.

    Each sample's ``image`` is the target frame and ``neighbours`` the frames at
    ``frame_offsets`` (10 Hz, so offset 1 = +0.1 s) of the same camera; targets without all
    neighbours (drive ends) are left out. ``poses`` is None (KITTI raw has no camera poses
    here). ``depth`` is the depth-prediction ground truth when ``depth_root`` is given and holds
    that frame (train or val), else all invalid.

    Args:
        raw_root: root of KITTI raw.
        drives: ``"<date>/<drive>"`` names to use (default: every drive found).
        cameras: cameras to use.
        frame_offsets: neighbour offsets in frames, e.g. ``(-1, 1)``.
        split_file: optional monodepth2-style list, lines ``<date>/<drive> <frame> <l|r>``;
            overrides ``drives`` / ``cameras``.
        depth_root: optional data_depth_annotated root for ground truth.
        transform: applied to every sample.

    Raises:
        ValueError: bad offsets or camera, or no usable frame.
    """

    name = "kitti_raw_sequence"
    frame_rate_hz = KITTI_FRAME_RATE_HZ

    def __init__(
        self,
        raw_root: str | os.PathLike[str],
        drives: Sequence[str] | None = None,
        cameras: Sequence[str] = ("image_02",),
        frame_offsets: Sequence[int] = (-1, 1),
        split_file: str | os.PathLike[str] | None = None,
        depth_root: str | os.PathLike[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        self.raw_root = Path(raw_root)
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        if 0 in self.frame_offsets or not self.frame_offsets:
            raise ValueError(f"frame_offsets must be non-zero and non-empty, got {frame_offsets}")
        bad = [c for c in cameras if c not in KITTI_CAMERAS]
        if bad or not cameras:
            raise ValueError(f"cameras must be a subset of {KITTI_CAMERAS}, got {tuple(cameras)}")
        self.depth_root = Path(depth_root) if depth_root is not None else None
        self._calib = _CalibCache(self.raw_root)
        self._frames: dict[tuple[str, str], dict[int, Path]] = {}
        # (drive path "<date>/<drive>", camera, frame)
        self.items: list[tuple[str, str, int]] = []
        if split_file is not None:
            wanted = self._read_split(Path(split_file))
        else:
            if drives is None:
                drives = sorted(
                    f"{p.parent.name}/{p.name}"
                    for p in self.raw_root.glob("*/*_drive_*")
                    if p.is_dir()
                )
            wanted = [(d.strip("/"), cam, None) for d in drives for cam in cameras]
        dropped = 0
        for drive, camera, frame in wanted:
            frames = self._frames_of(drive, camera)
            candidates = sorted(frames) if frame is None else [frame]
            for f in candidates:
                if f in frames and all(f + o in frames for o in self.frame_offsets):
                    self.items.append((drive, camera, f))
                elif frame is not None:
                    dropped += 1
        if dropped:
            log.warning(
                "%d frames of %s lack an image or a neighbour (left out)", dropped, split_file
            )
        if not self.items:
            raise ValueError(
                f"no KITTI raw frames with neighbours {self.frame_offsets} under {self.raw_root} "
                "(expected <date>/<drive>/image_0x/data/*.png)"
            )

    @staticmethod
    def _read_split(path: Path) -> list[tuple[str, str, int | None]]:
        if not path.is_file():
            raise ValueError(f"split file {path} not found")
        out: list[tuple[str, str, int | None]] = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            m = _SPLIT_LINE.match(line.strip())
            if not m or m.group(3) not in _SIDE_TO_CAMERA:
                raise ValueError(
                    f"{path}:{lineno}: expected '<date>/<drive> <frame> <l|r>', got {line!r}"
                )
            out.append((m.group(1).strip("/"), _SIDE_TO_CAMERA[m.group(3)], int(m.group(2))))
        return out

    def _frames_of(self, drive: str, camera: str) -> dict[int, Path]:
        key = (drive, camera)
        if key not in self._frames:
            self._frames[key] = _frame_files(self.raw_root / drive / camera / "data")
        return self._frames[key]

    def __len__(self) -> int:
        return len(self.items)

    def path_of(self, index: int) -> str:
        drive, camera, frame = self.items[index]
        return str(self._frames_of(drive, camera)[frame])

    def _ground_truth(self, drive: str, camera: str, frame: int) -> Path | None:
        if self.depth_root is None:
            return None
        name = Path(drive).name
        for split in ("train", "val"):
            path = (
                self.depth_root
                / split
                / name
                / "proj_depth"
                / "groundtruth"
                / camera
                / f"{frame:010d}.png"
            )
            if path.is_file():
                return path
        return None

    def load(self, index: int) -> Sample:
        drive, camera, frame = self.items[index]
        frames = self._frames_of(drive, camera)
        image = read_rgb(frames[frame])
        neighbours = []
        for o in self.frame_offsets:
            nb = read_rgb(frames[frame + o])
            check_same_size(frames[frame + o], "neighbour", nb, image.shape)
            neighbours.append(nb)
        h, w = image.shape[:2]
        intrinsics = self._calib.intrinsics(_date_of(Path(drive).name), camera, w, h)
        gt = self._ground_truth(drive, camera, frame)
        depth = read_kitti_depth(gt) if gt is not None else None
        if depth is not None:
            check_same_size(gt, "ground truth", depth, image.shape)
        return Sample.build(
            image,
            intrinsics,
            depth=depth,
            neighbours=neighbours,
            poses=None,
            meta={"offsets": self.frame_offsets, "frame": frame, "camera": camera},
        )
