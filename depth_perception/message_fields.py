"""Reading ROS message fields into the core's arrays and intrinsics, without rclpy.

Duck-typed on the field names of sensor_msgs, so rclpy messages (the node) and the
``rosbags`` library's deserialised messages (bag tools, training) share one implementation.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.image_encoding import ImageFormatError, decode_to_rgb

COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
_DEPTH_DTYPES = {"16UC1": ("u2", 0.001), "mono16": ("u2", 0.001), "32FC1": ("f4", 1.0)}


def intrinsics_from_camera_info(msg: Any) -> CameraIntrinsics:
    """Intrinsics from a deserialised CameraInfo: P (rectified), or K when P is zero.

    Raises:
        ValueError: empty size, or neither P nor K valid.
    """
    if int(msg.width) == 0 or int(msg.height) == 0:
        raise ValueError(f"camera_info has an empty size {msg.width}x{msg.height}")
    for matrix in (msg.p, msg.k):
        values = np.asarray(matrix, dtype=np.float64)
        if values.size in (9, 12) and np.all(np.isfinite(values)) and values[0] > 0:
            return CameraIntrinsics.from_matrix(values, int(msg.width), int(msg.height))
    raise ValueError("camera_info has neither a valid P nor a valid K (zero or non-finite)")


def decode_depth(msg: Any) -> np.ndarray:
    """A depth Image message (16UC1 / mono16 mm, 32FC1 m) -> HxW float32 metres.

    Raises:
        ImageFormatError: unsupported encoding or a buffer that does not match the size.
    """
    enc = str(msg.encoding)
    if enc not in _DEPTH_DTYPES:
        raise ImageFormatError(f"unsupported depth encoding {enc!r}; use 16UC1 (mm) or 32FC1 (m)")
    kind, scale = _DEPTH_DTYPES[enc]
    dtype = np.dtype((">" if msg.is_bigendian else "<") + kind)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if h <= 0 or w <= 0 or step < w * dtype.itemsize or data.size != h * step:
        raise ImageFormatError(
            f"depth image {w}x{h} step {step} does not match its {data.size}-byte buffer"
        )
    rows = data.reshape(h, step)[:, : w * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(np.float32) * np.float32(
        scale
    )


def decode_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """An Image or CompressedImage message -> HxWx3 uint8 RGB.

    Raises:
        ImageFormatError: unsupported encoding or undecodable data.
    """
    if msgtype == COMPRESSED_TYPE:
        img = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ImageFormatError(f"cannot decode compressed image (format {msg.format!r})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return decode_to_rgb(msg.data, int(msg.width), int(msg.height), int(msg.step), msg.encoding)
