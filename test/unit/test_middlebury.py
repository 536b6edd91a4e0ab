"""The Middlebury 2014 loader on fixtures in the exact on-disk format, and the bundled scene."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from training.config import DataConfig
from training.data import fixtures as fx
from training.data import make_dataset
from training.data.base import CorruptSampleError
from training.data.middlebury import (
    MiddleburyDataset,
    MiddleburySkimageDataset,
    read_calibration,
    read_pfm,
)

# top row (1, 2, 3), bottom row (4, 5, inf); a PFM stores the bottom row first
_TOP_FIRST = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, np.inf]], dtype=np.float32)
_BOTTOM_FIRST = (4.0, 5.0, float("inf"), 1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("header", "fmt"),
    [
        (b"Pf\n3 2\n-1\n", "<6f"),  # Middlebury's files: little endian, negative scale
        (b"Pf\n3 2\n1.000000\n", ">6f"),  # positive scale: big endian
        (b"Pf 3 2 -0.5\n", "<6f"),  # header tokens on one line; the magnitude is unused
    ],
)
def test_read_pfm_byte_order_and_row_order(tmp_path: Path, header: bytes, fmt: str) -> None:
    path = tmp_path / "d.pfm"
    path.write_bytes(header + struct.pack(fmt, *_BOTTOM_FIRST))
    out = read_pfm(path)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, _TOP_FIRST)


def test_read_pfm_colour_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "c.pfm"
    values = np.arange(2 * 1 * 3, dtype=np.float32)  # bottom pixel (0, 1, 2), top (3, 4, 5)
    path.write_bytes(b"PF\n1 2\n-1\n" + values.astype("<f4").tobytes())
    np.testing.assert_array_equal(read_pfm(path), [[[3, 4, 5]], [[0, 1, 2]]])
    for content, message in (
        (b"P5\n3 2\n255\n" + bytes(6), "not a PFM"),
        (b"Pf\n3 2\n0\n" + bytes(24), "non-zero"),
        (b"Pf\n3 2\n-1\n" + bytes(20), "expected 24"),
        (b"Pf\n3", "truncated"),
        (b"Pf\nthree 2\n-1\n" + bytes(24), "malformed"),
    ):
        path.write_bytes(content)
        with pytest.raises(CorruptSampleError, match=message):
            read_pfm(path)
    with pytest.raises(CorruptSampleError, match="not found"):
        read_pfm(tmp_path / "missing.pfm")


def test_read_calibration_exact_format(tmp_path: Path) -> None:
    path = tmp_path / "calib.txt"
    path.write_text(
        fx.MIDDLEBURY_CALIB_TEMPLATE.format(
            f=3979.911,
            cx=1244.772,
            cx1=1369.115,
            cy=1019.507,
            doffs=124.343,
            baseline=193.001,
            width=2964,
            height=1988,
        ),
        encoding="utf-8",
    )
    calib = read_calibration(path)
    assert calib.focal == 3979.911 and calib.doffs == 124.343
    assert calib.baseline_m == pytest.approx(0.193001)
    assert (calib.width, calib.height) == (2964, 1988)
    k = calib.intrinsics()
    assert (k.fx, k.fy, k.cx, k.cy) == (3979.911, 3979.911, 1244.772, 1019.507)
    assert calib.extra["ndisp"] == "270" and calib.extra["cam1"].startswith("[3979.911")
    path.write_text("cam0=[1 0 0; 0 1 0; 0 0 1]\ndoffs=1\nwidth=4\nheight=3\n")
    with pytest.raises(CorruptSampleError, match="lacks baseline"):
        read_calibration(path)
    path.write_text("cam0=[1 0 0; 0 1 0]\ndoffs=1\nbaseline=5\nwidth=4\nheight=3\n")
    with pytest.raises(CorruptSampleError, match="3x3"):
        read_calibration(path)


@pytest.fixture()
def scenes(tmp_path: Path) -> list[fx.MiddleburyScene]:
    return fx.write_middlebury_fixture(tmp_path / "middlebury")


def test_middlebury_depth_from_disparity(scenes: list[fx.MiddleburyScene]) -> None:
    dataset = MiddleburyDataset(scenes[0].path.parent)
    assert len(dataset) == 2
    for scene, sample in zip(scenes, (dataset[0], dataset[1]), strict=True):
        h, w = scene.disparity.shape
        assert sample.meta["scene"] == scene.path.name
        np.testing.assert_array_equal(sample.image, scene.image)
        # the big-endian scene reads like the little-endian one: disparity grows down the rows
        row, col = h - 1, 2
        expected = (
            scene.focal * scene.baseline_mm / 1000.0 / (scene.disparity[row, col] + scene.doffs)
        )
        assert sample.depth[row, col] == pytest.approx(expected, rel=1e-6)
        assert sample.depth[0, 0] > sample.depth[h - 1, 0]  # the top row is farther
        assert not sample.valid[0, w - 1] and sample.depth[0, w - 1] == 0.0  # inf = unknown
        assert sample.valid.sum() == h * w - 1
        k = sample.intrinsics
        assert (k.fx, k.cx, k.cy, k.width, k.height) == (scene.focal, scene.cx, scene.cy, w, h)


def test_middlebury_scene_selection_and_errors(
    scenes: list[fx.MiddleburyScene], tmp_path: Path
) -> None:
    root = scenes[0].path.parent
    one = MiddleburyDataset(root, scenes=["scene1-perfect"])
    assert len(one) == 1 and one[0].meta["scene"] == "scene1-perfect"
    assert len(MiddleburyDataset(scenes[0].path)) == 1  # a scene folder itself
    with pytest.raises(ValueError, match="not under"):
        MiddleburyDataset(root, scenes=["Motorcycle-perfect"])
    with pytest.raises(ValueError, match="no Middlebury 2014 scene"):
        MiddleburyDataset(tmp_path / "empty")
    calib = scenes[0].path / "calib.txt"
    calib.write_text(calib.read_text().replace("width=8", "width=9"))
    with pytest.raises(CorruptSampleError, match=r"calib\.txt says 9x6"):
        MiddleburyDataset(root)[0]


def test_middlebury_through_the_dataset_factory(scenes: list[fx.MiddleburyScene]) -> None:
    cfg = DataConfig(dataset="middlebury", root=str(scenes[0].path.parent), width=16, height=12)
    sample = make_dataset(cfg, "test")[1]
    assert sample.image.shape == (12, 16, 3) and sample.intrinsics.width == 16
    with pytest.raises(ValueError, match="takes no root"):
        make_dataset(DataConfig(dataset="middlebury_skimage", root="x"), "test")


def test_skimage_motorcycle() -> None:
    sample = MiddleburySkimageDataset()[0]
    assert sample.image.shape == (500, 741, 3) and sample.image.dtype == np.uint8
    from depth_perception.sample_data import skimage_data_file

    disparity = np.load(skimage_data_file("motorcycle_disp.npz"))["arr_0"]
    known = np.isfinite(disparity)
    np.testing.assert_array_equal(sample.valid, known)  # NaN and inf = unknown
    # the nearest pixel has the largest disparity: z = f B / (d + doffs), B in metres
    near = np.unravel_index(np.argmax(np.where(known, disparity, -1.0)), disparity.shape)
    expected = 994.978 * 0.193001 / (float(disparity[near]) + 31.086)
    assert sample.depth[near] == pytest.approx(expected, rel=1e-6)
    assert sample.depth[sample.valid].min() == pytest.approx(expected, rel=1e-6)
    assert 1.5 < np.median(sample.depth[sample.valid]) < 5.0  # a tabletop scene, metres
    assert sample.intrinsics.cx == 311.193 and sample.intrinsics.cy == 254.877
