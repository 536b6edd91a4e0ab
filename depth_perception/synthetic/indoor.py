"""Procedural furnished rooms (the ``indoor`` family).

A room is an axis-aligned box [0, W] x [0, D] x [0, H] (walls, floor and ceiling are traced
analytically). Furniture stands against the walls (cabinets, bookshelves, beds, sofas, desks with
chairs, floor lamps, doors, windows, pictures) and, when there is room, a table with chairs in
the middle; small objects sit on the flat tops.

Depth-range guarantees (0.5-10 m): the room diagonal is at most 9.6 m, the camera loop keeps
>= 1.45 m from the walls, >= 0.98 m from the ceiling and >= 1.13 m above the floor, and no
furniture comes within ``CLEARANCE`` metres (horizontally) of the camera path. A point at
distance r from the camera has z-depth >= r cos(corner angle); the image corner is at most
46.4 degrees off-axis for fields of view up to 80 degrees at 4:3, so every z-depth is
>= 0.8 * 0.69 = 0.55 m.
"""

from __future__ import annotations

import math

import numpy as np

from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.classes import INDOOR_ID as C
from depth_perception.synthetic.scene import (
    Lighting,
    LoopPath,
    RoomBackground,
    Scene,
    SceneBuilder,
    footprint_clearance,
)

CLEARANCE = 0.8  # minimum horizontal distance between the camera path and any furniture
WALL_MARGIN = 1.5  # distance between the camera loop and the walls
MAX_DIAGONAL = 9.6

PAINTS = (
    (0.86, 0.84, 0.78),
    (0.78, 0.82, 0.85),
    (0.85, 0.78, 0.70),
    (0.72, 0.78, 0.70),
    (0.90, 0.88, 0.85),
    (0.80, 0.72, 0.72),
    (0.66, 0.70, 0.78),
    (0.88, 0.80, 0.62),
)
WOODS = (
    (0.55, 0.38, 0.22),
    (0.42, 0.28, 0.16),
    (0.68, 0.52, 0.34),
    (0.30, 0.20, 0.13),
    (0.75, 0.62, 0.45),
)
FABRICS = (
    (0.35, 0.38, 0.50),
    (0.55, 0.25, 0.20),
    (0.30, 0.45, 0.35),
    (0.60, 0.58, 0.52),
    (0.25, 0.25, 0.28),
    (0.70, 0.60, 0.40),
    (0.45, 0.30, 0.45),
)
PLASTICS = (
    (0.9, 0.9, 0.88),
    (0.2, 0.2, 0.22),
    (0.75, 0.2, 0.15),
    (0.2, 0.4, 0.7),
    (0.85, 0.75, 0.3),
    (0.5, 0.5, 0.52),
)


class _Room:
    """Layout state: the builder, the camera path samples, the occupied footprints."""

    # Minimum distance from the camera path to a footprint (subclasses set their own).
    clearance: float = CLEARANCE

    def __init__(self, rng: np.random.Generator, size: tuple[float, float, float]) -> None:
        self.rng = rng
        self.W, self.D, self.H = size
        self.b = SceneBuilder()
        self.path_xy = np.zeros((0, 2))
        self.boxes: list[tuple[float, float, float, float]] = []  # occupied AABBs

    # ---- random helpers
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def pick(self, options: tuple) -> tuple:
        return options[int(self.rng.integers(len(options)))]

    def colour(self, options: tuple, jitter: float = 0.1) -> np.ndarray:
        base = np.asarray(self.pick(options), dtype=np.float64)
        return np.clip(base * self.rng.uniform(1.0 - jitter, 1.0 + jitter, 3), 0.02, 0.98)

    def prm(self, p1: float = 0.0, p2: float = 0.0, p3: float = 0.0) -> tuple[float, ...]:
        return (float(self.rng.random()), p1, p2, p3)

    # ---- placement tests
    def footprint_ok(
        self, center: np.ndarray, half: tuple[float, float], yaw: float, check_boxes: bool = True
    ) -> bool:
        c, s = math.cos(yaw), math.sin(yaw)
        hx, hy = half
        ex = abs(c) * hx + abs(s) * hy
        ey = abs(s) * hx + abs(c) * hy
        if center[0] - ex < -1e-6 or center[0] + ex > self.W + 1e-6:
            return False
        if center[1] - ey < -1e-6 or center[1] + ey > self.D + 1e-6:
            return False
        if footprint_clearance(self.path_xy, center, half, yaw) < self.clearance:
            return False
        if check_boxes:
            box = (center[0] - ex, center[0] + ex, center[1] - ey, center[1] + ey)
            for o in self.boxes:
                if box[0] < o[1] - 0.02 and o[0] < box[1] - 0.02:
                    if box[2] < o[3] - 0.02 and o[2] < box[3] - 0.02:
                        return False
        return True

    def occupy(self, center: np.ndarray, half: tuple[float, float], yaw: float) -> None:
        c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
        ex = c * half[0] + s * half[1]
        ey = s * half[0] + c * half[1]
        self.boxes.append((center[0] - ex, center[0] + ex, center[1] - ey, center[1] + ey))


# ----------------------------------------------------------------------------- furniture
def _local(center: np.ndarray, yaw: float, x: float, y: float) -> tuple[float, float]:
    """World (x, y) of the point (x, y) in a frame at ``center`` rotated by ``yaw``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return (float(center[0] + c * x - s * y), float(center[1] + s * x + c * y))


def _small_objects(room: _Room, center: np.ndarray, yaw: float, size: tuple, z: float) -> None:
    """0-3 props (boxes, vases, book stacks, a table lamp) on a horizontal top."""
    lx, ly = size
    b = room.b
    for _ in range(int(room.rng.integers(0, 4))):
        kind = room.rng.random()
        px = room.u(-0.5, 0.5) * max(lx - 0.3, 0.0)
        py = room.u(-0.5, 0.5) * max(ly - 0.3, 0.0)
        pc = _local(center, yaw, px, py)
        if kind < 0.35:
            sx, sy, sz = room.u(0.1, 0.3), room.u(0.1, 0.3), room.u(0.05, 0.3)
            b.add_box(
                pc, z, (sx, sy, sz), yaw + room.u(-0.4, 0.4), C["object"], tx.PLAIN,
                room.colour(PLASTICS + FABRICS), room.prm(),
            )  # fmt: skip
        elif kind < 0.6:
            r = room.u(0.04, 0.1)
            b.add_prism(
                pc, z, z + room.u(0.12, 0.35), r, r * room.u(0.6, 1.1), 8, C["object"],
                tx.PLAIN, room.colour(PLASTICS), room.prm(),
            )  # fmt: skip
        elif kind < 0.8:
            zz = z
            for _k in range(int(room.rng.integers(2, 6))):
                th = room.u(0.02, 0.05)
                b.add_box(
                    pc, zz, (room.u(0.15, 0.25), room.u(0.12, 0.18), th),
                    yaw + room.u(-0.2, 0.2), C["object"], tx.PLAIN,
                    room.colour(PLASTICS + FABRICS), room.prm(),
                )  # fmt: skip
                zz += th
        else:
            # table lamp: base + stem + glowing shade
            b.add_prism(pc, z, z + 0.03, 0.08, 0.08, 8, C["lamp"], tx.METAL, (0.3, 0.3, 0.3))
            b.add_prism(pc, z + 0.03, z + 0.3, 0.012, 0.012, 6, C["lamp"], tx.METAL, (0.6,) * 3)
            b.add_prism(
                pc, z + 0.25, z + 0.45, 0.16, 0.1, 10, C["lamp"], tx.FABRIC,
                room.colour(((0.95, 0.9, 0.75), (0.9, 0.92, 0.95))), room.prm(),
                bottom=True, emissive=0.6,
            )  # fmt: skip


def _add_table(room: _Room, center: np.ndarray, yaw: float, size: tuple, label: int) -> None:
    lx, ly, h = size
    wood = room.colour(WOODS + PLASTICS[:2])
    mat = tx.WOOD if room.rng.random() < 0.7 else tx.PLAIN
    b = room.b
    b.add_box(
        (center[0], center[1]), h - 0.04, (lx, ly, 0.04), yaw, label, mat, wood, room.prm(),
        bottom=True,
    )  # fmt: skip
    leg = 0.05
    for sx in (-1, 1):
        for sy in (-1, 1):
            pc = _local(center, yaw, sx * (lx / 2 - leg), sy * (ly / 2 - leg))
            b.add_box(pc, 0.0, (leg, leg, h - 0.04), yaw, label, mat, wood * 0.9, room.prm())
    _small_objects(room, center, yaw, (lx, ly), h)


def _add_chair(room: _Room, center: np.ndarray, yaw: float) -> None:
    """Chair whose backrest is on its local -x side (it faces +x)."""
    seat, size = room.u(0.42, 0.48), room.u(0.4, 0.5)
    col = room.colour(WOODS + PLASTICS)
    mat = tx.WOOD if room.rng.random() < 0.5 else tx.PLAIN
    b = room.b
    leg = 0.035
    for sx in (-1, 1):
        for sy in (-1, 1):
            pc = _local(center, yaw, sx * (size / 2 - leg), sy * (size / 2 - leg))
            b.add_box(pc, 0.0, (leg, leg, seat - 0.05), yaw, C["chair"], mat, col, room.prm())
    seat_mat = tx.FABRIC if room.rng.random() < 0.5 else mat
    seat_col = room.colour(FABRICS) if seat_mat == tx.FABRIC else col
    b.add_box(
        (center[0], center[1]), seat - 0.05, (size, size, 0.05), yaw, C["chair"], seat_mat,
        seat_col, room.prm(), bottom=True,
    )  # fmt: skip
    back = _local(center, yaw, -size / 2 + 0.02, 0.0)
    b.add_box(back, seat, (0.04, size, room.u(0.35, 0.5)), yaw, C["chair"], mat, col, room.prm())


def _wall_item(room: _Room, kind: str, wall: tuple, pos: float, rng_width: float) -> float | None:
    """Try to put an item of ``kind`` on a wall segment starting at ``pos``.

    ``wall`` = (origin, along, inward, length). Returns the width used, or None if it did not
    fit (too deep for the camera clearance or overlapping another item).
    """
    origin, along, inward, length = wall
    yaw = math.atan2(inward[1], inward[0])
    b = room.b
    room_h = room.H

    def place(width: float, depth: float) -> np.ndarray | None:
        if pos + width > length - 0.05:
            return None
        center = origin + along * (pos + width / 2) + inward * (depth / 2 + 0.002)
        if not room.footprint_ok(center, (depth / 2, width / 2), yaw):
            return None
        room.occupy(center, (depth / 2, width / 2), yaw)
        return center

    if kind == "door":
        width, height = room.u(0.8, 0.95), min(room.u(2.0, 2.1), room_h - 0.2)
        c = place(width, 0.04)
        if c is None:
            return None
        col = room.colour((*WOODS, (0.92, 0.92, 0.9)))
        b.add_box(
            c, 0.0, (0.04, width, height), yaw, C["door"], tx.PLAIN, col * 0.85, room.prm(),
            faces={"+x": (tx.DOOR, col, room.prm(width, height))},
        )  # fmt: skip
        return width
    if kind == "window":
        width = room.u(0.8, 1.6)
        sill = room.u(0.8, 1.0)
        height = min(room.u(1.1, 1.6), room_h - 0.25 - sill)
        # windows hang on the wall: only the thin frame occupies the floor plan
        c = place(width, 0.05)
        if c is None:
            return None
        frame = room.colour(((0.95, 0.95, 0.93), (0.35, 0.25, 0.18), (0.3, 0.3, 0.32)))
        b.add_box(
            c, sill, (0.05, width, height), yaw, C["window"], tx.PLAIN, frame, room.prm(),
            faces={"+x": (tx.WINDOW, frame, room.prm(width, height), 0.85)}, bottom=True,
        )  # fmt: skip
        return width
    if kind == "cabinet":
        width, depth, height = room.u(0.6, 1.6), room.u(0.4, 0.6), room.u(0.7, 2.0)
        c = place(width, depth)
        if c is None:
            return None
        wood = rng_width < 0.6
        col = room.colour(WOODS) if wood else room.colour(PLASTICS[:2] + PAINTS[:3])
        mat = tx.WOOD if wood else tx.PLAIN
        b.add_box(c, 0.0, (depth, width, height), yaw, C["cabinet"], mat, col, room.prm())
        if height < 1.3:
            _small_objects(room, c, yaw, (depth, width), height)
            _maybe_picture(room, wall, pos, width, height)
        return width
    if kind == "bookshelf":
        width, depth, height = (
            room.u(0.7, 1.2),
            room.u(0.28, 0.4),
            min(room.u(1.5, 2.2), room_h - 0.2),
        )
        c = place(width, depth)
        if c is None:
            return None
        col = room.colour(WOODS)
        b.add_box(
            c, 0.0, (depth, width, height), yaw, C["bookshelf"], tx.WOOD, col, room.prm(),
            faces={"+x": (tx.BOOKS, col, room.prm(room.u(0.32, 0.4)))},
        )  # fmt: skip
        return width
    if kind == "sofa":
        width, depth = room.u(1.5, 2.2), room.u(0.8, 0.95)
        c = place(width, depth)
        if c is None:
            return None
        col = room.colour(FABRICS)
        lab = C["sofa"]
        b.add_box(c, 0.0, (depth, width - 0.3, 0.42), yaw, lab, tx.FABRIC, col, room.prm())
        back = _local(c, yaw, -depth / 2 + 0.11, 0.0)
        b.add_box(
            back, 0.0, (0.22, width, room.u(0.75, 0.9)), yaw, lab, tx.FABRIC, col, room.prm()
        )
        for side in (-1, 1):
            arm = _local(c, yaw, 0.0, side * (width / 2 - 0.08))
            b.add_box(arm, 0.0, (depth, 0.16, 0.62), yaw, lab, tx.FABRIC, col * 0.95, room.prm())
        _maybe_picture(room, wall, pos, width, 0.9)
        return width
    if kind == "bed":
        # lengthwise along the wall: the headboard is at one end of the wall segment
        length, width = room.u(1.9, 2.1), room.u(0.9, 1.6)
        c = place(length, width)
        if c is None:
            return None
        lab = C["bed"]
        sheets = room.colour((*FABRICS, (0.9, 0.9, 0.88)))
        bed_h = room.u(0.45, 0.6)
        b.add_box(c, 0.0, (width, length, bed_h), yaw, lab, tx.FABRIC, sheets, room.prm())
        head = origin + along * (pos + 0.03) + inward * (width / 2)
        wood = room.colour(WOODS)
        b.add_box(head, 0.0, (width, 0.06, room.u(0.9, 1.2)), yaw, lab, tx.WOOD, wood, room.prm())
        pil = origin + along * (pos + 0.3) + inward * (width / 2)
        pillow = (0.92, 0.92, 0.9)
        b.add_box(pil, bed_h, (width * 0.8, 0.35, 0.12), yaw, lab, tx.FABRIC, pillow, room.prm())
        return length
    if kind == "desk":
        width, depth, height = room.u(1.0, 1.6), room.u(0.55, 0.75), room.u(0.72, 0.76)
        c = place(width, depth)
        if c is None:
            return None
        _add_table(room, c, yaw, (depth, width, height), C["table"])
        chair_c = origin + along * (pos + width / 2) + inward * (depth + 0.3)
        if room.footprint_ok(chair_c, (0.25, 0.25), yaw):
            room.occupy(chair_c, (0.25, 0.25), yaw)
            _add_chair(room, chair_c, yaw + math.pi + room.u(-0.3, 0.3))
        _maybe_picture(room, wall, pos, width, height)
        return width
    if kind == "lamp":
        c = place(0.45, 0.45)
        if c is None:
            return None
        top = room.u(1.4, 1.75)
        lab = C["lamp"]
        b.add_prism((c[0], c[1]), 0.0, 0.03, 0.16, 0.16, 8, lab, tx.METAL, (0.25, 0.25, 0.25))
        b.add_prism((c[0], c[1]), 0.03, top, 0.015, 0.015, 6, lab, tx.METAL, (0.6, 0.6, 0.6))
        b.add_prism(
            (c[0], c[1]), top - 0.05, top + 0.25, 0.22, 0.14, 10, lab, tx.FABRIC,
            room.colour(((0.95, 0.9, 0.75), (0.9, 0.92, 0.95), (0.9, 0.8, 0.6))), room.prm(),
            bottom=True, emissive=0.7,
        )  # fmt: skip
        return 0.45
    if kind == "object":
        width = room.u(0.3, 0.6)
        c = place(width, width)
        if c is None:
            return None
        if room.rng.random() < 0.5:
            b.add_box(
                c, 0.0, (width, width, room.u(0.25, 0.8)), yaw + room.u(-0.2, 0.2), C["object"],
                tx.PLAIN, room.colour(PLASTICS + WOODS), room.prm(),
            )  # fmt: skip
        else:
            r = width / 2
            b.add_prism(
                (c[0], c[1]), 0.0, room.u(0.3, 0.7), r * 0.7, r, 8, C["object"], tx.PLAIN,
                room.colour(PLASTICS), room.prm(),
            )  # fmt: skip
        return width
    # "gap": bare wall, perhaps with a picture
    width = room.u(0.4, 1.2)
    if pos + width > length - 0.05:
        return None
    _maybe_picture(room, wall, pos, width, 0.0, probability=0.7)
    return width


def _maybe_picture(
    room: _Room, wall: tuple, pos: float, width: float, below: float, probability: float = 0.45
) -> None:
    """A framed picture on the wall above a low item (or on bare wall)."""
    if room.rng.random() > probability or width < 0.4:
        return
    origin, along, inward, _length = wall
    yaw = math.atan2(inward[1], inward[0])
    pw = min(room.u(0.3, 1.1), width - 0.1)
    ph = room.u(0.3, 0.8)
    z0 = max(below + 0.25, room.u(1.2, 1.5))
    if z0 + ph > room.H - 0.2:
        return
    c = origin + along * (pos + width / 2) + inward * 0.0125
    frame = room.colour(((0.1, 0.08, 0.06), (0.9, 0.9, 0.88), (0.6, 0.45, 0.2)))
    room.b.add_box(
        c, z0, (0.025, pw, ph), yaw, C["picture"], tx.PLAIN, frame, room.prm(),
        faces={"+x": (tx.PICTURE, frame, room.prm(pw, ph))}, bottom=True,
    )  # fmt: skip


def _room_path(room: _Room) -> LoopPath:
    rng = room.rng
    rw, rd = room.W, room.D
    ax = max(rw / 2 - WALL_MARGIN, 0.3)
    ay = max(rd / 2 - WALL_MARGIN, 0.3)
    e1, e2 = rng.uniform(0.0, 0.2, 2)
    p1, p2, p3, p4, p5, p6 = rng.uniform(0.0, 2 * math.pi, 6)
    cx, cy = rw / 2, rd / 2

    def curve(theta: np.ndarray) -> np.ndarray:
        x = cx + ax * (np.cos(theta) + e1 * np.sin(3 * theta + p1)) / (1 + e1)
        y = cy + ay * (np.sin(theta) + e2 * np.sin(2 * theta + p2)) / (1 + e2)
        return np.stack([x, y], axis=-1)

    h0 = rng.uniform(1.25, 1.4)
    # The view turns once per lap at a steady rate (absolute yaw, not the tangent of the small,
    # tightly curved loop), looking ahead and inwards (+pi/2 + yaw0), with slow oscillations.
    yaw0 = rng.uniform(0.0, 0.8)
    tau = 2 * math.pi
    return LoopPath(
        curve,
        step=0.02,
        lateral=lambda p: 0.0 * p,
        height=lambda p: h0 + 0.12 * np.sin(tau * 2 * p + p3),
        yaw=lambda p: (
            tau * p
            + math.pi / 2
            + yaw0
            + 0.45 * np.sin(tau * 2 * p + p4)
            + 0.2 * np.sin(tau * 3 * p + p5)
        ),
        pitch=lambda p: 0.15 + 0.1 * np.sin(tau * 3 * p + p6),
        roll=lambda p: 0.03 * np.sin(tau * 5 * p + p1),
        yaw_relative=False,
        min_frames=480,
    )


def build_indoor(rng: np.random.Generator) -> tuple[Scene, LoopPath]:
    """Generate one furnished room and the camera loop through it."""
    rw, rd, rh = rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0), rng.uniform(2.5, 3.2)
    while math.sqrt(rw * rw + rd * rd + rh * rh) > MAX_DIAGONAL:
        if rw > rd:
            rw *= 0.97
        else:
            rd *= 0.97
    room = _Room(rng, (rw, rd, rh))
    b = room.b
    path = _room_path(room)
    room.path_xy = path.sample_positions(1024)[:, :2]

    # walls, floor, ceiling (analytic background)
    wall_mat = int(rng.choice([tx.PLAIN, tx.WALLPAPER, tx.BRICK], p=[0.6, 0.3, 0.1]))
    wall_col = room.colour(PAINTS, 0.06)
    wall_prm = room.prm(room.u(0.08, 0.3))
    accent = int(rng.integers(0, 8))  # walls 0-3 may get an accent colour
    wall_sids = []
    wall_specs = (
        ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)),  # x = 0
        ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)),  # x = rw
        ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0)),  # y = 0
        ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0, 0.0)),  # y = rd
    )
    for k, (normal, tex_u) in enumerate(wall_specs):
        col = room.colour(PAINTS, 0.06) if k == accent else wall_col
        wall_sids.append(
            b.add_surface(C["wall"], wall_mat, col, normal, tex_u, (0, 0, 1, 0), wall_prm)
        )
    floor_kind = rng.random()
    if floor_kind < 0.45:
        floor = (tx.PLANKS, room.colour(WOODS, 0.08), room.prm(room.u(0.1, 0.2), room.u(0.8, 1.6)))
    elif floor_kind < 0.75:
        tile_col = room.colour(((0.8, 0.78, 0.74), (0.55, 0.55, 0.58), (0.7, 0.6, 0.5)), 0.08)
        floor = (tx.TILES, tile_col, room.prm(room.u(0.3, 0.6), room.u(0.3, 0.8)))
    else:
        floor = (tx.CARPET, room.colour(FABRICS, 0.08), room.prm())
    floor_sid = b.add_surface(C["floor"], floor[0], floor[1], (0, 0, 1), params=floor[2])
    if rng.random() < 0.6:
        ceil = (tx.PLAIN, (0.92, 0.92, 0.9), room.prm(0.04))
    else:
        ceil = (tx.TILES, (0.9, 0.9, 0.88), room.prm(0.6, 0.25))
    ceil_sid = b.add_surface(C["ceiling"], ceil[0], ceil[1], (0, 0, -1), params=ceil[2])
    background = RoomBackground(
        (rw, rd, rh), (wall_sids[0], wall_sids[1], wall_sids[2], wall_sids[3], floor_sid, ceil_sid)
    )

    # skirting boards
    skirt = room.colour(((0.95, 0.95, 0.93), (0.4, 0.3, 0.2)), 0.03)
    for center, size in (
        ((rw / 2, 0.0075), (rw, 0.015, 0.08)),
        ((rw / 2, rd - 0.0075), (rw, 0.015, 0.08)),
        ((0.0075, rd / 2), (0.015, rd, 0.08)),
        ((rw - 0.0075, rd / 2), (0.015, rd, 0.08)),
    ):
        b.add_box(center, 0.0, size, 0.0, C["wall"], tx.PLAIN, skirt, room.prm())

    # furniture along the walls: (origin, along, inward, length), counter-clockwise
    walls = (
        (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), rw),
        (np.array([rw, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), rd),
        (np.array([rw, rd]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), rw),
        (np.array([0.0, rd]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), rd),
    )
    kinds = ("cabinet", "bookshelf", "sofa", "bed", "desk", "lamp", "object", "gap", "door",
             "window")  # fmt: skip
    weights = np.array([0.16, 0.12, 0.08, 0.06, 0.12, 0.07, 0.1, 0.1, 0.06, 0.13])
    once = {"bed", "sofa", "door"}
    used: set[str] = set()
    for wall in walls:
        pos = room.u(0.05, 0.5)
        while pos < wall[3] - 0.4:
            placed = None
            for _attempt in range(3):
                kind = str(rng.choice(kinds, p=weights / weights.sum()))
                if kind in once and kind in used:
                    continue
                placed = _wall_item(room, kind, wall, pos, float(rng.random()))
                if placed is not None:
                    used.add(kind)
                    break
            pos += (placed if placed is not None else 0.3) + room.u(0.05, 0.6)

    # a table with chairs in the middle when the camera loop leaves room for it
    centre = np.array([rw / 2, rd / 2]) + rng.uniform(-0.2, 0.2, 2)
    for scale in (1.0, 0.75, 0.5):
        tlx, tly = room.u(0.8, 1.6) * scale, room.u(0.6, 1.0) * scale
        yaw = room.u(-0.3, 0.3)
        if tlx < 0.35 or not room.footprint_ok(centre, (tlx / 2, tly / 2), yaw):
            continue
        room.occupy(centre, (tlx / 2, tly / 2), yaw)
        height = room.u(0.4, 0.5) if scale < 0.6 else room.u(0.72, 0.76)
        _add_table(room, centre, yaw, (tlx, tly, height), C["table"])
        if height > 0.7:
            for side in (-1, 1):
                cc = np.array(_local(centre, yaw, side * (tlx / 2 + 0.3), 0.0))
                if room.footprint_ok(cc, (0.25, 0.25), yaw):
                    room.occupy(cc, (0.25, 0.25), yaw)
                    _add_chair(room, cc, yaw + (0.0 if side < 0 else math.pi))
        break

    # ceiling lamp (flat, glowing) above the centre and a point light just below it
    b.add_prism(
        (rw / 2, rd / 2), rh - 0.06, rh, room.u(0.18, 0.3), room.u(0.18, 0.3), 10, C["lamp"],
        tx.PLAIN, (0.97, 0.96, 0.9), bottom=True, top=False, emissive=0.9,
    )  # fmt: skip
    gain = rng.uniform(0.85, 1.1)
    sun = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 1.0])
    lighting = Lighting(
        light_dir=sun / np.linalg.norm(sun),
        ambient=0.42 * gain,
        diffuse=0.3 * gain,
        point_light=np.array([rw / 2, rd / 2, rh - 0.35]),
        point_strength=0.45 * gain,
        point_range=2.5,
        contact_shadow=0.3,
        room_box=(rw, rd),
    )
    return b.build(background, lighting), path
