"""Tests of the randomised synthetic domain: exactness, determinism, FOV, content, data set."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_perception.synthetic import (
    DEPTH_RANGES,
    INDOOR_CLASSES,
    RandomizedWorld,
    SyntheticWorld,
    benchmark_domains,
    depth_range_for,
    make_world,
    photos,
    spaces,
)
from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.world import _seed_sequence

W, H = 96, 72
FLOOR, CEILING, WALL = (INDOOR_CLASSES.index(n) for n in ("floor", "ceiling", "wall"))


@pytest.fixture(scope="module")
def indoor_worlds() -> list[RandomizedWorld]:
    return [RandomizedWorld("indoor", W, H, seed=0, scene_index=k) for k in range(10)]


@pytest.fixture(scope="module")
def road_worlds() -> list[RandomizedWorld]:
    return [RandomizedWorld("road", W, H, seed=0, scene_index=k) for k in range(3)]


def _hfov(world: SyntheticWorld) -> float:
    return math.degrees(2.0 * math.atan(world.intrinsics.width / (2.0 * world.intrinsics.fx)))


def _world_points(frame) -> np.ndarray:
    """(H, W, 3) world points of every pixel from depth, intrinsics and pose."""
    k = frame.intrinsics
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    z = frame.depth.astype(np.float64)
    cam = np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z], axis=-1)
    return cam @ frame.pose[:3, :3].T + frame.pose[:3, 3]


def test_same_seed_gives_identical_arrays_and_other_seeds_differ():
    for family in ("indoor", "road"):
        a = RandomizedWorld(family, W, H, seed=3, scene_index=7).render(21)
        b = RandomizedWorld(family, W, H, seed=3, scene_index=7).render(21)
        for name in ("rgb", "depth", "labels", "pose"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.intrinsics.matrix, b.intrinsics.matrix)
        for other in (
            RandomizedWorld(family, W, H, seed=4, scene_index=7).render(21),
            RandomizedWorld(family, W, H, seed=3, scene_index=8).render(21),
        ):
            assert not np.array_equal(other.rgb, a.rgb)
            assert not np.array_equal(other.depth, a.depth)


def test_default_domain_is_the_unchanged_default_world():
    a = make_world("indoor", W, H, seed=0, hfov_deg=60.0, scene_index=2)
    b = SyntheticWorld("indoor", W, H, seed=0, hfov_deg=60.0, scene_index=2)
    assert type(a) is SyntheticWorld
    np.testing.assert_array_equal(a.render(5).rgb, b.render(5).rgb)
    assert depth_range_for("indoor") == DEPTH_RANGES["indoor"]
    with pytest.raises(ValueError, match="randomized"):
        make_world("indoor", W, H, domain="random")
    with pytest.raises(ValueError, match="hfov_range"):
        RandomizedWorld("indoor", W, H, hfov_range=(30.0, 90.0))


def test_field_of_view_is_drawn_in_range_and_the_intrinsics_follow_it(indoor_worlds):
    fovs = []
    for world in indoor_worlds:
        hfov = _hfov(world)
        assert 40.0 <= hfov <= 100.0
        k = world.intrinsics
        assert k.fx == pytest.approx(k.fy)
        assert k.fx == pytest.approx(W / 2.0 / math.tan(math.radians(hfov) / 2.0))
        np.testing.assert_array_equal(world.render(3).intrinsics.matrix, k.matrix)
        fovs.append(hfov)
    assert max(fovs) - min(fovs) > 25.0  # actually randomised, not one fixed camera
    narrow = RandomizedWorld("indoor", W, H, scene_index=1, hfov_range=(50.0, 50.0))
    assert _hfov(narrow) == pytest.approx(50.0)


def test_depth_stays_in_the_nominal_range(indoor_worlds, road_worlds):
    lo, hi = depth_range_for("indoor", "randomized")
    near = 0
    for world in indoor_worlds:
        assert world.depth_range == (lo, hi)
        for i in range(0, world.frames_per_loop, world.frames_per_loop // 12):
            d = world.render(i).depth
            assert np.all(np.isfinite(d))  # closed rooms: no sky
            assert lo <= d.min() and d.max() <= hi
            near += d.min() < 1.0
    assert near >= 12  # things 0.3-1 m from the camera are common, not rare
    lo, hi = depth_range_for("road", "randomized")
    for world in road_worlds:
        for i in range(0, world.frames_per_loop, world.frames_per_loop // 4):
            d = world.render(i).depth
            fin = d[np.isfinite(d)]
            assert lo <= fin.min() and fin.max() <= hi


def test_labels_agree_with_the_depth_geometry(indoor_worlds):
    """Back-projected floor / ceiling / wall pixels lie on the room's planes."""
    checked = 0
    for world in indoor_worlds[:6]:
        rw, rd, rh = world.scene.background.size
        for i in (0, world.frames_per_loop // 3):
            fr = world.render(i)
            pts = _world_points(fr)
            tol = 1e-4 * fr.depth.astype(np.float64) + 1e-4  # float32 depth
            floor = fr.labels == FLOOR
            ceiling = fr.labels == CEILING
            wall = fr.labels == WALL
            assert np.all(np.abs(pts[floor][:, 2]) < tol[floor] * 4)
            assert np.all(np.abs(pts[ceiling][:, 2] - rh) < tol[ceiling] * 4)
            dist = np.minimum.reduce(
                [np.abs(pts[..., 0]), np.abs(pts[..., 0] - rw), np.abs(pts[..., 1]),
                 np.abs(pts[..., 1] - rd)]
            )  # fmt: skip
            assert np.all(dist[wall] < tol[wall] * 4)
            # and every pixel on none of these planes carries another label
            on_room = (np.abs(pts[..., 2]) < 1e-5) | (np.abs(pts[..., 2] - rh) < 1e-5)
            assert not np.any(on_room & ~(floor | ceiling | wall) & (dist > 0.02))
            checked += int(floor.sum() + ceiling.sum() + wall.sum())
    assert checked > 1000


def test_randomisation_changes_appearance_only(indoor_worlds, road_worlds):
    """Depth and labels are the scene's exact rasterisation, whatever the materials and lights."""
    from depth_perception.synthetic.raster import Rasterizer

    for world in (indoor_worlds[2], road_worlds[0]):
        pose = world.pose(10)
        invz, sid = Rasterizer(world.intrinsics, near=0.05, far=world.depth_range[1]).rasterize(
            world.scene, pose
        )
        fr = world.render(10)
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(fr.depth, np.float32(1.0) / invz)
        if world.family == "indoor":  # road ground labels come per pixel from the ground
            np.testing.assert_array_equal(fr.labels, world.scene.surf_label[sid])
        assert fr.rgb.dtype == np.uint8 and fr.rgb.shape == (H, W, 3)
        assert fr.rgb.std() > 5.0  # neither flat nor saturated


@pytest.mark.parametrize("room_type", spaces.ROOM_TYPES)
def test_every_room_type_is_cluttered_and_its_path_is_safe(room_type):
    from depth_perception.camera import CameraIntrinsics

    intr = CameraIntrinsics.from_hfov(W, H, 100.0)
    rng = _seed_sequence(0, "indoor", 11, 0)
    scene, path, info = spaces.build_space(rng, intr, room_type)
    assert info["room_type"] == room_type
    objects = scene.surf_label == INDOOR_CLASSES.index("object")
    assert objects.sum() >= 6  # clutter, not an empty box
    min_depth = spaces._path_min_depth(path, spaces._corner_rays(intr), info["height"])
    assert min_depth > spaces.MIN_DEPTH
    heights = path.sample_positions(64)[:, 2]
    assert 0.1 <= heights.min() and heights.max() <= 1.9
    with pytest.raises(ValueError, match="room type"):
        spaces.build_space(rng, intr, "ballroom")


def test_room_types_and_camera_heights_vary_across_scenes():
    types, heights = set(), []
    for k in range(24):
        rng = _seed_sequence(0, "indoor", k, 0)
        from depth_perception.camera import CameraIntrinsics

        _scene, path, info = spaces.build_space(rng, CameraIntrinsics.from_hfov(W, H, 70.0))
        types.add(info["room_type"])
        heights.append(float(path.sample_positions(8)[:, 2].mean()))
    assert len(types) >= 5
    assert min(heights) < 0.45 and max(heights) > 1.1  # floor robots to head height


def test_materials_are_randomised_and_photos_hold_out_the_evaluation_images(indoor_worlds):
    mats = set()
    for world in indoor_worlds:
        mats |= set(np.unique(world.scene.surf_material).tolist())
    for m in (tx.PHOTO, tx.FBM, tx.VORONOI, tx.STRIPES, tx.DEAD_LEAVES):
        assert m in mats
    from depth_perception.sample_data import SKIMAGE_PHOTOS

    # every photograph the real-image benchmark and panels show stays out of training data
    assert set(SKIMAGE_PHOTOS) <= set(photos.HELD_OUT)
    assert not set(photos.HELD_OUT) & set(photos.PHOTO_SOURCES)
    bank = photos.photo_bank()
    assert bank.count == len(photos.PHOTO_SOURCES) * len(photos._CROPS) * 4
    assert bank.packed.shape == (bank.count * bank.size * bank.size,)
    assert np.all((bank.means > 0) & (bank.means <= 1))
    # a photo texture is a pure function of the surface coordinates
    s = np.linspace(0, 2, 50, dtype=np.float32)
    prm = np.tile(np.array([[0.3], [0.5], [7.0], [0.0]], dtype=np.float32), 50)
    alb = np.tile(bank.means[:, 7:8], 50)
    a = tx.tex_photo(s, s * 0.5, prm, alb)
    np.testing.assert_array_equal(a, tx.tex_photo(s, s * 0.5, prm, alb))
    assert a.shape == (3, 50) and a.std() > 0.01


def test_new_noise_textures_are_finite_and_bounded():
    rng = np.random.default_rng(0)
    n = 500
    s = rng.uniform(-5, 5, n).astype(np.float32)
    t = rng.uniform(-5, 5, n).astype(np.float32)
    alb = rng.uniform(0.1, 0.9, (3, n)).astype(np.float32)
    for fn in (tx.tex_fbm, tx.tex_voronoi, tx.tex_stripes, tx.tex_dead_leaves):
        prm = np.stack([rng.random(n), np.full(n, 0.3), rng.random(n), rng.random(n)])
        out = fn(s, t, prm.astype(np.float32), alb)
        assert out.shape == (3, n) and np.all(np.isfinite(out))
        assert out.min() >= 0.0 and out.max() <= 1.5 and out.std() > 0.01


def test_dataset_domain_option(tmp_path):
    from training.config import DataConfig
    from training.data import data_depth_range, make_dataset
    from training.data.synthetic import SyntheticDataset, SyntheticSequenceDataset

    ds = SyntheticDataset("indoor", "train", W, H, frames_per_scene=2, num_scenes=3,
                          domain="randomized", cache_dir=tmp_path)  # fmt: skip
    first = ds[0]
    fr = ds.world(0).render(0)
    np.testing.assert_array_equal(first.image, fr.rgb)
    assert np.allclose(first.intrinsics.matrix, fr.intrinsics.matrix)
    again = SyntheticDataset("indoor", "train", W, H, frames_per_scene=2, num_scenes=3,
                             domain="randomized", cache_dir=tmp_path)[0]  # fmt: skip
    np.testing.assert_array_equal(again.image, first.image)  # read back from the cache
    assert "randomized_indoor" in ds.path_of(0)
    plain = SyntheticDataset("indoor", "train", W, H, frames_per_scene=2, num_scenes=3)
    assert not np.array_equal(plain[0].image, first.image)
    with pytest.raises(ValueError, match="domain"):
        SyntheticDataset("indoor", domain="photoreal")
    seq = SyntheticSequenceDataset("indoor", "train", W, H, frames_per_scene=2, num_scenes=1,
                                   domain="randomized")  # fmt: skip
    assert len(seq[1].neighbours) == 2

    cfg = DataConfig(dataset="synthetic", family="indoor", width=W, height=H,
                     options={"domain": "randomized", "frames_per_scene": 2})  # fmt: skip
    assert data_depth_range(cfg) == depth_range_for("indoor", "randomized")
    built = make_dataset(cfg, "val", length=2)
    assert built[0].image.shape == (H, W, 3)


def test_benchmark_domains_reports_both_domains():
    res = benchmark_domains(32, 24, frames=2, repeats=1, scenes=1, families=("indoor",))
    assert set(res) == {"default/indoor", "randomized/indoor"}
    assert all(v["fps"] > 0 and v["build_ms"] > 0 for v in res.values())


def test_prerender_fills_the_cache_the_data_set_then_reads(tmp_path):
    from training.data.synthetic import SyntheticDataset, prerender

    ds = SyntheticDataset("indoor", "val", W, H, frames_per_scene=2, num_scenes=2,
                          domain="randomized", cache_dir=tmp_path)  # fmt: skip
    res = prerender(ds, workers=1)
    assert res["frames"] == 4 and res["bytes"] > 0
    assert len(list(tmp_path.rglob("*.npz"))) == 4
    fresh = SyntheticDataset("indoor", "val", W, H, frames_per_scene=2, num_scenes=2,
                             domain="randomized")  # fmt: skip
    np.testing.assert_array_equal(ds[3].image, fresh[3].image)
    np.testing.assert_array_equal(ds[3].depth, fresh[3].depth)
    with pytest.raises(ValueError, match="cache_dir"):
        prerender(fresh)


def test_contact_sheet_shape():
    from depth_perception.synthetic.randomized import contact_sheet

    sheet = contact_sheet(indoor_scenes=2, road_scenes=1, columns=2, width=32, height=24)
    assert sheet.shape == (2 * 24, 2 * 2 * 32, 3) and sheet.dtype == np.uint8


def test_deterministic_across_processes():
    """Photo bank, noise, JPEG: a fresh interpreter renders the same bytes."""
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import hashlib, numpy as np\n"
        "from depth_perception.synthetic import RandomizedWorld\n"
        "for fam in ('indoor', 'road'):\n"
        f"    f = RandomizedWorld(fam, {W}, {H}, seed=2, scene_index=5).render(9)\n"
        "    print(hashlib.sha256(f.rgb.tobytes() + f.depth.tobytes()).hexdigest())\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    here = []
    for fam in ("indoor", "road"):
        f = RandomizedWorld(fam, W, H, seed=2, scene_index=5).render(9)
        here.append(hashlib.sha256(f.rgb.tobytes() + f.depth.tobytes()).hexdigest())
    assert out == here
