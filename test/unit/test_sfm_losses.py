"""``training.tools.sfm_losses``: held-out SfM losses of checkpoints (paper a, Table II)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depth_perception.checkpoint import CheckpointMeta, save_checkpoint
from depth_perception.models import build_model
from training.tools.sfm_losses import heldout_losses, main

SIZE = (64, 64)  # (width, height): multiples of 32, fast


def _save(directory: Path, name: str, **args) -> str:
    torch.manual_seed(0)
    model = build_model(name, width_mult=0.25, **args)
    meta = CheckpointMeta.for_model(name, model, {"width_mult": 0.25, **args}, input_size=SIZE)
    return str(save_checkpoint(directory / name, model, meta))


def test_sfm_checkpoint_terms(tmp_path: Path) -> None:
    path = _save(tmp_path, "sfm")
    result = heldout_losses(path, stride=4, length=3, batch_size=2)
    assert result["model"] == "sfm" and result["stage"] is None and result["samples"] == 3
    assert result["recon"] > 0 and result["smooth"] > 0 and result["mask"] > 0
    assert 0 < result["pose_rot_err_deg"] < 30
    assert "grad" not in result
    # the same samples give the same figures (training-mode forward, no randomness)
    again = heldout_losses(path, stride=4, length=3, batch_size=3)
    assert again["recon"] == pytest.approx(result["recon"], rel=1e-5)
    # true poses: another warp, no pose-network rotation error
    oracle = heldout_losses(path, stride=4, length=3, poses="ground_truth")
    assert "pose_rot_err_deg" not in oracle
    assert oracle["recon"] != pytest.approx(result["recon"], rel=1e-4)


def test_gradient_stage_follows_the_checkpoint(tmp_path: Path) -> None:
    stage1 = heldout_losses(_save(tmp_path, "sfm_gradient", refine=False), stride=4, length=2)
    assert stage1["stage"] == 1 and stage1["grad"] >= 0
    stage2 = heldout_losses(_save(tmp_path, "sfm_gradient", refine=True), stride=4, length=2)
    assert stage2["stage"] == 2 and "grad" not in stage2


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, "sfm")
    with pytest.raises(ValueError, match="sources"):
        heldout_losses(path, frame_offsets=(-2, -1, 1), length=1)
    with pytest.raises(ValueError, match="length"):
        heldout_losses(path, length=0)
    torch.manual_seed(0)
    other = build_model("lightweight")
    meta = CheckpointMeta.for_model("lightweight", other, {}, input_size=(64, 64))
    lightweight = str(save_checkpoint(tmp_path / "lw", other, meta))
    with pytest.raises(ValueError, match="not sfm"):
        heldout_losses(lightweight, length=1)


def test_command_line_prints_and_writes_json(tmp_path: Path, capsys) -> None:
    path = _save(tmp_path, "sfm")
    out = tmp_path / "losses.json"
    assert main([path, "--stride", "4", "--length", "2", "--json", str(out)]) == 0
    assert "recon" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())
    assert result["samples"] == 2 and result["recon"] > 0
