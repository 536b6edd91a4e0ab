"""Dataset loaders of ``training.data`` on tiny fixtures written in the exact on-disk formats."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_perception.camera import CameraIntrinsics
from training.data import augment
from training.data import fixtures as fx
from training.data.base import CorruptSampleError
from training.data.cityscapes import CITYSCAPES_CLASSES, CityscapesDataset
from training.data.kitti import (
    KittiDepthDataset,
    KittiRawSequenceDataset,
    KittiSelectionDataset,
    read_calib_file,
)
from training.data.nyu import NYU_INTRINSICS, NYUDepthV2Dataset, nyu_class_mapping
from training.data.robust import SkipCorrupt
from training.data.rosbag import RosbagDataset
from training.data.sample import IMAGENET_MEAN, IMAGENET_STD, Sample, collate
from training.data.sunrgbd import (
    SUNRGBD_CLASSES,
    SunRGBDDataset,
    SunRGBDFlatDataset,
    decode_sunrgbd_depth,
    read_sunrgbd_meta,
    read_sunrgbd_split,
)
from training.data.synthetic import SPLIT_SCENES, SyntheticDataset, SyntheticSequenceDataset


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nyu(tmp_path_factory: pytest.TempPathFactory) -> fx.NYUFixture:
    return fx.write_nyu_fixture(tmp_path_factory.mktemp("nyu"))


@pytest.fixture(scope="module")
def kitti(tmp_path_factory: pytest.TempPathFactory) -> fx.KittiFixture:
    return fx.write_kitti_fixture(tmp_path_factory.mktemp("kitti"))


@pytest.fixture(scope="module")
def sun(tmp_path_factory: pytest.TempPathFactory) -> fx.SunFixture:
    return fx.write_sunrgbd_flat_fixture(tmp_path_factory.mktemp("sun"))


@pytest.fixture(scope="module")
def sun_official(tmp_path_factory: pytest.TempPathFactory) -> fx.SunOfficialFixture:
    return fx.write_sunrgbd_official_fixture(tmp_path_factory.mktemp("sun_official"))


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory: pytest.TempPathFactory) -> fx.CityscapesFixture:
    return fx.write_cityscapes_fixture(tmp_path_factory.mktemp("cityscapes"))


def _project(k: CameraIntrinsics, point: np.ndarray) -> np.ndarray:
    return np.array([k.fx * point[0] / point[2] + k.cx, k.fy * point[1] / point[2] + k.cy])


def _backproject(k: CameraIntrinsics, u: float, v: float, z: float) -> np.ndarray:
    return np.array([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z])


# --------------------------------------------------------------------------- NYU
def test_nyu_reads_transposed_images_depths_and_splits(nyu: fx.NYUFixture) -> None:
    train = NYUDepthV2Dataset(nyu.mat_path, "train", nyu.splits_path)
    test = NYUDepthV2Dataset(nyu.mat_path, "test", nyu.splits_path)
    assert len(train) == 3 and len(test) == 1
    s = test[0]  # image 2 (1-based) of the file
    assert s.image.shape == (480, 640, 3) and s.image.dtype == np.uint8
    # orientation: red grows to the right, green downwards, blue = image number
    assert tuple(s.image[0, 639]) == (255, 0, 1)
    assert tuple(s.image[479, 0]) == (0, 255, 1)
    np.testing.assert_array_equal(s.image, nyu.images[1])
    assert s.depth[10, 100] == pytest.approx(1.0 + 1.0 + 0.01 + 1, abs=1e-5)
    assert s.valid.all()
    assert s.intrinsics == NYU_INTRINSICS
    assert (s.labels == 255).all()  # no mapping given: no class set
    assert [train[i].image[0, 0, 2] for i in range(3)] == [0, 2, 3]
    assert len(NYUDepthV2Dataset(nyu.mat_path, "all")) == 4


def test_nyu_label_mapping_and_raw_labels(nyu: fx.NYUFixture) -> None:
    mapping = np.full(895, 255, dtype=np.int64)
    mapping[1:5] = [0, 1, 2, 3]  # book, bottle, cabinet, ceiling; 0 stays ignore
    ds = NYUDepthV2Dataset(
        nyu.mat_path,
        "all",
        label_mapping=mapping,
        class_names=("book", "bottle", "cabinet", "ceiling"),
        raw_labels=True,
    )
    s = ds[0]
    raw = nyu.labels[0]
    np.testing.assert_array_equal(s.meta["raw_labels"], raw)
    assert raw[0, 0] == 0 and s.labels[0, 0] == 255
    assert raw[0, 8] == 1 and s.labels[0, 8] == 0
    assert raw[8, 24] == 4 and s.labels[8, 24] == 3
    assert raw[0, 80] == 10 and s.labels[0, 80] == 255
    assert ds.class_names == ("book", "bottle", "cabinet", "ceiling")
    assert ds.raw_class_names[:2] == ("book", "bottle") and len(ds.raw_class_names) == 894
    assert ds.raw_class_names[20] == "wall"


def test_nyu_standard_class_sets_known_entries() -> None:
    m40, n40 = nyu_class_mapping("nyu40")
    m13, n13 = nyu_class_mapping("nyu13")
    assert len(n40) == 40 and len(n13) == 13 and m40.shape == m13.shape == (895,)
    assert n40[:4] == ("wall", "floor", "cabinet", "bed") and n40[-1] == "otherprop"
    assert n13[:3] == ("bed", "books", "ceiling") and n13[-2:] == ("wall", "window")
    # raw id (NYU's names list, 1-based) -> class name, from Gupta et al.'s classMapping40
    known40 = {
        21: "wall",
        11: "floor",
        3: "cabinet",
        157: "bed",
        5: "chair",
        83: "sofa",
        19: "table",
        28: "door",
        59: "window",
        88: "bookshelf",
        64: "picture",
        4: "ceiling",
        85: "books",
        17: "refrigerator",
        119: "pillow",
        1: "otherprop",
        2: "otherprop",
        62: "otherstructure",
        12: "otherfurniture",
        20: "otherprop",
    }
    for raw, name in known40.items():
        assert n40[m40[raw]] == name, raw
    # Couprie et al.'s 13: doors count as wall, blinds and curtains as window, shelves as
    # furniture, pillows as objects.
    known13 = {
        21: "wall",
        28: "wall",
        59: "window",
        80: "window",
        157: "bed",
        85: "books",
        1: "objects",
        4: "ceiling",
        11: "floor",
        143: "floor",
        42: "furniture",
        119: "objects",
        83: "sofa",
        36: "table",
        64: "picture",
    }
    for raw, name in known13.items():
        assert n13[m13[raw]] == name, raw
    assert m40[0] == m13[0] == 255
    # classes 1..37 each come from one raw class; the rest from many (38..40)
    counts = np.bincount(m40[1:], minlength=40)
    assert (counts[:37] == 1).all() and counts[37:].sum() == 894 - 37
    with pytest.raises(ValueError, match="nyu40"):
        nyu_class_mapping("raw")


@pytest.mark.parametrize("classes", ["nyu40", "nyu13"])
def test_nyu_loader_applies_a_named_class_set(nyu: fx.NYUFixture, classes: str) -> None:
    ds = NYUDepthV2Dataset(nyu.mat_path, "all", classes=classes)
    mapping, names = nyu_class_mapping(classes)
    assert ds.class_names == names and ds.classes == classes
    raw = nyu.labels[0]
    s = ds[0]
    np.testing.assert_array_equal(s.labels, mapping[raw])
    wall = raw == 21
    assert wall.any() and (s.labels[wall] == names.index("wall")).all()
    assert (s.labels[raw == 0] == 255).all() and (raw == 0).any()
    with pytest.raises(ValueError, match="only with classes='raw'"):
        NYUDepthV2Dataset(nyu.mat_path, "all", classes=classes, class_names=("a",))
    with pytest.raises(ValueError, match="classes must be one of"):
        NYUDepthV2Dataset(nyu.mat_path, "all", classes="nyu894")


def test_nyu_class_sets_refuse_a_file_with_other_raw_ids(
    nyu: fx.NYUFixture, tmp_path: Path
) -> None:
    import shutil

    import h5py

    copy = tmp_path / "renumbered.mat"
    shutil.copy(nyu.mat_path, copy)
    with h5py.File(copy, "r+") as f:  # raw class 21 is no longer "wall"
        del f["#refs#/n20"]
        f["#refs#"].create_dataset("n20", data=np.array([[ord(c)] for c in "door"], np.uint16))
        f["names"][0, 20] = f["#refs#/n20"].ref
    assert NYUDepthV2Dataset(copy, "all").raw_class_names[20] == "door"  # raw: no table used
    with pytest.raises(ValueError, match="raw class 21 is 'door', not 'wall'"):
        NYUDepthV2Dataset(copy, "all", classes="nyu40")


def test_nyu_rejects_missing_splits_and_bad_mapping(nyu: fx.NYUFixture) -> None:
    with pytest.raises(ValueError, match=r"splits\.mat"):
        NYUDepthV2Dataset(nyu.mat_path, "train")
    with pytest.raises(ValueError, match="label_mapping"):
        NYUDepthV2Dataset(nyu.mat_path, "all", label_mapping=[0, 300])


# --------------------------------------------------------------------------- KITTI
def test_kitti_calibration_text_format(kitti: fx.KittiFixture) -> None:
    path = kitti.raw_root / "2011_09_26" / "calib_cam_to_cam.txt"
    text = path.read_text()
    assert "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01" in text
    calib = read_calib_file(path)
    assert calib["calib_time"] == "09-Jan-2012 13:57:47"
    assert calib["P_rect_03"].reshape(3, 4)[0, 3] == pytest.approx(-339.5242)


def test_kitti_depth_pairs_ground_truth_with_raw_rgb(kitti: fx.KittiFixture) -> None:
    ds = KittiDepthDataset(kitti.depth_root, kitti.raw_root, "train")
    assert len(ds) == 8  # frames 1..4 x 2 cameras; frame 9 has no RGB and is left out
    s = ds[0]  # image_02, frame 1
    assert s.image.shape == (375, 1242, 3)
    assert s.image[0, 0, 2] == 10 * 1 + 2  # the RGB of the same frame and camera
    assert s.depth[0, 0] == pytest.approx(np.round((2.0 + 1) * 256) / 256)
    assert s.depth[0, 7] == pytest.approx(np.round((2.0 + 0.35 + 1) * 256) / 256)
    assert s.depth[3, 4] == pytest.approx(np.round((2.0 + 0.2 + 0.3 + 1) * 256) / 256)
    assert not s.valid[0, 1] and s.depth[0, 1] == 0.0
    assert s.valid.mean() == pytest.approx(1 / 7, abs=0.01)
    k = s.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((721.5377, 721.5377, 609.5593, 172.854))
    right = ds[4]  # image_03, frame 1
    assert right.image[0, 0, 2] == 13
    assert len(KittiDepthDataset(kitti.depth_root, kitti.raw_root, "val", ["image_02"])) == 1


def test_kitti_selection_uses_its_own_intrinsics(kitti: fx.KittiFixture) -> None:
    ds = KittiSelectionDataset(kitti.selection_root)
    s = ds[1]  # frame 6
    assert s.image.shape == (352, 1216, 3)
    assert s.intrinsics.cx == pytest.approx(596.5593 - 6)
    assert s.depth[0, 0] == pytest.approx(np.round(8.0 * 256) / 256)


def test_kitti_raw_sequence_neighbours_and_split_file(
    kitti: fx.KittiFixture, tmp_path: Path
) -> None:
    ds = KittiRawSequenceDataset(kitti.raw_root, depth_root=kitti.depth_root)
    assert len(ds) == 4 + 1  # train drive frames 1..4, val drive frame 1
    s = ds[2]  # train drive, frame 3
    assert s.meta["frame"] == 3
    assert [nb[0, 0, 2] for nb in s.neighbours] == [22, 42]  # frames 2 and 4
    assert s.poses is None and s.meta["offsets"] == (-1, 1)
    assert s.valid.any()  # ground truth of frame 3 exists
    split = tmp_path / "files.txt"
    split.write_text(
        "2011_09_26/2011_09_26_drive_0001_sync 2 l\n"
        "2011_09_26/2011_09_26_drive_0001_sync 4 r\n"
        "2011_09_26/2011_09_26_drive_0001_sync 5 l\n"  # no frame 6: dropped
    )
    listed = KittiRawSequenceDataset(kitti.raw_root, split_file=split)
    assert len(listed) == 2
    assert listed[1].image[0, 0, 2] == 43 and listed[1].meta["camera"] == "image_03"
    assert listed.frame_rate_hz == 10.0


# --------------------------------------------------------------------------- SUN RGB-D
def test_sunrgbd_official_tree_files_are_what_the_toolbox_says(
    sun_official: fx.SunOfficialFixture,
) -> None:
    import h5py

    root = sun_official.root
    seg = root / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat"
    assert seg.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(seg, "r") as f:  # HDF5 behind the MATLAB header, refs per image
        assert f["SUNRGBD2Dseg"]["seglabel"].shape == (5, 1)
    meta = read_sunrgbd_meta(root / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBDMeta.mat")
    assert [m["scene"] for m in meta] == [sc.scene for sc in sun_official.scenes]
    assert meta[0] == {
        "scene": "kv1/NYUdata/NYU0001",
        "rgbname": "NYU0001.jpg",
        "depthname": "NYU0001.png",
    }
    split = read_sunrgbd_split(root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat")
    assert split["test"] == {"kv1/NYUdata/NYU0001", sun_official.scenes[4].scene}
    assert len(split["train"]) == 3  # trailing "/" of some entries does not matter


def test_sunrgbd_official_splits_depth_labels_and_intrinsics(
    sun_official: fx.SunOfficialFixture, caplog: pytest.LogCaptureFixture
) -> None:
    scenes = sun_official.scenes
    test = SunRGBDDataset(sun_official.root, "test")
    with caplog.at_level(logging.WARNING):
        train = SunRGBDDataset(sun_official.root, "train")
    # toolbox order; the align_kv2 scene is listed but not on disk
    assert [s.meta["scene"] for s in (test[0], test[1])] == [scenes[0].scene, scenes[4].scene]
    assert [s.meta["scene"] for s in (train[0], train[1])] == [scenes[1].scene, scenes[3].scene]
    assert train.missing == 1 and test.missing == 0 and "not on disk" in caplog.text
    assert len(SunRGBDDataset(sun_official.root, "all")) == 4
    for ds, sc in ((train, scenes[1]), (test, scenes[4])):
        s = ds[[x.meta["scene"] for x in ds].index(sc.scene)]
        w, h = sc.size
        assert s.image.shape == (h, w, 3)
        # JPEG: close to the written pattern, whose blue channel tags the scene
        expected = fx.pattern_rgb(w, h, 40 * (scenes.index(sc) + 1))
        assert np.abs(s.image.astype(int) - expected).mean() < 3
        want = np.minimum(sc.depth_bfx_mm / 1000.0, 8.0)  # the toolbox's 8 m clamp
        np.testing.assert_allclose(s.depth, want, rtol=1e-6)
        assert s.depth[-1, -1] == pytest.approx(8.0)
        assert not s.valid[0, 0] and s.valid[10, 20]
        np.testing.assert_allclose(s.intrinsics.matrix, sc.k, atol=1e-6)
        raw = sc.seglabel
        np.testing.assert_array_equal(s.labels[raw == 0], 255)  # void -> ignore
        np.testing.assert_array_equal(s.labels[raw > 0], raw[raw > 0] - 1)  # 1..37 -> 0..36
        assert (raw == 37).any() and (raw == 0).any()
    raw_depth = SunRGBDDataset(sun_official.root, "train", depth="raw", max_depth=None)[0]
    np.testing.assert_allclose(raw_depth.depth, scenes[1].depth_raw_mm / 1000.0, rtol=1e-6)
    assert not raw_depth.valid[:, 5].any()
    assert train.class_names == SUNRGBD_CLASSES


def test_sunrgbd_official_is_a_recipe_entry_and_checks_its_files(
    sun_official: fx.SunOfficialFixture, tmp_path: Path
) -> None:
    from training.config import DataConfig
    from training.data import make_dataset

    cfg = DataConfig(dataset="sunrgbd", root=str(sun_official.root), width=32, height=24)
    ds = make_dataset(cfg, "test")
    assert len(ds) == 2 and ds[1].image.shape == (24, 32, 3)
    with pytest.raises(ValueError, match=r"SUNRGBDtoolbox\.zip"):
        SunRGBDDataset(sun_official.root, "train", toolbox=tmp_path)
    with pytest.raises(ValueError, match=r"SUNRGBD\.zip"):
        SunRGBDDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        SunRGBDDataset(sun_official.root, "val")
    with pytest.raises(ValueError, match="depth_bfx"):
        SunRGBDDataset(sun_official.root, "train", depth="mm")


def test_sunrgbd_flat_splits_depth_labels_and_intrinsics(sun: fx.SunFixture) -> None:
    test = SunRGBDFlatDataset(sun.root, "test")
    train = SunRGBDFlatDataset(sun.root, "train")
    assert [s.meta["number"] for s in (test[0], test[1])] == [1, 2]
    assert [s.meta["number"] for s in (train[0], train[1])] == [5051, 5052]
    s = train[0]  # number 5051, 68x53
    assert s.image.shape == (53, 68, 3)
    assert s.depth[10, 20] == pytest.approx((500 + 37 * 20 + 11 * 10 + 51) / 1000)
    assert not s.valid[0, 0] and s.valid[10, 20]
    np.testing.assert_allclose(s.intrinsics.matrix, sun.k[5051], atol=1e-6)
    raw = fx.sun_labels(68, 53, 5051)
    assert raw[0, 3] == 0 and s.labels[0, 3] == 255  # void -> ignore
    assert raw[0, 4] == 1 and s.labels[0, 4] == 0  # wall
    assert raw[0, 2] == 37 and s.labels[0, 2] == 36  # bag
    assert len(SUNRGBD_CLASSES) == 37 and train.class_names[28] == "box"


def test_sunrgbd_depth_encodings() -> None:
    mm = np.array([[0, 1000, 8191, 65535 >> 3]], dtype=np.uint16)
    stored = fx.sun_bitshift_encode(mm)
    assert stored[0, 1] == 8000  # 1000 << 3
    np.testing.assert_allclose(decode_sunrgbd_depth(stored), mm / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(decode_sunrgbd_depth(mm, "mm"), mm / 1000.0, rtol=1e-6)
    with pytest.raises(ValueError, match="depth_encoding"):
        decode_sunrgbd_depth(mm, "cm")


# --------------------------------------------------------------------------- Cityscapes
def test_cityscapes_train_ids_and_disparity_depth(cityscapes: fx.CityscapesFixture) -> None:
    ds = CityscapesDataset(cityscapes.root, "train")
    assert len(ds) == 2 and ds.class_names == CITYSCAPES_CLASSES
    s = ds[0]
    raw = fx.cityscapes_label_ids(64, 32, 0)
    assert raw[0, 26] == 26 and s.labels[0, 26] == 13 and ds.class_names[13] == "car"
    assert s.labels[0, 7] == 0 and s.labels[0, 33] == 18 and s.labels[0, 0] == 255
    assert s.labels[0, 9] == 255 and s.labels[0, 30] == 255  # ids 9, 30: ignored
    cam = cityscapes.camera
    assert s.intrinsics == CameraIntrinsics(cam["fx"], cam["fy"], cam["u0"], cam["v0"], 64, 32)
    # disparity p = 256 d + 1, d = 4 + x / 4  ->  depth = baseline * fx / d
    assert s.depth[5, 8] == pytest.approx(cam["baseline"] * cam["fx"] / 6.0, rel=1e-5)
    assert not s.valid[:, :2].any()  # p = 0 and p = 1 (d = 0) are invalid
    val = CityscapesDataset(cityscapes.root, "val")[0]  # no camera / disparity files
    assert not val.valid.any()
    assert val.intrinsics.width == 64 and val.intrinsics.fx == pytest.approx(2262.52 / 32)


# --------------------------------------------------------------------------- rosbag2
@pytest.mark.parametrize(
    ("storage", "rgb_encoding", "depth_encoding"),
    [("sqlite3", "bgr8", "16UC1"), ("mcap", "rgb8", "32FC1")],
)
def test_rosbag_pairs_rgb_depth_and_camera_info(
    tmp_path: Path, storage: str, rgb_encoding: str, depth_encoding: str
) -> None:
    bag = fx.write_rosbag_fixture(
        tmp_path / "bag",
        storage,
        rgb_encoding=rgb_encoding,
        depth_encoding=depth_encoding,
        row_padding=4,
    )
    ext = {"sqlite3": ".db3", "mcap": ".mcap"}[storage]
    assert any(p.suffix == ext for p in bag.path.iterdir())
    ds = RosbagDataset(bag.path, bag.topics["rgb"], bag.topics["depth"])
    assert len(ds) == 4 and ds.unpaired == 1  # last depth is 100 ms late
    for i in range(4):
        s = ds[i]
        np.testing.assert_array_equal(s.image, bag.rgb[i])
        np.testing.assert_allclose(s.depth, bag.depth_m[i], rtol=1e-6)
        assert not s.valid[0, 0] and s.valid[1:, 1:].all()
        assert s.intrinsics == bag.intrinsics
        assert s.meta["depth_dt_s"] == pytest.approx(0.005)
    seq = RosbagDataset(bag.path, bag.topics["rgb"], frame_offsets=(-1, 1))
    assert len(seq) == 3
    np.testing.assert_array_equal(seq[0].neighbours[1], bag.rgb[2])
    assert not seq[0].valid.any()
    with pytest.raises(ValueError, match="no usable frame"):
        RosbagDataset(bag.path, bag.topics["rgb"], bag.topics["depth"], tolerance_s=0.001)
    with pytest.raises(ValueError, match="no topic"):
        RosbagDataset(bag.path, "/nope")


# --------------------------------------------------------------------------- synthetic
def test_synthetic_splits_are_disjoint_and_sky_is_invalid(tmp_path: Path) -> None:
    assert SPLIT_SCENES["test"][0] == 9000
    ranges = [range(*SPLIT_SCENES[s]) for s in ("train", "val", "test")]
    assert not set(ranges[0]) & set(ranges[1]) and not set(ranges[1]) & set(ranges[2])
    ds = SyntheticDataset(
        "road", "test", 48, 32, frames_per_scene=2, num_scenes=1, cache_dir=tmp_path
    )
    assert len(ds) == 2 and ds.class_names[13] == "car"
    s = ds[1]
    assert s.meta["scene"] == 9000
    raw = ds.frame(9000, 1)
    sky = np.isinf(raw["depth"])
    assert sky.any() and not s.valid[sky].any() and (s.depth[sky] == 0).all()
    np.testing.assert_array_equal(s.depth[~sky], raw["depth"][~sky])
    assert list(tmp_path.rglob("*.npz"))  # cached ...
    again = SyntheticDataset("road", "test", 48, 32, 2, num_scenes=1, cache_dir=tmp_path)[1]
    np.testing.assert_array_equal(again.image, s.image)  # ... and read back identically
    train = SyntheticDataset("indoor", "train", 48, 32, frames_per_scene=2, num_scenes=1)
    assert train[0].meta["scene"] == 0 and train[0].valid.all()


def test_synthetic_sequence_poses_reproject_depth() -> None:
    ds = SyntheticSequenceDataset("indoor", "val", 64, 48, frames_per_scene=2, num_scenes=1)
    s = ds[0]
    assert len(s.neighbours) == 2 and len(s.poses) == 2
    nb_depth = ds.frame(s.meta["scene"], s.meta["slot"], 1)["depth"]
    k = s.intrinsics
    errors = []
    for v in range(4, 44, 6):
        for u in range(4, 60, 6):
            x_nb = s.poses[1][:3, :3] @ _backproject(k, u, v, s.depth[v, u]) + s.poses[1][:3, 3]
            pu, pv = np.round(_project(k, x_nb)).astype(int)
            if 0 <= pu < 64 and 0 <= pv < 48:
                errors.append(abs(nb_depth[pv, pu] - x_nb[2]) / x_nb[2])
    # the target's points land where the neighbour sees them at the predicted depth
    assert len(errors) > 50 and np.median(errors) < 0.01


# --------------------------------------------------------------------------- augment
def _marked_sample(w: int = 40, h: int = 30, u: int = 25, v: int = 9) -> Sample:
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[v, u] = 255
    depth = np.full((h, w), 2.0, dtype=np.float32)
    depth[v, u] = 3.0
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[v, u] = 7
    k = CameraIntrinsics(30.0, 31.0, 19.3, 14.1, w, h)
    return Sample.build(image, k, depth=depth, labels=labels)


def _where(labels: np.ndarray) -> tuple[int, int]:
    vs, us = np.nonzero(labels == 7)
    assert len(us) == 1
    return int(us[0]), int(vs[0])


def test_crop_and_flip_keep_a_point_on_its_pixel() -> None:
    s = _marked_sample()
    point = _backproject(s.intrinsics, 25, 9, 3.0)
    cropped = augment.crop(s, 7, 3, 24, 20)
    u, v = _where(cropped.labels)
    assert (u, v) == (18, 6) and cropped.depth[v, u] == 3.0 and cropped.image[v, u, 0] == 255
    np.testing.assert_allclose(_project(cropped.intrinsics, point), (u, v), atol=1e-9)
    flipped = augment.hflip(s)
    u, v = _where(flipped.labels)
    assert (u, v) == (40 - 1 - 25, 9)
    mirrored = point * np.array([-1.0, 1.0, 1.0])  # the mirrored world
    np.testing.assert_allclose(_project(flipped.intrinsics, mirrored), (u, v), atol=1e-9)


@pytest.mark.parametrize(("w", "h"), [(25, 19), (80, 60), (57, 41)])
def test_resize_nearest_follows_the_new_intrinsics(w: int, h: int) -> None:
    src = _marked_sample()
    xs = np.arange(40, dtype=np.uint8)[None, :].repeat(30, 0)
    ys = np.arange(30, dtype=np.float32)[:, None].repeat(40, 1) + 1.0
    s = dataclasses.replace(src, labels=xs, depth=ys)  # labels = column, depth = row + 1
    out = augment.resize(s, w, h)
    k0, k1 = s.intrinsics, out.intrinsics
    assert (k1.width, k1.height) == (w, h)
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    # the source pixel whose centre sees the same ray as each resized pixel
    src_u = (u - k1.cx) / k1.fx * k0.fx + k0.cx
    src_v = (v - k1.cy) / k1.fy * k0.fy + k0.cy
    assert np.abs(out.labels - src_u).max() <= 0.5 + 1e-6
    assert np.abs(out.depth - 1.0 - src_v).max() <= 0.5 + 1e-6
    assert out.valid.all() and out.depth.dtype == np.float32


def test_random_scale_crop_keeps_point_consistent_and_flip_mirrors_poses() -> None:
    s = _marked_sample(u=20, v=15)
    point = _backproject(s.intrinsics, 20, 15, 3.0)
    t = augment.RandomScaleCrop(40, 30, scale_range=(1.3, 1.3))
    out = t(s, rng=np.random.default_rng(3))
    ys, xs = np.nonzero(out.depth == 3.0)  # the marked pixel, enlarged by nearest sampling
    assert out.image.shape == (30, 40, 3) and len(xs) >= 1
    centre = _project(out.intrinsics, point)
    assert np.abs(xs - centre[0]).max() <= 1.0 and np.abs(ys - centre[1]).max() <= 1.0
    # a flipped sequence: the neighbour pixel of a point flips with it
    ang = 0.1
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]]
    pose[:3, 3] = [0.3, -0.1, 0.2]
    seq = dataclasses.replace(s, neighbours=[s.image.copy()], poses=[pose])
    flipped = augment.hflip(seq)
    q = _project(s.intrinsics, pose[:3, :3] @ point + pose[:3, 3])
    p_f = _backproject(flipped.intrinsics, 40 - 1 - 20, 15, 3.0)
    tf = flipped.poses[0]
    q_f = _project(flipped.intrinsics, tf[:3, :3] @ p_f + tf[:3, 3])
    np.testing.assert_allclose(q_f, (40 - 1 - q[0], q[1]), atol=1e-9)


def test_photometric_augmentations_treat_neighbours_alike() -> None:
    s = _marked_sample()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, s.image.shape, dtype=np.uint8)
    s = dataclasses.replace(s, image=img, neighbours=[img.copy(), img.copy()])
    jittered = augment.ColorJitter(0.3, 0.3, 0.3)(s, rng=np.random.default_rng(1))
    assert not np.array_equal(jittered.image, img)
    for nb in jittered.neighbours:
        np.testing.assert_array_equal(nb, jittered.image)
    swapped = augment.RandomChannelSwap(p=1.0)(s, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(np.sort(swapped.image, axis=2), np.sort(img, axis=2))
    np.testing.assert_array_equal(swapped.neighbours[0], swapped.image)
    np.testing.assert_array_equal(swapped.depth, s.depth)


# --------------------------------------------------------------------------- collate
def test_collate_builds_normalised_tensors() -> None:
    a, b = _marked_sample(), _marked_sample(u=3, v=4)
    batch = collate([a, b], keep_raw=True)
    assert batch["image"].shape == (2, 3, 30, 40) and batch["image"].dtype == torch.float32
    expected = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert batch["image"][0, 0, 9, 25].item() == pytest.approx(expected)
    assert batch["image_raw"][1, 2, 4, 3].item() == pytest.approx(1.0)
    assert batch["depth"].shape == (2, 1, 30, 40) and batch["depth"][0, 0, 9, 25] == 3.0
    assert batch["valid"].dtype == torch.bool and batch["valid"].all()
    assert batch["labels"].dtype == torch.int64 and batch["labels"][1, 4, 3] == 7
    np.testing.assert_allclose(batch["K"][0].numpy(), a.intrinsics.matrix, rtol=1e-6)
    assert "neighbours" not in batch and batch["skipped"] == []
    with pytest.raises(ValueError, match="different sizes"):
        collate([a, augment.crop(b, 0, 0, 20, 20)])


# --------------------------------------------------------------------------- corrupt samples
def test_corrupt_sample_is_skipped_and_reported(
    kitti: fx.KittiFixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(kitti.raw_root, raw)
    bad = raw / "2011_09_26" / kitti.drives["train"] / "image_02" / "data" / "0000000002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    ds = KittiDepthDataset(kitti.depth_root, raw, "train")
    with pytest.raises(CorruptSampleError, match="cannot decode"):
        ds[1]
    safe = SkipCorrupt(ds)
    with caplog.at_level(logging.WARNING, logger="training.data.robust"):
        s = safe[1]
    assert s.meta["index"] == 2  # the next sample stands in
    assert len(safe.failures) == 1 and str(bad) in safe.failures[1][0]
    assert str(bad) in caplog.text and "1 corrupt sample" in safe.report()
    batch = collate([safe[0], safe[1]])
    assert [p for p, _ in batch["skipped"]] == [str(bad)]
    assert safe.class_names == ()  # attributes of the wrapped data set pass through


def test_broken_dataset_fails_loudly(nyu: fx.NYUFixture, tmp_path: Path) -> None:
    ds = NYUDepthV2Dataset(nyu.mat_path, "all")
    ds.mat_path = tmp_path / "gone.mat"  # every read now fails
    with pytest.raises(RuntimeError, match="looks broken"):
        SkipCorrupt(ds, max_consecutive=3)[0]


def test_loaders_work_in_dataloader_workers(nyu: fx.NYUFixture) -> None:
    ds = NYUDepthV2Dataset(nyu.mat_path, "all", transform=augment.Resize(64, 48))
    ds[0]  # opens the HDF5 file in this process: workers must open their own
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 2]
    assert batches[1]["K"][0, 0, 0].item() == pytest.approx(518.857901 / 10, rel=1e-6)
    assert [m["index"] for b in batches for m in b["meta"]] == [0, 1, 2, 3]


def test_sunrgbd_official_loads_in_dataloader_workers(
    sun_official: fx.SunOfficialFixture,
) -> None:
    ds = SunRGBDDataset(sun_official.root, "all", transform=augment.Resize(32, 24))
    first = ds[0].labels  # opens the HDF5 labels here: workers must open their own
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 2]
    np.testing.assert_array_equal(batches[0]["labels"][0].numpy(), first)
