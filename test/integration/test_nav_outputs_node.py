"""Navigation outputs of a real mono_depth process over real DDS.

* ``obstacles/points`` and ``scan``: headers (stamp and frame) equal the input's, the obstacle
  cloud has the layout of ``points`` with the excluded class's pixels NaN, the scan's beams and
  angles follow the intrinsics, and live parameter changes (stride, class list, frame) apply
  or are refused with the valid names.
* ``image_transport: compressed``: the same frames sent raw to one node and PNG/JPEG-compressed
  to another give outputs of the same shapes and headers; PNG (lossless) gives the same depth,
  JPEG (quality 90) a depth within 5 % (median relative difference); a corrupt payload is a
  counted error and the next frame is processed.
* ``use_sim_time`` with a /clock publisher and ``depth_encoding: 16UC1``: output stamps equal
  the input stamps, latency is measured against /clock (small, not the ~56 years between sim
  time 1000 s and the wall clock), rates stay per wall second.
"""

from __future__ import annotations

import json
import math
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import (
    HEIGHT,
    WIDTH,
    NodeControl,
    call,
    header,
    ros_session,
    start_mono_depth,
    test_image,
    test_intrinsics,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, LaserScan, PointCloud2
from std_msgs.msg import String

from depth_perception.apps.processes import stop_processes
from depth_perception.apps.spinning import BackgroundSpinner
from depth_perception.nodes.conversions import (
    array_to_image_msg,
    camera_info_msg,
    image_msg_to_array,
)
from depth_perception.pointcloud import PointFieldSpec, fields_dtype

pytestmark = pytest.mark.integration

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


def _stamp(msg) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def cloud_points(msg: PointCloud2) -> np.ndarray:
    fields = [PointFieldSpec(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    dtype = fields_dtype(fields, msg.point_step, bool(msg.is_bigendian))
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


class Probe:
    """Publishes frames (raw, compressed or both) at 10 Hz and keeps every output by stamp."""

    def __init__(self, name: str, namespaces: dict[str, str], clock: bool = False) -> None:
        """``namespaces``: namespace -> ``raw``, ``png``, ``jpeg`` (what to send there)."""
        self.node = rclpy.create_node(name)
        self.lock = threading.Lock()
        self.messages: dict[tuple[str, str], dict[tuple[int, int], object]] = {}
        self.diagnostics: dict[str, list[dict[str, str]]] = {}
        self.diagnostic_stamps: dict[str, list[float]] = {}
        self.class_names: dict[str, list[str]] = {}
        self.corrupt_next = False
        self.sent: dict[tuple[int, int], object] = {}
        self._inputs = []
        for namespace, kind in namespaces.items():
            info = self.node.create_publisher(CameraInfo, f"{namespace}/camera_info", RELIABLE)
            if kind == "raw":
                image = self.node.create_publisher(Image, f"{namespace}/image", RELIABLE)
            else:
                image = self.node.create_publisher(
                    CompressedImage, f"{namespace}/image/compressed", RELIABLE
                )
            self._inputs.append((kind, info, image))
            self.node.create_subscription(
                String,
                f"{namespace}/segmentation/class_names",
                lambda msg, ns=namespace: self._on_classes(ns, msg),
                QoSProfile(
                    depth=1,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL,
                ),
            )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._clock = self.node.create_publisher(Clock, "/clock", 10) if clock else None
        self._index = 0
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.node.create_timer(0.1, self._publish)
        self.spinner = BackgroundSpinner(self.executor)

    def _on_classes(self, namespace: str, msg: String) -> None:
        with self.lock:
            table = json.loads(msg.data)["classes"]
            self.class_names[namespace] = [entry["name"] for entry in table]

    def _publish(self) -> None:
        self._index += 1
        stamp = header(self._index)
        if self._clock is not None:
            # Sim time: /clock runs with the stamps of the frames, as a bag player's does.
            self._clock.publish(Clock(clock=stamp.stamp))
        rgb = test_image(self._index % 5)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        corrupt, self.corrupt_next = self.corrupt_next, False
        for kind, info, image in self._inputs:
            info.publish(camera_info_msg(test_intrinsics(), stamp))
            if kind == "raw":
                image.publish(array_to_image_msg(rgb, stamp, "rgb8"))
                continue
            if kind == "png":
                data = cv2.imencode(".png", bgr)[1].tobytes()
                fmt = "rgb8; png compressed bgr8"
            else:
                data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                fmt = "rgb8; jpeg compressed bgr8"
            if corrupt:
                data = data[:40] + bytes(200)
            image.publish(CompressedImage(header=stamp, format=fmt, data=data))

    def subscribe(self, namespace: str, topic: str, message_type: type) -> None:
        key = (namespace, topic)
        with self.lock:
            self.messages[key] = {}

        def keep(msg) -> None:
            with self.lock:
                self.messages[key][_stamp(msg)] = msg

        self.node.create_subscription(message_type, f"{namespace}/{topic}", keep, RELIABLE)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        for status in msg.status:
            with self.lock:
                self.diagnostics.setdefault(status.hardware_id, []).append(
                    {kv.key: kv.value for kv in status.values}
                )
                self.diagnostic_stamps.setdefault(status.hardware_id, []).append(stamp)

    def wait(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = condition()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def got(self, namespace: str, topic: str) -> dict:
        return self.messages[(namespace, topic)]

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


def _newest(messages: dict):
    return messages[max(messages)] if messages else None


def test_obstacle_cloud_and_scan_headers_layout_and_live_changes(ros, tmp_path):
    ns = "/nav_out"
    process = start_mono_depth(ros, ns, tmp_path, scan_frame_id="test_cam_link", scan_height=5)
    probe = Probe("nav_probe", {ns: "raw"})
    try:
        for topic, kind in (
            ("points", PointCloud2),
            ("obstacles/points", PointCloud2),
            ("scan", LaserScan),
        ):
            probe.subscribe(ns, topic, kind)
        points = probe.wait(lambda: _newest(probe.got(ns, "points")), 120, "points")
        names = probe.wait(lambda: probe.class_names.get(ns), 30, "class names")
        # No exclusion list yet: no obstacle cloud.
        assert not probe.got(ns, "obstacles/points")
        # Not the node's first scans: a frame may beat the first camera_info (it comes on its
        # own topic), and then the fallback field of view gives other angles.
        scan = probe.wait(
            lambda: _newest(probe.got(ns, "scan")) if len(probe.got(ns, "scan")) >= 5 else None,
            30,
            "scan",
        )
        assert scan.header.frame_id == "test_cam_link"
        intr = test_intrinsics()
        assert len(scan.ranges) == WIDTH
        assert scan.angle_max == pytest.approx(math.atan(intr.cx / intr.fx), abs=1e-6)
        assert scan.angle_min == pytest.approx(
            -math.atan((WIDTH - 1 - intr.cx) / intr.fx), abs=1e-6
        )
        assert scan.angle_increment == pytest.approx(
            (scan.angle_max - scan.angle_min) / (WIDTH - 1), rel=1e-5
        )
        assert (scan.range_min, scan.range_max) == pytest.approx((0.1, 10.0))
        ranges = np.asarray(scan.ranges)
        finite = ranges[np.isfinite(ranges)]
        assert finite.size and np.all((finite >= 0.1) & (finite <= 10.0))

        # Exclude the class that covers most of the image (the live change under test).
        labels = cloud_points(points)["label"]
        common = int(np.bincount(labels.reshape(-1)[labels.reshape(-1) < 255]).argmax())
        control = NodeControl(_Harness(probe), f"{ns}/mono_depth")
        refused = control.set(obstacle_exclude_classes=["no_such_class"])[0]
        assert not refused.successful
        assert "no_such_class" in refused.reason and ", ".join(names) in refused.reason
        assert control.set(obstacle_exclude_classes=[names[common]])[0].successful
        obstacles = probe.wait(
            lambda: _newest(probe.got(ns, "obstacles/points")), 30, "obstacles/points"
        )
        stamp = _stamp(obstacles)
        both = probe.wait(lambda: probe.got(ns, "points").get(stamp), 10, "points of a stamp")
        assert obstacles.header == both.header  # the input's header, as points
        assert obstacles.header.frame_id == "test_cam_optical"
        assert [f.name for f in obstacles.fields] == [f.name for f in both.fields]
        assert (obstacles.height, obstacles.width, obstacles.point_step, obstacles.row_step) == (
            both.height,
            both.width,
            both.point_step,
            both.row_step,
        )
        assert (obstacles.height, obstacles.width) == (HEIGHT, WIDTH)
        kept, full = cloud_points(obstacles), cloud_points(both)
        excluded = full["label"] == common
        assert excluded.any()
        assert np.isnan(kept["z"][excluded]).all()
        np.testing.assert_array_equal(kept["z"][~excluded], full["z"][~excluded])
        assert np.isfinite(full["z"][excluded]).any()
        scan = probe.wait(lambda: probe.got(ns, "scan").get(stamp), 10, "scan of a stamp")
        assert _stamp(scan) == stamp

        # Live: stride and frame of the scan.
        results = control.set(scan_stride=4, scan_frame_id="other_link")
        assert all(r.successful for r in results)
        strided = probe.wait(
            lambda: next(
                (m for m in probe.got(ns, "scan").values() if len(m.ranges) == WIDTH // 4), None
            ),
            30,
            "a scan at stride 4",
        )
        assert strided.header.frame_id == "other_link"
        # An empty list ends the obstacle cloud.
        request = [Parameter("obstacle_exclude_classes", Parameter.Type.STRING_ARRAY, [])]
        assert set_typed(control, request)[0].successful
        before = len(probe.got(ns, "obstacles/points"))
        time.sleep(1.5)
        settled = len(probe.got(ns, "obstacles/points"))
        time.sleep(1.5)
        assert len(probe.got(ns, "obstacles/points")) == settled <= before + 3
    finally:
        probe.close()
        stop_processes([process])


class _Harness:
    """What NodeControl needs of a harness: a node and a wait."""

    def __init__(self, probe: Probe) -> None:
        self.node = probe.node

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


def set_typed(control: NodeControl, parameters: list[Parameter]) -> list:
    """set_parameters with explicitly typed values (an empty list must be a string array)."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.srv import SetParameters

    request = SetParameters.Request(
        parameters=[ParameterMsg(name=p.name, value=p.get_parameter_value()) for p in parameters]
    )
    return list(call(control.harness, control._set, request).results)


def test_compressed_input_gives_the_raw_outputs(ros, tmp_path):
    raw, png, jpeg = "/nav_raw", "/nav_png", "/nav_jpeg"
    processes = [
        start_mono_depth(ros, raw, tmp_path),
        start_mono_depth(ros, png, tmp_path, image_transport="compressed"),
        start_mono_depth(ros, jpeg, tmp_path, image_transport="compressed"),
    ]
    probe = Probe("compressed_probe", {raw: "raw", png: "png", jpeg: "jpeg"})
    try:
        for ns in (raw, png, jpeg):
            probe.subscribe(ns, "depth/image", Image)
            probe.subscribe(ns, "points", PointCloud2)

        def common() -> list:
            stamps = set(probe.got(raw, "depth/image"))
            for ns in (png, jpeg):
                stamps &= set(probe.got(ns, "depth/image"))
            # The newest 3 of at least 8: the first frames of a node may beat its first
            # camera_info, and the depth scales with the focal length it uses.
            return sorted(stamps)[-3:] if len(stamps) >= 8 else []

        stamps = probe.wait(common, 180, "the same frames' depth from all three nodes")
        for stamp in stamps:
            reference = probe.got(raw, "depth/image")[stamp]
            depth_raw = image_msg_to_array(reference)
            for ns in (png, jpeg):
                msg = probe.got(ns, "depth/image")[stamp]
                assert msg.header == reference.header
                assert (msg.height, msg.width, msg.encoding, msg.step) == (
                    reference.height,
                    reference.width,
                    reference.encoding,
                    reference.step,
                )
                depth = image_msg_to_array(msg)
                valid = np.isfinite(depth_raw) & np.isfinite(depth)
                assert valid.mean() > 0.9
                relative = np.abs(depth[valid] - depth_raw[valid]) / depth_raw[valid]
                if ns == png:  # lossless: the same pixels, the same depth
                    assert float(np.max(relative)) < 1e-4
                else:
                    assert float(np.median(relative)) < 0.05
        for ns in (png, jpeg):
            cloud = _newest(probe.got(ns, "points"))
            assert (cloud.height, cloud.width) == (HEIGHT, WIDTH)
        # A corrupt payload: counted, and the node keeps going.
        probe.corrupt_next = True
        diagnostics = probe.wait(
            lambda: next(
                (
                    d
                    for d in probe.diagnostics.get(f"{jpeg}/mono_depth", [])
                    if int(d.get("errors_bad_image_corrupt", 0)) > 0
                ),
                None,
            ),
            30,
            "errors_bad_image_corrupt in /diagnostics",
        )
        assert diagnostics["image_transport"] == "compressed"
        count = len(probe.got(jpeg, "depth/image"))
        probe.wait(lambda: len(probe.got(jpeg, "depth/image")) > count + 2, 30, "later frames")
    finally:
        probe.close()
        stop_processes(processes)


def test_sim_time_follows_clock_and_16uc1_depth(ros, tmp_path):
    ns = "/nav_sim"
    process = start_mono_depth(
        ros, ns, tmp_path, use_sim_time=True, depth_encoding="16UC1", diagnostics_period_s=0.5
    )
    probe = Probe("sim_probe", {ns: "raw"}, clock=True)
    try:
        probe.subscribe(ns, "depth/image", Image)
        probe.subscribe(ns, "scan", LaserScan)
        probe.wait(lambda: len(probe.got(ns, "depth/image")) >= 5, 120, "depth frames")
        for stamp, msg in list(probe.got(ns, "depth/image").items()):
            assert msg.encoding == "16UC1"
            assert msg.header.frame_id == "test_cam_optical"
            assert stamp[1] == 123456 and stamp[0] > 1000  # the input's stamps
            millimetres = image_msg_to_array(msg)
            known = millimetres[millimetres > 0]
            assert known.size > 0.9 * millimetres.size
            assert known.min() >= 100 and known.max() <= 65535
        scan_stamps = set(probe.got(ns, "scan"))
        assert scan_stamps and all(s[0] > 1000 and s[1] == 123456 for s in scan_stamps)
        hardware = f"{ns}/mono_depth"

        def measured():
            rows = probe.diagnostics.get(hardware, [])
            busy = [d for d in rows if int(d.get("processed_in_period", 0)) > 0]
            return busy[-3:] if len(busy) >= 3 else None

        rows = probe.wait(measured, 60, "diagnostics with processed frames")
        for row in rows:
            # now (/clock) - stamp: the frame is at most a few sim seconds behind /clock.
            assert 0.0 <= float(row["latency_mean_ms"]) < 5000.0
            # Frames per WALL second: the probe sends 10 per second.
            assert 1.0 < float(row["rate_hz"]) < 20.0
        # The diagnostics' own stamps are sim time too (the node's clock).
        assert all(1000.0 < s < 10000.0 for s in probe.diagnostic_stamps[hardware][-3:])
    finally:
        probe.close()
        stop_processes([process])


def test_unknown_class_names_stop_configure_with_the_valid_names(ros, tmp_path):
    ns = "/nav_bad_classes"
    process = start_mono_depth(ros, ns, tmp_path, obstacle_exclude_classes=["floor", "lava"])
    probe = Probe("bad_classes_probe", {})
    try:
        hardware = f"{ns}/mono_depth"

        def failed():
            for row in probe.diagnostics.get(hardware, []):
                if "configure failed" in row.get("last_error", ""):
                    return row["last_error"]
            return None

        error = probe.wait(failed, 120, "configure failed in /diagnostics")
        assert "['lava']" in error and "wall, floor" in error
    finally:
        probe.close()
        stop_processes([process])
