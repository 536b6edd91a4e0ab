"""Losses of the light-weight recipe against hand-computed values.

(training/objectives/losses.py)
"""

from __future__ import annotations

import math

import pytest
import torch

from depth_perception.models import build_model
from training.objectives.losses import (
    MultiScaleDepthSegLoss,
    berhu,
    berhu_loss,
    downsample_depth,
    downsample_labels,
    g_transform,
)


def test_g_transform_hand_values():
    d = torch.tensor([4.0, 80.0, math.sqrt(4.0 * 80.0), 8.0])
    g = g_transform(d, 4.0, 80.0)
    # G(m) = 0, G(M) = M, geometric mean -> M / 2, G(8) = ln 2 * 80 / ln 20.
    expected = torch.tensor([0.0, 80.0, 40.0, math.log(2.0) * 80.0 / math.log(20.0)])
    torch.testing.assert_close(g, expected)
    assert abs(float(g[3]) - 18.5098) < 1e-3


def test_g_transform_rejects_bad_range():
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        g_transform(torch.ones(1), 10.0, 1.0)


def test_berhu_elementwise():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.1, 1.0, 3.0])
    # |x| <= c: |x|; else (x^2 + c^2) / 2c with c = 1.
    expected = torch.tensor([2.5, 0.5, 0.0, 0.1, 1.0, 5.0])
    torch.testing.assert_close(berhu(x, 1.0), expected)
    # c = 0 happens only when every residual is 0 (c = 0.2 max|x|): the loss is 0, not NaN.
    zeros = torch.zeros(3, requires_grad=True)
    out = berhu(zeros, 0.0)
    out.sum().backward()
    assert out.tolist() == [0.0, 0.0, 0.0]
    assert zeros.grad.tolist() == [0.0, 0.0, 0.0]


def test_berhu_loss_tiny_tensor():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]]]], requires_grad=True)
    target = torch.zeros(1, 1, 2, 2)
    valid = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    loss, c = berhu_loss(pred, target, valid)
    # c = 0.2 * 5 = 1; terms 0, 1, (4 + 1) / 2, (25 + 1) / 2 -> mean 16.5 / 4.
    assert float(c) == pytest.approx(1.0)
    assert float(loss.detach()) == pytest.approx(4.125)
    loss.backward()
    # c is a constant: d/dx = sign(x) in the L1 part, x / c beyond; divided by 4 pixels.
    torch.testing.assert_close(pred.grad, torch.tensor([[[[0.0, 0.25], [0.5, 1.25]]]]))


def test_berhu_loss_masks_and_batch_threshold():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]]]])
    valid = torch.tensor([[[[True, True], [True, False]]]])
    loss, c = berhu_loss(pred, torch.zeros_like(pred), valid)
    # The invalid 5 is ignored: c = 0.2 * 2 = 0.4; terms 0, (1 + .16) / .8, (4 + .16) / .8.
    assert float(c) == pytest.approx(0.4)
    assert float(loss) == pytest.approx((0.0 + 1.45 + 5.2) / 3)


def test_berhu_loss_no_valid_pixel_is_zero_with_graph():
    pred = torch.ones(1, 1, 2, 2, requires_grad=True)
    loss, _ = berhu_loss(pred, pred.detach(), torch.zeros(1, 1, 2, 2, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph
    assert pred.grad is not None


def test_downsample_depth_min_pool_is_validity_aware():
    depth = torch.tensor(
        [
            [
                [
                    [1.0, 2.0, 9.0, 9.0],
                    [3.0, 4.0, 9.0, 9.0],
                    [5.0, 6.0, 0.0, 0.0],
                    [7.0, 8.0, 0.0, 0.0],
                ]
            ]
        ]
    )
    valid = depth > 0
    valid[0, 0, 0, 0] = False  # the 1.0 is not a measurement: must not win the min
    out, out_valid = downsample_depth(depth, valid, (2, 2), "min")
    torch.testing.assert_close(out, torch.tensor([[[[2.0, 9.0], [5.0, 1.0]]]]))
    assert out_valid.tolist() == [[[[True, True], [True, False]]]]


def test_downsample_depth_nearest():
    depth = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, 0, 2, 2] = False
    out, out_valid = downsample_depth(depth, valid, (2, 2), "nearest")
    # Nearest samples rows/cols 0 and 2: values 1, 3, 9, 11; (2, 2) is invalid.
    torch.testing.assert_close(out, torch.tensor([[[[1.0, 3.0], [9.0, 1.0]]]]))
    assert out_valid.tolist() == [[[[True, True], [True, False]]]]


def test_downsample_labels_nearest_keeps_ids():
    labels = torch.tensor([[[0, 0, 7, 7], [0, 0, 7, 7], [255, 255, 3, 3], [255, 255, 3, 3]]])
    assert downsample_labels(labels, (2, 2)).tolist() == [[[0, 7], [255, 3]]]


def _fake_outputs(gt_depth, valid, offsets, num_classes, loss):
    g_scales, seg_scales = [], []
    for size, delta in zip(((2, 2), (4, 4)), offsets, strict=True):
        gt, _ = downsample_depth(gt_depth, valid, size, "min")
        g_scales.append((loss.g(gt) + delta).requires_grad_(True))
        seg_scales.append(torch.zeros(1, num_classes, *size, requires_grad=True))
    return {"g_scales": g_scales, "seg_scales": seg_scales}


def test_multiscale_combination_hand_value():
    loss = MultiScaleDepthSegLoss(0.5, 10.0)
    gt = torch.linspace(1.0, 8.0, 16).view(1, 1, 4, 4)
    valid = torch.ones_like(gt, dtype=torch.bool)
    labels = torch.tensor([[[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2], [0, 1, 2, 255]]])
    outputs = _fake_outputs(gt, valid, (1.0, 0.5), 3, loss)
    terms = loss(outputs, gt, valid, labels)
    # Constant G residual delta: c = 0.2|delta| < |delta| -> BerHu = 1.04 delta^2 / 0.4|delta|
    # = 2.6|delta|. Zero logits: CE = ln 3 at every labelled pixel.
    expected = 0.25 * (2.6 * 1.0 + 2.6 * 0.5) + 0.75 * 2 * math.log(3.0)
    assert float(terms.total.detach()) == pytest.approx(expected, rel=1e-5)
    assert terms.depth == pytest.approx([2.6, 1.3], rel=1e-5)
    assert terms.seg == pytest.approx([math.log(3.0)] * 2, rel=1e-5)
    assert terms.berhu_c == pytest.approx([0.2, 0.1], rel=1e-5)
    terms.total.backward()
    assert all(g.grad is not None for g in outputs["g_scales"] + outputs["seg_scales"])


def test_multiscale_all_ignored_labels_give_no_nan():
    loss = MultiScaleDepthSegLoss(0.5, 10.0)
    gt = torch.full((1, 1, 4, 4), 2.0)
    valid = torch.ones_like(gt, dtype=torch.bool)
    labels = torch.full((1, 4, 4), 255)
    outputs = _fake_outputs(gt, valid, (1.0, 1.0), 3, loss)
    terms = loss(outputs, gt, valid, labels)
    assert terms.seg == [0.0, 0.0]
    assert float(terms.total.detach()) == pytest.approx(0.25 * 2 * 2.6, rel=1e-5)


def test_single_scale_model_outputs_use_g_of_depth():
    # A model without per-scale outputs: one scale, G applied to its metric depth.
    loss = MultiScaleDepthSegLoss(0.5, 10.0, seg_weight=0.0)
    gt = torch.full((1, 1, 4, 4), 2.0)
    valid = torch.ones_like(gt, dtype=torch.bool)
    pred = torch.full((1, 1, 4, 4), 4.0, requires_grad=True)
    terms = loss({"depth": pred}, gt, valid)
    delta = float(loss.g(torch.tensor(4.0)) - loss.g(torch.tensor(2.0)))
    assert float(terms.total.detach()) == pytest.approx(0.25 * 2.6 * delta, rel=1e-5)


def test_loss_reaches_every_parameter_of_lightweight():
    # DDP needs a gradient for every parameter: all decoder blocks and heads take part.
    torch.manual_seed(0)
    model = build_model("lightweight", num_classes=4, min_depth=0.5, max_depth=10.0).train()
    loss = MultiScaleDepthSegLoss(0.5, 10.0)
    x = torch.randn(2, 3, 64, 64)
    depth = torch.rand(2, 1, 64, 64) * 9 + 0.6
    valid = torch.rand(2, 1, 64, 64) > 0.3
    labels = torch.randint(0, 4, (2, 64, 64))
    terms = loss(model(x), depth, valid, labels)
    assert len(terms.depth) == 4 and len(terms.seg) == 4
    terms.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert math.isfinite(float(terms.total.detach()))


def test_loss_config_validation():
    with pytest.raises(ValueError, match="depth_downsample"):
        MultiScaleDepthSegLoss(0.5, 10.0, depth_downsample="mean")
    with pytest.raises(ValueError, match="finite"):
        MultiScaleDepthSegLoss(0.5, math.inf)
