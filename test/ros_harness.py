"""Shared helpers of the ROS 2 integration tests: a probe node, node processes, test frames.

Imported by integration/test_integration_nodes.py and the test_reliability_*.py files (pytest
puts test/, the directory of conftest.py, on ``sys.path``); each test module wraps
``ros_session`` in its own ``ros`` fixture.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_perception.apps.demo import TopicMonitor
from depth_perception.apps.processes import apply_ros_environment, ros_environment, start_node
from depth_perception.apps.spinning import BackgroundSpinner
from depth_perception.camera import CameraIntrinsics
from depth_perception.nodes.conversions import array_to_image_msg, camera_info_msg

WIDTH, HEIGHT = 160, 120
NODE_PARAMS = {
    "backend": "onnxruntime",
    "input_width": 128,
    "input_height": 96,
    "diagnostics_period_s": 0.5,
    # One point per pixel (the default is 2): the tests check the cloud against the image
    # pixel by pixel, and one changes the stride at run time.
    "points_stride": 1,
}


class RosHarness:
    """An rclpy node in the test process, spun in a background thread."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.node = rclpy.create_node("integration_probe", namespace=namespace)
        self.monitor = TopicMonitor(self.node, keep_messages=True)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinner = BackgroundSpinner(self.executor)

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; seen {dict(self.monitor.results.counts)}"
                )
            time.sleep(0.05)

    def publish_until(self, publish, condition, timeout: float, what: str) -> None:
        """Publish (again every half second) until ``condition``: discovery may lag a frame."""
        deadline = time.monotonic() + timeout
        while True:
            publish()
            try:
                self.wait_for(condition, min(0.5, max(deadline - time.monotonic(), 0.01)), what)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


def ros_session():
    """Body of a module-scoped ``ros`` fixture: ROS environment, rclpy up, then down."""
    env = ros_environment()
    apply_ros_environment(env)
    rclpy.init()
    yield env
    rclpy.try_shutdown()


def start_mono_depth(env, namespace: str, log_dir: Path, **params):
    return start_node(
        "mono_depth_node",
        env,
        {**NODE_PARAMS, **params},
        namespace=namespace,
        log_path=log_dir / f"mono_depth{namespace.replace('/', '_')}.log",
    )


def test_intrinsics() -> CameraIntrinsics:
    # Off-centre principal point and non-square pixels: catches swapped or centred formulas.
    return CameraIntrinsics(fx=150.0, fy=140.0, cx=70.5, cy=64.0, width=WIDTH, height=HEIGHT)


test_intrinsics.__test__ = False  # a helper, not a test


def test_image(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 40, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


test_image.__test__ = False


def header(index: int) -> Header:
    return Header(stamp=Time(sec=1000 + index, nanosec=123456), frame_id="test_cam_optical")


def publish_frame(harness: RosHarness, index: int, encoding: str = "rgb8") -> Header:
    stamp_header = header(index)
    rgb = test_image(index)
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    harness.info_pub.publish(camera_info_msg(test_intrinsics(), stamp_header))
    harness.image_pub.publish(
        array_to_image_msg(np.ascontiguousarray(pixels), stamp_header, encoding)
    )
    return stamp_header


def wait_for_subscription(harness: RosHarness) -> None:
    # The probe's own monitor subscribes to image too: wait for a second subscriber, and stop
    # at once when the node reports that it could not configure.
    def ready() -> bool:
        message = harness.monitor.results.diagnostics.get("message", "")
        if message.startswith("configure failed"):
            raise AssertionError(f"mono_depth did not configure: {message}")
        return harness.image_pub.get_subscription_count() > 1

    harness.wait_for(ready, 120, "mono_depth to subscribe to image")


def stamp_ns(stamp_header: Header) -> int:
    return stamp_header.stamp.sec * 1_000_000_000 + stamp_header.stamp.nanosec


def call(harness: RosHarness, client, request, timeout: float = 30.0):
    assert client.wait_for_service(timeout_sec=60.0), f"service {client.srv_name} not available"
    future = client.call_async(request)
    harness.wait_for(future.done, timeout, f"reply of {client.srv_name}")
    return future.result()


def vm_rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _parameter_msgs(values: dict) -> list:
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rclpy.parameter import Parameter

    return [
        ParameterMsg(name=name, value=Parameter(name, value=value).get_parameter_value())
        for name, value in values.items()
    ]


class NodeControl:
    """Parameter and lifecycle services of one mono_depth node, called from the probe."""

    def __init__(self, harness: RosHarness, node_name: str = "mono_depth") -> None:
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters, SetParametersAtomically

        self.harness = harness
        node = harness.node
        self._set = node.create_client(SetParameters, f"{node_name}/set_parameters")
        self._set_atomically = node.create_client(
            SetParametersAtomically, f"{node_name}/set_parameters_atomically"
        )
        self._get_state = node.create_client(GetState, f"{node_name}/get_state")
        self._change = node.create_client(ChangeState, f"{node_name}/change_state")

    def set(self, **values) -> list:
        """Set parameters one by one (set_parameters); returns the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request(parameters=_parameter_msgs(values))
        return list(call(self.harness, self._set, request).results)

    def set_atomically(self, **values):
        """Set parameters all or none (set_parameters_atomically); returns the one result."""
        from rcl_interfaces.srv import SetParametersAtomically

        request = SetParametersAtomically.Request(parameters=_parameter_msgs(values))
        return call(self.harness, self._set_atomically, request).result

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return call(self.harness, self._get_state, GetState.Request()).current_state.label

    def transition(self, name: str) -> bool:
        """Run ``configure``, ``activate``, ``deactivate`` or ``cleanup``; True on success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = getattr(Transition, f"TRANSITION_{name.upper()}")
        return call(self.harness, self._change, request, timeout=120).success

    def cycle(self) -> None:
        """Deactivate, clean up, configure and activate: applies reconfigure-only parameters."""
        for name, label in (
            ("deactivate", "inactive"),
            ("cleanup", "unconfigured"),
            ("configure", "inactive"),
            ("activate", "active"),
        ):
            assert self.transition(name), f"{name} failed"
            assert self.state() == label
