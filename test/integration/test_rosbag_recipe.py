"""lightweight_rosbag.yaml end to end: a bag written here, fine-tuned from the bundled default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depth_perception import cli
from depth_perception.checkpoint import load_checkpoint, load_model
from depth_perception.models import build_model
from training.config import load_config
from training.data import fixtures as fx
from training.data import make_dataset

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "training" / "configs" / "lightweight_rosbag.yaml"


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _bag_settings(bag: fx.RosbagFixture) -> list[str]:
    return [
        f"data.root={bag.path}",
        f"data.options.rgb_topic={bag.topics['rgb']}",
        f"data.options.depth_topic={bag.topics['depth']}",
        f"data.options.camera_info_topic={bag.topics['info']}",
        "data.options.val_fraction=0.25",
    ]


def test_recipe_splits_the_recording_in_time(tmp_path: Path) -> None:
    bag = fx.write_rosbag_fixture(tmp_path / "bag", frames=9, depth_encoding="32FC1")
    cfg = load_config(RECIPE, _bag_settings(bag))
    train = make_dataset(cfg.data, cfg.data.train_split)
    val = make_dataset(cfg.data, cfg.data.val_split)
    # 8 paired frames (the last depth is late): the last quarter, in time, validates
    assert (len(train), len(val)) == (6, 2)
    stamps = [s.meta["stamp_ns"] for s in (*[train[i] for i in range(6)], val[0], val[1])]
    assert stamps == sorted(stamps) == bag.stamps_ns[:8]
    assert train[0].image.shape == (192, 256, 3) and val[1].valid.any()


@pytest.mark.parametrize("depth_encoding", ["16UC1", "32FC1"])
def test_recipe_fine_tunes_the_bundled_default_on_a_bag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth_encoding: str
) -> None:
    bag = fx.write_rosbag_fixture(
        tmp_path / "bag", frames=9, size=(64, 48), depth_encoding=depth_encoding
    )
    monkeypatch.chdir(REPO)  # the recipe's init_checkpoint is relative to the repository
    run_dir = tmp_path / "run"
    settings = [
        *_bag_settings(bag),
        "data.width=128",
        "data.height=96",
        "data.num_workers=0",
        "train.epochs=1",
        "train.steps_per_epoch=3",
        "train.batch_size=2",
        "train.device=cpu",
        "train.val_batches=1",
        "train.image_every_steps=0",
    ]
    args = ["train", "--config", str(RECIPE), "--run-dir", str(run_dir), "--no-progress"]
    assert cli.main(args + [a for s in settings for a in ("--set", s)]) == 0
    meta, state = load_checkpoint(run_dir / "final")
    prov = meta.provenance
    assert meta.model == "lightweight" and [d.name for d in prov.datasets] == ["rosbag"]
    assert prov.trained is True and prov.steps == 3
    assert prov.parent == "depth_perception/weights/lightweight"
    bundled, _ = load_model(REPO / "depth_perception" / "weights" / "lightweight")
    fresh = build_model("lightweight", num_classes=14, min_depth=0.5, max_depth=10.0)
    trained = load_model(run_dir / "final")[0].state_dict()
    ref = bundled.state_dict()
    moved = sum(
        float((trained[k] - ref[k]).abs().sum()) for k in ref if ref[k].is_floating_point()
    )
    apart = sum(
        float((fresh.state_dict()[k] - ref[k]).abs().sum())
        for k in ref
        if ref[k].is_floating_point()
    )
    # Started from the bundled weights (far closer to them than a fresh model is) and trained.
    assert 0 < moved < 0.05 * apart
    assert set(state) == set(ref)
