"""A robot's own rosbag2 recording as posed frame triplets for self-supervised adaptation.

No depth sensor is needed: the bag holds a camera (``sensor_msgs/Image`` or
``CompressedImage``), its ``sensor_msgs/CameraInfo`` and the TF tree (``/tf`` with the
odometry ``odom -> base_link``, ``/tf_static`` with the camera's mounting). For every image
the camera's pose in the odometry frame is composed from the TF tree at the image stamp
(:class:`~training.data.tf_tree.TransformTree`, interpolating between TF samples); the image's
``header.frame_id`` names the camera frame (the optical frame, x right, y down, z forward, as
REP 103 wants for images) unless ``camera_frame`` overrides it.

Each target frame gets two source frames, the nearest before and after it whose camera moved
at least ``min_translation_m`` (parallax) while turning at most ``max_rotation_deg`` (enough
overlap), searched at most ``max_frames_apart`` frames away. ``poses[k]`` is the known
target-to-source transform ``inv(pose_source) @ pose_target``, so a photometric loss that
warps with it learns depth in the odometry's unit: metres.

Bad recordings are refused with a message saying what is missing: no TF chain between the
odometry and camera frames, no camera_info, image stamps out of order, or a camera that never
moves enough for parallax.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.base import Transform
from training.data.rosbag import CAMERA_INFO_TYPE, RosbagDataset
from training.data.sample import Sample
from training.data.tf_tree import (
    TransformError,
    TransformTree,
    invert_transform,
    rotation_angle,
)

log = logging.getLogger(__name__)

TF_TYPE = "tf2_msgs/msg/TFMessage"
TF_TOPICS = ("/tf", "/tf_static")


def read_tf_tree(reader: Any, tolerance_ns: int = 50_000_000) -> TransformTree:
    """Every transform on ``/tf`` and ``/tf_static`` of an open ``rosbags`` reader."""
    tree = TransformTree(tolerance_ns)
    conns = [c for c in reader.connections if c.topic in TF_TOPICS and c.msgtype == TF_TYPE]
    for conn, _, raw in reader.messages(connections=conns):
        msg = reader.deserialize(raw, conn.msgtype)
        for tf in msg.transforms:
            stamp = int(tf.header.stamp.sec) * 1_000_000_000 + int(tf.header.stamp.nanosec)
            t, q = tf.transform.translation, tf.transform.rotation
            tree.add(
                tf.header.frame_id,
                tf.child_frame_id,
                stamp,
                (t.x, t.y, t.z),
                (q.x, q.y, q.z, q.w),
                static=conn.topic == "/tf_static",
            )
    return tree


def select_triplets(
    poses: Sequence[np.ndarray],
    min_translation_m: float,
    max_rotation_deg: float,
    max_frames_apart: int,
) -> list[tuple[int, int, int]]:
    """``(previous, target, next)`` frame indices with enough parallax on both sides.

    For each target the nearest earlier and later frames (within ``max_frames_apart``) whose
    camera centre is at least ``min_translation_m`` away are taken, provided the rotation
    between the two cameras is at most ``max_rotation_deg``.
    """
    max_rot = math.radians(max_rotation_deg)

    def partner(i: int, step: int) -> int | None:
        for j in range(i + step, i + step * (max_frames_apart + 1), step):
            if not 0 <= j < len(poses):
                return None
            if np.linalg.norm(poses[j][:3, 3] - poses[i][:3, 3]) >= min_translation_m:
                rel = invert_transform(poses[j]) @ poses[i]
                return j if rotation_angle(rel) <= max_rot else None
        return None

    out = []
    for i in range(len(poses)):
        prev, nxt = partner(i, -1), partner(i, 1)
        if prev is not None and nxt is not None:
            out.append((prev, i, nxt))
    return out


class PosedBagDataset(RosbagDataset):
    """Posed frame triplets from a rosbag2 recording with TF (see the module docstring).

    Args:
        bag_path: the bag directory (sqlite3 or MCAP).
        image_topic: camera topic (Image or CompressedImage).
        camera_info_topic: its CameraInfo topic; None picks the bag's only one.
        odom_frame: the odometry frame (fixed world of the robot), e.g. ``odom``.
        base_frame: the robot's body frame, e.g. ``base_link`` (only checked, for clear
            messages: the chain odom -> base -> camera must exist).
        camera_frame: the camera's optical frame; None: the images' ``header.frame_id``.
        min_translation_m: least camera motion between target and source frames.
        max_rotation_deg: largest rotation between them.
        max_frames_apart: how far (in frames) to look for a source frame.
        tf_tolerance_s: how far outside the recorded TF a stamp may lie and still use the
            first / last sample.
        split: ``all``; ``train`` / ``val``: all but / only the last ``val_fraction`` of the
            triplets (contiguous in time).
        val_fraction: share held out as ``val``.
        transform: applied to every sample.

    Raises:
        ValueError: see the module docstring; every message names the bag and what to fix.
    """

    name = "rosbag_posed"

    def __init__(
        self,
        bag_path: str | os.PathLike[str],
        image_topic: str,
        camera_info_topic: str | None = None,
        odom_frame: str = "odom",
        base_frame: str = "base_link",
        camera_frame: str | None = None,
        min_translation_m: float = 0.05,
        max_rotation_deg: float = 15.0,
        max_frames_apart: int = 10,
        tf_tolerance_s: float = 0.05,
        split: str = "all",
        val_fraction: float = 0.1,
        transform: Transform | None = None,
    ) -> None:
        if not min_translation_m > 0 or not max_rotation_deg > 0 or max_frames_apart < 1:
            raise ValueError(
                "min_translation_m and max_rotation_deg must be > 0 and max_frames_apart >= 1, "
                f"got {min_translation_m}, {max_rotation_deg}, {max_frames_apart}"
            )
        self._check_camera_info(bag_path, image_topic, camera_info_topic)
        super().__init__(
            bag_path,
            image_topic,
            camera_info_topic=camera_info_topic,
            split="all",
            val_fraction=val_fraction,
            transform=transform,
        )
        self.odom_frame, self.base_frame = odom_frame, base_frame
        refs = self._rgb_refs
        self._check_order(refs)
        reader = self._open()
        try:
            tree = read_tf_tree(reader, round(tf_tolerance_s * 1e9))
            first, _ = self._read(refs[0])
        finally:
            self.close()
        cam = camera_frame or str(first.header.frame_id)
        if not cam:
            raise ValueError(
                f"{self.bag_path}: images on {image_topic} have no header.frame_id; give "
                "camera_frame (the camera's optical frame in the TF tree)"
            )
        self.camera_frame = cam
        for a, b in ((odom_frame, base_frame), (base_frame, cam)):
            if not tree.can_transform(a, b):
                frames = ", ".join(sorted(tree.frames)) or "none (no /tf or /tf_static)"
                raise ValueError(
                    f"{self.bag_path}: no TF between {a!r} and {b!r}, so the camera's motion "
                    f"is unknown; the bag's TF frames: {frames}. Record /tf and /tf_static (or "
                    "give --odom-frame / --base-frame / --camera-frame)"
                )
        poses: list[np.ndarray] = []
        kept: list[int] = []
        infos = {i: info for i, _, info in self.items}
        for index, ref in enumerate(refs):
            try:
                poses.append(tree.lookup(odom_frame, cam, ref.stamp))
            except TransformError:
                continue  # outside the recorded odometry: left out, counted below
            kept.append(index)
        if len(kept) < len(refs):
            log.warning(
                "%s: %d of %d images are outside the recorded TF (left out)",
                self.bag_path,
                len(refs) - len(kept),
                len(refs),
            )
        if len(kept) < 3:
            raise ValueError(
                f"{self.bag_path}: only {len(kept)} of {len(refs)} images have a camera pose "
                f"(TF {odom_frame} -> {cam} recorded over {tree.time_range(odom_frame, cam)} ns)"
            )
        triplets = select_triplets(poses, min_translation_m, max_rotation_deg, max_frames_apart)
        if not triplets:
            centres = np.stack([p[:3, 3] for p in poses])
            far = np.minimum(np.arange(len(poses)) + max_frames_apart, len(poses) - 1)
            steps = np.linalg.norm(centres[far] - centres, axis=1)
            raise ValueError(
                f"{self.bag_path}: no parallax: the camera moves at most {max(steps):.3f} m "
                f"within {max_frames_apart} frames (min_translation_m {min_translation_m}, "
                f"max_rotation_deg {max_rotation_deg}); record while the robot drives, or lower "
                "min_translation_m"
            )
        self.poses = poses
        self.triplets = [(kept[a], kept[b], kept[c]) for a, b, c in triplets]
        self.intrinsics_of = infos
        if split not in ("all", "train", "val"):
            raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
        self.split = split
        if split != "all":
            n_val = max(1, round(len(self.triplets) * val_fraction))
            if n_val >= len(self.triplets):
                raise ValueError(
                    f"{self.bag_path}: {len(self.triplets)} triplets are too few to split"
                )
            cut = len(self.triplets) - n_val
            self.triplets = self.triplets[:cut] if split == "train" else self.triplets[cut:]
        self._pose_of = dict(zip(kept, poses, strict=True))
        self.moved_m = float(
            sum(np.linalg.norm(b[:3, 3] - a[:3, 3]) for a, b in itertools.pairwise(poses))
        )
        self.duration_s = (refs[kept[-1]].stamp - refs[kept[0]].stamp) * 1e-9

    @staticmethod
    def _check_camera_info(
        bag_path: str | os.PathLike[str], image_topic: str, camera_info_topic: str | None
    ) -> None:
        if camera_info_topic is not None or not os.path.exists(bag_path):
            return
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        with AnyReader([Path(bag_path)], default_typestore=store) as r:
            infos = [c.topic for c in r.connections if c.msgtype == CAMERA_INFO_TYPE]
        if not infos:
            raise ValueError(
                f"{bag_path}: the images on {image_topic} have no camera_info (no "
                "sensor_msgs/CameraInfo topic in the bag): the intrinsics are needed to warp "
                "between frames; record the camera's camera_info topic too"
            )

    def _check_order(self, refs: Sequence[Any]) -> None:
        # refs are sorted by header stamp; in recording order they must be sorted too.
        by_arrival = sorted(refs, key=lambda r: (r.log_time, r.rank))
        stamps = [r.stamp for r in by_arrival]
        for a, b in itertools.pairwise(stamps):
            if b <= a:
                raise ValueError(
                    f"{self.bag_path}: image stamps on {self.rgb_topic} are out of order "
                    f"(a frame stamped {b * 1e-9:.6f} s was recorded after one stamped "
                    f"{a * 1e-9:.6f} s); the camera driver's clock jumped or the bag was "
                    "merged wrongly: fix the stamps (or cut the bag) first"
                )

    def __len__(self) -> int:
        return len(self.triplets)

    def path_of(self, index: int) -> str:
        return self.path_of_ref(self._rgb_refs[self.triplets[index][1]])

    def _intrinsics(self, index: int, w: int, h: int) -> CameraIntrinsics:
        info = self.intrinsics_of.get(index)
        if info is None:  # every image was paired with the nearest camera_info in __init__
            info = next(iter(self.intrinsics_of.values()))
        return info if (info.width, info.height) == (w, h) else info.scaled(w, h)

    def load(self, index: int) -> Sample:
        prev, target, nxt = self.triplets[index]
        ref = self._rgb_refs[target]
        image = self._rgb(ref)
        h, w = image.shape[:2]
        neighbours = [self._rgb(self._rgb_refs[j]) for j in (prev, nxt)]
        pose_t = self._pose_of[target]
        poses = [invert_transform(self._pose_of[j]) @ pose_t for j in (prev, nxt)]
        meta: dict[str, Any] = {
            "stamp_ns": ref.stamp,
            "offsets": (prev - target, nxt - target),
            "pose": pose_t,
        }
        return Sample.build(
            image, self._intrinsics(target, w, h), neighbours=neighbours, poses=poses, meta=meta
        )
