"""A small transform-tree reader for recorded ``/tf`` and ``/tf_static`` (tf2 is not on PyPI).

:class:`TransformTree` holds the edges of a TF tree as recorded in a bag: each edge is a
``parent -> child`` transform (``geometry_msgs/TransformStamped`` semantics: it maps points in
the child frame into the parent frame, ``X_parent = T @ X_child``), either static (one value)
or dynamic (a time series). :meth:`TransformTree.lookup` composes the chain between two frames
at a time stamp, as tf2's ``lookupTransform(target, source, time)`` does:

* the path is the unique path through the tree (edges can be walked in either direction);
* a dynamic edge is interpolated between the two samples around the stamp: translation
  linearly, rotation by spherical linear interpolation (slerp) of the unit quaternions;
* a stamp outside a dynamic edge's samples is an error (tf2's extrapolation error), except
  within ``tolerance_ns`` of the first / last sample, where the end value is used.

Pure numpy: no ROS. Quaternions are ``(x, y, z, w)`` as in ROS messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class TransformError(ValueError):
    """No transform between two frames at a stamp (unconnected frames, extrapolation)."""


def quaternion_to_matrix(q: Sequence[float] | np.ndarray) -> np.ndarray:
    """3x3 rotation of a quaternion ``(x, y, z, w)`` (normalised first).

    Raises:
        ValueError: a zero or non-finite quaternion.
    """
    x, y, z, w = (float(v) for v in q)
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"quaternion {tuple(q)} has no rotation (zero or not finite)")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)`` (w >= 0) of a 3x3 rotation matrix."""
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    # Shepperd's method: divide by the largest of the four candidate terms (stable).
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    out = np.array(q, dtype=np.float64)
    out /= np.linalg.norm(out)
    return -out if out[3] < 0 else out


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions, ``t`` in [0, 1] (shorter arc)."""
    q0 = np.asarray(q0, dtype=np.float64) / np.linalg.norm(q0)
    q1 = np.asarray(q1, dtype=np.float64) / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation: take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: lerp is exact to rounding and avoids 0/0
        out = q0 + t * (q1 - q0)
        return out / np.linalg.norm(out)
    theta = np.arccos(min(dot, 1.0))
    s = np.sin(theta)
    return (np.sin((1 - t) * theta) / s) * q0 + (np.sin(t * theta) / s) * q1


def make_transform(translation: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """4x4 rigid transform from a translation and a quaternion ``(x, y, z, w)``."""
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(quaternion)
    out[:3, 3] = np.asarray(translation, dtype=np.float64)
    return out


def invert_transform(t: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    out = np.eye(4)
    rot = t[:3, :3].T
    out[:3, :3] = rot
    out[:3, 3] = -rot @ t[:3, 3]
    return out


def rotation_angle(t: np.ndarray) -> float:
    """Rotation angle (radians) of a 4x4 or 3x3 rigid transform."""
    rot = np.asarray(t)[:3, :3]
    return float(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)))


@dataclass
class _Edge:
    parent: str
    child: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)
    _sorted: bool = True

    def add(self, stamp: int, translation: np.ndarray, quaternion: np.ndarray) -> None:
        if self.stamps and stamp < self.stamps[-1]:
            self._sorted = False
        self.stamps.append(int(stamp))
        self.translations.append(np.asarray(translation, dtype=np.float64))
        q = np.asarray(quaternion, dtype=np.float64)
        n = np.linalg.norm(q)
        if not np.isfinite(n) or n < 1e-12:
            raise ValueError(
                f"transform {self.parent} -> {self.child} at {stamp} ns has a zero quaternion"
            )
        self.quaternions.append(q / n)

    def _sort(self) -> None:
        if self._sorted:
            return
        order = np.argsort(np.asarray(self.stamps), kind="stable")
        self.stamps = [self.stamps[i] for i in order]
        self.translations = [self.translations[i] for i in order]
        self.quaternions = [self.quaternions[i] for i in order]
        self._sorted = True

    def at(self, stamp: int, tolerance_ns: int) -> np.ndarray:
        """``T_parent_from_child`` at ``stamp`` (interpolated); TransformError outside."""
        if self.static:
            return make_transform(self.translations[-1], self.quaternions[-1])
        self._sort()
        stamps = self.stamps
        if stamp <= stamps[0] or stamp >= stamps[-1]:
            end = 0 if stamp <= stamps[0] else -1
            if abs(stamp - stamps[end]) > tolerance_ns:
                raise TransformError(
                    f"{self.parent} -> {self.child} is recorded from {stamps[0] * 1e-9:.3f} s "
                    f"to {stamps[-1] * 1e-9:.3f} s; {stamp * 1e-9:.3f} s is outside it "
                    "(extrapolation)"
                )
            return make_transform(self.translations[end], self.quaternions[end])
        j = int(np.searchsorted(np.asarray(stamps), stamp))  # stamps[j-1] < stamp <= stamps[j]
        t0, t1 = stamps[j - 1], stamps[j]
        a = (stamp - t0) / (t1 - t0) if t1 > t0 else 1.0
        trans = (1 - a) * self.translations[j - 1] + a * self.translations[j]
        quat = slerp(self.quaternions[j - 1], self.quaternions[j], a)
        return make_transform(trans, quat)


class TransformTree:
    """TF edges recorded from ``/tf`` (dynamic) and ``/tf_static`` (static).

    Args:
        tolerance_ns: How far before the first / after the last sample of a dynamic edge a
            lookup still gets that end sample (default 50 ms), instead of an extrapolation
            error.
    """

    def __init__(self, tolerance_ns: int = 50_000_000) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._edges: dict[str, _Edge] = {}  # by child frame: a tree gives each child one parent

    @staticmethod
    def _strip(frame: str) -> str:
        # tf2 ignores a leading slash (ROS 1 style "/odom").
        return frame.lstrip("/")

    def add(
        self,
        parent: str,
        child: str,
        stamp_ns: int,
        translation: Sequence[float],
        quaternion: Sequence[float],
        static: bool = False,
    ) -> None:
        """Record one transform ``parent -> child`` (maps child-frame points into the parent).

        Raises:
            ValueError: an empty or self-referencing frame, a zero quaternion, or a child that
                already has another parent (not a tree).
        """
        parent, child = self._strip(parent), self._strip(child)
        if not parent or not child or parent == child:
            raise ValueError(f"bad transform frames {parent!r} -> {child!r}")
        edge = self._edges.get(child)
        if edge is None:
            edge = _Edge(parent, child, static)
            self._edges[child] = edge
        elif edge.parent != parent:
            raise ValueError(
                f"frame {child!r} has two parents, {edge.parent!r} and {parent!r}: not a TF tree"
            )
        elif edge.static != static:
            raise ValueError(f"{parent} -> {child} is published both on /tf and on /tf_static")
        if static:
            # A re-published static transform replaces the old one (latched topic semantics).
            edge.stamps, edge.translations, edge.quaternions = [], [], []
        edge.add(stamp_ns, np.asarray(translation), np.asarray(quaternion))

    @property
    def frames(self) -> set[str]:
        """Every frame named by an edge."""
        return {e.child for e in self._edges.values()} | {e.parent for e in self._edges.values()}

    def _path(self, target: str, source: str) -> list[tuple[_Edge, bool]]:
        """Edges from ``source`` to ``target``; the flag says the edge is walked child->parent."""
        neighbours: dict[str, list[tuple[str, _Edge, bool]]] = {}
        for e in self._edges.values():
            neighbours.setdefault(e.child, []).append((e.parent, e, True))
            neighbours.setdefault(e.parent, []).append((e.child, e, False))
        for frame in (target, source):
            if frame not in neighbours:
                known = ", ".join(sorted(neighbours)) or "none"
                raise TransformError(f"frame {frame!r} is not in the TF tree (frames: {known})")
        came: dict[str, tuple[str, _Edge, bool] | None] = {source: None}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            if frame == target:
                break
            for nxt, edge, up in neighbours[frame]:
                if nxt not in came:
                    came[nxt] = (frame, edge, up)
                    queue.append(nxt)
        if target not in came:
            raise TransformError(
                f"no TF chain between {target!r} and {source!r}: they are in unconnected trees "
                f"(frames connected to {source!r}: {', '.join(sorted(came))})"
            )
        path: list[tuple[_Edge, bool]] = []
        frame = target
        while came[frame] is not None:
            prev, edge, up = came[frame]  # type: ignore[misc]
            path.append((edge, up))
            frame = prev
        path.reverse()
        return path

    def can_transform(self, target: str, source: str) -> bool:
        """Whether a chain of edges joins the two frames (at some time)."""
        try:
            self._path(self._strip(target), self._strip(source))
        except TransformError:
            return False
        return True

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_from_source`` (4x4) at ``stamp_ns``: ``X_target = T @ X_source``.

        Raises:
            TransformError: a frame is unknown, the frames are not connected, or the stamp is
                outside a dynamic edge's recording (beyond ``tolerance_ns``).
        """
        target, source = self._strip(target), self._strip(source)
        out = np.eye(4)
        if target == source:
            return out
        # Walk from the source: each step maps points of the current frame into the next.
        for edge, up in self._path(target, source):
            t = edge.at(int(stamp_ns), self.tolerance_ns)
            out = (t if up else invert_transform(t)) @ out
        return out

    def time_range(self, target: str, source: str) -> tuple[int, int] | None:
        """(first, last) stamp at which every dynamic edge of the chain is recorded; None if
        the chain is all static."""
        lo, hi = None, None
        for edge, _ in self._path(self._strip(target), self._strip(source)):
            if edge.static:
                continue
            edge._sort()
            lo = edge.stamps[0] if lo is None else max(lo, edge.stamps[0])
            hi = edge.stamps[-1] if hi is None else min(hi, edge.stamps[-1])
        return None if lo is None or hi is None else (lo, hi)
