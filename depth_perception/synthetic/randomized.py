"""The ``randomized`` synthetic domain: a world built for transfer to real cameras.

Domain randomisation: everything that real scenes and cameras vary but that does not explain
depth is drawn at random per scene, so that across the training set only geometry does.

* Content (indoor): living rooms, offices, garages, workshops, storage rooms and corridors
  (``spaces``), with clutter on floors, tables and shelves and objects 0.3-1 m from the camera
  (the camera path keeps 0.3 m from everything);
  the road family keeps its own towns (``road``).
* Materials: every object is re-textured with probability ``RETEXTURE`` per scene: photographs
  (crops, tiles and colour-shifted copies of the scikit-image photos except the evaluation
  images, ``photos``), fBm, Voronoi,
  stripes and dead-leaves noise, the classic materials, with albedos drawn from several
  statistics (uniform, grey, saturated, very dark / very light); glossy (Blinn-Phong) or matte.
* Lighting: one to four coloured ceiling lights with cast shadows (a shadow map per light,
  rendered once per scene with the scene's own rasteriser), a coloured directional light and
  ambient term, contact / corner occlusion and a shadow-weighted ambient (cheap AO).
* Camera: horizontal FOV 40-100 degrees (the intrinsics follow it), robot heights from floor
  level to head height with pitch and roll, then in linear light auto-exposure with an EV
  offset, white-balance error, vignetting, optical or motion blur, shot + read noise, a random
  tone curve (gamma, shoulder, S-curve) and JPEG compression.

Depth, labels, poses and intrinsics stay exact: randomisation only changes how surfaces look.
Everything is a pure function of (seed, family, scene_index, frame index).
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.synthetic import spaces
from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.classes import check_family
from depth_perception.synthetic.raster import Rasterizer
from depth_perception.synthetic.road import build_road
from depth_perception.synthetic.scene import LoopPath, Scene
from depth_perception.synthetic.world import SyntheticWorld, _seed_sequence

DOMAINS: tuple[str, ...] = ("default", "randomized")
# Nominal depth range of each family in the randomised domain (4:3 or wider, FOV <= 100 deg):
# indoor: see ``spaces``; road: the road family's 1.45 m clearance / camera height times the
# cosine of the 56.2 degree corner angle.
RANDOMIZED_DEPTH_RANGES: dict[str, tuple[float, float]] = {
    "indoor": (spaces.MIN_DEPTH, spaces.MAX_DEPTH),
    "road": (0.8, 80.0),
}
HFOV_RANGE = (40.0, 100.0)
SHADOW_RES = 160
SHADOW_HFOV = 140.0
_MAX_SHADOWED = 2  # lights with a shadow map (the first ones); further ones unshadowed

# seed streams (0 and 1 are the base world's scene and sensor noise)
_S_FOV, _S_MATERIAL, _S_LIGHT, _S_CAMERA, _S_NOISE = 5, 6, 7, 8, 9


def check_domain(domain: str) -> str:
    """Return ``domain`` if it is known, else raise ValueError listing the domains."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown synthetic domain {domain!r}; choose one of {DOMAINS}")
    return domain


def depth_range_for(family: str, domain: str = "default") -> tuple[float, float]:
    """Nominal (min, max) metric depth of every finite pixel of ``family`` in ``domain``."""
    from depth_perception.synthetic.world import DEPTH_RANGES

    check_family(family)
    if check_domain(domain) == "randomized":
        return RANDOMIZED_DEPTH_RANGES[family]
    return DEPTH_RANGES[family]


def make_world(
    family: str = "indoor",
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    hfov_deg: float = 70.0,
    scene_index: int = 0,
    domain: str = "default",
) -> SyntheticWorld:
    """A world of ``domain``: ``default`` (``SyntheticWorld``) or ``randomized``.

    In the randomised domain the field of view is drawn per scene from ``HFOV_RANGE`` and
    ``hfov_deg`` is not used.
    """
    if check_domain(domain) == "randomized":
        return RandomizedWorld(family, width, height, seed, scene_index)
    return SyntheticWorld(family, width, height, seed, hfov_deg, scene_index)


# ----------------------------------------------------------------------------- materials
def random_albedo(rng: np.random.Generator) -> np.ndarray:
    """An RGB albedo from one of several statistics (uniform, grey, saturated, extreme)."""
    mode = rng.random()
    if mode < 0.3:
        alb = rng.uniform(0.03, 0.95, 3)
    elif mode < 0.55:
        alb = np.full(3, rng.uniform(0.04, 0.92)) * rng.uniform(0.93, 1.07, 3)
    elif mode < 0.8:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(60, 250)]]])
        alb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    else:
        alb = np.full(3, float(rng.choice([0.03, 0.95]))) * rng.uniform(0.85, 1.05, 3)
    return np.clip(alb, 0.02, 0.98)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def random_material(rng: np.random.Generator) -> tuple[int, np.ndarray, tuple[float, ...]]:
    """(material id, albedo, params) of a random material of the randomised domain."""
    from depth_perception.synthetic.photos import photo_bank

    r = rng.random()
    v = float(rng.random())
    if r < 0.3:
        bank = photo_bank()
        tile = int(rng.integers(bank.count))
        gain = np.exp(rng.normal(0.0, 0.2, 3) + rng.normal(0.0, 0.3))
        alb = np.clip(bank.means[:, tile] * gain, 0.02, 1.0)
        return tx.PHOTO, alb, (v, _log_uniform(rng, 0.15, 3.0), float(tile), 0.0)
    alb = random_albedo(rng)
    if r < 0.44:
        prm = (v, _log_uniform(rng, 0.05, 2.0), float(rng.random()), float(rng.random()))
        return tx.FBM, alb, prm
    if r < 0.54:
        prm = (v, _log_uniform(rng, 0.03, 0.8), rng.uniform(0.0, 0.8), rng.uniform(0.2, 1.0))
        return tx.VORONOI, alb, prm
    if r < 0.64:
        duty = rng.uniform(0.2, 0.8) if rng.random() < 0.6 else 1.5
        prm = (v, _log_uniform(rng, 0.02, 0.6), rng.uniform(0.0, math.pi), duty)
        return tx.STRIPES, alb, prm
    if r < 0.74:
        return tx.DEAD_LEAVES, alb, (v, _log_uniform(rng, 0.05, 1.0), 0.0, float(rng.random()))
    if r < 0.84:
        return tx.PLAIN, alb, (v, rng.uniform(0.0, 0.2), 0.0, 0.0)
    kind = int(rng.integers(8))
    classic = (
        (tx.WOOD, (v, 0.0, 0.0, 0.0)),
        (tx.TILES, (v, rng.uniform(0.1, 0.6), rng.uniform(0.2, 0.9), 0.0)),
        (tx.PLANKS, (v, rng.uniform(0.08, 0.25), rng.uniform(0.6, 2.0), 0.0)),
        (tx.FABRIC, (v, 0.0, 0.0, 0.0)),
        (tx.BRICK, (v, 0.0, 0.0, 0.0)),
        (tx.CARPET, (v, 0.0, 0.0, 0.0)),
        (tx.METAL, (v, 0.0, 0.0, 0.0)),
        (tx.WALLPAPER, (v, rng.uniform(0.05, 0.4), 0.0, 0.0)),
    )
    mat, prm = classic[kind]
    return mat, alb, prm


def retexture(
    scene: Scene, rng: np.random.Generator, probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Re-draw the materials of a built scene in place; labels and geometry are untouched.

    Consecutive surfaces with the same label, material, albedo and emission (the faces of one
    box or prism) form one object and get one material. Lamps keep their look, pictures mostly
    become photographs.

    Returns:
        Per-surface specular strength and Blinn-Phong exponent (0 strength: matte).
    """
    n = len(scene.surf_label)
    ks = np.zeros(n, dtype=np.float32)
    shin = np.full(n, 16.0, dtype=np.float32)
    start = 1
    while start < n:
        key = (
            scene.surf_label[start],
            scene.surf_material[start],
            tuple(scene.surf_albedo[start]),
            scene.surf_emissive[start],
        )
        stop = start + 1
        while stop < n and key == (
            scene.surf_label[stop],
            scene.surf_material[stop],
            tuple(scene.surf_albedo[stop]),
            scene.surf_emissive[stop],
        ):
            stop += 1
        lamp = key[3] > 0 and key[1] != tx.WINDOW
        change = rng.random() < (0.85 if key[1] == tx.PICTURE else probability)
        gloss = rng.random() < 0.3
        strength, exponent = rng.uniform(0.05, 0.5), _log_uniform(rng, 8.0, 150.0)
        if change and not lamp:
            mat, alb, prm = random_material(rng)
            scene.surf_material[start:stop] = mat
            scene.surf_albedo[start:stop] = alb
            scene.surf_params[start:stop] = prm
        if gloss and not lamp:
            ks[start:stop] = strength
            shin[start:stop] = exponent
        start = stop
    return ks, shin


def _light_colour(rng: np.random.Generator) -> np.ndarray:
    """RGB of a light between warm (2700 K-like) and cool daylight, with a small random tint."""
    warm = np.array([1.0, 0.74, 0.45])
    cool = np.array([0.82, 0.9, 1.0])
    col = warm + (cool - warm) * rng.random()
    return (col * rng.uniform(0.92, 1.08, 3)).astype(np.float32)


# ----------------------------------------------------------------------------- world
class RandomizedWorld(SyntheticWorld):
    """A :class:`SyntheticWorld` of the randomised domain (see the module docstring).

    Args:
        family: ``"indoor"`` (randomised spaces, 0.15-12 m) or ``"road"`` (0.8-80 m).
        width, height: image size in pixels (depth-range guarantees hold at 4:3 or wider).
        seed, scene_index: select the scene, its materials, lights and camera.
        hfov_range: (min, max) horizontal field of view in degrees, drawn per scene.
    """

    # per-scene probability range that an object is re-textured
    RETEXTURE: ClassVar[dict[str, tuple[float, float]]] = {
        "indoor": (0.5, 1.0),
        "road": (0.3, 0.8),
    }

    def __init__(
        self,
        family: str = "indoor",
        width: int = 320,
        height: int = 240,
        seed: int = 0,
        scene_index: int = 0,
        hfov_range: tuple[float, float] = HFOV_RANGE,
    ) -> None:
        lo, hi = (float(v) for v in hfov_range)
        if not HFOV_RANGE[0] <= lo <= hi <= HFOV_RANGE[1]:
            raise ValueError(f"hfov_range must lie within {HFOV_RANGE} degrees, got {hfov_range}")
        self._hfov_range = (lo, hi)
        self.room_type = "road" if family == "road" else ""
        super().__init__(family, width, height, seed, 70.0, scene_index)

    def _rng(self, stream: int) -> np.random.Generator:
        return _seed_sequence(self.seed, self.family, self.scene_index, stream)

    def _choose_hfov(self, hfov_deg: float) -> float:
        return float(self._rng(_S_FOV).uniform(*self._hfov_range))

    def _nominal_depth_range(self) -> tuple[float, float]:
        return RANDOMIZED_DEPTH_RANGES[self.family]

    def _build_scene(self, rng: np.random.Generator) -> tuple[Scene, LoopPath]:
        if self.family == "indoor":
            scene, path, info = spaces.build_space(rng, self.intrinsics)
            self.room_type = info["room_type"]
            self._lamps = [(x, y, info["height"] - spaces.LAMP_DROP - 0.07) for x, y in
                           info["lamps"]]  # fmt: skip
        else:
            scene, path = build_road(rng)
            self._lamps = []
        mrng = self._rng(_S_MATERIAL)
        self._ks, self._shin = retexture(scene, mrng, mrng.uniform(*self.RETEXTURE[self.family]))
        return scene, path

    # ------------------------------------------------------------------ shading set-up
    def _prepare_shading(self, sensor_noise: float) -> None:
        super()._prepare_shading(sensor_noise)  # materials table; the sensor is ours
        scene = self.scene
        rng = self._rng(_S_LIGHT)
        indoor = self.family == "indoor"
        sun = np.asarray(scene.lighting.light_dir, dtype=np.float32)
        self._sun = sun
        sun_ndl = np.clip(scene.surf_normal @ sun, 0.0, None).astype(np.float32)
        self._rec = np.ascontiguousarray(
            np.vstack([self._rec[:18], sun_ndl, self._rec[19], self._ks, self._shin])
        ).astype(np.float32)
        self._glossy = bool(np.any(self._ks > 0))
        sun_strength = rng.uniform(0.0, 0.45) if indoor else rng.uniform(0.45, 1.1)
        self._sun_rgb = (_light_colour(rng) * sun_strength)[:, None]
        amb = rng.uniform(0.06, 0.3) if indoor else rng.uniform(0.12, 0.4)
        self._amb_rgb = (_light_colour(rng) * amb)[:, None]
        self._lights = []
        for k, pos in enumerate(self._lamps):
            pos = np.asarray(pos, dtype=np.float64)
            light = {
                "pos": pos.astype(np.float32),
                "rgb": (_light_colour(rng) * rng.uniform(0.35, 1.1))[:, None],
                "range2": np.float32(rng.uniform(1.5, 4.0) ** 2),
            }
            if k < _MAX_SHADOWED:
                light.update(self._shadow_map(pos))
            self._lights.append(light)

    def _prepare_sensor(self, sensor_noise: float) -> None:
        """Per-scene camera: exposure, white balance, vignetting, blur, noise, tone, JPEG."""
        cam = self._rng(_S_CAMERA)
        w, h = self.intrinsics.width, self.intrinsics.height
        # metered mean in linear light (0.18: mid grey) with an exposure error of +-0.7 EV
        self._key = 0.16 * 2.0 ** cam.uniform(-0.7, 0.7)
        self._awb = cam.uniform(0.5, 1.0)  # how much of the lights' colour cast AWB removes
        self._saturation = cam.uniform(0.8, 1.6)
        self._wb = np.exp(np.array([cam.normal(0, 0.1), 0.0, cam.normal(0, 0.1)])).astype(
            np.float32
        )
        # vignetting, optionally off-centre, in linear light
        strength = cam.uniform(0.0, 0.5)
        ox, oy = cam.uniform(-0.1, 0.1, 2)
        xn = (np.arange(w) - w / 2.0) / (w / 2.0) - ox
        yn = (np.arange(h) - h / 2.0) / (w / 2.0) - oy
        r2 = (xn[None, :] ** 2 + yn[:, None] ** 2) / (1.0 + (h / w) ** 2)
        self._vignette = np.clip(1.0 - strength * r2, 0.2, 1.0).astype(np.float32)[..., None]
        self._blur_sigma = cam.uniform(0.0, 1.2)
        self._motion = None
        if cam.random() < 0.15:
            length = int(cam.integers(3, 8))
            kern = np.zeros((length, length), dtype=np.float32)
            ang = cam.uniform(0.0, math.pi)
            c = (length - 1) / 2.0
            for t in np.linspace(-c, c, 4 * length):
                kern[round(c + t * math.sin(ang)), round(c + t * math.cos(ang))] = 1.0
            self._motion = kern / kern.sum()
        # read noise and shot-noise gain in linear units (exposure-normalised): from clean
        # daylight frames to a small sensor in a dim room
        self._read = _log_uniform(cam, 0.001, 0.008)
        self._shot = cam.uniform(0.0, 0.006)
        self._jpeg = int(cam.integers(30, 96)) if cam.random() < 0.7 else 0
        self._lut = self._tone_lut(cam)
        # one shared noise image per size, seen through a per-scene and per-frame offset
        self._pattern = _noise_pattern(h, w)
        self._noise_offset = tuple(int(v) for v in self._rng(_S_NOISE).integers(0, _MARGIN, 2))

    def _shadow_map(self, pos: np.ndarray) -> dict:
        """Inverse depth seen from a light looking straight down (static per scene)."""
        intr = CameraIntrinsics.from_hfov(SHADOW_RES, SHADOW_RES, SHADOW_HFOV)
        pose = np.eye(4)
        # optical x = world -y, y = world -x, z = world -z: the camera-frame coordinates of a
        # point are then (-dy, -dx, -dz), with no rotation to apply per pixel
        pose[:3, :3] = [[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
        pose[:3, 3] = pos
        invz, _ = Rasterizer(intr, near=0.02).rasterize(self.scene, pose)
        # a border of "nothing" (inverse depth 0: lit) one texel wide before and two after, so
        # clipped lookups of points outside the light's view read lit texels, and 2x2 taps
        # never need a second clip
        padded = np.pad(invz, ((1, 2), (1, 2)), mode="constant", constant_values=0.0)
        return {
            "map": np.ascontiguousarray(padded.reshape(-1)),
            "k": tuple(np.float32(v) for v in (intr.fx, intr.fy, intr.cx, intr.cy)),
        }

    @staticmethod
    def _tone_lut(rng: np.random.Generator) -> np.ndarray:
        """uint8 LUT over sqrt-spaced linear values in [0, 2]: knee, gamma, S-curve."""
        x = (np.linspace(0.0, 1.0, 4096) ** 2) * 2.0
        gamma = rng.uniform(1.9, 2.5)
        knee = rng.uniform(0.5, 1.0)
        # identity below the knee, a smooth highlight roll-off above it (no hard clip)
        y = np.where(
            x < knee, x, knee + (1.0 - knee) * np.tanh((x - knee) / max(1.0 - knee, 1e-6))
        )
        y = np.clip(y, 0.0, 1.0) ** (1.0 / gamma)
        s = rng.uniform(-0.1, 0.9)
        y = np.clip(y + s * y * (1.0 - y) * (2.0 * y - 1.0), 0.0, 1.0)
        return np.round(y * 255.0).astype(np.uint8)

    # ------------------------------------------------------------------ shading
    def _visibility(self, light: dict, pts: np.ndarray) -> np.ndarray:
        """Fraction (4-tap PCF) of ``pts`` (3, n) that ``light``'s shadow map sees."""
        pos = light["pos"]
        zc = pos[2] - pts[2]
        fx, _fy, cx, cy = light["k"]
        inv = np.float32(1.0) / np.maximum(zc, np.float32(0.02))
        scale = inv * fx  # square pixels: fx == fy
        # texel coordinates in the padded map (+1: its leading border); points outside the
        # view clip onto the lit border
        stride = SHADOW_RES + 3
        hi = np.float32(SHADOW_RES + 1)
        u = np.clip((pos[1] - pts[1]) * scale + (cx + np.float32(1.0)), 0, hi)
        v = np.clip((pos[0] - pts[0]) * scale + (cy + np.float32(1.0)), 0, hi)
        idx = v.astype(np.intp) * stride + u.astype(np.intp)
        # the point must be clearly behind an occluder: a relative bias against acne
        limit = inv * np.float32(1.05)
        smap = light["map"]
        vis = (np.take(smap, idx) <= limit).astype(np.float32)
        for off in (1, stride, stride + 1):  # 2x2 percentage-closer filtering
            vis += np.take(smap, idx + off) <= limit
        vis *= np.float32(0.25)
        return vis

    def _light(
        self, col: np.ndarray, rec: np.ndarray, pts: np.ndarray, z: np.ndarray, d: np.ndarray
    ) -> np.ndarray:
        light = self.scene.lighting
        nrm = rec[15:18]
        n0, n1, n2 = nrm[0], nrm[1], nrm[2]
        ks, shin = rec[20], rec[21]
        direct = self._sun_rgb * rec[18]
        spec = None
        glossy = self._glossy and bool(ks.max() > 0)
        if glossy:
            view = d * (np.float32(-1.0) / np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]))

        def highlight(lx, ly, lz, weight):
            hx, hy, hz = lx + view[0], ly + view[1], lz + view[2]
            hn = (n0 * hx + n1 * hy + n2 * hz) / np.sqrt(hx * hx + hy * hy + hz * hz + 1e-12)
            hn = np.maximum(hn, np.float32(0.0))
            # Schlick's rational stand-in for hn ** shin (a power per pixel is slow)
            return ks * weight * hn / (shin - shin * hn + hn + np.float32(1e-6))

        if glossy:
            sun = self._sun
            spec = self._sun_rgb * highlight(sun[0], sun[1], sun[2], _ftrue(rec[18] > 0))
        vis_sum = None
        for lt in self._lights:
            lp = lt["pos"]
            vx, vy, vz = lp[0] - pts[0], lp[1] - pts[1], lp[2] - pts[2]
            d2 = vx * vx + vy * vy + vz * vz
            inv_d = np.float32(1.0) / np.sqrt(d2)
            ndl = np.maximum((n0 * vx + n1 * vy + n2 * vz) * inv_d, 0.0)
            fall = np.float32(1.0) / (np.float32(1.0) + d2 / lt["range2"])
            if "map" in lt:
                vis = self._visibility(lt, pts)
                fall = fall * vis
                vis_sum = vis if vis_sum is None else vis_sum + vis
            direct = direct + lt["rgb"] * (ndl * fall)
            if glossy:
                spec = spec + lt["rgb"] * highlight(vx * inv_d, vy * inv_d, vz * inv_d,
                                                    fall * _ftrue(ndl > 0))  # fmt: skip
        # ambient occlusion stand-ins: contact / corner darkening, and less ambient light where
        # the lights are blocked (under tables, inside shelves)
        occl = np.zeros(len(z), dtype=np.float32)
        if light.contact_shadow > 0:
            height = np.maximum(pts[2] - np.float32(light.floor_height), 0.0)
            upright = _ftrue(n2 < 0.5)
            occl = np.exp(height * np.float32(-1.0 / 0.35)) * upright
            if light.room_box is not None:
                width, depth_y = light.room_box
                wall = np.minimum(
                    np.minimum(pts[0], width - pts[0]), np.minimum(pts[1], depth_y - pts[1])
                )
                occl += np.exp(np.maximum(wall, 0.0) * np.float32(-1.0 / 0.3)) * _ftrue(n2 > 0.5)
            occl = np.minimum(occl * np.float32(light.contact_shadow), 0.9)
        ambient = np.float32(1.0) - occl
        if vis_sum is not None:
            n_maps = min(len(self._lights), _MAX_SHADOWED)
            ambient = ambient * (np.float32(0.55) + np.float32(0.45 / n_maps) * vis_sum)
        shade = self._amb_rgb * ambient + direct
        if self._has_emissive:
            emi = rec[19]
            shade = shade + emi * (np.float32(1.5) - shade)
        out = col * shade
        if spec is not None:
            out = out + spec
        if light.fog_color is not None:
            fog = 1.0 - np.exp(z * np.float32(-1.0 / light.fog_distance))
            out += (np.asarray(light.fog_color, dtype=np.float32)[:, None] - out) * fog
        return out

    def _finish(self, img: np.ndarray, index: int) -> np.ndarray:
        h, w = img.shape[:2]
        # auto white balance (grey world, partial) and auto-exposure on the frame's mean, as a
        # camera does, then the scene's white-balance and EV errors
        means = np.maximum(img[::4, ::4].reshape(-1, 3).mean(axis=0), 1e-4)
        mean = float(means.mean())
        awb = (mean / means) ** np.float32(self._awb)
        img *= ((self._key / mean) * awb * self._wb).astype(np.float32)
        if self._saturation != 1.0:  # the camera's colour processing
            lum = img.mean(axis=2, keepdims=True)
            img = lum + (img - lum) * np.float32(self._saturation)
        img *= self._vignette
        if self._motion is not None:
            img = cv2.filter2D(img, -1, self._motion, borderType=cv2.BORDER_REFLECT)
        elif self._blur_sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), self._blur_sigma)
        np.maximum(img, 0.0, out=img)
        sigma = np.sqrt(np.float32(self._read**2) + np.float32(self._shot) * img)
        oy = (self._noise_offset[0] + index * 7919) % _MARGIN
        ox = (self._noise_offset[1] + index * 104729 // _MARGIN) % _MARGIN
        img += self._pattern[oy : oy + h, ox : ox + w] * sigma
        np.clip(img, 0.0, 2.0, out=img)
        idx = (np.sqrt(img * np.float32(0.5)) * np.float32(4095.0)).astype(np.intp)
        rgb = np.take(self._lut, idx)
        if self._jpeg:
            ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self._jpeg])
            if ok:
                rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
        return rgb


def _ftrue(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32)


_MARGIN = 64  # noise offsets per axis


@functools.lru_cache(maxsize=4)
def _noise_pattern(height: int, width: int) -> np.ndarray:
    """Read-only standard normal (H + 64, W + 64, 3) float32 image, fixed per size."""
    rng = np.random.default_rng(np.random.SeedSequence([0x5EED, int(height), int(width)]))
    pattern = rng.standard_normal((height + _MARGIN, width + _MARGIN, 3), dtype=np.float32)
    pattern.flags.writeable = False
    return pattern


# ----------------------------------------------------------------------------- tools
def depth_panel(depth: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB colour map of inverse depth (near: red, far: blue; sky black).

    The colour range is the frame's own 1st-99th percentile of inverse depth.
    """
    fin = np.isfinite(depth)
    inv = np.zeros(depth.shape, dtype=np.float64)
    inv[fin] = 1.0 / depth[fin]
    lo, hi = np.percentile(inv[fin], (1, 99)) if fin.any() else (0.0, 1.0)
    norm = np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    panel = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    panel[~fin] = 0
    return np.ascontiguousarray(panel)


def contact_sheet(
    indoor_scenes: int = 12,
    road_scenes: int = 4,
    columns: int = 4,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    first_scene: int = 9000,
) -> np.ndarray:
    """A grid of randomised frames (RGB left, inverse depth right) for people to judge.

    Scenes ``first_scene``... of both families (the test split's scene indices), one frame
    each, at a frame index that varies with the scene.
    """
    cells = []
    for family, count in (("indoor", indoor_scenes), ("road", road_scenes)):
        for k in range(count):
            world = RandomizedWorld(family, width, height, seed, first_scene + k)
            fr = world.render((k * 97) % world.frames_per_loop)
            depth = depth_panel(fr.depth)
            cell = np.concatenate([fr.rgb, depth], axis=1)
            hfov = math.degrees(2.0 * math.atan(width / (2.0 * world.intrinsics.fx)))
            text = f"{world.room_type} fov {hfov:.0f} h {fr.pose[2, 3]:.2f}m"
            cv2.putText(cell, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3)
            cv2.putText(cell, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            cells.append(cell)
    while len(cells) % columns:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.concatenate(cells[i : i + columns], axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows, axis=0)


def benchmark_domains(
    width: int = 320,
    height: int = 240,
    frames: int = 40,
    repeats: int = 3,
    scenes: int = 4,
    seed: int = 0,
    families: tuple[str, ...] = ("indoor", "road"),
) -> dict[str, dict[str, float]]:
    """Frames/s and scene build time of both domains, measured side by side, and print them.

    Each repeat times one scene build and ``frames`` frames spread over ``scenes`` scenes of
    every (family, domain), interleaved so that machine load hits all of them alike; figures
    are medians over the repeats.

    Returns:
        ``{"<domain>/<family>": {"fps": ..., "build_ms": ..., "fresh_fps": ...}}``;
        ``fresh_fps`` counts a scene build per frame (shuffled training samples rarely share
        a scene).
    """
    import os
    import time

    keys = [(d, f) for f in families for d in DOMAINS]
    worlds = {
        key: [
            make_world(key[1], width, height, seed, 70.0, 9000 + k, key[0]) for k in range(scenes)
        ]
        for key in keys
    }
    for key in keys:
        for world in worlds[key]:
            world.render(0)  # warm-up
    fps: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    builds: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in range(repeats):
        for key in keys:
            start = time.perf_counter()
            make_world(key[1], width, height, seed, 70.0, 9100 + r, key[0])
            builds[key].append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(frames):
                worlds[key][i % scenes].render(1 + i)
            fps[key].append(frames / (time.perf_counter() - start))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {}
    print(f"synthetic renderer at {width}x{height}, median of {repeats} x {frames} frames, "
          f"load average {load:.2f}")  # fmt: skip
    for key in keys:
        med = float(np.median(fps[key]))
        build = float(np.median(builds[key])) * 1e3
        fresh = 1.0 / (1.0 / med + build * 1e-3)
        results[f"{key[0]}/{key[1]}"] = {"fps": med, "build_ms": build, "fresh_fps": fresh}
        print(
            f"  {key[0]:>10s} {key[1]:>6s}: {med:6.1f} frames/s, scene build {build:6.0f} ms, "
            f"{fresh:6.1f} frames/s with a new scene per frame"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m depth_perception.synthetic``: contact sheet and speed of the domains."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contact-sheet", metavar="PNG", help="write a grid of samples")
    parser.add_argument("--benchmark", action="store_true", help="frames/s of both domains")
    parser.add_argument("--width", type=int, default=320, help="frame width (sheet: per cell)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frames", type=int, default=40, help="frames per benchmark run")
    parser.add_argument("--repeats", type=int, default=3, help="benchmark repeats (median)")
    args = parser.parse_args(argv)
    if args.contact_sheet:
        sheet = contact_sheet(width=args.width, height=args.height)
        cv2.imwrite(args.contact_sheet, sheet[..., ::-1])
        print(f"wrote {args.contact_sheet} ({sheet.shape[1]}x{sheet.shape[0]})")
    if args.benchmark:
        benchmark_domains(args.width, args.height, args.frames, args.repeats)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
