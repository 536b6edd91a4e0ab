"""Procedural streets (the ``road`` family): a closed ring road through a small town.

The road centre line is a smooth convex closed curve r(theta) = R0 (1 + a2 cos(2 theta + p2) +
a3 cos(3 theta + p3)) around the origin, driven counter-clockwise with right-hand traffic, so
the camera's lane is on the outer side. Across the road (lateral offset l, positive outwards):
carriageway (|l| < w_road, optional parking strips at its edges), sidewalk, optional grass verge,
then a continuous ring of buildings on each side. The ground plane is traced analytically and
its class (road / sidewalk / terrain) comes per pixel from l, so markings and kerbs line up
exactly with the geometry.

Depth-range guarantees (1-80 m): the building rings are continuous and deeper than the
curve's radial wobble, so nothing beyond them is ever visible, and R0 is chosen so that the
longest sight line inside the annulus stays near 80 m; the rasteriser's far plane (80 m) turns
the rare farther surface into sky. No object comes within ``CLEARANCE`` metres (horizontally)
of the camera path and the camera is >= 1.42 m above the ground; with the image corner at most
46.4 degrees off-axis (fields of view up to 80 degrees at 4:3) every z-depth is >= 1.45 * 0.69
= 1.0 m.

Everything is static (parked and "driving" vehicles alike), so consecutive frames are exactly
consistent views of one world, as self-supervised training expects.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from depth_perception.synthetic import textures as tx
from depth_perception.synthetic.classes import ROAD_ID as C
from depth_perception.synthetic.scene import (
    SKY_SID,
    GroundBackground,
    Lighting,
    LoopPath,
    Scene,
    SceneBuilder,
    footprint_clearance,
)

CLEARANCE = 1.45  # minimum horizontal distance between the camera path and any object
MAX_SIGHT = 80.0

FACADES = (
    (0.78, 0.72, 0.62),
    (0.65, 0.63, 0.6),
    (0.7, 0.45, 0.35),
    (0.88, 0.86, 0.8),
    (0.55, 0.5, 0.45),
    (0.8, 0.75, 0.55),
    (0.6, 0.68, 0.72),
    (0.75, 0.6, 0.55),
)
CAR_PAINTS = (
    (0.85, 0.85, 0.85),
    (0.08, 0.08, 0.09),
    (0.6, 0.61, 0.63),
    (0.38, 0.39, 0.41),
    (0.6, 0.08, 0.06),
    (0.1, 0.2, 0.5),
    (0.15, 0.3, 0.2),
    (0.75, 0.7, 0.55),
    (0.85, 0.55, 0.1),
)
CLOTHES = (
    (0.1, 0.1, 0.12),
    (0.15, 0.2, 0.4),
    (0.5, 0.1, 0.1),
    (0.7, 0.7, 0.68),
    (0.35, 0.3, 0.25),
    (0.2, 0.4, 0.25),
    (0.75, 0.6, 0.2),
)
SKIN = ((0.85, 0.68, 0.55), (0.6, 0.45, 0.33), (0.4, 0.28, 0.2), (0.9, 0.75, 0.65))
GLASS = (0.2, 0.24, 0.29)
RUBBER = (0.06, 0.06, 0.06)


class _Town:
    """Layout state of one road scene."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.b = SceneBuilder()
        self.b.set_surface_label(SKY_SID, C["sky"])
        # cross-section
        self.lane = rng.uniform(3.0, 3.5)
        self.lanes = 1 if rng.random() < 0.6 else 2
        self.parking = 2.3 if rng.random() < 0.7 else 0.0
        self.w_road = self.lanes * self.lane + self.parking
        self.w_side = rng.uniform(2.2, 4.0)
        self.w_grass = rng.uniform(1.5, 4.0) if rng.random() < 0.5 else 0.0
        self.front = self.w_road + self.w_side + self.w_grass  # building line
        # camera lateral range (lane next to the centre line, gentle weaving)
        self.weave = 0.25
        self.cam_l = self.lane / 2
        # centre line: R0 such that the longest sight line in the annulus is ~MAX_SIGHT
        self.a2 = rng.uniform(0.0, 0.05)
        self.a3 = rng.uniform(0.0, 0.025)
        self.p2, self.p3 = rng.uniform(0.0, 2 * math.pi, 2)
        self.r0 = self._pick_radius()
        self.path: LoopPath | None = None
        self.cam_xy = np.zeros((0, 2))

    # ---- random helpers
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def colour(self, options: tuple, jitter: float = 0.1) -> np.ndarray:
        base = np.asarray(options[int(self.rng.integers(len(options)))], dtype=np.float64)
        return np.clip(base * self.rng.uniform(1.0 - jitter, 1.0 + jitter, 3), 0.02, 0.98)

    def prm(self, p1: float = 0.0, p2: float = 0.0, p3: float = 0.0) -> tuple[float, ...]:
        return (float(self.rng.random()), p1, p2, p3)

    # ---- geometry of the centre line
    def _pick_radius(self) -> float:
        wobble = self.a2 + self.a3
        best = 26.0
        for r0 in np.arange(26.0, 60.0, 0.5):
            r_min, r_max = r0 * (1 - wobble), r0 * (1 + wobble)
            rho_in = r_min - self.front
            rho_out = r_max + self.front
            rho_cam = r_max + self.cam_l + self.weave
            sight = math.sqrt(max(rho_cam**2 - rho_in**2, 0.0)) + math.sqrt(rho_out**2 - rho_in**2)
            if sight > MAX_SIGHT * 1.05:
                break
            best = float(r0)
        return best * self.u(0.9, 1.0)

    def radius(self, theta: np.ndarray) -> np.ndarray:
        return self.r0 * (
            1.0 + self.a2 * np.cos(2 * theta + self.p2) + self.a3 * np.cos(3 * theta + self.p3)
        )

    def curve(self, theta: np.ndarray) -> np.ndarray:
        r = self.radius(theta)
        return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)

    def frame(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre-line point, unit tangent and unit right (outward) normal at arc length s."""
        c, tan, right = self.path.frame_of(np.array([self.path.theta_at(s)]))
        return c[0], tan[0], right[0]

    def at(self, s: float, lateral: float) -> tuple[np.ndarray, float]:
        """Point at arc length s and lateral offset, and the heading of the road there."""
        c, tan, right = self.frame(s)
        return c + right * lateral, math.atan2(tan[1], tan[0])

    def clear(self, center: np.ndarray, half: tuple[float, float], yaw: float) -> bool:
        return footprint_clearance(self.cam_xy, center, half, yaw) >= CLEARANCE

    def pieces(self, s0: float, s1: float, lateral: float, step: float = 4.0):
        """Straight pieces (center, yaw, length) following the curve at an offset."""
        n = max(1, math.ceil((s1 - s0) / step))
        edges = np.linspace(s0, s1, n + 1)
        for a, b in itertools.pairwise(edges):
            pa, _ = self.at(float(a), lateral)
            pb, _ = self.at(float(b), lateral)
            d = pb - pa
            yield (pa + pb) / 2, math.atan2(d[1], d[0]), float(np.hypot(*d))


# ----------------------------------------------------------------------------- objects
def _box(t: _Town, c, z0, size, yaw, label, mat, alb, **kw) -> None:
    t.b.add_box((float(c[0]), float(c[1])), z0, size, yaw, label, mat, alb, t.prm(), **kw)


def _vehicle(t: _Town, c: np.ndarray, yaw: float, kind: str) -> float:
    """Add a vehicle centred at ``c`` heading ``yaw``; returns its length."""
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    paint = t.colour(CAR_PAINTS, 0.05)
    if kind == "car":
        length, width = t.u(3.9, 4.7), t.u(1.7, 1.85)
        label = C["car"]
        body_h = t.u(0.6, 0.75)
        _box(t, c, 0.3, (length, width, body_h), yaw, label, tx.PLAIN, paint)
        cab = c - fwd * length * 0.06
        glass = (tx.GLASS, GLASS)
        _box(
            t, cab, 0.3 + body_h - 0.01, (length * 0.5, width - 0.16, t.u(0.42, 0.52)), yaw,
            label, tx.PLAIN, paint,
            faces={"+x": glass, "-x": glass, "+y": glass, "-y": glass},
        )  # fmt: skip
        wheel = 0.62
    elif kind in ("truck", "bus"):
        label = C[kind]
        width = 2.5
        if kind == "truck":
            length = t.u(6.5, 9.0)
            cab_len = 2.2
            cab = c + fwd * (length / 2 - cab_len / 2)
            glass = (tx.GLASS, GLASS)
            _box(
                t, cab, 0.5, (cab_len, width, 2.6), yaw, label, tx.PLAIN, paint,
                faces={"+x": glass},
            )  # fmt: skip
            cargo = c - fwd * (cab_len / 2 + 0.1)
            box_col = t.colour(((0.85, 0.85, 0.83), (0.6, 0.6, 0.62), (0.3, 0.35, 0.5)))
            _box(t, cargo, 0.55, (length - cab_len - 0.2, width, t.u(2.8, 3.4)), yaw, label,
                 tx.METAL, box_col)  # fmt: skip
        else:
            length = t.u(10.5, 12.5)
            _box(t, c, 0.35, (length, width, 2.9), yaw, label, tx.PLAIN, paint)
            # window band: a slightly larger glass box around the upper body
            _box(t, c, 1.35, (length + 0.02, width + 0.02, 1.0), yaw, label, tx.GLASS, GLASS)
        wheel = 1.0
    else:  # trams follow the curve in segments: see _tram
        raise ValueError(f"unknown vehicle kind {kind!r}; choose car, truck or bus")
    for sign in (-1, 1):
        axle = c + fwd * sign * (length / 2 - 0.75 - 0.2 * (wheel > 0.9))
        _box(t, axle, 0.0, (wheel, width - 0.1, wheel), yaw, label, tx.PLAIN, RUBBER)
    return length


def _tram(t: _Town, s0: float, lateral: float) -> float:
    """A tram (Cityscapes "train") of 3 segments along the road, heading against s."""
    col = t.colour(((0.9, 0.85, 0.2), (0.85, 0.85, 0.85), (0.7, 0.1, 0.1), (0.2, 0.45, 0.7)))
    length = 0.0
    for centre, yaw, seg in t.pieces(s0, s0 + 27.0, lateral, step=9.0):
        if not t.clear(centre, (seg / 2, 1.4), yaw):
            continue
        _box(t, centre, 0.35, (seg - 0.3, 2.65, 3.0), yaw + math.pi, C["train"], tx.PLAIN, col)
        _box(t, centre, 1.4, (seg - 0.28, 2.67, 1.0), yaw + math.pi, C["train"], tx.GLASS, GLASS)
        length += seg
    return length


def _person(t: _Town, c: np.ndarray, yaw: float, z0: float = 0.0, label: int | None = None,
            seated: bool = False) -> None:  # fmt: skip
    label = C["person"] if label is None else label
    h = t.u(1.55, 1.9)
    pants, shirt = t.colour(CLOTHES), t.colour(CLOTHES)
    skin = t.colour(SKIN, 0.05)
    leg_h = 0.47 * h if not seated else 0.3 * h
    torso_h = 0.33 * h
    head_h = 0.13 * h
    _box(t, c, z0, (0.24, 0.36, leg_h), yaw, label, tx.FABRIC, pants)
    _box(t, c, z0 + leg_h, (0.26, 0.44, torso_h), yaw, label, tx.FABRIC, shirt)
    hair = (tx.PLAIN, t.colour(((0.1, 0.07, 0.05), (0.35, 0.25, 0.1), (0.6, 0.55, 0.5))))
    _box(t, c, z0 + leg_h + torso_h + 0.02, (0.2, 0.18, head_h), yaw, label, tx.PLAIN, skin,
         faces={"top": hair, "-x": hair})  # fmt: skip


def _two_wheeler(t: _Town, c: np.ndarray, yaw: float, motor: bool, rider: bool) -> None:
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    label = C["motorcycle"] if motor else C["bicycle"]
    frame_col = t.colour(CAR_PAINTS, 0.05)
    wheel = 0.6 if motor else 0.68
    thick = 0.12 if motor else 0.05
    base = 1.4 if motor else 1.05
    for sign in (-1, 1):
        _box(
            t, c + fwd * sign * base / 2, 0.0, (wheel, thick, wheel), yaw, label, tx.PLAIN, RUBBER
        )
    if motor:
        _box(t, c, 0.3, (1.2, 0.38, 0.5), yaw, label, tx.PLAIN, frame_col)
    else:
        _box(t, c, wheel * 0.75, (base, 0.05, 0.06), yaw, label, tx.METAL, frame_col)
        _box(t, c - fwd * 0.25, wheel * 0.5, (0.05, 0.05, 0.45), yaw, label, tx.METAL, frame_col)
    _box(t, c + fwd * base * 0.4, wheel + 0.25, (0.05, 0.55, 0.04), yaw, label, tx.METAL,
         (0.2, 0.2, 0.2), bottom=True)  # fmt: skip
    if rider:
        _person(t, c - fwd * 0.1, yaw, z0=0.55 if motor else 0.65, label=C["rider"], seated=True)


def _tree(t: _Town, c: np.ndarray, crown: float) -> None:
    trunk_h = t.u(2.2, 3.2)
    lab = C["vegetation"]
    bark = t.colour(((0.35, 0.27, 0.2), (0.3, 0.28, 0.25)))
    _box(t, c, 0.0, (0.3, 0.3, trunk_h + 0.5), t.u(0, 1.5), lab, tx.BARK, bark)
    leaves = t.colour(((0.22, 0.38, 0.12), (0.3, 0.42, 0.15), (0.18, 0.3, 0.12)), 0.1)
    height = t.u(2.5, 5.0)
    phase = t.u(0.0, 1.0)
    xy = (float(c[0]), float(c[1]))
    mid = trunk_h + height * 0.4
    t.b.add_prism(xy, trunk_h, mid, crown * 0.55, crown, 7, lab, tx.FOLIAGE, leaves, t.prm(),
                  phase=phase, top=False, bottom=True)  # fmt: skip
    t.b.add_prism(xy, mid, trunk_h + height, crown, crown * 0.35, 7, lab, tx.FOLIAGE, leaves,
                  t.prm(), phase=phase)  # fmt: skip


def _street_lamp(t: _Town, c: np.ndarray, heading: float, towards_road: np.ndarray) -> None:
    h = t.u(6.0, 8.0)
    grey = t.colour(((0.45, 0.47, 0.5), (0.25, 0.27, 0.3)), 0.05)
    lab = C["pole"]
    _box(t, c, 0.0, (0.18, 0.18, h), heading, lab, tx.METAL, grey)
    arm_len = t.u(1.2, 2.0)
    arm_c = c + towards_road * arm_len / 2
    yaw = math.atan2(towards_road[1], towards_road[0])
    _box(t, arm_c, h - 0.25, (arm_len, 0.1, 0.1), yaw, lab, tx.METAL, grey, bottom=True)
    _box(t, c + towards_road * arm_len, h - 0.4, (0.6, 0.3, 0.18), yaw, lab, tx.METAL, grey,
         bottom=True)  # fmt: skip


def _sign(t: _Town, c: np.ndarray, facing: float) -> None:
    h = t.u(2.2, 2.7)
    _box(t, c, 0.0, (0.07, 0.07, h), facing, C["pole"], tx.METAL, (0.55, 0.56, 0.58))
    kind = float(t.rng.random())
    colour = (0.8, 0.08, 0.08) if kind < 0.5 else (0.1, 0.3, 0.75)
    size = t.u(0.55, 0.75)
    plate = c + np.array([math.cos(facing), math.sin(facing)]) * 0.06
    _box(t, plate, h - size * 0.3, (0.04, size, size), facing, C["traffic sign"], tx.METAL,
         (0.55, 0.55, 0.55), bottom=True,
         faces={"+x": (tx.SIGN, colour, (t.rng.random(), size, size, kind))})  # fmt: skip


def _traffic_light(t: _Town, c: np.ndarray, facing: float) -> None:
    h = t.u(3.2, 4.2)
    grey = (0.3, 0.31, 0.33)
    _box(t, c, 0.0, (0.14, 0.14, h), facing, C["pole"], tx.METAL, grey)
    housing = (0.28, 0.34, 0.95)
    lit = float(t.rng.integers(0, 3))
    head = c + np.array([math.cos(facing), math.sin(facing)]) * 0.2
    _box(t, head, h - 0.3, housing, facing, C["traffic light"], tx.PLAIN, (0.12, 0.12, 0.12),
         bottom=True,
         faces={"+x": (tx.TRAFFIC_LIGHT, (0.12, 0.12, 0.12),
                       (t.rng.random(), housing[1], housing[2], lit))})  # fmt: skip


# ----------------------------------------------------------------------------- layout
def _buildings(t: _Town, side: int) -> None:
    """A continuous ring of buildings on one side (+1 outer, -1 inner)."""
    loop_len = t.path.length
    s = 0.0
    wobble = t.r0 * 2 * (t.a2 + t.a3)
    while s < loop_len - 1e-6:
        blen = min(t.u(9.0, 24.0), loop_len - s)
        if loop_len - s - blen < 6.0:
            blen = loop_len - s  # no sliver at the end of the loop
        setback = t.u(0.0, 2.0)
        lateral = side * (t.front + setback)
        pa, _ = t.at(s, lateral)
        pb, _ = t.at(s + blen, lateral)
        d = pb - pa
        yaw = math.atan2(d[1], d[0])
        length = float(np.hypot(*d)) + 1.5  # overlap the neighbours: no see-through gaps
        depth = t.u(10.0, 16.0) + wobble
        normal = np.array([d[1], -d[0]]) / max(np.hypot(*d), 1e-9) * side
        center = (pa + pb) / 2 + normal * depth / 2
        height = t.u(7.0, 30.0) if side > 0 else t.u(10.0, 30.0)
        col = t.colour(FACADES, 0.06)
        storey = t.u(3.0, 3.6)
        params = (float(t.rng.random()), t.u(2.4, 4.0), storey, t.u(0.35, 0.7))
        mat = tx.BRICK if t.rng.random() < 0.15 else tx.FACADE
        roof = (tx.PLAIN, (0.3, 0.3, 0.32))
        t.b.add_box((float(center[0]), float(center[1])), 0.0, (length, depth, height), yaw,
                    C["building"], mat, col, params, faces={"top": roof})  # fmt: skip
        s += blen


def _kerb_objects(t: _Town, side: int) -> None:
    """Poles, signs, traffic lights, trees, walls, fences and pedestrians on one side."""
    loop_len = t.path.length
    rng = t.rng
    w_road, w_side = t.w_road, t.w_side
    heading_sign = 1.0 if side > 0 else -1.0  # traffic direction on this side
    # street lamps
    s = t.u(0.0, 20.0)
    while s < loop_len - 5:
        c, heading = t.at(s, side * (w_road + 0.45))
        _, _, right = t.frame(s)
        if t.clear(c, (0.3, 0.3), heading):
            _street_lamp(t, c, heading, -right * side)
        s += t.u(22.0, 34.0)
    # signs and traffic lights face the traffic of their side
    s = t.u(5.0, 30.0)
    while s < loop_len - 5:
        c, heading = t.at(s, side * (w_road + 0.35))
        facing = heading + (math.pi if heading_sign > 0 else 0.0)
        if t.clear(c, (0.5, 0.5), heading):
            if rng.random() < 0.3:
                _traffic_light(t, c, facing)
            else:
                _sign(t, c, facing)
        s += t.u(25.0, 60.0)
    # trees on the verge (or the back of the sidewalk)
    if rng.random() < 0.8:
        spacing = t.u(9.0, 16.0)
        lateral = w_road + w_side + (t.w_grass / 2 if t.w_grass > 0 else -0.9)
        s = t.u(0.0, spacing)
        while s < loop_len - 4:
            crown = t.u(1.3, 2.6)
            c, heading = t.at(s, side * lateral)
            if t.clear(c, (crown, crown), heading):
                _tree(t, c, crown)
            s += spacing * t.u(0.8, 1.3)
    # walls (class 3) and fences (class 4) along the building line
    s = t.u(0.0, 30.0)
    while s < loop_len - 12:
        seg = t.u(8.0, 30.0)
        lateral = side * (t.front - 0.3)
        if rng.random() < 0.5:
            kind, thick, height = "wall", 0.25, t.u(0.6, 1.5)
            mat, col = (tx.BRICK, t.colour(((0.6, 0.35, 0.25),))) if rng.random() < 0.5 else (
                tx.PLAIN, t.colour(((0.6, 0.6, 0.58), (0.75, 0.72, 0.65))))  # fmt: skip
        else:
            kind, thick, height = "fence", 0.05, t.u(1.0, 1.8)
            mat, col = tx.FENCE, t.colour(((0.25, 0.3, 0.25), (0.5, 0.5, 0.52), (0.1, 0.1, 0.1)))
        prm = (float(rng.random()), 0.0, height, 0.0)
        for centre, yaw, piece in t.pieces(s, min(s + seg, loop_len), lateral, step=3.0):
            t.b.add_box((float(centre[0]), float(centre[1])), 0.0, (piece + 0.02, thick, height),
                        yaw, C[kind], mat, col, prm)  # fmt: skip
        s += seg + t.u(15.0, 60.0)
    # pedestrians, alone or in small groups, and parked bicycles
    s = t.u(0.0, 10.0)
    while s < loop_len - 3:
        for _ in range(int(rng.integers(1, 4))):
            lateral = side * t.u(w_road + 0.6, w_road + w_side - 0.4)
            c, heading = t.at(s + t.u(-1.0, 1.0), lateral)
            yaw = heading + float(rng.choice([0.0, math.pi, math.pi / 2, -math.pi / 2]))
            yaw += t.u(-0.3, 0.3)
            if t.clear(c, (0.3, 0.3), yaw):
                _person(t, c, yaw)
        if rng.random() < 0.25:
            c, heading = t.at(s + 3.0, side * (w_road + 0.7))
            if t.clear(c, (0.9, 0.4), heading):
                _two_wheeler(t, c, heading + t.u(-0.2, 0.2), motor=rng.random() < 0.3,
                             rider=False)  # fmt: skip
        s += t.u(6.0, 22.0)


def _traffic(t: _Town) -> None:
    """Parked and (static) driving vehicles, riders and trams; never in the camera's lane."""
    loop_len = t.path.length
    rng = t.rng
    kinds = ("car", "truck", "bus")
    kind_p = np.array([0.84, 0.08, 0.08])
    # parking strips on both sides
    if t.parking > 0:
        for side in (1, -1):
            lateral = side * (t.w_road - 1.1)
            s = t.u(0.0, 8.0)
            while s < loop_len - 6:
                if rng.random() < 0.5:
                    c, heading = t.at(s, lateral)
                    yaw = heading if side > 0 else heading + math.pi
                    if t.clear(c, (2.5, 1.0), yaw):
                        s += _vehicle(t, c, yaw, "car") + t.u(1.0, 4.0)
                        continue
                elif rng.random() < 0.3:
                    c, heading = t.at(s, side * (t.w_road - 0.9))
                    yaw = heading if side > 0 else heading + math.pi
                    if t.clear(c, (1.0, 0.4), yaw):
                        _two_wheeler(t, c, yaw, motor=rng.random() < 0.4, rider=True)
                s += t.u(3.0, 8.0)
    # oncoming traffic in the inner lanes, and a second outer lane when there is one
    lanes = [-(k + 0.5) * t.lane for k in range(t.lanes)]
    if t.lanes == 2:
        lanes.append(1.5 * t.lane)
    for lateral in lanes:
        s = t.u(0.0, 30.0)
        while s < loop_len - 30:
            c, heading = t.at(s, lateral)
            yaw = heading if lateral > 0 else heading + math.pi
            if lateral < 0 and rng.random() < 0.04:
                s += _tram(t, s, lateral) + t.u(20.0, 60.0)
                continue
            kind = str(rng.choice(kinds, p=kind_p))
            half = (6.5, 1.3) if kind != "car" else (2.5, 1.0)
            if t.clear(c, half, yaw):
                s += _vehicle(t, c, yaw, kind)
            s += t.u(12.0, 45.0)


def _ground_fn(t: _Town):
    """Per-pixel class, material, texture coordinates of ground points (3, n)."""
    path = t.path
    # cos of the angle between the radial direction and the curve normal, tabulated
    th = np.linspace(0.0, 2.0 * math.pi, 2049)
    r = t.radius(th)
    dr = np.gradient(r, th)
    cos_psi = (r / np.sqrt(r * r + dr * dr)).astype(np.float32)
    w_road, w_side, w_grass = t.w_road, t.w_side, t.w_grass
    edge_line = t.w_road - t.parking - 0.25 if t.parking > 0 else t.w_road - 0.3
    # class index 0 road, 1 sidewalk, 2 grass, 3 kerb stone
    labels = np.array([C["road"], C["sidewalk"], C["terrain"], C["sidewalk"]], dtype=np.uint8)
    mats = np.array([tx.ASPHALT, tx.TILES, tx.GRASS, tx.TILES], dtype=np.uint8)
    rng = t.rng
    albedo = np.array(
        [
            np.array([0.3, 0.3, 0.32]) * rng.uniform(0.85, 1.15),
            np.array([0.62, 0.6, 0.57]) * rng.uniform(0.85, 1.1),
            np.array([0.3, 0.44, 0.18]) * rng.uniform(0.85, 1.1),
            (0.72, 0.72, 0.7),
        ],
        dtype=np.float32,
    ).T.copy()
    tile = rng.uniform(0.35, 0.6)
    params = np.array(
        [
            [rng.random(), edge_line, t.lane, 0.0],
            [rng.random(), tile, 0.5, 0.0],
            [rng.random(), 0.0, 0.0, 0.0],
            [rng.random(), 0.25, 0.8, 0.0],
        ],
        dtype=np.float32,
    ).T.copy()

    def ground(pts: np.ndarray) -> tuple[np.ndarray, ...]:
        x, y = pts[0], pts[1]
        theta = np.arctan2(y, x)
        theta = theta + np.float32(2.0 * math.pi) * (theta < 0)
        rho = np.sqrt(x * x + y * y)
        lat = (rho - t.radius(theta).astype(np.float32)) * np.interp(theta, th, cos_psi)
        lat = lat.astype(np.float32)
        s = path.arc_at(theta).astype(np.float32)
        a = np.abs(lat)
        cls = (
            (a >= w_road).astype(np.intp)
            + ((a >= w_road + w_side) & (a < w_road + w_side + w_grass)).astype(np.intp)
            + 2 * ((a >= w_road) & (a < w_road + 0.2)).astype(np.intp)
        )
        return (
            np.take(labels, cls),
            np.take(mats, cls),
            s,
            lat,
            np.take(albedo, cls, axis=1),
            np.take(params, cls, axis=1),
        )

    return ground


def build_road(rng: np.random.Generator) -> tuple[Scene, LoopPath]:
    """Generate one ring-road town and the camera loop around it."""
    t = _Town(rng)
    tau = 2 * math.pi
    q = rng.uniform(0.0, tau, 6)
    h0 = rng.uniform(1.45, 1.7)
    path = LoopPath(
        t.curve,
        step=rng.uniform(0.3, 0.45),
        lateral=lambda p: t.cam_l + t.weave * np.sin(tau * 4 * p + q[0]),
        height=lambda p: h0 + 0.03 * np.sin(tau * 7 * p + q[1]),
        yaw=lambda p: 0.07 * np.sin(tau * 3 * p + q[2]) + 0.03 * np.sin(tau * 11 * p + q[3]),
        pitch=lambda p: 0.03 + 0.015 * np.sin(tau * 5 * p + q[4]),
        roll=lambda p: 0.01 * np.sin(tau * 6 * p + q[5]),
    )
    t.path = path
    t.cam_xy = path.sample_positions(4096)[:, :2]
    ground_sid = t.b.add_surface(C["road"], tx.ASPHALT, (0.3, 0.3, 0.3), (0, 0, 1))
    for side in (1, -1):
        _buildings(t, side)
        _kerb_objects(t, side)
    _traffic(t)

    elev = rng.uniform(math.radians(25), math.radians(65))
    azim = rng.uniform(0.0, tau)
    sun = np.array(
        [math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)]
    )
    horizon = np.array([0.8, 0.86, 0.92]) * rng.uniform(0.9, 1.05)
    zenith = np.array([0.3, 0.5, 0.82]) * rng.uniform(0.85, 1.1)
    lighting = Lighting(
        light_dir=sun,
        ambient=rng.uniform(0.45, 0.55),
        diffuse=rng.uniform(0.5, 0.65),
        fog_color=np.clip(horizon, 0.0, 1.0),
        fog_distance=rng.uniform(220.0, 400.0),
        sky_horizon=horizon,
        sky_zenith=zenith,
        contact_shadow=0.35,
    )
    scene = t.b.build(GroundBackground(ground_sid), lighting, ground_sid, _ground_fn(t))
    return scene, path
