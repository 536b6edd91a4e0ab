"""Issue 14 section 3: the checkerboard-free decoder, the canonical focal length, the mixed
randomised/default training set, the gradient-matching objective and the weight upgrade."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_perception.backends.base import InferenceBackend
from depth_perception.camera import CameraIntrinsics, focal_scale
from depth_perception.checkpoint import CheckpointMeta, load_model, save_checkpoint
from depth_perception.models import build_model
from depth_perception.predictor import DepthPredictor, ModelDescription
from depth_perception.sample_data import skimage_data_file

torch.set_num_threads(1)


def _photo_batch(width: int = 256, height: int = 192) -> torch.Tensor:
    import cv2

    bgr = cv2.imread(str(skimage_data_file("astronaut.png")))
    rgb = cv2.resize(bgr[..., ::-1], (width, height), interpolation=cv2.INTER_AREA)
    x = (rgb.astype(np.float32) / 255.0 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
    return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))


def period2_peak(depth: torch.Tensor) -> float:
    """Spectral energy of log depth at the Nyquist row/column (period 2: the finest shuffle's
    2x2 cell) over the energy of the neighbouring frequencies; ~1 without a checkerboard."""
    g = torch.log(depth[0, 0]).double().numpy()
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    ratios = []
    for profile in (power.mean(axis=1), power.mean(axis=0)):
        n = len(profile)
        ratios.append(profile[n // 2] / profile[n // 2 - 1])
    return float(max(ratios))


def test_fresh_decoder_has_no_checkerboard_and_the_shuffle_one_has() -> None:
    x = _photo_batch()
    peaks: dict[str, list[float]] = {"bilinear": [], "shuffle": []}
    for upsample in peaks:
        for seed in range(3):
            torch.manual_seed(seed)
            model = build_model("lightweight", num_classes=14, upsample=upsample).eval()
            with torch.no_grad():
                peaks[upsample].append(period2_peak(model(x)["depth"]))
    # measured: bilinear 0.8-1.6, shuffle 4-24 (the paper's decoder, kept for old checkpoints)
    assert np.median(peaks["bilinear"]) < 2.0, peaks
    assert np.median(peaks["shuffle"]) > 3.0, peaks


def test_default_upsample_is_bilinear_and_unknown_mode_is_refused() -> None:
    model = build_model("lightweight")
    assert model.upsample == "bilinear" and model.canonical_focal_px is None
    assert any(name.endswith(".reduce.weight") for name, _ in model.named_parameters())
    with pytest.raises(ValueError, match="upsample must be one of"):
        build_model("lightweight", upsample="nearest")
    with pytest.raises(ValueError, match="canonical_focal_px"):
        build_model("lightweight", canonical_focal_px=0.0)


def test_old_shuffle_checkpoints_still_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    old = build_model("lightweight", num_classes=14, upsample="shuffle").eval()
    # as written before `upsample` existed: its arguments do not mention it
    meta = CheckpointMeta.for_model("lightweight", old, {"num_classes": 14})
    save_checkpoint(tmp_path / "old", old, meta)
    loaded, _ = load_model(tmp_path / "old")
    assert loaded.upsample == "shuffle"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["depth"], old(x)["depth"])


def test_upgrade_keeps_the_old_networks_depth(tmp_path: Path) -> None:
    from training.tools.lightweight_upgrade import g_affine, upgrade_lightweight

    a, b = g_affine((0.5, 10.0), (0.15, 12.0))
    for d in (0.2, 1.0, 7.0):
        old_g = (math.log(d) - math.log(0.5)) * 10.0 / math.log(20.0)
        new_g = (math.log(d) - math.log(0.15)) * 12.0 / math.log(80.0)
        assert a * old_g + b == pytest.approx(new_g)
    torch.manual_seed(0)
    args = {"num_classes": 14, "min_depth": 0.5, "max_depth": 10.0}
    old = build_model("lightweight", **args, upsample="shuffle").eval()
    with torch.no_grad():  # heads that vary over the image, not the constant of a fresh init
        for head in old.depth_heads:
            head.weight.normal_(std=0.5)
    meta = CheckpointMeta.for_model("lightweight", old, args)
    save_checkpoint(tmp_path / "old", old, meta)
    upgrade_lightweight(
        tmp_path / "old", tmp_path / "new", min_depth=0.15, max_depth=12.0, canonical_focal_px=90
    )
    new, new_meta = load_model(tmp_path / "new")
    assert new.upsample == "bilinear" and new.canonical_focal_px == 90.0
    assert (new_meta.min_depth, new_meta.max_depth) == (0.15, 12.0)
    x = _photo_batch(128, 96)
    with torch.no_grad():
        d_old, d_new = old(x)["depth"], new(x)["depth"]
    # heads exactly re-expressed; only the upsampling differs (averaged vs per-pixel features)
    assert torch.median((d_old.log() - d_new.log()).abs()) < 0.1
    with pytest.raises(ValueError, match="already has the bilinear decoder"):
        upgrade_lightweight(tmp_path / "new", tmp_path / "again")


def test_focal_scale() -> None:
    assert focal_scale(200.0, None) == 1.0
    assert focal_scale(200.0, 100.0) == pytest.approx(2.0)
    np.testing.assert_allclose(focal_scale(np.array([50.0, 100.0]), 100.0), [0.5, 1.0])


class _Constant(InferenceBackend):
    name = "constant"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": np.full((len(batch), 1, 12, 16), 2.0, np.float32)}


def _predictor(canonical: float | None) -> DepthPredictor:
    description = ModelDescription(
        name="lightweight",
        input_width=32,
        input_height=24,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        class_names=(),
        min_depth=0.1,
        max_depth=50.0,
        metric=True,
        trained=True,
        canonical_focal_px=canonical,
    )
    return DepthPredictor(description, _Constant())


def test_predictor_scales_by_the_cameras_focal_length_in_network_pixels() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    # 64 px wide image, fx 80 -> 40 px at the 32 px network input; canonical 20 px: x2
    camera = CameraIntrinsics(fx=80.0, fy=80.0, cx=31.5, cy=23.5, width=64, height=48)
    np.testing.assert_allclose(_predictor(20.0).predict(rgb, camera).depth, 4.0)
    np.testing.assert_allclose(_predictor(None).predict(rgb, camera).depth, 2.0)
    wide = CameraIntrinsics(fx=20.0, fy=20.0, cx=31.5, cy=23.5, width=64, height=48)
    both = _predictor(20.0).predict_batch([(rgb, camera), (rgb, wide)])
    np.testing.assert_allclose(both[0].depth, 4.0)
    np.testing.assert_allclose(both[1].depth, 1.0)  # fx 10 px at the input: x0.5


def test_training_targets_and_evaluation_use_the_canonical_camera() -> None:
    from training.evaluation import evaluate
    from training.objectives.standard import canonical_targets

    model = build_model("lightweight", num_classes=0, canonical_focal_px=50.0)
    depth = torch.full((2, 1, 32, 32), 3.0)
    k = torch.eye(3).repeat(2, 1, 1)
    k[0, 0, 0], k[1, 0, 0] = 100.0, 25.0
    target = canonical_targets(model, {"depth": depth, "K": k})
    assert target[0].unique().tolist() == [1.5] and target[1].unique().tolist() == [6.0]
    with pytest.raises(ValueError, match="needs the batch's intrinsics"):
        canonical_targets(model, {"depth": depth})
    plain = build_model("lightweight", num_classes=0)
    assert canonical_targets(plain, {"depth": depth, "K": k}) is depth

    # evaluation: a model whose canonical depth is the truth for camera 0 times 50/100
    class Fixed(torch.nn.Module):
        canonical_focal_px = 50.0
        max_depth = 10.0

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"depth": torch.full((len(image), 1, 32, 32), 1.5)}

    batch = {
        "image": torch.zeros(1, 3, 32, 32),
        "depth": torch.full((1, 1, 32, 32), 3.0),
        "valid": torch.ones(1, 1, 32, 32, dtype=torch.bool),
        "K": k[:1],
    }
    result = evaluate(Fixed(), [batch], show_progress=False)
    assert result.depth["abs_rel"] == pytest.approx(0.0, abs=1e-6)


def test_gradient_matching_ignores_scale_and_sees_steps() -> None:
    from training.objectives.losses import MultiScaleDepthSegLoss, log_gradient_matching

    loss = MultiScaleDepthSegLoss(0.15, 12.0)
    gt = torch.full((1, 1, 16, 16), 2.0)
    gt[..., 8:] = 4.0
    valid = torch.ones_like(gt, dtype=torch.bool)
    g_scaled = loss.g(gt * 1.7)  # right shape, wrong scale: no gradient error
    assert float(log_gradient_matching(g_scaled, gt, valid, loss)) == pytest.approx(0, abs=1e-5)
    flat = loss.g(torch.full_like(gt, 3.0))  # misses the step
    assert float(log_gradient_matching(flat, gt, valid, loss)) > 0.01
    # nothing valid: 0, still attached to the prediction
    pred = flat.clone().requires_grad_(True)
    zero = log_gradient_matching(pred, gt, torch.zeros_like(valid), loss)
    assert float(zero) == 0.0 and zero.requires_grad


def test_multiscale_gradient_objective_arguments() -> None:
    from training.config import ExperimentConfig
    from training.objectives import build_objective

    cfg = ExperimentConfig()
    cfg.loss.name = "multiscale_gradient"
    cfg.loss.args = {"grad_weight": 0.25, "grad_scales": 2}
    model = build_model("lightweight", num_classes=0, min_depth=0.5, max_depth=10.0)
    objective = build_objective(cfg, model)
    assert (objective.grad_weight, objective.grad_scales) == (0.25, 2)
    data = {
        "image": torch.randn(2, 3, 64, 64),
        "depth": torch.rand(2, 1, 64, 64) * 5 + 1,
        "valid": torch.ones(2, 1, 64, 64, dtype=torch.bool),
        "K": torch.eye(3).repeat(2, 1, 1),
    }
    model.train()
    _, terms = objective(model, data)
    assert torch.isfinite(terms.total) and "loss_grad" in terms.scalars()
    cfg.loss.args = {"grad_weigth": 1.0}
    with pytest.raises(ValueError, match="grad_weight and grad_scales"):
        build_objective(cfg, model)


def test_default_fraction_mixes_default_scenes_deterministically(tmp_path: Path) -> None:
    from training.data.synthetic import SyntheticDataset

    ds = SyntheticDataset(
        "indoor", "train", 64, 48, frames_per_scene=1, num_scenes=40,
        domain="randomized", default_fraction=0.25, cache_dir=tmp_path,
    )  # fmt: skip
    domains = [ds.scene_domain(s) for s in range(40)]
    assert 8 <= domains.count("default") <= 12  # a low-discrepancy quarter
    scene = domains.index("default")
    sample = ds[scene]
    expected = build_world_frame(scene)
    np.testing.assert_array_equal(sample.image, expected)
    # cached beside the default domain's own frames, the randomised ones under their tag
    assert Path(ds.path_of(scene)).parts[-3] == "indoor_64x48_h70_s0"
    other = domains.index("randomized")
    assert Path(ds.path_of(other)).parts[-3] == "randomized_indoor_64x48_s0"
    with pytest.raises(ValueError, match="default_fraction"):
        SyntheticDataset("indoor", domain="default", default_fraction=0.5)
    with pytest.raises(ValueError, match="default_fraction"):
        SyntheticDataset("indoor", domain="randomized", default_fraction=1.0)


def build_world_frame(scene: int) -> np.ndarray:
    from depth_perception.synthetic.randomized import make_world

    world = make_world("indoor", 64, 48, 0, 70.0, scene, "default")
    return world.render(0).rgb


def test_the_bundled_weights_have_no_checkerboard() -> None:
    # The trained default too, not only a fresh decoder (stage 3 0.99, stage 4 0.98; the
    # shuffle-decoder default before issue 14 3.4, all on this photo).
    model, _ = load_model(Path(__file__).parents[2] / "depth_perception/weights/lightweight")
    with torch.no_grad():
        peak = period2_peak(model.eval()(_photo_batch())["depth"])
    assert peak < 2.0, peak
