"""Self-supervised models ``sfm`` / ``sfm_gradient`` and the ``sfm`` objective (issue 5, paper a).

Geometry is checked against the synthetic sequences, whose neighbours come with exact relative
poses and exact depth: warping a neighbour with both must reproduce the target (up to the
renderer's sensor noise) and a wrong depth or a reversed pose must not.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

import depth_perception.models.sfm as sfm_models
from depth_perception.camera import CameraIntrinsics
from depth_perception.export import check_onnx_parity, export_onnx
from depth_perception.models import build_model, get_model_info
from training.data.sample import collate
from training.data.synthetic import SyntheticSequenceDataset
from training.objectives.sfm import (
    SfmObjective,
    explainability_loss,
    inverse_warp,
    photometric_loss,
    scale_intrinsics,
    second_order_smoothness,
    smoothness_loss,
)

torch.set_num_threads(2)

WIDTH, HEIGHT = 128, 96
SMALL = 0.25  # width_mult of the models built here: same structure, fast on a CPU


@pytest.fixture(scope="module")
def sequence_batch() -> dict:
    # Indoor frames 8 path steps apart: ~16 cm of motion, enough parallax to tell depths apart.
    ds = SyntheticSequenceDataset(
        family="indoor",
        split="val",
        width=WIDTH,
        height=HEIGHT,
        frames_per_scene=4,
        num_scenes=2,
        frame_offsets=(-1, 1),
        stride=8,
    )
    return collate([ds[0], ds[5]], mean=(0.5,) * 3, std=(0.5,) * 3, keep_raw=True)


def _warp_error(batch: dict, depth: torch.Tensor, transforms: torch.Tensor) -> float:
    """Mean |target - warped neighbour| over pixels valid in both, both neighbours."""
    errors = []
    for n in range(transforms.shape[1]):
        warped, valid = inverse_warp(
            batch["neighbours_raw"][:, n], depth, transforms[:, n], batch["K"]
        )
        mask = (valid & batch["valid"]).expand_as(warped)
        errors.append(float((warped - batch["image_raw"]).abs()[mask].mean()))
    return float(np.mean(errors))


# --------------------------------------------------------------------------------------------
# geometry


def test_exact_pose_and_depth_reconstruct_the_target(sequence_batch: dict) -> None:
    batch = sequence_batch
    assert bool(batch["valid"].all())  # indoor: no sky, every depth known
    depth, poses = batch["depth"], batch["poses"]
    exact = _warp_error(batch, depth, poses)
    no_motion = float((batch["neighbours_raw"][:, 0] - batch["image_raw"]).abs().mean())
    # What remains is the renderer's sensor noise (sigma 1.5/255 per frame: ~0.0066 for the L1
    # of a difference), bilinear resampling of the textures and disocclusions (0.016 here).
    assert exact < 0.02
    assert no_motion > 3.0 * exact
    assert _warp_error(batch, depth * 0.5, poses) > 1.6 * exact
    assert _warp_error(batch, depth * 2.0, poses) > 1.2 * exact
    # the transform goes target -> neighbour; its inverse is the wrong direction
    assert _warp_error(batch, depth, torch.linalg.inv(poses)) > 3.0 * exact


def test_identity_motion_returns_the_source() -> None:
    torch.manual_seed(0)
    source = torch.rand(2, 3, 24, 32)
    depth = torch.rand(2, 1, 24, 32) * 5 + 0.5
    k = torch.tensor([[30.0, 0.0, 15.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    warped, valid = inverse_warp(source, depth, torch.eye(4).expand(2, 4, 4), k)
    assert bool(valid.all())
    torch.testing.assert_close(warped, source, atol=1e-5, rtol=0)


def test_points_behind_the_source_camera_are_invalid() -> None:
    source = torch.rand(1, 3, 8, 8)
    depth = torch.full((1, 1, 8, 8), 2.0)
    k = torch.tensor([[[8.0, 0.0, 3.5], [0.0, 8.0, 3.5], [0.0, 0.0, 1.0]]])
    transform = torch.eye(4)[None].clone()
    transform[0, 2, 3] = -3.0  # the source camera sits 1 m behind the target's points
    _, valid = inverse_warp(source, depth, transform, k)
    assert not bool(valid.any())


@pytest.mark.parametrize("size", [(48, 64), (24, 32), (12, 16), (96, 128)])
def test_scale_intrinsics_matches_camera_intrinsics(size: tuple[int, int]) -> None:
    cam = CameraIntrinsics(fx=91.4, fy=90.2, cx=63.1, cy=47.8, width=WIDTH, height=HEIGHT)
    k = torch.tensor(cam.matrix, dtype=torch.float64)[None]
    got = scale_intrinsics(k, (HEIGHT, WIDTH), size)[0].numpy()
    want = cam.scaled(size[1], size[0]).matrix
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_per_scale_intrinsics_keep_coarse_warps_right(sequence_batch: dict) -> None:
    batch = sequence_batch
    size = (HEIGHT // 4, WIDTH // 4)
    depth = F.interpolate(batch["depth"], size=size, mode="nearest")
    target = F.interpolate(batch["image_raw"], size=size, mode="area")
    source = F.interpolate(batch["neighbours_raw"][:, 1], size=size, mode="area")
    pose = batch["poses"][:, 1]

    def error(k: torch.Tensor) -> float:
        warped, valid = inverse_warp(source, depth, pose, k)
        return float((warped - target).abs()[valid.expand_as(warped)].mean())

    scaled = error(scale_intrinsics(batch["K"], (HEIGHT, WIDTH), size))
    unscaled = error(batch["K"])
    assert scaled < 0.02
    assert unscaled > 1.5 * scaled


def test_photometric_loss_prefers_the_true_depth_at_every_scale(sequence_batch: dict) -> None:
    batch = sequence_batch
    sizes = [(HEIGHT // f, WIDTH // f) for f in (8, 4, 2, 1)]  # coarse to fine

    def scales(depth: torch.Tensor) -> list[torch.Tensor]:
        return [F.interpolate(depth, size=s, mode="nearest") for s in sizes]

    args = (batch["image_raw"], batch["neighbours_raw"])
    true_loss, true_scales = photometric_loss(
        *args, scales(batch["depth"]), batch["poses"], batch["K"]
    )
    flat = torch.full_like(batch["depth"], float(batch["depth"].median()))
    flat_loss, flat_scales = photometric_loss(*args, scales(flat), batch["poses"], batch["K"])
    assert len(true_scales) == 4
    assert math.isclose(float(true_loss), sum(true_scales), rel_tol=1e-5)
    assert float(true_loss) < float(flat_loss)
    # at 1/8 (12x16 pixels) resampling blurs away the parallax; the finer scales tell
    for good, bad in zip(true_scales[1:], flat_scales[1:], strict=True):
        assert good < bad
    # masks multiply the residual: all-zero masks explain everything away
    zeros = [torch.zeros(2, 2, *s) for s in sizes]
    masked, _ = photometric_loss(*args, scales(flat), batch["poses"], batch["K"], zeros)
    assert float(masked) == 0.0


# --------------------------------------------------------------------------------------------
# regularisers: hand values


def test_second_order_smoothness_hand_values() -> None:
    cols = torch.arange(6, dtype=torch.float64).view(1, 1, 1, 6).expand(1, 1, 5, 6)
    rows = torch.arange(5, dtype=torch.float64).view(1, 1, 5, 1).expand(1, 1, 5, 6)
    assert float(second_order_smoothness(3 * cols + 2 * rows + 1)) == 0.0  # a plane
    # x^2: d2/dx2 = 2 everywhere, the other three terms 0
    assert float(second_order_smoothness(cols**2)) == pytest.approx(2.0)
    # x*y: d2/dxdy = d2/dydx = 1
    assert float(second_order_smoothness(cols * rows)) == pytest.approx(2.0)
    # scales coarse to fine: the finest has weight 1, the next 1/2.3
    coarse, fine = cols**2, 3 * cols
    assert float(smoothness_loss([coarse, fine])) == pytest.approx(2.0 / 2.3)
    assert float(smoothness_loss([fine, coarse])) == pytest.approx(2.0)
    assert float(smoothness_loss([coarse, coarse], decay=2.0)) == pytest.approx(3.0)


def test_explainability_loss_hand_values() -> None:
    half = [torch.full((2, 2, h, h), 0.5) for h in (2, 4, 8, 16)]
    assert float(explainability_loss(half)) == pytest.approx(4 * math.log(2.0), rel=1e-6)
    ones = [torch.ones(1, 2, 4, 4)]
    assert float(explainability_loss(ones)) == pytest.approx(0.0, abs=1e-7)
    mixed = torch.tensor([[[[1.0, math.exp(-1.0)]]]])  # -log: 0 and 1 -> mean 0.5
    assert float(explainability_loss([mixed])) == pytest.approx(0.5, rel=1e-6)


def test_pose_vectors_to_matrices() -> None:
    identity = sfm_models.pose_vec_to_mat(torch.zeros(3, 6))
    torch.testing.assert_close(identity, torch.eye(4).expand(3, 4, 4))
    # 90 degrees about z maps the x axis onto y; the translation is the last column
    vec = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0, math.pi / 2]])
    mat = sfm_models.pose_vec_to_mat(vec)[0]
    torch.testing.assert_close(
        mat[:3, :3] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    )
    torch.testing.assert_close(mat[:3, 3], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(mat[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    # SfMLearner's order: R = Rx @ Ry @ Rz
    a, b = 0.3, -0.2
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    got = sfm_models.euler_to_mat(torch.tensor([a, b, 0.0]))
    torch.testing.assert_close(got, rx @ ry, atol=1e-6, rtol=0)
    rot = sfm_models.pose_vec_to_mat(torch.randn(8, 6))[:, :3, :3]
    torch.testing.assert_close(
        rot @ rot.transpose(1, 2), torch.eye(3).expand(8, 3, 3), atol=1e-5, rtol=0
    )


# --------------------------------------------------------------------------------------------
# models


def test_registry_entries_are_relative_depth_models() -> None:
    for name in ("sfm", "sfm_gradient"):
        info = get_model_info(name)
        assert info.metric is False
        assert info.tasks == ("depth",)
        assert info.default_input_size == (416, 128)


def test_full_size_parameter_counts() -> None:
    # DispNetS of the SfMLearner reference: 31,596,900 parameters; PoseExpNet 3,340,388
    model = build_model("sfm")
    assert sfm_models.depth_network_parameters(model) == 31_596_900
    assert sum(p.numel() for p in model.pose_net.parameters()) == 3_340_388


@pytest.mark.parametrize("name", ["sfm", "sfm_gradient"])
def test_eval_forward_returns_full_resolution_depth_only(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, width_mult=SMALL).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"depth"}
    depth = out["depth"]
    assert depth.shape == (2, 1, 64, 96)
    assert bool(torch.isfinite(depth).all())
    assert float(depth.min()) >= model.min_depth * (1 - 1e-6)
    assert float(depth.max()) <= model.max_depth * (1 + 1e-6)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 80))


@pytest.mark.parametrize("name", ["sfm", "sfm_gradient"])
@pytest.mark.parametrize("width_mult", [0.5, 1.0])
def test_fresh_models_start_off_the_depth_floor(name: str, width_mult: float) -> None:
    # Regression: fed the previous scale's disparity (up to 10) the finer heads started
    # saturated, depth sat at its 0.0999 floor with zero gradient and training never left it.
    x = torch.rand(2, 3, 96, 128) * 2 - 1
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model(name, width_mult=width_mult).train()
        for disp in model(x)["disp_scales"]:
            sigmoid = (disp - sfm_models.DISP_BETA) / sfm_models.DISP_ALPHA
            assert float((sigmoid > 0.95).float().mean()) < 0.05, (seed, float(sigmoid.mean()))


def test_fresh_pose_network_features_keep_their_scale() -> None:
    # Regression: Xavier init halved the activations per ReLU layer (last features ~0.005), so
    # the pose network took ~10^4 steps to reach the frames' rotations.
    torch.manual_seed(0)
    net = sfm_models.PoseExpNet(2, True)
    features: list[float] = []
    for conv in net.convs:
        conv.register_forward_hook(lambda _m, _i, out: features.append(float(out.abs().mean())))
    with torch.no_grad():
        net(torch.rand(2, 3, 96, 128) * 2 - 1, torch.rand(2, 2, 3, 96, 128) * 2 - 1)
    assert min(features) > 0.25 * features[0], features


def test_training_forward_with_neighbours() -> None:
    torch.manual_seed(0)
    model = build_model("sfm", width_mult=SMALL).train()
    x, nbs = torch.randn(2, 3, 64, 96), torch.randn(2, 2, 3, 64, 96)
    out = model(x, nbs)
    sizes = [(8, 12), (16, 24), (32, 48), (64, 96)]
    assert [tuple(d.shape[-2:]) for d in out["depth_scales"]] == sizes
    assert [tuple(m.shape) for m in out["exp_masks"]] == [(2, 2, *s) for s in sizes]
    assert out["poses"].shape == (2, 2, 6)
    torch.testing.assert_close(out["depth"], out["depth_scales"][-1])
    torch.testing.assert_close(out["depth_scales"][0], 1.0 / out["disp_scales"][0])
    assert all(bool(((m > 0) & (m < 1)).all()) for m in out["exp_masks"])
    with pytest.raises(ValueError, match="num_sources"):
        model(x, nbs[:, :1])
    no_masks = build_model("sfm", width_mult=SMALL, explainability=False).train()
    assert "exp_masks" not in no_masks(x, nbs)


def test_sfm_gradient_stages_share_weights() -> None:
    torch.manual_seed(0)
    stage1 = build_model("sfm_gradient", width_mult=SMALL, refine=False)
    stage2 = build_model("sfm_gradient", width_mult=SMALL, refine=True)
    assert set(stage1.state_dict()) == set(stage2.state_dict())
    assert not any(p.requires_grad for p in stage1.refine_decoder.parameters())
    assert all(p.requires_grad for p in stage2.refine_decoder.parameters())
    stage2.load_state_dict(stage1.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        initial = stage1.eval()(x)["depth"]
        refined = stage2.eval()(x)["depth"]
        train_out = stage2.train()(x)
    # refine=False returns the depth decoder's depth; refine=True the refinement decoder's
    torch.testing.assert_close(train_out["initial_depth_scales"][-1], initial)
    assert float((refined - initial).abs().max()) > 1e-3
    assert [g.shape[1] for g in train_out["grad_scales"]] == [2, 2, 2, 2]


def test_onnx_export_holds_the_depth_network_only(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(0)
    model = build_model("sfm_gradient", width_mult=SMALL).eval()
    path = export_onnx(model, tmp_path / "sfm.onnx", 96, 64)
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["depth"]
    assert len(graph.input) == 1
    assert not any("pose_net" in t.name for t in graph.initializer)
    exported = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert exported <= sfm_models.depth_network_parameters(model)
    check_onnx_parity(model, path, 96, 64)
    check_onnx_parity(model, path, 128, 96, batch_size=2, seed=1)


# --------------------------------------------------------------------------------------------
# objective


def _objective_batch(sequence_batch: dict) -> dict:
    # 96x64 crop keeps the models' multiple-of-32 input and the test fast
    crop = (slice(None), slice(None), slice(16, 80), slice(16, 112))
    nb_crop = (slice(None), *crop)
    k = sequence_batch["K"].clone()
    k[:, 0, 2] -= 16
    k[:, 1, 2] -= 16
    return {
        "image": sequence_batch["image"][crop],
        "image_raw": sequence_batch["image_raw"][crop],
        "neighbours": sequence_batch["neighbours"][nb_crop],
        "neighbours_raw": sequence_batch["neighbours_raw"][nb_crop],
        "poses": sequence_batch["poses"],
        "K": k,
    }


def test_objective_args_are_checked() -> None:
    assert SfmObjective.from_args({}).mask_weight == 0.2
    with pytest.raises(ValueError, match="smooth_wieght"):
        SfmObjective.from_args({"smooth_wieght": 0.1})
    with pytest.raises(ValueError, match="stage"):
        SfmObjective.from_args({"stage": 3})
    with pytest.raises(ValueError, match="gradient_combine"):
        SfmObjective.from_args({"gradient_combine": "max"})
    sfm = build_model("sfm", width_mult=SMALL)
    grad1 = build_model("sfm_gradient", width_mult=SMALL, refine=False)
    with pytest.raises(ValueError, match="sfm_gradient only"):
        SfmObjective(stage=1).check_model(sfm)
    with pytest.raises(ValueError, match="stage"):
        SfmObjective().check_model(grad1)
    with pytest.raises(ValueError, match="refine: true"):
        SfmObjective(stage=2).check_model(grad1)
    with pytest.raises(ValueError, match="explainability: false"):
        SfmObjective(mask_weight=0.0).check_model(sfm)
    with pytest.raises(ValueError, match="pose network"):
        SfmObjective().check_model(torch.nn.Conv2d(3, 1, 1))


def test_objective_needs_sequence_batches(sequence_batch: dict) -> None:
    data = _objective_batch(sequence_batch)
    del data["neighbours_raw"]
    with pytest.raises(ValueError, match="neighbours_raw"):
        SfmObjective()(build_model("sfm", width_mult=SMALL).train(), data)


def test_sfm_objective_trains_depth_and_pose(sequence_batch: dict) -> None:
    torch.manual_seed(0)
    model = build_model("sfm", width_mult=SMALL).train()
    objective = SfmObjective()
    assert objective.needs_raw_images
    outputs, terms = objective(model, _objective_batch(sequence_batch))
    assert outputs["depth"].shape == (2, 1, 64, 96)
    assert set(terms.parts) >= {"recon", "mask", "smooth", "pose_translation"}
    expected = terms.parts["recon"] + 0.2 * terms.parts["mask"] + 0.1 * terms.parts["smooth"]
    assert float(terms.total.detach()) == pytest.approx(expected, rel=1e-5)
    assert 0 < terms.parts["pose_rot_err_deg"] < 20
    terms.total.backward()
    for part in (model.encoder, model.decoder, model.pose_net):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)


def test_true_pose_diagnostic_warps_with_the_data_poses(sequence_batch: dict) -> None:
    data = _objective_batch(sequence_batch)
    with pytest.raises(ValueError, match="poses"):
        SfmObjective.from_args({"poses": "oracle"})
    with pytest.raises(ValueError, match="true_translation_scale"):
        SfmObjective(poses="ground_truth", true_translation_scale=0.0)
    torch.manual_seed(0)
    model = build_model("sfm", width_mult=SMALL, explainability=False).train()
    objective = SfmObjective(poses="ground_truth", mask_weight=0.0, smooth_weight=0.0)
    outputs, terms = objective(model, data)
    depth = [d.detach() for d in outputs["depth_scales"]]
    expected, _ = photometric_loss(
        data["image_raw"], data["neighbours_raw"], depth, data["poses"], data["K"]
    )
    assert terms.parts["recon"] == pytest.approx(float(expected), rel=1e-5)
    assert "pose_rot_err_deg" not in terms.parts  # the pose network is not trained
    terms.total.backward()
    assert all(float(p.grad.abs().sum()) == 0 for p in model.pose_net.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in model.decoder.parameters())
    # scaled translations: the same as warping with scaled poses
    scaled = data["poses"].clone()
    scaled[..., :3, 3] *= 0.1
    half, _ = photometric_loss(data["image_raw"], data["neighbours_raw"], depth, scaled, data["K"])
    _, terms = SfmObjective(
        poses="ground_truth", true_translation_scale=0.1, mask_weight=0.0, smooth_weight=0.0
    )(model, data)
    assert terms.parts["recon"] == pytest.approx(float(half), rel=1e-5)
    assert terms.parts["recon"] != pytest.approx(float(expected), rel=1e-3)
    del data["poses"]
    with pytest.raises(ValueError, match="poses"):
        objective(model, data)


def test_sfm_gradient_objective_stages(sequence_batch: dict) -> None:
    torch.manual_seed(0)
    data = _objective_batch(sequence_batch)
    stage1 = build_model("sfm_gradient", width_mult=SMALL, refine=False).train()
    outputs, terms = SfmObjective(stage=1, gradient_weight=2.0)(stage1, data)
    assert "grad" in terms.parts and terms.parts["grad"] > 0
    expected = (
        terms.parts["recon"]
        + 0.2 * terms.parts["mask"]
        + 0.1 * terms.parts["smooth"]
        + 2.0 * terms.parts["grad"]
    )
    assert float(terms.total.detach()) == pytest.approx(expected, rel=1e-5)
    terms.total.backward()
    assert all(p.grad is None for p in stage1.refine_decoder.parameters())
    for part in (stage1.encoder, stage1.depth_decoder, stage1.grad_decoder, stage1.pose_net):
        assert all(p.grad is not None for p in part.parameters())

    # stage 2: encoder and both decoders frozen (as the recipe's train.freeze does)
    stage2 = build_model("sfm_gradient", width_mult=SMALL, refine=True)
    stage2.load_state_dict(stage1.state_dict())
    for part in (stage2.encoder, stage2.depth_decoder, stage2.grad_decoder):
        part.requires_grad_(False)
    outputs, terms = SfmObjective(stage=2)(stage2.train(), data)
    assert "grad" not in terms.parts
    torch.testing.assert_close(outputs["depth"], outputs["depth_scales"][-1])
    terms.total.backward()
    assert all(p.grad is not None for p in stage2.refine_decoder.parameters())
    assert all(p.grad is not None for p in stage2.pose_net.parameters())
    assert all(p.grad is None for p in stage2.encoder.parameters())


def benchmark_training_step(
    name: str = "sfm", width: int = 128, height: int = 96, batch: int = 4, steps: int = 5
) -> float:
    """Print and return images/s of forward + loss + backward + Adam step on this CPU."""
    model = build_model(name, **({"refine": False} if name == "sfm_gradient" else {})).train()
    objective = SfmObjective(stage=1 if name == "sfm_gradient" else None)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 2e-4)
    k = torch.tensor([[0.7 * width, 0, width / 2 - 0.5], [0, 0.7 * width, height / 2 - 0.5]])
    k = torch.cat([k, torch.tensor([[0.0, 0.0, 1.0]])]).expand(batch, 3, 3)
    data = {
        "image": torch.randn(batch, 3, height, width),
        "neighbours": torch.randn(batch, 2, 3, height, width),
        "image_raw": torch.rand(batch, 3, height, width),
        "neighbours_raw": torch.rand(batch, 2, 3, height, width),
        "K": k,
    }
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        _, terms = objective(model, data)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    per_step = float(np.median(times[1:]))
    rate = batch / per_step
    print(
        f"{name} {width}x{height} batch {batch}, {torch.get_num_threads()} threads: "
        f"{per_step:.3f} s/step, {rate:.2f} images/s"
    )
    return rate


if __name__ == "__main__":
    torch.set_num_threads(1)
    benchmark_training_step("sfm")
    benchmark_training_step("sfm_gradient")
