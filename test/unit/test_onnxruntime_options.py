"""ONNX Runtime session options for a node that shares its cores: spinning, thread count."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from depth_perception.backends.onnxruntime_backend import (
    OnnxRuntimeBackend,
    pipeline_intra_op_threads,
    usable_cpu_count,
)
from depth_perception.config import PerceptionConfig, load_config
from depth_perception.export import export_onnx
from depth_perception.models import build_model
from depth_perception.runtime import load_pipeline


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "lightweight.onnx"
    export_onnx(build_model("lightweight").eval(), path, 64, 64, dynamic_size=False)
    return path


def _entry(backend: OnnxRuntimeBackend, key: str) -> str:
    return backend._session.get_session_options().get_session_config_entry(key)


def test_spinning_is_off_unless_asked_for_and_threads_fill_the_usable_cores(onnx_path) -> None:
    quiet = OnnxRuntimeBackend(onnx_path)
    assert not quiet.spinning
    assert _entry(quiet, "session.intra_op.allow_spinning") == "0"
    assert _entry(quiet, "session.inter_op.allow_spinning") == "0"
    assert quiet.num_threads == usable_cpu_count()
    assert quiet._session.get_session_options().intra_op_num_threads == usable_cpu_count()
    spinning = OnnxRuntimeBackend(onnx_path, num_threads=1, spinning=True)
    assert _entry(spinning, "session.intra_op.allow_spinning") == "1"
    assert spinning._session.get_session_options().intra_op_num_threads == 1
    batch = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    # The setting changes how threads wait, never the result.
    for key, value in quiet.infer(batch).items():
        np.testing.assert_allclose(spinning.infer(batch)[key], value, rtol=1e-5, atol=1e-5)


def test_usable_cpus_follow_the_affinity_mask() -> None:
    count = usable_cpu_count()
    assert 1 <= count <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert count <= len(os.sched_getaffinity(0))


def test_node_config_passes_cpu_spinning_to_the_backend(tmp_path) -> None:
    assert PerceptionConfig().cpu_spinning is False
    with pytest.raises(ValueError, match="cpu_spinning must be bool"):
        PerceptionConfig(cpu_spinning=1)
    params = tmp_path / "params.yaml"
    params.write_text("mono_depth:\n  ros__parameters:\n    cpu_spinning: true\n")
    assert load_config(params).cpu_spinning is True
    for spinning in (False, True):
        config = PerceptionConfig(
            backend="onnxruntime", input_width=64, input_height=64, cpu_spinning=spinning
        )
        pipeline = load_pipeline(config)
        try:
            backend = pipeline.choice.backend
            assert backend.name == "onnxruntime" and backend.spinning is spinning
            values = pipeline.diagnostic_values()
            assert values["cpu_spinning"] is spinning
            # A pipeline leaves one usable core to its own thread, executor and DDS.
            assert values["cpu_threads"] == pipeline_intra_op_threads()
            assert values["cpu_threads"] == max(1, usable_cpu_count() - 1)
        finally:
            pipeline.close()
    pinned = load_pipeline(
        PerceptionConfig(backend="onnxruntime", input_width=64, input_height=64, num_threads=3)
    )
    try:
        assert pinned.diagnostic_values()["cpu_threads"] == 3  # an explicit count is kept
    finally:
        pinned.close()
