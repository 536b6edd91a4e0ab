"""A virtual 2-D laser scan from a depth image, for costmaps and planners that read LaserScan.

In the spirit of depthimage_to_laserscan: a horizontal band of the depth image becomes one
scan. The geometry (all of it precomputed per intrinsics and options in :class:`ScanGeometry`):

* **Plane and frame.** The scan lies in the plane spanned by the camera's optical axis and its
  x (right) axis, through the optical centre. Its frame (``scan_frame_id``) is the REP 103 body
  frame of the camera: x forward (the optical axis), y left, z up, at the optical centre, i.e.
  the optical frame rotated by the usual fixed (-90 deg, 0, -90 deg); ``camera_link`` of
  ``launch/nav2_depth.launch.py``. Angles grow counter-clockwise seen from above (towards y,
  the left), so the image's rightmost column has the smallest angle and ``ranges[0]`` looks
  right.
* **Angles from the intrinsics.** A pixel column u looks along ``-atan((u - cx) / fx)``.
  ``angle_min``/``angle_max`` are the angles of the centres of the last and the first column;
  the beams split that span evenly, one beam per column, or per ``stride`` columns
  (ceil(W / stride) beams). Every column of the image falls into the beam nearest its angle,
  so a beam holds all the columns it covers; a pinhole spreads the centre columns wider in
  angle than the average, so at stride 1 a centre beam can cover no column of its own: it
  then takes the next column to its left (less than one column's angle away).
* **Band.** ``height`` rows centred on ``row`` (-1 = the optical centre row, round(cy); clipped
  to the image). Rows off the centre see points above or below the plane; each is projected
  onto it.
* **Range in the plane.** For a point of depth z in column u: x = (u - cx) z / fx, and the
  range is sqrt(x^2 + z^2) = z * sqrt(1 + ((u - cx) / fx)^2), the same for every row of the
  column. A beam's range is that of the NEAREST valid point of its columns and band rows.
* **Excluded classes** (``obstacle_exclude_classes``): their pixels are ignored, so floor seen
  by the lower rows of the band does not stop a beam; what lies behind it still can.

REP 117 semantics of ``ranges``:

* NaN: no estimate. No valid depth in the beam's pixels (the model's depth is NaN outside its
  [min_depth, max_depth]), or only pixels of excluded classes. We do NOT say +Inf there: a
  monocular estimate missing is not a measured absence of obstacles, and a costmap that reads
  +Inf as free space (``inf_is_valid``) would clear cells nobody observed.
* +Inf: the nearest valid point is beyond ``range_max`` (nothing within range).
* -Inf: the nearest valid point is closer than ``range_min`` (too close to measure).
* else: range_min <= range <= range_max, metres.

Imports no rclpy: the node turns :class:`ScanData` into sensor_msgs/LaserScan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depth_perception.camera import CameraIntrinsics


@dataclass
class ScanData:
    """One scan, ready for sensor_msgs/LaserScan (fields of the same names).

    Attributes:
        angle_min: angle of ``ranges[0]`` (rad, counter-clockwise from x forward).
        angle_max: angle of ``ranges[-1]`` (rad).
        angle_increment: angle between consecutive beams (rad, > 0).
        range_min: smallest range reported as a number (m).
        range_max: largest range reported as a number (m).
        ranges: float32 (beams,), REP 117 (see the module's docstring). A reused buffer: valid
            until the next scan of the same builder.
        time_increment: 0: every beam of a camera image is seen at the same instant.
        scan_time: 0: not a rotating sensor (the scan rate is the frame rate).
    """

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray
    time_increment: float = 0.0
    scan_time: float = 0.0


@dataclass(frozen=True)
class ScanOptions:
    """What the scan looks at (see the module's docstring).

    Attributes:
        height: rows of the band (>= 1).
        row: centre row of the band; -1 = the optical centre row.
        stride: columns per beam (>= 1).
        range_min: metres; nearer points give -Inf.
        range_max: metres; further points give +Inf.
    """

    height: int = 1
    row: int = -1
    stride: int = 1
    range_min: float = 0.1
    range_max: float = 10.0

    def __post_init__(self) -> None:
        if self.height < 1 or self.stride < 1:
            raise ValueError(
                f"scan height and stride must be >= 1, got {self.height}, {self.stride}"
            )
        if self.row < -1:
            raise ValueError(f"scan row must be -1 (optical centre) or a row, got {self.row}")
        if not 0.0 <= self.range_min < self.range_max:
            raise ValueError(
                f"need 0 <= scan_range_min < scan_range_max, got {self.range_min}, "
                f"{self.range_max}"
            )


def column_angles(intrinsics: CameraIntrinsics) -> np.ndarray:
    """Angle (rad, REP 103: counter-clockwise from the optical axis) of every column's centre."""
    u = np.arange(intrinsics.width, dtype=np.float64)
    return -np.arctan((u - intrinsics.cx) / intrinsics.fx)


class ScanGeometry:
    """Precomputed band, beam angles and column-to-beam assignment of one camera and options.

    Rebuild only when the intrinsics or the options change (the frame pipeline caches it).

    Raises:
        ValueError: a ``row`` outside the image.
    """

    def __init__(self, intrinsics: CameraIntrinsics, options: ScanOptions) -> None:
        width, height = intrinsics.width, intrinsics.height
        self.intrinsics = intrinsics
        self.options = options
        centre = round(intrinsics.cy) if options.row < 0 else options.row
        if not 0 <= centre < height:
            raise ValueError(
                f"scan_row {centre} is outside the image's rows 0..{height - 1}"
                + (" (the optical centre row from cy)" if options.row < 0 else "")
            )
        top = centre - options.height // 2
        # Clipped, not shifted: the band stays centred on its row.
        self.rows = (max(0, top), min(height, top + options.height))
        self.beams = -(-width // options.stride)
        angles = column_angles(intrinsics)
        # Columns right to left: increasing angle, so the beams come out in LaserScan order.
        self._order = np.arange(width - 1, -1, -1)
        ordered = angles[self._order]
        self.angle_min = float(ordered[0])
        self.angle_max = float(ordered[-1])
        span = self.angle_max - self.angle_min
        if self.beams > 1:
            self.angle_increment = span / (self.beams - 1)
        else:  # one beam for the whole image: its width is the image's field of view
            self.angle_increment = span if span > 0 else math.radians(1.0)
        beam_of_column = np.rint((ordered - self.angle_min) / self.angle_increment).astype(int)
        beam_of_column = np.clip(beam_of_column, 0, self.beams - 1)
        # First (ordered) column of every beam; a beam without a column starts at the next
        # beam's first column, which np.fmin.reduceat then returns alone.
        self._starts = np.searchsorted(beam_of_column, np.arange(self.beams), side="left")
        self._starts = np.minimum(self._starts, width - 1)
        rx = (np.arange(width, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
        # z -> range in the plane, per ordered column.
        self._factor = np.sqrt(1.0 + rx[self._order] ** 2).astype(np.float32)
        self._ranges = np.empty(self.beams, np.float32)
        self._columns = np.empty(width, np.float32)

    @property
    def beam_angles(self) -> np.ndarray:
        """Angle of every beam (rad), ``angle_min + i * angle_increment``."""
        return self.angle_min + self.angle_increment * np.arange(self.beams)

    def scan(
        self,
        depth: np.ndarray,
        labels: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> ScanData:
        """The scan of one frame.

        Args:
            depth: (H, W) float32 metres, NaN where unknown (the predictor's depth).
            labels: (H, W) uint8 class ids; needed with ``excluded``.
            excluded: (256,) :func:`~depth_perception.obstacles.exclusion_table` of the
                classes that do not stop a beam, or None.

        Raises:
            ValueError: a depth of another size than the intrinsics, or ``excluded`` without
                ``labels``.
        """
        shape = (self.intrinsics.height, self.intrinsics.width)
        if depth.shape != shape:
            raise ValueError(f"depth is {depth.shape}, the scan geometry is for {shape}")
        top, bottom = self.rows
        band = depth[top:bottom]
        if excluded is not None:
            if labels is None or labels.shape != shape:
                raise ValueError("excluded classes need labels of the depth's shape")
            # Only the band's rows: a few thousand pixels, a new small array is fine.
            band = band + excluded[labels[top:bottom]]  # NaN where excluded, else + 0
        # fmin ignores NaN; a column of NaN only stays NaN (no warning, unlike nanmin).
        np.fmin.reduce(band, axis=0, out=self._columns)
        columns = self._columns[self._order]
        columns *= self._factor
        np.fmin.reduceat(columns, self._starts, out=self._ranges)
        ranges = self._ranges
        options = self.options
        with np.errstate(invalid="ignore"):
            ranges[ranges < options.range_min] = -np.inf
            ranges[ranges > options.range_max] = np.inf
        return ScanData(
            angle_min=self.angle_min,
            angle_max=self.angle_max,
            angle_increment=self.angle_increment,
            range_min=options.range_min,
            range_max=options.range_max,
            ranges=ranges,
        )
