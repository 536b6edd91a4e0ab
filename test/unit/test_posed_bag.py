"""Posed frame triplets from a robot's rosbag2 (images + camera_info + /tf + /tf_static)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from training.data.fixtures import pattern_rgb
from training.data.posed_bag import PosedBagDataset, select_triplets
from training.data.posed_bag_fixture import (
    COMPRESSED_TOPIC,
    IMAGE_TOPIC,
    base_poses_from_camera,
    write_posed_bag,
)
from training.data.tf_tree import invert_transform, make_transform

W, H = 32, 24
T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000  # 10 Hz


def camera_path(n: int, step_m: float = 0.03, yaw_per_frame: float = 0.01) -> list[np.ndarray]:
    """Camera-to-odom optical poses: forward along the optical z, turning slowly."""
    out = []
    for i in range(n):
        c, s = math.cos(yaw_per_frame * i), math.sin(yaw_per_frame * i)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # about the optical y (down)
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = [0.1 * i * step_m, 0.0, i * step_m]
        out.append(pose)
    return out


def write(path: Path, n: int = 8, odom_every: int = 1, **kwargs) -> tuple[list, list]:
    stamps = kwargs.pop("stamps", [T0 + i * PERIOD for i in range(n)])
    poses = kwargs.pop("poses", camera_path(n))
    intr = CameraIntrinsics(28.0, 28.0, (W - 1) / 2, (H - 1) / 2, W, H)
    base = base_poses_from_camera(poses)
    odom = [(T0 + i * PERIOD, base[i]) for i in range(0, n, odom_every)]
    if odom[-1][0] != T0 + (n - 1) * PERIOD:
        odom.append((T0 + (n - 1) * PERIOD, base[-1]))
    images = [pattern_rgb(W, H, 17 * i) for i in range(n)]
    write_posed_bag(path, images, stamps, intr, odom, **kwargs)
    return images, poses


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_triplets_carry_the_known_relative_poses(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    images, poses = write(bag, n=8, storage=storage)
    ds = PosedBagDataset(bag, IMAGE_TOPIC, min_translation_m=0.05)
    # 3 cm per frame: the sources are two frames away, so targets 2..5 have both.
    assert ds.triplets == [(i - 2, i, i + 2) for i in range(2, 6)]
    assert ds.camera_frame == "camera_optical_frame"
    s = ds[1]
    np.testing.assert_array_equal(s.image, images[3])
    np.testing.assert_array_equal(s.neighbours[0], images[1])
    np.testing.assert_array_equal(s.neighbours[1], images[5])
    for nb, pose in zip((1, 5), s.poses, strict=True):
        np.testing.assert_allclose(pose, invert_transform(poses[nb]) @ poses[3], atol=1e-9)
    assert s.meta["offsets"] == (-2, 2)
    assert not s.valid.any()  # no depth: self-supervised
    assert (s.intrinsics.fx, s.intrinsics.width) == (28.0, W)
    assert ds.moved_m == pytest.approx(7 * 0.03 * math.sqrt(1.01), rel=1e-6)


def test_poses_between_odometry_samples_are_interpolated(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    # Constant yaw rate: slerp is exact. The base's path is an arc (the camera, whose path is
    # straight, sits 0.25 m ahead of it), so lerp between samples 0.06 m apart is off by the
    # arc's sagitta, ~1e-5 m; without interpolation (nearest sample) it would be 3 cm off.
    _, poses = write(bag, n=9, odom_every=2, compressed=True)
    ds = PosedBagDataset(bag, COMPRESSED_TOPIC)
    for i in (1, 3, 5):
        np.testing.assert_allclose(ds._pose_of[i][:3, :3], poses[i][:3, :3], atol=1e-9)
        np.testing.assert_allclose(ds._pose_of[i][:3, 3], poses[i][:3, 3], atol=3e-5)
    assert ds[0].image.shape == (H, W, 3)  # jpeg decoded


def test_select_triplets_respects_the_rotation_limit() -> None:
    straight = camera_path(6, step_m=0.06, yaw_per_frame=0.0)
    assert select_triplets(straight, 0.05, 5.0, 3) == [(i - 1, i, i + 1) for i in range(1, 5)]
    turning = camera_path(6, step_m=0.06, yaw_per_frame=math.radians(8))
    assert select_triplets(turning, 0.05, 5.0, 3) == []
    assert select_triplets(straight, 0.5, 5.0, 3) == []  # beyond max_frames_apart


def test_no_tf_between_odom_and_camera(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write(bag, tf_static=False)
    with pytest.raises(ValueError, match="no TF between 'base_link' and 'camera_optical_frame'"):
        PosedBagDataset(bag, IMAGE_TOPIC)
    with pytest.raises(ValueError, match="no TF between 'map' and 'base_link'"):
        PosedBagDataset(tmp_path / "bag", IMAGE_TOPIC, odom_frame="map")


def test_images_without_camera_info(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    write(bag, camera_info=False)
    with pytest.raises(ValueError, match="have no camera_info"):
        PosedBagDataset(bag, IMAGE_TOPIC)


def test_a_robot_that_never_moves_has_no_parallax(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    still = [make_transform((0, 0, 0.001 * i), (0, 0, 0, 1)) for i in range(8)]
    write(bag, poses=still)
    with pytest.raises(ValueError, match=r"no parallax: the camera moves at most 0\.007 m"):
        PosedBagDataset(bag, IMAGE_TOPIC)


def test_image_stamps_out_of_order(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    stamps = [T0 + i * PERIOD for i in range(8)]
    stamps[4], stamps[5] = stamps[5], stamps[4]
    write(bag, stamps=stamps)
    with pytest.raises(ValueError, match="out of order"):
        PosedBagDataset(bag, IMAGE_TOPIC)
