"""Write a rosbag2 recording as a robot records it: images, camera_info, ``/tf``, ``/tf_static``.

Used by the tests and the adaptation study to turn a synthetic camera path into the exact
on-disk format of a real robot's bag (written with ``rosbags``, sqlite3 or MCAP): the
odometry ``odom -> base_link`` on ``/tf``, the camera mounting ``base_link -> camera_link ->
camera_optical_frame`` on ``/tf_static`` (latched once, as robot_state_publisher does), the
images stamped in the optical frame and their ``sensor_msgs/CameraInfo``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.tf_tree import invert_transform, make_transform, matrix_to_quaternion

ODOM, BASE, CAMERA_LINK, OPTICAL = "odom", "base_link", "camera_link", "camera_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
INFO_TOPIC = "/camera/camera_info"
# The camera body 0.25 m ahead of and 0.4 m above the robot's base, looking forward.
BASE_FROM_CAMERA_LINK = make_transform((0.25, 0.0, 0.4), (0.0, 0.0, 0.0, 1.0))
# REP 103: the optical frame (z forward, x right, y down) in the body frame (x forward, z up).
CAMERA_LINK_FROM_OPTICAL = make_transform((0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5))
BASE_FROM_OPTICAL = BASE_FROM_CAMERA_LINK @ CAMERA_LINK_FROM_OPTICAL


@dataclass
class PosedBag:
    """What :func:`write_posed_bag` wrote."""

    path: Path
    image_topic: str
    stamps_ns: list[int]


def base_poses_from_camera(camera_poses: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``T_odom_base`` for camera-to-odom poses of the optical frame (the mounting above)."""
    inv = invert_transform(BASE_FROM_OPTICAL)
    return [np.asarray(p, dtype=np.float64) @ inv for p in camera_poses]


def write_posed_bag(
    path: str | os.PathLike[str],
    images: Sequence[np.ndarray],
    stamps_ns: Sequence[int],
    intrinsics: CameraIntrinsics,
    odom: Sequence[tuple[int, np.ndarray]],
    storage: str = "sqlite3",
    compressed: bool = False,
    camera_info: bool = True,
    tf_static: bool = True,
) -> PosedBag:
    """A rosbag2 bag with images (rgb8 Image or jpeg CompressedImage), camera_info and TF.

    Args:
        path: the bag directory to create.
        images: HxWx3 uint8 RGB frames, written in this order with these ``stamps_ns``
            (header stamps; receive times are the stamps plus 1 ms, in writing order).
        stamps_ns: header stamps of the images.
        intrinsics: the camera (written as CameraInfo K and P, plumb_bob, no distortion).
        odom: ``(stamp_ns, T_odom_base)`` samples written on ``/tf``.
        storage: ``sqlite3`` or ``mcap``.
        compressed: write ``sensor_msgs/CompressedImage`` (jpeg) instead of ``Image``.
        camera_info: write the CameraInfo topic.
        tf_static: write the camera mounting on ``/tf_static``.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
    if len(images) != len(stamps_ns):
        raise ValueError(f"{len(images)} images but {len(stamps_ns)} stamps")
    ts = get_typestore(Stores.ROS2_JAZZY)
    t = ts.types
    image_t, comp_t = t["sensor_msgs/msg/Image"], t["sensor_msgs/msg/CompressedImage"]
    info_t, roi_t = t["sensor_msgs/msg/CameraInfo"], t["sensor_msgs/msg/RegionOfInterest"]
    header_t, time_t = t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    tfm_t, tfs_t = t["tf2_msgs/msg/TFMessage"], t["geometry_msgs/msg/TransformStamped"]
    tr_t, vec_t = t["geometry_msgs/msg/Transform"], t["geometry_msgs/msg/Vector3"]
    quat_t = t["geometry_msgs/msg/Quaternion"]

    def header(ns: int, frame_id: str) -> object:
        return header_t(stamp=time_t(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)

    def stamped(ns: int, parent: str, child: str, tf: np.ndarray) -> object:
        q = matrix_to_quaternion(tf[:3, :3])
        return tfs_t(
            header=header(ns, parent),
            child_frame_id=child,
            transform=tr_t(
                translation=vec_t(x=tf[0, 3], y=tf[1, 3], z=tf[2, 3]),
                rotation=quat_t(x=q[0], y=q[1], z=q[2], w=q[3]),
            ),
        )

    events: list[tuple[int, str, object]] = []  # (receive time, topic, message)
    first = int(min(list(stamps_ns) + [s for s, _ in odom] or [0]))
    if tf_static:
        msg = tfm_t(
            transforms=[
                stamped(first, BASE, CAMERA_LINK, BASE_FROM_CAMERA_LINK),
                stamped(first, CAMERA_LINK, OPTICAL, CAMERA_LINK_FROM_OPTICAL),
            ]
        )
        events.append((first, "/tf_static", msg))
    for ns, tf in odom:
        events.append((int(ns) + 500_000, "/tf", tfm_t(transforms=[stamped(ns, ODOM, BASE, tf)])))
    w, h = intrinsics.width, intrinsics.height
    info = info_t(
        header=header(first, OPTICAL),
        height=h,
        width=w,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=intrinsics.matrix.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=intrinsics.projection.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi_t(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )
    image_topic = COMPRESSED_TOPIC if compressed else IMAGE_TOPIC
    arrival = first
    for rgb, ns in zip(images, stamps_ns, strict=True):
        arrival = max(arrival, int(ns)) + 1_000_000  # writing order is the receive order
        if compressed:
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))
            if not ok:
                raise ValueError("jpeg encoding failed")
            msg = comp_t(header=header(int(ns), OPTICAL), format="jpeg", data=data.reshape(-1))
        else:
            msg = image_t(
                header=header(int(ns), OPTICAL),
                height=h,
                width=w,
                encoding="rgb8",
                is_bigendian=0,
                step=w * 3,
                data=np.ascontiguousarray(rgb).reshape(-1),
            )
        events.append((arrival, image_topic, msg))
        if camera_info:
            info.header = header(int(ns), OPTICAL)
            events.append((arrival, INFO_TOPIC, ts.serialize_cdr(info, info_t.__msgtype__)))
    events.sort(key=lambda e: e[0])
    types = {
        "/tf_static": tfm_t.__msgtype__,
        "/tf": tfm_t.__msgtype__,
        image_topic: (comp_t if compressed else image_t).__msgtype__,
        INFO_TOPIC: info_t.__msgtype__,
    }
    out = Path(path)
    with Writer(out, version=9, storage_plugin=plugins[storage]) as writer:
        conns = {}
        for topic in dict.fromkeys(e[1] for e in events):
            conns[topic] = writer.add_connection(topic, types[topic], typestore=ts)
        for when, topic, msg in events:
            raw = msg if isinstance(msg, bytes | memoryview) else None
            if raw is None:
                raw = ts.serialize_cdr(msg, types[topic])
            writer.write(conns[topic], when, raw)
    return PosedBag(out, image_topic, [int(s) for s in stamps_ns])
