"""Conversions between ROS 2 messages and the core's numpy arrays (no cv_bridge needed).

A message's ``data`` is an ``array.array('B')``. Arrays that the core wrote into a reused
buffer (a full view over an ``array.array``, see ``depth_perception.buffers``) are handed over
as they are: a message created with ``check_fields=True`` keeps an assigned ``array.array``
without copying it, and ``publish()`` serializes it inside the call, so the core may overwrite
the buffer for the next frame. Other arrays are copied once with ``array.array('B')`` +
``frombytes`` (assigning an ndarray or a memoryview goes through rosidl's per-element checks and
is ~1000x slower).
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, LaserScan, PointCloud2, PointField
from std_msgs.msg import Header

from depth_perception.buffers import backing_payload
from depth_perception.camera import CameraIntrinsics
from depth_perception.frame_pipeline import FrameOutputs
from depth_perception.image_encoding import (
    decode_compressed_to_rgb,
    decode_to_rgb,
    encoding_for_array,
)
from depth_perception.laserscan import ScanData
from depth_perception.pointcloud import CloudData


def fast_bytes(buffer: np.ndarray) -> array.array:
    """A uint8 ``array.array`` holding ``buffer``'s bytes, the fast type for ``msg.data``."""
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(buffer)).cast("B"))
    return data


def payload_of(values: np.ndarray) -> array.array:
    """``msg.data`` for ``values``: its own reused buffer when it has one, else a copy."""
    payload = backing_payload(values)
    return payload if payload is not None else fast_bytes(values)


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """Decode a sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) into HxWx3 RGB uint8."""
    return decode_to_rgb(msg.data, msg.width, msg.height, msg.step, msg.encoding)


def compressed_msg_to_rgb(msg) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg or png) into HxWx3 RGB uint8."""
    return decode_compressed_to_rgb(msg.data, msg.format)


def array_to_image_msg(array_: np.ndarray, header: Header, encoding: str | None = None) -> Image:
    """An Image message for a 2-D float32/uint16/uint8 or HxWx3 uint8 array."""
    # check_fields=True: the message keeps an assigned array.array instead of copying it.
    msg = Image(check_fields=True)
    msg.header = header
    msg.height, msg.width = (int(n) for n in array_.shape[:2])
    msg.encoding = encoding or encoding_for_array(array_)
    msg.is_bigendian = 0
    # A row of the published bytes (the copy of a non-contiguous array is contiguous).
    msg.step = msg.width * int(np.prod(array_.shape[2:], dtype=np.int64)) * array_.itemsize
    msg.data = payload_of(array_)
    return msg


def image_msg_to_array(msg: Image) -> np.ndarray:
    """The pixels of a 32FC1, 16UC1, mono8 or rgb8 message as a numpy view (no row padding)."""
    dtypes = {
        "32FC1": (np.float32, 1),
        "16UC1": (np.uint16, 1),
        "mono8": (np.uint8, 1),
        "rgb8": (np.uint8, 3),
        "bgr8": (np.uint8, 3),
    }
    if msg.encoding not in dtypes:
        raise ValueError(f"cannot read encoding '{msg.encoding}'")
    dtype, channels = dtypes[msg.encoding]
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    row = msg.width * channels * np.dtype(dtype).itemsize
    pixels = np.ascontiguousarray(raw[:, :row]).view(dtype)
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels


def camera_info_msg(
    intrinsics: CameraIntrinsics, header: Header, source: CameraInfo | None = None
) -> CameraInfo:
    """A CameraInfo for ``intrinsics``; distortion model and D copied from ``source`` if given."""
    msg = CameraInfo()
    msg.header = header
    msg.width = intrinsics.width
    msg.height = intrinsics.height
    msg.distortion_model = source.distortion_model if source is not None else "plumb_bob"
    msg.d = list(source.d) if source is not None else [0.0] * 5
    msg.k = intrinsics.matrix.reshape(-1).tolist()
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = intrinsics.projection.reshape(-1).tolist()
    return msg


def cloud_msg(cloud: CloudData, header: Header) -> PointCloud2:
    """An organized PointCloud2 that takes the core's cloud buffer as its data (no copy)."""
    msg = PointCloud2(check_fields=True)
    msg.header = header
    msg.height = cloud.height
    msg.width = cloud.width
    msg.fields = [
        PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
        for f in cloud.fields
    ]
    msg.is_bigendian = False
    msg.point_step = cloud.point_step
    msg.row_step = cloud.row_step
    msg.is_dense = bool(cloud.is_dense)
    if cloud.payload is not None and backing_payload(cloud.data) is cloud.payload:
        msg.data = cloud.payload
    else:
        msg.data = fast_bytes(cloud.data)
    return msg


def scan_msg(scan: ScanData, header: Header) -> LaserScan:
    """A LaserScan of ``scan`` (ranges copied once: a few hundred floats)."""
    msg = LaserScan()
    msg.header = header
    msg.angle_min = float(scan.angle_min)
    msg.angle_max = float(scan.angle_max)
    msg.angle_increment = float(scan.angle_increment)
    msg.time_increment = float(scan.time_increment)
    msg.scan_time = float(scan.scan_time)
    msg.range_min = float(scan.range_min)
    msg.range_max = float(scan.range_max)
    # array.array('f') is taken as it is; a list or ndarray is checked element by element.
    ranges = array.array("f")
    ranges.frombytes(np.ascontiguousarray(scan.ranges, np.float32).tobytes())
    msg.ranges = ranges
    return msg


def output_messages(
    outputs: FrameOutputs, header: Header, scan_frame_id: str = ""
) -> dict[str, object]:
    """The rclpy messages of one frame's outputs, keyed like the node's publishers.

    Keys: ``depth``, ``depth_info`` (when wanted), ``points``, ``mask``, ``color``,
    ``obstacles`` and ``scan``; an output that is None has no message. Every message carries
    ``header``, except that ``scan`` is in the frame ``scan_frame_id`` (the camera's REP 103
    body frame; '' = the image's frame) with the image's stamp. Arrays in reused
    buffers become the messages' data without a copy: publish before the camera's next frame.
    """
    messages: dict[str, object] = {}
    if outputs.depth is not None:
        # 32FC1 metres, or 16UC1 millimetres (depth_encoding): the array's dtype says which.
        messages["depth"] = array_to_image_msg(outputs.depth, header)
    if outputs.depth_info:
        messages["depth_info"] = camera_info_msg(outputs.intrinsics, header, outputs.camera_info)
    if outputs.cloud is not None:
        messages["points"] = cloud_msg(outputs.cloud, header)
    if outputs.labels is not None:
        messages["mask"] = array_to_image_msg(outputs.labels, header, "mono8")
    if outputs.overlay is not None:
        messages["color"] = array_to_image_msg(outputs.overlay, header, "rgb8")
    if outputs.obstacle_cloud is not None:
        messages["obstacles"] = cloud_msg(outputs.obstacle_cloud, header)
    if outputs.scan is not None:
        frame = scan_frame_id or header.frame_id
        messages["scan"] = scan_msg(outputs.scan, Header(stamp=header.stamp, frame_id=frame))
    return messages
