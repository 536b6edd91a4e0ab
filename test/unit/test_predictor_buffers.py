"""The predictor writes into reused output buffers and keeps its work arrays between frames."""

from __future__ import annotations

import numpy as np
import pytest
from test_predictor_backends import ConstantBackend, _description

from depth_perception.buffers import BufferSet, backing_payload
from depth_perception.camera import CameraIntrinsics
from depth_perception.predictor import DepthPredictor


class BatchConstantBackend(ConstantBackend):
    """The constant network for every image of a batch."""

    def infer(self, batch):
        outputs = super().infer(batch)
        return {key: np.repeat(value, len(batch), axis=0) for key, value in outputs.items()}


def _predictor(seed: int = 0) -> DepthPredictor:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.1, 12.0, (24, 32)).astype(np.float32)
    depth[3, 4], depth[5, 6] = np.nan, np.inf
    logits = rng.normal(size=(5, 24, 32)).astype(np.float32)
    names = tuple("abcde")
    return DepthPredictor(_description(class_names=names), BatchConstantBackend(depth, logits))


def test_buffers_give_the_same_outputs_in_reused_memory() -> None:
    intrinsics = CameraIntrinsics.from_hfov(80, 60, 70.0)
    rgb = np.zeros((60, 80, 3), np.uint8)
    fresh = _predictor().predict(rgb, intrinsics)
    predictor = _predictor()
    buffers = BufferSet()
    first = predictor.predict(rgb, intrinsics, buffers)
    np.testing.assert_array_equal(first.depth, fresh.depth)  # NaN where NaN
    np.testing.assert_array_equal(first.labels, fresh.labels)
    assert np.isnan(fresh.depth).any() and np.isfinite(fresh.depth).any()
    assert not np.isinf(fresh.depth).any()
    # The outputs ARE the buffers (a message can take them), and stay so frame after frame.
    assert backing_payload(first.depth) is buffers.buffer("depth").payload
    assert backing_payload(first.labels) is buffers.buffer("labels").payload
    allocations = buffers.allocations
    work = dict(predictor._work)
    second = predictor.predict(rgb, intrinsics, buffers)
    assert np.shares_memory(first.depth, second.depth)
    assert buffers.allocations == allocations == 2
    assert predictor._work.keys() == work.keys()
    assert all(predictor._work[key] is work[key] for key in work)  # no new work arrays


def test_depth_scale_and_limits_with_buffers_match_fresh_arrays() -> None:
    intrinsics = CameraIntrinsics.from_hfov(64, 48, 70.0)
    rgb = np.zeros((48, 64, 3), np.uint8)
    reference, reused = _predictor(1), _predictor(1)
    for predictor in (reference, reused):
        predictor.set_depth_limits(1.0, 8.0, 0.5)
    expected = reference.predict(rgb, intrinsics).depth
    got = reused.predict(rgb, intrinsics, BufferSet()).depth
    np.testing.assert_array_equal(got, expected)
    finite = got[np.isfinite(got)]
    assert finite.size and finite.min() >= 1.0 and finite.max() <= 8.0


def test_labels_can_be_skipped_and_batches_take_one_buffer_set_per_image() -> None:
    intrinsics = [CameraIntrinsics.from_hfov(80, 60, 70.0), CameraIntrinsics.from_hfov(40, 30, 60)]
    images = [np.zeros((60, 80, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)]
    predictor = _predictor()
    assert predictor.predict(images[0], intrinsics[0], labels=False).labels is None
    sets = [BufferSet(), BufferSet()]
    predictions = predictor.predict_batch(list(zip(images, intrinsics, strict=True)), sets)
    for prediction, buffers, rgb, k in zip(predictions, sets, images, intrinsics, strict=True):
        assert backing_payload(prediction.depth) is buffers.buffer("depth").payload
        single = _predictor().predict(rgb, k)
        np.testing.assert_array_equal(prediction.depth, single.depth)
        np.testing.assert_array_equal(prediction.labels, single.labels)
    with pytest.raises(ValueError, match="buffer sets"):
        predictor.predict_batch(list(zip(images, intrinsics, strict=True)), sets[:1])
