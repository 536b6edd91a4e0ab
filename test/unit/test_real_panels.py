"""The real-photograph panel tool: layout of the panel, and refusals that write nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_perception.apps.real_panels import depth_tile, main


def test_depth_tile_colours_its_own_percentile_range() -> None:
    depth = np.tile(np.linspace(1.0, 3.0, 101), (4, 1))
    depth[0, 0] = np.nan
    tile, caption = depth_tile(depth)
    assert tile.shape == (4, 101, 3) and caption == "1.04..2.96 m"
    assert (tile[0, 0] == 0).all()  # NaN is black
    assert not np.array_equal(tile[1, 2], tile[1, -3])  # near and far differ
    flat, caption = depth_tile(np.full((3, 3), 2.0))
    assert caption.startswith("2.00..") and flat.shape == (3, 3, 3)
    none, caption = depth_tile(np.full((2, 2), np.nan))
    assert caption == "no valid depth" and not none.any()


def test_panel_rows_and_ground_truth_column(tmp_path: Path) -> None:
    out = tmp_path / "panel.png"
    argv = ["--label", "test", "--output", str(out), "--row-height", "40"]
    assert main([*argv, "--photos", "coffee.png", "motorcycle_left.png"]) == 0
    panel = cv2.imread(str(out))
    caption = 16  # make_panel's bar: max(16, height // 10)
    assert panel.shape[0] == 28 + 2 * (caption + 40)
    # coffee 600x400 -> 60 px per tile; motorcycle 741x500 -> 59 px, plus its ground truth
    assert panel.shape[1] == 3 * round(741 * 40 / 500)
    coffee_row = panel[28 + caption : 28 + caption + 40]
    assert not coffee_row[:, 2 * 60 :].any()  # two columns, padded with black
    depth = coffee_row[:, 60:120].reshape(-1, 3)
    assert len(np.unique(depth, axis=0)) > 10  # a coloured depth map, not a flat tile


def test_each_photo_runs_at_its_own_aspect_unless_squeezed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--label", "test", "--row-height", "40", "--photos", "astronaut.png", "coffee.png"]
    assert main([*argv, "--output", str(tmp_path / "squeezed.png"), "--squeeze"]) == 0
    assert "inputs 256x192)" in capsys.readouterr().out
    assert main([*argv, "--output", str(tmp_path / "kept.png")]) == 0
    # astronaut 512x512 -> 224x224, coffee 600x400 -> 288x192: the node's default
    assert "inputs 224x224, 288x192)" in capsys.readouterr().out
    squeezed = cv2.imread(str(tmp_path / "squeezed.png"))
    kept = cv2.imread(str(tmp_path / "kept.png"))
    assert squeezed.shape == kept.shape and not np.array_equal(squeezed, kept)


def test_refusals_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "panel.png"
    assert main(["--label", "x", "--output", str(out), "--photos", "no_such_photo.png"]) == 2
    assert "no_such_photo.png" in capsys.readouterr().err
    assert main(["--label", "x", "--output", str(tmp_path / "panel.jpg")]) == 2
    assert "must be a .png" in capsys.readouterr().err
    assert main(["--label", "x", "--output", str(out), "--row-height", "4"]) == 2
    assert "row-height" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
