"""Multi-camera: batched prediction in the core, and one node serving two cameras over ROS 2."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from depth_perception.backends.base import InferenceBackend
from depth_perception.backends.torch_backend import TorchBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.nodes.mono_depth_node import camera_names_error
from depth_perception.runtime import load_pipeline


class CountingBackend(InferenceBackend):
    """Delegates to a real backend and records the batch shape of every call."""

    def __init__(self, inner: InferenceBackend, max_batch_size: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.device = inner.device
        self.max_batch_size = max_batch_size
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.shapes.append(batch.shape)
        return self.inner.infer(batch)


def _image(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    return np.clip(ramp + rng.integers(0, 50, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ort_pipeline(tmp_path_factory):
    import os

    old = os.environ.get("DEPTH_PERCEPTION_CACHE")
    os.environ["DEPTH_PERCEPTION_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    config = PerceptionConfig(backend="onnxruntime", input_width=64, input_height=64)
    pipeline = load_pipeline(config)
    yield pipeline
    pipeline.close()
    if old is None:
        os.environ.pop("DEPTH_PERCEPTION_CACHE", None)
    else:
        os.environ["DEPTH_PERCEPTION_CACHE"] = old


def _items():
    # Two cameras of different sizes: each output must come back at its own camera's size.
    return [
        (_image(1, 160, 120), CameraIntrinsics.from_hfov(160, 120, 70.0)),
        (
            _image(2, 96, 64),
            CameraIntrinsics(fx=80.0, fy=75.0, cx=40.0, cy=30.0, width=96, height=64),
        ),
    ]


def _assert_same(batched, single) -> None:
    assert batched.depth.shape == single.depth.shape
    np.testing.assert_allclose(batched.depth, single.depth, rtol=1e-4, atol=1e-4, equal_nan=True)
    assert (batched.labels is None) == (single.labels is None)
    if single.labels is not None:
        # Arg-max ties may flip under float noise: allow a handful of pixels.
        assert np.mean(batched.labels != single.labels) < 0.01
    assert batched.intrinsics == single.intrinsics


def test_predict_batch_is_one_inference_call_equal_to_single_predictions(ort_pipeline):
    predictor = ort_pipeline.predictor
    singles = [predictor.predict(rgb, k) for rgb, k in _items()]
    counting = CountingBackend(predictor.backend)
    predictor.backend = counting
    try:
        batched = predictor.predict_batch(_items())
    finally:
        predictor.backend = counting.inner
    assert counting.shapes == [(2, 3, 64, 64)]
    assert [p.depth.shape for p in batched] == [(120, 160), (64, 96)]
    for b, s in zip(batched, singles, strict=True):
        _assert_same(b, s)
    assert set(batched[0].timings_ms) == {"preprocess", "inference", "postprocess"}


def test_predict_batch_with_torch_and_a_batch_limit_splits_into_chunks(ort_pipeline):
    predictor = ort_pipeline.predictor
    singles = [predictor.predict(rgb, k) for rgb, k in _items()]
    torch.manual_seed(0)
    original = predictor.backend
    # The same weights in torch: rebuild through the restart hook the fallback uses.
    torch_choice = ort_pipeline.restart([("torch", "cpu")])
    counting = CountingBackend(torch_choice.backend, max_batch_size=1)
    predictor.backend = counting
    try:
        batched = predictor.predict_batch(_items())
    finally:
        predictor.backend = original
        torch_choice.backend.close()
    assert counting.shapes == [(1, 3, 64, 64), (1, 3, 64, 64)]
    for b, s in zip(batched, singles, strict=True):
        _assert_same(b, s)


def test_predict_batch_refuses_bad_input(ort_pipeline):
    predictor = ort_pipeline.predictor
    with pytest.raises(ValueError, match="at least one"):
        predictor.predict_batch([])
    rgb, _ = _items()[0]
    with pytest.raises(ValueError, match="intrinsics are for"):
        predictor.predict_batch([(rgb, CameraIntrinsics.from_hfov(10, 10, 60.0))])


def test_camera_names_are_validated():
    assert camera_names_error(["front", "rear", "left/rgb"]) == ""
    assert camera_names_error([]) == ""
    assert "twice" in camera_names_error(["front", "front"])
    assert "relative ROS namespaces" in camera_names_error(["/front"])
    assert "relative ROS namespaces" in camera_names_error(["2cam"])
    assert "list of strings" in camera_names_error("front")


def test_newest_frame_of_every_camera_with_drops_counted_per_camera():
    from depth_perception.frame_pipeline import LatestFrames

    slot = LatestFrames(["front", "rear"])
    assert slot.take_all(timeout=0.01) == {}
    first, second, rear = (object() for _ in range(3))
    slot.put("front", first)
    slot.put("front", second)  # overwrites an unprocessed front frame: one front drop
    slot.put("rear", rear)
    frames = slot.take_all(timeout=0.01)
    assert frames == {"front": second, "rear": rear}
    assert slot.dropped == {"front": 1, "rear": 0}
    slot.put("rear", first)
    assert slot.take_all(timeout=0.01) == {"rear": first}
    assert slot.dropped == {"front": 1, "rear": 0}


def test_torch_backend_on_cpu_is_unchanged_by_the_cuda_options():
    # The CUDA-only options must not alter the CPU path (no autocast, no graphs there).
    from depth_perception.models import build_model

    torch.manual_seed(0)
    model = build_model("lightweight").eval()
    backend = TorchBackend(model, "cpu")
    batch = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    outputs = backend.infer(batch)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch))
    assert outputs["depth"].dtype == np.float32
    np.testing.assert_allclose(outputs["depth"], expected["depth"].numpy(), rtol=1e-5)
    assert backend.cuda_graph_active is False


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_torch_backend_on_cuda_fp16_matches_fp32(cuda_graphs):
    from depth_perception.models import build_model

    torch.manual_seed(0)
    model = build_model("lightweight").eval()
    batch = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch))["depth"].numpy()
    backend = TorchBackend(model, "cuda", fp16=True, cuda_graphs=cuda_graphs)
    try:
        for _ in range(4):  # warm-up, capture, then replays
            outputs = backend.infer(batch)
        assert outputs["depth"].dtype == np.float32
        np.testing.assert_allclose(outputs["depth"], expected, rtol=0.05, atol=0.05)
        # A replay must read the new input, not the captured one.
        other = backend.infer(batch[::-1].copy())
        np.testing.assert_allclose(other["depth"][0], outputs["depth"][1], rtol=1e-3, atol=1e-3)
        if cuda_graphs:
            assert backend.cuda_graph_active, backend.cuda_graph_error
    finally:
        backend.close()


# ----- over ROS 2 -----


@pytest.fixture(scope="module")
def ros():
    from ros_harness import ros_session

    yield from ros_session()


CAMERAS = {
    # name: (width, height, frame_id, first stamp second)
    "front": (160, 120, "front_optical", 1000),
    "rear": (96, 64, "rear_optical", 5000),
}


@pytest.mark.integration
def test_two_cameras_in_one_node_each_in_its_namespace_in_one_batch(ros, tmp_path):
    from builtin_interfaces.msg import Time
    from ros_harness import RosHarness, stamp_ns, start_mono_depth
    from std_msgs.msg import Header

    from depth_perception.apps.processes import stop_processes
    from depth_perception.nodes.conversions import array_to_image_msg, camera_info_msg

    namespace = "/it_multi"
    process = start_mono_depth(ros, namespace, tmp_path, cameras=list(CAMERAS))
    harnesses = {name: RosHarness(f"{namespace}/{name}") for name in CAMERAS}
    front = harnesses["front"]
    topics = ("depth/image", "depth/camera_info", "points", "segmentation/mask")

    def publish(name: str, index: int, info_after_image: bool = False) -> Header:
        width, height, frame_id, second = CAMERAS[name]
        header = Header(stamp=Time(sec=second + index, nanosec=7), frame_id=frame_id)
        intrinsics = CameraIntrinsics(
            fx=width * 0.9,
            fy=width * 0.85,
            cx=width / 2 - 3,
            cy=height / 2 + 2,
            width=width,
            height=height,
        )
        harness = harnesses[name]
        image = array_to_image_msg(_image(index, width, height), header, "rgb8")
        if info_after_image:
            harness.image_pub.publish(image)
            time.sleep(0.05)
            harness.info_pub.publish(camera_info_msg(intrinsics, header))
        else:
            harness.info_pub.publish(camera_info_msg(intrinsics, header))
            harness.image_pub.publish(image)
        return header

    def arrived(name: str, header: Header) -> bool:
        by_stamp = harnesses[name].monitor.by_stamp
        return all((topic, stamp_ns(header)) in by_stamp for topic in topics)

    try:
        for harness in harnesses.values():
            harness.wait_for(
                lambda h=harness: (
                    h.image_pub.get_subscription_count() > 1
                    and h.info_pub.get_subscription_count() > 0
                ),
                120,
                "subscription",
            )
        sent: dict[str, list[Header]] = {name: [] for name in CAMERAS}
        for index in range(12):
            # Each camera's first image comes before its camera_info (as it can over DDS): the
            # node holds it for the camera_info instead of guessing intrinsics (checked below:
            # every depth/camera_info has this camera's K).
            headers = {name: publish(name, index, info_after_image=index == 0) for name in CAMERAS}
            front.publish_until(
                lambda i=index: {n: publish(n, i) for n in CAMERAS},
                lambda hs=headers: all(arrived(n, h) for n, h in hs.items()),
                60,
                f"outputs of both cameras for frame {index}",
            )
            for name, header in headers.items():
                sent[name].append(header)
            diagnostics = front.monitor.results.diagnostics
            if index >= 3 and diagnostics.get("batch_size_max") == "2":
                break
        front.wait_for(
            lambda: front.monitor.results.diagnostics.get("batch_size_max") == "2",
            10,
            "a batch of 2 in diagnostics",
        )
        for name, (width, height, frame_id, _) in CAMERAS.items():
            monitor = harnesses[name].monitor
            for header in sent[name]:
                for topic in topics:
                    msg = monitor.by_stamp[(topic, stamp_ns(header))]
                    assert msg.header.frame_id == frame_id
                    assert msg.header.stamp == header.stamp
                depth = monitor.by_stamp[("depth/image", stamp_ns(header))]
                assert (depth.width, depth.height, depth.encoding) == (width, height, "32FC1")
                info = monitor.by_stamp[("depth/camera_info", stamp_ns(header))]
                assert info.k[0] == pytest.approx(width * 0.9)
            # Nothing of the other camera leaks into this namespace.
            other_seconds = {s for n, (_, _, _, s) in CAMERAS.items() if n != name}
            for topic, stamp in monitor.by_stamp:
                if topic in topics:
                    first = stamp // 1_000_000_000
                    assert not any(s <= first < s + 100 for s in other_seconds), (topic, stamp)
        front.wait_for(
            lambda: (
                int(front.monitor.results.diagnostics.get("rear_frames_processed", 0))
                >= len(sent["rear"])
            ),
            10,
            "per-camera counters",
        )
        values = front.monitor.results.diagnostics
        assert values["cameras"] == "front,rear"
        processed = int(values["front_frames_processed"]) + int(values["rear_frames_processed"])
        # One inference per batch: fewer calls than frames once any batch held both cameras.
        assert int(values["inference_calls"]) < processed
        assert 1.0 <= float(values["batch_size_mean"]) <= 2.0
        for name in CAMERAS:
            assert int(values[f"{name}_frames_received"]) >= len(sent[name])
            assert f"{name}_dropped_frames" in values and f"{name}_rate_hz" in values
    finally:
        for harness in harnesses.values():
            harness.close()
        codes = stop_processes([process])
    assert codes == [0], (tmp_path / "mono_depth_it_multi.log").read_text()[-3000:]
