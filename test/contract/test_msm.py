"""The multi-scale models ``msm`` / ``msm_gradient`` and their two-stage objective ``msm``.

Contract-style checks run on small instances (``SMALL`` arguments) so that the file stays
quick; the paper-size parameter counts are taken on the meta device (no memory, no init).
``python test/contract/test_msm.py`` prints training step times (not part of the test run).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import training.objectives.msm as msm_objective
from depth_perception.export import check_onnx_parity, export_onnx
from depth_perception.models import build_model, get_model_info
from training.config import load_config, stage_config
from training.trainer import build_optimizer, freeze_parameters

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[2]
SMALL = {"fc_input_size": (32, 32), "fc_dim": 32, "min_depth": 0.5, "max_depth": 10.0}
NAMES = ("msm", "msm_gradient")


def small(name: str, seed: int = 0, **kwargs: object) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, **{**SMALL, **kwargs})


def image(width: int, height: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def batch(width: int = 32, height: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    depth = 0.5 + 9.0 * torch.rand(2, 1, height, width, generator=gen)
    valid = torch.rand(2, 1, height, width, generator=gen) > 0.1
    return {"image": image(width, height, batch=2, seed=seed), "depth": depth, "valid": valid}


# --- architecture ----------------------------------------------------------------------------


def test_paper_size_parameter_counts() -> None:
    counts = {}
    for name in NAMES:
        with torch.device("meta"):  # shapes only: no 1 GB allocation, no initialisation
            model = build_model(name)
        parts = {
            scale: sum(p.numel() for p in getattr(model, scale).parameters())
            for scale in ("scale1", "scale2", "scale3")
        }
        counts[name] = sum(parts.values())
        listed = ", ".join(f"{k} {v:,}" for k, v in parts.items())
        print(f"{name}: {counts[name]:,} parameters ({listed})")
        # VGG16 convs 14,714,688 + full1 512*7*10 -> 4096 + full2 4096 -> 64*15*20
        assert parts["scale1"] == 14_714_688 + (35_840 * 4096 + 4096) + (4096 * 19_200 + 19_200)
    assert counts["msm"] == 240_891_586
    assert counts["msm_gradient"] == 241_000_452
    # The multi-task branch costs one 5x5 conv and a 2-channel head, not a second network.
    assert counts["msm_gradient"] - counts["msm"] < 0.001 * counts["msm"]
    assert get_model_info("msm").default_input_size == (320, 240)


@pytest.mark.parametrize("name", NAMES)
def test_eval_and_training_outputs(name: str) -> None:
    model = small(name).eval()
    for width, height in ((32, 32), (48, 40)):  # the second is not fc_input_size
        with torch.no_grad():
            out = model(image(width, height, batch=2))
        assert set(out) == {"depth"}
        depth = out["depth"]
        assert depth.shape == (2, 1, height, width) and depth.dtype == torch.float32
        assert torch.isfinite(depth).all() and (depth > 0).all()
    model.train()
    out = model(image(48, 40))
    expected = {"depth", "log_depth", "log_depth_s2", "depth_s2"}
    if name == "msm_gradient":
        expected |= {"grad_x", "grad_y"}
    assert set(out) == expected
    assert out["log_depth"].shape == (1, 1, 40, 48)
    for key in expected - {"depth", "log_depth"}:
        assert out[key].shape == (1, 1, 10, 12), key
    torch.testing.assert_close(out["depth_s2"], torch.exp(out["log_depth_s2"]))


def test_untrained_output_is_the_middle_of_the_range_and_scale3_starts_as_identity() -> None:
    model = small("msm_gradient").train()
    out = model(image(32, 32))
    # scale 2's head starts at log sqrt(min * max) (bias) with tiny weights
    log_mid = 0.5 * math.log(SMALL["min_depth"] * SMALL["max_depth"])
    assert (out["log_depth_s2"] - log_mid).abs().max() < 0.5
    # the zero-initialised residual scale 3 passes scale 2 through (two bilinear upsamplings)
    up = F.interpolate(out["log_depth_s2"], size=(16, 16), mode="bilinear", align_corners=False)
    up = F.interpolate(up, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["log_depth"], up)


def test_full_image_layers_see_the_vgg_grid_unresampled_at_fc_input_size() -> None:
    model = small("msm", fc_input_size=(64, 64)).eval()
    scale1 = model.scale1
    x = image(64, 64)
    with torch.no_grad():
        f = scale1.features(x)
        assert f.shape[-2:] == scale1.feature_grid == (2, 2)
        expected = scale1.fc2(F.relu(scale1.fc1(f.flatten(1)))).view(1, -1, 4, 4)
        torch.testing.assert_close(scale1(x), expected)


def test_gradient_model_scale3_uses_the_gradients() -> None:
    # Multiple input: changing the gradient head's output must change the refined depth.
    model = small("msm_gradient").eval()
    nn.init.normal_(model.scale3.refine[-1].weight, std=0.01)
    x = image(32, 32)
    with torch.no_grad():
        before = model(x)["depth"]
        model.scale2.grad_head[-1].bias.add_(1.0)
        after = model(x)["depth"]
    assert (before - after).abs().max() > 1e-4


def test_bad_input_raises_value_error() -> None:
    model = small("msm").eval()
    for x in (
        torch.randn(3, 64, 64),
        torch.randn(1, 3, 32, 34),  # not a multiple of 4
        torch.randn(1, 3, 28, 32),  # smaller than VGG's 32 px
    ):
        with pytest.raises(ValueError):
            model(x)
    with pytest.raises(ValueError, match="fc_input_size"):
        build_model("msm", fc_input_size=(16, 16))
    with pytest.raises(ValueError, match="min_depth"):
        build_model("msm", min_depth=0.0, fc_input_size=(64, 64), fc_dim=8)


def test_onnx_export_parity_at_two_sizes(tmp_path: Path) -> None:
    model = small("msm_gradient").eval()
    nn.init.normal_(model.scale3.refine[-1].weight, std=0.01)  # make scale 3 matter
    path = export_onnx(model, tmp_path / "msm_gradient.onnx", 32, 32, dynamic_size=True)
    check_onnx_parity(model, path, 32, 32)
    check_onnx_parity(model, path, 48, 40, batch_size=2, seed=1)


def test_encoder_weights_load_from_a_local_file(tmp_path: Path) -> None:
    # A torchvision-vgg16-style state dict (features.* plus a classifier that is ignored),
    # taken from another instance so that loading visibly changes the weights.
    reference = small("msm", seed=3).scale1.features.state_dict()
    state = {f"features.{k}": v for k, v in reference.items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = small("msm", encoder_weights=str(path))
    for key, value in reference.items():
        torch.testing.assert_close(model.scale1.features.state_dict()[key], value)
    assert not torch.equal(small("msm").scale1.features[0].weight, reference["0.weight"])
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="vgg16"):
        small("msm", encoder_weights=str(bad))
    with pytest.raises(FileNotFoundError):
        small("msm", encoder_weights=str(tmp_path / "missing.pth"))


# --- objective -------------------------------------------------------------------------------


class ConstantOutputs(nn.Module):
    """Fixed training outputs (a real module with one parameter, so gradients can flow)."""

    def __init__(self, s2: float, final: float, gradients: bool) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.s2, self.final, self.gradients = s2, final, gradients

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = x.shape
        s2 = self.scale * torch.full((b, 1, h // 4, w // 4), self.s2)
        out = {"depth": self.scale * torch.full((b, 1, h, w), self.final), "depth_s2": s2}
        if self.gradients:
            out["grad_x"] = torch.zeros_like(s2) * self.scale
            out["grad_y"] = torch.zeros_like(s2) * self.scale
        return out


def test_objective_hand_values_per_stage() -> None:
    data = {
        "image": torch.zeros(2, 3, 16, 16),
        "depth": torch.ones(2, 1, 16, 16),
        "valid": torch.ones(2, 1, 16, 16, dtype=torch.bool),
    }
    ln2 = math.log(2.0)
    # stage 1, depth model: sc-inv of s2 = 2 vs gt 1: (ln 2)^2 - 0.5 (ln 2)^2
    stage1 = msm_objective.MSMObjective(stage=1)
    _, terms = stage1(ConstantOutputs(2.0, 4.0, gradients=False), data)
    assert terms.total.item() == pytest.approx(0.5 * ln2**2, abs=1e-6)
    assert set(terms.parts) == {"sc_inv"}
    # gradient model: + Eq. 1 of a flat depth and zero predicted gradients: phi(0)^2 = 1e-4
    _, terms = stage1(ConstantOutputs(2.0, 4.0, gradients=True), data)
    assert terms.parts["grad_consistency"] == pytest.approx(1e-4, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.5 * ln2**2 + 1e-4, abs=1e-6)
    weighted = msm_objective.MSMObjective(stage=1, grad_weight=10.0, lam=1.0)
    _, terms = weighted(ConstantOutputs(2.0, 4.0, gradients=True), data)
    assert terms.total.item() == pytest.approx(10 * 1e-4, abs=1e-7)  # lam 1: sc-inv 0
    # stage 2: sc-inv of the final depth 4 vs 1 only: 0.5 (ln 4)^2
    _, terms = msm_objective.MSMObjective(stage=2)(ConstantOutputs(2.0, 4.0, True), data)
    assert terms.total.item() == pytest.approx(0.5 * math.log(4.0) ** 2, abs=1e-6)
    assert set(terms.parts) == {"sc_inv"}


def test_objective_arguments_are_checked() -> None:
    cfg = load_config(REPO / "training/configs/msm_gradient_synthetic_indoor.yaml")
    model = small("msm_gradient")
    assert msm_objective.build_msm(cfg, model).stage == 1
    cfg.loss.args["stge"] = 2
    with pytest.raises(ValueError, match="stge"):
        msm_objective.build_msm(cfg, model)
    for bad in ({"stage": 3}, {"lam": 2.0}, {"grad_weight": -1}, {"grad_combine": "max"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            msm_objective.MSMObjective(**bad)
    with pytest.raises(ValueError, match="msm_gradient"):
        msm_objective.MSMObjective()(build_model("lightweight", num_classes=0), batch())


def _train_steps(model: nn.Module, cfg_path: str, stage_index: int, steps: int = 1) -> None:
    cfg = stage_config(load_config(REPO / cfg_path), stage_index)
    freeze_parameters(model, cfg.train.freeze)
    objective = msm_objective.build_msm(cfg, model)
    optimizer = build_optimizer(cfg, model)
    model.train()
    for step in range(steps):
        _, terms = objective(model, batch(seed=step))
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()


@pytest.mark.parametrize("name", NAMES)
def test_stages_train_the_right_scales(name: str) -> None:
    path = f"training/configs/{name}_synthetic_indoor.yaml"
    model = small(name)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    _train_steps(model, path, 0)  # stage 1: scales 1 and 2
    after1 = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in after1.items():
        moved = not torch.equal(value, start[key])
        assert moved == (not key.startswith("scale3.")), key
    # stage 2: scales 1-2 frozen (not in the optimiser), scale 3 trained. Two steps: scale 3's
    # output conv starts at 0, so the layers before it only get a gradient from step 2 on.
    _train_steps(model, path, 1, steps=2)
    for key, value in model.state_dict().items():
        moved = not torch.equal(value, after1[key])
        assert moved == key.startswith("scale3."), key
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("scale1.", "scale2.")) for n in frozen)
    # frozen full1 runs without dropout: training forwards are deterministic up to scale 2
    model.train()
    x = image(32, 32)
    torch.testing.assert_close(model(x)["log_depth_s2"], model(x)["log_depth_s2"])


def test_recipes_share_one_budget_and_stage_settings() -> None:
    base = load_config(REPO / "training/configs/msm_synthetic_indoor.yaml")
    grad = load_config(REPO / "training/configs/msm_gradient_synthetic_indoor.yaml")
    assert (base.model.name, grad.model.name) == ("msm", "msm_gradient")
    assert base.model.args == grad.model.args
    for section in ("data", "optim", "train", "eval"):
        assert getattr(base, section) == getattr(grad, section), section
    assert base.stages == grad.stages and [s.name for s in base.stages] == ["stage1", "stage2"]
    for cfg in (base, grad):
        s1, s2 = stage_config(cfg, 0), stage_config(cfg, 1)
        assert (s1.loss.args["stage"], s2.loss.args["stage"]) == (1, 2)
        assert s1.train.freeze == [] and s2.train.freeze == ["scale1.", "scale2."]
        assert cfg.eval.mae_bin_size == 1.0
        assert (cfg.optim.name, cfg.optim.lr) == ("adam", 1e-4)
    nyu = load_config(REPO / "training/configs/msm_gradient_nyu.yaml")
    assert (nyu.data.width, nyu.data.height, nyu.train.batch_size) == (320, 240, 8)
    assert nyu.model.name == "msm_gradient" and stage_config(nyu, 1).loss.args["stage"] == 2


# --- benchmark (not a test) ------------------------------------------------------------------


def benchmark(width: int = 128, height: int = 96, batch_size: int = 4, steps: int = 5) -> None:
    """Print seconds per training step of both models and stages at one thread."""
    torch.set_num_threads(1)
    for name in NAMES:
        model = build_model(name, fc_input_size=(width, height), fc_dim=1024, min_depth=0.5)
        for stage in (1, 2):
            if stage == 2:
                freeze_parameters(model, ["scale1.", "scale2."])
            objective = msm_objective.MSMObjective(stage=stage)
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.Adam(params, lr=1e-4)
            model.train()
            times = []
            for step in range(steps + 1):
                gen = torch.Generator().manual_seed(step)
                data = {
                    "image": torch.randn(batch_size, 3, height, width, generator=gen),
                    "depth": 0.5 + 9 * torch.rand(batch_size, 1, height, width, generator=gen),
                    "valid": torch.ones(batch_size, 1, height, width, dtype=torch.bool),
                }
                t = time.perf_counter()
                _, terms = objective(model, data)
                optimizer.zero_grad(set_to_none=True)
                terms.total.backward()
                optimizer.step()
                times.append(time.perf_counter() - t)
            per_step = sum(times[1:]) / steps  # first step warms up
            print(
                f"{name} stage {stage} {width}x{height} batch {batch_size}: "
                f"{per_step:.3f} s/step, {batch_size / per_step:.2f} images/s (1 thread)"
            )


if __name__ == "__main__":
    benchmark(*(int(v) for v in sys.argv[1:]))
