"""Messages built on reused buffers, over real rclpy/DDS to a subscriber in another process.

The node hands the core's reused ``array.array`` buffers to its messages without copying them
and overwrites them for the next frame. That is only correct because rclpy serializes a message
inside ``publish()``. These tests prove it end to end: each buffer is overwritten right after
``publish()`` returns, and the subscriber (a separate process) must still receive, for every
message, exactly the bytes it held when it was published. They also read the received cloud
back the way sensor_msgs_py's ``read_points`` does (a numpy structured dtype from the fields).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header

from depth_perception.apps.processes import apply_ros_environment, ros_environment
from depth_perception.buffers import ReusableBuffer
from depth_perception.camera import CameraIntrinsics
from depth_perception.nodes.conversions import array_to_image_msg, cloud_msg
from depth_perception.pointcloud import OrganizedCloudBuilder, unpack_rgb

pytestmark = pytest.mark.integration

FRAMES = 12
QOS = QoSProfile(
    depth=FRAMES * 2,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# The subscriber process: records the SHA-256 of every received message's data by stamp and
# saves the last cloud (fields and bytes) for the read_points round trip.
SUBSCRIBER = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    out, frames = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("reused_buffer_subscriber")
    qos = QoSProfile(depth=2 * frames, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE)
    seen = {"points": {}, "depth": {}}
    last = {}

    def record(topic):
        def receive(msg):
            data = bytes(msg.data)
            seen[topic][str(msg.header.stamp.sec)] = hashlib.sha256(data).hexdigest()
            if topic == "points":
                last["fields"] = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
                last["meta"] = [msg.height, msg.width, msg.point_step, msg.row_step,
                                bool(msg.is_bigendian)]
                last["data"] = data
        return receive

    subs = [node.create_subscription(PointCloud2, "reuse/points", record("points"), qos),
            node.create_subscription(Image, "reuse/depth", record("depth"), qos)]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and min(len(v) for v in seen.values()) < frames:
        rclpy.spin_once(node, timeout_sec=0.1)
    np.savez(out + ".npz", data=np.frombuffer(last.get("data", b""), np.uint8))
    with open(out + ".json", "w") as stream:
        json.dump({"seen": seen, "fields": last.get("fields"), "meta": last.get("meta")}, stream)
    node.destroy_node()
    rclpy.shutdown()
    """
)

# sensor_msgs/PointField datatype -> numpy type, as sensor_msgs_py.point_cloud2 maps them.
POINTFIELD_TO_NUMPY = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def read_points(fields: list[tuple[str, int, int, int]], meta: list, data: bytes) -> np.ndarray:
    """sensor_msgs_py's read_points, written out: a structured dtype from the message's fields.

    (sensor_msgs_py is not installable here.) Its ``read_points_numpy`` additionally requires
    every selected field to share one datatype, which our cloud (float32 x, y, z, rgb and a
    uint32 label) does not: it needs ``field_names``, this read does not.
    """
    height, width, point_step, row_step, bigendian = meta
    order = ">" if bigendian else "<"
    dtype = np.dtype(
        {
            "names": [name for name, _, _, _ in fields],
            "formats": [order + POINTFIELD_TO_NUMPY[datatype] for _, _, datatype, _ in fields],
            "offsets": [offset for _, offset, _, _ in fields],
            "itemsize": point_step,
        }
    )
    assert row_step == width * point_step and len(data) == height * row_step
    return np.frombuffer(data, dtype=dtype).reshape(height, width)


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    env = ros_environment(log_dir=str(tmp_path_factory.mktemp("ros_log")))
    apply_ros_environment(env)
    rclpy.init()
    yield env
    rclpy.try_shutdown()


def _frame(index: int, intrinsics: CameraIntrinsics):
    rng = np.random.default_rng(index)
    shape = (intrinsics.height, intrinsics.width)
    depth = rng.uniform(0.3, 12.0, shape).astype(np.float32)
    depth[rng.random(shape) < 0.1] = np.nan
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, shape, dtype=np.uint8)
    return depth, rgb, labels


def test_buffers_overwritten_after_publish_arrive_intact(ros, tmp_path: Path) -> None:
    intrinsics = CameraIntrinsics(fx=90.0, fy=85.0, cx=40.5, cy=30.0, width=80, height=60)
    out = str(tmp_path / "received")
    subscriber = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, out, str(FRAMES)],
        env=ros,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    node = rclpy.create_node("reused_buffer_publisher")
    try:
        points_pub = node.create_publisher(PointCloud2, "reuse/points", QOS)
        depth_pub = node.create_publisher(Image, "reuse/depth", QOS)
        deadline = time.monotonic() + 60
        while points_pub.get_subscription_count() < 1 or depth_pub.get_subscription_count() < 1:
            assert time.monotonic() < deadline, "the subscriber process never matched"
            assert subscriber.poll() is None, subscriber.communicate()[0]
            time.sleep(0.05)
        builder = OrganizedCloudBuilder(intrinsics, with_rgb=True, with_label=True)
        depth_buffer = ReusableBuffer()
        published: dict[str, dict[str, str]] = {"points": {}, "depth": {}}
        payloads = set()
        for index in range(FRAMES):
            depth, rgb, labels = _frame(index, intrinsics)
            header = Header(stamp=Time(sec=index + 1), frame_id="optical")
            cloud = builder.build(depth, rgb=rgb, labels=labels)
            msg = cloud_msg(cloud, header)
            assert msg.data is cloud.payload  # taken as it is: no copy on the Python side
            depth_view = depth_buffer.view(depth.shape, np.float32)
            depth_view[:] = depth
            image = array_to_image_msg(depth_view, header, "32FC1")
            assert image.data is depth_buffer.payload
            published["points"][str(index + 1)] = hashlib.sha256(bytes(msg.data)).hexdigest()
            published["depth"][str(index + 1)] = hashlib.sha256(bytes(image.data)).hexdigest()
            payloads.add(id(msg.data))
            points_pub.publish(msg)
            depth_pub.publish(image)
            # Overwrite both buffers at once, as the next frame would: garbage of the same size.
            np.frombuffer(cloud.payload, np.uint8)[:] = 0xA5
            depth_view[:] = -1.0
            time.sleep(0.02)
        assert len(payloads) == 1  # one buffer served every frame
        output, _ = subscriber.communicate(timeout=120)
        assert subscriber.returncode == 0, output
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
        node.destroy_node()
    received = json.loads(Path(out + ".json").read_text())
    assert received["seen"] == published

    # The last cloud as the subscriber got it, read back from its fields alone.
    depth, rgb, labels = _frame(FRAMES - 1, intrinsics)
    data = np.load(out + ".npz")["data"].tobytes()
    points = read_points(received["fields"], received["meta"], data)
    assert points.dtype.names == ("x", "y", "z", "rgb", "label")
    assert received["fields"][-1] == ["label", 16, PointField.UINT32, 1]
    assert points.dtype["label"] == np.dtype("<u4") and points.dtype.itemsize == 20
    np.testing.assert_array_equal(points["z"], depth)  # NaN where NaN
    u = np.arange(intrinsics.width)[None, :]
    v = np.arange(intrinsics.height)[:, None]
    np.testing.assert_allclose(points["x"], (u - 40.5) / 90.0 * depth, rtol=1e-6)
    np.testing.assert_allclose(points["y"], (v - 30.0) / 85.0 * depth, rtol=1e-6)
    np.testing.assert_array_equal(unpack_rgb(points["rgb"]), rgb)
    np.testing.assert_array_equal(points["label"], labels.astype(np.uint32))
    # read_points_numpy's rule (one datatype for all selected fields): only x, y, z qualify.
    datatypes = {name: datatype for name, _, datatype, _ in received["fields"]}
    assert len(set(datatypes.values())) > 1
    assert {datatypes[name] for name in ("x", "y", "z")} == {PointField.FLOAT32}
