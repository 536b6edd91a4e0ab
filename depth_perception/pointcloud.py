"""Organized point clouds from a depth image: the numpy side of sensor_msgs/PointCloud2.

Imports no rclpy. The node turns :class:`CloudData` into a PointCloud2 message without copying
the points: the builder writes them into an ``array.array('B')`` (``CloudData.payload``) that a
message created with ``check_fields=True`` keeps as its ``data``::

    msg = PointCloud2(check_fields=True)
    msg.height, msg.width = cloud.height, cloud.width
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in cloud.fields]
    msg.is_bigendian, msg.point_step, msg.row_step = cloud.is_bigendian, cloud.point_step,
                                                     cloud.row_step
    msg.is_dense = cloud.is_dense
    msg.data = cloud.payload  # kept, not copied; publish() serializes it inside the call

Conventions (REP 103 / REP 117 / REP 118, matching depth_image_proc):

* Points are in the camera optical frame: x right, y down, z forward, metres.
* z is the depth value (distance along the optical axis, not along the ray);
  x = (u - cx) z / fx, y = (v - cy) z / fy for the pixel centre (u, v).
* The cloud is organized (height x width of the depth image, or of its strided grid) and
  ``is_dense`` is False: a pixel without a valid depth keeps its slot with x = y = z = NaN.
  Invalid means NaN (no measurement), +inf (no return), -inf (too close), 0 or negative.

Memory layout (little-endian on every usual machine; ``is_bigendian`` follows the host):

=================  =====================================  ==========
configuration      fields (offset)                         point_step
=================  =====================================  ==========
xyz                x(0) y(4) z(8) + 4 padding bytes        16
xyz + rgb          x(0) y(4) z(8) rgb(12)                  16
xyz + label        x(0) y(4) z(8) label(12)                16
xyz + rgb + label  x(0) y(4) z(8) rgb(12) label(16)        20
=================  =====================================  ==========

The xyz-only step is padded to 16 bytes as PCL's PointXYZ is, and every step is a multiple of 4
so the float fields stay aligned. ``rgb`` is PCL's packed colour: the uint32 0x00RRGGBB whose
four bytes are read as a float32 (datatype FLOAT32, as RViz and PCL expect). ``label`` is a
UINT32 class id (255 = unlabelled), the per-point label that semantic layers read: PCL's
labelled point types (``pcl::PointXYZRGBL``, ``pcl::PointXYZL``) have a uint32 ``label`` and
``pcl::fromROSMsg`` matches fields by name AND datatype, so a uint8 label would be lost to C++
consumers; the point is 20 bytes either way. The fields are not of one datatype, so
sensor_msgs_py's ``read_points_numpy`` needs ``field_names=("x", "y", "z")`` (``read_points``
reads them all as a structured array). Padding bytes are always zero so the published bytes are
deterministic.

Two implementations write the same bytes (NaN bit patterns included): the optional C extension
``depth_perception._cloud_kernel`` (built by setup.py; one pass over the points, GIL released)
and a numpy/cv2 fallback (several strided passes, ~3x slower at 640x480). :data:`CLOUD_KERNEL`
says which one builders use by default: ``"c"`` when the extension imports and writes the numpy
path's bytes on a probe at import, else ``"numpy"`` (:data:`CLOUD_KERNEL_REASON` says why).
``DEPTH_PERCEPTION_CLOUD_KERNEL=numpy`` forces the numpy path; ``OrganizedCloudBuilder(...,
kernel="numpy")`` picks it for one builder.
"""

from __future__ import annotations

import array
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from depth_perception.buffers import ReusableBuffer
from depth_perception.camera import CameraIntrinsics

try:
    from depth_perception import _cloud_kernel
except ImportError as _error:  # not built (no compiler at install time): the numpy path
    _cloud_kernel = None
    _KERNEL_IMPORT_ERROR = f"the C extension is not built ({_error})"
else:
    _KERNEL_IMPORT_ERROR = ""

# sensor_msgs/PointField datatype constants (copied so the core needs no rclpy).
INT8 = 1
UINT8 = 2
INT16 = 3
UINT16 = 4
INT32 = 5
UINT32 = 6
FLOAT32 = 7
FLOAT64 = 8

_DATATYPE_TO_NUMPY: dict[int, str] = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}

_HOST_IS_BIGENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class PointFieldSpec:
    """One sensor_msgs/PointField: ``datatype`` uses the PointField constants (FLOAT32 = 7...)."""

    name: str
    offset: int
    datatype: int
    count: int = 1

    def __post_init__(self) -> None:
        if self.datatype not in _DATATYPE_TO_NUMPY:
            raise ValueError(
                f"field {self.name!r}: datatype {self.datatype} is not a PointField constant "
                "(use 1..8: INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64)"
            )
        if self.offset < 0 or self.count < 1:
            raise ValueError(
                f"field {self.name!r}: need offset >= 0 and count >= 1, "
                f"got offset={self.offset}, count={self.count}"
            )


def fields_dtype(
    fields: Sequence[PointFieldSpec], point_step: int, bigendian: bool = _HOST_IS_BIGENDIAN
) -> np.dtype:
    """Numpy structured dtype that reads one point of a PointCloud2 byte buffer.

    Args:
        fields: The cloud's fields.
        point_step: Bytes per point (the dtype's itemsize; padding is skipped).
        bigendian: Byte order of the buffer (PointCloud2 ``is_bigendian``).

    Returns:
        A dtype such that ``np.frombuffer(data, dtype).reshape(height, width)`` gives the points.
    """
    order = ">" if bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        base = order + _DATATYPE_TO_NUMPY[f.datatype]
        names.append(f.name)
        formats.append(base if f.count == 1 else (base, (f.count,)))
        offsets.append(f.offset)
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    )


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """PCL-packed colour: (..., 3) uint8 RGB -> (...) float32 holding the bits of 0x00RRGGBB."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (..., 3) uint8, got {rgb.shape} {rgb.dtype}")
    c = rgb.astype(np.uint32)
    return ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: (...) float32 -> (..., 3) uint8 RGB."""
    packed = np.ascontiguousarray(packed, dtype=np.float32)
    bits = packed.view(np.uint32)
    channels = [(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF]
    return np.stack(channels, axis=-1).astype(np.uint8)


@dataclass
class CloudData:
    """An organized cloud ready for sensor_msgs/PointCloud2.

    Attributes:
        data: C-contiguous uint8 array of shape (height, width, point_step): exactly the
            message's ``data`` bytes.
        fields: The PointFields in offset order.
        point_step: Bytes per point.
        row_step: Bytes per row (width * point_step).
        width: Points per row.
        height: Rows.
        is_dense: Always False: invalid pixels are NaN points.
        is_bigendian: Byte order of the float fields (the host's).
        payload: The ``array.array('B')`` that ``data`` views (the builder's buffer), which a
            message's ``data`` can take without a copy; None when ``data`` is a plain array.
    """

    data: np.ndarray
    fields: list[PointFieldSpec]
    point_step: int
    row_step: int
    width: int
    height: int
    is_dense: bool = False
    is_bigendian: bool = field(default=_HOST_IS_BIGENDIAN)
    payload: array.array | None = None

    def tobytes(self) -> bytes:
        """A copy of the message payload (about 0.2 ms for a 640x480 xyzrgb cloud)."""
        return self.data.tobytes()

    @property
    def points(self) -> np.ndarray:
        """Structured (height, width) view of :attr:`data` with one named column per field."""
        dtype = fields_dtype(self.fields, self.point_step, self.is_bigendian)
        return self.data.reshape(-1).view(dtype).reshape(self.height, self.width)


def _cloud_layout(with_rgb: bool, with_label: bool) -> tuple[list[PointFieldSpec], int]:
    fields = [
        PointFieldSpec("x", 0, FLOAT32),
        PointFieldSpec("y", 4, FLOAT32),
        PointFieldSpec("z", 8, FLOAT32),
    ]
    offset = 12
    if with_rgb:
        fields.append(PointFieldSpec("rgb", offset, FLOAT32))
        offset += 4
    if with_label:
        # uint32 as in PCL's PointXYZRGBL / PointXYZL (fromROSMsg matches name and datatype).
        fields.append(PointFieldSpec("label", offset, UINT32))
        offset += 4
    # At least 16 bytes: PCL's PointXYZ is 16 (tools that memcpy into it expect that step).
    point_step = max(16, offset)
    return fields, point_step


# Rows per block when the depth must be validated first: the scratch arrays of one block stay
# in the cache and no full-frame temporaries are made.
_BLOCK_ROWS = 64


def _valid_depth_metres(depth: np.ndarray) -> np.ndarray:
    """Depth in metres with every invalid pixel as NaN (float32 or float64, new array)."""
    if depth.dtype == np.uint16:
        # REP 118 alternative encoding: millimetres, 0 = invalid.
        z = depth.astype(np.float32)
        z *= np.float32(1e-3)
        z[depth == 0] = np.nan
        return z
    # (d > 0) & (d < inf) is False for NaN, +inf, -inf, 0 and negatives: one mask for all.
    valid = (depth > 0) & (depth < np.inf)
    return np.where(valid, depth, depth.dtype.type(np.nan))


_NAN32_BITS = np.uint32(0x7FC00000)  # np.float32(np.nan): the one NaN written for invalid depth


def _nan_invalid_into(
    depth: np.ndarray,
    out: np.ndarray,
    mask: np.ndarray,
    scratch: np.ndarray,
    bits: np.ndarray,
    bits2: np.ndarray,
) -> np.ndarray:
    """Branch-free version of :func:`_valid_depth_metres` for float depth, into float32 ``out``.

    np.where/copyto(where=) branch per pixel and cost ~0.5 ms at 640x480 when invalid pixels
    are scattered. This selects on the bits instead, out = d ^ ((d ^ NaN) & invalid) with
    ``invalid`` all ones where the pixel is invalid (``bits``, ``bits2``: uint32 scratch), so
    every invalid pixel gets exactly np.float32(np.nan), whatever NaN it held: float arithmetic
    (d + NaN) would return either operand's NaN depending on the loop numpy picks, and the
    bytes must not depend on that (the C kernel writes the same pattern).
    """
    np.greater(depth, 0, out=mask)
    np.less(depth, np.inf, out=scratch)
    np.logical_and(mask, scratch, out=mask)
    np.subtract(mask, np.uint32(1), out=bits)  # 0 where valid, 0xffffffff where not
    if depth.dtype == np.float32:
        depth_bits = depth.view(np.uint32)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, as a cast
            np.copyto(out, depth, casting="same_kind")
        depth_bits = out.view(np.uint32)
    np.bitwise_xor(depth_bits, _NAN32_BITS, out=bits2)
    np.bitwise_and(bits2, bits, out=bits2)
    np.bitwise_xor(depth_bits, bits2, out=out.view(np.uint32))
    return out


def _millimetres_into(depth: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres into ``out``, 0 mm (invalid) as NaN."""
    np.multiply(depth, np.float32(1e-3), out=out)
    np.equal(depth, 0, out=mask)
    np.copyto(out, np.float32(np.nan), where=mask)
    return out


def _check_depth(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D (H, W) image, got shape {depth.shape}")
    if depth.dtype not in (np.float32, np.float64, np.uint16):
        raise ValueError(
            f"depth must be float32/float64 metres or uint16 millimetres (REP 118), "
            f"got {depth.dtype}"
        )
    expected = (intrinsics.height, intrinsics.width)
    if depth.shape != expected:
        raise ValueError(
            f"depth is {depth.shape[1]}x{depth.shape[0]} but the intrinsics are for "
            f"{expected[1]}x{expected[0]}; use CameraIntrinsics.scaled() to match the image"
        )
    return depth


def depth_to_points(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Unproject a depth image to an (H, W, 3) float32 array of optical-frame points.

    Args:
        depth: (H, W) depth along the optical axis: float metres, or uint16 millimetres.
        intrinsics: Intrinsics of an image of exactly this size.

    Returns:
        (H, W, 3) float32 x, y, z; NaN where the depth is NaN, +-inf, 0 or negative.

    Raises:
        ValueError: If the shape or dtype does not fit.
    """
    depth = _check_depth(depth, intrinsics)
    z = _valid_depth_metres(depth)
    u = np.arange(intrinsics.width, dtype=np.float64)
    v = np.arange(intrinsics.height, dtype=np.float64)
    rx = (u - intrinsics.cx) / intrinsics.fx
    ry = (v - intrinsics.cy) / intrinsics.fy
    out = np.empty((*depth.shape, 3), dtype=np.float32)
    out[..., 0] = z * rx[None, :]
    out[..., 1] = z * ry[:, None]
    out[..., 2] = z
    return out


class OrganizedCloudBuilder:
    """Turns depth (+ colour, + labels) images into organized PointCloud2 payloads, fast.

    The per-pixel ray factors are computed once here; rebuild the builder only when the
    intrinsics or the stride change. With ``stride`` s the cloud holds the pixels (s*i, s*j)
    (row v = s*i, column u = s*j) and uses the ORIGINAL intrinsics, so each point lies exactly
    on its pixel's ray; its size is ceil(H/s) x ceil(W/s).

    By default (``reuse_buffer=True``) every :meth:`build` writes into the same preallocated
    ``array.array`` (``CloudData.payload``): the returned cloud is overwritten by the next call.
    Publishing it is safe (``publish()`` serializes inside the call); keep ``tobytes()`` (a copy)
    to hold a cloud longer. Reuse avoids page-faulting a fresh 5-6 MB buffer per frame, which
    costs more than building the cloud itself. A builder also keeps scratch arrays, so it is not
    thread-safe: use one builder per thread (per camera).

    Args:
        intrinsics: Intrinsics of the full-resolution depth image that build() receives.
        stride: Keep every stride-th row and column (>= 1).
        with_rgb: Add the packed ``rgb`` field; build() then requires ``rgb``.
        with_label: Add the uint32 ``label`` field; build() then requires ``labels``.
        color_order: "rgb" for rgb8 images, "bgr" for bgr8 (OpenCV) images.
        reuse_buffer: Write every cloud into one preallocated buffer (see above).
        kernel: "c" (the one-pass C extension), "numpy", or None for :data:`CLOUD_KERNEL`.
            Both write the same bytes.
    """

    def __init__(
        self,
        intrinsics: CameraIntrinsics,
        stride: int = 1,
        with_rgb: bool = False,
        with_label: bool = False,
        color_order: str = "rgb",
        reuse_buffer: bool = True,
        kernel: str | None = None,
    ) -> None:
        kernel = CLOUD_KERNEL if kernel is None else kernel
        if kernel not in ("c", "numpy"):
            raise ValueError(f"kernel must be 'c', 'numpy' or None, got {kernel!r}")
        if kernel == "c" and _cloud_kernel is None:
            raise ValueError(f"kernel='c' but {_KERNEL_IMPORT_ERROR}")
        if int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride}")
        if color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
        self.intrinsics = intrinsics
        self.stride = int(stride)
        self.with_rgb = bool(with_rgb)
        self.with_label = bool(with_label)
        self.color_order = color_order
        self.reuse_buffer = bool(reuse_buffer)
        self.kernel = kernel
        self.fields, self.point_step = _cloud_layout(self.with_rgb, self.with_label)

        s = self.stride
        u = np.arange(0, intrinsics.width, s, dtype=np.float64)
        v = np.arange(0, intrinsics.height, s, dtype=np.float64)
        self.width = len(u)
        self.height = len(v)
        # Broadcast rows/columns instead of full grids: x = z * rx[j], y = z * ry[i].
        self._rx = ((u - intrinsics.cx) / intrinsics.fx).astype(np.float32)
        self._ry = ((v - intrinsics.cy) / intrinsics.fy).astype(np.float32)[:, None]
        self._ry_flat = self._ry.reshape(-1)
        self._rgb_offset = self._field_offset("rgb") if with_rgb else -1
        self._label_offset = self._field_offset("label") if with_label else -1
        if with_rgb:
            # cv2.mixChannels pairs (image channel, byte of the point): the packed 0x00RRGGBB
            # stores B, G, R at rgb+0, +1, +2 on a little-endian host (+3, +2, +1 big-endian).
            base = self._field_offset("rgb")
            b_at, g_at, r_at = (
                (base + 3, base + 2, base + 1)
                if _HOST_IS_BIGENDIAN
                else (
                    base,
                    base + 1,
                    base + 2,
                )
            )
            r, g, b = (0, 1, 2) if color_order == "rgb" else (2, 1, 0)
            self._rgb_pairs = [r, r_at, g, g_at, b, b_at]
        self._buffer = ReusableBuffer()
        # Scratch of one block of rows, for depth that must be validated (small, cache-sized).
        rows = min(_BLOCK_ROWS, self.height)
        self._mask = np.empty((rows, self.width), dtype=bool)
        self._mask2 = np.empty((rows, self.width), dtype=bool)
        self._z = np.empty((rows, self.width), dtype=np.float32)
        self._bits = np.empty((rows, self.width), dtype=np.uint32)
        self._bits2 = np.empty((rows, self.width), dtype=np.uint32)

    def _field_offset(self, name: str) -> int:
        return next((f.offset for f in self.fields if f.name == name), -1)

    @property
    def row_step(self) -> int:
        return self.width * self.point_step

    def _target(self) -> ReusableBuffer:
        if not self.reuse_buffer:
            self._buffer = ReusableBuffer()
        # Zeroed on allocation: padding bytes (and the rgb alpha byte) are never written after.
        self._buffer.ensure(self.height * self.row_step)
        return self._buffer

    def build(
        self,
        depth: np.ndarray,
        rgb: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        validated: bool = False,
    ) -> CloudData:
        """Build the organized cloud of one frame.

        Args:
            depth: (H, W) float32/float64 metres or uint16 millimetres, H x W = the intrinsics'
                size. Invalid pixels (NaN, +-inf, <= 0, or 0 mm) become NaN points.
            rgb: (H, W, 3) uint8 colour image in ``color_order``, if ``with_rgb``.
            labels: (H, W) uint8 class ids, if ``with_label``.
            validated: ``depth`` is float32 whose every pixel is NaN or a finite positive
                depth (the predictor's output): the invalid-pixel pass is skipped.

        Returns:
            The cloud (see :class:`CloudData`).

        Raises:
            ValueError: On a missing/unexpected image or a shape/dtype mismatch.
        """
        depth = _check_depth(depth, self.intrinsics)
        full_shape = depth.shape
        if validated and depth.dtype != np.float32:
            raise ValueError(f"validated depth must be float32 metres, got {depth.dtype}")
        if self.with_rgb:
            if rgb is None:
                raise ValueError("this builder has with_rgb=True: pass rgb=(H, W, 3) uint8")
            rgb = np.asarray(rgb)
            if rgb.shape != (*full_shape, 3) or rgb.dtype != np.uint8:
                raise ValueError(
                    f"rgb must be {(*full_shape, 3)} uint8 like the depth image, "
                    f"got {rgb.shape} {rgb.dtype}"
                )
        elif rgb is not None:
            raise ValueError("rgb given but the builder has with_rgb=False; build it with rgb")
        if self.with_label:
            if labels is None:
                raise ValueError("this builder has with_label=True: pass labels=(H, W) uint8")
            labels = np.asarray(labels)
            if labels.shape != full_shape or labels.dtype != np.uint8:
                raise ValueError(
                    f"labels must be {full_shape} uint8 like the depth image, "
                    f"got {labels.shape} {labels.dtype} (cast class ids with .astype(np.uint8))"
                )
        elif labels is not None:
            raise ValueError(
                "labels given but the builder has with_label=False; build it with labels"
            )

        target = self._target()
        buf = target.view((self.height, self.width, self.point_step), np.uint8)
        if self.kernel == "c":
            # One pass over the points, GIL released; takes the full-resolution images (any
            # strides) and subsamples itself.
            _cloud_kernel.fill(
                target.payload,
                depth,
                rgb,
                labels,
                self._rx,
                self._ry_flat,
                self.stride,
                self.point_step,
                self._rgb_offset,
                self._label_offset,
                validated,
                self.color_order == "bgr",
                _INVALID_NAN_BITS,
                _MILLIMETRE_NAN_BITS,
            )
        else:
            self._fill_numpy(buf, depth, rgb, labels, validated)
        return CloudData(
            data=buf,
            fields=list(self.fields),
            point_step=self.point_step,
            row_step=self.row_step,
            width=self.width,
            height=self.height,
            payload=target.payload,
        )

    def _fill_numpy(
        self,
        buf: np.ndarray,
        depth: np.ndarray,
        rgb: np.ndarray | None,
        labels: np.ndarray | None,
        validated: bool,
    ) -> None:
        """The numpy/cv2 path: x, y, z, then rgb, then label, each a strided pass over buf."""
        s = self.stride
        if s > 1:
            depth = depth[::s, ::s]
            rgb = rgb[::s, ::s] if rgb is not None else None
            labels = labels[::s, ::s] if labels is not None else None
        xyz = buf.view(np.float32)  # (h, w, point_step // 4): the float columns
        if validated:
            self._write_xyz(xyz, depth, 0)
        else:
            for start in range(0, self.height, len(self._z)):
                stop = min(start + len(self._z), self.height)
                rows = stop - start
                if depth.dtype == np.uint16:
                    z = _millimetres_into(depth[start:stop], self._z[:rows], self._mask[:rows])
                else:
                    z = _nan_invalid_into(
                        depth[start:stop],
                        self._z[:rows],
                        self._mask[:rows],
                        self._mask2[:rows],
                        self._bits[:rows],
                        self._bits2[:rows],
                    )
                self._write_xyz(xyz[start:stop], z, start)
        if self.with_rgb:
            # One pass that scatters the three colour bytes (3 strided copies cost 20 % more).
            img = rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)
            cv2.mixChannels([img], [buf], self._rgb_pairs)
        if self.with_label:
            label_word = self._field_offset("label") // 4
            buf.view(np.uint32)[..., label_word] = labels

    def _write_xyz(self, xyz: np.ndarray, z: np.ndarray, row: int) -> None:
        # Strided writes straight into the interleaved buffer: no temporaries for x, y.
        np.multiply(z, self._rx, out=xyz[..., 0])
        np.multiply(z, self._ry[row : row + len(z)], out=xyz[..., 1])
        xyz[..., 2] = z


def _numpy_nan_bits() -> tuple[int, int]:
    """uint32 bits of the NaNs the numpy path writes for an invalid float pixel and for 0 mm.

    Both are np.float32(np.nan) (0x7fc00000); read from the numpy path itself so that the C
    kernel, which is given them, cannot drift from it.
    """
    probe = np.full((1, 8), -1.0, np.float32)
    mask, scratch = np.empty(probe.shape, bool), np.empty(probe.shape, bool)
    words = [np.empty(probe.shape, np.uint32) for _ in range(2)]
    invalid = _nan_invalid_into(probe, np.empty_like(probe), mask, scratch, *words)
    zero_mm = np.zeros(probe.shape, np.uint16)
    millimetre = _millimetres_into(zero_mm, np.empty_like(probe), mask)
    return int(invalid.view(np.uint32)[0, 0]), int(millimetre.view(np.uint32)[0, 0])


_INVALID_NAN_BITS, _MILLIMETRE_NAN_BITS = _numpy_nan_bits()


def _kernel_probe_depths(height: int, width: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Depth images that hit every branch: valid, NaN payloads (signalling, negative), +-inf,
    +-0, negatives, subnormals, float64 values that overflow or underflow float32, 0 mm."""
    rng = np.random.default_rng(seed)
    f32 = rng.uniform(0.2, 9.0, (height, width)).astype(np.float32)
    f64 = rng.uniform(0.2, 9.0, (height, width))
    nan32 = np.array([0x7FC00000, 0xFFC00000, 0x7FC01234, 0x7F800001, 0xFFBFFFFF], np.uint32)
    specials32 = np.concatenate(
        [nan32.view(np.float32), np.float32([np.inf, -np.inf, 0.0, -0.0, -1.5, 1e-45])]
    )
    nan64 = np.array(
        [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF80000DEADBEEF, 0x7FF0000000000001,
         0x7FFC0000_12345678],
        np.uint64,
    )  # fmt: skip
    specials64 = np.concatenate(
        [nan64.view(np.float64), [np.inf, -np.inf, 0.0, -0.0, -2.0, 1e-300, 1e300, 5e-324]]
    )
    for image, specials in ((f32, specials32), (f64, specials64)):
        flat = image.reshape(-1)
        at = rng.choice(flat.size, size=flat.size // 4, replace=False)
        flat[at] = specials[np.arange(at.size) % specials.size]
    mm = rng.integers(0, 65536, (height, width), dtype=np.uint16)
    mm.reshape(-1)[::3] = 0
    return {"float32": f32, "float64": f64, "uint16": mm}


def _kernel_self_check() -> str:
    """ "" when the C kernel writes the numpy path's bytes on a small probe, else what differed.

    Guards the byte-for-byte promise on hosts the tests never ran on (other CPUs' NaN rules,
    big-endian byte order).
    """
    height, width = 9, 37
    intrinsics = CameraIntrinsics(fx=30.0, fy=40.0, cx=17.3, cy=4.1, width=width, height=height)
    depths = _kernel_probe_depths(height, width)
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    configs = ((True, True, 1, "rgb"), (False, False, 2, "rgb"), (True, False, 3, "bgr"))
    configs += ((False, True, 1, "rgb"),)
    for with_rgb, with_label, stride, order in configs:
        for name, depth in (("validated", depths["float32"]), *depths.items()):
            clouds = [
                OrganizedCloudBuilder(
                    intrinsics, stride, with_rgb, with_label, order, kernel=kernel
                ).build(
                    depth,
                    rgb if with_rgb else None,
                    labels if with_label else None,
                    validated=name == "validated",
                )
                for kernel in ("c", "numpy")
            ]
            if clouds[0].tobytes() != clouds[1].tobytes():
                return (
                    f"the C kernel's bytes differ from the numpy path's ({name} depth, "
                    f"rgb={with_rgb}, label={with_label}, stride {stride})"
                )
    return ""


def _choose_kernel() -> tuple[str, str]:
    """The default kernel and, when it is numpy, why."""
    if os.environ.get("DEPTH_PERCEPTION_CLOUD_KERNEL", "").strip().lower() == "numpy":
        return "numpy", "DEPTH_PERCEPTION_CLOUD_KERNEL=numpy"
    if _cloud_kernel is None:
        return "numpy", _KERNEL_IMPORT_ERROR
    try:
        with np.errstate(all="ignore"):  # the probe's signalling NaNs and infinities
            mismatch = _kernel_self_check()
    except Exception as error:  # e.g. a stale in-place build of an older kernel
        mismatch = f"the C kernel failed on the probe ({type(error).__name__}: {error})"
    return ("numpy", mismatch) if mismatch else ("c", "")


#: The implementation builders use by default: "c" (the one-pass extension) or "numpy".
CLOUD_KERNEL: str = "numpy"
#: Why :data:`CLOUD_KERNEL` is "numpy" ("" when it is "c").
CLOUD_KERNEL_REASON: str = ""
CLOUD_KERNEL, CLOUD_KERNEL_REASON = _choose_kernel()


def benchmark_point_cloud(
    width: int = 640, height: int = 480, repeats: int = 100, kernel: str | None = None
) -> dict[str, float]:
    """Print and return median build times (ms) for the usual configurations.

    Uses a synthetic depth image with 10 % invalid pixels. ``+tobytes`` adds a copy of the
    payload (the node's message takes the buffer itself). ``kernel`` as in the builder.
    """
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 20.0, (height, width)).astype(np.float32)
    depth[rng.random((height, width)) < 0.1] = np.nan
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 20, (height, width), dtype=np.uint8)
    intr = CameraIntrinsics.from_hfov(width, height, 70.0)
    results: dict[str, float] = {}
    for stride in (1, 2):
        for with_extra in (False, True):
            builder = OrganizedCloudBuilder(
                intr, stride=stride, with_rgb=with_extra, with_label=with_extra, kernel=kernel
            )
            kwargs = {"rgb": rgb, "labels": labels} if with_extra else {}
            for to_bytes in (False, True):
                builder.build(depth, **kwargs)  # warm-up
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    cloud = builder.build(depth, **kwargs)
                    if to_bytes:
                        cloud.tobytes()
                    times.append(time.perf_counter() - t0)
                name = (
                    f"{'xyz+rgb+label' if with_extra else 'xyz'} stride {stride}"
                    f"{' +tobytes' if to_bytes else ''}"
                )
                results[name] = float(np.median(times) * 1e3)
                print(
                    f"{builder.kernel:<5} {width}x{height} {name:<30} {results[name]:7.3f} ms "
                    f"(p90 {np.percentile(times, 90) * 1e3:.3f} ms, "
                    f"{builder.height}x{builder.width} points, step {builder.point_step})"
                )
    return results


if __name__ == "__main__":
    print(
        f"default kernel: {CLOUD_KERNEL}{f' ({CLOUD_KERNEL_REASON})' * bool(CLOUD_KERNEL_REASON)}"
    )
    for _kernel in ("c", "numpy") if _cloud_kernel is not None else ("numpy",):
        benchmark_point_cloud(kernel=_kernel)
