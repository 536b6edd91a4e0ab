"""MultitaskNet (paper e): architecture, unpooling, the paper's loss and a 2-step training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from depth_perception.checkpoint import load_model
from depth_perception.models import build_model, get_model_info
from depth_perception.models.multitasknet import MultitaskNet, max_unpool2x2
from training.config import load_config
from training.objectives.losses import MultitaskLoss, multitask_depth_loss
from training.trainer import STATE_FILE, build_loss, train
from training.trainer.state import load_train_state


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _reference_parameter_count(num_labels: int) -> int:
    """Parameters of imvinod/MultitaskNet's ``MultiTaskNet`` (models/model.py), counted from its
    layer list: every conv 3x3 with bias, a BatchNorm (weight + bias) after each conv except the
    two score layers; no FC head (``use_class=False``)."""

    def conv(cin: int, cout: int) -> int:
        return cin * cout * 9 + cout

    def cbr(cin: int, cout: int) -> int:
        return conv(cin, cout) + 2 * cout

    vgg = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
    vgg += [(256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    encoder = sum(cbr(i, o) for i, o in vgg)
    decoder_cbrs = [(1024, 1024), (1024, 1024), (1024, 512)]  # stage 5
    decoder_cbrs += [(1024, 1024), (1024, 1024), (1024, 256)]  # stage 4
    decoder_cbrs += [(512, 512), (512, 512), (512, 128)]  # stage 3
    decoder_cbrs += [(256, 256), (256, 64), (128, 64)]  # stages 2 and 1
    decoder = sum(cbr(i, o) for i, o in decoder_cbrs)
    return encoder + 2 * decoder + conv(64, num_labels) + conv(64, 1)


def test_parameter_count_matches_the_reference_code():
    # The public code's 38 labels (void included): 116,676,135, the "~116.7M" of the notes.
    assert _reference_parameter_count(38) == 116_676_135
    model = MultitaskNet(num_classes=38)
    assert sum(p.numel() for p in model.parameters()) == 116_676_135
    # Default: 37 classes (void is the ignore label 255 here), one score-layer row fewer.
    default = build_model("multitasknet")
    expected = _reference_parameter_count(37)
    assert expected == 116_676_135 - (64 * 9 + 1)
    assert sum(p.numel() for p in default.parameters()) == expected
    convs = [m for m in default.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    bns = [m for m in default.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 13


def test_registration_and_contract_attributes():
    info = get_model_info("multitasknet")
    assert info.tasks == ("depth", "segmentation") and info.default_input_size == (224, 224)
    model = build_model("multitasknet", num_classes=14, min_depth=0.5, max_depth=10.0)
    assert (model.input_multiple, model.num_classes) == (32, 14)
    assert (model.min_depth, model.max_depth) == (0.5, 10.0)
    with pytest.raises(ValueError, match="min_depth"):
        MultitaskNet(min_depth=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        MultitaskNet(num_classes=-1)


@pytest.mark.parametrize("size", [(2, 3), (4, 6)])
def test_max_unpool2x2_equals_torch_max_unpool(size):
    g = torch.Generator().manual_seed(0)
    h, w = size
    x = torch.randn(2, 5, 2 * h, 2 * w, generator=g)
    x[0, 0] = 0.0  # ties: torch keeps the first maximum, the unpooling must follow its index
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, indices, 2, 2)
    torch.testing.assert_close(max_unpool2x2(pooled, indices), expected, rtol=0, atol=0)
    assert int((max_unpool2x2(pooled, indices) != 0).sum()) <= pooled.numel()


def test_forward_full_resolution_positive_depth_and_log_depth_in_training():
    torch.manual_seed(0)
    model = MultitaskNet(num_classes=5, min_depth=0.5, max_depth=8.0).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"depth", "seg_logits"}
    assert out["depth"].shape == (1, 1, 64, 96) and out["seg_logits"].shape == (1, 5, 64, 96)
    # The depth head starts near the geometric middle of the range, sqrt(0.5 * 8) = 2 m.
    assert torch.allclose(out["depth"], torch.full_like(out["depth"], 2.0), rtol=0.2)
    model.train()
    train_out = model(x)
    assert set(train_out) == {"depth", "seg_logits", "log_depth"}
    torch.testing.assert_close(train_out["depth"], train_out["log_depth"].exp())
    depth_only = MultitaskNet(num_classes=0).eval()
    with torch.no_grad():
        assert set(depth_only(torch.randn(1, 3, 32, 32))) == {"depth"}
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 64))


# ---------------------------------------------------------------------------------------------
# the paper's loss, against values computed by hand

D = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


def test_depth_loss_hand_value_all_valid():
    # n = 4; sum d^2 = 30; (sum d)^2 = 100; grad_x: (2-1)^2 + (4-3)^2 = 2;
    # grad_y: (3-1)^2 + (4-2)^2 = 8.  L = 30/4 - 100/32 + 10/4 = 6.875
    gt = torch.full_like(D, 0.7)
    loss = multitask_depth_loss(D + gt, gt, torch.ones_like(D, dtype=torch.bool))
    assert float(loss) == pytest.approx(6.875)


def test_depth_loss_hand_value_masked_and_batch_mean():
    valid = torch.tensor([[True, True], [True, False]]).view(1, 1, 2, 2)
    # Invalid pixel (ground truth nan there) is out of every sum, including both gradients
    # through it: n = 3; sum d^2 = 14; sum d = 6; grad_x (row 0): 1; grad_y (col 0): 4.
    # L = 14/3 - 36/18 + 5/3 = 13/3
    gt = torch.tensor([[0.0, 0.0], [0.0, math.nan]]).view(1, 1, 2, 2)
    masked = multitask_depth_loss(D, gt, valid)
    assert float(masked) == pytest.approx(13 / 3)
    # Batch: mean over images; an image with no valid pixel is left out.
    batch_pred = torch.cat([D, D, D])
    batch_gt = torch.cat([torch.zeros_like(D), gt, torch.zeros_like(D)])
    batch_valid = torch.cat([torch.ones_like(valid), valid, torch.zeros_like(valid)])
    loss = multitask_depth_loss(batch_pred, batch_gt, batch_valid)
    assert float(loss) == pytest.approx((6.875 + 13 / 3) / 2)
    # A constant log offset (global scale) costs only half the L2 term: n c^2 - n c^2/2 per n.
    const = multitask_depth_loss(torch.full_like(D, 2.0), torch.zeros_like(D), valid)
    assert float(const) == pytest.approx(4 - 0.5 * 4)


def test_depth_loss_gradient_term_sees_structure_and_no_valid_pixel_is_zero():
    ramp = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    valid = torch.ones_like(ramp, dtype=torch.bool)
    # d = ramp: L2 2/4, scale 4/32, grad_x 2/4, grad_y 0 -> 0.5 - 0.125 + 0.5
    assert float(multitask_depth_loss(ramp, torch.zeros_like(ramp), valid)) == pytest.approx(0.875)
    pred = D.clone().requires_grad_(True)
    zero = multitask_depth_loss(pred, D, torch.zeros_like(valid))
    zero.backward()
    assert (
        float(zero.detach()) == 0.0
        and pred.grad is not None
        and float(pred.grad.abs().sum()) == 0.0
    )
    with pytest.raises(ValueError, match="bool"):
        multitask_depth_loss(D, D, torch.ones_like(D))


def test_multitask_loss_combines_ce_and_depth_with_lambda():
    gt_depth = torch.tensor([[2.0, 2.0], [2.0, 0.0]]).view(1, 2, 2)  # 0: missing
    valid = gt_depth > 0
    pred_depth = (gt_depth.clamp_min(1.0) * torch.exp(D[:, 0])).unsqueeze(1)
    # 2 classes; logits (0, ln 3) everywhere: p(class 1) = 3/4, CE = ln(4/3) for label 1.
    logits = torch.zeros(1, 2, 2, 2)
    logits[:, 1] = math.log(3.0)
    labels = torch.tensor([[[1, 1], [255, 1]]])
    outputs = {"depth": pred_depth, "seg_logits": logits.requires_grad_(True)}
    for lam in (0.5, 0.3):
        terms = MultitaskLoss(seg_lambda=lam)(outputs, gt_depth, valid, labels)
        expected = lam * math.log(4 / 3) + (1 - lam) * 13 / 3
        assert float(terms.total.detach()) == pytest.approx(expected, rel=1e-5)
        assert terms.depth[0] == pytest.approx(13 / 3, rel=1e-5)
        assert terms.seg[0] == pytest.approx(math.log(4 / 3), rel=1e-5)
    # The raw log-depth output wins over log(depth) (the clamped output has no gradient).
    with_log = dict(outputs, log_depth=torch.zeros_like(pred_depth) + math.log(2.0))
    terms = MultitaskLoss()(with_log, gt_depth, valid, labels)
    assert terms.depth[0] == pytest.approx(0.0, abs=1e-6)
    # All pixels ignored: no NaN, the segmentation term is 0.
    terms = MultitaskLoss()(outputs, gt_depth, valid, torch.full_like(labels, 255))
    assert float(terms.total.detach()) == pytest.approx(0.5 * 13 / 3, rel=1e-5) and terms.seg == []
    with pytest.raises(ValueError, match="seg_lambda"):
        MultitaskLoss(seg_lambda=1.5)


def test_recipes_select_the_paper_loss_and_optimiser():
    for name in ("multitasknet_synthetic_indoor", "multitasknet_sunrgbd"):
        cfg = load_config(name)
        assert cfg.model.name == "multitasknet" and cfg.loss.name == "multitask"
        assert cfg.loss.seg_lambda == 0.5 and cfg.loss.ignore_index == 255
        assert (cfg.data.width, cfg.data.height, cfg.train.batch_size) == (224, 224, 4)
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-5, 5e-4)
        assert cfg.optim.lr_decay**25 == pytest.approx(0.1, rel=0.02)
    with pytest.raises(ValueError, match=r"loss\.name"):
        load_config("multitasknet_synthetic_indoor", ["loss.name=huber"])
    with pytest.raises(ValueError, match="seg_lambda"):
        load_config("multitasknet_synthetic_indoor", ["loss.seg_lambda=2"])
    cfg = load_config("multitasknet_synthetic_indoor", ["loss.seg_lambda=0.3"])
    loss = build_loss(cfg, MultitaskNet(num_classes=0))
    assert isinstance(loss, MultitaskLoss) and loss.seg_lambda == 0.3


def test_two_training_steps_on_the_synthetic_recipe(tmp_path):
    cfg = load_config(
        "multitasknet_synthetic_indoor",
        [
            "data.width=64",
            "data.height=64",
            "data.train_length=8",
            "data.val_length=4",
            "data.num_workers=0",
            "train.epochs=1",
            "train.steps_per_epoch=2",
            "train.device=cpu",
            "train.threads=2",
            "train.val_batches=1",
            "train.log_every_steps=1",
            "train.image_every_steps=0",
            "optim.lr=1e-4",
        ],
    )
    result = train(cfg, tmp_path / "run", show_progress=False)
    state = load_train_state(tmp_path / "run" / STATE_FILE)
    assert state.progress.finished and state.progress.global_step == 2
    losses = [h["loss"] for h in state.progress.history if "loss" in h]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(v > 0 for v in losses)
    assert set(result.metrics) >= {"abs_rel", "rmse", "miou"}
    model, meta = load_model(tmp_path / "run" / "final")
    assert meta.model == "multitasknet" and (meta.min_depth, meta.max_depth) == (0.5, 10.0)
    assert model.num_classes == len(meta.class_names) == 14
