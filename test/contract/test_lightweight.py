"""Tests specific to paper d's light-weight network (the generic contract is in
test_model_contract.py)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import mobilenet_v2

from depth_perception.export import check_onnx_parity, export_onnx
from depth_perception.models import build_model
from depth_perception.models.lightweight import (
    CITYSCAPES_CLASSES,
    LightweightDepthNet,
    inverse_log_depth_transform,
    log_depth_transform,
)

torch.set_num_threads(2)

PAPER_PARAMS = 320_000


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_paper() -> None:
    model = build_model("lightweight")
    total = n_params(model)
    assert abs(total - PAPER_PARAMS) / PAPER_PARAMS < 0.15, total
    # MobileNetV2-0.35 without the final 1280-channel conv.
    assert n_params(model.encoder) == 250_208
    assert all(getattr(m, "out_channels", 0) != 1280 for m in model.encoder.modules())


def test_variants_shrink_with_fewer_decoder_blocks() -> None:
    counts = [n_params(build_model(n)) for n in ("lightweight", "lightweight_m", "lightweight_s")]
    counts.append(n_params(build_model("lightweight_xs")))
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 4
    assert [len(build_model(n).decoder) for n in ("lightweight_m", "lightweight_xs")] == [3, 1]


def test_paper_scales_at_1056x320() -> None:
    torch.manual_seed(0)
    model = build_model("lightweight").train()
    out = model(torch.randn(1, 3, 320, 1056))
    expected = [(66, 20), (132, 40), (264, 80), (528, 160)]
    assert model.output_sizes(1056, 320) == expected
    for key, channels in (("depth_scales", 1), ("g_scales", 1), ("seg_scales", 19)):
        assert [(t.shape[3], t.shape[2]) for t in out[key]] == expected, key
        assert all(t.shape[:2] == (1, channels) for t in out[key]), key
    assert out["depth"] is out["depth_scales"][-1]
    assert out["seg_logits"].shape == (1, 19, 160, 528)
    # depth is G^-1 of the raw head output at every scale
    for g, d in zip(out["g_scales"], out["depth_scales"], strict=True):
        torch.testing.assert_close(d, inverse_log_depth_transform(g, 4.0, 80.0))


@pytest.mark.parametrize(
    ("name", "stride"),
    [("lightweight", 2), ("lightweight_m", 4), ("lightweight_s", 8), ("lightweight_xs", 16)],
)
def test_variant_output_at_last_kept_scale(name: str, stride: int) -> None:
    model = build_model(name, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 128))
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == (2, 1, 64 // stride, 128 // stride)
    assert out["seg_logits"].shape == (2, 5, 64 // stride, 128 // stride)


def test_depth_only_model_has_no_seg_outputs() -> None:
    model = build_model("lightweight", num_classes=0)
    assert model.num_classes == 0 and model.class_names == () and len(model.seg_heads) == 0
    x = torch.randn(2, 3, 64, 64)
    assert set(model.eval()(x)) == {"depth"}
    assert set(model.train()(x)) == {"depth", "depth_scales", "g_scales"}


def test_class_names_default() -> None:
    assert build_model("lightweight").class_names == CITYSCAPES_CLASSES
    assert build_model("lightweight_xs", num_classes=3).class_names == (
        "class_0",
        "class_1",
        "class_2",
    )


def test_log_depth_transform_matches_paper() -> None:
    d = torch.tensor([4.0, 80.0, math.sqrt(4.0 * 80.0), 1.0, 200.0])
    g = log_depth_transform(d, 4.0, 80.0)
    # G maps [m, M] onto [0, M]; the geometric mean lands in the middle.
    torch.testing.assert_close(g[:3], torch.tensor([0.0, 80.0, 40.0]))
    assert g[3] < 0 and g[4] > 80
    expected = (math.log(1.0) - math.log(4.0)) * 80.0 / (math.log(80.0) - math.log(4.0))
    assert g[3].item() == pytest.approx(expected)
    torch.testing.assert_close(inverse_log_depth_transform(g, 4.0, 80.0), d)


def test_inverse_transform_clamps_to_finite_positive() -> None:
    g = torch.tensor([-1e9, -1e4, 0.0, 1e4, 1e9, 1e30])
    d = inverse_log_depth_transform(g, 0.5, 10.0)
    assert torch.isfinite(d).all() and (d > 0).all()
    torch.testing.assert_close(d[[0, -1]], torch.tensor([0.5e-3, 10.0e3]))


@pytest.mark.parametrize(("m", "big_m"), [(4.0, 80.0), (0.5, 10.0)])
def test_initial_depth_is_geometric_mean_of_range(m: float, big_m: float) -> None:
    model = build_model("lightweight_s", min_depth=m, max_depth=big_m).eval()
    assert (model.min_depth, model.max_depth) == (m, big_m)
    with torch.no_grad():
        depth = model(torch.randn(1, 3, 64, 64))["depth"]
    torch.testing.assert_close(
        depth, torch.full_like(depth, math.sqrt(m * big_m)), rtol=0.05, atol=0
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decoder_blocks": 5}, "decoder_blocks"),
        ({"decoder_blocks": 0}, "decoder_blocks"),
        ({"min_depth": 10.0, "max_depth": 10.0}, "min_depth < max_depth"),
        ({"min_depth": 0.0}, "min_depth < max_depth"),
        ({"num_classes": -1}, "num_classes"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model("lightweight", **kwargs)


def test_input_not_multiple_of_32_says_how_to_fix() -> None:
    model = build_model("lightweight_xs")
    with pytest.raises(ValueError, match=r"multiples of 32, got 1056x330 .* 1056x352"):
        model(torch.randn(1, 3, 330, 1056))


def test_detached_decoders_reuse_l_weights() -> None:
    torch.manual_seed(1)
    big = build_model("lightweight", num_classes=4)
    # make BN statistics non-trivial so a wrong mapping of weights would show
    big.train()
    with torch.no_grad():
        for _ in range(2):
            big(torch.randn(2, 3, 64, 96))
    big.eval()
    big_state = big.state_dict()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        scales = big.forward_all_scales(x)
    for name, kept in (("lightweight_m", 3), ("lightweight_s", 2), ("lightweight_xs", 1)):
        small = build_model(name, num_classes=4).eval()
        own = small.state_dict()
        assert set(own) <= set(big_state)
        small.load_state_dict({k: big_state[k] for k in own}, strict=True)
        with torch.no_grad():
            out = small(x)
        torch.testing.assert_close(out["depth"], scales["depth_scales"][kept - 1])
        torch.testing.assert_close(out["seg_logits"], scales["seg_scales"][kept - 1])


@pytest.fixture(scope="module")
def imagenet_like_weights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(2)
    return mobilenet_v2(weights=None, width_mult=0.35).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_encoder_weights_load_from_local_file(
    imagenet_like_weights: dict, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"mnv2_035{suffix}"
    if suffix == ".pth":
        torch.save(imagenet_like_weights, path)
    else:
        save_file({k: v.contiguous() for k, v in imagenet_like_weights.items()}, str(path))
    model = build_model("lightweight", encoder_weights=str(path))
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, imagenet_like_weights[f"features.{key}"])


def test_encoder_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="encoder weights not found"):
        build_model("lightweight", encoder_weights=str(tmp_path / "missing.pth"))
    wrong_width = tmp_path / "mnv2_050.pth"
    torch.save(mobilenet_v2(weights=None, width_mult=0.5).state_dict(), wrong_width)
    with pytest.raises(ValueError, match=r"width_mult=0\.35"):
        build_model("lightweight", encoder_weights=str(wrong_width))
    pickled = tmp_path / "pickled.pth"
    torch.save(argparse.Namespace(a=1), pickled)
    with pytest.raises(ValueError, match="no pickle"):
        build_model("lightweight", encoder_weights=str(pickled))


def test_onnx_parity_with_non_trivial_heads(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = LightweightDepthNet(num_classes=6, min_depth=0.5, max_depth=10.0)
    # Fresh heads give near-constant outputs; spread them so the comparison means something.
    with torch.no_grad():
        for head in [*model.depth_heads, *model.seg_heads]:
            head.weight.normal_(std=2.0)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(std=0.1)
                module.running_var.uniform_(0.5, 2.0)
    path = export_onnx(model, tmp_path / "lw.onnx", 96, 64, dynamic_size=True)
    model.eval()
    with torch.no_grad():
        depth = model(torch.randn(1, 3, 96, 160))["depth"]
    assert depth.std() / depth.mean() > 0.02  # outputs really vary across the image
    diffs = check_onnx_parity(model, path, 160, 96, batch_size=2)
    assert set(diffs) == {"depth", "seg_logits"}
    assert model.training is False
