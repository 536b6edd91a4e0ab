"""One camera frame from a decoded image to every output, for one camera or many.

The node, the bag tool and the bench all run frames through this module, so an output is
changed in one place and the bench measures the node's own code. Per frame:

1. :func:`prepare_frame`: intrinsics from the frame's camera_info (P, else K; scaled when its
   size differs from the image's) or, without a usable one, the ``fallback_hfov_deg`` guess.
2. :meth:`FramePipeline.process`: every prepared frame (one per camera) through the model in
   ONE predictor call, then each prediction composed into its outputs: depth, the organized
   cloud (from the camera's cached :class:`OrganizedCloudBuilder`), the class ids and the
   colour overlay, with the milliseconds of every stage.

Only the outputs of the frame's :class:`OutputDemand` are computed, and only the stages they
need: no arg-max without a mask, overlay, labelled cloud or class exclusion, no colouring
without the overlay, no cloud without its subscriber. The navigation outputs are composed here
too, from pure modules: the obstacle cloud (:mod:`depth_perception.obstacles`: the organized
cloud with the pixels of ``obstacle_exclude_classes`` NaN) and the virtual laser scan
(:mod:`depth_perception.laserscan`); ``depth_encoding: 16UC1`` turns depth into millimetres.

Every output is written into its camera's reused buffers
(:mod:`depth_perception.buffers`), which the node's messages take without a copy: an output
is valid until that camera's next frame.

Message classes stay outside: the node turns :class:`FrameOutputs` into rclpy messages
(``nodes.conversions.output_messages``), the bag tool into rosbags messages. Single camera is
the camera list ``[""]``. :class:`LatestFrames` is the newest-frame-wins mailbox between a
subscription callback and the worker. Imports no rclpy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from depth_perception.buffers import BufferSet
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.image_encoding import depth_to_millimetres
from depth_perception.laserscan import ScanData, ScanGeometry, ScanOptions
from depth_perception.message_fields import intrinsics_from_camera_info
from depth_perception.obstacles import exclusion_ids, exclusion_table, mask_excluded
from depth_perception.pointcloud import CloudData, OrganizedCloudBuilder
from depth_perception.predictor import DepthPredictor, Prediction
from depth_perception.visualize import colorize_labels, overlay

# Where a frame's intrinsics came from.
FROM_CAMERA_INFO = "camera_info"
SCALED_CAMERA_INFO = "scaled"
FALLBACK = "fallback"


@dataclass(frozen=True)
class IntrinsicsChoice:
    """The intrinsics of one frame and why they are those.

    Attributes:
        intrinsics: intrinsics at the image's size.
        source: ``camera_info``, ``scaled`` (a camera_info of another size, scaled to the
            image) or ``fallback`` (no usable camera_info: ``fallback_hfov_deg``).
        problem_kind: ``bad_camera_info`` (camera_info ignored), ``camera_info_size`` (scaled)
            or '' when nothing was wrong.
        problem: what was wrong, for counters and logs ('' when nothing).
        camera_info_size: (width, height) of the camera_info when it was read, else None.
    """

    intrinsics: CameraIntrinsics
    source: str
    problem_kind: str = ""
    problem: str = ""
    camera_info_size: tuple[int, int] | None = None

    @property
    def from_camera_info(self) -> bool:
        """True when a camera_info message gave the intrinsics (its distortion applies)."""
        return self.source != FALLBACK


def resolve_intrinsics(
    camera_info: Any | None, width: int, height: int, fallback_hfov_deg: float
) -> IntrinsicsChoice:
    """Intrinsics of a ``width`` x ``height`` image from its camera_info, else the fallback.

    Args:
        camera_info: a sensor_msgs/CameraInfo (rclpy or rosbags, read by field names) or None.
        width: image width in pixels.
        height: image height in pixels.
        fallback_hfov_deg: horizontal field of view assumed without a usable camera_info.
    """
    problem_kind = problem = ""
    if camera_info is not None:
        try:
            intrinsics = intrinsics_from_camera_info(camera_info)
        except ValueError as error:
            problem_kind, problem = "bad_camera_info", str(error)
        else:
            size = (intrinsics.width, intrinsics.height)
            if size == (width, height):
                return IntrinsicsChoice(intrinsics, FROM_CAMERA_INFO, camera_info_size=size)
            return IntrinsicsChoice(
                intrinsics.scaled(width, height),
                SCALED_CAMERA_INFO,
                "camera_info_size",
                f"camera_info is {size[0]}x{size[1]}, image {width}x{height}",
                size,
            )
    fallback = CameraIntrinsics.from_hfov(width, height, fallback_hfov_deg)
    return IntrinsicsChoice(fallback, FALLBACK, problem_kind, problem)


@dataclass
class PreparedFrame:
    """A decoded camera image ready for the model.

    Attributes:
        camera: the camera's name ('' for the single camera).
        rgb: HxWx3 uint8 RGB image.
        intrinsics: its intrinsics and where they came from.
        camera_info: the camera_info message the intrinsics came from (None on the fallback).
        timings_ms: stage milliseconds so far (e.g. ``convert_in``).
    """

    camera: str
    rgb: np.ndarray
    intrinsics: IntrinsicsChoice
    camera_info: Any | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def prepare_frame(
    camera: str,
    rgb: np.ndarray,
    camera_info: Any | None,
    fallback_hfov_deg: float,
    timings_ms: dict[str, float] | None = None,
) -> PreparedFrame:
    """Pair a decoded image with its intrinsics (see :func:`resolve_intrinsics`)."""
    height, width = rgb.shape[:2]
    choice = resolve_intrinsics(camera_info, width, height, fallback_hfov_deg)
    return PreparedFrame(
        camera,
        rgb,
        choice,
        camera_info if choice.from_camera_info else None,
        dict(timings_ms or {}),
    )


# Output names, in publishing order: the node's publisher keys.
OUTPUT_NAMES = ("depth", "depth_info", "points", "mask", "color", "obstacles", "scan")


@dataclass(frozen=True)
class OutputDemand:
    """Which outputs one frame must produce: those someone subscribes to, or forced on.

    An output is produced when its ``publish_*`` switch is on AND (it has a subscriber OR
    ``outputs_on_demand`` is off, which forces every switched-on output). The node reads the
    subscriber counts per frame (a cheap rcl call per publisher); the bag tool and the bench
    ask for everything with :meth:`everything`.

    Attributes:
        wanted: the outputs to produce, a subset of :data:`OUTPUT_NAMES`.
    """

    wanted: frozenset[str]

    def __post_init__(self) -> None:
        unknown = set(self.wanted) - set(OUTPUT_NAMES)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}; known: {OUTPUT_NAMES}")

    @classmethod
    def everything(cls, config: PerceptionConfig) -> OutputDemand:
        """Every output the configuration switches on, subscribed or not."""
        return cls.from_subscribers(config, dict.fromkeys(OUTPUT_NAMES, 1))

    @classmethod
    def from_subscribers(
        cls, config: PerceptionConfig, subscribers: Mapping[str, int]
    ) -> OutputDemand:
        """The outputs switched on that have a subscriber (all of them without on-demand).

        Args:
            config: the switches (``publish_*``, ``outputs_on_demand``).
            subscribers: subscriber count per output name (a missing name counts 0).
        """
        switched = {
            "depth": config.publish_depth,
            "depth_info": config.publish_depth,
            "points": config.publish_points,
            "mask": config.publish_segmentation,
            "color": config.publish_segmentation,
            # An obstacle cloud exists only with classes to take out of it.
            "obstacles": bool(config.obstacle_exclude_classes),
            "scan": config.publish_scan,
        }
        lazy = config.outputs_on_demand
        return cls(
            frozenset(
                name
                for name in OUTPUT_NAMES
                if switched[name] and (not lazy or subscribers.get(name, 0) > 0)
            )
        )

    def __contains__(self, name: str) -> bool:
        return name in self.wanted

    @property
    def any(self) -> bool:
        """False when the frame may be skipped without even decoding it."""
        return bool(self.wanted)

    def needs_labels(self, config: PerceptionConfig) -> bool:
        """Whether the class ids must be computed (mask, overlay, the cloud's label, exclusion)."""
        excluding = bool(config.obstacle_exclude_classes) and "scan" in self.wanted
        return bool(
            {"mask", "color", "obstacles"} & self.wanted
            or ("points" in self.wanted and config.points_label)
            or excluding
        )

    def active(self) -> list[str]:
        """The wanted outputs in publishing order (for /diagnostics)."""
        return [name for name in OUTPUT_NAMES if name in self.wanted]


@dataclass
class FrameOutputs:
    """Everything one frame publishes, as arrays; None = not an output of this frame.

    Attributes:
        camera: the camera's name ('' for the single camera).
        intrinsics: intrinsics of ``depth``, ``labels`` and the cloud (the image's).
        camera_info: the input camera_info they came from (its distortion is copied), or None.
        prediction: the predictor's result (depth even when ``depth`` is switched off).
        depth: float32 metres, NaN where unknown, or uint16 millimetres, 0 where unknown
            (``depth_encoding: 16UC1``) (``depth`` wanted).
        depth_info: whether depth/camera_info is wanted (built from ``intrinsics``).
        cloud: the organized cloud (``points`` wanted).
        labels: uint8 class ids, 255 = unlabelled (``mask`` wanted, multi-task).
        overlay: rgb8 class colours blended over the image (``color`` wanted, multi-task).
        obstacle_cloud: the organized cloud without the excluded classes (``obstacles``
            wanted): the layout of ``cloud``.
        scan: the virtual laser scan (``scan`` wanted); its frame is ``scan_frame_id``.
        timings_ms: milliseconds of every stage so far.

    ``depth``, ``cloud``, ``labels``, ``overlay``, ``obstacle_cloud`` and ``scan`` live in the
    camera's reused buffers and are overwritten by that camera's next frame: publish or copy
    them before then.
    """

    camera: str
    intrinsics: CameraIntrinsics
    camera_info: Any | None
    prediction: Prediction
    depth: np.ndarray | None = None
    cloud: CloudData | None = None
    labels: np.ndarray | None = None
    overlay: np.ndarray | None = None
    obstacle_cloud: CloudData | None = None
    scan: ScanData | None = None
    depth_info: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)


class FrameComposer:
    """Turns one camera's predictions into its outputs; keeps that camera's buffers.

    Not thread-safe (the cloud builder and the output buffers are reused): one composer per
    camera, used by one worker.
    """

    def __init__(self, palette: np.ndarray, class_names: Sequence[str] = ()) -> None:
        self.palette = palette
        self.class_names = tuple(class_names)
        self.buffers = BufferSet()
        # Two cloud builders, each with its own output buffer: points and obstacles/points
        # may be published from the same frame.
        self._builders: dict[str, tuple[tuple, OrganizedCloudBuilder]] = {}
        self._scan: tuple[tuple, ScanGeometry] | None = None
        self._exclusion: tuple[tuple[str, ...], np.ndarray | None] = ((), None)

    def cloud_builder(
        self,
        intrinsics: CameraIntrinsics,
        config: PerceptionConfig,
        with_label: bool,
        which: str = "points",
    ) -> OrganizedCloudBuilder:
        """The cached builder of ``which`` cloud (``points`` or ``obstacles``).

        Rebuilt only when the intrinsics or the cloud options change.
        """
        key = (intrinsics, config.points_stride, config.points_color, with_label)
        cached = self._builders.get(which)
        if cached is None or cached[0] != key:
            # Rays are precomputed per intrinsics and stride: worth keeping between frames.
            builder = OrganizedCloudBuilder(
                intrinsics,
                stride=config.points_stride,
                with_rgb=config.points_color,
                with_label=with_label,
            )
            self._builders[which] = cached = (key, builder)
        return cached[1]

    def scan_geometry(
        self, intrinsics: CameraIntrinsics, config: PerceptionConfig
    ) -> ScanGeometry:
        """The cached scan geometry, rebuilt only when the intrinsics or scan options change.

        Raises:
            ValueError: a ``scan_row`` outside the image.
        """
        options = ScanOptions(
            height=config.scan_height,
            row=config.scan_row,
            stride=config.scan_stride,
            range_min=config.scan_range_min,
            range_max=config.scan_range_max,
        )
        key = (intrinsics, options)
        if self._scan is None or self._scan[0] != key:
            self._scan = (key, ScanGeometry(intrinsics, options))
        return self._scan[1]

    def exclusion(self, config: PerceptionConfig) -> np.ndarray | None:
        """The look-up table of ``obstacle_exclude_classes`` (None when the list is empty).

        Raises:
            ValueError: a class name the checkpoint does not have.
        """
        names = config.obstacle_exclude_classes
        if names != self._exclusion[0]:
            ids = exclusion_ids(names, self.class_names)
            self._exclusion = (names, exclusion_table(ids) if ids else None)
        return self._exclusion[1]

    def compose(
        self,
        frame: PreparedFrame,
        prediction: Prediction,
        config: PerceptionConfig,
        demand: OutputDemand | None = None,
    ) -> FrameOutputs:
        """The outputs ``demand`` asks for (default: every switched-on one), with timings."""
        if demand is None:
            demand = OutputDemand.everything(config)
        rgb = frame.rgb
        labels = prediction.labels
        timings = {**frame.timings_ms, **prediction.timings_ms}
        outputs = FrameOutputs(
            camera=frame.camera,
            intrinsics=prediction.intrinsics,
            camera_info=frame.camera_info,
            prediction=prediction,
            depth_info="depth_info" in demand,
            timings_ms=timings,
        )
        if "depth" in demand:
            outputs.depth = prediction.depth
            if config.depth_encoding == "16UC1":
                stage = time.perf_counter()
                shape = prediction.depth.shape
                outputs.depth = depth_to_millimetres(
                    prediction.depth,
                    out=self.buffers.view("depth_mm", shape, np.uint16),
                    scratch=self.buffers.view("depth_mm_scratch", shape, np.float32),
                )
                timings["depth_mm"] = (time.perf_counter() - stage) * 1e3
        table = self.exclusion(config) if {"obstacles", "scan"} & demand.wanted else None
        if "points" in demand:
            stage = time.perf_counter()
            with_label = config.points_label and labels is not None
            builder = self.cloud_builder(prediction.intrinsics, config, with_label)
            # The predictor's depth is NaN wherever it is invalid: no second validation pass.
            outputs.cloud = builder.build(
                prediction.depth,
                rgb=rgb if config.points_color else None,
                labels=labels if with_label else None,
                validated=prediction.depth.dtype == np.float32,
            )
            timings["points"] = (time.perf_counter() - stage) * 1e3
        if labels is not None and "mask" in demand:
            outputs.labels = labels
        if labels is not None and "color" in demand:
            stage = time.perf_counter()
            shape = (*labels.shape, 3)
            colors = colorize_labels(
                labels,
                self.palette,
                out=self.buffers.view("colors", shape, np.uint8),
                scratch=self.buffers.view("class_ids_rgb", shape, np.uint8),
            )
            outputs.overlay = overlay(
                rgb,
                colors,
                config.overlay_alpha,
                labels,
                out=self.buffers.view("overlay", shape, np.uint8),
            )
            timings["colorize"] = (time.perf_counter() - stage) * 1e3
        if "obstacles" in demand and labels is not None and table is not None:
            stage = time.perf_counter()
            shape = labels.shape
            # Same layout as points: the label field is there when points has it.
            builder = self.cloud_builder(
                prediction.intrinsics, config, config.points_label, "obstacles"
            )
            masked = mask_excluded(
                prediction.depth,
                labels,
                table,
                out=self.buffers.view("obstacle_depth", shape, np.float32),
            )
            outputs.obstacle_cloud = builder.build(
                masked,
                rgb=rgb if config.points_color else None,
                labels=labels if config.points_label else None,
                validated=True,
            )
            timings["obstacles"] = (time.perf_counter() - stage) * 1e3
        if "scan" in demand:
            stage = time.perf_counter()
            geometry = self.scan_geometry(prediction.intrinsics, config)
            excluded = table if labels is not None else None
            outputs.scan = geometry.scan(prediction.depth, labels, excluded)
            timings["scan"] = (time.perf_counter() - stage) * 1e3
        return outputs


class FramePipeline:
    """Prepared frames of one or many cameras -> their outputs, through one predictor call.

    Args:
        predictor: the loaded predictor (its backend may be replaced by a fallback later).
        palette: class colours for the overlay, indexed by class id.
    """

    def __init__(self, predictor: DepthPredictor, palette: np.ndarray) -> None:
        self.predictor = predictor
        self.palette = palette
        self._composers: dict[str, FrameComposer] = {}

    def composer(self, camera: str) -> FrameComposer:
        """The composer (and so the cached cloud builder) of ``camera``."""
        if camera not in self._composers:
            class_names = getattr(self.predictor.description, "class_names", ())
            self._composers[camera] = FrameComposer(self.palette, class_names)
        return self._composers[camera]

    def predict(self, frames: Sequence[PreparedFrame], labels: bool = True) -> list[Prediction]:
        """One inference call for all frames (``predict`` for one, ``predict_batch`` else).

        Each prediction is written into its camera's reused buffers. ``labels=False`` skips
        the class ids (no camera needs them).

        Raises:
            ValueError: no frame, or an image that does not fit its intrinsics.
            StageError: inference or postprocessing failed; every frame fails together.
        """
        buffers = [self.composer(frame.camera).buffers for frame in frames]
        if len(frames) == 1:
            frame = frames[0]
            return [
                self.predictor.predict(
                    frame.rgb, frame.intrinsics.intrinsics, buffers[0], labels=labels
                )
            ]
        return self.predictor.predict_batch(
            [(frame.rgb, frame.intrinsics.intrinsics) for frame in frames],
            buffers,
            labels=labels,
        )

    def process(
        self,
        frames: Sequence[PreparedFrame],
        config: PerceptionConfig,
        demand: OutputDemand | Mapping[str, OutputDemand] | None = None,
    ) -> list[FrameOutputs]:
        """Predict every frame in one call and compose each one's outputs, in order.

        Args:
            frames: one prepared frame per camera.
            config: the switches and cloud/overlay options.
            demand: what to compute: one :class:`OutputDemand` for every camera, one per
                camera name, or None for every switched-on output.

        Raises:
            ValueError / StageError: as :meth:`predict`.
        """
        demands = [_demand_of(demand, frame.camera, config) for frame in frames]
        wants_labels = any(d.needs_labels(config) for d in demands)
        predictions = self.predict(frames, labels=wants_labels)
        return [
            self.composer(frame.camera).compose(frame, prediction, config, wanted)
            for frame, prediction, wanted in zip(frames, predictions, demands, strict=True)
        ]


def _demand_of(
    demand: OutputDemand | Mapping[str, OutputDemand] | None,
    camera: str,
    config: PerceptionConfig,
) -> OutputDemand:
    if demand is None:
        return OutputDemand.everything(config)
    if isinstance(demand, OutputDemand):
        return demand
    return demand.get(camera) or OutputDemand(frozenset())


FrameT = TypeVar("FrameT")


class LatestFrames(Generic[FrameT]):
    """The newest unprocessed frame of each camera; overwriting one counts a drop for it.

    The intake ``put`` s what it takes; the worker ``take_all`` s, so a slow model drops old
    frames instead of queueing latency. A single camera is the camera ``""``.
    """

    def __init__(self, cameras: Sequence[str]) -> None:
        self._frames: dict[str, FrameT] = {}
        self._condition = threading.Condition()
        self.dropped: dict[str, int] = dict.fromkeys(cameras, 0)

    def put(self, camera: str, frame: FrameT) -> None:
        """Store ``frame`` as ``camera``'s newest, dropping (and counting) an unprocessed one."""
        with self._condition:
            if camera in self._frames:
                self.dropped[camera] = self.dropped.get(camera, 0) + 1
            self._frames[camera] = frame
            self._condition.notify()

    def count_dropped(self, camera: str, count: int) -> None:
        """Count ``count`` frames of ``camera`` dropped before they reached the slot."""
        if count > 0:
            with self._condition:
                self.dropped[camera] = self.dropped.get(camera, 0) + count

    def take_all(self, timeout: float) -> dict[str, FrameT]:
        """Every camera's newest frame (waits up to ``timeout`` s for the first one)."""
        with self._condition:
            if not self._frames:
                self._condition.wait(timeout)
            frames, self._frames = self._frames, {}
            return frames

    def clear(self) -> None:
        """Forget unprocessed frames and wake a waiting worker."""
        with self._condition:
            self._frames = {}
            self._condition.notify_all()

    @property
    def total_dropped(self) -> int:
        """Drops over all cameras."""
        with self._condition:
            return sum(self.dropped.values())
