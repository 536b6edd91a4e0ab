"""Z-buffer rasteriser of planar convex polygons over an analytic background.

For a plane n . X = d in the camera frame, a pixel ray X = z (x_n, y_n, 1) hits it at
1 / z = (n . (x_n, y_n, 1)) / d, which is affine in the pixel coordinates (u, v). Each visible
polygon is clipped against the near plane, projected, filled with cv2.fillConvexPoly inside its
bounding box, and its exact inverse depth is z-tested against the buffer. Depth is therefore the
exact ray/plane intersection at each pixel centre, not an interpolated approximation.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.synthetic.scene import SKY_SID, Scene

_SHIFT = 4  # sub-pixel bits of cv2.fillConvexPoly
_ONE = 1 << _SHIFT
_COORD_LIMIT = float(1 << 26)  # keeps fixed-point coordinates far from int32 overflow


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a convex polygon (camera frame) against z >= near."""
    out = []
    prev = poly[-1]
    prev_in = prev[2] >= near
    for cur in poly:
        cur_in = cur[2] >= near
        if cur_in != prev_in:
            a = (near - prev[2]) / (cur[2] - prev[2])
            out.append(prev + a * (cur - prev))
        if cur_in:
            out.append(cur)
        prev, prev_in = cur, cur_in
    return np.array(out) if out else np.zeros((0, 3))


class Rasterizer:
    """Renders surface ids and inverse depth of a :class:`Scene` for one camera.

    Args:
        intrinsics: pinhole camera; the centre of pixel (u, v) sees the ray
            ((u - cx) / fx, (v - cy) / fy, 1).
        near: near clipping distance (m); only affects geometry closer than any valid depth.
        far: far clipping distance (m); surfaces beyond it read as sky (id 0, depth +inf).
    """

    def __init__(self, intrinsics: CameraIntrinsics, near: float = 0.05, far: float = math.inf):
        self.intrinsics = intrinsics
        self.near = float(near)
        self.far = float(far)
        w, h = intrinsics.width, intrinsics.height
        fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
        self._us = np.arange(w, dtype=np.float32)
        self._vs = np.arange(h, dtype=np.float32)
        xn = (self._us - np.float32(cx)) / np.float32(fx)
        yn = (self._vs - np.float32(cy)) / np.float32(fy)
        self._xn = xn
        self._yn = yn
        # frustum side planes through the optical centre, with a half-pixel margin
        self._xmin = (-1.0 - cx) / fx
        self._xmax = (w - cx) / fx
        self._ymin = (-1.0 - cy) / fy
        self._ymax = (h - cy) / fy
        self._mask = np.zeros(w * h, dtype=np.uint8)

    def world_dirs(self, pose: np.ndarray) -> np.ndarray:
        """(3, H*W) float32 world-frame ray directions with unit optical-axis component.

        Row k is R[k, 0] x_n + R[k, 1] y_n + R[k, 2], built by broadcasting (a float32
        (N, 3) @ (3, 3) matmul is pathologically slow in numpy).
        """
        rot = np.asarray(pose[:3, :3], dtype=np.float64)
        w, h = self.intrinsics.width, self.intrinsics.height
        dirs = np.empty((3, h, w), dtype=np.float32)
        for k in range(3):
            row = self._xn * np.float32(rot[k, 0])
            col = self._yn * np.float32(rot[k, 1]) + np.float32(rot[k, 2])
            np.add(row[None, :], col[:, None], out=dirs[k])
        return dirs.reshape(3, -1)

    def rasterize(
        self, scene: Scene, pose: np.ndarray, dirs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inverse z-depth (H, W) float32 (0 = nothing) and surface ids (H, W) int32."""
        intr = self.intrinsics
        w, h = intr.width, intr.height
        rot = np.asarray(pose[:3, :3], dtype=np.float64)
        origin = np.asarray(pose[:3, 3], dtype=np.float64)
        if dirs is None:
            dirs = self.world_dirs(pose)
        t_bg, sid_bg = scene.background.trace(origin, dirs)
        with np.errstate(divide="ignore"):
            invz = np.reciprocal(t_bg).astype(np.float32, copy=False).reshape(h, w)
        sid = sid_bg.astype(np.int32, copy=False).reshape(h, w)
        if scene.num_polygons:
            self._draw_polygons(scene, rot, origin, invz, sid)
        if math.isfinite(self.far):
            beyond = invz < np.float32(1.0 / self.far)
            invz[beyond] = 0.0
            sid[beyond] = SKY_SID
        return invz, sid

    def _visible(self, scene: Scene, rot: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """Polygons facing the camera whose bounding sphere meets the frustum, nearest first."""
        facing = scene.poly_normal @ origin - scene.poly_d > 1e-9
        cc = (scene.poly_center - origin) @ rot
        r = scene.poly_radius
        x, y, z = cc[:, 0], cc[:, 1], cc[:, 2]
        vis = facing & (z + r > self.near) & (z - r < self.far)
        vis &= (x - z * self._xmax) / math.hypot(1.0, self._xmax) < r
        vis &= (z * self._xmin - x) / math.hypot(1.0, self._xmin) < r
        vis &= (y - z * self._ymax) / math.hypot(1.0, self._ymax) < r
        vis &= (z * self._ymin - y) / math.hypot(1.0, self._ymin) < r
        sel = np.flatnonzero(vis)
        # front to back, so that the occlusion test below skips most hidden polygons
        return sel[np.argsort(z[sel] - r[sel], kind="stable")]

    def _draw_polygons(
        self,
        scene: Scene,
        rot: np.ndarray,
        origin: np.ndarray,
        invz: np.ndarray,
        sid: np.ndarray,
    ) -> None:
        intr = self.intrinsics
        w, h = intr.width, intr.height
        fx, fy, cx, cy = intr.fx, intr.fy, intr.cx, intr.cy
        near = self.near
        sel = self._visible(scene, rot, origin)
        if sel.size == 0:
            return
        verts = (scene.poly_verts[sel] - origin) @ rot  # (k, MAX_VERTS, 3) camera frame
        counts = scene.poly_count[sel]
        normals = scene.poly_normal[sel] @ rot
        dist = scene.poly_d[sel] - scene.poly_normal[sel] @ origin  # < 0 for facing polygons
        # inverse depth = a * u + b * v + c over the polygon's plane
        coef_a = normals[:, 0] / (fx * dist)
        coef_b = normals[:, 1] / (fy * dist)
        coef_c = (normals[:, 2] - normals[:, 0] * cx / fx - normals[:, 1] * cy / fy) / dist
        zs = verts[:, :, 2]
        zmin = zs.min(axis=1)
        zmax = zs.max(axis=1)
        clipped = zmin < near
        # Vectorised projection, bounding boxes and fixed-point vertices of the polygons that
        # need no clipping (padding repeats the last vertex, so min / max are unaffected).
        zsafe = np.where(clipped[:, None], 1.0, zs)
        u_all = fx * verts[:, :, 0] / zsafe + cx
        v_all = fy * verts[:, :, 1] / zsafe + cy
        x0s = np.clip(np.floor(u_all.min(axis=1)) - 1, 0, w).astype(np.int64)
        x1s = np.clip(np.ceil(u_all.max(axis=1)) + 2, 0, w).astype(np.int64)
        y0s = np.clip(np.floor(v_all.min(axis=1)) - 1, 0, h).astype(np.int64)
        y1s = np.clip(np.ceil(v_all.max(axis=1)) + 2, 0, h).astype(np.int64)
        fixed = np.empty((*u_all.shape, 2), dtype=np.int32)
        fixed[..., 0] = np.rint(
            np.clip((u_all - x0s[:, None]) * _ONE, -_COORD_LIMIT, _COORD_LIMIT)
        )
        fixed[..., 1] = np.rint(
            np.clip((v_all - y0s[:, None]) * _ONE, -_COORD_LIMIT, _COORD_LIMIT)
        )
        surf = scene.poly_sid[sel]
        inv_lo = 1.0 / np.maximum(zmin, near)
        inv_hi = 1.0 / np.maximum(zmax, near)
        # numpy float32 scalars, made once: the loop below is the hot path
        rows = zip(
            coef_a.astype(np.float32), coef_b.astype(np.float32), coef_c.astype(np.float32),
            inv_lo.astype(np.float32), inv_hi.astype(np.float32), clipped.tolist(),
            surf.astype(np.int32), x0s.tolist(), x1s.tolist(), y0s.tolist(), y1s.tolist(),
            counts.tolist(), strict=True,
        )  # fmt: skip
        us, vs = self._us, self._vs
        mask_buf = self._mask
        vmin = np.minimum.reduce
        fill = cv2.fillConvexPoly
        minimum, maximum, copyto, greater = np.minimum, np.maximum, np.copyto, np.greater
        for k, (a, b, c, iz_near, iz_far, clip, s_id, x0, x1, y0, y1, n) in enumerate(rows):
            if clip:
                if zmax[k] < near:
                    continue
                poly = _clip_near(verts[k, :n], near)
                if len(poly) < 3:
                    continue
                iz_near = np.float32(1.0 / max(float(poly[:, 2].min()), near))
                pu = fx * poly[:, 0] / poly[:, 2] + cx
                pv = fy * poly[:, 1] / poly[:, 2] + cy
                x0 = max(math.floor(pu.min()) - 1, 0)
                x1 = min(math.ceil(pu.max()) + 2, w)
                y0 = max(math.floor(pv.min()) - 1, 0)
                y1 = min(math.ceil(pv.max()) + 2, h)
                if x0 >= x1 or y0 >= y1:
                    continue
                pts = np.empty((len(pu), 2), dtype=np.int32)
                pts[:, 0] = np.rint(np.clip((pu - x0) * _ONE, -_COORD_LIMIT, _COORD_LIMIT))
                pts[:, 1] = np.rint(np.clip((pv - y0) * _ONE, -_COORD_LIMIT, _COORD_LIMIT))
            else:
                if x0 >= x1 or y0 >= y1:
                    continue
                pts = fixed[k, :n]
            zview = invz[y0:y1, x0:x1]
            if iz_near < vmin(zview, axis=None):
                continue  # everything under the bounding box is nearer: fully occluded
            bw, bh = x1 - x0, y1 - y0
            mask = mask_buf[: bw * bh].reshape(bh, bw)
            mask.fill(0)
            fill(mask, pts, 1, cv2.LINE_8, _SHIFT)
            iz = (us[x0:x1] * a + c)[None, :] + (vs[y0:y1] * b)[:, None]
            # Pixels the fill rule adds just outside the polygon extrapolate its plane; keep
            # them inside the polygon's own depth range so grazing planes stay sane.
            minimum(iz, iz_near, out=iz)
            maximum(iz, iz_far, out=iz)
            iz *= mask  # 0 outside the polygon: never wins the depth test
            win = greater(iz, zview)
            if bw * bh <= 16384:
                # small boxes: fewer calls win; large boxes: masked copies are slow
                copyto(zview, iz, where=win)
                copyto(sid[y0:y1, x0:x1], s_id, where=win)
            else:
                maximum(zview, iz, out=zview)
                sview = sid[y0:y1, x0:x1]
                sview += (s_id - sview) * win
