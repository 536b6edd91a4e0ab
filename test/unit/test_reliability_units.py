"""Reliability pieces without ROS: counters, the weights path checks, the backend fallback."""

from __future__ import annotations

import numpy as np
import pytest

from depth_perception.backends.base import BackendError
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.pipeline_stats import PipelineStats
from depth_perception.runtime import load_pipeline, resolve_weights


def test_error_detail_and_warnings_are_counted_apart():
    stats = PipelineStats()
    stats.record_error("bad_image", "step 10 is shorter than one row", "step")
    stats.record_warning("stamp_not_increasing", "stamp 5 is not after 6")
    snapshot = stats.snapshot()
    assert snapshot["errors_bad_image"] == 1 and snapshot["errors_bad_image_step"] == 1
    assert snapshot["errors_stamp_not_increasing"] == 1
    assert snapshot["errors_in_period"] == 1 and snapshot["warnings_in_period"] == 1
    assert snapshot["last_error"].startswith("bad_image: step 10")
    assert snapshot["last_warning"] == "stamp_not_increasing: stamp 5 is not after 6"
    later = stats.snapshot()
    assert later["warnings_in_period"] == 0 and later["errors_stamp_not_increasing"] == 1


def test_weights_path_checks_name_the_problem(tmp_path):
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"no metadata file .*lonely\.json beside it"):
        resolve_weights(PerceptionConfig(weights=str(lonely)))
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        resolve_weights(PerceptionConfig(weights=str(folder)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_weights(PerceptionConfig(weights=str(tmp_path / "absent.safetensors")))
    with pytest.raises(ValueError, match=r"must be a \.safetensors"):
        resolve_weights(PerceptionConfig(weights=str(tmp_path / "model.pth")))


def test_fall_back_moves_to_the_next_backend_of_the_chain_and_keeps_predicting():
    config = PerceptionConfig(backend="torch", device="cpu", input_width=64, input_height=64)
    pipeline = load_pipeline(config)
    try:
        assert pipeline.choice.backend.name == "torch"
        assert pipeline.choice.remaining == [("onnxruntime", "cpu")]
        rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        intrinsics = CameraIntrinsics.from_hfov(64, 48, 70.0)
        before = pipeline.predictor.predict(rgb, intrinsics).depth
        assert pipeline.fall_back("3 consecutive failures: test") == "onnxruntime on cpu"
        assert pipeline.predictor.backend is pipeline.choice.backend
        assert pipeline.choice.remaining == []
        assert "torch on cpu: 3 consecutive failures: test" in pipeline.choice.skipped
        after = pipeline.predictor.predict(rgb, intrinsics).depth
        np.testing.assert_allclose(after, before, rtol=1e-3, atol=1e-3, equal_nan=True)
        with pytest.raises(BackendError, match="no fallback is left"):
            pipeline.fall_back("again")
    finally:
        pipeline.close()
