"""The user's own rosbag2 recordings (sqlite3 or MCAP) as RGB-D training samples.

Read with the pure-Python ``rosbags`` library (no ROS installation needed). A recording
provides:

* an RGB topic: ``sensor_msgs/msg/Image`` (any encoding of
  ``depth_perception.image_encoding.SUPPORTED_INPUT_ENCODINGS``: rgb8, bgr8, rgba8, bgra8,
  mono8) or ``sensor_msgs/msg/CompressedImage`` (jpeg / png);
* optionally a depth topic *registered to the RGB camera* (e.g. RealSense
  ``aligned_depth_to_color``): ``16UC1`` / ``mono16`` in millimetres or ``32FC1`` in metres;
  0, NaN and inf are invalid. Depth of another resolution is resized nearest-neighbour;
* a ``sensor_msgs/msg/CameraInfo`` topic of the RGB camera (P, or K when P is zero, as the
  ROS node does), or fixed ``intrinsics``.

Messages are paired by header stamp (the bag's receive time when the stamp is zero): each
RGB frame takes the depth frame nearest in time, if within ``tolerance_s`` (default 20 ms),
and the camera_info nearest in time. RGB frames without depth are left out (counted in
``unpaired``). With ``frame_offsets``, ``neighbours`` are the RGB frames that many messages
before / after the target (``poses`` None).

Splits are contiguous in time, so validation frames are not interleaved with (near-duplicate)
training frames: ``val`` is the last ``val_fraction`` of the usable frames (at least one),
``train`` the frames before them, ``all`` every frame.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.image_encoding import ImageFormatError
from depth_perception.message_fields import (
    COMPRESSED_TYPE,
    decode_depth,
    decode_rgb,
    intrinsics_from_camera_info,
)
from training.data.base import CorruptSampleError, SampleDataset, Transform
from training.data.sample import Sample

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class _MessageRef:
    """Where a message is: its topic, bag receive time and rank among equal receive times."""

    topic: str
    log_time: int
    rank: int
    stamp: int


def _stamp_ns(msg: Any, log_time: int) -> int:
    stamp = msg.header.stamp
    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return ns if ns != 0 else int(log_time)


class RosbagDataset(SampleDataset):
    """RGB(-D) samples from one rosbag2 recording (see the module docstring).

    Args:
        bag_path: the bag directory (with ``metadata.yaml``), sqlite3 or MCAP storage.
        rgb_topic: colour image topic.
        depth_topic: registered depth topic, or None for RGB-only (self-supervised) data.
        camera_info_topic: CameraInfo topic; None picks the only CameraInfo topic of the
            bag, unless ``intrinsics`` is given.
        intrinsics: fixed intrinsics instead of a CameraInfo topic (scaled to the image size).
        tolerance_s: largest RGB-depth stamp difference for a pair, seconds.
        frame_offsets: RGB neighbours to return, in messages (e.g. ``(-1, 1)``).
        split: ``"all"``, ``"train"`` (the frames before the last ``val_fraction``) or
            ``"val"`` (the last ``val_fraction`` of the usable frames, at least one).
        val_fraction: share of the recording, at its end, held out as ``val``.
        transform: applied to every sample.

    Raises:
        ValueError: missing bag or topics, wrong message types, no pair within tolerance, an
            unknown split, or too few frames to split.
    """

    name = "rosbag"

    def __init__(
        self,
        bag_path: str | os.PathLike[str],
        rgb_topic: str,
        depth_topic: str | None = None,
        camera_info_topic: str | None = None,
        intrinsics: CameraIntrinsics | None = None,
        tolerance_s: float = 0.02,
        frame_offsets: Sequence[int] = (),
        split: str = "all",
        val_fraction: float = 0.1,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in ("all", "train", "val"):
            raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.split = split
        self.bag_path = Path(bag_path)
        if not self.bag_path.exists():
            raise ValueError(f"bag {self.bag_path} not found")
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        if 0 in self.frame_offsets:
            raise ValueError(f"frame_offsets must be non-zero, got {frame_offsets}")
        self.fixed_intrinsics = intrinsics
        self._reader: Any = None
        self._pid = -1
        reader = self._open()
        try:
            types = {c.topic: c.msgtype for c in reader.connections}
            self.rgb_topic = rgb_topic
            self.depth_topic = depth_topic
            self._check_topic(types, rgb_topic, (IMAGE_TYPE, COMPRESSED_TYPE))
            self.rgb_type = types[rgb_topic]
            if depth_topic is not None:
                self._check_topic(types, depth_topic, (IMAGE_TYPE,))
            if camera_info_topic is None and intrinsics is None:
                infos = [t for t, m in types.items() if m == CAMERA_INFO_TYPE]
                if len(infos) != 1:
                    raise ValueError(
                        f"{self.bag_path}: give camera_info_topic or intrinsics (CameraInfo "
                        f"topics in the bag: {infos or 'none'})"
                    )
                camera_info_topic = infos[0]
            if camera_info_topic is not None:
                self._check_topic(types, camera_info_topic, (CAMERA_INFO_TYPE,))
            self.camera_info_topic = camera_info_topic
            rgb, depth, infos_k = self._index(reader)
        finally:
            self.close()
        self._rgb_refs = rgb
        self.items: list[tuple[int, _MessageRef | None, CameraIntrinsics | None]] = []
        self.unpaired = 0
        depth_stamps = np.array([d.stamp for d in depth], dtype=np.int64)
        info_stamps = np.array([s for s, _ in infos_k], dtype=np.int64)
        tol = round(tolerance_s * 1e9)
        lo, hi = min(self.frame_offsets, default=0), max(self.frame_offsets, default=0)
        for i, ref in enumerate(rgb):
            if i + lo < 0 or i + hi >= len(rgb):
                continue
            depth_ref = None
            if depth_topic is not None:
                j = _nearest(depth_stamps, ref.stamp)
                if j is None or abs(int(depth_stamps[j]) - ref.stamp) > tol:
                    self.unpaired += 1
                    continue
                depth_ref = depth[j]
            k = _nearest(info_stamps, ref.stamp)
            self.items.append((i, depth_ref, None if k is None else infos_k[k][1]))
        if self.unpaired:
            log.warning(
                "%s: %d of %d RGB frames have no depth within %.0f ms (left out)",
                self.bag_path,
                self.unpaired,
                len(rgb),
                tolerance_s * 1e3,
            )
        if not self.items:
            raise ValueError(
                f"{self.bag_path}: no usable frame on {rgb_topic} ({len(rgb)} RGB, {len(depth)} "
                f"depth messages; tolerance {tolerance_s * 1e3:.0f} ms)"
            )
        if split != "all":
            n_val = max(1, round(len(self.items) * val_fraction))
            if n_val >= len(self.items):
                raise ValueError(
                    f"{self.bag_path}: {len(self.items)} usable frames are too few for a "
                    f"train/val split with val_fraction {val_fraction}; use split 'all'"
                )
            cut = len(self.items) - n_val
            self.items = self.items[:cut] if split == "train" else self.items[cut:]

    def _check_topic(self, types: dict[str, str], topic: str, allowed: tuple[str, ...]) -> None:
        if topic not in types:
            raise ValueError(
                f"{self.bag_path} has no topic {topic!r}; topics: {', '.join(sorted(types))}"
            )
        if types[topic] not in allowed:
            raise ValueError(f"{topic} is {types[topic]}, expected {' or '.join(allowed)}")

    def _open(self) -> Any:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if self._reader is None or self._pid != os.getpid():
            # The typestore is only used for bags without embedded definitions (older Humble
            # sqlite bags); Image and CameraInfo are the same in every ROS 2 release.
            reader = AnyReader(
                [self.bag_path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)
            )
            reader.open()
            self._reader, self._pid = reader, os.getpid()
        return self._reader

    def close(self) -> None:
        """Close this process's bag reader (reopened on the next access)."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_pid"] = -1
        return state

    def _index(
        self, reader: Any
    ) -> tuple[list[_MessageRef], list[_MessageRef], list[tuple[int, CameraIntrinsics]]]:
        topics = {self.rgb_topic, self.depth_topic, self.camera_info_topic} - {None}
        conns = [c for c in reader.connections if c.topic in topics]
        refs: dict[str, list[_MessageRef]] = {t: [] for t in topics if t is not None}
        infos: list[tuple[int, CameraIntrinsics]] = []
        last: dict[tuple[str, int], int] = {}
        for conn, log_time, raw in reader.messages(connections=conns):
            rank = last.get((conn.topic, log_time), -1) + 1
            last[(conn.topic, log_time)] = rank
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as err:  # a damaged message must not hide the others
                log.warning(
                    "%s: cannot read a %s message at %d: %s",
                    self.bag_path,
                    conn.topic,
                    log_time,
                    err,
                )
                continue
            stamp = _stamp_ns(msg, log_time)
            if conn.topic == self.camera_info_topic:
                try:
                    infos.append((stamp, intrinsics_from_camera_info(msg)))
                except ValueError as err:
                    log.warning("%s: bad camera_info at %d: %s", self.bag_path, stamp, err)
            else:
                refs[conn.topic].append(_MessageRef(conn.topic, log_time, rank, stamp))
        rgb = sorted(refs[self.rgb_topic], key=lambda r: r.stamp)
        depth = sorted(
            refs.get(self.depth_topic, []) if self.depth_topic else [], key=lambda r: r.stamp
        )
        infos.sort(key=lambda x: x[0])
        if self.camera_info_topic is not None and not infos:
            raise ValueError(f"{self.bag_path}: no valid message on {self.camera_info_topic}")
        return rgb, depth, infos

    def _read(self, ref: _MessageRef) -> tuple[Any, str]:
        reader = self._open()
        conns = [c for c in reader.connections if c.topic == ref.topic]
        found = -1
        for conn, _, raw in reader.messages(
            connections=conns, start=ref.log_time, stop=ref.log_time + 1
        ):
            found += 1
            if found == ref.rank:
                return reader.deserialize(raw, conn.msgtype), conn.msgtype
        raise CorruptSampleError(self.path_of_ref(ref), "message not found on re-reading")

    def path_of_ref(self, ref: _MessageRef) -> str:
        return f"{self.bag_path}:{ref.topic}@{ref.stamp}"

    def __len__(self) -> int:
        return len(self.items)

    def path_of(self, index: int) -> str:
        return self.path_of_ref(self._rgb_refs[self.items[index][0]])

    def _rgb(self, ref: _MessageRef) -> np.ndarray:
        msg, msgtype = self._read(ref)
        try:
            return decode_rgb(msg, msgtype)
        except ImageFormatError as err:
            raise CorruptSampleError(self.path_of_ref(ref), str(err)) from err

    def load(self, index: int) -> Sample:
        i, depth_ref, info = self.items[index]
        ref = self._rgb_refs[i]
        image = self._rgb(ref)
        h, w = image.shape[:2]
        depth = None
        if depth_ref is not None:
            msg, _ = self._read(depth_ref)
            try:
                depth = decode_depth(msg)
            except ImageFormatError as err:
                raise CorruptSampleError(self.path_of_ref(depth_ref), str(err)) from err
            if depth.shape != (h, w):
                depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
        base = self.fixed_intrinsics if self.fixed_intrinsics is not None else info
        if base is None:  # unreachable: __init__ requires one of them
            raise CorruptSampleError(self.path_of(index), "no intrinsics")
        intrinsics = base if (base.width, base.height) == (w, h) else base.scaled(w, h)
        neighbours = []
        for o in self.frame_offsets:
            nb = self._rgb(self._rgb_refs[i + o])
            if nb.shape != image.shape:
                raise CorruptSampleError(
                    self.path_of_ref(self._rgb_refs[i + o]), f"neighbour is {nb.shape}"
                )
            neighbours.append(nb)
        meta: dict[str, Any] = {"stamp_ns": ref.stamp}
        if self.frame_offsets:
            meta["offsets"] = self.frame_offsets
        if depth_ref is not None:
            meta["depth_dt_s"] = (depth_ref.stamp - ref.stamp) * 1e-9
        return Sample.build(image, intrinsics, depth=depth, neighbours=neighbours, meta=meta)


def _nearest(sorted_stamps: np.ndarray, stamp: int) -> int | None:
    """Index of the stamp nearest to ``stamp`` in a sorted array, None when empty."""
    if sorted_stamps.size == 0:
        return None
    j = int(np.searchsorted(sorted_stamps, stamp))
    if j == 0:
        return 0
    if j == sorted_stamps.size:
        return j - 1
    return j if sorted_stamps[j] - stamp < stamp - sorted_stamps[j - 1] else j - 1
