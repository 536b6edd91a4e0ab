"""The focal-length exponent: its factor everywhere metres are made, and the fit that sets it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_perception.camera import CameraIntrinsics, focal_scale
from depth_perception.models import build_model


def test_focal_scale_raises_the_focal_ratio_to_the_exponent() -> None:
    assert focal_scale(400.0, 100.0, 0.5) == pytest.approx(2.0)
    assert focal_scale(400.0, 100.0) == pytest.approx(4.0)
    assert focal_scale(400.0, None, 0.5) == 1.0
    k = torch.tensor([25.0, 100.0, 400.0])
    torch.testing.assert_close(focal_scale(k, 100.0, 0.5), torch.tensor([0.5, 1.0, 2.0]))
    model = build_model("lightweight", num_classes=0, canonical_focal_px=50.0, focal_exponent=0.8)
    assert model.focal_exponent == 0.8
    assert build_model("lightweight", num_classes=0).focal_exponent == 1.0
    for bad in (0.0, -1.0, 2.5, math.nan):
        with pytest.raises(ValueError, match="focal_exponent"):
            build_model("lightweight", num_classes=0, focal_exponent=bad)


def test_training_targets_evaluation_and_predictor_use_the_exponent() -> None:
    from depth_perception.predictor import DepthPredictor, ModelDescription
    from training.evaluation import evaluate
    from training.objectives.standard import canonical_targets

    model = build_model("lightweight", num_classes=0, canonical_focal_px=50.0, focal_exponent=0.5)
    depth = torch.full((2, 1, 32, 32), 3.0)
    k = torch.eye(3).repeat(2, 1, 1)
    k[0, 0, 0], k[1, 0, 0] = 200.0, 12.5  # focal ratios 4 and 1/4: factors 2 and 1/2
    target = canonical_targets(model, {"depth": depth, "K": k})
    assert target[0].unique().tolist() == [1.5] and target[1].unique().tolist() == [6.0]

    class Fixed(torch.nn.Module):
        canonical_focal_px = 50.0
        focal_exponent = 0.5
        max_depth = 10.0

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"depth": torch.full((len(image), 1, 32, 32), 1.5)}

    batch = {
        "image": torch.zeros(1, 3, 32, 32),
        "depth": torch.full((1, 1, 32, 32), 3.0),
        "valid": torch.ones(1, 1, 32, 32, dtype=torch.bool),
        "K": k[:1],
    }
    assert evaluate(Fixed(), [batch], show_progress=False).depth["abs_rel"] == pytest.approx(
        0.0, abs=1e-6
    )
    description = ModelDescription(
        name="lightweight", input_width=32, input_height=24, mean=(0.5,) * 3, std=(0.25,) * 3,
        class_names=(), min_depth=0.1, max_depth=50.0, metric=True, trained=True,
        canonical_focal_px=20.0, focal_exponent=0.5,
    )  # fmt: skip
    predictor = DepthPredictor(description, None)  # type: ignore[arg-type]
    # 64 px image, fx 160 -> 80 px at the 32 px input: ratio 4 to the canonical 20 px
    camera = CameraIntrinsics(fx=160.0, fy=160.0, cx=31.5, cy=23.5, width=64, height=48)
    assert predictor.focal_factor(camera) == pytest.approx(2.0)


def test_the_fit_recovers_a_known_exponent_and_refuses_what_it_cannot_fit() -> None:
    from training.tools.focal_calibration import fit_focal_exponent

    rng = np.random.default_rng(0)
    log_focal = np.log(rng.uniform(0.6, 1.8, 200))
    noise = rng.normal(0.0, 0.05, 200)
    fit = fit_focal_exponent(np.log(0.9) + 0.75 * log_focal + noise, log_focal)
    assert fit.exponent == pytest.approx(0.75, abs=3 * fit.exponent_se)
    assert 0 < fit.exponent_se < 0.05
    assert fit.intercept == pytest.approx(math.log(0.9), abs=0.02)
    assert fit.residual_sd == pytest.approx(0.05, abs=0.01) and fit.images == 200
    exact = fit_focal_exponent(np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 2.0]))
    assert (exact.exponent, exact.intercept) == pytest.approx((0.5, 0.0))
    assert exact.spread_before == pytest.approx(math.sqrt((0 + 0.25 + 1) / 3))
    with pytest.raises(ValueError, match="same focal length"):
        fit_focal_exponent(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match=">= 3 images"):
        fit_focal_exponent(np.zeros(2), np.arange(2.0))


def test_ratios_come_from_the_raw_output_and_each_image_camera() -> None:
    from training.tools.focal_calibration import fit_focal_exponent, image_log_ratios

    class Constant(torch.nn.Module):
        canonical_focal_px = 100.0

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"depth": torch.ones(len(image), 1, 8, 8)}

    focals = [60.0, 100.0, 150.0, 180.0]
    k = torch.eye(3).repeat(4, 1, 1)
    k[:, 0, 0] = torch.tensor(focals)
    true = torch.stack([torch.full((1, 8, 8), 2.0 * (f / 100.0) ** 0.7) for f in focals])
    batch = {"image": torch.zeros(4, 3, 8, 8), "depth": true, "K": k,
             "valid": torch.ones(4, 1, 8, 8, dtype=torch.bool)}  # fmt: skip
    fit = fit_focal_exponent(*image_log_ratios(Constant(), [batch]))
    assert fit.exponent == pytest.approx(0.7, abs=1e-5)
    assert fit.intercept == pytest.approx(math.log(2.0), abs=1e-5)
    with pytest.raises(ValueError, match="no canonical_focal_px"):
        image_log_ratios(torch.nn.Identity(), [batch])


def test_the_tool_writes_the_same_weights_with_the_fitted_exponent(tmp_path: Path) -> None:
    from depth_perception.checkpoint import load_checkpoint, load_model
    from training.tools import focal_calibration

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: t\nmodel: {name: lightweight}\n"
        "data: {dataset: synthetic, family: indoor, width: 64, height: 64, val_length: 24,\n"
        "  options: {domain: randomized, default_fraction: 0.0, frames_per_scene: 2}}\n"
    )
    bundled = Path(focal_calibration.__file__).parents[2] / "depth_perception/weights/lightweight"
    out = tmp_path / "calibrated"
    focal_calibration.main(["--config", str(recipe), "--checkpoint", str(bundled),
                            "--output", str(out), "--threads", "1"])  # fmt: skip
    meta, state = load_checkpoint(out)
    _, original = load_checkpoint(bundled)
    assert all(torch.equal(state[name], original[name]) for name in original)
    fit = meta.extra["focal_calibration"]
    assert meta.model_args["focal_exponent"] == round(fit["exponent"], 4)
    assert fit["images"] == 24 and fit["split"] == "val" and "--output" in fit["command"]
    model, _ = load_model(out)
    assert model.focal_exponent == meta.model_args["focal_exponent"]
    assert json.loads((tmp_path / "calibrated.json").read_text())["model_args"] == meta.model_args
