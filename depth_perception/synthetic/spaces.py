"""Indoor spaces of the randomised domain: living rooms, offices, garages, workshops, storage
rooms and corridors, cluttered, seen from robot cameras between floor level and head height.

The layout reuses the furniture of ``indoor`` and adds open shelving racks with items on every
shelf, workbenches, cars, pallets, carton stacks, bins and floor clutter, including objects
placed next to the camera path (0.3-1 m from the camera). Materials are left plain here: the
randomised world re-textures every object afterwards (``randomized.retexture``).

Depth-range guarantees (``MIN_DEPTH``-12 m, fields of view up to 100 degrees at 4:3 or wider):
the room diagonal is at most 11.8 m; no reserved footprint comes within ``CLEARANCE`` (0.4) m
horizontally of the camera path, what stands on or beside one (props on tops, chairs at desks)
overhangs it by less than 0.1 m, and the path keeps ``WALL_MIN`` m from the walls, so with the
image corner at most 56.2 degrees off-axis every such surface is at z >= 0.3 * 0.556 = 0.167 m;
floor and ceiling
are checked exactly on the camera's corner rays along the path (the path is re-drawn until they
are all farther than ``MIN_DEPTH`` plus a margin).
"""

from __future__ import annotations

import math

import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.synthetic import indoor
from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.classes import INDOOR_ID as C
from depth_perception.synthetic.scene import (
    Lighting,
    LoopPath,
    RoomBackground,
    Scene,
)

MIN_DEPTH = 0.15
MAX_DEPTH = 12.0
CLEARANCE = 0.4
WALL_MIN = 0.35
MAX_DIAGONAL = 11.8
LAMP_DROP = 0.05  # ceiling lamp panels hang this far below the ceiling

ROOM_TYPES: tuple[str, ...] = ("living", "office", "garage", "workshop", "storage", "corridor")
_ROOM_WEIGHTS = np.array([0.18, 0.17, 0.16, 0.16, 0.17, 0.16])
# (W range, D range, H range) per room type
_SIZES = {
    "living": ((3.5, 7.0), (3.5, 7.0), (2.4, 3.0)),
    "office": ((4.0, 9.0), (4.0, 8.0), (2.6, 3.2)),
    "garage": ((3.2, 6.5), (5.5, 8.0), (2.4, 3.4)),
    "workshop": ((4.0, 8.0), (4.0, 8.0), (2.8, 4.0)),
    "storage": ((4.0, 9.0), (4.0, 9.0), (3.0, 4.5)),
    "corridor": ((1.5, 2.6), (6.0, 11.0), (2.4, 3.0)),
}
_GREYS = ((0.55, 0.55, 0.55), (0.7, 0.68, 0.64), (0.4, 0.42, 0.45), (0.8, 0.8, 0.78))


class _Space(indoor._Room):
    """Room layout state with the randomised domain's (smaller) camera clearance."""

    clearance = CLEARANCE + 0.02

    def try_place(
        self, half: tuple[float, float], yaw: float, tries: int = 12
    ) -> np.ndarray | None:
        """A free random footprint centre inside the room, or None."""
        for _ in range(tries):
            c = np.array([self.u(0.0, self.W), self.u(0.0, self.D)])
            if self.footprint_ok(c, half, yaw):
                self.occupy(c, half, yaw)
                return c
        return None


# ----------------------------------------------------------------------------- objects
def _item(sp: _Space, center: tuple[float, float], z: float, max_size: float, yaw: float) -> float:
    """One small item (carton, bin, can, tyre, stack) at ``center`` on height ``z``.

    Whatever its yaw, it stays inside the disc of diameter ``max_size`` around ``center`` (boxes
    are at most 0.7 ``max_size`` wide, so their half diagonal is < ``max_size`` / 2) and at most
    ``max_size`` tall, so a footprint reserved for ``max_size`` holds it. Returns its height.
    """
    b = sp.b
    kind = sp.rng.random()
    col = sp.colour(indoor.PLASTICS + indoor.FABRICS + indoor.WOODS, 0.2)
    if kind < 0.45:
        sx, sy = sp.u(0.2, 0.7) * max_size, sp.u(0.2, 0.7) * max_size
        sz = sp.u(0.3, 1.0) * max_size
        b.add_box(center, z, (sx, sy, sz), yaw + sp.u(-0.5, 0.5), C["object"], tx.PLAIN, col,
                  sp.prm())  # fmt: skip
        return sz
    if kind < 0.75:
        r = sp.u(0.15, 0.45) * max_size
        hz = sp.u(0.4, 1.0) * max_size
        b.add_prism(center, z, z + hz, r, r * sp.u(0.7, 1.1), int(sp.rng.integers(6, 11)),
                    C["object"], tx.PLAIN, col, sp.prm(), phase=sp.u(0, 1))  # fmt: skip
        return hz
    if kind < 0.88:
        # tyre / roll lying flat
        r = sp.u(0.3, 0.5) * max_size
        hz = r * sp.u(0.3, 0.6)
        b.add_prism(center, z, z + hz, r, r, 10, C["object"], tx.PLAIN, (0.08, 0.08, 0.09),
                    sp.prm())  # fmt: skip
        return hz
    zz = z
    for _ in range(int(sp.rng.integers(2, 5))):
        th = sp.u(0.08, 0.25) * max_size
        b.add_box(center, zz, (sp.u(0.4, 0.7) * max_size, sp.u(0.3, 0.7) * max_size, th),
                  yaw + sp.u(-0.3, 0.3), C["object"], tx.PLAIN, sp.colour(indoor.PLASTICS, 0.2),
                  sp.prm())  # fmt: skip
        zz += th
    return zz - z


def _rack(sp: _Space, center: np.ndarray, yaw: float, size: tuple[float, float, float]) -> None:
    """Open shelving: four posts, 3-6 boards, items on every board (label bookshelf / object)."""
    lx, ly, hz = size
    b = sp.b
    col = sp.colour(_GREYS + indoor.WOODS, 0.1)
    post = 0.04
    for sx in (-1, 1):
        for sy in (-1, 1):
            pc = indoor._local(center, yaw, sx * (lx / 2 - post / 2), sy * (ly / 2 - post / 2))
            b.add_box(pc, 0.0, (post, post, hz), yaw, C["bookshelf"], tx.METAL, col, sp.prm())
    n = int(sp.rng.integers(3, 7))
    levels = np.linspace(sp.u(0.05, 0.2), hz - 0.03, n)
    for k, z in enumerate(levels):
        b.add_box((center[0], center[1]), z, (lx, ly, 0.025), yaw, C["bookshelf"], tx.PLAIN,
                  col, sp.prm(), bottom=True)  # fmt: skip
        if k == n - 1:
            continue
        gap = levels[k + 1] - z - 0.03
        pos = -lx / 2 + 0.05
        while pos < lx / 2 - 0.1:
            w = sp.u(0.1, 0.45)
            if pos + w > lx / 2 - 0.02 or gap < 0.08:
                break
            if sp.rng.random() < 0.8:
                pc = indoor._local(center, yaw, pos + w / 2, sp.u(-0.05, 0.05) * ly)
                _item(sp, pc, z + 0.025, min(w, gap * 0.95, ly * 0.9), yaw)
            pos += w + sp.u(0.0, 0.15)


def _workbench(sp: _Space, center: np.ndarray, yaw: float, size: tuple) -> None:
    lx, ly, h = size
    indoor._add_table(sp, center, yaw, (lx, ly, h), C["table"])
    # items keep inside the bench's reserved footprint (the camera clearance holds for them)
    for _ in range(int(sp.rng.integers(1, 5))):
        size = sp.u(0.08, 0.3)
        pc = indoor._local(
            center, yaw, sp.u(-1, 1) * (lx - size) / 2, sp.u(-1, 1) * (ly - size) / 2
        )
        _item(sp, pc, h, size, yaw + sp.u(-1, 1))
    if sp.rng.random() < 0.5:
        # lower shelf with clutter
        sp.b.add_box((center[0], center[1]), 0.15, (lx * 0.95, ly * 0.9, 0.02), yaw,
                     C["table"], tx.PLAIN, sp.colour(_GREYS), sp.prm(), bottom=True)  # fmt: skip
        for _ in range(int(sp.rng.integers(0, 4))):
            size = min(sp.u(0.1, 0.35), h - 0.25)
            pc = indoor._local(
                center, yaw, sp.u(-1, 1) * (lx - size) / 2, sp.u(-1, 1) * (ly - size) / 2
            )
            _item(sp, pc, 0.17, size, yaw)


def _monitor(sp: _Space, center: tuple[float, float], z: float, yaw: float) -> None:
    b = sp.b
    w = sp.u(0.4, 0.65)
    b.add_box(center, z, (0.18, 0.2, 0.02), yaw, C["object"], tx.PLAIN, (0.1, 0.1, 0.1))
    b.add_box(center, z + 0.02, (0.04, 0.05, 0.12), yaw, C["object"], tx.PLAIN, (0.1,) * 3)
    b.add_box(center, z + 0.12, (0.03, w, w * 0.6), yaw, C["object"], tx.PLAIN,
              (0.06, 0.06, 0.07), sp.prm(), bottom=True)  # fmt: skip


def _car(sp: _Space, center: np.ndarray, yaw: float) -> None:
    b = sp.b
    length, width = sp.u(3.8, 4.6), sp.u(1.65, 1.85)
    col = sp.colour(indoor.PLASTICS + _GREYS, 0.15)
    b.add_box((center[0], center[1]), 0.3, (length, width, 0.65), yaw, C["object"], tx.METAL,
              col, sp.prm(), bottom=True)  # fmt: skip
    cab = indoor._local(center, yaw, sp.u(-0.4, 0.0), 0.0)
    b.add_box(cab, 0.95, (length * 0.5, width * 0.9, 0.45), yaw, C["object"], tx.GLASS,
              (0.25, 0.3, 0.35), sp.prm())  # fmt: skip
    for sx in (-1, 1):
        for sy in (-1, 1):
            wc = indoor._local(center, yaw, sx * length * 0.32, sy * (width / 2 - 0.12))
            b.add_prism(wc, 0.0, 0.3, 0.3, 0.3, 8, C["object"], tx.PLAIN, (0.06, 0.06, 0.06))


def _pallet(sp: _Space, center: np.ndarray, yaw: float) -> None:
    b = sp.b
    b.add_box((center[0], center[1]), 0.0, (1.2, 0.8, 0.14), yaw, C["object"], tx.WOOD,
              sp.colour(indoor.WOODS), sp.prm())  # fmt: skip
    z = 0.14
    for _ in range(int(sp.rng.integers(0, 4))):
        sz = sp.u(0.2, 0.5)
        b.add_box((center[0], center[1]), z, (sp.u(0.7, 1.15), sp.u(0.5, 0.78), sz),
                  yaw + sp.u(-0.05, 0.05), C["object"], tx.PLAIN,
                  sp.colour(((0.65, 0.5, 0.33), (0.7, 0.58, 0.4))), sp.prm())  # fmt: skip
        z += sz


def _free_standing(sp: _Space, kind: str) -> bool:
    """Try to put one free-standing thing of ``kind`` somewhere in the room."""
    yaw = float(sp.rng.choice([0.0, math.pi / 2])) + sp.u(-0.15, 0.15)
    if kind == "rack":
        size = (sp.u(0.8, 2.0), sp.u(0.35, 0.6), min(sp.u(1.2, 2.4), sp.H - 0.3))
        c = sp.try_place((size[0] / 2, size[1] / 2), yaw)
        if c is not None:
            _rack(sp, c, yaw, size)
        return c is not None
    if kind == "bench":
        size = (sp.u(1.0, 2.2), sp.u(0.55, 0.8), sp.u(0.75, 0.95))
        c = sp.try_place((size[0] / 2, size[1] / 2), yaw)
        if c is not None:
            _workbench(sp, c, yaw, size)
        return c is not None
    if kind == "desk":
        size = (sp.u(1.2, 1.8), sp.u(0.7, 0.9), sp.u(0.72, 0.76))
        c = sp.try_place((size[0] / 2 + 0.05, size[1] / 2 + 0.45), yaw)
        if c is None:
            return False
        indoor._add_table(sp, c, yaw, size, C["table"])
        _monitor(sp, indoor._local(c, yaw, sp.u(-0.3, 0.3), size[1] * 0.25), size[2],
                 yaw + math.pi / 2)  # fmt: skip
        chair = indoor._local(c, yaw, sp.u(-0.3, 0.3), -size[1] / 2 - 0.25)
        indoor._add_chair(sp, np.array(chair), yaw + math.pi / 2 + sp.u(-0.5, 0.5))
        return True
    if kind == "car":
        c = sp.try_place((2.3, 0.95), yaw, tries=20)
        if c is not None:
            _car(sp, c, yaw)
        return c is not None
    if kind == "pallet":
        c = sp.try_place((0.6, 0.4), yaw)
        if c is not None:
            _pallet(sp, c, yaw)
        return c is not None
    if kind == "cabinet":
        size = (sp.u(0.4, 1.2), sp.u(0.4, 0.6), sp.u(0.8, 1.9))
        c = sp.try_place((size[0] / 2, size[1] / 2), yaw)
        if c is not None:
            sp.b.add_box((c[0], c[1]), 0.0, size, yaw, C["cabinet"], tx.METAL,
                         sp.colour(_GREYS + indoor.PLASTICS), sp.prm())  # fmt: skip
        return c is not None
    # "clutter": a small item on the floor
    half = sp.u(0.08, 0.3)
    c = sp.try_place((half, half), yaw)
    if c is not None:
        _item(sp, (c[0], c[1]), 0.0, 2 * half, yaw)
    return c is not None


def _near_camera(sp: _Space, count: int) -> None:
    """Objects 0.4-1 m beside the camera path (the close range robots meet)."""
    path = sp.path_xy
    for _ in range(count):
        i = int(sp.rng.integers(len(path)))
        j = (i + 5) % len(path)
        tangent = path[j] - path[i]
        norm = float(np.linalg.norm(tangent))
        if norm < 1e-6:
            continue
        side = np.array([-tangent[1], tangent[0]]) / norm * float(sp.rng.choice([-1.0, 1.0]))
        half = sp.u(0.06, 0.25)
        c = path[i] + side * (CLEARANCE + 0.03 + half + sp.u(0.0, 0.6))
        if not sp.footprint_ok(c, (half, half), 0.0):
            continue
        sp.occupy(c, (half, half), 0.0)
        _item(sp, (float(c[0]), float(c[1])), 0.0, 2 * half * 0.95, sp.u(0, 1))


# ----------------------------------------------------------------------------- camera
def _corner_rays(intrinsics: CameraIntrinsics) -> np.ndarray:
    w, h = intrinsics.width, intrinsics.height
    us = np.array([-0.5, w - 0.5, -0.5, w - 0.5])
    vs = np.array([-0.5, -0.5, h - 0.5, h - 0.5])
    return np.stack(
        [(us - intrinsics.cx) / intrinsics.fx, (vs - intrinsics.cy) / intrinsics.fy, np.ones(4)]
    )


def _path_min_depth(path: LoopPath, rays: np.ndarray, room_h: float) -> float:
    """Smallest floor / ceiling z-depth on the image corners over every frame of the loop.

    With rays of unit optical component, the z-depth of the floor hit is h / (-r_z); r_z is
    linear in the pixel coordinates, so the corners bound it over the whole image. The world z
    row of ``pose_from_ypr``'s rotation does not depend on the yaw: (-cos p sin r,
    -cos p cos r, -sin p) in optical axes.
    """
    phase = np.arange(path.frames_per_loop) / path.frames_per_loop
    pitch = np.broadcast_to(np.asarray(path.pitch(phase), dtype=np.float64), phase.shape)
    roll = np.broadcast_to(np.asarray(path.roll(phase), dtype=np.float64), phase.shape)
    h = np.broadcast_to(np.asarray(path.height(phase), dtype=np.float64), phase.shape)
    cp = np.cos(pitch)
    row = np.stack([-cp * np.sin(roll), -cp * np.cos(roll), -np.sin(pitch)], axis=1)
    rz = row @ rays  # (frames, 4 corners)
    down = -rz.min(axis=1)
    up = rz.max(axis=1)
    with np.errstate(divide="ignore"):
        floor = np.where(down > 1e-9, h / down, np.inf)
        ceiling = np.where(up > 1e-9, (room_h - LAMP_DROP - h) / up, np.inf)
    return float(min(floor.min(), ceiling.min()))


def _space_path(sp: _Space, margin: float, intrinsics: CameraIntrinsics) -> LoopPath:
    """A closed loop at a robot's camera height, checked against the floor and ceiling."""
    rng = sp.rng
    rays = _corner_rays(intrinsics)
    tau = 2 * math.pi
    ax = max(sp.W / 2 - margin, 0.05)
    ay = max(sp.D / 2 - margin, 0.05)
    cx, cy = sp.W / 2, sp.D / 2
    e1, e2 = rng.uniform(0.0, 0.2, 2)
    ph = rng.uniform(0.0, tau, 8)

    def curve(theta: np.ndarray) -> np.ndarray:
        x = cx + ax * (np.cos(theta) + e1 * np.sin(3 * theta + ph[0])) / (1 + e1)
        y = cy + ay * (np.sin(theta) + e2 * np.sin(2 * theta + ph[1])) / (1 + e2)
        return np.stack([x, y], axis=-1)

    path = None
    for attempt in range(40):
        # robot camera heights: floor robots (0.1-0.4 m), mobile bases (0.4-1.0 m),
        # humanoids / handheld (1.0-1.8 m); pitch positive looks down
        band = rng.random()
        if attempt >= 30:  # give up on extreme draws: a safe mid-height level camera
            h0, pitch0, roll0 = 0.8, 0.0, 0.0
        elif band < 0.3:
            h0, pitch0 = rng.uniform(0.12, 0.4), rng.uniform(-0.25, 0.15)
            roll0 = rng.uniform(-0.05, 0.05)
        elif band < 0.65:
            h0, pitch0 = rng.uniform(0.4, 1.0), rng.uniform(-0.15, 0.35)
            roll0 = rng.uniform(-0.08, 0.08)
        else:
            h0, pitch0 = rng.uniform(1.0, min(1.8, sp.H - 0.6)), rng.uniform(-0.1, 0.6)
            roll0 = rng.uniform(-0.15, 0.15)
        dh = rng.uniform(0.0, 0.1) * min(h0, 1.0)
        dp, dr = rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.06)
        yaw0 = rng.uniform(0.0, tau)
        path = LoopPath(
            curve,
            step=0.02,
            lateral=lambda p: 0.0 * p,
            height=lambda p, h0=h0, dh=dh: h0 + dh * np.sin(tau * 2 * p + ph[2]),
            yaw=lambda p, yaw0=yaw0: (
                tau * p
                + math.pi / 2
                + yaw0
                + 0.45 * np.sin(tau * 2 * p + ph[3])
                + 0.2 * np.sin(tau * 3 * p + ph[4])
            ),
            pitch=lambda p, p0=pitch0, dp=dp: p0 + dp * np.sin(tau * 3 * p + ph[5]),
            roll=lambda p, r0=roll0, dr=dr: r0 + dr * np.sin(tau * 5 * p + ph[6]),
            yaw_relative=False,
            min_frames=480,
        )
        if _path_min_depth(path, rays, sp.H) > MIN_DEPTH + 0.02:
            break
    return path


# ----------------------------------------------------------------------------- room
def build_space(
    rng: np.random.Generator, intrinsics: CameraIntrinsics, room_type: str | None = None
) -> tuple[Scene, LoopPath, dict]:
    """One randomised indoor space and its camera loop.

    Returns:
        ``(scene, path, info)``; ``info``: ``room_type``, ``lamps`` ((n, 2) ceiling lamp
        positions, where the world puts its point lights) and ``height`` (of the room).
    """
    if room_type is None:
        room_type = str(rng.choice(ROOM_TYPES, p=_ROOM_WEIGHTS / _ROOM_WEIGHTS.sum()))
    if room_type not in _SIZES:
        raise ValueError(f"unknown room type {room_type!r}; choose one of {ROOM_TYPES}")
    (w0, w1), (d0, d1), (h0, h1) = _SIZES[room_type]
    rw, rd, rh = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(h0, h1)
    if room_type == "corridor" and rng.random() < 0.5:
        rw, rd = rd, rw
    while math.sqrt(rw * rw + rd * rd + rh * rh) > MAX_DIAGONAL:
        if rw > rd:
            rw *= 0.97
        else:
            rd *= 0.97
    sp = _Space(rng, (rw, rd, rh))
    b = sp.b
    short = min(rw, rd)
    margin = max(WALL_MIN, rng.uniform(0.35, 0.45) * short if short < 3 else rng.uniform(0.4, 1.6))
    margin = min(margin, short / 2 - 0.05)
    path = _space_path(sp, max(margin, WALL_MIN), intrinsics)
    # 1024 samples are <= 3.2 cm apart on the longest loops: half of it is inside the 2 cm
    # clearance margin of footprint_ok
    sp.path_xy = path.sample_positions(1024)[:, :2]

    wall_specs = (
        ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)),
        ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)),
        ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0)),
        ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0, 0.0)),
    )
    wall_col = sp.colour(indoor.PAINTS + _GREYS, 0.1)
    wall_sids = [
        b.add_surface(C["wall"], tx.PLAIN, wall_col, n, tu, (0, 0, 1, 0), sp.prm())
        for n, tu in wall_specs
    ]
    floor_sid = b.add_surface(C["floor"], tx.PLAIN, sp.colour(_GREYS + indoor.WOODS),
                              (0, 0, 1), params=sp.prm())  # fmt: skip
    ceil_sid = b.add_surface(C["ceiling"], tx.PLAIN, (0.9, 0.9, 0.88), (0, 0, -1),
                             params=sp.prm())  # fmt: skip
    background = RoomBackground((rw, rd, rh), (*wall_sids, floor_sid, ceil_sid))

    walls = (
        (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), rw),
        (np.array([rw, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), rd),
        (np.array([rw, rd]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), rw),
        (np.array([0.0, rd]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), rd),
    )
    # wall items and free-standing things per room type
    wall_kinds, free = {
        "living": (("cabinet", "bookshelf", "sofa", "desk", "lamp", "object", "gap", "door",
                    "window"), {"clutter": 6, "rack": 1}),
        "office": (("cabinet", "bookshelf", "desk", "object", "gap", "door", "window"),
                   {"desk": 4, "cabinet": 2, "clutter": 5}),
        "garage": (("cabinet", "object", "gap", "door", "desk"),
                   {"car": 1, "rack": 2, "bench": 1, "clutter": 10, "pallet": 1}),
        "workshop": (("cabinet", "object", "gap", "door", "window", "bookshelf"),
                     {"bench": 3, "rack": 2, "cabinet": 2, "clutter": 10}),
        "storage": (("cabinet", "object", "gap", "door"),
                    {"rack": 6, "pallet": 3, "clutter": 10}),
        "corridor": (("door", "gap", "cabinet", "object", "window", "door"),
                     {"clutter": 3, "cabinet": 1}),
    }[room_type]  # fmt: skip
    used: set[str] = set()
    for wall in walls:
        pos = sp.u(0.05, 0.5)
        while pos < wall[3] - 0.4:
            placed = None
            for _attempt in range(3):
                kind = str(rng.choice(wall_kinds))
                if kind in ("sofa",) and kind in used:
                    continue
                if kind == "bookshelf" and room_type in ("garage", "workshop", "storage"):
                    half = (0.25, 0.5)
                    c = wall[0] + wall[1] * (pos + 0.5) + wall[2] * 0.26
                    yaw = math.atan2(wall[2][1], wall[2][0])
                    if sp.footprint_ok(c, half, yaw):
                        sp.occupy(c, half, yaw)
                        _rack(sp, c, yaw, (0.5, 1.0, min(sp.u(1.4, 2.4), rh - 0.3)))
                        placed = 1.0
                    break
                placed = indoor._wall_item(sp, kind, wall, pos, float(rng.random()))
                if placed is not None:
                    used.add(kind)
                    break
            pos += (placed if placed is not None else 0.3) + sp.u(0.05, 0.5)
    for kind, count in free.items():
        for _ in range(int(rng.integers(0, count + 1))):
            _free_standing(sp, kind)
    _near_camera(sp, int(rng.integers(1, 6)))

    # ceiling lamp panels (lights are added by the randomised world at these positions)
    n_lamps = int(rng.integers(1, 5))
    lamps = []
    for _ in range(n_lamps):
        lx, ly = rng.uniform(0.3, rw - 0.3), rng.uniform(0.3, rd - 0.3)
        lamps.append((lx, ly))
        b.add_box((lx, ly), rh - LAMP_DROP, (sp.u(0.2, 1.2), sp.u(0.2, 0.6), LAMP_DROP),
                  sp.u(0, math.pi), C["lamp"], tx.PLAIN, (0.97, 0.96, 0.92), bottom=True,
                  emissive=0.9)  # fmt: skip
    sun = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    lighting = Lighting(
        light_dir=sun / np.linalg.norm(sun),
        ambient=0.3,
        diffuse=0.2,
        point_light=np.array([*lamps[0], rh - 0.12]),
        point_strength=0.5,
        point_range=3.0,
        contact_shadow=float(rng.uniform(0.15, 0.45)),
        room_box=(rw, rd),
    )
    info = {"room_type": room_type, "lamps": np.array(lamps), "height": float(rh)}
    return b.build(background, lighting), path, info
