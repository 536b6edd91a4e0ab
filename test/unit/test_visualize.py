"""Tests of the visualisation helpers (exact pixel values on small arrays)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_perception import visualize
from depth_perception.visualize import (
    colorize_depth,
    colorize_labels,
    make_palette,
    make_panel,
    overlay,
)


def test_no_dataset_palette_here() -> None:
    assert not hasattr(visualize, "CITYSCAPES_PALETTE")


def test_make_palette_values_and_distinct() -> None:
    # VOC colours of indices 1..4: bit 0 -> R bit 7, bit 1 -> G bit 7, bit 2 -> B bit 7.
    np.testing.assert_array_equal(
        make_palette(4), [[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    )
    # Index 9 = 0b001_001 -> R bits 7 and 6 -> (192, 0, 0).
    np.testing.assert_array_equal(make_palette(9)[8], [192, 0, 0])
    pal = make_palette(256)
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal}) == 256
    assert not (pal == 0).all(axis=1).any()  # black stays free for unlabelled pixels
    np.testing.assert_array_equal(make_palette(256)[:19], make_palette(19))  # deterministic
    assert make_palette(0).shape == (0, 3)
    with pytest.raises(ValueError):
        make_palette(257)
    with pytest.raises(ValueError):
        make_palette(-1)


def test_colorize_labels_exact() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    labels = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.uint8)
    out = colorize_labels(labels, palette)
    expected = np.array(
        [[[10, 20, 30], [40, 50, 60], [0, 0, 0]], [[0, 0, 0], [40, 50, 60], [10, 20, 30]]],
        dtype=np.uint8,
    )
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    # Even a 256-colour palette leaves id 255 black.
    full = np.full((256, 3), 7, dtype=np.uint8)
    np.testing.assert_array_equal(colorize_labels(labels, full)[1, 0], [0, 0, 0])
    with pytest.raises(ValueError):
        colorize_labels(labels.astype(np.int32), palette)
    with pytest.raises(ValueError):
        colorize_labels(labels, palette[:, :2])


def test_overlay_blend_and_ignore() -> None:
    rgb = np.full((2, 2, 3), 100, dtype=np.uint8)
    color = np.full((2, 2, 3), 200, dtype=np.uint8)
    color[0, 0] = (0, 40, 255)
    labels = np.array([[0, 1], [255, 3]], dtype=np.uint8)
    out = overlay(rgb, color, 0.25, labels=labels)
    # 0.75 * 100 + 0.25 * 200 = 125; 0.75*100 + 0.25*(0, 40, 255) = (75, 85, 138.75 -> 139).
    np.testing.assert_array_equal(out[0, 0], [75, 85, 139])
    np.testing.assert_array_equal(out[0, 1], [125, 125, 125])
    np.testing.assert_array_equal(out[1, 0], [100, 100, 100])  # unlabelled keeps the input
    np.testing.assert_array_equal(out[1, 1], [125, 125, 125])
    np.testing.assert_array_equal(overlay(rgb, color, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, color, 1.0), color)
    assert overlay(rgb, color, 0.5) is not rgb
    with pytest.raises(ValueError):
        overlay(rgb, color, 1.5)
    with pytest.raises(ValueError):
        overlay(rgb, color[:1], 0.5)
    with pytest.raises(ValueError):
        overlay(rgb, color, 0.5, labels=labels[:1])


def _turbo(indices: list[int]) -> np.ndarray:
    bgr = cv2.applyColorMap(np.array([indices], dtype=np.uint8), cv2.COLORMAP_TURBO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[0]


def test_colorize_depth_linear() -> None:
    depth = np.array([[1.0, 5.0, 3.0, np.nan], [np.inf, 0.0, -1.0, 10.0]], dtype=np.float32)
    depth_plus = np.array([[0.5, 2.0]], dtype=np.float32)
    out = colorize_depth(depth, 1.0, 5.0)
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    # min -> index 255, max -> 0, 3 m -> t = 0.5 -> 127.5 -> 128 (rint, half to even);
    # farther than max clips to 0.
    np.testing.assert_array_equal(out[0, :3], _turbo([255, 0, 128]))
    np.testing.assert_array_equal(out[1, 3], _turbo([0])[0])
    # NaN, +inf, 0 and negative are black.
    np.testing.assert_array_equal(out[0, 3], [0, 0, 0])
    np.testing.assert_array_equal(out[1, :3], np.zeros((3, 3)))
    # Near is warm: TURBO's top end is red, its bottom end blue.
    near, far = out[0, 0].astype(int), out[0, 1].astype(int)
    assert near[0] > near[2] and far[2] > far[0]
    # Nearer than min clips to the near colour; 2 m -> (1 - 0.25) * 255 = 191.25 -> 191.
    np.testing.assert_array_equal(colorize_depth(depth_plus, 1.0, 5.0)[0], _turbo([255, 191]))


def test_colorize_depth_log_and_other_colormap() -> None:
    depth = np.array([[1.0, 10.0, 1000.0]], dtype=np.float32)
    # ln 10 / ln 1000 = 1/3 -> (1 - 1/3) * 255 = 170.
    out = colorize_depth(depth, 1.0, 1000.0, log_scale=True)
    np.testing.assert_array_equal(out[0], _turbo([255, 170, 0]))
    jet = colorize_depth(depth, 1.0, 1000.0, colormap=cv2.COLORMAP_JET)
    # Linear: 10 m -> t = 9/999 -> (1 - t) * 255 = 252.70 -> 253.
    expected = cv2.cvtColor(
        cv2.applyColorMap(np.array([[255, 253, 0]], np.uint8), cv2.COLORMAP_JET),
        cv2.COLOR_BGR2RGB,
    )
    np.testing.assert_array_equal(jet, expected)
    with pytest.raises(ValueError):
        colorize_depth(depth, 5.0, 1.0)
    with pytest.raises(ValueError):
        colorize_depth(depth, 0.0, 10.0, log_scale=True)


def test_make_panel_layout_and_captions() -> None:
    a = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    b = np.full((8, 4), 77, dtype=np.uint8)  # grey image, already at the common height
    panel = make_panel([a, b], ["depth", ""], caption_height=20)
    # Common height 8 (the tallest); a is enlarged x2 to 8x12; captions 20 px above.
    assert panel.shape == (28, 12 + 4, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[20:, :12], np.repeat(np.repeat(a, 2, axis=0), 2, axis=1))
    np.testing.assert_array_equal(panel[20:, 12:], np.full((8, 4, 3), 77))
    assert panel[:20, :12].any()  # "depth" was drawn
    assert not panel[:20, 12:].any()  # empty caption stays black
    small = make_panel([a, b], ["a", "b"], height=4)
    assert small.shape[0] == 4 + 16 and small.shape[1] == 6 + 2
    np.testing.assert_array_equal(small[16:, :6], a)
    with pytest.raises(ValueError):
        make_panel([a, b], ["only one"])
    with pytest.raises(ValueError):
        make_panel([], [])
    with pytest.raises(ValueError):
        make_panel([a.astype(np.float32)], ["x"])


def test_colorize_and_overlay_write_into_given_buffers() -> None:
    from depth_perception.visualize import make_palette

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 30, (12, 16), dtype=np.uint8)
    labels[0, 0] = 255
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    palette = make_palette(19)
    expected_colors = colorize_labels(labels, palette)
    expected = overlay(rgb, expected_colors, 0.4, labels)
    colors, scratch, blended = (np.full((12, 16, 3), 7, np.uint8) for _ in range(3))
    assert colorize_labels(labels, palette, out=colors, scratch=scratch) is colors
    np.testing.assert_array_equal(colors, expected_colors)
    assert overlay(rgb, colors, 0.4, labels, out=blended) is blended
    np.testing.assert_array_equal(blended, expected)
    with pytest.raises(ValueError, match="out must be"):
        overlay(rgb, colors, 0.4, labels, out=np.zeros((12, 15, 3), np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        colorize_labels(labels, palette, out=np.zeros((12, 16, 3), np.float32))
