"""Every registered model family runs in mono_depth_node (real node process, real ROS 2).

For each registered model other than the light-weight family (which the other integration tests
cover), a checkpoint with random weights, three named classes where the model segments, and a
small network size is written; a mono_depth node loads it (torch backend: the ONNX export of
every model is covered by the contract test) and must publish depth at the camera's size, the
mask with valid ids and the latched class table from the checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import (
    HEIGHT,
    WIDTH,
    RosHarness,
    publish_frame,
    ros_session,
    start_mono_depth,
    wait_for_subscription,
)
from std_msgs.msg import String

from depth_perception.apps.processes import stop_processes
from depth_perception.checkpoint import CheckpointMeta, save_checkpoint
from depth_perception.models import get_model_info, list_models
from depth_perception.models.registry import build_model
from depth_perception.nodes.conversions import image_msg_to_array

pytestmark = pytest.mark.integration

CLASS_NAMES = ["floor", "wall", "thing"]
FAMILIES = [name for name in list_models() if not name.startswith("lightweight")]


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


def _network_size(model: torch.nn.Module) -> tuple[int, int]:
    fixed = getattr(model, "fixed_input_size", None)
    if fixed is not None:
        return tuple(fixed)
    multiple = model.input_multiple
    return (-(-96 // multiple) * multiple, -(-64 // multiple) * multiple)


def _checkpoint(directory, name: str) -> tuple[str, tuple[int, int], bool]:
    info = get_model_info(name)
    segments = "segmentation" in info.tasks
    args = {"num_classes": len(CLASS_NAMES)} if segments else {}
    torch.manual_seed(0)
    model = build_model(name, **args)
    size = _network_size(model)
    meta = CheckpointMeta.for_model(
        name, model, args, input_size=size, class_names=CLASS_NAMES if segments else []
    )
    return str(save_checkpoint(directory / name, model, meta)), size, segments


@pytest.mark.skipif(not FAMILIES, reason="only the light-weight family is registered")
@pytest.mark.parametrize("name", FAMILIES)
def test_model_runs_in_mono_depth_node(ros, tmp_path, name):
    weights, (width, height), segments = _checkpoint(tmp_path, name)
    namespace = f"/family_{name}"
    harness = RosHarness(namespace)
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    tables: list[str] = []
    harness.node.create_subscription(
        String, "segmentation/class_names", lambda m: tables.append(m.data), latched
    )
    node = start_mono_depth(
        ros,
        namespace,
        tmp_path,
        model=name,
        weights=weights,
        backend="torch",
        input_width=width,
        input_height=height,
    )
    try:
        wait_for_subscription(harness)
        results = harness.monitor.results
        harness.publish_until(
            lambda: publish_frame(harness, 1),
            lambda: (
                results.counts.get("depth/image", 0) > 0
                and (not segments or results.counts.get("segmentation/mask", 0) > 0)
            ),
            120,
            f"{name}: depth (and mask) from mono_depth",
        )
        depth = image_msg_to_array(harness.monitor.last["depth/image"])
        assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
        finite = depth[np.isfinite(depth)]
        assert finite.size > 0 and float(finite.min()) > 0
        # The monitor replaces its diagnostics dict with every message: read it afresh.
        harness.wait_for(lambda: results.diagnostics.get("model") == name, 30, "diagnostics")
        diagnostics = results.diagnostics
        metric = get_model_info(name).metric
        assert diagnostics["depth_is_metric"] == str(metric)
        if segments:
            mask = image_msg_to_array(harness.monitor.last["segmentation/mask"])
            assert mask.shape == (HEIGHT, WIDTH) and int(mask.max()) < len(CLASS_NAMES)
            harness.wait_for(lambda: bool(tables), 30, "the latched class table")
            table = json.loads(tables[-1])
            assert [c["name"] for c in table["classes"]] == CLASS_NAMES
            assert [c["id"] for c in table["classes"]] == [0, 1, 2]
            assert diagnostics["num_classes"] == "3"
        else:
            assert results.counts.get("segmentation/mask", 0) == 0
            assert not tables
    finally:
        stop_processes([node])
        harness.close()
