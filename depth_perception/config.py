"""Typed configuration of the perception pipeline, shared by the node, the demo and the tools.

Every setting is declared once in ``PARAMETERS`` (default, description, range or choices) and
mirrored by ``PerceptionConfig``. The node turns the specs into ROS parameter descriptors and
validates with ``validate_value``; YAML files load through ``load_config`` with ``safe_load``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class ParamSpec:
    """One setting: its default, what it means, and which values are allowed."""

    name: str
    default: Any
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    # Parameters that only a reconfigure cycle (cleanup + configure) applies: they decide
    # which model is loaded and how.
    needs_reconfigure: bool = False


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "model",
        "lightweight",
        "Registered model name (depth-perception models lists them)",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "weights",
        "",
        "Checkpoint (.safetensors with its .json); empty = bundled default",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "backend",
        "auto",
        "Inference backend; auto picks the best available",
        choices=BACKENDS,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "device",
        "auto",
        "Device: auto, cpu, cuda or cuda:N",
        pattern=_DEVICE_PATTERN,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "num_threads",
        0,
        "CPU threads for inference; 0 = ONNX Runtime: the cores this process may use but one "
        "(kept for decoding, publishing and DDS), torch: every core",
        min_value=0,
        max_value=256,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "cpu_spinning",
        False,
        "ONNX Runtime on the CPU: idle inference threads busy-wait for work. Faster inference "
        "alone, but they take the cores the node's other stages and processes need; off = "
        "they sleep",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "precision",
        "fp16",
        "GPU arithmetic: fp32, fp16 (TensorRT and torch CUDA) or int8 (TensorRT only, "
        "calibrated once on int8_calibration_dir or synthetic frames, cached)",
        choices=("fp32", "fp16", "int8"),
        needs_reconfigure=True,
    ),
    ParamSpec(
        "int8_calibration_dir",
        "",
        "Folder of sample camera images for TensorRT INT8 calibration; empty = synthetic frames",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "dla_core",
        -1,
        "Jetson DLA core for the TensorRT engine (layers DLA cannot run fall back to the GPU); "
        "-1 = GPU only",
        min_value=-1,
        max_value=7,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "cuda_graphs",
        False,
        "torch on CUDA: capture the fixed-size forward pass in a CUDA graph (less launch "
        "overhead per frame)",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "match_camera_aspect",
        True,
        "With input_width/height 0: run each camera's images at a network input of their own "
        "aspect ratio with about the checkpoint's pixel count (1280x720 -> 288x160 for a "
        "256x192 checkpoint) instead of squeezing them to the checkpoint's; needs a backend "
        "that takes any size (ONNX Runtime, torch; a TensorRT engine has one size)",
        needs_reconfigure=True,
    ),
    ParamSpec(
        "input_width",
        0,
        "Network input width in pixels; 0 = the checkpoint's",
        min_value=0,
        max_value=4096,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "input_height",
        0,
        "Network input height in pixels; 0 = the checkpoint's",
        min_value=0,
        max_value=4096,
        needs_reconfigure=True,
    ),
    ParamSpec(
        "min_depth",
        0.0,
        "Depth below this is published as NaN (m); 0 = checkpoint's",
        min_value=0.0,
        max_value=1000.0,
    ),
    ParamSpec(
        "max_depth",
        0.0,
        "Depth above this is published as NaN (m); 0 = checkpoint's",
        min_value=0.0,
        max_value=1000.0,
    ),
    ParamSpec(
        "depth_scale",
        1.0,
        "Factor applied to the network's depth; turns relative models into metres",
        min_value=1e-6,
        max_value=1e6,
    ),
    ParamSpec(
        "outputs_on_demand",
        True,
        "Compute each output only while it has a subscriber (checked per frame); a frame "
        "nobody subscribes to is not even decoded. false = compute every switched-on output "
        "always",
    ),
    ParamSpec("publish_depth", True, "Publish depth/image and depth/camera_info"),
    ParamSpec("publish_points", True, "Publish the organized point cloud on points"),
    ParamSpec(
        "publish_segmentation",
        True,
        "Publish segmentation/mask and segmentation/color (multi-task models)",
    ),
    ParamSpec(
        "depth_encoding",
        "32FC1",
        "Encoding of depth/image: 32FC1 (float metres, NaN = no estimate) or 16UC1 "
        "(millimetres, 0 = no estimate, REP 118; depth beyond 65.535 m is 0 too)",
        choices=("32FC1", "16UC1"),
    ),
    ParamSpec(
        "obstacle_exclude_classes",
        (),
        "Class names of the checkpoint that are not obstacles (e.g. [floor, ceiling] indoors, "
        "[road, sidewalk, terrain, sky] on roads): obstacles/points is the organized cloud "
        "with their pixels NaN, and they do not stop a beam of scan. Empty = no obstacle "
        "cloud, every class stops a beam; an unknown name is refused",
    ),
    ParamSpec(
        "publish_scan",
        True,
        "Publish the virtual laser scan (sensor_msgs/LaserScan) on scan",
    ),
    ParamSpec(
        "scan_height",
        1,
        "Rows of the image band the scan looks at (the nearest point of the band per beam)",
        min_value=1,
        max_value=4096,
    ),
    ParamSpec(
        "scan_row",
        -1,
        "Centre row of the scan's band; -1 = the optical centre row (round(cy)), the row that "
        "looks parallel to the optical axis",
        min_value=-1,
        max_value=8192,
    ),
    ParamSpec(
        "scan_stride",
        1,
        "Image columns per beam of the scan (ceil(width / scan_stride) beams)",
        min_value=1,
        max_value=64,
    ),
    ParamSpec(
        "scan_range_min",
        0.1,
        "Nearest range of the scan (m); a nearer point gives -Inf (REP 117: too close)",
        min_value=0.0,
        max_value=1000.0,
    ),
    ParamSpec(
        "scan_range_max",
        10.0,
        "Furthest range of the scan (m); a further point gives +Inf (REP 117: nothing in "
        "range). No depth estimate at all gives NaN",
        min_value=0.01,
        max_value=1000.0,
    ),
    ParamSpec(
        "scan_frame_id",
        "camera_link",
        "frame_id of scan: the camera's REP 103 body frame at its optical centre (x forward "
        "along the optical axis, y left, z up). With cameras, {camera} is replaced by the "
        "camera's name (e.g. {camera}_link)",
    ),
    ParamSpec(
        "image_transport",
        "raw",
        "Input transport: raw (sensor_msgs/Image on image) or compressed "
        "(sensor_msgs/CompressedImage, jpeg or png, on image/compressed)",
        choices=("raw", "compressed"),
        needs_reconfigure=True,
    ),
    ParamSpec(
        "points_stride",
        2,
        "Use every n-th pixel in both directions for the cloud (2: 320x240 points from "
        "640x480, still more than the 256x192 depths the default network predicts; 1: one "
        "point per image pixel, 4x the bytes)",
        min_value=1,
        max_value=16,
    ),
    ParamSpec("points_color", True, "Add a packed rgb field to the cloud"),
    ParamSpec("points_label", True, "Add a uint32 label field to the cloud (multi-task models)"),
    ParamSpec(
        "overlay_alpha",
        0.5,
        "Weight of the class colours in segmentation/color",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "max_rate_hz",
        0.0,
        "Process at most this many frames per second; 0 = no limit",
        min_value=0.0,
        max_value=1000.0,
    ),
    ParamSpec(
        "fallback_hfov_deg",
        70.0,
        "Horizontal field of view assumed while no camera_info has arrived",
        min_value=1.0,
        max_value=179.0,
    ),
    ParamSpec(
        "diagnostics_period_s",
        1.0,
        "Seconds between /diagnostics messages",
        min_value=0.1,
        max_value=60.0,
    ),
)

PARAMETERS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class PerceptionConfig:
    """The validated settings of one mono_depth pipeline (see ``PARAMETERS`` for meanings)."""

    model: str = "lightweight"
    weights: str = ""
    backend: str = "auto"
    device: str = "auto"
    num_threads: int = 0
    cpu_spinning: bool = False
    precision: str = "fp16"
    int8_calibration_dir: str = ""
    dla_core: int = -1
    cuda_graphs: bool = False
    match_camera_aspect: bool = True
    input_width: int = 0
    input_height: int = 0
    min_depth: float = 0.0
    max_depth: float = 0.0
    depth_scale: float = 1.0
    outputs_on_demand: bool = True
    publish_depth: bool = True
    publish_points: bool = True
    publish_segmentation: bool = True
    depth_encoding: str = "32FC1"
    obstacle_exclude_classes: tuple[str, ...] = ()
    publish_scan: bool = True
    scan_height: int = 1
    scan_row: int = -1
    scan_stride: int = 1
    scan_range_min: float = 0.1
    scan_range_max: float = 10.0
    scan_frame_id: str = "camera_link"
    image_transport: str = "raw"
    points_stride: int = 2
    points_color: bool = True
    points_label: bool = True
    overlay_alpha: float = 0.5
    max_rate_hz: float = 0.0
    fallback_hfov_deg: float = 70.0
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        # ROS and YAML give lists; a tuple keeps the frozen config hashable.
        if isinstance(self.obstacle_exclude_classes, list):
            object.__setattr__(
                self, "obstacle_exclude_classes", tuple(self.obstacle_exclude_classes)
            )
        for field in dataclasses.fields(self):
            validate_value(field.name, getattr(self, field.name))
        if self.max_depth and self.min_depth >= self.max_depth:
            raise ValueError(
                f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth})"
            )
        if (self.input_width == 0) != (self.input_height == 0):
            raise ValueError("set both input_width and input_height, or neither (0 = checkpoint)")
        if self.scan_range_min >= self.scan_range_max:
            raise ValueError(
                f"scan_range_min ({self.scan_range_min}) must be below scan_range_max "
                f"({self.scan_range_max})"
            )

    def replace(self, **changes: Any) -> PerceptionConfig:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)


def validate_value(name: str, value: Any) -> None:
    """Raise ValueError with the reason when ``value`` is not allowed for parameter ``name``."""
    spec = PARAMETERS_BY_NAME.get(name)
    if spec is None:
        raise ValueError(f"unknown parameter '{name}'; known: {', '.join(PARAMETERS_BY_NAME)}")
    expected = type(spec.default)
    # bool is an int subclass: keep them apart so "publish_points: 1" is caught.
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is tuple:  # a string array
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings, got {value!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"{name} names a value twice: {list(value)}")
        return
    if type(value) is not expected:
        raise ValueError(f"{name} must be {expected.__name__}, got {type(value).__name__}")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{name} must be one of {', '.join(spec.choices)}, got '{value}'")
    if spec.pattern is not None and not spec.pattern.match(value):
        raise ValueError(f"{name} '{value}' is not valid: {spec.description}")
    if spec.min_value is not None and value < spec.min_value:
        raise ValueError(f"{name} must be >= {spec.min_value}, got {value}")
    if spec.max_value is not None and value > spec.max_value:
        raise ValueError(f"{name} must be <= {spec.max_value}, got {value}")


def load_config(path: str | Path, node_name: str = "mono_depth") -> PerceptionConfig:
    """Read a ROS 2 params file (``<node>: ros__parameters: {...}``) or a flat YAML mapping."""
    with open(path, encoding="utf-8") as stream:
        document = yaml.safe_load(stream) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    section = document.get(node_name, document.get("/**", document))
    if isinstance(section, dict) and "ros__parameters" in section:
        section = section["ros__parameters"]
    values = {k: v for k, v in section.items() if k in PARAMETERS_BY_NAME}
    # Node-only parameters, declared by the node itself rather than PerceptionConfig.
    node_only = {"use_sim_time", "autostart", "cameras", "fault_injection"}
    unknown = sorted(set(section) - set(PARAMETERS_BY_NAME) - node_only)
    if unknown:
        raise ValueError(f"{path}: unknown parameters {', '.join(unknown)}")
    return PerceptionConfig(**values)
