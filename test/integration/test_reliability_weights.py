"""Reliability: unusable weights leave mono_depth unconfigured, saying why, and never crash it.

One node process goes through every case by setting ``weights`` and calling configure over
the lifecycle service; the checkpoints are written with ``save_checkpoint`` in tmp_path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ros_harness import (
    NodeControl,
    RosHarness,
    header,
    publish_frame,
    ros_session,
    stamp_ns,
    start_mono_depth,
)

from depth_perception.apps.processes import stop_processes
from depth_perception.checkpoint import CheckpointMeta, save_checkpoint
from depth_perception.models import build_model
from depth_perception.nodes.conversions import image_msg_to_array

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


def _save(directory, name: str, model_name: str, **meta_args) -> str:
    torch.manual_seed(1)
    model = build_model(model_name)
    meta = CheckpointMeta.for_model(model_name, model, input_size=(128, 96), **meta_args)
    return str(save_checkpoint(directory / name, model, meta))


def _checkpoints(directory) -> list[tuple[str, str, str]]:
    """(case, weights path, words the error must contain), in the order they are tried."""
    cases = [("missing", str(directory / "absent.safetensors"), "does not exist")]

    no_json = _save(directory, "no_json", "lightweight")
    (directory / "no_json.json").unlink()
    cases.append(("json_missing", no_json, "has no metadata file"))

    folder = directory / "folder.safetensors"
    folder.mkdir()
    cases.append(("not_a_file", str(folder), "is not a regular file"))

    cases.append(("wrong_suffix", str(directory / "model.pt"), "must be a .safetensors"))

    corrupt = _save(directory, "corrupt", "lightweight")
    blob = bytearray(open(corrupt, "rb").read())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    open(corrupt, "wb").write(bytes(blob))
    cases.append(("corrupt_bytes", corrupt, "corrupt checkpoint"))

    bad_json = _save(directory, "bad_json", "lightweight")
    (directory / "bad_json.json").write_text('{"model": "lightweight", ')
    cases.append(("corrupt_json", bad_json, "corrupt checkpoint metadata"))

    other_model = _save(directory, "other_model", "lightweight_xs")
    cases.append(("other_model", other_model, "are for model 'lightweight_xs'"))

    # Weights of another architecture under metadata that claims 'lightweight'.
    other_arch = _save(directory, "other_arch", "lightweight_xs")
    meta_path = directory / "other_arch.json"
    meta = json.loads(meta_path.read_text())
    meta["model"] = "lightweight"
    meta_path.write_text(json.dumps(meta))
    cases.append(("other_architecture", other_arch, "does not fit model 'lightweight'"))

    classes = _save(directory, "classes", "lightweight", class_names=["a", "b", "c"])
    cases.append(("wrong_class_count", classes, "checkpoint has 3 classes but model expects"))
    return cases


def test_unusable_weights_leave_the_node_unconfigured_with_the_reason(ros, tmp_path):
    cases = _checkpoints(tmp_path)
    namespace = "/rel_weights"
    process = start_mono_depth(ros, namespace, tmp_path, weights=cases[0][1])
    log_path = tmp_path / "mono_depth_rel_weights.log"
    harness = RosHarness(namespace)
    control = NodeControl(harness)
    results = harness.monitor.results
    try:
        for case, path, words in cases:
            before = int(results.diagnostics.get("errors_configure", 0))
            if case != "missing":  # the first case is the one the node started with
                assert control.set(weights=path)[0].successful
                assert not control.transition("configure"), case
            harness.wait_for(
                lambda b=before: int(results.diagnostics.get("errors_configure", 0)) > b,
                30,
                f"errors_configure for {case}",
            )
            diagnostics = results.diagnostics
            assert diagnostics["message"].startswith("configure failed"), case
            assert words in diagnostics["message"], (case, diagnostics["message"])
            assert diagnostics["level"] == "2", case
            assert control.state() == "unconfigured", case
            assert process.poll() is None, f"{case}: the node must stay up"
            assert "configure failed: " in log_path.read_text()
            assert words in log_path.read_text(), case

        # A good checkpoint afterwards: configures, activates and serves.
        good = _save(tmp_path, "good", "lightweight")
        assert control.set(weights=good)[0].successful
        assert control.transition("configure") and control.transition("activate")
        harness.publish_until(
            lambda: publish_frame(harness, 1),
            lambda: ("depth/image", stamp_ns(header(1))) in harness.monitor.by_stamp,
            60,
            "depth with the good checkpoint",
        )
        depth = image_msg_to_array(harness.monitor.by_stamp[("depth/image", stamp_ns(header(1)))])
        assert np.isfinite(depth).mean() > 0.5
        harness.wait_for(
            lambda: results.diagnostics.get("weights") == good, 10, "weights in diagnostics"
        )
    finally:
        harness.close()
        codes = stop_processes([process])
    assert codes == [0], log_path.read_text()
