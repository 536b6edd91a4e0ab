"""The navigation outputs in the core frame pipeline, and their encodings (no ROS).

Obstacle cloud and scan are composed only when wanted, from the same prediction as the other
outputs; 16UC1 depth is millimetres with 0 for no estimate; compressed frames decode to the
raw frame's pixels (PNG exactly, JPEG within its loss).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_perception.backends.base import InferenceBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig, load_config
from depth_perception.frame_pipeline import FramePipeline, OutputDemand, prepare_frame
from depth_perception.image_encoding import (
    ImageFormatError,
    decode_compressed_to_rgb,
    depth_to_millimetres,
)
from depth_perception.predictor import DepthPredictor, ModelDescription

PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
INTRINSICS = CameraIntrinsics(fx=40.0, fy=38.0, cx=15.5, cy=12.0, width=32, height=24)


class FloorBackend(InferenceBackend):
    """Depth 2 m; the lower half of the image is class 1 ("floor") at 1 m."""

    name = "floor"
    device = "cpu"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        count, _, height, width = batch.shape
        depth = np.full((count, 1, height, width), 2.0, np.float32)
        depth[:, :, height // 2 :] = 1.0
        logits = np.zeros((count, 3, height, width), np.float32)
        logits[:, 1, height // 2 :] = 5.0
        return {"depth": depth, "seg_logits": logits}


def _pipeline() -> FramePipeline:
    description = ModelDescription(
        name="floor",
        input_width=16,
        input_height=12,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        class_names=("wall", "floor", "ceiling"),
        min_depth=0.1,
        max_depth=10.0,
        metric=True,
        trained=True,
    )
    return FramePipeline(DepthPredictor(description, FloorBackend()), PALETTE)


def _frame():
    rgb = np.zeros((INTRINSICS.height, INTRINSICS.width, 3), np.uint8)
    info = type(
        "Info",
        (),
        dict(
            width=32,
            height=24,
            k=INTRINSICS.matrix.reshape(-1).tolist(),
            p=INTRINSICS.projection.reshape(-1).tolist(),
            distortion_model="plumb_bob",
            d=[0.0] * 5,
        ),
    )()
    return prepare_frame("", rgb, info, 70.0)


def test_obstacle_cloud_drops_excluded_classes_and_keeps_the_points_layout():
    # points_stride 1: the clouds are indexed with the per-pixel labels.
    config = PerceptionConfig(obstacle_exclude_classes=("floor",), points_stride=1)
    pipeline = _pipeline()
    (out,) = pipeline.process([_frame()], config)
    points, obstacles = out.cloud.points, out.obstacle_cloud.points
    assert out.obstacle_cloud.fields == out.cloud.fields
    assert (obstacles.shape, out.obstacle_cloud.point_step) == (
        points.shape,
        out.cloud.point_step,
    )
    floor = out.labels == 1
    assert floor.any() and (~floor).any()
    assert np.isnan(obstacles["z"][floor]).all() and not np.isnan(points["z"][floor]).any()
    np.testing.assert_array_equal(obstacles["z"][~floor], points["z"][~floor])
    # Two buffers: the obstacle cloud does not overwrite points.
    assert out.obstacle_cloud.payload is not out.cloud.payload
    assert "obstacles" in out.timings_ms


def test_no_exclusion_list_means_no_obstacle_cloud_and_unknown_names_fail():
    pipeline = _pipeline()
    (out,) = pipeline.process([_frame()], PerceptionConfig())
    assert out.obstacle_cloud is None
    assert "obstacles" not in OutputDemand.everything(PerceptionConfig())
    with pytest.raises(ValueError, match="wall, floor, ceiling"):
        pipeline.process([_frame()], PerceptionConfig(obstacle_exclude_classes=("road",)))


def test_scan_is_composed_on_demand_and_ignores_excluded_classes():
    pipeline = _pipeline()
    band = PerceptionConfig(scan_height=24, publish_points=False)
    demand = OutputDemand(frozenset({"scan"}))
    (out,) = pipeline.process([_frame()], band, demand)
    assert out.cloud is None and out.depth is None and out.labels is None
    # The floor half is nearer: every beam sees 1 m (in the plane, times its column's factor).
    assert np.nanmin(out.scan.ranges) == pytest.approx(1.0, rel=1e-3)
    excluding = band.replace(obstacle_exclude_classes=("floor",))
    assert OutputDemand(frozenset({"scan"})).needs_labels(excluding)
    (out,) = pipeline.process([_frame()], excluding, demand)
    # Bilinear resizing blends the rows at the class boundary: the nearest non-floor pixel.
    depth, labels = out.prediction.depth, out.prediction.labels
    nearest_wall = depth[labels != 1].min()
    assert nearest_wall > 1.0
    assert np.nanmin(out.scan.ranges) == pytest.approx(nearest_wall, rel=1e-3)
    assert out.scan.ranges.shape == (32,)
    (out,) = pipeline.process([_frame()], excluding.replace(scan_stride=4), demand)
    assert out.scan.ranges.shape == (8,)
    (out,) = pipeline.process([_frame()], band, OutputDemand(frozenset({"depth"})))
    assert out.scan is None


def test_depth_encoding_16uc1_is_millimetres():
    pipeline = _pipeline()
    (out,) = pipeline.process([_frame()], PerceptionConfig(depth_encoding="16UC1"))
    assert out.depth.dtype == np.uint16
    metres = out.prediction.depth
    np.testing.assert_array_equal(out.depth, np.rint(metres * 1000).astype(np.uint16))
    assert {1000, 2000} <= set(np.unique(out.depth).tolist())
    depth = np.array([[1.2344, 0.0004, np.nan, np.inf], [65.535, 65.6, -1.0, 0.5]], np.float32)
    np.testing.assert_array_equal(
        depth_to_millimetres(depth), np.array([[1234, 0, 0, 0], [65535, 0, 0, 500]], np.uint16)
    )


def test_new_parameters_are_checked_and_load_from_yaml(tmp_path):
    with pytest.raises(ValueError, match="scan_range_min"):
        PerceptionConfig(scan_range_min=5.0, scan_range_max=4.0)
    with pytest.raises(ValueError, match="depth_encoding must be one of"):
        PerceptionConfig(depth_encoding="16UC3")
    with pytest.raises(ValueError, match="list of strings"):
        PerceptionConfig(obstacle_exclude_classes=("floor", 3))
    with pytest.raises(ValueError, match="twice"):
        PerceptionConfig(obstacle_exclude_classes=("floor", "floor"))
    path = tmp_path / "p.yaml"
    path.write_text(
        "mono_depth:\n  ros__parameters:\n    obstacle_exclude_classes: [floor, ceiling]\n"
        "    image_transport: compressed\n"
    )
    config = load_config(path)
    assert config.obstacle_exclude_classes == ("floor", "ceiling")
    assert hash(config)  # still a frozen, hashable snapshot


def test_compressed_frames_decode_to_the_raw_pixels():
    rng = np.random.default_rng(0)
    rgb = np.clip(
        np.linspace(0, 255, 64)[None, :, None] + rng.integers(0, 20, (48, 64, 3)), 0, 255
    ).astype(np.uint8)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    np.testing.assert_array_equal(decode_compressed_to_rgb(png, "png"), rgb)
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    decoded = decode_compressed_to_rgb(jpeg, "rgb8; jpeg compressed bgr8")
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - rgb).mean() < 6
    with pytest.raises(ImageFormatError) as corrupt:
        decode_compressed_to_rgb(b"\xff\xd8 not a jpeg", "jpeg")
    assert corrupt.value.kind == "corrupt"
    with pytest.raises(ImageFormatError) as unknown:
        decode_compressed_to_rgb(png, "tiff")
    assert unknown.value.kind == "compressed_format"
    with pytest.raises(ImageFormatError) as empty:
        decode_compressed_to_rgb(b"", "png")
    assert empty.value.kind == "empty"


def test_bench_nav_runs_every_case():
    from depth_perception.apps.bench_nav import bench_nav_outputs, cases

    results = bench_nav_outputs(width=64, height=48, frames=3, warmup=1)
    assert set(cases()) < set(results)
    assert all(compose > 0 for compose, _ in results.values())
