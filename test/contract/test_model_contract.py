"""The forward contract every registered model must keep (see depth_perception.models.registry).

Parametrised over ``list_models()``, so a model added to the registry is checked here without
editing this file. Models are built once per module with their default arguments, on CPU, at a
small input size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from depth_perception.camera import SUGGESTED_SIZE_MULTIPLE
from depth_perception.export import check_onnx_parity, export_onnx
from depth_perception.models import get_model_info, list_models
from depth_perception.models.registry import build_model

torch.set_num_threads(2)

EVAL_KEYS = ({"depth"}, {"depth", "seg_logits"})


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def input_sizes(model: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two different small (width, height) sizes the model accepts (equal if fixed-size)."""
    fixed = getattr(model, "fixed_input_size", None)
    if fixed is not None:
        return tuple(fixed), tuple(fixed)
    m = model.input_multiple
    first = (_round_up(96, m), _round_up(64, m))
    return first, (first[0] + _round_up(32, m), first[1] + _round_up(32, m))


def image(width: int, height: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def tensors_in(value: object) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)


@pytest.fixture(scope="module", params=list_models())
def named_model(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    torch.manual_seed(0)
    return request.param, build_model(request.param)


@pytest.fixture
def model(named_model: tuple[str, nn.Module]) -> nn.Module:
    module = named_model[1]
    module.zero_grad(set_to_none=True)
    return module.eval()


def test_contract_attributes(named_model: tuple[str, nn.Module]) -> None:
    name, module = named_model
    info = get_model_info(name)
    assert isinstance(module.input_multiple, int) and module.input_multiple >= 1
    # the node suggests input sizes in these multiples to every model (aspect_matched_size)
    assert SUGGESTED_SIZE_MULTIPLE % module.input_multiple == 0, module.input_multiple
    assert isinstance(module.num_classes, int) and module.num_classes >= 0
    assert ("segmentation" in info.tasks) == (module.num_classes > 0)
    assert len(module.class_names) in (0, module.num_classes)
    assert 0 <= module.min_depth < module.max_depth and math.isfinite(module.max_depth)
    width, height = info.default_input_size
    fixed = module.fixed_input_size
    if fixed is None:
        assert width % module.input_multiple == 0 and height % module.input_multiple == 0
    else:
        assert tuple(fixed) == (width, height)


def test_eval_forward_outputs(model: nn.Module) -> None:
    (width, height), _ = input_sizes(model)
    x = image(width, height)
    with torch.no_grad():
        out = model(x)
        again = model(x)
    assert isinstance(out, dict) and set(out) in EVAL_KEYS
    depth = out["depth"]
    assert depth.dtype == torch.float32 and depth.dim() == 4
    assert depth.shape[:2] == (2, 1) and depth.shape[2] >= 1 and depth.shape[3] >= 1
    assert torch.isfinite(depth).all() and (depth > 0).all()
    if model.num_classes:
        assert set(out) == {"depth", "seg_logits"}
        seg = out["seg_logits"]
        assert seg.shape == (2, model.num_classes, *depth.shape[2:])
        assert torch.isfinite(seg).all()
    else:
        assert set(out) == {"depth"}
    for key in out:
        torch.testing.assert_close(again[key], out[key], rtol=0, atol=0)
    # Eval mode must not mix samples of a batch (e.g. BatchNorm left in training mode).
    with torch.no_grad():
        single = model(x[1:])
    for key in out:
        torch.testing.assert_close(single[key], out[key][1:], rtol=1e-4, atol=1e-5)


def test_forward_keeps_no_state(named_model: tuple[str, nn.Module]) -> None:
    # A fresh instance: the shared one has already run forward in other tests.
    model = build_model(named_model[0]).eval()
    (width, height), _ = input_sizes(model)

    def snapshot() -> dict[str, set[str]]:
        return {name: set(vars(m)) for name, m in model.named_modules()}

    before = snapshot()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        model(image(width, height))
    assert snapshot() == before
    for key, value in model.named_buffers():
        torch.testing.assert_close(value, buffers[key], rtol=0, atol=0, msg=f"eval changed {key}")
    model.train()
    model(image(width, height))
    assert snapshot() == before


def test_training_forward_and_backward(model: nn.Module) -> None:
    (width, height), _ = input_sizes(model)
    with torch.no_grad():
        eval_out = model(image(width, height))
    model.train()
    out = model(image(width, height))
    assert set(eval_out) <= set(out)
    for key in eval_out:
        assert out[key].shape == eval_out[key].shape, key
    loss = sum(t.float().mean() for t in tensors_in(out) if t.requires_grad)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)


def test_bad_input_raises_value_error(model: nn.Module) -> None:
    (width, height), _ = input_sizes(model)
    bad_inputs = [
        torch.randn(3, height, width),
        torch.randn(1, 4, height, width),
        torch.randn(1, height, width, 3),
    ]
    if model.fixed_input_size is not None:
        bad_inputs.append(torch.randn(1, 3, height + 1, width))
    elif model.input_multiple > 1:
        bad_inputs.append(torch.randn(1, 3, height + 1, width))
        bad_inputs.append(torch.randn(1, 3, height, width + model.input_multiple // 2))
    for x in bad_inputs:
        with pytest.raises(ValueError):
            model(x)


def test_onnx_export_parity(model: nn.Module, tmp_path: Path) -> None:
    (width, height), (other_w, other_h) = input_sizes(model)
    path = export_onnx(model, tmp_path / "model.onnx", width, height, dynamic_size=True)
    check_onnx_parity(model, path, width, height)
    # at another size and batch: the graph's H, W and batch axes are dynamic
    check_onnx_parity(model, path, other_w, other_h, batch_size=2, seed=1)
