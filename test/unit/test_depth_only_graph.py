"""Frames whose class ids nobody takes run a depth-only graph: the segmentation head skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_predictor_backends import _description

from depth_perception.backends.base import BackendError, InferenceBackend
from depth_perception.camera import CameraIntrinsics
from depth_perception.predictor import DepthPredictor


class CallRecorder(InferenceBackend):
    """Constant outputs; records which entry point each batch went through."""

    name = "recorder"

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.calls: list[str] = []

    def _outputs(self, batch: np.ndarray, labels: bool) -> dict[str, np.ndarray]:
        n, _, h, w = batch.shape
        outputs = {"depth": np.full((n, 1, h, w), 2.0, np.float32)}
        if labels and self.classes:
            outputs["seg_logits"] = np.zeros((n, self.classes, h, w), np.float32)
        return outputs

    def infer(self, batch):
        self.calls.append("infer")
        return self._outputs(batch, True)

    def infer_depth(self, batch):
        self.calls.append("infer_depth")
        return self._outputs(batch, False)


def test_the_predictor_asks_for_depth_only_when_no_labels_are_wanted() -> None:
    names = ("a", "b", "c")
    predictor = DepthPredictor(_description(class_names=names), CallRecorder(len(names)))
    rgb = np.zeros((48, 64, 3), np.uint8)
    intrinsics = CameraIntrinsics.from_hfov(64, 48, 70.0)
    assert predictor.predict(rgb, intrinsics, labels=False).labels is None
    assert predictor.predict(rgb, intrinsics).labels is not None
    predictor.predict_batch([(rgb, intrinsics)] * 2, labels=False)
    assert predictor.backend.calls == ["infer_depth", "infer", "infer_depth"]


def test_the_base_backend_runs_the_whole_network_for_depth_only() -> None:
    class Whole(InferenceBackend):
        def infer(self, batch):
            return {"depth": np.ones((len(batch), 1, 2, 2), np.float32), "seg_logits": batch}

    outputs = Whole().infer_depth(np.zeros((1, 3, 2, 2), np.float32))
    assert set(outputs) == {"depth", "seg_logits"}


def test_exports_carry_a_depth_only_graph_that_onnx_runtime_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend
    from depth_perception.checkpoint_meta import read_checkpoint_meta
    from depth_perception.models import build_model
    from depth_perception.onnx_files import (
        compare_depth_only,
        depth_only_path,
        export_to_cache,
    )
    from depth_perception.runtime import bundled_weights

    torch.manual_seed(0)
    model = build_model("lightweight").eval()
    info = read_checkpoint_meta(bundled_weights("lightweight"))
    monkeypatch.setenv("DEPTH_PERCEPTION_CACHE", str(tmp_path))
    export = export_to_cache(model, info, 64, 64)
    sibling = depth_only_path(export)
    assert sibling.name == export.name.removesuffix(".onnx") + ".depth.onnx"
    assert sorted(p.name for p in export.parent.iterdir()) == [sibling.name, export.name]
    assert compare_depth_only(export, 96, 64) == 0.0  # also at another size (dynamic axes)
    backend = OnnxRuntimeBackend(export, num_threads=1)
    assert backend.has_depth_only_graph
    batch = np.random.default_rng(1).normal(size=(2, 3, 64, 96)).astype(np.float32)
    depth_only = backend.infer_depth(batch)
    assert set(depth_only) == {"depth"}
    np.testing.assert_array_equal(depth_only["depth"], backend.infer(batch)["depth"])
    # without the sibling the backend runs the whole graph for depth only
    sibling.unlink()
    plain = OnnxRuntimeBackend(export, num_threads=1)
    assert not plain.has_depth_only_graph and "seg_logits" in plain.infer_depth(batch)
    # a file beside it that is not the depth-only graph is refused at start
    sibling.write_bytes(export.read_bytes())
    with pytest.raises(BackendError, match="is not the depth-only graph"):
        OnnxRuntimeBackend(export, num_threads=1)
