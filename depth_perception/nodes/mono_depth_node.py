"""mono_depth: camera image in; metric depth, camera_info, organized cloud and labels out.

A managed (lifecycle) node that autostarts by default. The subscription callback only stores
the newest frame; a worker thread processes it, so a slow model drops old frames (counted)
instead of queueing latency. Every output carries the input image's header.

Reliability: a frame that cannot be decoded or fails in a stage is dropped, logged (throttled
per kind) and counted as ``errors_<kind>`` in /diagnostics, and the next frame gets a try;
frames whose stamp does not increase are processed but counted (``errors_stamp_not_increasing``).

Multi-camera: with ``cameras`` set (e.g. ``["front", "rear"]``) the node subscribes to
``<cam>/image`` and ``<cam>/camera_info`` of each, publishes every output under ``<cam>/`` with
that camera's header, and the worker runs the newest frame of every camera that has one through
the model as ONE batch (``batch_size_mean`` in /diagnostics). Drops, frames and rates are also
reported per camera (``<cam>_dropped_frames``, ``<cam>_rate_hz``, ...).
After ``BACKEND_FAILURE_LIMIT`` inference failures in a row the backend is replaced by the next
entry of the backend chain. The ``fault_injection`` parameter is a testing aid that makes
frames fail on purpose (off by default). SIGINT and SIGTERM end the node cleanly (exit code 0).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PARAMETERS, PARAMETERS_BY_NAME, PerceptionConfig
from depth_perception.image_encoding import ImageFormatError
from depth_perception.message_fields import intrinsics_from_camera_info
from depth_perception.nodes.conversions import (
    array_to_image_msg,
    camera_info_msg,
    cloud_msg,
    image_msg_to_rgb,
)
from depth_perception.nodes.parameters import declare_parameters, validate_parameters
from depth_perception.pipeline_stats import PipelineStats
from depth_perception.pointcloud import OrganizedCloudBuilder
from depth_perception.predictor import Prediction, StageError
from depth_perception.runtime import LoadedPipeline, load_pipeline
from depth_perception.visualize import colorize_labels, overlay

# Outputs: reliable so RViz (reliable by default) and Nav2 see them; depth 2 keeps a slow
# subscriber from blocking us for more than one frame. Overridable via qos_overrides.
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
# The class table is published once per configure: latched for late subscribers.
CLASS_NAMES_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)

# Consecutive inference failures after which the backend is replaced by the next fallback.
BACKEND_FAILURE_LIMIT = 3

# Values of the ``fault_injection`` parameter, a testing aid for the reliability tests.
FAULT_INJECTION_HELP = (
    "Testing aid: make frames fail on purpose. '' = off; 'inference' or 'postprocess' = raise "
    "in that stage for every frame; 'backend:<name>' = raise in inference while backend <name> "
    "is active (exercises the fallback to the next backend)"
)


CAMERAS_HELP = (
    "Camera namespaces served by this one node, e.g. ['front', 'rear']: subscribes to "
    "<cam>/image and <cam>/camera_info, publishes under <cam>/, and batches the newest frame of "
    "every camera into one inference. Empty (default) = the single image/camera_info pair. "
    "Takes effect on the next configure."
)

# A relative ROS name of one or more tokens: what may precede /image in a camera's topics.
_CAMERA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def camera_names_error(names: object) -> str:
    """Why ``names`` is not a valid ``cameras`` value ('' when it is)."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return "cameras must be a list of strings, e.g. ['front', 'rear']"
    bad = [name for name in names if not _CAMERA_NAME.match(name)]
    if bad:
        return (
            f"cameras {bad} are not relative ROS namespaces: use letters, digits, '_' and '/' "
            "between tokens, no leading '/' or digit, e.g. 'front' or 'left/rgb'"
        )
    if len(set(names)) != len(names):
        return f"cameras {list(names)} name a camera twice: list each namespace once"
    return ""


def _fault_hook(fault: str):
    """A predictor stage hook that fails the stages named by a ``fault_injection`` value."""
    if not fault:
        return None

    def hook(stage: str, predictor) -> None:
        if fault == stage or (
            fault == f"backend:{predictor.backend.name}" and stage == "inference"
        ):
            raise RuntimeError(f"injected fault (fault_injection={fault!r})")

    return hook


@dataclass
class _Frame:
    image: Image
    camera_info: CameraInfo | None
    received: float


class LatestFrameSlot:
    """Holds only the newest frame; overwriting an unprocessed one counts a drop."""

    def __init__(self) -> None:
        self._frame: _Frame | None = None
        self._condition = threading.Condition()
        self.dropped = 0

    def put(self, frame: _Frame) -> None:
        with self._condition:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify()

    def take(self, timeout: float) -> _Frame | None:
        with self._condition:
            if self._frame is None:
                self._condition.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        with self._condition:
            self._frame = None
            self._condition.notify_all()


@dataclass
class _Camera:
    """One camera of a multi-camera node: its inputs, outputs and counters."""

    name: str
    camera_info: CameraInfo | None = None
    last_stamp_ns: int | None = None
    outputs: dict[str, object] = field(default_factory=dict)
    cloud_builder: OrganizedCloudBuilder | None = None
    cloud_key: tuple | None = None
    received: int = 0
    processed: int = 0
    period_processed: int = 0


class LatestFramesByCamera:
    """The newest frame of each camera; overwriting an unprocessed one counts a drop for it."""

    def __init__(self, names: list[str]) -> None:
        self._frames: dict[str, _Frame] = {}
        self._condition = threading.Condition()
        self.dropped = dict.fromkeys(names, 0)

    def put(self, name: str, frame: _Frame) -> None:
        with self._condition:
            if name in self._frames:
                self.dropped[name] += 1
            self._frames[name] = frame
            self._condition.notify()

    def take_all(self, timeout: float) -> dict[str, _Frame]:
        """Every camera's newest frame (waits up to ``timeout`` for the first one)."""
        with self._condition:
            if not self._frames:
                self._condition.wait(timeout)
            frames, self._frames = self._frames, {}
            return frames

    def clear(self) -> None:
        with self._condition:
            self._frames = {}
            self._condition.notify_all()


class MonoDepthNode(LifecycleNode):
    """Lifecycle node running a monocular depth (+ segmentation) model on a camera stream."""

    def __init__(self, node_name: str = "mono_depth", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self.declare_parameter("autostart", True)
        self.declare_parameter(
            "fault_injection",
            "",
            ParameterDescriptor(description=FAULT_INJECTION_HELP),
        )
        # No default: rclpy types an empty list as a byte array, so "not set" means [].
        self.declare_parameter(
            "cameras",
            Parameter.Type.STRING_ARRAY,
            ParameterDescriptor(
                description=CAMERAS_HELP, type=ParameterType.PARAMETER_STRING_ARRAY
            ),
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.config = PerceptionConfig()
        self.pipeline: LoadedPipeline | None = None
        self.stats = PipelineStats()
        self._slot = LatestFrameSlot()
        self._camera_info: CameraInfo | None = None
        self._cloud_builder: OrganizedCloudBuilder | None = None
        self._cloud_key: tuple | None = None
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._inputs: list = []
        self._outputs: dict[str, object] = {}
        self._class_name_publishers: list[object] = []
        self._last_processed = 0.0
        self._last_stamp_ns: int | None = None
        self._inference_failures = 0
        self._warned: set[str] = set()
        self._error_logged: dict[str, float] = {}
        # Multi-camera mode (``cameras`` set): one entry per camera, in parameter order.
        self._cameras: dict[str, _Camera] = {}
        self._frames_slot = LatestFramesByCamera([])
        self._batches = 0
        self._batch_frames = 0
        self._batch_size_max = 0
        self._period_batches = 0
        self._period_batch_frames = 0
        self._diagnostics_time = time.monotonic()
        # Diagnostics run in every lifecycle state: an unconfigured node must say why.
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics
        )

    # ----- lifecycle -----
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = self._read_config()
            cameras = self._camera_names()
            # One inference call takes every camera's newest frame: a TensorRT engine is built
            # for batches up to the camera count.
            self.pipeline = load_pipeline(self.config, max_batch=max(1, len(cameras)))
            self.pipeline.predictor.stage_hook = _fault_hook(
                self.get_parameter("fault_injection").value
            )
        except Exception as error:  # any reason not to run is reported, never raised
            self.get_logger().error(f"configure failed: {error}")
            self.stats.record_error("configure", str(error))
            self.stats.last_error = f"configure failed: {error}"
            return TransitionCallbackReturn.FAILURE
        for line in self.pipeline.notes:
            self.get_logger().info(line)
        for line in self.pipeline.warnings:
            self.get_logger().warning(line)
        qos_options = QoSOverridingOptions.with_default_policies()
        outputs = {
            "depth": (Image, "depth/image"),
            "depth_info": (CameraInfo, "depth/camera_info"),
            "points": (PointCloud2, "points"),
            "mask": (Image, "segmentation/mask"),
            "color": (Image, "segmentation/color"),
        }
        self._cameras = {name: _Camera(name) for name in cameras}
        self._frames_slot = LatestFramesByCamera(cameras)
        self._batches = self._batch_frames = self._batch_size_max = 0
        self._period_batches = self._period_batch_frames = 0
        if not cameras:
            for key, (message_type, topic) in outputs.items():
                self._outputs[key] = self.create_lifecycle_publisher(
                    message_type, topic, OUTPUT_QOS, qos_overriding_options=qos_options
                )
        for camera in self._cameras.values():
            for key, (message_type, topic) in outputs.items():
                camera.outputs[key] = self.create_lifecycle_publisher(
                    message_type,
                    f"{camera.name}/{topic}",
                    OUTPUT_QOS,
                    qos_overriding_options=qos_options,
                )
        self._publish_class_names(cameras)
        self.stats.reset()
        self._last_stamp_ns = None
        self._inference_failures = 0
        self.get_logger().info(f"configured: {self.pipeline.summary()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos_options = QoSOverridingOptions.with_default_policies()
        if self._cameras:
            return self._activate_cameras(state, qos_options)
        self._inputs = [
            self.create_subscription(
                Image,
                "image",
                self._on_image,
                qos_profile_sensor_data,
                qos_overriding_options=qos_options,
            ),
            self.create_subscription(
                CameraInfo,
                "camera_info",
                self._on_camera_info,
                qos_profile_sensor_data,
                qos_overriding_options=qos_options,
            ),
        ]
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="mono_depth_worker", daemon=True)
        self._worker.start()
        self.get_logger().info("active: waiting for images on " + self.resolve_topic_name("image"))
        return super().on_activate(state)

    def _activate_cameras(
        self, state: LifecycleState, qos_options: QoSOverridingOptions
    ) -> TransitionCallbackReturn:
        self._inputs = []
        for camera in self._cameras.values():
            self._inputs += [
                self.create_subscription(
                    Image,
                    f"{camera.name}/image",
                    lambda msg, c=camera: self._on_camera_image(c, msg),
                    qos_profile_sensor_data,
                    qos_overriding_options=qos_options,
                ),
                self.create_subscription(
                    CameraInfo,
                    f"{camera.name}/camera_info",
                    lambda msg, c=camera: setattr(c, "camera_info", msg),
                    qos_profile_sensor_data,
                    qos_overriding_options=qos_options,
                ),
            ]
        self._running.set()
        self._worker = threading.Thread(
            target=self._work_cameras, name="mono_depth_worker", daemon=True
        )
        self._worker.start()
        topics = ", ".join(self.resolve_topic_name(f"{name}/image") for name in self._cameras)
        self.get_logger().info(f"active: one batch over {len(self._cameras)} cameras: {topics}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._camera_info = None
        self._cameras = {}
        self._warned.clear()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _publish_class_names(self, cameras: list[str]) -> None:
        """Latch the checkpoint's classes on segmentation/class_names (JSON, transient local).

        Late subscribers (RViz panels, semantic costmap layers) get the id -> name -> colour
        table of the mask and colour images once, without a service call.
        """
        description = self.pipeline.description
        if not description.class_names:
            return
        palette = self.pipeline.palette
        table = [
            {"id": index, "name": name, "color": [int(v) for v in palette[index]]}
            for index, name in enumerate(description.class_names)
        ]
        msg = String(data=json.dumps({"model": description.name, "classes": table}))
        for prefix in [f"{name}/" for name in cameras] or [""]:
            publisher = self.create_publisher(
                String, f"{prefix}segmentation/class_names", CLASS_NAMES_QOS
            )
            publisher.publish(msg)
            self._class_name_publishers.append(publisher)

    def _release(self) -> None:
        for publisher in self._class_name_publishers:
            self.destroy_publisher(publisher)
        self._class_name_publishers = []
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        for camera in self._cameras.values():
            for publisher in camera.outputs.values():
                self.destroy_lifecycle_publisher(publisher)
            camera.outputs = {}
            camera.cloud_builder = camera.cloud_key = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self._cloud_builder = None
        self._cloud_key = None

    def _stop_worker(self) -> None:
        self._running.clear()
        self._slot.clear()
        self._frames_slot.clear()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    # ----- parameters -----
    def _read_config(self) -> PerceptionConfig:
        values = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        return PerceptionConfig(**values)

    def _camera_names(self) -> list[str]:
        """The ``cameras`` parameter ([] when not set).

        Raises:
            ValueError: a name that is not a relative namespace, or a duplicate.
        """
        names = list(self.get_parameter_or("cameras").value or [])
        error = camera_names_error(names)
        if error:
            raise ValueError(error)
        return names

    def _on_set_parameters(self, parameters: list[Parameter]):
        result = validate_parameters(parameters)
        if not result.successful:
            return result
        for parameter in parameters:
            if parameter.name == "fault_injection" and not _valid_fault(parameter.value):
                return SetParametersResult(
                    successful=False,
                    reason="fault_injection must be '', 'inference', 'postprocess' or "
                    "'backend:<name>'",
                )
            if parameter.name == "cameras" and parameter.value is not None:
                error = camera_names_error(list(parameter.value))
                if error:
                    return SetParametersResult(successful=False, reason=error)
            if parameter.name == "fault_injection" and self.pipeline is not None:
                self.pipeline.predictor.stage_hook = _fault_hook(parameter.value)
        changes = {p.name: p.value for p in parameters if p.name in PARAMETERS_BY_NAME}
        live = {k: v for k, v in changes.items() if not PARAMETERS_BY_NAME[k].needs_reconfigure}
        try:
            candidate = self.config.replace(**live)
            if self.pipeline is not None and {"min_depth", "max_depth", "depth_scale"} & set(live):
                self.pipeline.predictor.set_depth_limits(
                    candidate.min_depth, candidate.max_depth, candidate.depth_scale
                )
        except ValueError as error:
            result.successful = False
            result.reason = str(error)
            return result
        self.config = candidate
        if "diagnostics_period_s" in live:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(
                candidate.diagnostics_period_s, self._publish_diagnostics
            )
        deferred = sorted(
            (set(changes) - set(live)) | {p.name for p in parameters if p.name == "cameras"}
        )
        if deferred:
            self.get_logger().info(
                f"{', '.join(deferred)} take effect on the next configure (deactivate, cleanup, "
                "configure, activate)"
            )
        return result

    # ----- input -----
    def _on_image(self, msg: Image) -> None:
        self.stats.received += 1
        self._slot.put(_Frame(msg, self._camera_info, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_camera_image(self, camera: _Camera, msg: Image) -> None:
        self.stats.received += 1
        camera.received += 1
        self._frames_slot.put(camera.name, _Frame(msg, camera.camera_info, time.monotonic()))

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    # ----- processing -----
    def _work(self) -> None:
        """Single-camera worker: the newest frame."""
        self._serve(lambda: _single(self._slot.take(timeout=0.1)), batched=False)

    def _work_cameras(self) -> None:
        """Multi-camera worker: the newest frame of every camera, as one batch."""
        self._serve(lambda: self._frames_slot.take_all(timeout=0.1), batched=True)

    def _serve(self, take: Callable[[], dict[str, _Frame]], batched: bool) -> None:
        """The worker loop shared by both paths: rate limit, process, count and log failures."""
        while self._running.is_set():
            frames = take()
            if not frames:
                continue
            newest = max(frame.received for frame in frames.values())
            if self.config.max_rate_hz > 0.0:
                if newest - self._last_processed < 1.0 / self.config.max_rate_hz:
                    self.stats.rate_limited += len(frames)
                    continue
            self._last_processed = newest
            dropped = f"a batch of {len(frames)} frames" if batched else "a frame"
            try:
                if batched:
                    self._process_batch(frames)
                else:
                    self._process(frames[""])
            except ImageFormatError as error:  # single path; the batch path drops per camera
                self.stats.record_error("bad_image", str(error), error.kind)
                self._log_error(f"bad_image_{error.kind}", f"dropped a frame: {error}")
            except StageError as error:
                for _ in frames:
                    self.stats.record_error(error.stage, str(error))
                self._log_error(error.stage, f"dropped {dropped}: {error}")
                if error.stage == "inference":
                    self._on_inference_failure(str(error.error))
            except Exception as error:  # the node keeps serving; the next frame gets a try
                self.stats.record_error("processing", f"{type(error).__name__}: {error}")
                self.get_logger().error(
                    f"{'batch' if batched else 'frame'} failed: {type(error).__name__}: {error}",
                    throttle_duration_sec=1.0,
                )

    def _log_error(self, kind: str, text: str) -> None:
        # Throttled per kind, not per call site: a flood of one fault must not hide another.
        now = time.monotonic()
        if now - self._error_logged.get(kind, -1e9) >= 1.0:
            self._error_logged[kind] = now
            self.get_logger().error(text)

    def _on_inference_failure(self, reason: str) -> None:
        """After BACKEND_FAILURE_LIMIT failures in a row, move to the next backend."""
        self._inference_failures += 1
        pipeline = self.pipeline
        if self._inference_failures < BACKEND_FAILURE_LIMIT or pipeline is None:
            return
        self._inference_failures = 0
        old = pipeline.choice.backend.describe()
        try:
            new = pipeline.fall_back(f"{BACKEND_FAILURE_LIMIT} consecutive failures: {reason}")
        except Exception as error:  # nothing left: keep trying the current one, say so
            self.stats.record_error("backend_fallback", str(error))
            self.get_logger().error(f"backend fallback impossible: {error}")
            return
        self.stats.record_warning("backend_fallback", f"{old} -> {new}")
        self.get_logger().warning(
            f"backend {old} failed {BACKEND_FAILURE_LIMIT} times in a row ({reason}): "
            f"falling back to {new}"
        )

    def _check_stamp(self, frame: _Frame, camera: _Camera | None = None) -> None:
        # Processed anyway (replayed bags and multi-camera relays do this), but counted.
        stamp = frame.image.header.stamp
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        if camera is None:
            previous = self._last_stamp_ns
            self._last_stamp_ns = stamp_ns
        else:
            previous = camera.last_stamp_ns
            camera.last_stamp_ns = stamp_ns
        if previous is not None and stamp_ns <= previous:
            text = f"stamp {stamp_ns} ns is not after the previous frame's {previous} ns"
            if camera is not None:
                text = f"camera {camera.name}: {text}"
            self.stats.record_warning("stamp_not_increasing", text)
            self.get_logger().warning(
                f"{text}: processed anyway, outputs keep this stamp", throttle_duration_sec=1.0
            )

    def _intrinsics_for(self, frame: _Frame, camera: _Camera | None = None) -> CameraIntrinsics:
        image = frame.image
        info = frame.camera_info
        # Warned once per camera: each may lack or mis-size its own camera_info.
        prefix = f"{camera.name}/" if camera is not None else ""
        if info is not None:
            try:
                intrinsics = intrinsics_from_camera_info(info)
            except ValueError as error:
                self.stats.record_warning("bad_camera_info", str(error))
                self._warn_once(f"{prefix}bad_info", f"ignoring {prefix}camera_info: {error}")
            else:
                if (intrinsics.width, intrinsics.height) == (image.width, image.height):
                    return intrinsics
                self.stats.record_warning(
                    "camera_info_size",
                    f"camera_info is {intrinsics.width}x{intrinsics.height}, image "
                    f"{image.width}x{image.height}",
                )
                self._warn_once(
                    f"{prefix}info_size",
                    f"{prefix}camera_info size {intrinsics.width}x{intrinsics.height} differs "
                    f"from the image's {image.width}x{image.height}: scaling the intrinsics to "
                    "the image",
                )
                return intrinsics.scaled(image.width, image.height)
        self._warn_once(
            f"{prefix}no_info",
            f"no valid camera_info on {self.resolve_topic_name(prefix + 'camera_info')}: "
            "assuming a "
            f"horizontal field of view of {self.config.fallback_hfov_deg} deg",
        )
        self.stats.fallback_intrinsics += 1
        return CameraIntrinsics.from_hfov(image.width, image.height, self.config.fallback_hfov_deg)

    def _process(self, frame: _Frame) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        timings: dict[str, float] = {}
        start = time.perf_counter()
        rgb = image_msg_to_rgb(frame.image)
        self._check_stamp(frame)
        intrinsics = self._intrinsics_for(frame)
        timings["convert_in"] = (time.perf_counter() - start) * 1e3
        prediction = pipeline.predictor.predict(rgb, intrinsics)
        self._inference_failures = 0
        timings.update(prediction.timings_ms)
        self._publish(prediction, rgb, frame, self._outputs, None, timings)
        timings["total"] = (time.perf_counter() - start) * 1e3
        self._record_frame(frame, timings)

    def _process_batch(self, frames: dict[str, _Frame]) -> None:
        """Convert every camera's frame, run them as one batch, publish each in its namespace."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        start = time.perf_counter()
        items: list[tuple[_Camera, _Frame, np.ndarray, CameraIntrinsics, float]] = []
        for name, frame in frames.items():
            camera = self._cameras[name]
            begin = time.perf_counter()
            try:
                rgb = image_msg_to_rgb(frame.image)
            except ImageFormatError as error:  # only this camera's frame is dropped
                self.stats.record_error("bad_image", f"camera {name}: {error}", error.kind)
                self._log_error(f"bad_image_{error.kind}", f"dropped a {name} frame: {error}")
                continue
            self._check_stamp(frame, camera)
            intrinsics = self._intrinsics_for(frame, camera)
            items.append((camera, frame, rgb, intrinsics, (time.perf_counter() - begin) * 1e3))
        if not items:
            return
        predictions = pipeline.predictor.predict_batch(
            [(rgb, intrinsics) for _, _, rgb, intrinsics, _ in items]
        )
        self._inference_failures = 0
        self._batches += 1
        self._batch_frames += len(items)
        self._period_batches += 1
        self._period_batch_frames += len(items)
        self._batch_size_max = max(self._batch_size_max, len(items))
        for (camera, frame, rgb, _, convert_ms), prediction in zip(
            items, predictions, strict=True
        ):
            timings = {"convert_in": convert_ms, **prediction.timings_ms}
            self._publish(prediction, rgb, frame, camera.outputs, camera, timings)
            timings["total"] = (time.perf_counter() - start) * 1e3
            camera.processed += 1
            camera.period_processed += 1
            self._record_frame(frame, timings)

    def _record_frame(self, frame: _Frame, timings: dict[str, float]) -> None:
        """Stage timings and latency (now minus the image's stamp) of one processed frame."""
        stamp = frame.image.header.stamp
        latency = self.get_clock().now().nanoseconds * 1e-9 - (stamp.sec + stamp.nanosec * 1e-9)
        self.stats.record_frame(timings, latency)

    def _publish(
        self,
        prediction: Prediction,
        rgb: np.ndarray,
        frame: _Frame,
        publishers: dict[str, object],
        camera: _Camera | None,
        timings: dict[str, float],
    ) -> None:
        """Publish one prediction's outputs with the frame's header; adds stage timings."""
        config = self.config
        pipeline = self.pipeline
        header = frame.image.header
        stage = time.perf_counter()
        if config.publish_depth:
            publishers["depth"].publish(array_to_image_msg(prediction.depth, header, "32FC1"))
            publishers["depth_info"].publish(
                camera_info_msg(prediction.intrinsics, header, frame.camera_info)
            )
        timings["publish_depth"] = (time.perf_counter() - stage) * 1e3

        labels = prediction.labels
        stage = time.perf_counter()
        if config.publish_points:
            builder = self._cloud_builder_for(prediction.intrinsics, labels is not None, camera)
            cloud = builder.build(
                prediction.depth,
                rgb=rgb if config.points_color else None,
                labels=labels if (config.points_label and labels is not None) else None,
            )
            timings["points"] = (time.perf_counter() - stage) * 1e3
            stage = time.perf_counter()
            publishers["points"].publish(cloud_msg(cloud, header))
            timings["publish_points"] = (time.perf_counter() - stage) * 1e3

        if config.publish_segmentation and labels is not None:
            stage = time.perf_counter()
            colors = colorize_labels(labels, pipeline.palette)
            blended = overlay(rgb, colors, config.overlay_alpha, labels)
            timings["colorize"] = (time.perf_counter() - stage) * 1e3
            stage = time.perf_counter()
            publishers["mask"].publish(array_to_image_msg(labels, header, "mono8"))
            publishers["color"].publish(array_to_image_msg(blended, header, "rgb8"))
            timings["publish_segmentation"] = (time.perf_counter() - stage) * 1e3

    def _cloud_builder_for(
        self, intrinsics: CameraIntrinsics, has_labels: bool, camera: _Camera | None = None
    ) -> OrganizedCloudBuilder:
        config = self.config
        with_label = config.points_label and has_labels
        key = (intrinsics, config.points_stride, config.points_color, with_label)
        # One cached builder per camera: each has its own intrinsics.
        cache_key = camera.cloud_key if camera is not None else self._cloud_key
        if key != cache_key:
            # Rays are precomputed per intrinsics and stride: rebuilt only when those change.
            builder = OrganizedCloudBuilder(
                intrinsics,
                stride=config.points_stride,
                with_rgb=config.points_color,
                with_label=with_label,
            )
            if camera is not None:
                camera.cloud_builder, camera.cloud_key = builder, key
            else:
                self._cloud_builder, self._cloud_key = builder, key
        return camera.cloud_builder if camera is not None else self._cloud_builder

    # ----- diagnostics -----
    def _publish_diagnostics(self) -> None:
        snapshot = self.stats.snapshot()
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: pipeline"
        status.hardware_id = self.get_fully_qualified_name()
        pipeline = self.pipeline
        level, message = DiagnosticStatus.OK, "running"
        if pipeline is None:
            level, message = DiagnosticStatus.ERROR, snapshot.get("last_error") or "not configured"
        elif snapshot["errors_in_period"]:
            level, message = DiagnosticStatus.ERROR, f"frame errors: {snapshot['last_error']}"
        elif snapshot["warnings_in_period"]:
            level, message = DiagnosticStatus.WARN, f"input warnings: {snapshot['last_warning']}"
        elif not pipeline.description.trained:
            level, message = DiagnosticStatus.WARN, "weights are UNTRAINED (random)"
        elif snapshot["fallback_intrinsics"]:
            level, message = DiagnosticStatus.WARN, "no camera_info: fallback intrinsics"
        elif snapshot["processed_in_period"] == 0:
            level, message = DiagnosticStatus.WARN, "no frames processed in the last period"
        status.level = level
        status.message = message
        values = {key: value for key, value in snapshot.items() if key != "last_error"}
        if pipeline is not None:
            values.update(pipeline.diagnostic_values())
        values["last_error"] = snapshot.get("last_error") or ""
        values["dropped_frames"] = self._slot.dropped
        if self._cameras:
            values.update(self._camera_diagnostics())
        values["fault_injection"] = self.get_parameter("fault_injection").value
        if pipeline is not None:
            values["backends_skipped"] = " | ".join(pipeline.choice.skipped)
        status.values = [KeyValue(key=str(k), value=_format(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics.publish(array)

    def _camera_diagnostics(self) -> dict[str, object]:
        """Batch sizes and per-camera counters of the multi-camera mode (resets the period)."""
        now = time.monotonic()
        elapsed = max(now - self._diagnostics_time, 1e-9)
        self._diagnostics_time = now
        dropped = self._frames_slot.dropped
        values: dict[str, object] = {
            "cameras": ",".join(self._cameras),
            "dropped_frames": sum(dropped.values()),
            "inference_calls": self._batches,
            "batch_size_mean": (
                self._period_batch_frames / self._period_batches
                if self._period_batches
                else (self._batch_frames / self._batches if self._batches else 0.0)
            ),
            "batch_size_max": self._batch_size_max,
        }
        self._period_batches = self._period_batch_frames = 0
        for camera in self._cameras.values():
            values[f"{camera.name}_frames_received"] = camera.received
            values[f"{camera.name}_frames_processed"] = camera.processed
            values[f"{camera.name}_dropped_frames"] = dropped.get(camera.name, 0)
            values[f"{camera.name}_rate_hz"] = camera.period_processed / elapsed
            camera.period_processed = 0
        return values


def _single(frame: _Frame | None) -> dict[str, _Frame]:
    return {"": frame} if frame is not None else {}


def _valid_fault(value: object) -> bool:
    if not isinstance(value, str):
        return False
    return value in ("", "inference", "postprocess") or (
        value.startswith("backend:") and len(value) > len("backend:")
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run depth_perception mono_depth_node``."""
    rclpy.init(args=args)
    node = MonoDepthNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # rclpy's handlers turn SIGINT and SIGTERM into a context shutdown that ends spin().
        node.get_logger().info("shutting down")
        node._stop_worker()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
