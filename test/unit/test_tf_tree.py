"""The transform-chain reader that stands in for tf2 (training.data.tf_tree)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.data.tf_tree import (
    TransformError,
    TransformTree,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_angle,
    slerp,
)


def yaw_quaternion(angle: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2))


def test_quaternion_matrix_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        rot = quaternion_to_matrix(q)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(matrix_to_quaternion(rot), q, atol=1e-9)


def test_quaternion_rotates_like_ros() -> None:
    # A 90 deg yaw turns the x axis into y (right-handed, z up).
    rot = quaternion_to_matrix(yaw_quaternion(math.pi / 2))
    np.testing.assert_allclose(rot @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="no rotation"):
        quaternion_to_matrix((0, 0, 0, 0))


def test_slerp_is_constant_speed_and_takes_the_short_arc() -> None:
    q0, q1 = np.array(yaw_quaternion(0.0)), np.array(yaw_quaternion(1.0))
    for t in (0.0, 0.25, 0.5, 1.0):
        angle = rotation_angle(quaternion_to_matrix(slerp(q0, q1, t)))
        assert angle == pytest.approx(t * 1.0, abs=1e-9)
    # -q1 is the same rotation: the interpolation must not go the long way round.
    mid = slerp(q0, -q1, 0.5)
    assert rotation_angle(quaternion_to_matrix(mid)) == pytest.approx(0.5, abs=1e-9)


def test_lookup_composes_static_and_interpolated_dynamic_edges() -> None:
    tree = TransformTree(tolerance_ns=0)
    tree.add("odom", "base_link", 0, (0, 0, 0), yaw_quaternion(0.0))
    tree.add("odom", "base_link", 1_000, (2.0, 0, 0), yaw_quaternion(math.pi / 2))
    tree.add("base_link", "camera", 0, (0.5, 0, 1.0), (0, 0, 0, 1), static=True)
    t = tree.lookup("odom", "camera", 500)
    # Halfway: base at x = 1 turned 45 deg; the camera 0.5 m ahead of the base along its x.
    c = math.cos(math.pi / 4)
    np.testing.assert_allclose(t[:3, 3], [1.0 + 0.5 * c, 0.5 * c, 1.0], atol=1e-12)
    assert rotation_angle(t) == pytest.approx(math.pi / 4)
    # The other direction is the inverse; a leading slash names the same frame (tf2 rule).
    np.testing.assert_allclose(tree.lookup("/camera", "odom", 500), invert_transform(t))
    np.testing.assert_allclose(tree.lookup("odom", "odom", 500), np.eye(4))


def test_lookup_walks_through_a_common_parent() -> None:
    tree = TransformTree()
    tree.add("base", "left", 0, (0, 1, 0), (0, 0, 0, 1), static=True)
    tree.add("base", "right", 0, (0, -1, 0), yaw_quaternion(math.pi), static=True)
    t = tree.lookup("left", "right", 0)
    # A point at the right frame's origin is 2 m to the left frame's -y.
    np.testing.assert_allclose(t @ [0, 0, 0, 1], [0, -2, 0, 1], atol=1e-12)
    expected = invert_transform(make_transform((0, 1, 0), (0, 0, 0, 1))) @ make_transform(
        (0, -1, 0), yaw_quaternion(math.pi)
    )
    np.testing.assert_allclose(t, expected, atol=1e-12)


def test_samples_out_of_order_are_sorted() -> None:
    tree = TransformTree(tolerance_ns=0)
    tree.add("odom", "base", 200, (2, 0, 0), (0, 0, 0, 1))
    tree.add("odom", "base", 0, (0, 0, 0), (0, 0, 0, 1))
    assert tree.lookup("odom", "base", 50)[0, 3] == pytest.approx(0.5)


def test_errors_name_the_problem() -> None:
    tree = TransformTree(tolerance_ns=10)
    tree.add("odom", "base", 100, (0, 0, 0), (0, 0, 0, 1))
    tree.add("odom", "base", 200, (1, 0, 0), (0, 0, 0, 1))
    tree.add("map", "other", 0, (0, 0, 0), (0, 0, 0, 1), static=True)
    with pytest.raises(TransformError, match="not in the TF tree"):
        tree.lookup("odom", "camera", 150)
    with pytest.raises(TransformError, match="unconnected"):
        tree.lookup("odom", "other", 150)
    with pytest.raises(TransformError, match="extrapolation"):
        tree.lookup("odom", "base", 300)
    # Within the tolerance the end sample is used.
    assert tree.lookup("odom", "base", 205)[0, 3] == pytest.approx(1.0)
    assert tree.time_range("odom", "base") == (100, 200)
    assert not tree.can_transform("odom", "other")
    with pytest.raises(ValueError, match="two parents"):
        tree.add("map", "base", 0, (0, 0, 0), (0, 0, 0, 1))
    with pytest.raises(ValueError, match="zero quaternion"):
        tree.add("odom", "base", 300, (0, 0, 0), (0, 0, 0, 0))
