"""Outputs on demand in the core: which outputs a frame needs, and only their stages run."""

from __future__ import annotations

import numpy as np
import pytest
from test_predictor_buffers import _predictor

from depth_perception.buffers import backing_payload
from depth_perception.config import PerceptionConfig
from depth_perception.frame_pipeline import (
    OUTPUT_NAMES,
    FramePipeline,
    OutputDemand,
    prepare_frame,
)
from depth_perception.visualize import make_palette

CONFIG = PerceptionConfig()


def _counts(*names: str) -> dict[str, int]:
    return {name: (1 if name in names else 0) for name in OUTPUT_NAMES}


def test_demand_follows_subscribers_and_switches() -> None:
    assert OutputDemand.from_subscribers(CONFIG, _counts()).active() == []
    assert not OutputDemand.from_subscribers(CONFIG, _counts()).any
    depth = OutputDemand.from_subscribers(CONFIG, _counts("depth"))
    assert depth.active() == ["depth"] and "points" not in depth
    assert not depth.needs_labels(CONFIG)
    both = OutputDemand.from_subscribers(CONFIG, {"points": 2, "depth_info": 1})
    assert both.active() == ["depth_info", "points"]
    assert both.needs_labels(CONFIG)  # the cloud's label field
    assert not both.needs_labels(CONFIG.replace(points_label=False))
    assert OutputDemand.from_subscribers(CONFIG, _counts("color")).needs_labels(CONFIG)
    # A switch that is off wins over a subscriber.
    off = CONFIG.replace(publish_points=False, publish_segmentation=False, publish_scan=False)
    assert OutputDemand.from_subscribers(off, _counts(*OUTPUT_NAMES)).active() == [
        "depth",
        "depth_info",
    ]
    # outputs_on_demand false forces every switched-on output, subscribed or not.
    forced = CONFIG.replace(outputs_on_demand=False)
    # (no obstacle cloud without obstacle_exclude_classes)
    assert OutputDemand.from_subscribers(forced, _counts()).active() == [
        name for name in OUTPUT_NAMES if name != "obstacles"
    ]
    assert OutputDemand.everything(off).active() == ["depth", "depth_info"]
    with pytest.raises(ValueError, match="unknown outputs"):
        OutputDemand(frozenset({"depth", "laser"}))


def _frame(camera: str = ""):
    rgb = np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    return prepare_frame(camera, rgb, None, 70.0)


def _pipeline() -> FramePipeline:
    return FramePipeline(_predictor(), make_palette(5))


def test_only_the_stages_of_the_wanted_outputs_run() -> None:
    pipeline = _pipeline()
    (depth_only,) = pipeline.process([_frame()], CONFIG, OutputDemand(frozenset({"depth"})))
    assert depth_only.depth is not None and not depth_only.depth_info
    assert depth_only.cloud is None and depth_only.labels is None and depth_only.overlay is None
    assert depth_only.prediction.labels is None  # no arg-max for nobody
    assert "points" not in depth_only.timings_ms and "colorize" not in depth_only.timings_ms

    (cloud,) = pipeline.process([_frame()], CONFIG, OutputDemand(frozenset({"points"})))
    assert cloud.depth is None and cloud.cloud is not None and cloud.overlay is None
    assert [f.name for f in cloud.cloud.fields][-1] == "label"  # labels computed for it
    assert "points" in cloud.timings_ms and "colorize" not in cloud.timings_ms

    (color,) = pipeline.process([_frame()], CONFIG, OutputDemand(frozenset({"color"})))
    assert color.overlay is not None and color.labels is None and color.cloud is None
    assert "colorize" in color.timings_ms and "points" not in color.timings_ms

    (everything,) = pipeline.process([_frame()], CONFIG)
    assert everything.depth_info and everything.cloud is not None
    assert everything.labels is not None and everything.overlay is not None


def test_outputs_are_the_cameras_reused_buffers_and_match_a_fresh_run() -> None:
    pipeline = _pipeline()
    first = pipeline.process([_frame()], CONFIG)[0]
    composer = pipeline.composer("")
    for name, array in (
        ("depth", first.depth),
        ("labels", first.labels),
        ("overlay", first.overlay),
    ):
        assert backing_payload(array) is composer.buffers.buffer(name).payload, name
    allocations = composer.buffers.allocations
    second = pipeline.process([_frame()], CONFIG)[0]
    assert composer.buffers.allocations == allocations  # steady state: nothing new
    assert np.shares_memory(first.overlay, second.overlay)
    fresh = _pipeline().process([_frame()], CONFIG)[0]
    np.testing.assert_array_equal(second.depth, fresh.depth)
    np.testing.assert_array_equal(second.overlay, fresh.overlay)
    np.testing.assert_array_equal(second.cloud.data, fresh.cloud.data)


def test_per_camera_demand_in_one_batch() -> None:
    pipeline = _pipeline()
    demands = {
        "front": OutputDemand(frozenset({"depth"})),
        "rear": OutputDemand(frozenset({"mask"})),
    }
    front, rear = pipeline.process([_frame("front"), _frame("rear")], CONFIG, demands)
    assert front.depth is not None and front.labels is None
    assert rear.depth is None and rear.labels is not None
    # Each camera writes into its own buffers.
    assert not np.shares_memory(front.prediction.depth, rear.prediction.depth)
