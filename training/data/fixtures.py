"""Writers of tiny data sets in the exact on-disk formats of the real ones, for tests.

The real data sets cannot be downloaded in CI; these writers produce the same file names,
dtypes, axis orders and text formats, filled with known patterns, and return what they wrote
so tests can compare loaded samples with it. Used by ``test/unit/test_datasets.py`` and available
to other smoke tests (e.g. the trainer's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics

# Calibration of 2011_09_26 (KITTI raw calib_cam_to_cam.txt), rectified cameras 00..03.
KITTI_P_RECT = {
    "00": [721.5377, 0, 609.5593, 0, 0, 721.5377, 172.854, 0, 0, 0, 1, 0],
    "01": [721.5377, 0, 609.5593, -387.5744, 0, 721.5377, 172.854, 0, 0, 0, 1, 0],
    "02": [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884],
    "03": [721.5377, 0, 609.5593, -339.5242, 0, 721.5377, 172.854, 2.199936, 0, 0, 1, 0.002729905],
}
KITTI_SIZE = (1242, 375)


def _write_png(path: Path, img: np.ndarray, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if rgb else img
    if not cv2.imwrite(str(path), out):
        raise OSError(f"cannot write {path}")


def pattern_rgb(width: int, height: int, tag: int = 0) -> np.ndarray:
    """An asymmetric RGB test image: R grows with x, G with y, B = tag (mod 256)."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 255) // max(width - 1, 1)
    img[..., 1] = (y * 255) // max(height - 1, 1)
    img[..., 2] = tag % 256
    return img


# --------------------------------------------------------------------------- NYU Depth v2
@dataclass
class NYUFixture:
    mat_path: Path
    splits_path: Path
    images: np.ndarray  # (N, H, W, 3) uint8, as the loader must return them
    depths: np.ndarray  # (N, H, W) float32
    labels: np.ndarray  # (N, H, W) uint16 raw ids
    train: list[int]  # 0-based
    test: list[int]
    names: list[str] = field(default_factory=list)


# Raw classes 1..21 of nyu_depth_v2_labeled.mat's ``names``, in the file's order.
NYU_FIRST_RAW_NAMES = (
    "book",
    "bottle",
    "cabinet",
    "ceiling",
    "chair",
    "cone",
    "counter",
    "dishwasher",
    "faucet",
    "fire extinguisher",
    "floor",
    "garbage bin",
    "microwave",
    "paper towel dispenser",
    "paper",
    "pot",
    "refridgerator",
    "stove burner",
    "table",
    "unknown",
    "wall",
)


def _matlab_header(path: Path) -> None:
    # MATLAB v7.3 files are HDF5 with a 512-byte user block starting with this text.
    text = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
        b"HDF5 schema 1.00 ."
    )
    with open(path, "r+b") as f:
        f.write(text.ljust(116, b" "))
        f.write(b"\x00" * 8 + b"\x00\x02IM")


def write_nyu_fixture(
    directory: str | os.PathLike[str], count: int = 4, width: int = 640, height: int = 480
) -> NYUFixture:
    """``nyu_depth_v2_labeled.mat`` (HDF5 v7.3 layout) and ``splits.mat`` (MATLAB v5).

    Image n: :func:`pattern_rgb` with tag n; depth ``1 + x/100 + y/1000 + n`` m; labels
    ``(x // 8 + y // 8 + n) % 896``, so 0 (unlabelled) and ids up to 894 both occur.
    Train = images 1, 3, 4 ... (1-based: all but 2), test = image 2.
    """
    import h5py
    from scipy.io import savemat

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    images = np.stack([pattern_rgb(width, height, n) for n in range(count)])
    depths = np.stack([1.0 + x / 100 + y / 1000 + n for n in range(count)]).astype(np.float32)
    xi = np.arange(width)[None, :]
    yi = np.arange(height)[:, None]
    labels = np.stack([(xi // 8 + yi // 8 + n) % 896 for n in range(count)]).astype(np.uint16)
    labels[labels > 894] = 0
    names = [*NYU_FIRST_RAW_NAMES, *(f"name{i}" for i in range(22, 895))]
    mat_path = d / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat_path, "w", userblock_size=512) as f:
        # MATLAB writes column-major: h5py sees (N, 3, W, H), (N, W, H)
        for key, arr, cls in (
            ("images", images.transpose(0, 3, 2, 1), "uint8"),
            ("depths", depths.transpose(0, 2, 1), "single"),
            ("labels", labels.transpose(0, 2, 1), "uint16"),
        ):
            ds = f.create_dataset(key, data=np.ascontiguousarray(arr))
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
        refs = f.create_group("#refs#")
        ref_list = []
        for i, name in enumerate(names):
            chars = np.array([[ord(c)] for c in name], dtype=np.uint16)  # a 1xL char: (L, 1)
            ds = refs.create_dataset(f"n{i}", data=chars)
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            ref_list.append(ds.ref)
        names_ds = f.create_dataset("names", (1, len(names)), dtype=h5py.ref_dtype)
        names_ds[0, :] = ref_list
        names_ds.attrs["MATLAB_class"] = np.bytes_("cell")
    _matlab_header(mat_path)
    test = [1] if count > 1 else []
    train = [i for i in range(count) if i not in test]
    splits_path = d / "splits.mat"
    savemat(
        splits_path,
        {
            "trainNdxs": np.array(train, dtype=np.float64).reshape(-1, 1) + 1,
            "testNdxs": np.array(test, dtype=np.float64).reshape(-1, 1) + 1,
        },
    )
    return NYUFixture(mat_path, splits_path, images, depths, labels, train, test, names)


# --------------------------------------------------------------------------- KITTI
@dataclass
class KittiFixture:
    raw_root: Path
    depth_root: Path
    selection_root: Path
    size: tuple[int, int]
    drives: dict[str, str]  # split -> drive name
    gt_frames: dict[str, list[int]]  # split -> frames with ground truth (and RGB)
    raw_frames: list[int]  # frames of the train drive's RGB
    orphan_gt: int  # a train ground-truth frame without RGB


def kitti_gt_depth(width: int, height: int, frame: int) -> np.ndarray:
    """The fixture's ground truth in metres: every 7th pixel valid, others 0."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    depth = (2.0 + 0.05 * x + 0.1 * y + frame).astype(np.float32)
    depth[((x + y) % 7) != 0] = 0.0
    return depth


def kitti_rgb(width: int, height: int, frame: int, camera: str) -> np.ndarray:
    return pattern_rgb(width, height, 10 * frame + int(camera[-1]))


def write_kitti_calib(path: Path, size: tuple[int, int] = KITTI_SIZE) -> None:
    """A ``calib_cam_to_cam.txt`` in KITTI's text format (``key: %e %e ...``)."""
    sx = size[0] / KITTI_SIZE[0]

    def fmt(values: Sequence[float] | np.ndarray) -> str:
        return " ".join(f"{float(v):e}" for v in values)

    lines = ["calib_time: 09-Jan-2012 13:57:47", f"corner_dist: {9.95e-02:e}"]
    for cam, p in KITTI_P_RECT.items():
        p = np.array(p, dtype=np.float64).reshape(3, 4)
        intr = CameraIntrinsics.from_matrix(p, *KITTI_SIZE).scaled(*size)
        p[0, 0], p[1, 1], p[0, 2], p[1, 2] = intr.fx, intr.fy, intr.cx, intr.cy
        p[0, 3] *= sx
        lines += [
            f"S_{cam}: {fmt([1392, 512])}",
            f"K_{cam}: {fmt([984.2439, 0, 690, 0, 980.8141, 233.1966, 0, 0, 1])}",
            f"D_{cam}: {fmt([-0.3728755, 0.2037299, 0.002219027, 0.001383707, -0.07233722])}",
            f"R_{cam}: {fmt(np.eye(3).ravel())}",
            f"T_{cam}: {fmt([0.0, 0.0, 0.0])}",
            f"S_rect_{cam}: {fmt(size)}",
            f"R_rect_{cam}: {fmt(np.eye(3).ravel())}",
            f"P_rect_{cam}: {fmt(p.ravel())}",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_kitti_fixture(
    directory: str | os.PathLike[str], size: tuple[int, int] = KITTI_SIZE
) -> KittiFixture:
    """KITTI raw (two drives of 2011_09_26), depth-prediction ground truth and a selection set.

    Train drive ``2011_09_26_drive_0001_sync``: RGB frames 0..5 for image_02 and image_03,
    ground truth for frames 1..4 plus frame 9 (no RGB: must be left out). Val drive
    ``..._0002_sync``: RGB 0..2, ground truth for frame 1. Selection: two crops of 1216x352.
    """
    d = Path(directory)
    raw_root, depth_root = d / "raw", d / "depth"
    date = "2011_09_26"
    write_kitti_calib(raw_root / date / "calib_cam_to_cam.txt", size)
    w, h = size
    drives = {"train": f"{date}_drive_0001_sync", "val": f"{date}_drive_0002_sync"}
    raw_frames = {"train": list(range(6)), "val": list(range(3))}
    gt_frames = {"train": [1, 2, 3, 4], "val": [1]}
    orphan = 9
    for split, drive in drives.items():
        for cam in ("image_02", "image_03"):
            for f in raw_frames[split]:
                _write_png(
                    raw_root / date / drive / cam / "data" / f"{f:010d}.png",
                    kitti_rgb(w, h, f, cam),
                    rgb=True,
                )
            extra = [orphan] if split == "train" else []
            for f in gt_frames[split] + extra:
                gt = kitti_gt_depth(w, h, f)
                _write_png(
                    depth_root
                    / split
                    / drive
                    / "proj_depth"
                    / "groundtruth"
                    / cam
                    / f"{f:010d}.png",
                    np.round(gt * 256).astype(np.uint16),
                )
    sel = d / "depth_selection" / "val_selection_cropped"
    for f in (5, 6):
        stem = f"{drives['val']}_image_{f:010d}_image_02"
        _write_png(sel / "image" / f"{stem}.png", pattern_rgb(1216, 352, f), rgb=True)
        gt_name = f"{drives['val']}_groundtruth_depth_{f:010d}_image_02.png"
        _write_png(
            sel / "groundtruth_depth" / gt_name,
            np.round(kitti_gt_depth(1216, 352, f) * 256).astype(np.uint16),
        )
        (sel / "intrinsics").mkdir(parents=True, exist_ok=True)
        k = [721.5377, 0, 596.5593 - f, 0, 721.5377, 149.854, 0, 0, 1]
        (sel / "intrinsics" / f"{stem}.txt").write_text(" ".join(f"{v:e}" for v in k) + "\n")
    return KittiFixture(
        raw_root, depth_root, sel, size, drives, gt_frames, raw_frames["train"], orphan
    )


# --------------------------------------------------------------------------- SUN RGB-D
@dataclass
class SunFixture:
    root: Path
    numbers: dict[str, list[int]]
    sizes: dict[int, tuple[int, int]]
    k: dict[int, np.ndarray]


def sun_depth_mm(width: int, height: int, number: int) -> np.ndarray:
    """The fixture's depth in millimetres (uint16), 0 (invalid) in the top-left 4x4 block."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    mm = (500 + 37 * x + 11 * y + number % 1000).astype(np.uint16)
    mm[:4, :4] = 0
    return mm


def sun_labels(width: int, height: int, number: int) -> np.ndarray:
    """Raw SUN labels 0..37 (0 = void)."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    return ((x + 2 * y + number) % 38).astype(np.uint8)


def sun_bitshift_encode(mm: np.ndarray) -> np.ndarray:
    """Inverse of the toolbox decoding: rotate the 16 bits left by 3."""
    mm = mm.astype(np.uint16)
    return (mm << np.uint16(3)) | (mm >> np.uint16(13))


def write_sunrgbd_flat_fixture(directory: str | os.PathLike[str]) -> SunFixture:
    """Four SUN RGB-D images in the flat layout (numbers 1, 2: test; 5051, 5052: train)."""
    root = Path(directory)
    numbers = {"test": [1, 2], "train": [5051, 5052]}
    sizes = {1: (64, 48), 2: (73, 53), 5051: (68, 53), 5052: (64, 48)}
    ks = {}
    for n, (w, h) in sizes.items():
        stem = f"{n:05d}"
        _write_png(root / "image" / f"{stem}.png", pattern_rgb(w, h, n), rgb=True)
        _write_png(root / "depth" / f"{stem}.png", sun_bitshift_encode(sun_depth_mm(w, h, n)))
        _write_png(root / "label" / f"{stem}.png", sun_labels(w, h, n))
        k = np.array([[52.9 + n % 7, 0, w / 2 - 0.5], [0, 52.9 + n % 7, h / 2], [0, 0, 1]])
        ks[n] = k
        (root / "intrinsics").mkdir(parents=True, exist_ok=True)
        np.savetxt(root / "intrinsics" / f"{stem}.txt", k, fmt="%.6f")
    return SunFixture(root, numbers, sizes, ks)


@dataclass
class SunOfficialScene:
    """One image of the official fixture, as the loader must return it."""

    scene: str  # directory relative to SUNRGBD/
    rgbname: str
    depthname: str
    size: tuple[int, int]  # (W, H)
    k: np.ndarray
    depth_bfx_mm: np.ndarray
    depth_raw_mm: np.ndarray
    seglabel: np.ndarray  # H x W raw ids 0..37
    split: str  # "train" or "test"
    on_disk: bool = True


@dataclass
class SunOfficialFixture:
    root: Path  # holds SUNRGBD/ and SUNRGBDtoolbox/
    scenes: list[SunOfficialScene]  # in the toolbox's (SUNRGBDMeta) order


def _write_matlab_v73_struct_of_refs(
    path: Path, struct: str, fields: dict[str, list[np.ndarray]]
) -> None:
    """A MATLAB v7.3 (HDF5) file with a 1 x N struct array whose fields hold matrices.

    MATLAB writes such a struct as a group with one (N, 1) dataset of object references per
    field, pointing into ``#refs#``; each matrix is stored column-major, so an H x W map is an
    (W, H) HDF5 dataset. This is how the toolbox's ``SUNRGBD2Dseg.mat`` is laid out.
    """
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        group = f.create_group(struct)
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, mats in fields.items():
            ref_list = []
            for i, m in enumerate(mats):
                ds = refs.create_dataset(f"{name}{i}", data=np.ascontiguousarray(m.T))
                ds.attrs["MATLAB_class"] = np.bytes_("double")
                ref_list.append(ds.ref)
            field_ds = group.create_dataset(name, (len(mats), 1), dtype=h5py.ref_dtype)
            field_ds[:, 0] = ref_list
            field_ds.attrs["MATLAB_class"] = np.bytes_("cell")
    _matlab_header(path)


def write_sunrgbd_official_fixture(directory: str | os.PathLike[str]) -> SunOfficialFixture:
    """SUN RGB-D as ``SUNRGBD.zip`` and ``SUNRGBDtoolbox.zip`` unpack, five images.

    One scene per sensor, with the directory depths and file names of the release (kv1/NYUdata,
    kv2/kinect2data, realsense/sh, xtion/sun3ddata three levels deep), plus a kv2/align_kv2
    scene that the toolbox lists but that is not on disk (a partial download). Paths in
    ``SUNRGBDMeta.mat`` and ``allsplit.mat`` carry the toolbox's ``/n/fs/sun3d/data/`` prefix;
    allsplit entries of two scenes end with ``/``. Depth is the bit-rotated millimetres of
    :func:`sun_depth_mm` (``depth_bfx``) and the same minus 7 mm with a 0 column (``depth``);
    labels are :func:`sun_labels`, stored as doubles.
    """
    from scipy.io import savemat

    root = Path(directory)
    data_dir = root / "SUNRGBD"
    tb = root / "SUNRGBDtoolbox"
    specs = [
        ("kv1/NYUdata/NYU0001", "NYU0001.jpg", "NYU0001.png", (64, 48), "test"),
        (
            "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize",
            "0000103.jpg",
            "0000103.png",
            (73, 53),
            "train",
        ),
        (
            "kv2/align_kv2/2014-12-17_14-40-25_260595134347",
            "0000074.jpg",
            "0000074.png",
            (64, 48),
            "train",
        ),
        (
            "realsense/sh/2014_10_21-18_14_02-1311000073",
            "0000049.jpg",
            "0000049.png",
            (68, 53),
            "train",
        ),
        (
            "xtion/sun3ddata/mit_76_studyroom/76-1studyroom2/0002111-000070763319",
            "0002111-000070763319.jpg",
            "0002111-000070763319.png",
            (64, 48),
            "test",
        ),
    ]
    scenes = []
    for n, (scene, rgbname, depthname, (w, h), split) in enumerate(specs, start=1):
        on_disk = "align_kv2" not in scene
        k = np.array([[52.9 + n, 0, w / 2 - 0.5], [0, 53.1 + n, h / 2], [0, 0, 1]])
        bfx = sun_depth_mm(w, h, n)
        bfx[-1, -1] = 9500  # beyond the toolbox's 8 m clamp
        raw = np.where(bfx > 0, bfx - 7, 0).astype(np.uint16)
        raw[:, 5] = 0
        item = SunOfficialScene(
            scene, rgbname, depthname, (w, h), k, bfx, raw, sun_labels(w, h, n), split, on_disk
        )
        scenes.append(item)
        if not on_disk:
            continue
        d = data_dir / scene
        (d / "image").mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(d / "image" / rgbname), pattern_rgb(w, h, 40 * n)[..., ::-1]):
            raise OSError(f"cannot write {d / 'image' / rgbname}")
        _write_png(d / "depth_bfx" / depthname, sun_bitshift_encode(bfx))
        _write_png(d / "depth" / depthname, sun_bitshift_encode(raw))
        np.savetxt(d / "intrinsics.txt", k, fmt="%.6f")
        (d / "scene.txt").write_text("bedroom\n")
    prefix = "/n/fs/sun3d/data/SUNRGBD/"
    meta = np.zeros(
        (1, len(scenes)),
        dtype=[
            (f, object)
            for f in ("sequenceName", "rgbpath", "depthpath", "rgbname", "depthname", "K")
        ],
    )
    for i, sc in enumerate(scenes):
        meta[0, i] = (
            f"SUNRGBD/{sc.scene}",
            f"{prefix}{sc.scene}/image/{sc.rgbname}",
            f"{prefix}{sc.scene}/depth_bfx/{sc.depthname}",
            sc.rgbname,
            sc.depthname,
            sc.k,
        )
    (tb / "Metadata").mkdir(parents=True, exist_ok=True)
    savemat(tb / "Metadata" / "SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
    _write_matlab_v73_struct_of_refs(
        tb / "Metadata" / "SUNRGBD2Dseg.mat",
        "SUNRGBD2Dseg",
        {
            "seglabel": [sc.seglabel.astype(np.float64) for sc in scenes],
            # the full-name labels (ids into each image's own name list): must not be read
            "seglabelall": [sc.seglabel.astype(np.float64) + 100 for sc in scenes],
        },
    )

    def cell(paths: list[str]) -> np.ndarray:
        arr = np.empty((1, len(paths)), dtype=object)
        arr[0, :] = paths
        return arr

    split_paths = {
        s: [
            f"{prefix}{sc.scene}" + ("/" if j % 2 else "")
            for j, sc in enumerate(scenes)
            if sc.split == s
        ]
        for s in ("train", "test")
    }
    (tb / "traintestSUNRGBD").mkdir(parents=True, exist_ok=True)
    savemat(
        tb / "traintestSUNRGBD" / "allsplit.mat",
        {"alltrain": cell(split_paths["train"]), "alltest": cell(split_paths["test"])},
    )
    return SunOfficialFixture(root, scenes)


# --------------------------------------------------------------------------- Cityscapes
@dataclass
class CityscapesFixture:
    root: Path
    size: tuple[int, int]
    camera: dict[str, float]
    names: dict[str, list[str]]  # split -> "<city>/<name>"


def cityscapes_label_ids(width: int, height: int, tag: int) -> np.ndarray:
    """Label ids 0..33 cycling over columns (so 26 = car and 0 = unlabelled both occur)."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    return ((x + tag + 0 * y) % 34).astype(np.uint8)


def cityscapes_disparity(width: int, height: int) -> np.ndarray:
    """uint16 disparity PNG values: p = 256 * d + 1 with d = 4 + x / 4 px; column 0 p = 0."""
    x = np.arange(width)[None, :] + np.zeros((height, 1), dtype=np.int64)
    p = (256 * (4.0 + x / 4.0) + 1).astype(np.uint16)
    p[:, 0] = 0
    p[:, 1] = 1  # d = 0: no disparity
    return p


def write_cityscapes_fixture(
    directory: str | os.PathLike[str], size: tuple[int, int] = (64, 32)
) -> CityscapesFixture:
    """Cityscapes train (aachen, 2 frames, with disparity + camera) and val (no camera)."""
    root = Path(directory)
    w, h = size
    camera = {"fx": 70.7, "fy": 70.8, "u0": 34.3, "v0": 16.0, "baseline": 0.209313}
    names = {
        "train": ["aachen/aachen_000000_000019", "aachen/aachen_000001_000019"],
        "val": ["frankfurt/frankfurt_000000_000294"],
    }
    for split, items in names.items():
        for tag, item in enumerate(items):
            city, name = item.split("/")
            _write_png(
                root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
                pattern_rgb(w, h, tag),
                rgb=True,
            )
            _write_png(
                root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png",
                cityscapes_label_ids(w, h, tag),
            )
            if split == "train":
                _write_png(
                    root / "disparity" / split / city / f"{name}_disparity.png",
                    cityscapes_disparity(w, h),
                )
                cam_path = root / "camera" / split / city / f"{name}_camera.json"
                cam_path.parent.mkdir(parents=True, exist_ok=True)
                data = {
                    "extrinsic": {
                        "baseline": camera["baseline"],
                        "pitch": 0.038,
                        "roll": 0.0,
                        "x": 1.7,
                        "y": 0.1,
                        "yaw": -0.0195,
                        "z": 1.18,
                    },
                    "intrinsic": {k: camera[k] for k in ("fx", "fy", "u0", "v0")},
                }
                cam_path.write_text(json.dumps(data, indent=4))
    return CityscapesFixture(root, size, camera, names)


# --------------------------------------------------------------------------- rosbag2
@dataclass
class RosbagFixture:
    path: Path
    rgb: list[np.ndarray]  # RGB frames in order
    depth_m: list[np.ndarray]  # depth in metres of the paired frames (first len(depth_m))
    intrinsics: CameraIntrinsics
    stamps_ns: list[int]
    topics: dict[str, str] = field(default_factory=dict)


def write_rosbag_fixture(
    path: str | os.PathLike[str],
    storage: str = "sqlite3",
    frames: int = 5,
    size: tuple[int, int] = (32, 24),
    rgb_encoding: str = "bgr8",
    depth_encoding: str = "16UC1",
    row_padding: int = 0,
) -> RosbagFixture:
    """A rosbag2 recording (sqlite3 or MCAP) with RGB, registered depth and camera_info.

    RGB frames at 30 Hz; depth stamped 5 ms after each of the first ``frames - 1`` RGB frames,
    and 100 ms after the last (outside the default 20 ms tolerance, so it stays unpaired);
    camera_info at the first and last frame. Depth ``0.5 + x/100 + y/50 + i/10`` m with pixel
    (0, 0) invalid (0). Images carry ``row_padding`` extra bytes per row.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
    ts = get_typestore(Stores.ROS2_JAZZY)
    image_t = ts.types["sensor_msgs/msg/Image"]
    info_t = ts.types["sensor_msgs/msg/CameraInfo"]
    header_t = ts.types["std_msgs/msg/Header"]
    time_t = ts.types["builtin_interfaces/msg/Time"]
    roi_t = ts.types["sensor_msgs/msg/RegionOfInterest"]
    w, h = size
    intr = CameraIntrinsics(w * 0.9, w * 0.9 + 0.5, (w - 1) / 2 + 0.25, (h - 1) / 2 - 0.5, w, h)
    topics = {
        "rgb": "/camera/color/image_raw",
        "depth": "/camera/aligned_depth_to_color/image_raw",
        "info": "/camera/color/camera_info",
    }

    def header(ns: int, frame_id: str) -> object:
        return header_t(stamp=time_t(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)

    def image_msg(ns: int, arr: np.ndarray, encoding: str) -> object:
        rows = arr.reshape(h, -1).view(np.uint8)
        padded = np.zeros((h, rows.shape[1] + row_padding), dtype=np.uint8)
        padded[:, : rows.shape[1]] = rows
        return image_t(
            header=header(ns, "camera_color_optical_frame"),
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=padded.shape[1],
            data=padded.reshape(-1),
        )

    t0 = 1_700_000_000 * 10**9
    period = 10**9 // 30
    rgb_frames, depth_frames, stamps = [], [], []
    out = Path(path)
    with Writer(out, version=9, storage_plugin=plugins[storage]) as writer:
        c_rgb = writer.add_connection(topics["rgb"], image_t.__msgtype__, typestore=ts)
        c_depth = writer.add_connection(topics["depth"], image_t.__msgtype__, typestore=ts)
        c_info = writer.add_connection(topics["info"], info_t.__msgtype__, typestore=ts)
        info = info_t(
            header=header(t0, "camera_color_optical_frame"),
            height=h,
            width=w,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=intr.matrix.reshape(-1),
            r=np.eye(3).reshape(-1),
            p=intr.projection.reshape(-1),
            binning_x=0,
            binning_y=0,
            roi=roi_t(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        x = np.arange(w, dtype=np.float32)[None, :]
        y = np.arange(h, dtype=np.float32)[:, None]
        for i in range(frames):
            ns = t0 + i * period
            rgb = pattern_rgb(w, h, 40 * i + 3)
            rgb_frames.append(rgb)
            stamps.append(ns)
            if i in (0, frames - 1):
                writer.write(c_info, ns, ts.serialize_cdr(info, info_t.__msgtype__))
            if rgb_encoding == "bgr8":
                arr = np.ascontiguousarray(rgb[..., ::-1])
            elif rgb_encoding == "rgb8":
                arr = rgb
            else:
                raise ValueError(f"fixture writes rgb8 or bgr8, got {rgb_encoding!r}")
            writer.write(
                c_rgb,
                ns + 1000,
                ts.serialize_cdr(image_msg(ns, arr, rgb_encoding), image_t.__msgtype__),
            )
            depth = (0.5 + x / 100 + y / 50 + i / 10).astype(np.float32)
            depth[0, 0] = 0.0
            if depth_encoding == "16UC1":
                mm = np.round(depth * 1000).astype(np.uint16)
                depth = mm.astype(np.float32) / 1000
                darr = mm
            elif depth_encoding == "32FC1":
                darr = depth
            else:
                raise ValueError(f"fixture writes 16UC1 or 32FC1, got {depth_encoding!r}")
            last = i == frames - 1
            dns = ns + (100_000_000 if last else 5_000_000)
            if not last:
                depth_frames.append(depth)
            writer.write(
                c_depth,
                dns + 1000,
                ts.serialize_cdr(image_msg(dns, darr, depth_encoding), image_t.__msgtype__),
            )
    return RosbagFixture(out, rgb_frames, depth_frames, intr, stamps, topics)


# --------------------------------------------------------------------------- Middlebury 2014
# calib.txt of Motorcycle-perfect (Middlebury 2014), the layout every scene's file has.
MIDDLEBURY_CALIB_TEMPLATE = (
    "cam0=[{f} 0 {cx}; 0 {f} {cy}; 0 0 1]\n"
    "cam1=[{f} 0 {cx1}; 0 {f} {cy}; 0 0 1]\n"
    "doffs={doffs}\n"
    "baseline={baseline}\n"
    "width={width}\n"
    "height={height}\n"
    "ndisp=270\n"
    "isint=0\n"
    "vmin=23\n"
    "vmax=245\n"
    "dyavg=0\n"
    "dymax=0\n"
)


@dataclass
class MiddleburyScene:
    path: Path
    image: np.ndarray  # HxWx3 uint8 RGB, as the loader must return it
    disparity: np.ndarray  # HxW float32 top row first, inf = unknown
    focal: float  # px
    cx: float
    cy: float
    doffs: float  # px
    baseline_mm: float


def write_pfm(path: Path, data: np.ndarray, little_endian: bool = True) -> None:
    """A PFM exactly as Middlebury's tools write it: ``Pf``, size, signed scale, rows bottom-up."""
    data = np.asarray(data, dtype=np.float32)
    magic = b"Pf" if data.ndim == 2 else b"PF"
    height, width = data.shape[:2]
    scale = b"-1" if little_endian else b"1"
    rows = np.ascontiguousarray(data[::-1]).astype("<f4" if little_endian else ">f4")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(magic + b"\n%d %d\n" % (width, height) + scale + b"\n" + rows.tobytes())


def write_middlebury_fixture(
    directory: str | os.PathLike[str],
    sizes: Sequence[tuple[int, int]] = ((8, 6), (10, 7)),
    big_endian_scene: int | None = 1,
) -> list[MiddleburyScene]:
    """Scenes ``scene<i>-perfect`` in the Middlebury 2014 layout (im0.png, disp0.pfm, calib.txt).

    Scene i's disparity grows linearly down the rows (so true inverse depth is linear in the
    row), with one unknown (inf) pixel; scene ``big_endian_scene`` writes a big-endian PFM.
    """
    root = Path(directory)
    scenes = []
    for i, (width, height) in enumerate(sizes):
        path = root / f"scene{i}-perfect"
        image = pattern_rgb(width, height, tag=40 + i)
        rows = np.arange(height, dtype=np.float32)[:, None]
        disparity = np.repeat(20.0 + (3.0 + i) * rows, width, axis=1).astype(np.float32)
        disparity[0, width - 1] = np.inf
        focal, doffs, baseline = 400.0 + 50 * i, 12.5 + i, 160.0 + 10 * i
        cx, cy = (width - 1) / 2.0 + 0.25, (height - 1) / 2.0 - 0.5
        _write_png(path / "im0.png", image, rgb=True)
        write_pfm(path / "disp0.pfm", disparity, little_endian=i != big_endian_scene)
        calib = MIDDLEBURY_CALIB_TEMPLATE.format(
            f=focal,
            cx=cx,
            cx1=cx + doffs,
            cy=cy,
            doffs=doffs,
            baseline=baseline,
            width=width,
            height=height,
        )
        (path / "calib.txt").write_text(calib, encoding="utf-8")
        scenes.append(MiddleburyScene(path, image, disparity, focal, cx, cy, doffs, baseline))
    return scenes
