"""Tests of the organized point-cloud builder (geometry, invalid pixels, byte layout)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from depth_perception.pointcloud import (
    FLOAT32,
    UINT32,
    CloudData,
    OrganizedCloudBuilder,
    PointFieldSpec,
    depth_to_points,
    fields_dtype,
    pack_rgb,
    unpack_rgb,
)

# Non-centred principal point and non-square pixels so that swapped fx/fy or cx/cy fail.
INTR = CameraIntrinsics(fx=50.0, fy=80.0, cx=2.5, cy=1.0, width=6, height=4)


def _depth() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0.5, 10.0, (INTR.height, INTR.width)).astype(np.float32)


def _parse(cloud: CloudData) -> np.ndarray:
    """Read the cloud back from its bytes the way a subscriber would."""
    dtype = fields_dtype(cloud.fields, cloud.point_step, cloud.is_bigendian)
    raw = cloud.tobytes()
    assert len(raw) == cloud.row_step * cloud.height
    return np.frombuffer(raw, dtype=dtype).reshape(cloud.height, cloud.width)


def test_pointfield_constants_match_sensor_msgs() -> None:
    from depth_perception import pointcloud as pc

    expected = {
        "INT8": 1,
        "UINT8": 2,
        "INT16": 3,
        "UINT16": 4,
        "INT32": 5,
        "UINT32": 6,
        "FLOAT32": 7,
        "FLOAT64": 8,
    }
    assert {k: getattr(pc, k) for k in expected} == expected
    with pytest.raises(ValueError):
        PointFieldSpec("x", 0, 9)


def test_xyz_follows_pinhole_model() -> None:
    depth = _depth()
    cloud = OrganizedCloudBuilder(INTR).build(depth)
    pts = _parse(cloud)
    assert (cloud.height, cloud.width) == (4, 6)
    assert cloud.is_dense is False
    v, u = np.mgrid[0:4, 0:6].astype(np.float64)
    z = depth.astype(np.float64)
    np.testing.assert_array_equal(pts["z"], depth)
    np.testing.assert_allclose(pts["x"], (u - 2.5) * z / 50.0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pts["y"], (v - 1.0) * z / 80.0, rtol=1e-6, atol=1e-7)
    # A hand-computed point: pixel (u=5, v=3) at 2 m -> x = 2.5*2/50 = 0.1, y = 2*2/80 = 0.05.
    depth[3, 5] = 2.0
    pts = _parse(OrganizedCloudBuilder(INTR).build(depth))
    np.testing.assert_allclose([pts["x"][3, 5], pts["y"][3, 5], pts["z"][3, 5]], [0.1, 0.05, 2.0])
    # cx = 2.5 lies between columns 2 and 3: x changes sign there.
    assert pts["x"][3, 2] < 0 < pts["x"][3, 3]


def test_depth_to_points_matches_builder() -> None:
    depth = _depth().astype(np.float64)
    depth[0, 0] = np.nan
    pts = depth_to_points(depth, INTR)
    assert pts.shape == (4, 6, 3) and pts.dtype == np.float32
    cloud = _parse(OrganizedCloudBuilder(INTR).build(depth))
    for i, name in enumerate("xyz"):
        np.testing.assert_allclose(pts[..., i], cloud[name], rtol=1e-6, atol=1e-7)
    assert np.isnan(pts[0, 0]).all()


@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.5, np.inf, -np.inf, -0.0])
def test_invalid_depth_gives_nan_point(bad: float) -> None:
    depth = _depth()
    depth[1, 2] = bad
    for dtype in (np.float32, np.float64):
        pts = _parse(OrganizedCloudBuilder(INTR).build(depth.astype(dtype)))
        assert np.isnan(pts["x"][1, 2]) and np.isnan(pts["y"][1, 2]) and np.isnan(pts["z"][1, 2])
        # Every other pixel is still a finite point.
        finite = np.isfinite(pts["z"])
        assert finite.sum() == depth.size - 1
        pts3 = depth_to_points(depth.astype(dtype), INTR)
        assert np.isnan(pts3[1, 2]).all() and np.isfinite(pts3).sum() == 3 * (depth.size - 1)


def test_uint16_millimetres_rep118() -> None:
    depth_mm = np.full((4, 6), 1500, dtype=np.uint16)
    depth_mm[2, 3] = 0  # 0 = invalid in the 16UC1 encoding
    pts = _parse(OrganizedCloudBuilder(INTR).build(depth_mm))
    assert np.isnan(pts["z"][2, 3])
    np.testing.assert_allclose(pts["z"][0, 0], 1.5)
    np.testing.assert_allclose(pts["x"][0, 0], (0 - 2.5) * 1.5 / 50.0, rtol=1e-6)


def test_rgb_packing_round_trips() -> None:
    depth = _depth()
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    rgb[0, 0] = (0x12, 0x34, 0x56)
    builder = OrganizedCloudBuilder(INTR, with_rgb=True)
    cloud = builder.build(depth, rgb=rgb)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    assert cloud.point_step == 16
    pts = _parse(cloud)
    assert pts["rgb"].dtype == np.float32
    # Unpack by hand: float32 bits -> uint32 0x00RRGGBB.
    bits = np.ascontiguousarray(pts["rgb"]).view(np.uint32)
    assert bits[0, 0] == 0x00123456
    np.testing.assert_array_equal((bits >> 16) & 0xFF, rgb[..., 0])
    np.testing.assert_array_equal((bits >> 8) & 0xFF, rgb[..., 1])
    np.testing.assert_array_equal(bits & 0xFF, rgb[..., 2])
    np.testing.assert_array_equal(bits >> 24, 0)
    np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), rgb)
    np.testing.assert_array_equal(pack_rgb(rgb).view(np.uint32), bits)
    # bgr8 input gives the same packed colours.
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cloud_bgr = OrganizedCloudBuilder(INTR, with_rgb=True, color_order="bgr").build(depth, rgb=bgr)
    np.testing.assert_array_equal(cloud_bgr.tobytes(), cloud.tobytes())


def test_label_field_and_layout_with_rgb() -> None:
    depth = _depth()
    depth[3, 0] = np.nan
    rgb = np.full((4, 6, 3), 200, dtype=np.uint8)
    labels = np.arange(24, dtype=np.uint8).reshape(4, 6)
    labels[3, 0] = 255
    cloud = OrganizedCloudBuilder(INTR, with_rgb=True, with_label=True).build(
        depth, rgb=rgb, labels=labels
    )
    assert cloud.fields == [
        PointFieldSpec("x", 0, FLOAT32),
        PointFieldSpec("y", 4, FLOAT32),
        PointFieldSpec("z", 8, FLOAT32),
        PointFieldSpec("rgb", 12, FLOAT32),
        PointFieldSpec("label", 16, UINT32),
    ]
    assert cloud.point_step == 20 and cloud.row_step == 6 * 20
    assert cloud.data.shape == (4, 6, 20) and cloud.data.flags.c_contiguous
    pts = _parse(cloud)
    np.testing.assert_array_equal(pts["label"], labels)
    # An invalid pixel keeps its slot, its label and colour.
    assert np.isnan(pts["z"][3, 0]) and pts["label"][3, 0] == 255
    np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), rgb)
    # Padding bytes 17..19 and the rgb byte 15 (0x00 of 0x00RRGGBB, little-endian) are zero.
    if not cloud.is_bigendian:
        np.testing.assert_array_equal(cloud.data[..., 15], 0)
    np.testing.assert_array_equal(cloud.data[..., 17:], 0)


def test_label_only_and_xyz_only_layouts() -> None:
    depth = _depth()
    labels = np.full((4, 6), 7, dtype=np.uint8)
    cloud = OrganizedCloudBuilder(INTR, with_label=True).build(depth, labels=labels)
    assert [(f.name, f.offset) for f in cloud.fields][-1] == ("label", 12)
    assert cloud.point_step == 16
    np.testing.assert_array_equal(_parse(cloud)["label"], 7)
    xyz = OrganizedCloudBuilder(INTR).build(depth)
    assert [f.name for f in xyz.fields] == ["x", "y", "z"] and xyz.point_step == 16
    np.testing.assert_array_equal(xyz.data[..., 12:], 0)
    # The structured view agrees with the parsed bytes.
    np.testing.assert_array_equal(xyz.points["z"], _parse(xyz)["z"])


def test_stride_keeps_points_on_their_rays() -> None:
    intr = CameraIntrinsics(fx=50.0, fy=80.0, cx=2.5, cy=1.0, width=7, height=5)
    rng = np.random.default_rng(3)
    depth = rng.uniform(1.0, 5.0, (5, 7)).astype(np.float32)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (5, 7), dtype=np.uint8)
    builder = OrganizedCloudBuilder(intr, stride=2, with_rgb=True, with_label=True)
    cloud = builder.build(depth, rgb=rgb, labels=labels)
    # ceil(5/2) x ceil(7/2) = 3 x 4, from pixels v = 0,2,4 and u = 0,2,4,6.
    assert (cloud.height, cloud.width) == (3, 4)
    pts = _parse(cloud)
    v, u = np.mgrid[0:5:2, 0:7:2].astype(np.float64)
    z = depth[::2, ::2].astype(np.float64)
    np.testing.assert_array_equal(pts["z"], depth[::2, ::2])
    np.testing.assert_allclose(pts["x"], (u - 2.5) * z / 50.0, rtol=1e-6)
    np.testing.assert_allclose(pts["y"], (v - 1.0) * z / 80.0, rtol=1e-6)
    np.testing.assert_array_equal(pts["label"], labels[::2, ::2])
    np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), rgb[::2, ::2])
    # Hand check: pixel (u=6, v=4) -> cloud (row 2, col 3): x = 3.5 z / 50, y = 3 z / 80.
    zz = float(depth[4, 6])
    np.testing.assert_allclose(
        [pts["x"][2, 3], pts["y"][2, 3]], [3.5 * zz / 50.0, 3.0 * zz / 80.0], rtol=1e-6
    )


def test_buffer_reuse_and_fresh_buffers() -> None:
    depth = _depth()
    builder = OrganizedCloudBuilder(INTR)
    first = builder.build(depth).tobytes()
    second = builder.build(depth * 2)
    assert second.tobytes() != first
    # Rebuilding the same frame gives identical bytes (no stale values, deterministic padding).
    assert builder.build(depth).tobytes() == first
    fresh = OrganizedCloudBuilder(INTR, reuse_buffer=False)
    a = fresh.build(depth)
    b = fresh.build(depth * 2)
    assert a.data is not b.data and a.tobytes() == first


def test_mismatched_inputs_raise() -> None:
    depth = _depth()
    builder = OrganizedCloudBuilder(INTR, with_rgb=True, with_label=True)
    rgb = np.zeros((4, 6, 3), np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    with pytest.raises(ValueError, match="intrinsics"):
        builder.build(np.ones((5, 6), np.float32), rgb=rgb, labels=labels)
    with pytest.raises(ValueError):
        builder.build(depth, rgb=np.zeros((4, 5, 3), np.uint8), labels=labels)
    with pytest.raises(ValueError):
        builder.build(depth, rgb=rgb.astype(np.float32), labels=labels)
    with pytest.raises(ValueError):
        builder.build(depth, rgb=rgb, labels=np.zeros((4, 7), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        builder.build(depth, rgb=rgb, labels=labels.astype(np.int64))
    with pytest.raises(ValueError, match="rgb"):
        builder.build(depth, labels=labels)
    with pytest.raises(ValueError):
        OrganizedCloudBuilder(INTR).build(depth, rgb=rgb)
    with pytest.raises(ValueError):
        OrganizedCloudBuilder(INTR).build(depth[None])
    with pytest.raises(ValueError):
        OrganizedCloudBuilder(INTR).build(depth.astype(np.int32))
    with pytest.raises(ValueError):
        OrganizedCloudBuilder(INTR, stride=0)
    with pytest.raises(ValueError):
        depth_to_points(np.ones((6, 4), np.float32), INTR)


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_row_blocks_and_validated_depth_match_the_reference(stride: int, order: str) -> None:
    # 150 rows: more than one block of rows, and a last block that is not full.
    intr = CameraIntrinsics(fx=120.0, fy=110.0, cx=61.5, cy=70.0, width=131, height=150)
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.2, 30.0, (150, 131)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = np.nan
    depth[0, 0], depth[149, 130], depth[70, 3] = np.inf, -2.0, 0.0
    rgb = rng.integers(0, 256, (150, 131, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, (150, 131), dtype=np.uint8)
    builder = OrganizedCloudBuilder(
        intr, stride=stride, with_rgb=True, with_label=True, color_order=order
    )
    reference = depth_to_points(depth, intr)[::stride, ::stride]
    clean = np.where(np.isfinite(reference[..., 2]), depth[::stride, ::stride], np.nan)
    expected_rgb = (rgb if order == "rgb" else rgb[..., ::-1])[::stride, ::stride]
    built = {}
    for name, kwargs in {
        "float32": {"depth": depth},
        "float64": {"depth": depth.astype(np.float64)},
        "validated": {
            "depth": np.ascontiguousarray(
                np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
            ),
            "validated": True,
        },
    }.items():
        cloud = builder.build(rgb=rgb, labels=labels, **kwargs)
        pts = _parse(cloud)
        np.testing.assert_array_equal(np.isnan(pts["z"]), np.isnan(clean), err_msg=name)
        for i, axis in enumerate("xyz"):
            np.testing.assert_allclose(pts[axis], reference[..., i], rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), expected_rgb, err_msg=name)
        np.testing.assert_array_equal(pts["label"], labels[::stride, ::stride], err_msg=name)
        built[name] = pts.copy()
    # NaN bit patterns may differ (sqrt(-1) is a negative NaN): compare the values.
    for axis in ("x", "y", "z", "rgb", "label"):
        np.testing.assert_array_equal(built["float32"][axis], built["validated"][axis])
    millimetres = np.round(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0) * 1e3)
    millimetres = np.clip(millimetres, 0, 65535).astype(np.uint16)
    pts = _parse(builder.build(millimetres, rgb=rgb, labels=labels))
    expected_z = millimetres[::stride, ::stride] * np.float32(1e-3)
    expected_z[millimetres[::stride, ::stride] == 0] = np.nan
    np.testing.assert_allclose(pts["z"], expected_z, rtol=1e-6)
    with pytest.raises(ValueError, match="validated"):
        builder.build(millimetres, rgb=rgb, labels=labels, validated=True)


def test_cloud_payload_is_the_reused_buffer() -> None:
    from depth_perception.buffers import backing_payload

    builder = OrganizedCloudBuilder(INTR, with_rgb=True, with_label=True)
    rgb = np.zeros((4, 6, 3), np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    first = builder.build(_depth(), rgb=rgb, labels=labels)
    assert first.payload is not None and len(first.payload) == first.row_step * first.height
    assert backing_payload(first.data) is first.payload
    assert bytes(first.payload) == first.tobytes()
    second = builder.build(_depth() * 2, rgb=rgb, labels=labels)
    assert second.payload is first.payload  # same memory every frame: no page faults
    fresh = OrganizedCloudBuilder(INTR, reuse_buffer=False)
    assert fresh.build(_depth()).payload is not fresh.build(_depth()).payload
