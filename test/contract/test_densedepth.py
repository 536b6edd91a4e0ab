"""DenseDepth-201 (paper c): frozen DenseNet-201 encoder, the paper's decoder and init, L1 loss."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import densenet201

import depth_perception.models.densedepth as dd
from depth_perception.models import build_model, get_model_info
from training.config import ExperimentConfig, LossConfig
from training.objectives.l1 import L1Objective, build_l1, masked_l1

# Paper c: decoder conv channels 1920 -> 1024 -> 1024 -> 512 -> ... -> 64 -> 1.
PAPER_CHANNELS = [1920, 1024, 1024, 512, 512, 256, 256, 128, 128, 64, 1]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> dd.DenseDepth201:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_model("densedepth201")


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_registration(model):
    info = get_model_info("densedepth201")
    assert info.tasks == ("depth",) and info.metric
    assert info.default_input_size == (640, 480)
    assert model.input_multiple == 32 and model.num_classes == 0
    assert (model.min_depth, model.max_depth) == (0.1, 10.0)


def test_encoder_is_densenet201_features(model):
    # DenseDepth's reference count for the DenseNet-201 encoder: 18.09M
    assert sum(p.numel() for p in model.encoder.parameters()) == 18_092_928
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 64, 96))
    assert features.shape == (1, 1920, 2, 3)


def test_decoder_follows_the_paper(model):
    convs = _convs(model.decoder)
    assert [convs[0].in_channels] + [c.out_channels for c in convs] == PAPER_CHANNELS
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    upsamples = [m for m in model.decoder.modules() if isinstance(m, nn.Upsample)]
    assert len(upsamples) == 5
    assert all(u.mode == "nearest" and u.scale_factor == 2 for u in upsamples)
    # BN + ReLU after every conv but the output conv
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.decoder.modules()) == 9
    assert isinstance(model.decoder[-1][-1], nn.Conv2d)


def test_decoder_init_is_the_papers_normal(model):
    for conv in _convs(model.decoder):
        std = 1.0 / math.sqrt(5 * conv.in_channels)
        weight = conv.weight.detach()
        tolerance = 4 / math.sqrt(weight.numel())  # ~ 4 sigma of the sample std estimate
        assert abs(weight.std().item() / std - 1) < max(tolerance, 0.01)
        assert abs(weight.mean().item()) < 4 * std / math.sqrt(weight.numel())
        assert (conv.bias == 0).all()


def test_frozen_encoder_costs_no_gradient(model):
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    grad_enabled = []
    hook = model.encoder.register_forward_hook(
        lambda *_: grad_enabled.append(torch.is_grad_enabled())
    )
    stats = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    try:
        model.train()
        assert not model.encoder.training and model.decoder.training
        out = model(torch.randn(2, 3, 64, 64))
        assert set(out) == {"depth", "depth_raw"}
        out["depth_raw"].mean().backward()
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
        model.eval()
    assert grad_enabled == [False]
    # BatchNorm statistics of the frozen encoder did not move in training mode
    for key, value in model.encoder.state_dict().items():
        if key in stats:
            torch.testing.assert_close(value, stats[key], rtol=0, atol=0)


def test_unfrozen_encoder_trains():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without weights when not frozen
        model = dd.DenseDepth201(freeze_encoder=False)
    model.train()
    assert model.encoder.training
    assert all(p.requires_grad for p in model.parameters())
    features = []
    model.encoder.register_forward_hook(lambda _m, _i, out: features.append(out))
    model(torch.randn(2, 3, 32, 32))
    # the encoder output is in the autograd graph (a backward through DenseNet-201 is slow)
    assert features[0].requires_grad and features[0].grad_fn is not None


def test_frozen_random_encoder_warns():
    with pytest.warns(UserWarning, match="encoder_weights"):
        dd.DenseDepth201()


def test_output_full_resolution_within_the_depth_range(model):
    with torch.no_grad():
        model.eval()
        out = model(torch.randn(2, 3, 64, 96))
    assert set(out) == {"depth"} and out["depth"].shape == (2, 1, 64, 96)
    assert (out["depth"] >= 0.1).all() and (out["depth"] <= 10.0).all()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 80))


def test_encoder_weights_load_from_torchvision_state_dicts(tmp_path: Path):
    torch.manual_seed(3)
    reference = densenet201(weights=None)
    state = reference.state_dict()
    # old-style keys ("norm.1") as in the ImageNet files torchvision's own loader rewrites
    # and without BatchNorm's num_batches_tracked, which such old files predate
    old = {
        re.sub(r"\.(norm|conv|relu)([12])\.", r".\1.\2.", k): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    assert any(".norm.1." in k for k in old)
    for name, weights in (("new.pth", state), ("old.pth", old)):
        torch.save(weights, tmp_path / name)
        model = dd.DenseDepth201(encoder_weights=str(tmp_path / name))
        torch.testing.assert_close(
            model.encoder.denseblock4.denselayer32.conv2.weight,
            reference.features.denseblock4.denselayer32.conv2.weight,
        )
        torch.testing.assert_close(
            model.encoder.norm5.running_mean, reference.features.norm5.running_mean
        )
        assert not any(p.requires_grad for p in model.encoder.parameters())
    torch.save({"features.conv0.weight": state["features.conv0.weight"]}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing"):
        dd.DenseDepth201(encoder_weights=str(tmp_path / "bad.pth"))


@pytest.mark.parametrize("kwargs", [{"min_depth": 0.0}, {"min_depth": 5.0, "max_depth": 1.0}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        dd.DenseDepth201(**kwargs)


# ------------------------------------------------------------------------------------------
# the L1 objective


def test_masked_l1_hand_value():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).requires_grad_(True)
    gt = torch.tensor([1.5, 0.0, 1.0, 4.25]).view(1, 1, 2, 2)
    valid = gt > 0
    loss = masked_l1(pred, gt, valid)
    assert loss.item() == pytest.approx((0.5 + 2.0 + 0.25) / 3)
    loss.backward()
    assert pred.grad.view(-1).tolist() == pytest.approx([-1 / 3, 0.0, 1 / 3, -1 / 3])
    zero = masked_l1(pred, gt, torch.zeros_like(valid))
    assert zero.item() == 0 and zero.requires_grad


def test_l1_objective_uses_the_unclamped_output(model):
    objective = build_l1(ExperimentConfig(loss=LossConfig(name="l1")), model)
    assert isinstance(objective, L1Objective)
    raw = torch.tensor([-1.0, 2.0, 12.0, 5.0]).view(1, 1, 2, 2).requires_grad_(True)
    outputs = {"depth": raw.clamp(0.1, 10.0), "depth_raw": raw}
    depth = torch.tensor([1.0, 2.0, 9.0, 0.0]).view(1, 1, 2, 2)
    terms = objective.loss(outputs, depth, depth > 0)
    assert terms.total.item() == pytest.approx((2.0 + 0.0 + 3.0) / 3)
    assert terms.parts["loss_l1"] == pytest.approx(5.0 / 3)
    terms.total.backward()
    assert raw.grad.view(-1).tolist() == pytest.approx([-1 / 3, 0.0, 1 / 3, 0.0])
    # ground truth of twice the size: nearest sampling, missing depth stays missing
    big = depth.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    again = objective.loss({"depth": raw.detach().clamp(0.1, 10.0)}, big, big > 0)
    assert again.total.item() == pytest.approx((0.9 + 0.0 + 1.0) / 3)  # no depth_raw: depth
    with pytest.raises(ValueError, match=r"loss\.args"):
        build_l1(ExperimentConfig(loss=LossConfig(name="l1", args={"beta": 1})), model)


def test_l1_objective_trains_the_decoder_only(model):
    objective = build_l1(ExperimentConfig(loss=LossConfig(name="l1")), model)
    torch.manual_seed(0)
    data = {
        "image": torch.randn(2, 3, 32, 32),
        "depth": torch.rand(2, 1, 32, 32) * 9 + 0.5,
        "valid": torch.ones(2, 1, 32, 32, dtype=torch.bool),
    }
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        outputs, terms = objective(model, data)
        terms.total.backward()
    finally:
        model.eval()
    assert outputs["depth"].shape == (2, 1, 32, 32)
    assert math.isfinite(terms.total.item())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())
    model.zero_grad(set_to_none=True)
