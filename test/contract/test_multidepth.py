"""MultiDepth (paper b): architecture, depth normalisation and intervals, the multi-task loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torchvision.models import resnet101

import depth_perception.models.multidepth as md
from depth_perception.export import export_onnx
from depth_perception.models import build_model, get_model_info
from training.config import ExperimentConfig, LossConfig
from training.objectives.multidepth import (
    IGNORE_CLASS,
    MultiDepthLoss,
    MultiDepthObjective,
    build_multidepth,
    multidepth_loss_from_args,
    uncertainty_weights,
)

# Parameters of the public MultiDepth code (encoder and both heads), reference notes (b).
PUBLIC_CODE_PARAMETERS = 88.8e6
LN124 = math.log(124.0)  # ln(d_max - d_min + 1) for the paper's 2 m .. 125 m


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> md.MultiDepthNet:
    torch.manual_seed(0)
    return build_model("multidepth")


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------
# architecture


def test_registration(model):
    info = get_model_info("multidepth")
    assert info.tasks == ("depth",) and info.metric
    assert info.default_args() == {
        "min_depth": 2.0,
        "max_depth": 125.0,
        "num_bins": 32,
        "classification_head": True,
        "keep_classification": False,
        "encoder_weights": None,
    }
    assert model.input_multiple == 8 and model.num_classes == 0
    assert (model.min_depth, model.max_depth, model.num_bins) == (2.0, 125.0, 32)


def test_parameter_count_matches_the_public_code(model):
    total = _count(model)
    assert abs(total - PUBLIC_CODE_PARAMETERS) / PUBLIC_CODE_PARAMETERS < 0.15
    # torchvision ResNet-101 without fc; the public code's deep stem adds ~0.1M.
    assert _count(model.encoder) == 42_500_160
    # one PSP head: 4 x (1x1 conv 2048->512 + BN) + 3x3 conv 4096->512 + BN + 1x1 conv 512->C
    psp = 4 * (2048 * 512 + 2 * 512) + 4096 * 512 * 9 + 2 * 512

    def head(c):
        return psp + 512 * c + c

    assert _count(model.regression_head) == head(1)
    assert _count(model.classification_head) == head(32)
    assert total == 42_500_160 + head(1) + head(32) + 2  # + (s_reg, s_cls)
    baseline = md.MultiDepthNet(classification_head=False)
    assert _count(baseline) == 42_500_160 + head(1)
    assert baseline.log_vars is None and list(baseline.no_weight_decay_parameters()) == []


def test_encoder_is_dilated_to_output_stride_8(model):
    x = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        features = model.encoder.eval()(x)
    assert features.shape == (1, 2048, 2, 3)
    dilations = {m.dilation for n, m in model.encoder.named_modules() if n.endswith("conv2")}
    assert dilations == {(1, 1), (2, 2), (4, 4)}


@pytest.mark.parametrize("size", [(8, 12), (9, 21), (3, 5), (44, 152), (1, 1)])
def test_adaptive_avg_pool_equals_torch(size):
    x = torch.randn(2, 5, *size)
    for bins in (6, 3, 2, 1):
        torch.testing.assert_close(
            md.adaptive_avg_pool2d(x, bins), F.adaptive_avg_pool2d(x, bins), rtol=0, atol=1e-6
        )


def test_log_vars_init_and_no_weight_decay(model):
    torch.testing.assert_close(model.log_vars.detach(), torch.tensor([1.0, 1.0]))
    names = dict(model.named_parameters())
    assert list(model.no_weight_decay_parameters()) == ["log_vars"]
    assert names["log_vars"] is model.log_vars


def test_eval_forward_skips_the_classification_head(model):
    calls = []
    hook = model.classification_head.register_forward_hook(lambda *_: calls.append(1))
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 16, 24))
        assert set(out) == {"depth"} and calls == []
        assert out["depth"].shape == (2, 1, 16, 24)
        assert (out["depth"] >= 2.0).all() and (out["depth"] <= 125.0 + 1e-3).all()
        model.train()
        out = model(torch.randn(2, 3, 16, 24))
        assert calls == [1]
        assert set(out) == {"depth", "depth_norm", "depth_class_logits"}
        assert out["depth_norm"].shape == (2, 1, 16, 24)
        assert out["depth_class_logits"].shape == (2, 32, 16, 24)
        # depth is the inverse normalisation of the clamped regression output
        torch.testing.assert_close(
            out["depth"], md.denormalize_depth(out["depth_norm"], 2.0, 125.0)
        )
    finally:
        hook.remove()
        model.eval()


def test_keep_classification_adds_logits_in_eval_and_is_not_exported(tmp_path):
    torch.manual_seed(0)
    keep = md.MultiDepthNet(num_bins=8, keep_classification=True).eval()
    with torch.no_grad():
        out = keep(torch.randn(1, 3, 16, 16))
    assert set(out) == {"depth", "depth_class_logits"}
    assert out["depth_class_logits"].shape == (1, 8, 16, 16)
    with pytest.raises(ValueError, match="eval-mode outputs"):
        export_onnx(keep, tmp_path / "keep.onnx", 16, 16)
    with pytest.raises(ValueError, match="classification head"):
        md.MultiDepthNet(classification_head=False, keep_classification=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_depth": 0.0},
        {"min_depth": 10.0, "max_depth": 5.0},
        {"max_depth": math.inf},
        {"num_bins": 1},
        {"num_bins": 2.5},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        md.MultiDepthNet(**kwargs)


def test_encoder_weights_load_from_a_torchvision_state_dict(tmp_path: Path):
    torch.manual_seed(1)
    reference = resnet101(weights=None)
    path = tmp_path / "resnet101.pth"
    torch.save(reference.state_dict(), path)
    model = md.MultiDepthNet(encoder_weights=str(path), classification_head=False)
    torch.testing.assert_close(
        model.encoder.layer4[2].conv3.weight, reference.layer4[2].conv3.weight
    )
    torch.testing.assert_close(model.encoder.bn1.running_var, reference.bn1.running_var)
    torch.save({"conv1.weight": reference.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing"):
        model.load_encoder_weights(tmp_path / "partial.pth")
    with pytest.raises(FileNotFoundError):
        model.load_encoder_weights(tmp_path / "none.pth")


# ------------------------------------------------------------------------------------------
# depth normalisation (Eq. 2) and intervals


def test_normalisation_hand_values_and_round_trip():
    depth = torch.tensor([1.0, 2.0, 10.0, 125.0, 300.0])
    t = md.normalize_depth(depth, 2.0, 125.0)
    expected = torch.tensor([0.0, 0.0, math.log(9.0) / LN124, 1.0, 1.0])
    torch.testing.assert_close(t, expected)
    back = md.denormalize_depth(t, 2.0, 125.0)
    torch.testing.assert_close(back, torch.tensor([2.0, 2.0, 10.0, 125.0, 125.0]))
    # out-of-range predictions are clamped to the depth range; indoors stays positive too
    torch.testing.assert_close(
        md.denormalize_depth(torch.tensor([-3.0, 4.0]), 0.5, 10.0), torch.tensor([0.5, 10.0])
    )


def test_depth_intervals_are_equal_in_normalised_log_space():
    # t = ln 9 / ln 124 = 0.4558 -> interval 1 of 4; t = 1 (d_max and beyond) -> last interval
    depth = torch.tensor([2.0, 10.0, 125.0, 500.0])
    assert md.depth_to_class(depth, 2.0, 125.0, 4).tolist() == [0, 1, 3, 3]
    # the interval edges: t = k / n exactly
    edges = torch.exp(torch.arange(4) / 4 * LN124) + 1.0
    assert md.depth_to_class(edges + 1e-3, 2.0, 125.0, 4).tolist() == [0, 1, 2, 3]
    centres = md.class_to_depth(torch.arange(4), 2.0, 125.0, 4)
    assert md.depth_to_class(centres, 2.0, 125.0, 4).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------
# the loss, against hand-computed values

# One image, four pixels in a row: depth 2 m, 10 m, missing, 200 m (clipped to 125 m).
DEPTH = torch.tensor([2.0, 10.0, 0.0, 200.0]).view(1, 1, 1, 4)
VALID = torch.tensor([True, True, False, True]).view(1, 1, 1, 4)
PRED_T = [0.1, 0.5, 0.9, 0.7]
# 4 intervals: targets 0, 1, (ignored), 3
LOGITS = [[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
T1 = math.log(9.0) / LN124
L_REG = (0.1**2 + (0.5 - T1) ** 2 + 0.3**2) / 3
L_CLS = ((math.log(math.e**2 + 3) - 2.0) + math.log(4.0) + (math.log(3 + math.e) - 1.0)) / 3


def _outputs() -> dict[str, torch.Tensor]:
    pred = torch.tensor(PRED_T).view(1, 1, 1, 4).requires_grad_(True)
    logits = torch.tensor(LOGITS).t().reshape(1, 4, 1, 4).contiguous().requires_grad_(True)
    return {"depth_norm": pred, "depth_class_logits": logits}


def test_targets_mark_missing_depth_ignored():
    loss = MultiDepthLoss(2.0, 125.0, 4)
    t, classes, mask = loss.targets(DEPTH, VALID)
    torch.testing.assert_close(t[mask], torch.tensor([0.0, T1, 1.0]))
    assert classes.tolist() == [[[0, 1, IGNORE_CLASS, 3]]]


@pytest.mark.parametrize(
    ("weighting", "weights", "expected"),
    [
        ("equal", (1.0, 1.0), L_REG + L_CLS),
        ("fixed", (2.0, 0.25), 2.0 * L_REG + 0.25 * L_CLS),
        ("regression_only", (1.0, 1.0), L_REG),
    ],
)
def test_fixed_weightings_hand_values(weighting, weights, expected):
    loss = MultiDepthLoss(2.0, 125.0, 4, weighting=weighting, weights=weights)
    out = _outputs()
    terms = loss(out, DEPTH, VALID, torch.ones(2, requires_grad=True))
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    assert terms.parts["loss_reg"] == pytest.approx(L_REG, rel=1e-5)
    if weighting != "regression_only":
        assert terms.parts["loss_cls"] == pytest.approx(L_CLS, rel=1e-5)
    terms.total.backward()
    # missing depth contributes nothing to either task
    assert out["depth_norm"].grad[0, 0, 0, 2] == 0
    assert (out["depth_class_logits"].grad[0, :, 0, 2] == 0).all()


@pytest.mark.parametrize("s", [(1.0, 1.0), (0.3, -0.7)])
def test_uncertainty_weighting_is_eq3_with_its_gradient(s):
    s_reg, s_cls = s
    log_vars = torch.tensor(s, requires_grad=True)
    terms = MultiDepthLoss(2.0, 125.0, 4)(_outputs(), DEPTH, VALID, log_vars)
    w_reg, w_cls = 0.5 * math.exp(-(s_reg**2)), math.exp(-(s_cls**2))
    expected = w_reg * L_REG + 0.5 * s_reg + w_cls * L_CLS + 0.5 * s_cls
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    assert terms.parts["w_reg"] == pytest.approx(w_reg, rel=1e-6)
    assert terms.parts["w_cls"] == pytest.approx(w_cls, rel=1e-6)
    assert terms.parts["s_reg"] == pytest.approx(s_reg)
    terms.total.backward()
    # d/ds [c exp(-s^2) L + s / 2] = -2 s c exp(-s^2) L + 1/2
    grad = [-2 * s_reg * w_reg * L_REG + 0.5, -2 * s_cls * w_cls * L_CLS + 0.5]
    torch.testing.assert_close(log_vars.grad, torch.tensor(grad), rtol=1e-5, atol=1e-6)
    if s == (1.0, 1.0):  # at the paper's initialisation
        torch.testing.assert_close(
            log_vars.grad,
            torch.tensor([-math.exp(-1) * L_REG + 0.5, -2 * math.exp(-1) * L_CLS + 0.5]),
        )


def test_uncertainty_weighting_kendall_form():
    log_vars = torch.tensor([0.3, -0.7], requires_grad=True)
    loss = MultiDepthLoss(2.0, 125.0, 4, uncertainty_form="kendall")
    terms = loss(_outputs(), DEPTH, VALID, log_vars)
    w_reg, w_cls = 0.5 * math.exp(-0.3), math.exp(0.7)
    assert terms.total.item() == pytest.approx(w_reg * L_REG + w_cls * L_CLS - 0.2, rel=1e-5)
    terms.total.backward()
    torch.testing.assert_close(
        log_vars.grad, torch.tensor([-w_reg * L_REG + 0.5, -w_cls * L_CLS + 0.5])
    )
    with pytest.raises(ValueError):
        uncertainty_weights(log_vars, "other")


def test_no_valid_pixel_gives_zero_loss_with_graph():
    out = _outputs()
    terms = MultiDepthLoss(2.0, 125.0, 4)(
        out, torch.zeros_like(DEPTH), torch.zeros_like(VALID), torch.ones(2)
    )
    # only the regularisers 0.5 * s_reg + 0.5 * s_cls remain
    assert terms.total.item() == pytest.approx(1.0)
    terms.total.backward()
    assert (out["depth_norm"].grad == 0).all() and (out["depth_class_logits"].grad == 0).all()


def test_loss_args_are_validated(model):
    base = {"min_depth": 2.0, "max_depth": 125.0}
    assert multidepth_loss_from_args(model, {}).weighting == "uncertainty"
    loss = multidepth_loss_from_args(model, {"weighting": "fixed", "weights": [1.0, 0.5]})
    assert loss.weights == (1.0, 0.5) and loss.num_bins == 32
    bad = [
        {"weigthing": "equal"},
        {"weighting": "learned"},
        {"weighting": "fixed"},
        {"weighting": "equal", "weights": [1, 1]},
        {"weighting": "fixed", "weights": [1.0]},
        {"uncertainty_form": "squared"},
    ]
    for args in bad:
        with pytest.raises(ValueError):
            multidepth_loss_from_args(model, args)
    baseline = md.MultiDepthNet(**base, classification_head=False)
    assert multidepth_loss_from_args(baseline, {"weighting": "regression_only"}).weighting
    with pytest.raises(ValueError, match="classification_head"):
        multidepth_loss_from_args(baseline, {"weighting": "uncertainty"})
    with pytest.raises(ValueError, match="multidepth"):
        multidepth_loss_from_args(torch.nn.Conv2d(1, 1, 1), {})


def test_objective_trains_log_vars_on_the_model(model):
    cfg = ExperimentConfig(loss=LossConfig(name="multidepth", args={"weighting": "uncertainty"}))
    objective = build_multidepth(cfg, model)
    assert isinstance(objective, MultiDepthObjective)
    torch.manual_seed(0)
    depth = torch.rand(2, 1, 16, 16) * 100 + 2
    valid = torch.rand(2, 1, 16, 16) < 0.3  # sparse, LiDAR-like
    data = {"image": torch.randn(2, 3, 16, 16), "depth": depth * valid, "valid": valid}
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        outputs, terms = objective(model, data)
        terms.total.backward()
    finally:
        model.eval()
    assert "depth" in outputs and math.isfinite(terms.total.item())
    reg, cls = terms.parts["loss_reg"], terms.parts["loss_cls"]
    assert cls == pytest.approx(math.log(32), rel=0.5)  # an untrained 32-way classifier
    expected = [-math.exp(-1) * reg + 0.5, -2 * math.exp(-1) * cls + 0.5]
    torch.testing.assert_close(model.log_vars.grad, torch.tensor(expected), rtol=1e-4, atol=1e-5)
    assert model.regression_head.classifier.weight.grad.abs().sum() > 0
    assert model.classification_head.classifier.weight.grad.abs().sum() > 0
    assert model.encoder.conv1.weight.grad.abs().sum() > 0
