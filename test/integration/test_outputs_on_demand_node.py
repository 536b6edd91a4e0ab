"""mono_depth computes only what is subscribed: a real node process, over real DDS.

The probe (this process) publishes camera frames and subscribes to one set of outputs at a
time; the node (another process) must report exactly those as ``active_outputs`` in
/diagnostics, run only their stages (``stage_points_ms``, ``stage_colorize_ms``), skip frames
nobody listens to before decoding them (``frames_idle``), and deliver what is subscribed.
"""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import (
    HEIGHT,
    WIDTH,
    header,
    ros_session,
    start_mono_depth,
    test_image,
    test_intrinsics,
)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_perception.apps.processes import stop_processes
from depth_perception.apps.spinning import BackgroundSpinner
from depth_perception.nodes.conversions import array_to_image_msg, camera_info_msg

pytestmark = pytest.mark.integration

NAMESPACE = "/on_demand"
TOPICS = {
    "depth/image": Image,
    "points": PointCloud2,
    "segmentation/mask": Image,
    "segmentation/color": Image,
}


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


class Probe:
    """Publishes frames at 15 Hz; subscribes to a chosen set of outputs; keeps diagnostics."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("on_demand_probe", namespace=NAMESPACE)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.lock = threading.Lock()
        self.received: dict[str, int] = {}
        self.diagnostics: list[dict[str, str]] = []
        self._subscriptions: list = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 20)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._index = 0
        self.node.create_timer(1 / 15, self._publish_frame)
        self.spinner = BackgroundSpinner(self.executor)

    def _publish_frame(self) -> None:
        self._index += 1
        stamp = header(self._index)
        self.info_pub.publish(camera_info_msg(test_intrinsics(), stamp))
        self.image_pub.publish(array_to_image_msg(test_image(self._index % 7), stamp, "rgb8"))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.hardware_id == f"{NAMESPACE}/mono_depth":
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def subscribe(self, *topics: str) -> None:
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        with self.lock:
            self.received = dict.fromkeys(topics, 0)
        self._subscriptions = [
            self.node.create_subscription(TOPICS[t], t, self._counter(t), qos) for t in topics
        ]

    def _counter(self, topic: str):
        def receive(msg) -> None:
            assert (msg.height, msg.width) == (HEIGHT, WIDTH)
            with self.lock:
                if topic in self.received:
                    self.received[topic] += 1

        return receive

    def settled(self, active: str, timeout: float = 90.0) -> dict[str, str]:
        """The second diagnostics message after ``active_outputs`` became ``active``.

        The first one's period may still hold frames of the previous subscriptions.
        """
        deadline = time.monotonic() + timeout
        seen_at = None
        while time.monotonic() < deadline:
            with self.lock:
                latest = self.diagnostics[-1] if self.diagnostics else {}
                count = len(self.diagnostics)
            if latest.get("active_outputs") == active:
                if seen_at is None:
                    seen_at = count
                elif count >= seen_at + 2:
                    return latest
            else:
                seen_at = None
            time.sleep(0.05)
        raise AssertionError(f"active_outputs never settled on {active!r}; last {latest}")

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


def test_only_subscribed_outputs_are_computed(ros, tmp_path) -> None:
    process = start_mono_depth(ros, NAMESPACE, tmp_path)
    probe = Probe()
    try:
        # Nobody subscribes: frames arrive but are not even decoded.
        idle = probe.settled("none")
        assert int(idle["frames_idle"]) > 0 and idle["processed_in_period"] == "0"
        processed_before = int(idle["frames_processed"])

        probe.subscribe("depth/image")
        depth = probe.settled("depth")
        assert int(depth["processed_in_period"]) > 0
        assert int(depth["frames_processed"]) > processed_before
        # Depth only: no cloud built, no colours, and (no labels needed) no arg-max.
        assert "stage_points_ms" not in depth and "stage_colorize_ms" not in depth
        assert probe.received["depth/image"] > 0

        probe.subscribe("points")
        cloud = probe.settled("points")
        assert float(cloud["stage_points_ms"]) > 0 and "stage_colorize_ms" not in cloud

        probe.subscribe("segmentation/color")
        colour = probe.settled("color")
        assert float(colour["stage_colorize_ms"]) > 0 and "stage_points_ms" not in colour

        probe.subscribe("depth/image", "points", "segmentation/mask", "segmentation/color")
        everything = probe.settled("depth,points,mask,color")
        assert float(everything["stage_points_ms"]) > 0
        assert float(everything["stage_colorize_ms"]) > 0
        time.sleep(1.0)
        with probe.lock:
            assert all(count > 0 for count in probe.received.values()), probe.received

        probe.subscribe()
        after = probe.settled("none")
        assert int(after["frames_idle"]) > int(idle["frames_idle"])
    finally:
        probe.close()
        stop_processes([process])


def test_outputs_on_demand_off_computes_every_output(ros, tmp_path) -> None:
    process = start_mono_depth(ros, NAMESPACE, tmp_path, outputs_on_demand=False)
    probe = Probe()
    try:
        forced = probe.settled("depth,depth_info,points,mask,color,scan")
        assert int(forced["processed_in_period"]) > 0 and int(forced["frames_idle"]) == 0
        assert float(forced["stage_points_ms"]) > 0 and float(forced["stage_colorize_ms"]) > 0
    finally:
        probe.close()
        stop_processes([process])
