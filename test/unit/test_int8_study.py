"""The int8 ONNX study's parts: which nodes are the heads, the quantized model, the wrapper."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from depth_perception.backends.calibration import CalibrationSource
from depth_perception.checkpoint import load_model
from depth_perception.checkpoint_meta import read_checkpoint_meta
from depth_perception.onnx_files import find_onnx
from training.tools.evaluate import default_checkpoint
from training.tools.int8_study import OnnxModule, output_heads, quantize


def _conv(name: str, source: str, target: str, channels: int) -> tuple:
    weight = numpy_helper.from_array(
        np.full((channels, channels, 1, 1), 0.5, np.float32), f"{name}.weight"
    )
    return helper.make_node("Conv", [source, weight.name], [target], name=name), weight


def test_output_heads_walk_back_from_each_output_to_its_conv(tmp_path) -> None:
    # x -> body Conv -> Relu -> depth Conv -> Mul -> Exp -> depth ; Relu -> seg Conv -> seg
    body, w_body = _conv("body", "x", "b", 2)
    head, w_head = _conv("depth_head", "r", "h", 2)
    seg, w_seg = _conv("seg_head", "r", "seg", 2)
    scale = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [
        body,
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        head,
        helper.make_node("Mul", ["h", "two"], ["m"], name="affine"),
        helper.make_node("Exp", ["m"], ["depth"], name="exp"),
        seg,
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [
            helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 2, 4, 4]),
            helper.make_tensor_value_info("seg", TensorProto.FLOAT, [1, 2, 4, 4]),
        ],
        [w_body, w_head, w_seg, scale],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert sorted(output_heads(path)) == ["affine", "depth_head", "exp", "seg_head"]


@pytest.fixture(scope="module")
def bundled():
    checkpoint = default_checkpoint()
    model, meta = load_model(checkpoint, device="cpu")
    path = find_onnx(read_checkpoint_meta(checkpoint), meta.input_width, meta.input_height)
    assert path is not None, "the bundled default ships its ONNX export"
    return model.eval(), meta, path


def test_quantized_bundled_model_is_int8_and_close_to_float(bundled, tmp_path) -> None:
    model, meta, fp32 = bundled
    w, h = meta.input_width, meta.input_height
    source = CalibrationSource(
        w, h, tuple(meta.mean), tuple(meta.std), families=("indoor",), num_images=4
    )
    int8 = quantize(fp32, tmp_path / "int8.onnx", source)
    heads_float = quantize(fp32, tmp_path / "heads.onnx", source, fp32_heads=True)
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size

    # The heads' convolutions keep float weights when asked; they are quantized otherwise.
    def float_weights(path) -> set[str]:
        graph = onnx.load(str(path)).graph
        floats = {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}
        return {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in floats}

    head_convs = {n for n in output_heads(fp32) if n.endswith("Conv")}
    assert len(head_convs) == 2
    assert head_convs <= float_weights(heads_float)
    assert not head_convs & float_weights(int8)

    batch = next(CalibrationSource(w, h, tuple(meta.mean), tuple(meta.std), seed=7).batches(1))
    with torch.no_grad():
        reference = model(torch.from_numpy(batch))["depth"].numpy()
    quantized = OnnxModule(int8, model)(torch.from_numpy(batch))["depth"].numpy()
    relative = np.abs(quantized - reference) / reference
    assert float(np.median(relative)) < 0.05  # int8, not a broken graph
    assert float(np.median(relative)) > 0.0  # and not the float model again


def test_onnx_module_is_the_float_export_behind_the_module_interface(bundled) -> None:
    model, meta, fp32 = bundled
    module = OnnxModule(fp32, model, threads=1)
    assert module.canonical_focal_px == model.canonical_focal_px
    batch = torch.randn(2, 3, meta.input_height, meta.input_width, generator=torch.Generator())
    with torch.no_grad():
        reference = model(batch)
    out = module(batch)
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == reference["depth"].shape  # a batch of 2 through batch-1 files
    torch.testing.assert_close(out["depth"], reference["depth"], rtol=1e-3, atol=1e-4)
