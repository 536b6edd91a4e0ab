"""Predictor pre/post-processing, backend choice and fallback, backend parity."""

import cv2
import numpy as np
import pytest
import torch

from depth_perception.backends import BackendError, backend_chain
from depth_perception.backends.base import InferenceBackend
from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend
from depth_perception.backends.selection import create_backend
from depth_perception.backends.tensorrt_backend import EngineKey, TensorRTBackend
from depth_perception.backends.torch_backend import TorchBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.export import export_onnx
from depth_perception.models import build_model
from depth_perception.predictor import (
    DepthLimits,
    DepthPredictor,
    ModelDescription,
    Preprocessor,
)
from depth_perception.runtime import load_pipeline

WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("lightweight").eval()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "lightweight.onnx"
    export_onnx(model, path, WIDTH, HEIGHT, dynamic_size=False)
    return path


def _description(**changes):
    values = dict(
        name="lightweight",
        input_width=WIDTH,
        input_height=HEIGHT,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        class_names=tuple(f"c{i}" for i in range(19)),
        min_depth=0.5,
        max_depth=10.0,
        metric=True,
        trained=False,
    )
    values.update(changes)
    return ModelDescription(**values)


class ConstantBackend(InferenceBackend):
    """A real backend whose network is a constant: postprocessing can be checked exactly."""

    name = "constant"

    def __init__(self, depth: np.ndarray, logits: np.ndarray | None = None):
        self.depth, self.logits = depth, logits

    def infer(self, batch):
        outputs = {"depth": self.depth[None, None].astype(np.float32)}
        if self.logits is not None:
            outputs["seg_logits"] = self.logits[None].astype(np.float32)
        return outputs


def test_preprocessor_normalises_exactly():
    pre = Preprocessor(4, 2, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    rgb = np.full((2, 4, 3), 255, np.uint8)
    rgb[0, 0] = (0, 0, 0)
    batch = pre(rgb)
    assert batch.shape == (1, 3, 2, 4) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 1, 1], [1.0, 3.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(batch[0, :, 0, 0], [-1.0, -1.0, 0.0], atol=1e-6)


def test_preprocessor_shrinks_like_an_area_filter():
    """The fast shrink (box filter by the integer factor, then linear) stays within a few grey
    levels of OpenCV's INTER_AREA on a real photo, at an integer and a fractional factor."""
    import cv2

    from depth_perception.sample_data import skimage_data_file

    photo = cv2.imread(str(skimage_data_file("astronaut.png")))[..., ::-1]
    for source in ((640, 480), (512, 384), (300, 200)):
        rgb = np.ascontiguousarray(cv2.resize(photo, source, interpolation=cv2.INTER_AREA))
        pre = Preprocessor(256, 192, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        ours = pre(rgb)[0].transpose(1, 2, 0) * 255.0
        area = cv2.resize(rgb, (256, 192), interpolation=cv2.INTER_AREA).astype(np.float32)
        assert np.abs(ours - area).mean() < 3.0, source


@pytest.mark.parametrize("classes", [1, 2, 14, 256])
def test_class_ids_equal_argmax_with_ties(classes):
    """The running-maximum arg-max gives np.argmax's ids, ties to the first class included."""
    rng = np.random.default_rng(classes)
    logits = rng.integers(-3, 4, (classes, 9, 7)).astype(np.float32)  # many exact ties
    predictor = DepthPredictor(
        _description(class_names=tuple(f"c{i}" for i in range(classes))),
        ConstantBackend(np.ones((9, 7), np.float32), logits),
    )
    prediction = predictor.predict(
        np.zeros((9, 7, 3), np.uint8), CameraIntrinsics.from_hfov(7, 9, 60.0)
    )
    np.testing.assert_array_equal(prediction.labels, np.argmax(logits, axis=0))


def test_postprocess_resizes_limits_and_labels():
    depth = np.array([[0.2, 1.0], [5.0, 50.0]], np.float32)
    logits = np.zeros((3, 2, 2), np.float32)
    logits[2, 0, 0] = logits[1, 1, 1] = 5.0
    predictor = DepthPredictor(
        _description(class_names=("a", "b", "c")), ConstantBackend(depth, logits)
    )
    rgb = np.zeros((4, 6, 3), np.uint8)
    prediction = predictor.predict(rgb, CameraIntrinsics.from_hfov(6, 4, 60.0))
    assert prediction.depth.shape == (4, 6) and prediction.labels.shape == (4, 6)
    # 0.2 m is below min_depth 0.5 and 50 m above max_depth 10: NaN, never a number.
    assert np.isnan(prediction.depth[0, 0]) and np.isnan(prediction.depth[3, 5])
    assert prediction.labels[0, 0] == 2 and prediction.labels[3, 5] == 1
    assert prediction.intrinsics.width == 6
    assert set(prediction.timings_ms) == {"preprocess", "inference", "postprocess"}
    predictor.set_depth_limits(0.1, 100.0, 2.0)
    prediction = predictor.predict(rgb, CameraIntrinsics.from_hfov(6, 4, 60.0))
    assert prediction.depth[0, 0] == pytest.approx(0.4)


@pytest.mark.parametrize("case", ["inside", "at_limits", "outside", "nan", "inf"])
def test_range_check_skipped_only_where_it_cannot_change_a_pixel(case):
    """The postprocess skips the full-size range check when the network depth is strictly
    inside the limits; every case must still equal resize-then-check (REP 117)."""
    rng = np.random.default_rng(7)
    low = rng.uniform(0.5 + 1e-3, 10.0 - 1e-3, (12, 16)).astype(np.float32)
    if case == "at_limits":  # neighbours exactly at the limits: interpolation may round past
        low[:, ::2] = 10.0
        low[::2, 1::2] = 0.5
    elif case == "outside":
        low[3, 4], low[7, 9] = 0.2, 50.0
    elif case == "nan":
        low[5, 5] = np.nan
    elif case == "inf":
        low[2, 3] = np.inf
    predictor = DepthPredictor(_description(), ConstantBackend(low, None))
    rgb = np.zeros((37, 53, 3), np.uint8)  # a non-integer scale: real interpolation weights
    depth = predictor.predict(rgb, CameraIntrinsics.from_hfov(53, 37, 60.0)).depth
    expected = cv2.resize(low, (53, 37), interpolation=cv2.INTER_LINEAR)
    with np.errstate(invalid="ignore"):
        expected[~((expected >= 0.5) & (expected <= 10.0))] = np.nan
    np.testing.assert_array_equal(depth, expected)


def test_a_refused_depth_range_leaves_the_limits_as_they_were():
    # Issue 15, bug (a): the range was assigned before it was checked.
    predictor = DepthPredictor(_description(), ConstantBackend(np.full((2, 2), 3.0)))
    before = predictor.limits
    assert (before.min_depth, before.max_depth, before.depth_scale) == (0.5, 10.0, 1.0)
    with pytest.raises(ValueError, match=r"min_depth 20\.0 must be below max_depth 10\.0"):
        predictor.set_depth_limits(20.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="depth_scale"):
        predictor.set_depth_limits(0.0, 0.0, 0.0)
    assert predictor.limits is before
    depth = predictor.predict(np.zeros((4, 6, 3), np.uint8), CameraIntrinsics.from_hfov(6, 4, 60))
    np.testing.assert_allclose(depth.depth, 3.0)
    limits = DepthLimits.resolve(_description(), 20.0, 30.0, 2.0)
    assert (limits.min_depth, limits.max_depth, limits.depth_scale) == (20.0, 30.0, 2.0)


def test_predictor_refuses_mismatched_intrinsics():
    predictor = DepthPredictor(_description(), ConstantBackend(np.ones((2, 2))))
    with pytest.raises(ValueError, match="intrinsics are for"):
        predictor.predict(np.zeros((4, 6, 3), np.uint8), CameraIntrinsics.from_hfov(8, 4, 60))


@pytest.mark.parametrize(
    "backend, device, cuda, expected",
    [
        ("auto", "auto", False, [("onnxruntime", "cpu"), ("torch", "cpu")]),
        (
            "auto",
            "auto",
            True,
            [
                ("tensorrt", "cuda:0"),
                ("torch", "cuda:0"),
                ("onnxruntime", "cpu"),
                ("torch", "cpu"),
            ],
        ),
        ("auto", "cpu", True, [("onnxruntime", "cpu"), ("torch", "cpu")]),
        ("torch", "cuda:1", True, [("torch", "cuda:1"), ("torch", "cpu"), ("onnxruntime", "cpu")]),
        (
            "tensorrt",
            "auto",
            False,
            [
                ("tensorrt", "cuda:0"),
                ("torch", "cuda:0"),
                ("onnxruntime", "cpu"),
                ("torch", "cpu"),
            ],
        ),
        ("onnxruntime", "auto", True, [("onnxruntime", "cpu"), ("torch", "cpu")]),
    ],
)
def test_backend_chain(backend, device, cuda, expected):
    assert backend_chain(backend, device, cuda) == expected


def test_fallback_skips_a_backend_that_cannot_start(model, onnx_path, tmp_path):
    chain = [("tensorrt", "cuda:0"), ("onnxruntime", "cpu")]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed: this test needs it absent")
    choice = create_backend(chain, model, lambda: onnx_path, (WIDTH, HEIGHT), tmp_path)
    assert choice.backend.name == "onnxruntime"
    assert len(choice.skipped) == 1 and "TensorRT" in choice.skipped[0]


def test_no_backend_raises_with_every_reason(model, tmp_path):
    def broken_export():
        raise RuntimeError("export broke")

    with pytest.raises(BackendError, match="export broke"):
        create_backend([("onnxruntime", "cpu")], model, broken_export, (WIDTH, HEIGHT), tmp_path)


def test_onnxruntime_matches_torch(model, onnx_path):
    batch = np.random.default_rng(0).normal(size=(1, 3, HEIGHT, WIDTH)).astype(np.float32)
    ort_out = OnnxRuntimeBackend(onnx_path, num_threads=1).infer(batch)
    torch_out = TorchBackend(model, "cpu").infer(batch)
    assert set(ort_out) == set(torch_out) == {"depth", "seg_logits"}
    for key in ort_out:
        torch.testing.assert_close(
            torch.from_numpy(ort_out[key]), torch.from_numpy(torch_out[key]), rtol=1e-3, atol=1e-4
        )


def test_engine_key_changes_with_everything_it_depends_on():
    base = EngineKey("NVIDIA H100", "9.0", "10.3.0", "abc", 384, 288, "fp16")
    names = {base.filename()}
    for change in (
        {"gpu_name": "Orin"},
        {"compute_capability": "8.7"},
        {"tensorrt_version": "10.4.0"},
        {"onnx_sha256": "abd"},
        {"input_width": 320},
        {"input_height": 256},
        {"precision": "fp32"},
    ):
        names.add(EngineKey(**{**base.__dict__, **change}).filename())
    assert len(names) == 8
    assert EngineKey(**base.__dict__).filename() == base.filename()


def test_tensorrt_backend_reports_unavailability(onnx_path, tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="TensorRT is not importable"):
            TensorRTBackend(onnx_path, WIDTH, HEIGHT, tmp_path)
    else:
        pytest.skip("TensorRT present: covered by the GPU tests")


def test_load_pipeline_end_to_end_on_cpu():
    pipeline = load_pipeline(
        PerceptionConfig(input_width=WIDTH, input_height=HEIGHT, backend="onnxruntime", weights="")
    )
    rgb = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    prediction = pipeline.predictor.predict(rgb, CameraIntrinsics.from_hfov(120, 90, 70.0))
    assert prediction.depth.shape == (90, 120)
    finite = prediction.depth[np.isfinite(prediction.depth)]
    assert np.all(finite >= pipeline.predictor.min_depth)
    assert np.all(finite <= pipeline.predictor.max_depth)
    assert prediction.labels.max() < pipeline.description.num_classes
    assert pipeline.choice.backend.name == "onnxruntime"
    pipeline.close()


def test_load_pipeline_refuses_unknown_model_and_missing_weights(tmp_path):
    with pytest.raises(ValueError, match="Available models"):
        load_pipeline(PerceptionConfig(model="no_such_model"))
    with pytest.raises(FileNotFoundError):
        load_pipeline(PerceptionConfig(weights=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_pipeline(PerceptionConfig(weights=str(tmp_path / "weights.pt")))
