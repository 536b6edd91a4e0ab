"""training.tools: pre-trained encoder files, training cost per variant, transfer study."""

import json
import warnings
from pathlib import Path

import pytest
import torch
from torchvision.models import densenet201

from depth_perception.models import build_model
from training.tools import pretrain_encoder, train_cost, transfer_study

RECIPE = "training/configs/densedepth201_paper_c_repro.yaml"
# 32x32 frames and tiny batches keep DenseNet-201 affordable on the test machine.
SMALL = ["data.width=32", "data.height=32", "train.batch_size=2"]


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "encoder.pth"
    args = pretrain_encoder.build_parser().parse_args(
        [
            "--out",
            str(out),
            "--width",
            "32",
            "--height",
            "32",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--val-length",
            "2",
            "--log-every",
            "1",
            "--eval-every",
            "2",
            "--num-workers",
            "0",
        ]
    )
    pretrain_encoder.pretrain(args)
    return out


def test_pretrained_file_is_a_torchvision_densenet201_state_dict(encoder_file):
    state = torch.load(encoder_file, weights_only=True)  # no pickle needed
    record = json.loads(encoder_file.with_suffix(".json").read_text())
    net = densenet201(weights=None, num_classes=len(record["class_names"]))
    net.load_state_dict(state, strict=True)  # exactly torchvision's key set and shapes
    # Trained in train mode: BatchNorm statistics moved off their initial values.
    assert float(state["features.norm0.running_mean"].abs().sum()) > 0
    assert [h["step"] for h in record["history"]] == [1, 2]
    assert {"val_miou", "val_pixel_acc", "val_loss"} <= set(record["history"][-1])


def test_densedepth201_reads_the_pretrained_file_like_imagenet_weights(encoder_file):
    state = torch.load(encoder_file, weights_only=True)
    model = build_model("densedepth201", encoder_weights=str(encoder_file))
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, state[f"features.{key}"], rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_segment_gives_per_pixel_logits_from_the_classifier():
    net = densenet201(weights=None, num_classes=5).eval()
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        logits = pretrain_encoder.segment(net, x)
        pooled = net(x)  # torchvision: classifier of the averaged features
    assert logits.shape == (1, 5, 64, 32)
    # The classifier is linear, so averaging its per-position logits gives the pooled logits
    # (bilinear upsampling of the 2x1 map keeps the mean of the two positions).
    feats = torch.relu(net.features(x))
    per_pos = torch.einsum("bchw,kc->bk", feats, net.classifier.weight) / 2 + net.classifier.bias
    torch.testing.assert_close(per_pos, pooled, rtol=1e-4, atol=1e-4)


def test_pretrain_refuses_sizes_the_encoder_cannot_take(tmp_path):
    args = pretrain_encoder.build_parser().parse_args(
        ["--out", str(tmp_path / "e.pth"), "--width", "40"]
    )
    with pytest.raises(ValueError, match="multiples of 32"):
        pretrain_encoder.pretrain(args)
    assert not (tmp_path / "e.pth").exists()


def test_parse_variant():
    v = train_cost.parse_variant("scratch=model.args.freeze_encoder=false,train.seed=1")
    assert v.name == "scratch"
    assert v.overrides == ["model.args.freeze_encoder=false", "train.seed=1"]
    assert train_cost.parse_variant("plain=").overrides == []
    with pytest.raises(Exception, match="expected NAME"):
        train_cost.parse_variant("no_equals_sign")
    with pytest.raises(Exception, match="lacks"):
        train_cost.parse_variant("x=a=1,b")


def test_train_cost_shows_a_frozen_encoder_costs_no_gradients(encoder_file):
    variants = [
        train_cost.Variant("frozen", [*SMALL, f"model.args.encoder_weights={encoder_file}"]),
        train_cost.Variant("scratch", [*SMALL, "model.args.freeze_encoder=false"]),
    ]
    frozen, scratch = train_cost.measure(RECIPE, variants, rounds=1, warmup=0, rss_steps=1)
    enc = frozen["by_module"]["encoder"]
    assert enc["params"] > 18_000_000 and enc["requires_grad"] == 0 and enc["with_grad"] == 0
    dec = frozen["by_module"]["decoder"]["params"]
    assert frozen["params_in_optimiser"] == frozen["params_with_grad"] == dec
    assert scratch["params_in_optimiser"] == scratch["params_with_grad"] == scratch["params"]
    assert frozen["grad_mb"] == pytest.approx(dec * 4 / 2**20)
    assert frozen["optimiser_state_mb"] == pytest.approx(2 * frozen["grad_mb"])
    # No graph through the frozen encoder: autograd keeps far fewer activations.
    assert frozen["saved_activations_mb"] < 0.5 * scratch["saved_activations_mb"]
    assert frozen["peak_rss_mb"] > 0 and scratch["peak_rss_mb"] > 0
    table = train_cost.format_table([frozen, scratch])
    assert table.count("\n") == 3 and "| frozen |" in table


def test_transfer_study_trains_snapshots_scores_and_plots(tmp_path):
    out = tmp_path / "study"
    variant = ",".join(
        [
            *SMALL,
            "train.epochs=2",
            "train.steps_per_epoch=1",
            "data.train_length=2",
            "data.val_length=2",
            "data.num_workers=0",
            "train.checkpoint_every_steps=1",
        ]
    )
    argv = [
        "--config",
        RECIPE,
        "--out",
        str(out),
        "--variant",
        f"tiny={variant}",
        "--plot",
        str(tmp_path / "curves.png"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert transfer_study.main(argv) == 0
    curves = json.loads((out / "curves.json").read_text())["tiny"]
    assert [p["step"] for p in curves["val"]] == [0, 1, 2]
    assert all(p["l1"] > 0 and p["abs_rel"] > 0 for p in curves["val"])
    assert sorted(p.name for p in (out / "tiny" / "snapshots").iterdir()) == [
        "step_00001.json",
        "step_00001.safetensors",
        "step_00002.json",
        "step_00002.safetensors",
    ]
    # The last snapshot is the final network: its score is the run's final validation.
    final = json.loads((out / "tiny" / "metrics.json").read_text())["metrics"]
    assert curves["val"][-1]["abs_rel"] == pytest.approx(final["abs_rel"], rel=1e-6)
    assert (tmp_path / "curves.png").stat().st_size > 1000
