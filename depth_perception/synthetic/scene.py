"""Scene description shared by the generators and the rasteriser.

A scene is a table of *surfaces* (label, material, albedo, normal, texture axes) plus

* a list of planar convex polygons, each drawing one surface (box faces, prism faces), and
* an analytic *background* traced per pixel (the inside of a room, or a ground plane under
  the sky), which is exact and never needs clipping however close the camera gets.

World frame: x, y horizontal, z up (metres). Cameras use the REP 103 optical frame.
Surface id 0 is reserved for "nothing hit" (sky at +inf depth).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MAX_VERTS = 12  # prisms use at most 10 sides, caps are the largest polygons
SKY_SID = 0


@dataclass
class Lighting:
    """Lambert lighting: directional light + ambient, optional point light and distance fog."""

    light_dir: np.ndarray  # unit vector pointing towards the light (world)
    ambient: float = 0.45
    diffuse: float = 0.55
    point_light: np.ndarray | None = None  # world position of a point light (indoor lamp)
    point_strength: float = 0.0
    point_range: float = 3.0  # distance at which the point light falls to half
    fog_color: np.ndarray | None = None  # RGB in [0, 1]; None disables fog
    fog_distance: float = 1e9  # metres over which fog reaches 63 %
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.80, 0.86, 0.92]))
    sky_zenith: np.ndarray = field(default_factory=lambda: np.array([0.32, 0.52, 0.82]))
    contact_shadow: float = 0.3  # darkening of surfaces right above the floor / ground
    floor_height: float = 0.0
    room_box: tuple[float, float] | None = None  # (W, D): floor darkening near the walls


@dataclass
class Scene:
    """Immutable-after-build arrays of one procedural scene (see module docstring)."""

    # surface table, indexed by surface id
    surf_label: np.ndarray  # (S,) uint8
    surf_material: np.ndarray  # (S,) uint8
    surf_albedo: np.ndarray  # (S, 3) float32 in [0, 1]
    surf_normal: np.ndarray  # (S, 3) float32 unit, world
    surf_tex_u: np.ndarray  # (S, 4) float32: s = P . tex_u[:3] + tex_u[3]
    surf_tex_v: np.ndarray  # (S, 4) float32: t = P . tex_v[:3] + tex_v[3]
    surf_params: np.ndarray  # (S, 4) float32 material parameters (params[0]: random variant)
    surf_emissive: np.ndarray  # (S,) float32: 1 = self-lit (lamp shades, sky-lit windows)
    # polygons
    poly_verts: np.ndarray  # (P, MAX_VERTS, 3) float64, padded by repeating the last vertex
    poly_count: np.ndarray  # (P,) int32 number of real vertices
    poly_sid: np.ndarray  # (P,) int32 surface id
    poly_normal: np.ndarray  # (P, 3) float64 outward unit normal
    poly_d: np.ndarray  # (P,) float64 plane offset: normal . X = d
    poly_center: np.ndarray  # (P, 3) float64 bounding-sphere centre
    poly_radius: np.ndarray  # (P,) float64 bounding-sphere radius
    background: Background
    lighting: Lighting
    # Per-pixel refinement of the ground surface: (points Nx3) -> (labels, materials, s, t)
    ground_sid: int = -1
    ground_fn: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None

    @property
    def num_polygons(self) -> int:
        return int(self.poly_count.shape[0])


class Background:
    """Analytic surfaces traced for every pixel before the polygons are rasterised."""

    def trace(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray parameter and surface id per ray.

        Args:
            origin: (3,) camera centre.
            dirs: (3, N) float32 ray directions; with a unit optical-axis component the ray
                parameter is the z-depth.

        Returns:
            (N,) float32 ray parameter (+inf: no hit) and (N,) int32 surface id (0: no hit).
        """
        raise NotImplementedError


class RoomBackground(Background):
    """The inside of the axis-aligned box [0, W] x [0, D] x [0, H] seen from within."""

    def __init__(self, size: tuple[float, float, float], sids: tuple[int, ...]) -> None:
        # sids: x=0 wall, x=W wall, y=0 wall, y=D wall, floor, ceiling
        self.size = tuple(float(v) for v in size)
        self.sids = tuple(int(v) for v in sids)

    def trace(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best_t = None
        best_sid = None
        for axis in range(3):
            d = dirs[axis]
            pos = d > 0
            o = float(origin[axis])
            # distance to the wall the ray is heading to; the chosen wall is always ahead, so
            # abs() only turns the -inf of a zero component into +inf
            bound = np.float32(-o) + np.float32(self.size[axis]) * pos
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.abs(bound / d)
            lo, hi = self.sids[2 * axis], self.sids[2 * axis + 1]
            sid = np.int32(lo) + np.int32(hi - lo) * pos
            if best_t is None:
                best_t, best_sid = t, sid.astype(np.int32)
            else:
                closer = t < best_t
                np.minimum(best_t, t, out=best_t)
                best_sid += (sid - best_sid) * closer
        return best_t, best_sid


class GroundBackground(Background):
    """The plane z = 0 under an infinitely far sky (surface id 0)."""

    def __init__(self, sid: int) -> None:
        self.sid = int(sid)

    def trace(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dz = dirs[2]
        down = dz < -1e-6
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.float32(-float(origin[2])) / dz
        t[~down] = np.inf
        sid = down.astype(np.int32) * np.int32(self.sid)
        return t, sid


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# Face keys of boxes, used to override a face's material (e.g. glass, lamps, roofs).
BOX_FACES = ("+x", "-x", "+y", "-y", "top", "bottom")
# Corner indices of each box face, counter-clockwise seen from outside; corner k has local
# coordinates (x, y, z) = (+-1, +-1, 0 / 1) from _BOX_SIGNS. The first corner of a side face
# is its bottom-left seen from outside (the texture origin).
_BOX_SIGNS = np.array(
    [[x, y, z] for z in (0.0, 1.0) for y in (-1.0, 1.0) for x in (-1.0, 1.0)]
)  # k = x_bit + 2 y_bit + 4 z_bit
_BOX_QUADS = {
    "+x": (1, 3, 7, 5),
    "-x": (2, 0, 4, 6),
    "+y": (3, 2, 6, 7),
    "-y": (0, 1, 5, 4),
    "top": (4, 5, 7, 6),
    "bottom": (2, 3, 1, 0),
}


class SceneBuilder:
    """Collects surfaces and polygons, then packs them into a :class:`Scene`.

    Polygon normals, planes and texture axes are computed for all polygons at once in
    :meth:`build` (per-polygon numpy calls would dominate the scene construction time).
    """

    def __init__(self) -> None:
        self._label: list[int] = []
        self._material: list[int] = []
        self._albedo: list[tuple[float, float, float]] = []
        self._normal: list[tuple[float, float, float]] = []
        self._tex_u: list[tuple[float, ...]] = []
        self._tex_v: list[tuple[float, ...]] = []
        self._params: list[tuple[float, ...]] = []
        self._emissive: list[float] = []
        # deferred polygons: vertices, surface id, texture origin, horizontal texture axis
        self._poly_verts: list[np.ndarray] = []
        self._poly_sid: list[int] = []
        self._poly_origin: list[np.ndarray] = []
        self._poly_up: list[tuple[float, float]] = []
        # surface 0: sky / nothing
        self.add_surface(255, 0, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))

    def add_surface(
        self,
        label: int,
        material: int,
        albedo: tuple[float, float, float] | np.ndarray,
        normal: tuple[float, float, float] | np.ndarray,
        tex_u: tuple[float, ...] | np.ndarray = (1.0, 0.0, 0.0, 0.0),
        tex_v: tuple[float, ...] | np.ndarray = (0.0, 1.0, 0.0, 0.0),
        params: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0, 0.0),
        emissive: float = 0.0,
    ) -> int:
        """Add a surface record and return its id."""
        self._label.append(int(label))
        self._material.append(int(material))
        self._albedo.append(tuple(float(a) for a in albedo))
        if isinstance(normal, tuple) and normal == (0.0, 0.0, 1.0):
            self._normal.append(normal)  # polygons: replaced in build(); skips a numpy call
        else:
            n = np.asarray(normal, dtype=np.float64)
            self._normal.append(tuple((n / np.linalg.norm(n)).tolist()))
        self._tex_u.append(tuple(float(a) for a in tex_u))
        self._tex_v.append(tuple(float(a) for a in tex_v))
        self._params.append(tuple(float(a) for a in params))
        self._emissive.append(float(emissive))
        return len(self._label) - 1

    def set_surface_label(self, sid: int, label: int) -> None:
        self._label[sid] = int(label)

    def add_polygon(
        self,
        verts: np.ndarray,
        label: int,
        material: int,
        albedo: tuple[float, float, float] | np.ndarray,
        params: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0, 0.0),
        tex_origin: np.ndarray | None = None,
        emissive: float = 0.0,
        up_axis: np.ndarray | None = None,
    ) -> int:
        """Add a planar convex polygon (vertices counter-clockwise seen from its front side).

        Texture axes: on vertical faces s runs horizontally along the face (left to right seen
        from the front) and t is the height, both measured from ``tex_origin`` (default: the
        first vertex); on horizontal faces (s, t) follow ``up_axis`` (a horizontal direction,
        default world x) and its left perpendicular. Degenerate polygons are dropped.
        Returns the new surface id.
        """
        verts = np.asarray(verts, dtype=np.float64)
        if verts.ndim != 2 or verts.shape[1] != 3 or not 3 <= len(verts) <= MAX_VERTS:
            raise ValueError(f"polygons need 3..{MAX_VERTS} 3D vertices, got {verts.shape}")
        sid = self.add_surface(label, material, albedo, (0.0, 0.0, 1.0), params=params,
                               emissive=emissive)  # fmt: skip
        self._poly_verts.append(verts)
        self._poly_sid.append(sid)
        self._poly_origin.append(verts[0] if tex_origin is None else np.asarray(tex_origin))
        up = (1.0, 0.0) if up_axis is None else (float(up_axis[0]), float(up_axis[1]))
        self._poly_up.append(up)
        return sid

    def add_box(
        self,
        center: tuple[float, float],
        z0: float,
        size: tuple[float, float, float],
        yaw: float,
        label: int,
        material: int,
        albedo: tuple[float, float, float] | np.ndarray,
        params: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0, 0.0),
        faces: dict[str, tuple] | None = None,
        bottom: bool = False,
        emissive: float = 0.0,
    ) -> None:
        """Add an oriented box standing on ``z0`` (length along local x, width along local y).

        Args:
            center: (x, y) of the footprint centre.
            z0: height of the bottom face.
            size: (length, width, height) in metres.
            yaw: rotation of the local x axis from world x, radians.
            label, material, albedo, params, emissive: surface attributes of every face.
            faces: per-face overrides, key in BOX_FACES, value (material, albedo[, params
                [, emissive]]).
            bottom: also emit the bottom face (only needed for boxes not resting on a
                surface, e.g. a table top or a hanging sign).
        """
        lx, ly, lz = (float(v) for v in size)
        c, s = math.cos(yaw), math.sin(yaw)
        local = _BOX_SIGNS * np.array([lx / 2.0, ly / 2.0, lz])
        corners = np.empty((8, 3))
        corners[:, 0] = center[0] + c * local[:, 0] - s * local[:, 1]
        corners[:, 1] = center[1] + s * local[:, 0] + c * local[:, 1]
        corners[:, 2] = z0 + local[:, 2]
        up = (c, s)
        for key, quad in _BOX_QUADS.items():
            if key == "bottom" and not bottom:
                continue
            mat, alb, prm, emi = material, albedo, params, emissive
            if faces and key in faces:
                override = faces[key]
                mat, alb = override[0], override[1]
                if len(override) > 2:
                    prm = override[2]
                if len(override) > 3:
                    emi = override[3]
            verts = corners[list(quad)]
            # side faces: texture origin at the bottom-left corner seen from outside; top and
            # bottom: the box's (-x, -y) corner, so s, t run along the box axes
            origin = verts[0] if key not in ("top", "bottom") else corners[0]
            self.add_polygon(verts, label, mat, alb, prm, origin, emi, up_axis=up)

    def add_prism(
        self,
        center: tuple[float, float],
        z0: float,
        z1: float,
        r0: float,
        r1: float,
        sides: int,
        label: int,
        material: int,
        albedo: tuple[float, float, float] | np.ndarray,
        params: tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0, 0.0),
        phase: float = 0.0,
        top: bool = True,
        bottom: bool = False,
        cap_material: tuple | None = None,
        emissive: float = 0.0,
    ) -> None:
        """Add a vertical frustum of a regular ``sides``-gon (cylinder, cone, lamp shade).

        Radius ``r0`` at height ``z0`` and ``r1`` at ``z1``; ``r1 = 0`` makes a pyramid.
        """
        if not 3 <= sides <= MAX_VERTS:
            raise ValueError(f"prisms need 3..{MAX_VERTS} sides, got {sides}")
        ang = phase + np.arange(sides) * (2.0 * math.pi / sides)
        ring = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        cx, cy = center
        bot = np.column_stack([cx + r0 * ring[:, 0], cy + r0 * ring[:, 1], np.full(sides, z0)])
        topr = np.column_stack([cx + r1 * ring[:, 0], cy + r1 * ring[:, 1], np.full(sides, z1)])
        side_len = 2.0 * r0 * math.sin(math.pi / sides)
        # unit edge directions; texture origins shifted so s is continuous around the prism
        edge = np.roll(bot, -1, axis=0) - bot
        edge /= np.maximum(np.linalg.norm(edge, axis=1, keepdims=True), 1e-12)
        origins = bot - edge * (np.arange(sides) * side_len)[:, None]
        for i in range(sides):
            j = (i + 1) % sides
            if r1 < 1e-6:
                verts = np.array([bot[i], bot[j], topr[i]])
            else:
                verts = np.array([bot[i], bot[j], topr[j], topr[i]])
            self.add_polygon(verts, label, material, albedo, params, origins[i], emissive)
        cap_mat, cap_alb = (material, albedo) if cap_material is None else cap_material
        if top and r1 >= 1e-6:
            self.add_polygon(topr, label, cap_mat, cap_alb, params, None, emissive)
        if bottom:
            self.add_polygon(bot[::-1], label, cap_mat, cap_alb, params, None, emissive)

    def build(
        self,
        background: Background,
        lighting: Lighting,
        ground_sid: int = -1,
        ground_fn: Callable[[np.ndarray], tuple[np.ndarray, ...]] | None = None,
    ) -> Scene:
        """Pack everything into arrays."""
        normal = np.array(self._normal, dtype=np.float64).reshape(-1, 3)
        tex_u = np.array(self._tex_u, dtype=np.float64).reshape(-1, 4)
        tex_v = np.array(self._tex_v, dtype=np.float64).reshape(-1, 4)
        n_poly = len(self._poly_verts)
        count = np.array([len(v) for v in self._poly_verts], dtype=np.int32)
        verts = np.empty((n_poly, MAX_VERTS, 3), dtype=np.float64)
        for i, v in enumerate(self._poly_verts):
            verts[i, : len(v)] = v
            verts[i, len(v) :] = v[-1]  # padding repeats the last vertex
        psid = np.array(self._poly_sid, dtype=np.int32)
        if n_poly:
            # Newell's normal; repeated padding vertices add nothing to it
            nxt = np.roll(verts, -1, axis=1)
            a, b = verts, nxt
            pn = np.stack(
                [
                    np.sum((a[..., 1] - b[..., 1]) * (a[..., 2] + b[..., 2]), axis=1),
                    np.sum((a[..., 2] - b[..., 2]) * (a[..., 0] + b[..., 0]), axis=1),
                    np.sum((a[..., 0] - b[..., 0]) * (a[..., 1] + b[..., 1]), axis=1),
                ],
                axis=1,
            )
            area = np.linalg.norm(pn, axis=1)
            keep = area > 1e-12  # degenerate polygons (e.g. zero-height faces) are dropped
            pn = pn[keep] / area[keep, None]
            verts, count, psid = verts[keep], count[keep], psid[keep]
            origin = np.array(self._poly_origin, dtype=np.float64)[keep]
            up = np.array(self._poly_up, dtype=np.float64)[keep]
            n_poly = len(psid)
            # texture axes: vertical faces s = horizontal along the face, t = height;
            # horizontal faces s = up_axis, t = its left perpendicular
            vertical = np.abs(pn[:, 2]) < 0.7
            u = np.zeros((n_poly, 3))
            v = np.zeros((n_poly, 3))
            u[:, 0] = np.where(vertical, -pn[:, 1], up[:, 0])
            u[:, 1] = np.where(vertical, pn[:, 0], up[:, 1])
            u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
            v[:, 0] = np.where(vertical, 0.0, -u[:, 1])
            v[:, 1] = np.where(vertical, 0.0, u[:, 0])
            v[:, 2] = np.where(vertical, 1.0, 0.0)
            normal[psid] = pn
            tex_u[psid] = np.column_stack([u, -np.einsum("ij,ij->i", u, origin)])
            tex_v[psid] = np.column_stack([v, -np.einsum("ij,ij->i", v, origin)])
            d = np.einsum("ij,ij->i", pn, verts[:, 0, :])
            # bounding spheres around the box centres of the real vertices
            real = np.arange(MAX_VERTS)[None, :] < count[:, None]
            lo = np.where(real[..., None], verts, np.inf).min(axis=1)
            hi = np.where(real[..., None], verts, -np.inf).max(axis=1)
            center = (lo + hi) / 2.0
            radius = np.linalg.norm(verts - center[:, None, :], axis=2).max(axis=1)
        else:
            pn = np.zeros((0, 3))
            d = np.zeros((0,))
            center = np.zeros((0, 3))
            radius = np.zeros((0,))
        return Scene(
            surf_label=np.array(self._label, dtype=np.uint8),
            surf_material=np.array(self._material, dtype=np.uint8),
            surf_albedo=np.array(self._albedo, dtype=np.float32).reshape(-1, 3),
            surf_normal=normal.astype(np.float32),
            surf_tex_u=tex_u.astype(np.float32),
            surf_tex_v=tex_v.astype(np.float32),
            surf_params=np.array(self._params, dtype=np.float32).reshape(-1, 4),
            surf_emissive=np.array(self._emissive, dtype=np.float32),
            poly_verts=verts,
            poly_count=count,
            poly_sid=psid,
            poly_normal=pn,
            poly_d=d,
            poly_center=center,
            poly_radius=radius,
            background=background,
            lighting=lighting,
            ground_sid=ground_sid,
            ground_fn=ground_fn,
        )


def footprint_clearance(
    points: np.ndarray,
    center: np.ndarray | tuple[float, float],
    half: tuple[float, float],
    yaw: float,
) -> float:
    """Smallest horizontal distance from ``points`` (N, 2+) to an oriented rectangle.

    The rectangle is centred at ``center`` with half sizes ``half`` along its local x / y axes,
    local x rotated by ``yaw`` from world x. Points inside give 0.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    dx = points[:, 0] - center[0]
    dy = points[:, 1] - center[1]
    lx = np.abs(dx * c + dy * s) - half[0]
    ly = np.abs(-dx * s + dy * c) - half[1]
    return float(np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0)).min())


# --------------------------------------------------------------------------- camera poses

# Columns: the optical x (right), y (down), z (forward) axes written in the body frame
# (x forward, y left, z up, REP 103).
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def pose_from_ypr(
    position: np.ndarray | tuple[float, float, float], yaw: float, pitch: float, roll: float
) -> np.ndarray:
    """4x4 camera-to-world transform of an optical-frame camera.

    Args:
        position: camera centre in the world (z up).
        yaw: heading of the optical axis from world x towards world y, radians.
        pitch: positive looks down, radians.
        roll: rotation about the optical axis, radians (positive lifts the camera's left side).
    """
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    pose = np.eye(4)
    pose[:3, :3] = rz @ ry @ rx @ BODY_FROM_OPTICAL
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    return pose


class LoopPath:
    """A camera moving at constant speed around a smooth closed planar curve.

    The curve ``curve(theta) -> (N, 2)`` is any smooth closed curve over theta in [0, 2 pi),
    travelled counter-clockwise. Lateral offset (to the right of travel), height, and the
    yaw / pitch / roll offsets are functions of the phase ``p = s / length`` in [0, 1) and
    must be 1-periodic so the loop closes without a jump, and accept numpy arrays. The yaw is
    added to the heading of the curve (``yaw_relative``) or is absolute (then it must grow by
    exactly 2 pi per lap, or be periodic). The step is adjusted so a lap is a whole number of
    frames, at least ``min_frames``.
    """

    def __init__(
        self,
        curve: Callable[[np.ndarray], np.ndarray],
        step: float,
        lateral: Callable[[float], float],
        height: Callable[[float], float],
        yaw: Callable[[float], float],
        pitch: Callable[[float], float],
        roll: Callable[[float], float],
        samples: int = 8192,
        yaw_relative: bool = True,
        min_frames: int = 1,
    ) -> None:
        self.curve = curve
        self.lateral, self.height = lateral, height
        self.yaw, self.pitch, self.roll = yaw, pitch, roll
        theta = np.linspace(0.0, 2.0 * math.pi, samples + 1)
        pts = curve(theta)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        self._theta = theta
        self._arc = np.concatenate([[0.0], np.cumsum(seg)])
        self.length = float(self._arc[-1])
        # a whole number of frames per lap, so frame index n and n + frames_per_loop coincide
        self.frames_per_loop = max(int(min_frames), 1, round(self.length / step))
        self.yaw_relative = bool(yaw_relative)
        self.step = self.length / self.frames_per_loop

    def theta_at(self, s: np.ndarray | float) -> np.ndarray:
        """Curve parameter at arc length ``s`` (wrapped to the loop)."""
        return np.interp(np.mod(s, self.length), self._arc, self._theta)

    def arc_at(self, theta: np.ndarray) -> np.ndarray:
        """Arc length at curve parameters ``theta`` in [0, 2 pi] (inverse of theta_at)."""
        return np.interp(theta, self._theta, self._arc)

    def frame_of(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point, unit tangent and unit right normal of the curve at parameters ``p`` (N,)."""
        p = np.atleast_1d(np.asarray(p, dtype=np.float64))
        h = 1e-5
        c = self.curve(p)
        tan = self.curve(p + h) - self.curve(p - h)
        tan /= np.linalg.norm(tan, axis=1, keepdims=True)
        right = np.column_stack([tan[:, 1], -tan[:, 0]])
        return c, tan, right

    def pose(self, index: int) -> np.ndarray:
        """Camera-to-world 4x4 (optical frame) of frame ``index``."""
        k = index % self.frames_per_loop
        s = k * self.step
        phase = k / self.frames_per_loop
        c, tan, right = self.frame_of(np.array([self.theta_at(s)]))
        xy = c[0] + right[0] * self.lateral(phase)
        heading = math.atan2(tan[0, 1], tan[0, 0]) if self.yaw_relative else 0.0
        return pose_from_ypr(
            (xy[0], xy[1], self.height(phase)),
            heading + self.yaw(phase),
            self.pitch(phase),
            self.roll(phase),
        )

    def sample_positions(self, count: int = 2048) -> np.ndarray:
        """(count, 3) camera centres evenly spread along the loop (for collision checks)."""
        s = np.linspace(0.0, self.length, count, endpoint=False)
        phase = s / self.length
        c, _, right = self.frame_of(self.theta_at(s))
        xy = c + right * np.asarray(self.lateral(phase))[..., None]
        z = np.broadcast_to(np.asarray(self.height(phase), dtype=np.float64), phase.shape)
        return np.column_stack([xy, z])
