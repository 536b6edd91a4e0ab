"""mono_depth: camera image in; depth, camera_info, clouds, labels and a laser scan out.

A managed (lifecycle) node that autostarts by default. A worker thread takes the camera images
itself (``depth_perception.nodes.intake``: the executor never wakes for them) when it is ready
for the next frame, keeps the newest of each camera and processes it, so a slow model drops
old frames (counted) instead of queueing latency. Every output carries the input image's
header. The work between a decoded image and the outputs is the core's ``frame_pipeline``; this
node only converts messages, runs the lifecycle, holds the parameters and the worker thread.

Cameras: the node serves a list of cameras and a single camera is the list ``[""]`` (topics
``image``, ``camera_info``, ``depth/image`` ...). With ``cameras`` set (e.g.
``["front", "rear"]``) it subscribes to ``<cam>/image`` and ``<cam>/camera_info`` of each,
publishes every output under ``<cam>/`` with that camera's header, and the worker runs the
newest frame of every camera that has one through the model as ONE batch (``batch_size_mean``
in /diagnostics); drops, frames and rates are also reported per camera
(``<cam>_dropped_frames``, ``<cam>_rate_hz``, ...).

Inputs: ``image`` (sensor_msgs/Image) or, with ``image_transport: compressed``,
``image/compressed`` (sensor_msgs/CompressedImage, jpeg or png as image_transport's compressed
plugin publishes them; a payload that does not decode is counted as ``errors_bad_image_corrupt``).
Navigation outputs: ``obstacles/points`` (the organized cloud without the pixels of
``obstacle_exclude_classes``) and ``scan`` (sensor_msgs/LaserScan in ``scan_frame_id``, see
``depth_perception.laserscan`` for its geometry and REP 117 semantics).

Outputs on demand (``outputs_on_demand``, default on): per frame and camera the worker asks
each output's publisher for its subscriber count and computes only the outputs someone takes
(and their ``publish_*`` switch allows), with only the stages they need; a frame of a camera
with no subscriber at all is not even decoded (``frames_idle``). /diagnostics lists the outputs
computed for the last frame (``active_outputs``, ``<cam>_active_outputs``).

Parameters: a change is validated as a whole (ranges, then the depth range against the loaded
checkpoint) into a new frozen ``NodeSettings`` that replaces the old one in one assignment; a
refused change changes nothing. The worker reads one settings snapshot per batch.

Reliability: a frame that cannot be decoded or fails in a stage is dropped, logged (throttled
per kind) and counted as ``errors_<kind>`` in /diagnostics, and the next frame gets a try;
frames whose stamp does not increase are processed but counted (``errors_stamp_not_increasing``).
After ``BACKEND_FAILURE_LIMIT`` inference failures in a row the backend is replaced by the next
entry of the backend chain. The ``fault_injection`` parameter is a testing aid that makes
frames fail on purpose (off by default). SIGINT and SIGTERM end the node cleanly (exit code 0).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

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
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, LaserScan, PointCloud2
from std_msgs.msg import String

from depth_perception.allocator import tune_for_large_messages
from depth_perception.camera import aspect_warning
from depth_perception.config import PARAMETERS, PARAMETERS_BY_NAME, PerceptionConfig
from depth_perception.frame_pipeline import (
    FALLBACK,
    FrameOutputs,
    FramePipeline,
    IntrinsicsChoice,
    LatestFrames,
    OutputDemand,
    PreparedFrame,
    prepare_frame,
)
from depth_perception.image_encoding import ImageFormatError
from depth_perception.nodes.conversions import (
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    output_messages,
)
from depth_perception.nodes.intake import WorkerIntake
from depth_perception.nodes.parameters import (
    declare_parameters,
    parameter_value,
    validate_parameters,
)
from depth_perception.obstacles import exclusion_ids
from depth_perception.pipeline_stats import PipelineStats
from depth_perception.predictor import DepthLimits, StageError
from depth_perception.runtime import LoadedPipeline, load_pipeline

# Outputs: reliable so RViz (reliable by default) and Nav2 see them; depth 2 keeps a slow
# subscriber from blocking us for more than one frame. Overridable via qos_overrides.
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
# The class table is published once per configure: latched for late subscribers.
CLASS_NAMES_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Output key (as in conversions.output_messages) -> message type and topic under the camera.
OUTPUTS: dict[str, tuple[type, str]] = {
    "depth": (Image, "depth/image"),
    "depth_info": (CameraInfo, "depth/camera_info"),
    "points": (PointCloud2, "points"),
    "mask": (Image, "segmentation/mask"),
    "color": (Image, "segmentation/color"),
    # The cloud without obstacle_exclude_classes: what a Nav2 voxel layer should mark.
    "obstacles": (PointCloud2, "obstacles/points"),
    "scan": (LaserScan, "scan"),
}

# Consecutive inference failures after which the backend is replaced by the next fallback.
BACKEND_FAILURE_LIMIT = 3
# A camera driver publishes camera_info next to each image, but over DDS the first image can
# arrive before its camera_info (separate topics; best-effort sensor QoS may drop one). Until a
# camera's first camera_info has arrived, and while its topic has a publisher, an image waits
# up to FIRST_INFO_WAIT_S for it rather than be published with guessed intrinsics (a cloud
# at the wrong scale); only in the FIRST_INFO_WINDOW_S after the camera's first image, so a
# publisher that never sends costs that once, after which the fallback field of view is used.
FIRST_INFO_WAIT_S = 0.2
FIRST_INFO_WINDOW_S = 1.0

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


@dataclass(frozen=True)
class NodeSettings:
    """Every run-time setting the worker reads, validated together and never mutated.

    Attributes:
        config: the pipeline settings (reconfigure-only ones as of the last configure).
        fault_injection: the testing aid's value ('' = off).
        limits: ``config``'s depth range resolved against the loaded checkpoint; None while
            no checkpoint is loaded.
    """

    config: PerceptionConfig = field(default_factory=PerceptionConfig)
    fault_injection: str = ""
    limits: DepthLimits | None = None


@dataclass
class _Frame:
    image: Image | CompressedImage
    camera_info: CameraInfo | None
    received: float


@dataclass
class _Camera:
    """One served camera ('' = the single camera): its inputs, outputs and counters."""

    name: str
    camera_info: CameraInfo | None = None
    # The end of the wait for the first camera_info (see FIRST_INFO_WAIT_S), from the first image.
    info_wait_until: float | None = None
    # (width, height) of its last image: a new size is checked against the network's aspect.
    image_size: tuple[int, int] | None = None
    # The worker-owned subscriptions (see depth_perception.nodes.intake) while active.
    image_input: Subscription | None = None
    info_input: Subscription | None = None
    last_stamp_ns: int | None = None
    outputs: dict[str, object] = field(default_factory=dict)
    received: int = 0
    processed: int = 0
    period_processed: int = 0
    # Outputs computed for the last frame (those with a subscriber, or forced): /diagnostics.
    active: tuple[str, ...] = ()
    idle: int = 0

    def topic(self, name: str) -> str:
        """``name`` in this camera's namespace (relative to the node's)."""
        return f"{self.name}/{name}" if self.name else name

    @property
    def prefix(self) -> str:
        """``<name>/`` for log lines ('' for the single camera)."""
        return f"{self.name}/" if self.name else ""


class MonoDepthNode(LifecycleNode):
    """Lifecycle node running a monocular depth (+ segmentation) model on camera streams."""

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
        # Replaced as a whole by the parameter callback and by configure (never mutated).
        self.settings = NodeSettings(fault_injection=self.get_parameter("fault_injection").value)
        # The settings last applied to the predictor, by the worker that owns it.
        self._applied: NodeSettings | None = None
        self.pipeline: LoadedPipeline | None = None
        self._frame_pipeline: FramePipeline | None = None
        self.stats = PipelineStats()
        self._cameras: dict[str, _Camera] = {}
        self._slot: LatestFrames[_Frame] = LatestFrames([])
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._intake: WorkerIntake | None = None
        self._class_name_publishers: list[object] = []
        self._last_processed = 0.0
        self._inference_failures = 0
        self._warned: set[str] = set()
        self._error_logged: dict[str, float] = {}
        self._batches = self._batch_frames = self._batch_size_max = 0
        self._period_batches = self._period_batch_frames = 0
        self._idle_frames = self._period_idle = 0
        self._diagnostics_time = time.monotonic()
        # Diagnostics run in every lifecycle state: an unconfigured node must say why.
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics
        )

    @property
    def config(self) -> PerceptionConfig:
        """The current pipeline settings."""
        return self.settings.config

    # ----- lifecycle -----
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = self._read_config()
            names = self._camera_names() or [""]
            # One inference call takes every camera's newest frame: a TensorRT engine is built
            # for batches up to the camera count.
            pipeline = load_pipeline(config, max_batch=len(names))
            try:  # refused like a live change: the names must be the checkpoint's classes
                exclusion_ids(config.obstacle_exclude_classes, pipeline.description.class_names)
            except ValueError:
                pipeline.close()
                raise
        except Exception as error:  # any reason not to run is reported, never raised
            self.get_logger().error(f"configure failed: {error}")
            self.stats.record_error("configure", str(error))
            self.stats.last_error = f"configure failed: {error}"
            return TransitionCallbackReturn.FAILURE
        self.pipeline = pipeline
        self._frame_pipeline = FramePipeline(pipeline.predictor, pipeline.palette)
        self.settings = NodeSettings(
            config, self.get_parameter("fault_injection").value, pipeline.predictor.limits
        )
        self._applied = None
        for line in pipeline.notes:
            self.get_logger().info(line)
        for line in pipeline.warnings:
            self.get_logger().warning(line)
        qos_options = QoSOverridingOptions.with_default_policies()
        self._cameras = {name: _Camera(name) for name in names}
        self._slot = LatestFrames(names)
        self._batches = self._batch_frames = self._batch_size_max = 0
        self._period_batches = self._period_batch_frames = 0
        self._idle_frames = self._period_idle = 0
        for camera in self._cameras.values():
            for key, (message_type, topic) in OUTPUTS.items():
                camera.outputs[key] = self.create_lifecycle_publisher(
                    message_type,
                    camera.topic(topic),
                    OUTPUT_QOS,
                    qos_overriding_options=qos_options,
                )
        self._publish_class_names()
        self.stats.reset()
        self._inference_failures = 0
        self.get_logger().info(f"configured: {pipeline.summary()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos_options = QoSOverridingOptions.with_default_policies()
        # image_transport's compressed plugin publishes <image>/compressed.
        compressed = self.config.image_transport == "compressed"
        image_type, image_suffix = (CompressedImage, "/compressed") if compressed else (Image, "")
        # The worker takes the images itself, only when it is ready for the next frame.
        self._intake = intake = WorkerIntake(self)
        for camera in self._cameras.values():
            camera.image_input = intake.subscribe(
                image_type,
                camera.topic("image") + image_suffix,
                qos_profile_sensor_data,
                wait=True,
                qos_overriding_options=qos_options,
            )
            camera.info_input = intake.subscribe(
                CameraInfo,
                camera.topic("camera_info"),
                qos_profile_sensor_data,
                wait=False,
                qos_overriding_options=qos_options,
            )
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="mono_depth_worker", daemon=True)
        self._worker.start()
        topics = ", ".join(
            self.resolve_topic_name(c.topic("image") + image_suffix)
            for c in self._cameras.values()
        )
        batch = f" (one batch over {len(self._cameras)} cameras)" if len(self._cameras) > 1 else ""
        self.get_logger().info(f"active: waiting for images on {topics}{batch}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._close_intake()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._cameras = {}
        self._warned.clear()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._close_intake()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _publish_class_names(self) -> None:
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
        for camera in self._cameras.values():
            publisher = self.create_publisher(
                String, camera.topic("segmentation/class_names"), CLASS_NAMES_QOS
            )
            publisher.publish(msg)
            self._class_name_publishers.append(publisher)

    def _release(self) -> None:
        for publisher in self._class_name_publishers:
            self.destroy_publisher(publisher)
        self._class_name_publishers = []
        for camera in self._cameras.values():
            for publisher in camera.outputs.values():
                self.destroy_lifecycle_publisher(publisher)
            camera.outputs = {}
        self._frame_pipeline = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        # Unloaded: no checkpoint to check depth limits against until the next configure.
        self.settings = NodeSettings(self.settings.config, self.settings.fault_injection)

    def _stop_worker(self) -> None:
        self._running.clear()
        self._slot.clear()
        if self._intake is not None:
            self._intake.wake()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _close_intake(self) -> None:
        if self._intake is not None:
            self._intake.close()
            self._intake = None
        for camera in self._cameras.values():
            camera.image_input = camera.info_input = None

    # ----- parameters -----
    def _read_config(self) -> PerceptionConfig:
        values = {spec.name: parameter_value(self, spec) for spec in PARAMETERS}
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

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        result = validate_parameters(parameters)
        if not result.successful:
            return result
        try:
            candidate = self._settings_with(parameters)
        except ValueError as error:  # refused as a whole: nothing has changed
            return SetParametersResult(successful=False, reason=str(error))
        previous, self.settings = self.settings, candidate  # the one swap the worker sees
        period = candidate.config.diagnostics_period_s
        if period != previous.config.diagnostics_period_s:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics)
        deferred = sorted(
            p.name
            for p in parameters
            if p.name == "cameras"
            or (p.name in PARAMETERS_BY_NAME and PARAMETERS_BY_NAME[p.name].needs_reconfigure)
        )
        if deferred:
            self.get_logger().info(
                f"{', '.join(deferred)} take effect on the next configure (deactivate, cleanup, "
                "configure, activate)"
            )
        return result

    def _settings_with(self, parameters: list[Parameter]) -> NodeSettings:
        """The settings after ``parameters``, validated as a whole; changes nothing itself.

        Raises:
            ValueError: any value, or the combination (e.g. a depth range the loaded
                checkpoint cannot have), that would be refused.
        """
        settings = self.settings
        fault = settings.fault_injection
        live: dict[str, object] = {}
        for parameter in parameters:
            if parameter.name == "fault_injection":
                if not _valid_fault(parameter.value):
                    raise ValueError(
                        "fault_injection must be '', 'inference', 'postprocess' or "
                        "'backend:<name>'"
                    )
                fault = parameter.value
            elif parameter.name == "cameras" and parameter.value is not None:
                error = camera_names_error(list(parameter.value))
                if error:
                    raise ValueError(error)
            elif parameter.name in PARAMETERS_BY_NAME:
                if not PARAMETERS_BY_NAME[parameter.name].needs_reconfigure:
                    live[parameter.name] = parameter.value
        config = settings.config.replace(**live)
        limits = None
        if self.pipeline is not None:
            limits = DepthLimits.resolve(
                self.pipeline.description, config.min_depth, config.max_depth, config.depth_scale
            )
            # Names the loaded checkpoint does not have are refused, listing the valid ones.
            exclusion_ids(config.obstacle_exclude_classes, self.pipeline.description.class_names)
        return NodeSettings(config, fault, limits)

    # ----- input -----
    def _take_inputs(self, intake: WorkerIntake) -> None:
        """Take every camera's queued images into the slot, with the newest camera_info.

        Each image taken counts as received; an older one replaced in the same take counts as
        dropped, as one replaced in the slot does.
        """
        for camera in self._cameras.values():
            if camera.image_input is None:
                continue
            info, _ = intake.take_newest(camera.info_input)
            if info is not None:
                camera.camera_info = info
            newest, taken = intake.take_newest(camera.image_input)
            if newest is None:
                continue
            if camera.camera_info is None:
                self._await_first_camera_info(intake, camera)
            self.stats.received += taken
            camera.received += taken
            self._slot.count_dropped(camera.name, taken - 1)
            self._slot.put(camera.name, _Frame(newest, camera.camera_info, time.monotonic()))

    def _await_first_camera_info(self, intake: WorkerIntake, camera: _Camera) -> None:
        """Hold a camera's image briefly for its first camera_info, if someone publishes one."""
        now = time.monotonic()
        if camera.info_wait_until is None:
            camera.info_wait_until = now + FIRST_INFO_WINDOW_S
        deadline = min(now + FIRST_INFO_WAIT_S, camera.info_wait_until)
        if now >= deadline:
            return  # after the window: one clock read per frame for a camera without one
        if self.count_publishers(self.resolve_topic_name(camera.topic("camera_info"))) == 0:
            return  # a camera without camera_info: the fallback, with its warning
        while self._running.is_set() and time.monotonic() < deadline:
            time.sleep(0.002)
            info, _ = intake.take_newest(camera.info_input)
            if info is not None:
                camera.camera_info = info
                return

    def _check_aspect(self, camera: _Camera) -> None:
        """Say once per camera and size which network input its images get; warn when that
        squeezes them (a fixed-size backend, match_camera_aspect off, an explicit size)."""
        width, height = camera.image_size or (0, 0)
        if width < 1 or height < 1 or self.pipeline is None:
            return
        input_width, input_height = self.pipeline.predictor.input_size_for(width, height)
        who = f"camera '{camera.name}': " if camera.name else ""
        key = f"aspect:{camera.name}:{width}x{height}"
        text = aspect_warning(width, height, input_width, input_height)
        if text is not None:
            self._warn_once(key, who + text)
        elif key not in self._warned:
            self._warned.add(key)
            self.get_logger().info(
                f"{who}images of {width}x{height} run at the network input "
                f"{input_width}x{input_height}"
            )

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    # ----- processing -----
    def _work(self) -> None:
        """The worker loop: newest frames, rate limit, process, count and log failures."""
        intake = self._intake
        while self._running.is_set():
            try:
                if not intake.wait(timeout_s=0.1) or not self._running.is_set():
                    continue
                self._take_inputs(intake)
            except Exception as error:  # a shutting-down context: end quietly if stopping
                if not self._running.is_set() or not rclpy.ok(context=self.context):
                    return
                self.stats.record_error("intake", f"{type(error).__name__}: {error}")
                self._log_error("intake", f"taking camera input failed: {error}")
                time.sleep(0.1)  # a lasting fault must not become a busy loop
                continue
            frames = self._slot.take_all(timeout=0.0)
            if not frames:
                continue
            settings = self.settings  # one snapshot for the whole batch
            newest = max(frame.received for frame in frames.values())
            max_rate = settings.config.max_rate_hz
            if max_rate > 0.0 and newest - self._last_processed < 1.0 / max_rate:
                self.stats.rate_limited += len(frames)
                continue
            self._last_processed = newest
            what = "a frame" if len(frames) == 1 else f"a batch of {len(frames)} frames"
            try:
                self._process(frames, settings)
            except StageError as error:
                for _ in frames:
                    self.stats.record_error(error.stage, str(error))
                self._log_error(error.stage, f"dropped {what}: {error}")
                if error.stage == "inference":
                    self._on_inference_failure(str(error.error))
            except Exception as error:  # the node keeps serving; the next frame gets a try
                self.stats.record_error("processing", f"{type(error).__name__}: {error}")
                self.get_logger().error(
                    f"{what} failed: {type(error).__name__}: {error}", throttle_duration_sec=1.0
                )

    def _apply(self, settings: NodeSettings) -> None:
        """Hand a new settings snapshot to the predictor; only the worker touches it."""
        if settings is self._applied or self._frame_pipeline is None:
            return
        predictor = self._frame_pipeline.predictor
        if settings.limits is not None:
            predictor.limits = settings.limits
        predictor.stage_hook = _fault_hook(settings.fault_injection)
        self._applied = settings

    def _process(self, frames: dict[str, _Frame], settings: NodeSettings) -> None:
        """Decode every camera's frame, run them as one batch, publish each in its namespace."""
        frame_pipeline = self._frame_pipeline
        if frame_pipeline is None:
            return
        self._apply(settings)
        config = settings.config
        start = time.perf_counter()
        prepared: list[tuple[_Camera, _Frame, PreparedFrame]] = []
        demands: dict[str, OutputDemand] = {}
        for name, frame in frames.items():
            camera = self._cameras[name]
            demand = self._demand(camera, config)
            camera.active = tuple(demand.active())
            if not demand.any:  # nobody listens to this camera: not even decoded
                camera.idle += 1
                self._idle_frames += 1
                self._period_idle += 1
                continue
            demands[name] = demand
            begin = time.perf_counter()
            try:
                if isinstance(frame.image, CompressedImage):
                    rgb = compressed_msg_to_rgb(frame.image)
                else:
                    rgb = image_msg_to_rgb(frame.image)
            except ImageFormatError as error:  # only this camera's frame is dropped
                where = f"camera {name}: " if name else ""
                self.stats.record_error("bad_image", f"{where}{error}", error.kind)
                self._log_error(
                    f"bad_image_{error.kind}", f"dropped a {camera.prefix}frame: {error}"
                )
                continue
            self._check_stamp(camera, frame)
            size = (rgb.shape[1], rgb.shape[0])  # a CompressedImage tells its size only decoded
            if size != camera.image_size:
                camera.image_size = size
                self._check_aspect(camera)
            ready = prepare_frame(name, rgb, frame.camera_info, config.fallback_hfov_deg)
            self._report_intrinsics(camera, ready.intrinsics, config)
            ready.timings_ms["convert_in"] = (time.perf_counter() - begin) * 1e3
            prepared.append((camera, frame, ready))
        if not prepared:
            return
        results = frame_pipeline.process([ready for _, _, ready in prepared], config, demands)
        self._inference_failures = 0
        self._batches += 1
        self._batch_frames += len(prepared)
        self._period_batches += 1
        self._period_batch_frames += len(prepared)
        self._batch_size_max = max(self._batch_size_max, len(prepared))
        for (camera, frame, _), outputs in zip(prepared, results, strict=True):
            self._publish(camera, frame, outputs, config)
            outputs.timings_ms["total"] = (time.perf_counter() - start) * 1e3
            camera.processed += 1
            camera.period_processed += 1
            stamp = frame.image.header.stamp
            now = self.get_clock().now().nanoseconds * 1e-9
            self.stats.record_frame(outputs.timings_ms, now - (stamp.sec + stamp.nanosec * 1e-9))

    def _demand(self, camera: _Camera, config: PerceptionConfig) -> OutputDemand:
        """This frame's outputs: switched on and subscribed (one rcl call per publisher)."""
        if not config.outputs_on_demand:
            return OutputDemand.everything(config)
        counts = {key: pub.get_subscription_count() for key, pub in camera.outputs.items()}
        return OutputDemand.from_subscribers(config, counts)

    def _publish(
        self, camera: _Camera, frame: _Frame, outputs: FrameOutputs, config: PerceptionConfig
    ) -> None:
        """Publish one frame's outputs with the input image's header (scan: its own frame)."""
        timings = outputs.timings_ms
        stage = time.perf_counter()
        scan_frame = config.scan_frame_id.replace("{camera}", camera.name)
        messages = output_messages(outputs, frame.image.header, scan_frame)
        timings["to_messages"] = (time.perf_counter() - stage) * 1e3
        stage = time.perf_counter()
        for key, message in messages.items():
            camera.outputs[key].publish(message)
        timings["publish"] = (time.perf_counter() - stage) * 1e3

    def _report_intrinsics(
        self, camera: _Camera, choice: IntrinsicsChoice, config: PerceptionConfig
    ) -> None:
        """Count and log (once per camera and kind) what was wrong with the camera_info."""
        prefix = camera.prefix
        if choice.problem_kind == "bad_camera_info":
            self.stats.record_warning(choice.problem_kind, choice.problem)
            self._warn_once(f"{prefix}bad_info", f"ignoring {prefix}camera_info: {choice.problem}")
        elif choice.problem_kind == "camera_info_size":
            self.stats.record_warning(choice.problem_kind, choice.problem)
            (info_w, info_h), size = choice.camera_info_size, choice.intrinsics
            self._warn_once(
                f"{prefix}info_size",
                f"{prefix}camera_info size {info_w}x{info_h} differs from the image's "
                f"{size.width}x{size.height}: scaling the intrinsics to the image",
            )
        if choice.source == FALLBACK:
            self._warn_once(
                f"{prefix}no_info",
                f"no valid camera_info on {self.resolve_topic_name(camera.topic('camera_info'))}"
                f": assuming a horizontal field of view of {config.fallback_hfov_deg} deg",
            )
            self.stats.fallback_intrinsics += 1

    def _check_stamp(self, camera: _Camera, frame: _Frame) -> None:
        # Processed anyway (replayed bags and multi-camera relays do this), but counted.
        stamp = frame.image.header.stamp
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        previous, camera.last_stamp_ns = camera.last_stamp_ns, stamp_ns
        if previous is not None and stamp_ns <= previous:
            text = f"stamp {stamp_ns} ns is not after the previous frame's {previous} ns"
            if camera.name:
                text = f"camera {camera.name}: {text}"
            self.stats.record_warning("stamp_not_increasing", text)
            self.get_logger().warning(
                f"{text}: processed anyway, outputs keep this stamp", throttle_duration_sec=1.0
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
        elif snapshot["processed_in_period"] == 0 and self._period_idle:
            message = "idle: no subscriber to any output (frames are not processed)"
        elif snapshot["processed_in_period"] == 0:
            level, message = DiagnosticStatus.WARN, "no frames processed in the last period"
        status.level = level
        status.message = message
        values = {key: value for key, value in snapshot.items() if key != "last_error"}
        if pipeline is not None:
            values.update(pipeline.diagnostic_values())
        values["last_error"] = snapshot.get("last_error") or ""
        values.update(self._camera_diagnostics())
        values["fault_injection"] = self.settings.fault_injection
        values["image_transport"] = self.config.image_transport
        if pipeline is not None:
            values["backends_skipped"] = " | ".join(pipeline.choice.skipped)
        status.values = [KeyValue(key=str(k), value=_format(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diagnostics.publish(array)

    def _camera_diagnostics(self) -> dict[str, object]:
        """Drops, batch sizes and (named cameras) per-camera counters; resets the period."""
        now = time.monotonic()
        elapsed = max(now - self._diagnostics_time, 1e-9)
        self._diagnostics_time = now
        dropped = dict(self._slot.dropped)
        values: dict[str, object] = {
            "dropped_frames": sum(dropped.values()),
            "inference_calls": self._batches,
            "batch_size_mean": (
                self._period_batch_frames / self._period_batches
                if self._period_batches
                else (self._batch_frames / self._batches if self._batches else 0.0)
            ),
            "batch_size_max": self._batch_size_max,
            # Frames skipped before decoding because no output had a subscriber.
            "frames_idle": self._idle_frames,
        }
        self._period_batches = self._period_batch_frames = self._period_idle = 0
        single = self._cameras.get("")
        if single is not None:
            values["active_outputs"] = ",".join(single.active) or "none"
        named = [camera for camera in self._cameras.values() if camera.name]
        if named:
            values["cameras"] = ",".join(camera.name for camera in named)
        for camera in named:
            values[f"{camera.name}_frames_received"] = camera.received
            values[f"{camera.name}_frames_processed"] = camera.processed
            values[f"{camera.name}_dropped_frames"] = dropped.get(camera.name, 0)
            values[f"{camera.name}_rate_hz"] = camera.period_processed / elapsed
            values[f"{camera.name}_active_outputs"] = ",".join(camera.active) or "none"
            camera.period_processed = 0
        return values


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
    allocator = tune_for_large_messages()  # before the first message buffer
    rclpy.init(args=args)
    node = MonoDepthNode()
    node.get_logger().info(f"allocator: {allocator}")
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
