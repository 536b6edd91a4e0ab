"""The core frame pipeline without ROS: intrinsics choice, composed outputs, one model call."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from depth_perception.backends.base import InferenceBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.frame_pipeline import (
    FALLBACK,
    FROM_CAMERA_INFO,
    SCALED_CAMERA_INFO,
    FramePipeline,
    prepare_frame,
    resolve_intrinsics,
)
from depth_perception.pointcloud import unpack_rgb
from depth_perception.predictor import DepthPredictor, ModelDescription

PALETTE = np.array([(255, 0, 0), (0, 255, 0)], np.uint8)


class RampBackend(InferenceBackend):
    """Depth = 1 + column / width at the network size; class 1 on the right half. Counts calls."""

    name = "ramp"
    device = "cpu"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        count, _, height, width = batch.shape
        self.batches.append(count)
        ramp = 1.0 + np.arange(width, dtype=np.float32) / width
        depth = np.broadcast_to(ramp, (count, 1, height, width)).copy()
        logits = np.zeros((count, 2, height, width), np.float32)
        logits[:, 1, :, width // 2 :] = 1.0
        return {"depth": depth, "seg_logits": logits}


def _pipeline() -> tuple[FramePipeline, RampBackend]:
    description = ModelDescription(
        name="ramp",
        input_width=16,
        input_height=8,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        class_names=("left", "right"),
        min_depth=0.1,
        max_depth=10.0,
        metric=True,
        trained=True,
    )
    backend = RampBackend()
    return FramePipeline(DepthPredictor(description, backend), PALETTE), backend


def _info(intrinsics: CameraIntrinsics, **changes) -> SimpleNamespace:
    """A CameraInfo-shaped message (the core reads field names only)."""
    values = dict(
        width=intrinsics.width,
        height=intrinsics.height,
        k=intrinsics.matrix.reshape(-1).tolist(),
        p=intrinsics.projection.reshape(-1).tolist(),
        distortion_model="plumb_bob",
        d=[0.1, 0, 0, 0, 0],
    )
    values.update(changes)
    return SimpleNamespace(**values)


INTRINSICS = CameraIntrinsics(fx=40.0, fy=38.0, cx=15.5, cy=12.0, width=32, height=24)


def test_intrinsics_come_from_camera_info_scaled_or_the_fallback():
    same = resolve_intrinsics(_info(INTRINSICS), 32, 24, 70.0)
    assert (same.source, same.intrinsics, same.problem_kind) == (FROM_CAMERA_INFO, INTRINSICS, "")
    big = INTRINSICS.scaled(64, 48)
    scaled = resolve_intrinsics(_info(big), 32, 24, 70.0)
    assert scaled.source == SCALED_CAMERA_INFO and scaled.problem_kind == "camera_info_size"
    assert scaled.camera_info_size == (64, 48) and scaled.intrinsics == big.scaled(32, 24)
    bad = resolve_intrinsics(_info(INTRINSICS, k=[0.0] * 9, p=[0.0] * 12), 32, 24, 70.0)
    assert bad.source == FALLBACK and bad.problem_kind == "bad_camera_info"
    assert "neither a valid P nor a valid K" in bad.problem
    assert bad.intrinsics == CameraIntrinsics.from_hfov(32, 24, 70.0)
    none = resolve_intrinsics(None, 32, 24, 60.0)
    assert (none.source, none.problem_kind) == (FALLBACK, "")
    assert none.intrinsics == CameraIntrinsics.from_hfov(32, 24, 60.0)
    # The distortion of a camera_info is kept only when that camera_info was used.
    rgb = np.zeros((24, 32, 3), np.uint8)
    assert prepare_frame("", rgb, _info(INTRINSICS), 70.0).camera_info is not None
    assert (
        prepare_frame("", rgb, _info(INTRINSICS, k=[0.0] * 9, p=[0.0] * 12), 70.0).camera_info
        is None
    )


def test_outputs_are_composed_from_one_prediction_with_timings():
    pipeline, _ = _pipeline()
    rgb = np.full((24, 32, 3), 100, np.uint8)
    frame = prepare_frame("", rgb, _info(INTRINSICS), 70.0, {"convert_in": 0.5})
    # points_stride 1: the cloud is compared with the depth pixel by pixel.
    config = PerceptionConfig(overlay_alpha=1.0, points_stride=1)
    (out,) = pipeline.process([frame], config)
    assert out.depth.shape == (24, 32) and out.intrinsics == INTRINSICS
    assert out.depth[0, 0] == pytest.approx(1.0, abs=0.05)
    np.testing.assert_array_equal(out.labels[:, :8], 0)
    np.testing.assert_array_equal(out.labels[:, -8:], 1)
    np.testing.assert_array_equal(out.overlay[0, -1], PALETTE[1])  # alpha 1: the class colour
    points = out.cloud.points
    assert (out.cloud.height, out.cloud.width) == (24, 32)
    np.testing.assert_allclose(points["z"], out.depth, rtol=1e-6)
    np.testing.assert_allclose(
        points["x"][3, 20], (20 - 15.5) * out.depth[3, 20] / 40.0, rtol=1e-5
    )
    np.testing.assert_array_equal(points["label"], out.labels)
    np.testing.assert_array_equal(unpack_rgb(points["rgb"])[0, 0], (100, 100, 100))
    assert set(out.timings_ms) == {
        "convert_in",
        "preprocess",
        "inference",
        "postprocess",
        "points",
        "colorize",
        "scan",
    }


def test_switches_leave_outputs_out_and_the_cloud_follows_its_options():
    pipeline, _ = _pipeline()
    frame = prepare_frame("", np.zeros((24, 32, 3), np.uint8), None, 70.0)
    config = PerceptionConfig(publish_depth=False, publish_segmentation=False, points_stride=2)
    (out,) = pipeline.process([frame], config)
    assert out.depth is None and out.labels is None and out.overlay is None
    assert out.prediction.depth.shape == (24, 32)  # still predicted (the cloud needs it)
    assert (out.cloud.height, out.cloud.width) == (12, 16)
    assert {f.name for f in out.cloud.fields} == {"x", "y", "z", "rgb", "label"}
    builder = pipeline.composer("").cloud_builder(out.intrinsics, config, True)
    # Cached per camera: the same options reuse the builder, other options rebuild it.
    pipeline.process([frame], config)
    assert pipeline.composer("").cloud_builder(out.intrinsics, config, True) is builder
    plain = config.replace(points_color=False, points_label=False, publish_points=True)
    (out,) = pipeline.process([frame], plain)
    assert {f.name for f in out.cloud.fields} == {"x", "y", "z"}
    (out,) = pipeline.process([frame], config.replace(publish_points=False))
    assert out.cloud is None and "points" not in out.timings_ms


def test_several_cameras_share_one_model_call_and_keep_their_own_builders():
    pipeline, backend = _pipeline()
    other = CameraIntrinsics.from_hfov(20, 10, 80.0)
    frames = [
        prepare_frame("front", np.zeros((24, 32, 3), np.uint8), _info(INTRINSICS), 70.0),
        prepare_frame("rear", np.zeros((10, 20, 3), np.uint8), _info(other), 70.0),
    ]
    outputs = pipeline.process(frames, PerceptionConfig())
    assert backend.batches == [2]
    assert [o.camera for o in outputs] == ["front", "rear"]
    assert [o.depth.shape for o in outputs] == [(24, 32), (10, 20)]
    assert outputs[1].intrinsics == other
    assert pipeline.composer("front") is not pipeline.composer("rear")
    pipeline.process(frames[:1], PerceptionConfig())
    assert backend.batches == [2, 1]
