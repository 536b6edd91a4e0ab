"""Procedural synthetic worlds rendered with exact metric depth and semantic labels.

``SyntheticWorld(family, width, height, seed, hfov_deg, scene_index)`` builds one procedural
scene (an ``indoor`` room or a ``road`` loop through a town) and a smooth closed camera path
through it; ``render(index)`` returns the index-th frame along the path. Everything is a pure
function of (seed, scene_index, index, camera settings), so frames are bit-for-bit reproducible
and scenes with different ``scene_index`` give disjoint train / val / test splits.

Per frame: ``rgb`` (HxWx3 uint8, RGB), ``depth`` (HxW float32 metric z-depth along the optical
axis, +inf for sky), ``labels`` (HxW uint8 class ids, 255 = unlabelled), ``intrinsics``,
``pose`` (4x4 float64 camera-to-world transform of the REP 103 optical frame: x right, y down,
z forward; the world frame is z up) and ``index``.

Rendering: a z-buffer rasteriser of planar convex polygons over analytic background surfaces
(``raster``), then per-pixel procedural textures evaluated at the world-space hit points
(``textures``) and Lambert shading. A world is not thread-safe (it reuses scratch buffers):
use one per thread or process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.synthetic.classes import FAMILIES, check_family, classes_for
from depth_perception.synthetic.indoor import build_indoor
from depth_perception.synthetic.raster import Rasterizer
from depth_perception.synthetic.road import build_road
from depth_perception.synthetic.scene import SKY_SID, LoopPath, Scene
from depth_perception.synthetic.textures import (
    TEXTURES,
    apply_textures,
    filter_detail,
    vnoise,
)

# Nominal metric depth range of each family: every finite depth of a rendered frame lies in it
# (enforced by the scene layouts, checked by the tests).
DEPTH_RANGES: dict[str, tuple[float, float]] = {"indoor": (0.5, 10.0), "road": (1.0, 80.0)}

_FAMILY_CODE = {"indoor": 1, "road": 2}
_NOISE_MARGIN = 32
_SKY_MATERIAL = 255
_CHUNK = 16384  # pixels shaded per batch
_GROUND_MATERIAL = 254


@dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """One rendered frame (see the module docstring for conventions).

    Compared by identity (``eq=False``): element-wise array comparison has no single truth
    value.
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    intrinsics: CameraIntrinsics
    pose: np.ndarray
    index: int


def _seed_sequence(seed: int, family: str, scene_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), _FAMILY_CODE[family], int(scene_index), stream])
    )


class SyntheticWorld:
    """A procedural scene plus a camera path through it; renders frames on demand.

    Args:
        family: ``"indoor"`` (rooms, 0.5-10 m) or ``"road"`` (streets, 1-80 m, sky at +inf).
        width, height: image size in pixels.
        seed: global seed; with ``scene_index`` it selects the scene.
        hfov_deg: horizontal field of view of the square-pixel pinhole camera. The depth
            ranges are guaranteed for fields of view up to 80 degrees at 4:3.
        scene_index: which scene of the family (different indices give different layouts).
        sensor_noise: standard deviation of the additive pixel noise, in 8-bit levels.

    Raises:
        ValueError: unknown family, or invalid size / seed / index.
    """

    def __init__(
        self,
        family: str = "indoor",
        width: int = 320,
        height: int = 240,
        seed: int = 0,
        hfov_deg: float = 70.0,
        scene_index: int = 0,
        sensor_noise: float = 1.5,
    ) -> None:
        check_family(family)
        if int(width) != width or int(height) != height or width < 8 or height < 8:
            raise ValueError(f"image size must be integers >= 8, got {width}x{height}")
        if int(seed) != seed or seed < 0 or int(scene_index) != scene_index or scene_index < 0:
            raise ValueError(
                f"seed and scene_index must be non-negative integers, got {seed}, {scene_index}"
            )
        if sensor_noise < 0:
            raise ValueError(f"sensor_noise must be >= 0, got {sensor_noise}")
        self.family = family
        self.seed = int(seed)
        self.scene_index = int(scene_index)
        self.intrinsics = CameraIntrinsics.from_hfov(
            int(width), int(height), self._choose_hfov(float(hfov_deg))
        )
        self._names, self._palette = classes_for(family)
        self._depth_range = self._nominal_depth_range()

        self.scene, self.path = self._build_scene(_seed_sequence(seed, family, scene_index, 0))
        self._raster = Rasterizer(self.intrinsics, near=0.05, far=self._depth_range[1])
        self._prepare_shading(sensor_noise)

    # ------------------------------------------------------------------ hooks (subclasses)
    def _choose_hfov(self, hfov_deg: float) -> float:
        """Horizontal field of view of this world's camera (degrees)."""
        return hfov_deg

    def _nominal_depth_range(self) -> tuple[float, float]:
        return DEPTH_RANGES[self.family]

    def _build_scene(self, rng: np.random.Generator) -> tuple[Scene, LoopPath]:
        builder = build_indoor if self.family == "indoor" else build_road
        return builder(rng)

    # ------------------------------------------------------------------ properties
    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def palette(self) -> np.ndarray:
        return self._palette

    @property
    def depth_range(self) -> tuple[float, float]:
        """(min, max) metric depth of every finite pixel of this family."""
        return self._depth_range

    @property
    def frames_per_loop(self) -> int:
        """Frames in one lap of the closed camera path; ``render`` wraps around after it."""
        return self.path.frames_per_loop

    def __len__(self) -> int:
        return self.frames_per_loop

    def __iter__(self) -> Iterator[SyntheticFrame]:
        """Frames 0 .. frames_per_loop - 1 (one lap); use ``render`` for endless streams."""
        for index in range(self.frames_per_loop):
            yield self.render(index)

    def pose(self, index: int) -> np.ndarray:
        """Camera-to-world 4x4 (optical frame) of frame ``index``."""
        return self.path.pose(int(index))

    # ------------------------------------------------------------------ rendering
    def render(self, index: int) -> SyntheticFrame:
        """Render the ``index``-th frame along the camera path (deterministic)."""
        index = int(index)
        return self.render_pose(self.path.pose(index), index)

    def render_pose(self, pose: np.ndarray, index: int = 0) -> SyntheticFrame:
        """Render the scene from an arbitrary camera-to-world pose (optical frame).

        ``index`` only selects the sensor-noise pattern. Depth-range guarantees hold only for
        poses on the camera path.
        """
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose must be a finite 4x4 matrix, got shape {pose.shape}")
        intr = self.intrinsics
        dirs = self._raster.world_dirs(pose)
        invz, sid = self._raster.rasterize(self.scene, pose, dirs)
        rgb, depth, labels = self._shade(invz, sid, dirs, pose[:3, 3], index)
        return SyntheticFrame(
            rgb=rgb,
            depth=depth.reshape(intr.height, intr.width),
            labels=labels.reshape(intr.height, intr.width),
            intrinsics=intr,
            pose=pose.copy(),
            index=int(index),
        )

    def _prepare_shading(self, sensor_noise: float) -> None:
        scene = self.scene
        light = scene.lighting
        ldir = np.asarray(light.light_dir, dtype=np.float32)
        ndl = np.clip(scene.surf_normal @ ldir, 0.0, None)
        self._lambert = (light.ambient + light.diffuse * ndl).astype(np.float32)
        self._has_emissive = bool(np.any(scene.surf_emissive > 0))
        # Material per surface id, with codes for the sky and the per-pixel ground so one
        # bincount splits the frame into groups that share a shader.
        mat = scene.surf_material.copy()
        mat[SKY_SID] = _SKY_MATERIAL
        if scene.ground_fn is not None and scene.ground_sid >= 0:
            mat[scene.ground_sid] = _GROUND_MATERIAL
        self._mat = mat
        # All per-surface shading attributes in one (20, S) table, gathered by one np.take:
        # one call instead of seven, and the result has contiguous rows (arithmetic on strided
        # columns is several times slower).
        self._rec = np.ascontiguousarray(
            np.column_stack(
                [
                    scene.surf_tex_u,  # 0:4
                    scene.surf_tex_v,  # 4:8
                    scene.surf_params,  # 8:12
                    scene.surf_albedo,  # 12:15
                    scene.surf_normal,  # 15:18
                    self._lambert,  # 18
                    scene.surf_emissive,  # 19
                ]
            ).T.astype(np.float32)
        )
        self._inv_f = np.float32(2.0 / (self.intrinsics.fx + self.intrinsics.fy))
        self._prepare_sensor(sensor_noise)

    def _prepare_sensor(self, sensor_noise: float) -> None:
        """Sensor noise pattern and vignetting of ``_finish``."""
        intr = self.intrinsics
        w, h = intr.width, intr.height
        rng = _seed_sequence(self.seed, self.family, self.scene_index, 1)
        shape = (h + _NOISE_MARGIN, w + _NOISE_MARGIN, 3)
        self._noise = (rng.standard_normal(shape) * sensor_noise + 0.5).astype(np.float32)
        # mild lens vignetting, folded together with the 8-bit scale
        xn = (np.arange(w) - intr.cx) / (w / 2.0)
        yn = (np.arange(h) - intr.cy) / (w / 2.0)
        r2 = xn[None, :] ** 2 + yn[:, None] ** 2
        self._gain = (255.0 * (1.0 - 0.12 * r2)).astype(np.float32)[..., None]

    def _sky(self, dirs: np.ndarray) -> np.ndarray:
        """(3, N) sky colour of world directions (3, N): gradient plus clouds at infinity."""
        light = self.scene.lighting
        norm = np.sqrt(dirs[0] * dirs[0] + dirs[1] * dirs[1] + dirs[2] * dirs[2])
        elev = np.clip(dirs[2] / norm, 0.0, 1.0)
        horizon = np.asarray(light.sky_horizon, dtype=np.float32)[:, None]
        zenith = np.asarray(light.sky_zenith, dtype=np.float32)[:, None]
        col = horizon + (zenith - horizon) * np.sqrt(elev)
        # clouds on a plane far above: a function of the direction only, like the sky itself
        dz = dirs[2] + np.float32(0.12) * norm
        cu = dirs[0] / dz * np.float32(1.5)
        cv = dirs[1] / dz * np.float32(1.5)
        cloud = vnoise(cu, cv) * 0.65 + vnoise(cu * 4.0, cv * 4.0) * 0.35
        cover = np.clip((cloud - 0.52) * 3.5, 0.0, 0.85)
        return col + (np.float32(0.95) - col) * cover

    def _light(
        self, col: np.ndarray, rec: np.ndarray, pts: np.ndarray, z: np.ndarray, d: np.ndarray
    ) -> np.ndarray:
        """Lambert + ambient (+ point light, contact shadows, emission, fog) of (3, n) albedo.

        ``d`` (3, n): the view rays (unused here; view-dependent shading in subclasses).
        """
        light = self.scene.lighting
        shade = rec[18]
        nrm = rec[15:18]
        if light.point_light is not None and light.point_strength > 0:
            lp = np.asarray(light.point_light, dtype=np.float32)
            vx, vy, vz = lp[0] - pts[0], lp[1] - pts[1], lp[2] - pts[2]
            d2 = vx * vx + vy * vy + vz * vz
            ndl = (nrm[0] * vx + nrm[1] * vy + nrm[2] * vz) / np.sqrt(d2)
            falloff = np.float32(light.point_strength) / (
                1.0 + d2 / np.float32(light.point_range**2)
            )
            shade = shade + np.maximum(ndl, 0.0) * falloff
        if light.contact_shadow > 0:
            height = np.maximum(pts[2] - np.float32(light.floor_height), 0.0)
            upright = (nrm[2] < 0.5).astype(np.float32)
            occl = np.exp(height * np.float32(-1.0 / 0.35)) * upright
            if light.room_box is not None:
                # floor darkening towards the room's walls and corners
                width, depth_y = light.room_box
                wall = np.minimum(
                    np.minimum(pts[0], width - pts[0]), np.minimum(pts[1], depth_y - pts[1])
                )
                floor = (nrm[2] > 0.5).astype(np.float32)
                occl += np.exp(np.maximum(wall, 0.0) * np.float32(-1.0 / 0.3)) * floor
            shade = shade * (1.0 - np.float32(light.contact_shadow) * occl)
        if self._has_emissive:
            emi = rec[19]
            shade = shade + emi * (1.0 - shade)
        col = col * shade
        if light.fog_color is not None:
            fog = 1.0 - np.exp(z * np.float32(-1.0 / light.fog_distance))
            col += (np.asarray(light.fog_color, dtype=np.float32)[:, None] - col) * fog
        return col

    def _shade(
        self, invz: np.ndarray, sid: np.ndarray, dirs: np.ndarray, origin: np.ndarray, index: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scene: Scene = self.scene
        intr = self.intrinsics
        w, h = intr.width, intr.height
        n_pix = w * h
        sid_f = sid.reshape(-1)
        invz_f = invz.reshape(-1)
        depth = np.full(n_pix, np.inf, dtype=np.float32)
        labels = np.empty(n_pix, dtype=np.uint8)
        rgb = np.empty((3, n_pix), dtype=np.float32)
        org = [np.float32(v) for v in origin]

        mat_full = np.take(self._mat, sid_f)
        counts = np.bincount(mat_full, minlength=256)
        # One pass per group of pixels sharing a shader, in chunks: gathers by index are cheap
        # in numpy, masked assignments are not, and chunk-sized temporaries stay in the
        # allocator's heap and the CPU caches instead of being page-faulted in afresh.
        for m in np.flatnonzero(counts).tolist():
            group = np.arange(n_pix) if counts[m] == n_pix else np.flatnonzero(mat_full == m)
            for start in range(0, len(group), _CHUNK):
                idx = group[start : start + _CHUNK]
                d = np.stack([np.take(dirs[k], idx) for k in range(3)])
                if m == _SKY_MATERIAL:
                    col = self._sky(d)
                    lab = scene.surf_label[SKY_SID]
                else:
                    sh = np.take(sid_f, idx).astype(np.intp)
                    z = np.float32(1.0) / np.take(invz_f, idx)
                    pts = d * z
                    for k in range(3):
                        pts[k] += org[k]
                    rec = np.take(self._rec, sh, axis=1)
                    px, py, pz = pts
                    s = px * rec[0] + py * rec[1] + pz * rec[2] + rec[3]
                    t = px * rec[4] + py * rec[5] + pz * rec[6] + rec[7]
                    prm = rec[8:12]
                    alb = rec[12:15]
                    # surface length one pixel covers (wider at grazing angles): textures fade
                    # to their mean where their detail is finer, instead of aliasing
                    cos = np.abs(rec[15] * d[0] + rec[16] * d[1] + rec[17] * d[2])
                    cos /= np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
                    footprint = z * self._inv_f / np.maximum(cos, 0.15)
                    if m == _GROUND_MATERIAL:
                        lab, g_mat, s, t, alb, prm = scene.ground_fn(pts)
                        col = apply_textures(g_mat, s, t, prm, alb)
                        col = filter_detail(col, alb, g_mat, prm, footprint)
                    else:
                        lab = np.take(scene.surf_label, sh)
                        col = TEXTURES[m](s, t, prm, alb)
                        col = filter_detail(col, alb, m, prm, footprint)
                    col = self._light(col, rec, pts, z, d)
                    depth[idx] = z
                labels[idx] = lab
                for c in range(3):
                    rgb[c][idx] = col[c]

        img = cv2.merge([rgb[0].reshape(h, w), rgb[1].reshape(h, w), rgb[2].reshape(h, w)])
        return self._finish(img, index), depth, labels

    def _finish(self, img: np.ndarray, index: int) -> np.ndarray:
        """The camera: (H, W, 3) float32 linear radiance in [0, 1] -> 8-bit RGB of frame index."""
        h, w = img.shape[:2]
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
        img *= self._gain
        oy = (index * 7919) % _NOISE_MARGIN
        ox = (index * 104729 // _NOISE_MARGIN) % _NOISE_MARGIN
        img += self._noise[oy : oy + h, ox : ox + w]  # includes the +0.5 of rounding
        np.clip(img, 0.0, 255.0, out=img)
        return img.astype(np.uint8)


def benchmark_renderer(
    width: int = 320,
    height: int = 240,
    frames: int = 100,
    families: tuple[str, ...] = FAMILIES,
    seed: int = 0,
) -> dict[str, float]:
    """Measure rendering speed (frames per second) per family and print it.

    Scene construction is excluded; the first frame is rendered once untimed (warm-up).
    """
    results: dict[str, float] = {}
    for family in families:
        world = SyntheticWorld(family, width, height, seed=seed)
        world.render(0)
        start = time.perf_counter()
        for i in range(frames):
            world.render(i)
        elapsed = time.perf_counter() - start
        results[family] = frames / elapsed if elapsed > 0 else math.inf
        print(f"{family:>7s} {width}x{height}: {results[family]:7.1f} frames/s ({frames} frames)")
    return results
