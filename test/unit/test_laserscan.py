"""The virtual laser scan and the class exclusion, against scenes with known distances (no ROS).

Scenes are built analytically: a vertical plane at distance d whose normal points at angle phi
(scan frame, REP 103: x forward, y left) is seen by pixel column u at depth
z = d / (cos(phi) - rx sin(phi)) with rx = (u - cx) / fx, and by the beam at angle theta at the
in-plane range d / cos(theta - phi).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from depth_perception.laserscan import ScanGeometry, ScanOptions, column_angles
from depth_perception.obstacles import exclusion_ids, exclusion_table, mask_excluded

# Off-centre principal point, non-square pixels, a wide (~96 deg) lens.
INTR = CameraIntrinsics(fx=290.0, fy=280.0, cx=330.25, cy=235.5, width=640, height=480)


def _rx(intr: CameraIntrinsics = INTR) -> np.ndarray:
    return (np.arange(intr.width) - intr.cx) / intr.fx


def wall(d: float, phi_deg: float, intr: CameraIntrinsics = INTR) -> np.ndarray:
    """Depth image of a vertical wall at distance ``d`` with its normal at ``phi_deg``."""
    phi = math.radians(phi_deg)
    z = d / (math.cos(phi) - _rx(intr) * math.sin(phi))
    return np.broadcast_to(z.astype(np.float32), (intr.height, intr.width)).copy()


def expected_wall_ranges(geometry: ScanGeometry, d: float, phi_deg: float) -> np.ndarray:
    return d / np.cos(geometry.beam_angles - math.radians(phi_deg))


def test_angles_come_from_the_intrinsics_in_rep103_order():
    geometry = ScanGeometry(INTR, ScanOptions())
    assert geometry.beams == INTR.width
    # Leftmost column (u = 0) looks left: the largest angle; the rightmost the smallest.
    assert geometry.angle_max == pytest.approx(math.atan(INTR.cx / INTR.fx))
    assert geometry.angle_min == pytest.approx(-math.atan((INTR.width - 1 - INTR.cx) / INTR.fx))
    span = geometry.angle_max - geometry.angle_min
    assert geometry.angle_increment == pytest.approx(span / (INTR.width - 1))
    assert geometry.beam_angles[-1] == pytest.approx(geometry.angle_max)
    assert column_angles(INTR)[0] == pytest.approx(geometry.angle_max)


@pytest.mark.parametrize("phi_deg", [0.0, 25.0, -30.0])
def test_a_wall_gives_its_range_at_every_angle(phi_deg):
    d = 2.5
    geometry = ScanGeometry(INTR, ScanOptions(range_max=50.0))
    scan = geometry.scan(wall(d, phi_deg))
    expected = expected_wall_ranges(geometry, d, phi_deg)
    # A beam reports its nearest column, at most ~one column's angle from the beam's own:
    # the range error is bounded by |dr/dtheta| * angle_increment.
    slope = (
        np.abs(d * np.sin(geometry.beam_angles - math.radians(phi_deg)))
        / np.cos(geometry.beam_angles - math.radians(phi_deg)) ** 2
    )
    tolerance = slope * 1.5 * geometry.angle_increment + 1e-4
    assert np.all(np.isfinite(scan.ranges))
    assert np.all(np.abs(scan.ranges - expected) <= tolerance)
    # Where the wall is nearest (its normal), the scan shows exactly d.
    if abs(phi_deg) < 30:
        assert scan.ranges.min() == pytest.approx(d, rel=1e-4)
        nearest = geometry.beam_angles[np.argmin(scan.ranges)]
        assert math.degrees(nearest) == pytest.approx(phi_deg, abs=0.3)


def test_an_object_on_the_left_shows_at_positive_angles_and_its_range():
    depth = wall(4.0, 0.0)
    # A pillar seen by columns 100..139 (left of cx), at in-plane range 1.5 m.
    columns = slice(100, 140)
    depth[:, columns] = (1.5 / np.sqrt(1.0 + _rx()[columns] ** 2)).astype(np.float32)
    geometry = ScanGeometry(INTR, ScanOptions())
    scan = geometry.scan(depth)
    near = np.flatnonzero(np.abs(scan.ranges - 1.5) < 1e-3)
    angles = np.degrees(geometry.beam_angles[near])
    left = math.degrees(math.atan((INTR.cx - 100) / INTR.fx))
    right = math.degrees(math.atan((INTR.cx - 139) / INTR.fx))
    assert angles.min() > 0  # left of the optical axis = counter-clockwise
    assert angles.min() == pytest.approx(right, abs=0.3)
    assert angles.max() == pytest.approx(left, abs=0.3)
    far = np.delete(scan.ranges, near)
    assert np.all(far > 3.99)


def test_stride_merges_columns_and_keeps_the_nearest():
    depth = wall(3.0, 0.0)
    depth[:, 401] = 1.0  # one near column
    geometry = ScanGeometry(INTR, ScanOptions(stride=4))
    assert geometry.beams == 160
    scan = geometry.scan(depth)
    assert scan.ranges.shape == (160,)
    hit = np.argmin(scan.ranges)
    assert scan.ranges[hit] == pytest.approx(math.sqrt(1.0 + _rx()[401] ** 2), rel=1e-5)
    assert math.degrees(geometry.beam_angles[hit]) == pytest.approx(
        math.degrees(-math.atan(_rx()[401])), abs=math.degrees(geometry.angle_increment)
    )
    assert np.sum(scan.ranges < 2.0) == 1
    assert geometry.angle_increment == pytest.approx(
        (geometry.angle_max - geometry.angle_min) / 159
    )


def test_band_height_and_row():
    depth = wall(3.0, 0.0)
    centre = round(INTR.cy)
    depth[centre + 3, 300:310] = 1.0  # a low object, 3 rows under the optical centre row
    one_row = ScanGeometry(INTR, ScanOptions(height=1)).scan(depth)
    assert one_row.ranges.min() > 2.99
    band = ScanGeometry(INTR, ScanOptions(height=7)).scan(depth)
    assert band.ranges.min() < 1.1
    moved = ScanGeometry(INTR, ScanOptions(height=1, row=centre + 3)).scan(depth)
    assert moved.ranges.min() < 1.1
    assert ScanGeometry(INTR, ScanOptions(height=7)).rows == (centre - 3, centre + 4)
    # A band at the image's edge is clipped, not wrapped.
    assert ScanGeometry(INTR, ScanOptions(height=9, row=2)).rows == (0, 7)
    with pytest.raises(ValueError, match="outside the image"):
        ScanGeometry(INTR, ScanOptions(row=480))


def test_excluded_classes_do_not_stop_a_beam():
    depth = wall(3.0, 0.0)
    labels = np.zeros(depth.shape, np.uint8)  # 0 = wall
    centre = round(INTR.cy)
    # Floor (class 1) at 1.2 m in the lower rows of the band.
    depth[centre + 1 : centre + 3] = 1.2
    labels[centre + 1 : centre + 3] = 1
    geometry = ScanGeometry(INTR, ScanOptions(height=5))
    table = exclusion_table(exclusion_ids(["floor"], ("wall", "floor")))
    plain = geometry.scan(depth, labels).ranges.copy()
    assert plain.min() == pytest.approx(1.2, rel=1e-4)
    excluded = geometry.scan(depth, labels, table).ranges
    assert excluded.min() == pytest.approx(3.0, rel=1e-4)
    with pytest.raises(ValueError, match="labels"):
        geometry.scan(depth, None, table)


def test_rep117_nan_and_infinities():
    depth = wall(3.0, 0.0)
    labels = np.zeros(depth.shape, np.uint8)
    depth[:, 0:50] = np.nan  # no estimate
    depth[:, 100:150] = 30.0  # beyond range_max
    depth[:, 200:250] = 0.05  # closer than range_min
    labels[:, 300:350] = 1  # only excluded pixels
    geometry = ScanGeometry(INTR, ScanOptions(height=3, range_min=0.2, range_max=10.0))
    scan = geometry.scan(depth, labels, exclusion_table([1]))
    ranges = scan.ranges
    angles = geometry.beam_angles

    def beams(first: int, stop: int) -> np.ndarray:
        # Beams whose angle lies well inside the columns' angular span.
        lo, hi = (
            -math.atan((stop - 2 - INTR.cx) / INTR.fx),
            -math.atan((first + 1 - INTR.cx) / INTR.fx),
        )
        return ranges[(angles > lo) & (angles < hi)]

    assert np.all(np.isnan(beams(0, 50)))
    assert np.all(np.isposinf(beams(100, 150)))
    assert np.all(np.isneginf(beams(200, 250)))
    assert np.all(np.isnan(beams(300, 350)))
    finite = ranges[np.isfinite(ranges)]
    assert np.all((finite >= scan.range_min) & (finite <= scan.range_max))
    assert scan.range_min == 0.2 and scan.range_max == 10.0


def test_every_beam_holds_a_column_even_where_the_lens_spreads_them():
    # At stride 1 the centre columns are wider apart in angle than the mean increment:
    # no beam may be left without a column (a NaN hole in a fully valid scan).
    geometry = ScanGeometry(INTR, ScanOptions())
    assert np.all(np.isfinite(geometry.scan(wall(2.0, 0.0)).ranges))


def test_options_are_checked():
    with pytest.raises(ValueError, match="scan_range_min"):
        ScanOptions(range_min=5.0, range_max=5.0)
    with pytest.raises(ValueError, match=">= 1"):
        ScanOptions(stride=0)
    with pytest.raises(ValueError, match="is for"):
        ScanGeometry(INTR, ScanOptions()).scan(np.ones((10, 10), np.float32))


def test_class_names_resolve_and_unknown_ones_list_the_valid():
    classes = ("wall", "floor", "ceiling")
    assert exclusion_ids(["ceiling", "floor"], classes) == (1, 2)
    assert exclusion_ids([], classes) == ()
    with pytest.raises(ValueError, match=r"unknown classes \['flor'\].*wall, floor, ceiling"):
        exclusion_ids(["flor"], classes)
    with pytest.raises(ValueError, match="no segmentation classes"):
        exclusion_ids(["floor"], ())


def test_mask_excluded_sets_only_those_classes_nan():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    labels = np.array([[0, 1, 2, 255]] * 3, np.uint8)
    out = mask_excluded(depth, labels, exclusion_table([1, 2]))
    assert np.isnan(out[:, 1:3]).all()
    np.testing.assert_array_equal(out[:, [0, 3]], depth[:, [0, 3]])
    assert not np.isnan(depth).any()  # input untouched
