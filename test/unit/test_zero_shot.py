"""``depth-perception eval`` on the real-image sets: the model beside the two layout baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from depth_perception.cli import main as cli_main
from depth_perception.sample_data import skimage_data_file
from training.data import fixtures as fx

ROWS = ("row prior", "constant")


def _run(tmp_path: Path, *argv: str) -> tuple[dict, str]:
    out = tmp_path / "zero_shot.json"
    assert cli_main(["eval", *argv, "--threads", "1", "--json", str(out)]) == 0
    return json.loads(out.read_text()), str(out)


def test_bundled_motorcycle_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = _run(tmp_path, "--dataset", "middlebury_skimage")
    printed = capsys.readouterr().out
    assert result["num_images"] == 1
    rows = result["rows"]
    model = next(name for name in rows if name not in ROWS)
    assert model.startswith("lightweight (bundled)")
    for name in (model, *ROWS):
        assert any(line.startswith(name) for line in printed.splitlines())
    # independent ground truth: z = f B / (d + doffs), unknown = non-finite
    disparity = np.load(skimage_data_file("motorcycle_disp.npz"))["arr_0"].astype(np.float64)
    known = np.isfinite(disparity)
    inverse = (disparity[known] + 31.086) / (994.978 * 0.193001)
    rows_index = np.broadcast_to(np.arange(disparity.shape[0])[:, None], disparity.shape)
    expected = spearmanr(rows_index[known], inverse).statistic
    assert rows["row prior"]["spearman"] == pytest.approx(expected, abs=1e-9)
    assert rows["row prior"]["median_abs_rel"] is None  # not applicable to a pure layout prior
    # the constant: Spearman undefined; aligned = the mean inverse depth
    assert rows["constant"]["spearman"] is None
    depth = 1.0 / inverse
    best = 1.0 / inverse.mean()
    assert rows["constant"]["aligned_abs_rel"] == pytest.approx(
        np.mean(np.abs(best - depth) / depth), rel=1e-9
    )
    assert rows["constant"]["median_abs_rel"] == pytest.approx(
        np.mean(np.abs(np.median(depth) - depth) / depth), rel=1e-6
    )
    # the bundled model is metric: every figure is there
    figures = rows[model]
    assert all(figures[k] is not None for k in figures)
    assert -1.0 <= figures["spearman"] <= 1.0 and 0.0 <= figures["aligned_a1"] <= 1.0
    # The bundled default meets issue 14's targets on this real scene as the node runs it
    # (aspect kept; stage 4: Spearman 0.722, aligned d1 0.713, metric AbsRel 0.166; stage 3
    # 0.696 / 0.701 / 0.182; the weights before issue 14 -0.059 / 0.494 / 0.402, the row prior
    # 0.666 / 0.768): a re-bundle that loses that fails here.
    assert figures["spearman"] >= 0.70 and figures["aligned_a1"] >= 0.70, figures
    assert figures["metric_abs_rel"] <= 0.25, figures
    assert figures["spearman"] > rows["row prior"]["spearman"], figures


def test_input_size_options_reach_the_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    default, _ = _run(tmp_path, "--dataset", "middlebury_skimage")
    resized, _ = _run(tmp_path, "--dataset", "middlebury_skimage", "--width", "320")
    assert default["input_size"] == [256, 192] and resized["input_size"] == [320, 192]
    assert default["aspect_kept"] and not resized["aspect_kept"]
    assert "at 320x192" in capsys.readouterr().out
    model = next(name for name in default["rows"] if name not in ROWS)
    assert default["rows"][model]["spearman"] != resized["rows"][model]["spearman"]
    # the baselines do not depend on the network input
    assert default["rows"]["row prior"] == resized["rows"]["row prior"]
    assert cli_main(["eval", "--dataset", "middlebury_skimage", "--width", "250"]) == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_the_model_row_keeps_the_aspect_as_the_node_does_beside_the_squeezed_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both, _ = _run(tmp_path, "--dataset", "middlebury_skimage")
    printed = capsys.readouterr().out
    wide, _ = _run(tmp_path, "--dataset", "middlebury_skimage", "--width", "288")
    squeezed, _ = _run(tmp_path, "--dataset", "middlebury_skimage", "--width", "256")
    model = next(name for name in both["rows"] if name not in ROWS)
    assert list(both["rows"]) == [model, f"{model}, squeezed to 256x192", *ROWS]
    # Motorcycle is 741x500 (aspect 1.48): kept, it runs at 288x192 (1.5), which is what a fixed
    # --width 288 gives; the squeezed row is a fixed 256x192 run
    assert both["rows"][model] == next(iter(wide["rows"].values()))
    assert both["rows"][f"{model}, squeezed to 256x192"] == next(iter(squeezed["rows"].values()))
    assert both["rows"][model] != both["rows"][f"{model}, squeezed to 256x192"]
    assert "each image at an input of its own aspect ratio" in printed and "(288x192)" in printed
    assert list(wide["rows"]) == [model, *ROWS]  # a fixed size: one model row


def test_middlebury_folder_with_a_row_linear_scene(tmp_path: Path) -> None:
    scenes = fx.write_middlebury_fixture(tmp_path / "mb")
    result, _ = _run(tmp_path, "--dataset", "middlebury", "--root", str(tmp_path / "mb"))
    assert result["num_images"] == 2
    assert [r["scene"] for r in result["per_image"]] == [s.path.name for s in scenes]
    # the fixture's true inverse depth is linear in the row: the row prior is exact there
    prior = result["rows"]["row prior"]
    assert prior["spearman"] == pytest.approx(1.0)
    assert prior["aligned_abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert prior["aligned_a1"] == 1.0


def test_views_keep_the_camera_consistent_and_bound_the_figures(tmp_path: Path) -> None:
    from training.data.middlebury import MiddleburyDataset
    from training.tools.zero_shot import VIEW_NAMES, views_of

    fx.write_middlebury_fixture(tmp_path / "mb")
    sample = MiddleburyDataset(tmp_path / "mb")[0]
    views = dict(views_of(sample))
    assert list(views) == list(VIEW_NAMES)
    k, w = sample.intrinsics, sample.width
    mirrored = views["mirrored"]
    assert mirrored.intrinsics.cx == pytest.approx(w - 1 - k.cx)
    np.testing.assert_array_equal(mirrored.image[:, 0], sample.image[:, -1])
    left = views["left cut"]
    cut = w - left.width
    assert cut == round(w * 0.03) and left.intrinsics.cx == pytest.approx(k.cx - cut)
    np.testing.assert_array_equal(left.depth, sample.depth[:, cut:])
    top = views["top cut"]
    assert top.intrinsics.cy == pytest.approx(k.cy - (sample.height - top.height))

    result, _ = _run(
        tmp_path, "--dataset", "middlebury", "--root", str(tmp_path / "mb"), "--views"
    )
    spread = result["views"]["rows"]
    assert result["views"]["names"] == list(VIEW_NAMES)
    assert result["views"]["per_view"]["as is"] == result["rows"]
    # inverse depth linear in the row stays so when mirrored or cut: the prior is exact in all
    assert spread["row prior"]["spearman"] == {"mean": 1.0, "min": 1.0, "max": 1.0}
    model = next(name for name in spread if name not in ROWS)
    for key, figure in spread[model].items():
        per_view = [rows[model][key] for rows in result["views"]["per_view"].values()]
        assert figure["min"] == min(per_view) and figure["max"] == max(per_view), key
        assert figure["min"] <= figure["mean"] <= figure["max"]


def test_zero_shot_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["eval", "--dataset", "middlebury"]) == 2
    assert "needs --root" in capsys.readouterr().err
    assert cli_main(["eval", "--dataset", "middlebury_skimage", "--root", str(tmp_path)]) == 2
    assert "takes no --root" in capsys.readouterr().err
    assert cli_main(["eval", "--dataset", "middlebury", "--root", str(tmp_path)]) == 2
    assert "no Middlebury 2014 scene" in capsys.readouterr().err
    assert cli_main(["eval", "--dataset", "synthetic", "--views"]) == 2
    assert "--views scores real images" in capsys.readouterr().err
