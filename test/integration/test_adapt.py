"""``depth-perception adapt`` end to end on a bag the test writes, and its objective."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_perception.checkpoint import load_checkpoint, load_model
from depth_perception.cli import main as cli_main
from depth_perception.config import PerceptionConfig
from depth_perception.runtime import load_pipeline
from depth_perception.synthetic.randomized import make_world
from training.data.posed_bag_fixture import IMAGE_TOPIC, base_poses_from_camera, write_posed_bag
from training.objectives.photometric import PhotometricObjective, view_synthesis_loss
from training.tools.adapt_study import noisy_odometry

START = "depth_perception/weights/lightweight"
W, H = 96, 64
T0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def frames() -> list:
    """A robot's camera driving through a randomised-domain room (2 cm per frame)."""
    world = make_world("indoor", W, H, 0, 70.0, 9100, "randomized")
    return [world.render(i) for i in range(0, 30, 2)]  # 4 cm apart, 15 frames


def write_bag(path: Path, frames: list, **kwargs) -> Path:
    stamps = [T0 + i * 100_000_000 for i in range(len(frames))]
    base = base_poses_from_camera([f.pose for f in frames])
    write_posed_bag(
        path,
        [f.rgb for f in frames],
        stamps,
        frames[0].intrinsics,
        list(zip(stamps, base, strict=True)),
        **kwargs,
    )
    return path


def test_adapt_end_to_end(tmp_path: Path, frames: list, capsys) -> None:
    bag = write_bag(tmp_path / "bag", frames, storage="mcap", compressed=True)
    out = tmp_path / "adapted"
    argv = [
        "adapt",
        str(bag),
        "--image-topic",
        "/camera/image_raw/compressed",
        "--weights",
        START,
        "--out",
        str(out),
        "--width",
        str(W),
        "--height",
        str(H),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--anchor-weight",
        "0.1",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "photometric error on" in printed
    meta, state = load_checkpoint(out)
    start_meta, start_state = load_checkpoint(START)
    p = meta.provenance
    assert p.adapted and p.trained and p.created_by == "depth-perception adapt"
    assert p.parent == START and p.steps == 2
    assert [(d.name, d.source) for d in p.datasets] == [("rosbag_posed", str(bag))]
    assert set(p.metrics) == {"photometric_before", "photometric_after"}
    # The segmentation head was kept: its class names too (not [] with 14 classes).
    assert meta.class_names == start_meta.class_names
    assert (meta.input_width, meta.input_height, meta.metric) == (W, H, True)
    changed = [k for k in state if not torch.equal(state[k], start_state[k])]
    assert any(k.startswith("depth_heads") for k in changed)
    assert (tmp_path / "adapted_panel.png").is_file()
    assert list((tmp_path / "adapted_run" / "tb").iterdir())
    # The node loads it like any other checkpoint.
    loaded = load_pipeline(PerceptionConfig(weights=str(out) + ".safetensors", backend="torch"))
    pred = loaded.predictor.predict(frames[0].rgb, frames[0].intrinsics)
    assert np.isfinite(pred.depth).any()
    # The same output path again is refused unless --overwrite.
    assert cli_main(argv) == 2
    assert "exists" in capsys.readouterr().err
    model, _ = load_model(out)  # strict load
    assert json.loads((tmp_path / "adapted.json").read_text())["provenance"]["adapted"]
    del model


def test_adapt_refuses_a_bag_without_tf(tmp_path: Path, frames: list, capsys) -> None:
    bag = write_bag(tmp_path / "bag", frames[:6], tf_static=False)
    rc = cli_main(["adapt", str(bag), "--image-topic", IMAGE_TOPIC, "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no TF between 'base_link' and 'camera_optical_frame'" in err
    assert not (tmp_path / "o.safetensors").exists() and not (tmp_path / "o_run").exists()


def test_true_metric_depth_minimises_the_photometric_loss(frames: list) -> None:
    """With known motion the loss pins the depth's scale: the true depth beats it scaled."""
    from depth_perception.synthetic.world import DEPTH_RANGES
    from training.data.tf_tree import invert_transform

    t, prev, nxt = frames[5], frames[3], frames[7]
    img = lambda f: torch.from_numpy(f.rgb).permute(2, 0, 1).float()[None] / 255  # noqa: E731
    target = img(t)
    sources = torch.stack([img(prev), img(nxt)], 1)
    poses = torch.tensor(
        np.stack([invert_transform(f.pose) @ t.pose for f in (prev, nxt)])[None]
    ).float()
    k = torch.tensor(t.intrinsics.matrix)[None].float()
    depth = torch.from_numpy(np.clip(t.depth, *DEPTH_RANGES["indoor"]))[None, None].float()
    losses = {
        s: float(view_synthesis_loss(target, sources, depth * s, poses, k)[0])
        for s in (0.7, 0.85, 1.0, 1.2, 1.4)
    }
    assert min(losses, key=losses.get) == 1.0, losses
    # A camera that does not move: auto-masking keeps no pixel, so nothing is learnt from it.
    still = torch.eye(4).repeat(1, 2, 1, 1)
    same = torch.stack([target, target], 1)
    loss, mask = view_synthesis_loss(target, same, depth, still, k)
    assert not mask.any() and float(loss) == 0.0


def test_photometric_objective_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="not understood"):
        PhotometricObjective.from_args({"ssim": 1})
    with pytest.raises(ValueError, match="init_checkpoint"):
        PhotometricObjective.from_args({"anchor_weight": 0.1})
    with pytest.raises(ValueError, match="ssim_alpha"):
        PhotometricObjective.from_args({"ssim_alpha": 2})


def test_noisy_odometry_scales_translations() -> None:
    poses = [np.eye(4) for _ in range(3)]
    for i, p in enumerate(poses):
        p[0, 3] = i
    noisy = noisy_odometry(poses, 1.02, 0.0, 0)
    assert [p[0, 3] for p in noisy] == pytest.approx([0, 1.02, 2.04])


def test_recipe_form_trains_on_the_bag(tmp_path: Path, frames: list) -> None:
    """``train --config lightweight_adapt_rosbag`` is the same run (args fit the bundled)."""
    bag = write_bag(tmp_path / "bag", frames)
    overrides = [
        f"data.root={bag}",
        f"data.options.image_topic={IMAGE_TOPIC}",
        f"data.width={W}",
        f"data.height={H}",
        "train.epochs=1",
        "train.steps_per_epoch=1",
        "train.batch_size=2",
        "train.device=cpu",
    ]
    argv = ["train", "--config", "lightweight_adapt_rosbag", "--run-dir", str(tmp_path / "run")]
    for item in overrides:
        argv += ["--set", item]
    assert cli_main([*argv, "--no-progress"]) == 0
    meta, _ = load_checkpoint(tmp_path / "run" / "final")
    start, _ = load_checkpoint(START)
    assert meta.model_args == start.model_args and meta.class_names == start.class_names


def test_metric_factor_follows_the_canonical_focal_length() -> None:
    from training.objectives.photometric import metric_factor

    model, meta = load_model(START)
    k = torch.tensor([[[91.4, 0, 47.5], [0, 91.4, 31.5], [0, 0, 1]]]).float()
    focal = meta.model_args.get("canonical_focal_px")
    exponent = meta.model_args.get("focal_exponent", 1.0)
    expected = 1.0 if focal is None else (91.4 / focal) ** exponent
    assert float(metric_factor(model, k)) == pytest.approx(expected)
