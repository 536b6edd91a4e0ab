"""`depth-perception infer` on PNGs and a video written by the test; the drawing helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_perception.apps.infer_tool import (
    depth_to_png_mm,
    depth_with_scale_bar,
    iter_inputs,
    nice_ticks,
    overlay_with_legend,
)
from depth_perception.cli import main as cli_main
from depth_perception.visualize import colorize_depth, make_palette
from training.data.fixtures import pattern_rgb

W, H = 64, 48
MODEL_OPTIONS = ["--backend", "torch", "--input-width", "64", "--input-height", "64"]


def _write_inputs(root):
    images = root / "images"
    images.mkdir()
    for i in range(2):
        rgb = pattern_rgb(W, H, 60 * i)
        cv2.imwrite(str(images / f"frame{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(3):
        writer.write(cv2.cvtColor(pattern_rgb(W, H, 90 * i), cv2.COLOR_RGB2BGR))
    writer.release()
    return images, video


def test_infer_writes_panels_depth_files_and_video(tmp_path, capsys):
    images, video = _write_inputs(tmp_path)
    out = tmp_path / "out"
    rc = cli_main(
        [
            "infer",
            str(images),
            str(video),
            "-o",
            str(out),
            "--save-depth",
            "png",
            "npy",
            "--video",
            str(out / "panels.avi"),
            "--fourcc",
            "MJPG",
            "--no-progress",
            *MODEL_OPTIONS,
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "5 frames" in printed
    # 64x48 frames into a 64x64 input are squeezed: warned once (one size), with the fix
    assert printed.count("warning: images of 64x48 (aspect 1.33)") == 1
    assert "input_width: 96 and input_height: 64" in printed
    names = ["frame0", "frame1", "clip_000000", "clip_000001", "clip_000002"]
    for name in names:
        panel = cv2.imread(str(out / f"{name}_panel.png"), cv2.IMREAD_UNCHANGED)
        assert panel is not None and panel.dtype == np.uint8
        # Caption bar (16 px at this height) above the 48-px images; three columns wider than
        # the images because of the scale bar and the legend.
        assert panel.shape[0] == H + 16 and panel.shape[1] > 3 * W + 40
        png = cv2.imread(str(out / f"{name}_depth.png"), cv2.IMREAD_UNCHANGED)
        metres = np.load(out / f"{name}_depth.npy")
        assert png.dtype == np.uint16 and png.shape == (H, W)
        assert metres.dtype == np.float32 and metres.shape == (H, W)
        valid = np.isfinite(metres)
        assert valid.any()
        # round(depth * 1000) of the stored float32 value, computed exactly (float64).
        expected = np.round(metres[valid].astype(np.float64) * 1000).astype(np.uint16)
        np.testing.assert_array_equal(png[valid], expected)
        assert np.all(png[~valid] == 0)
    capture = cv2.VideoCapture(str(out / "panels.avi"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == len(names)


def test_infer_refuses_bad_inputs(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert cli_main(["infer", str(tmp_path / "notes.txt"), *MODEL_OPTIONS]) == 2
    assert "unknown file type" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        list(iter_inputs([tmp_path / "missing.png"]))
    with pytest.raises(ValueError, match="no image or video"):
        list(iter_inputs([tmp_path]))


def test_iter_inputs_every_and_max_frames(tmp_path):
    _, video = _write_inputs(tmp_path)
    frames = list(iter_inputs([video], every=2))
    assert [f.index for f in frames] == [0, 2]
    assert len(list(iter_inputs([video], max_frames=1))) == 1
    assert frames[0].rgb.shape == (H, W, 3)


def test_depth_to_png_mm():
    depth = np.array([[1.2346, np.nan, np.inf, -1.0], [0.0, 70.0, 65.535, 0.0004]], np.float32)
    mm = depth_to_png_mm(depth)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[1235, 0, 0, 0], [0, 0, 65535, 0]]


def test_nice_ticks():
    assert nice_ticks(0.5, 3.7) == [1.0, 2.0, 3.0]
    assert nice_ticks(0.1, 1.0, count=5) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError):
        nice_ticks(2.0, 1.0)


def test_scale_bar_matches_the_colour_map():
    depth = np.linspace(1.0, 5.0, 200 * 100, dtype=np.float32).reshape(200, 100)
    image = depth_with_scale_bar(depth, 1.0, 5.0)
    assert image.shape[0] == 200 and image.shape[1] > 100
    np.testing.assert_array_equal(image[:, :100], colorize_depth(depth, 1.0, 5.0))
    strip = image[:, 100:]
    far = colorize_depth(np.array([[5.0]], np.float32), 1.0, 5.0)[0, 0]
    near = colorize_depth(np.array([[1.0]], np.float32), 1.0, 5.0)[0, 0]
    # The ramp runs far (top) to near (bottom) with the same colours as the image.
    filled = strip.any(axis=-1).sum(axis=0)
    column = strip[:, int(np.argmax(filled > 150)) + 2]  # inside the ramp, the tallest drawing
    top = next(i for i in range(200) if column[i].any())
    bottom = max(i for i in range(200) if column[i].any())
    np.testing.assert_array_equal(column[top], far)
    np.testing.assert_array_equal(column[bottom], near)
    # Tick labels are white text right of the ramp.
    assert (strip[:, 30:] == 255).all(axis=-1).any()


def test_legend_lists_only_present_classes():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    labels = np.full((60, 80), 255, np.uint8)
    labels[:, :40] = 2
    labels[:30, 40:] = 5
    palette = make_palette(8)
    names = [f"c{i}" for i in range(8)]
    image = overlay_with_legend(rgb, labels, palette, names)
    legend = image[:, 80:]
    colours = {tuple(c) for c in legend.reshape(-1, 3)}
    assert tuple(palette[2]) in colours and tuple(palette[5]) in colours
    assert tuple(palette[3]) not in colours
    # Unlabelled pixels keep the input.
    assert (image[40:, 60] == 100).all()
