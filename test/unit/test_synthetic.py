"""Tests of the procedural renderer: exact depth, labels, camera path, determinism."""

from __future__ import annotations

import hashlib
import itertools
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from depth_perception.synthetic import (
    INDOOR_CLASSES,
    INDOOR_PALETTE,
    INDOOR_TO_NYU40,
    ROAD_CLASSES,
    ROAD_PALETTE,
    SyntheticWorld,
    benchmark_renderer,
    classes_for,
    colorize_labels,
)
from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.raster import Rasterizer
from depth_perception.synthetic.scene import (
    GroundBackground,
    Lighting,
    SceneBuilder,
    pose_from_ypr,
)

REPO = Path(__file__).resolve().parents[2]
W, H = 160, 120

CITYSCAPES_TRAIN_IDS = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip


@pytest.fixture(scope="module")
def indoor() -> SyntheticWorld:
    return SyntheticWorld("indoor", W, H, seed=0, scene_index=0)


@pytest.fixture(scope="module")
def road() -> SyntheticWorld:
    return SyntheticWorld("road", W, H, seed=0, scene_index=0)


def _digest(frame) -> str:
    h = hashlib.sha256()
    for a in (frame.rgb, frame.depth, frame.labels, frame.pose):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _level_pose(world: SyntheticWorld, index: int) -> np.ndarray:
    """A level camera (no pitch / roll) at the path position of frame ``index``."""
    pose = world.pose(index)
    fwd = pose[:3, 2]
    return pose_from_ypr(pose[:3, 3], math.atan2(fwd[1], fwd[0]), 0.0, 0.0)


# ----------------------------------------------------------------------------- classes


def test_class_tables_match_the_public_datasets():
    assert ROAD_CLASSES == CITYSCAPES_TRAIN_IDS
    assert ROAD_PALETTE.shape == (19, 3) and ROAD_PALETTE.dtype == np.uint8
    # spot-check official Cityscapes colours
    assert tuple(ROAD_PALETTE[0]) == (128, 64, 128)
    assert tuple(ROAD_PALETTE[10]) == (70, 130, 180)
    assert tuple(ROAD_PALETTE[13]) == (0, 0, 142)
    assert tuple(ROAD_PALETTE[18]) == (119, 11, 32)
    assert 13 <= len(INDOOR_CLASSES) <= 15
    assert INDOOR_PALETTE.shape == (len(INDOOR_CLASSES), 3) and INDOOR_PALETTE.dtype == np.uint8
    assert len(INDOOR_TO_NYU40) == len(INDOOR_CLASSES)
    assert INDOOR_CLASSES[:2] == ("wall", "floor")
    assert INDOOR_TO_NYU40[INDOOR_CLASSES.index("ceiling")] == 22
    assert tuple(INDOOR_PALETTE[0]) == (174, 199, 232)  # NYU-40 "wall" colour
    assert len({tuple(c) for c in INDOOR_PALETTE}) == len(INDOOR_CLASSES)
    names, palette = classes_for("road")
    assert names == ROAD_CLASSES and palette is ROAD_PALETTE
    assert classes_for("indoor")[0] == INDOOR_CLASSES
    with pytest.raises(ValueError, match="indoor, road"):
        classes_for("forest")
    img = colorize_labels(np.array([[0, 255]], dtype=np.uint8), ROAD_PALETTE)
    assert img[0, 0].tolist() == [128, 64, 128] and img[0, 1].tolist() == [0, 0, 0]


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="indoor, road"):
        SyntheticWorld("forest")
    with pytest.raises(ValueError, match="image size"):
        SyntheticWorld("indoor", 0, 10)
    with pytest.raises(ValueError, match="non-negative"):
        SyntheticWorld("indoor", 32, 24, seed=-1)


# ----------------------------------------------------------------------------- frames


@pytest.mark.parametrize("family", ["indoor", "road"])
def test_frame_format(family, indoor, road):
    world = indoor if family == "indoor" else road
    assert world.class_names == classes_for(family)[0]
    assert world.palette is classes_for(family)[1]
    frame = world.render(7)
    assert frame.index == 7
    assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (H, W) and frame.depth.dtype == np.float32
    assert frame.labels.shape == (H, W) and frame.labels.dtype == np.uint8
    assert frame.intrinsics == CameraIntrinsics.from_hfov(W, H, 70.0)
    assert frame.pose.shape == (4, 4) and frame.pose.dtype == np.float64
    rot = frame.pose[:3, :3]
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_array_equal(frame.pose[3], [0, 0, 0, 1])
    # labels valid, all pixels labelled, image not flat
    assert frame.labels.max() < len(world.class_names)
    assert frame.rgb.std() > 10


def test_indoor_floor_depth_is_exact(indoor):
    v = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, W))
    checked = 0
    for index in range(0, indoor.frames_per_loop, 60):
        pose = _level_pose(indoor, index)
        frame = indoor.render_pose(pose)
        intr = frame.intrinsics
        height = pose[2, 3]
        floor = (frame.labels == INDOOR_CLASSES.index("floor")) & (v > intr.cy + 1)
        # a level camera h metres above the floor sees it at z = h fy / (v - cy), whatever u is
        expected = height * intr.fy / (v[floor] - intr.cy)
        np.testing.assert_allclose(frame.depth[floor], expected, rtol=1e-4)
        checked += floor.sum()
    assert checked > 1000


def test_road_ground_depth_is_exact_and_sky_is_infinite(road):
    pose = _level_pose(road, 25)
    frame = road.render_pose(pose)
    intr = frame.intrinsics
    v = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, W))
    ground_ids = [ROAD_CLASSES.index(n) for n in ("road", "sidewalk", "terrain")]
    ground = np.isin(frame.labels, ground_ids)
    assert ground[-1].all()  # bottom row: the road surface
    expected = pose[2, 3] * intr.fy / (v[ground] - intr.cy)
    np.testing.assert_allclose(frame.depth[ground], expected, rtol=1e-4)
    sky = frame.labels == ROAD_CLASSES.index("sky")
    assert sky.sum() > 50
    assert np.isposinf(frame.depth[sky]).all()
    assert np.isfinite(frame.depth[~sky]).all()
    # sky is above the horizon only
    assert (v[sky] < intr.cy).all()


def test_polygon_depth_silhouette_and_near_clipping():
    intr = CameraIntrinsics.from_hfov(W, H, 70.0)
    b = SceneBuilder()
    ground = b.add_surface(0, tx.PLAIN, (0.5, 0.5, 0.5), (0.0, 0.0, 1.0))
    # fronto-parallel face at x = 5 (a box 2 m deep, 3 m wide, 3 m high)
    b.add_box((6.0, 0.0), 0.0, (2.0, 3.0, 3.0), 0.0, 1, tx.PLAIN, (0.6, 0.2, 0.2))
    # a yawed box: oblique planes
    b.add_box((3.5, 1.6), 0.0, (1.0, 1.2, 2.5), 0.7, 2, tx.PLAIN, (0.2, 0.6, 0.2))
    # a raised slab reaching behind the camera: must be clipped at the near plane
    slab = np.array(
        [[-20.0, -20.0, 0.2], [40.0, -20.0, 0.2], [40.0, 20.0, 0.2], [-20.0, 20.0, 0.2]]
    )
    b.add_polygon(slab, 3, tx.PLAIN, (0.3, 0.3, 0.3))
    scene = b.build(GroundBackground(ground), Lighting(light_dir=np.array([0.0, 0.0, 1.0])))
    raster = Rasterizer(intr)
    pose = pose_from_ypr((0.0, 0.0, 1.5), 0.0, 0.0, 0.0)
    invz, sid = raster.rasterize(scene, pose)
    with np.errstate(divide="ignore"):
        depth = 1.0 / invz.astype(np.float64)
    labels = scene.surf_label[sid]

    # front face: constant depth 5, silhouette at u = cx +- 1.5 fx / 5
    front = sid == sid[int(intr.cy), int(intr.cx)]
    assert labels[int(intr.cy), int(intr.cx)] == 1
    np.testing.assert_allclose(depth[front], 5.0, rtol=1e-6)
    half = 1.5 * intr.fx / 5.0
    row = int(intr.cy)
    assert front[row, int(intr.cx + 0.9 * half)] and not front[row, int(intr.cx + 1.1 * half) + 1]
    top = intr.cy - (3.0 - 1.5) * intr.fy / 5.0  # image row of the box's top edge
    assert front[int(top + 2), int(intr.cx)] and not front[int(top - 2), int(intr.cx)]

    # every interior pixel of every polygon: exact ray / plane intersection
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1)
    dirs = rays @ pose[:3, :3].T
    origin = pose[:3, 3]
    checked = 0
    for s in np.unique(sid):
        if s in (0, ground):  # sky, analytic ground
            continue
        inside = cv2.erode((sid == s).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        normal = scene.surf_normal[s].astype(np.float64)
        poly = np.flatnonzero(scene.poly_sid == s)[0]
        d = scene.poly_d[poly]
        t = (d - normal @ origin) / (dirs[inside] @ normal)
        np.testing.assert_allclose(depth[inside], t, rtol=1e-5)
        checked += inside.sum()
    assert checked > 0.5 * W * H
    # the slab (clipped behind the camera) covers the bottom rows at height 1.3
    bottom = labels[-1] == 3
    assert bottom.all()
    np.testing.assert_allclose(depth[-1], 1.3 * intr.fy / (H - 1 - intr.cy), rtol=1e-5)


def test_box_and_prism_faces_point_outwards():
    b = SceneBuilder()
    b.add_box((1.0, 2.0), 0.5, (2.0, 1.0, 3.0), 0.4, 1, tx.PLAIN, (0.5, 0.5, 0.5), bottom=True)
    b.add_prism((-3.0, 1.0), 0.0, 2.0, 1.0, 0.4, 7, 2, tx.PLAIN, (0.5, 0.5, 0.5), bottom=True)
    scene = b.build(GroundBackground(0), Lighting(light_dir=np.array([0.0, 0.0, 1.0])))
    assert scene.num_polygons == 6 + 9
    centres = {1: np.array([1.0, 2.0, 2.0]), 2: np.array([-3.0, 1.0, 1.0])}
    for k in range(scene.num_polygons):
        verts = scene.poly_verts[k, : scene.poly_count[k]]
        label = scene.surf_label[scene.poly_sid[k]]
        outward = verts.mean(axis=0) - centres[label]
        assert scene.poly_normal[k] @ outward > 0
        # planar: every vertex on the polygon's plane
        np.testing.assert_allclose(verts @ scene.poly_normal[k], scene.poly_d[k], atol=1e-9)


@pytest.mark.parametrize(
    ("family", "scenes"), [("indoor", (0, 1, 2, 3, 4, 5)), ("road", (0, 1, 2))]
)
def test_depth_within_family_range(family, scenes):
    lo, hi = (0.5, 10.0) if family == "indoor" else (1.0, 80.0)
    seen = set()
    for scene_index in scenes:
        world = SyntheticWorld(family, 96, 72, seed=3, scene_index=scene_index)
        assert world.depth_range == (lo, hi)
        n = world.frames_per_loop
        for index in range(0, n, max(1, n // 12)):
            frame = world.render(index)
            finite = np.isfinite(frame.depth)
            if family == "indoor":
                assert finite.all()
            else:
                sky = frame.labels == ROAD_CLASSES.index("sky")
                np.testing.assert_array_equal(~finite, sky)
            d = frame.depth[finite]
            assert d.min() >= lo and d.max() <= hi, (scene_index, index, d.min(), d.max())
            assert frame.labels.max() < len(world.class_names)
            seen.update(np.unique(frame.labels).tolist())
    names = INDOOR_CLASSES if family == "indoor" else ROAD_CLASSES
    expected = (
        {"wall", "floor", "ceiling", "door", "window"}
        if family == "indoor"
        else {"road", "sidewalk", "building", "sky", "car", "vegetation", "pole", "person"}
    )
    assert expected <= {names[i] for i in seen}


@pytest.mark.parametrize("family", ["indoor", "road"])
def test_camera_path_is_smooth_and_closed(family, indoor, road):
    world = indoor if family == "indoor" else road
    step = 0.05 if family == "indoor" else 0.5
    n = world.frames_per_loop
    poses = [world.pose(i) for i in range(0, n + 1)]
    for a, b in itertools.pairwise(poses):
        assert np.linalg.norm(b[:3, 3] - a[:3, 3]) < step
        cos = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
        assert math.degrees(math.acos(min(1.0, cos))) < 2.5
    # the loop closes, and the camera really travels
    assert np.linalg.norm(poses[-1][:3, 3] - poses[0][:3, 3]) < step
    extent = np.ptp(np.array([p[:3, 3] for p in poses]), axis=0)
    assert extent[:2].max() > (0.5 if family == "indoor" else 40.0)
    # yaw actually changes along the path
    yaws = [math.atan2(p[1, 2], p[0, 2]) for p in poses]
    assert np.ptp(np.unwrap(yaws)) > 1.0


def test_multi_view_consistency(indoor, road):
    """Depth and texture agree across frames: reprojected depth and colour match."""
    for world, gap in ((indoor, 8), (road, 3)):
        a, b = world.render(30), world.render(30 + gap)
        intr = a.intrinsics
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        ok = np.isfinite(a.depth)
        z = a.depth[ok].astype(np.float64)
        cam = np.stack([(u[ok] - intr.cx) / intr.fx * z, (v[ok] - intr.cy) / intr.fy * z, z], 1)
        world_pts = cam @ a.pose[:3, :3].T + a.pose[:3, 3]
        in_b = (world_pts - b.pose[:3, 3]) @ b.pose[:3, :3]
        ub = np.rint(intr.fx * in_b[:, 0] / in_b[:, 2] + intr.cx).astype(int)
        vb = np.rint(intr.fy * in_b[:, 1] / in_b[:, 2] + intr.cy).astype(int)
        inside = (in_b[:, 2] > 0) & (ub >= 0) & (ub < W) & (vb >= 0) & (vb < H)
        assert inside.mean() > 0.6
        zb = b.depth[vb[inside], ub[inside]].astype(np.float64)
        rel = np.abs(zb - in_b[inside, 2]) / in_b[inside, 2]
        # most pixels see the same surface point (the rest: occlusions, silhouettes)
        assert np.mean(rel < 0.02) > 0.85
        assert np.median(rel) < 0.005
        same = rel < 0.005
        ca = a.rgb[ok][inside][same].astype(np.float64)
        cb = b.rgb[vb[inside][same], ub[inside][same]].astype(np.float64)
        matched = np.median(np.abs(ca - cb))
        shuffled = np.median(np.abs(ca - np.roll(cb, 997, axis=0)))
        assert matched < 12 and matched < 0.5 * shuffled


def test_deterministic_in_process_and_across_processes(indoor, road):
    for world in (indoor, road):
        first = world.render(11)
        again = world.render(11)
        for name in ("rgb", "depth", "labels", "pose"):
            np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
        twin = SyntheticWorld(world.family, W, H, seed=0, scene_index=0)
        assert _digest(twin.render(11)) == _digest(first)
    code = (
        "import hashlib, numpy as np\n"
        "from depth_perception.synthetic import SyntheticWorld\n"
        "for fam in ('indoor', 'road'):\n"
        f"    f = SyntheticWorld(fam, {W}, {H}, seed=0, scene_index=0).render(11)\n"
        "    h = hashlib.sha256()\n"
        "    for a in (f.rgb, f.depth, f.labels, f.pose):\n"
        "        h.update(np.ascontiguousarray(a).tobytes())\n"
        "    print(h.hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [_digest(indoor.render(11)), _digest(road.render(11))]


def test_scene_index_and_seed_change_the_layout(indoor):
    other = SyntheticWorld("indoor", W, H, seed=0, scene_index=1)
    reseeded = SyntheticWorld("indoor", W, H, seed=1, scene_index=0)
    for world in (other, reseeded):
        assert world.scene.background.size != indoor.scene.background.size
        assert not np.array_equal(world.render(0).depth, indoor.render(0).depth)


def test_iteration_and_render_wraparound(indoor):
    frames = list(itertools.islice(iter(indoor), 3))
    assert [f.index for f in frames] == [0, 1, 2]
    assert len(indoor) == indoor.frames_per_loop > 50
    wrapped = indoor.render(indoor.frames_per_loop + 2)
    np.testing.assert_allclose(wrapped.pose, frames[2].pose, atol=1e-6)
    with pytest.raises(ValueError, match="4x4"):
        indoor.render_pose(np.eye(3))


def test_benchmark_reports_frames_per_second(capsys):
    result = benchmark_renderer(32, 24, frames=2, families=("indoor",))
    assert set(result) == {"indoor"} and result["indoor"] > 0
    assert "frames/s" in capsys.readouterr().out
