"""Images of another aspect ratio get a network input of their own (match_camera_aspect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_predictor_backends import _description

from depth_perception.backends.base import InferenceBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.predictor import DepthPredictor


class ShapeEchoBackend(InferenceBackend):
    """A network whose depth is 1 + the input's mean over channels: the output shows what it got.

    Records the shape of every batch it is given.
    """

    name = "shape-echo"

    def __init__(self, variable: bool) -> None:
        self.variable_input_size = variable
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.shapes.append(tuple(batch.shape))
        depth = 3.0 + 0.1 * batch.mean(axis=1, keepdims=True)
        return {"depth": depth.astype(np.float32)}


def _predictor(variable: bool = True, match: bool = True, **changes) -> DepthPredictor:
    description = _description(input_width=256, input_height=192, class_names=(), **changes)
    return DepthPredictor(description, ShapeEchoBackend(variable), match_aspect=match)


def _image(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)


def test_each_aspect_ratio_gets_its_own_input_where_the_backend_takes_any_size() -> None:
    predictor = _predictor()
    assert predictor.input_size_for(640, 480) == (256, 192)
    assert predictor.input_size_for(1280, 720) == (288, 160)
    assert predictor.input_size_for(741, 500) == (288, 192)
    assert predictor.input_size_for(512, 512) == (224, 224)
    prediction = predictor.predict(_image(640, 360), CameraIntrinsics.from_hfov(640, 360, 70.0))
    assert predictor.backend.shapes == [(1, 3, 160, 288)]
    assert prediction.depth.shape == (360, 640)
    assert predictor.input_sizes_used == [(288, 160)]


@pytest.mark.parametrize(("variable", "match"), [(False, True), (True, False)])
def test_a_fixed_size_backend_or_the_switch_off_squeezes_to_the_checkpoint_size(
    variable: bool, match: bool
) -> None:
    predictor = _predictor(variable, match)
    assert predictor.input_size_for(1280, 720) == (256, 192)
    predictor.predict(_image(640, 360), CameraIntrinsics.from_hfov(640, 360, 70.0))
    assert predictor.backend.shapes == [(1, 3, 192, 256)]
    assert predictor.input_sizes_used == [(256, 192)]


def test_a_fallback_to_a_fixed_size_backend_goes_back_to_the_checkpoint_size() -> None:
    predictor = _predictor()
    assert predictor.input_size_for(640, 360) == (288, 160)
    predictor.backend = ShapeEchoBackend(variable=False)  # what LoadedPipeline.fall_back does
    assert predictor.input_size_for(640, 360) == (256, 192)


def test_the_focal_factor_uses_the_width_the_image_really_gets() -> None:
    # metres = output * (fx in network pixels / canonical) ** exponent: the network pixels of a
    # 640x360 image are those of its 288x160 input, not of the checkpoint's 256x192.
    predictor = _predictor(canonical_focal_px=200.0, focal_exponent=0.75)
    wide = CameraIntrinsics.from_hfov(640, 360, 70.0)
    assert predictor.focal_factor(wide) == pytest.approx((wide.fx * 288 / 640 / 200.0) ** 0.75)
    squeezed = _predictor(match=False, canonical_focal_px=200.0, focal_exponent=0.75)
    assert squeezed.focal_factor(wide) == pytest.approx((wide.fx * 256 / 640 / 200.0) ** 0.75)


def test_a_batch_of_mixed_aspect_ratios_runs_once_per_input_size_in_order() -> None:
    items = [
        (_image(640, 480, 1), CameraIntrinsics.from_hfov(640, 480, 70.0)),
        (_image(640, 360, 2), CameraIntrinsics.from_hfov(640, 360, 90.0)),
        (_image(320, 240, 3), CameraIntrinsics.from_hfov(320, 240, 60.0)),
    ]
    predictor = _predictor(canonical_focal_px=200.0)
    predictions = predictor.predict_batch(items)
    # the two 4:3 cameras in one call, the 16:9 one in another
    assert predictor.backend.shapes == [(2, 3, 192, 256), (1, 3, 160, 288)]
    for (rgb, intrinsics), prediction in zip(items, predictions, strict=True):
        alone = _predictor(canonical_focal_px=200.0).predict(rgb, intrinsics)
        assert prediction.intrinsics is intrinsics
        np.testing.assert_allclose(prediction.depth, alone.depth, rtol=1e-6)
    assert predictor.input_sizes_used == [(256, 192), (288, 160)]


def test_onnx_runtime_takes_any_size_only_from_a_dynamic_export(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend
    from depth_perception.backends.torch_backend import TorchBackend
    from depth_perception.export import export_onnx
    from depth_perception.models import build_model

    torch.manual_seed(0)
    model = build_model("lightweight").eval()
    dynamic = OnnxRuntimeBackend(export_onnx(model, tmp_path / "d.onnx", 64, 64, True), 1)
    static = OnnxRuntimeBackend(export_onnx(model, tmp_path / "s.onnx", 64, 64, False), 1)
    assert dynamic.variable_input_size and not static.variable_input_size
    assert TorchBackend(model).variable_input_size
    # the dynamic file at another size is the torch model at that size
    batch = np.random.default_rng(0).normal(size=(1, 3, 64, 96)).astype(np.float32)
    with torch.no_grad():
        eager = model(torch.from_numpy(batch))["depth"].numpy()
    np.testing.assert_allclose(dynamic.infer(batch)["depth"], eager, rtol=1e-4, atol=1e-4)
