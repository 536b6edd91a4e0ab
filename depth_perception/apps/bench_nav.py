"""Per-frame cost of the navigation outputs (obstacle cloud, scan, 16UC1 depth) in the core.

    python -m depth_perception.apps.bench_nav [--width 640 --height 480 --frames 150]

Each case composes one output from the same synthetic prediction (lower half floor, 5 % NaN,
two classes excluded) with :class:`FrameComposer`, then builds its rclpy message, as the node
does. Every case has its own composer, so its cached builders and buffers stay warm as in a
node whose settings do not change; the cases are interleaved frame by frame so that machine
load hits them alike. Prints medians in milliseconds, and the cost of the two
``get_subscription_count`` calls that are all a frame pays for outputs nobody subscribes to.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.frame_pipeline import (
    FrameComposer,
    OutputDemand,
    PreparedFrame,
    resolve_intrinsics,
)
from depth_perception.predictor import Prediction

CLASSES = tuple(f"class{i}" for i in range(14))


def cases() -> dict[str, tuple[PerceptionConfig, frozenset[str]]]:
    """Case name -> (settings, wanted outputs)."""
    base = PerceptionConfig(obstacle_exclude_classes=("class1", "class11"))
    xyz = base.replace(points_color=False)
    return {
        "points (reference)": (base, frozenset({"points"})),
        "obstacles": (base, frozenset({"obstacles"})),
        "points + obstacles": (base, frozenset({"points", "obstacles"})),
        "points, xyz only": (xyz, frozenset({"points"})),
        "obstacles, xyz only": (xyz, frozenset({"obstacles"})),
        "scan (height 1)": (base, frozenset({"scan"})),
        "scan (height 9, stride 2)": (
            base.replace(scan_height=9, scan_stride=2),
            frozenset({"scan"}),
        ),
        "scan, no exclusion": (base.replace(obstacle_exclude_classes=()), frozenset({"scan"})),
        "depth 32FC1": (base, frozenset({"depth"})),
        "depth 16UC1": (base.replace(depth_encoding="16UC1"), frozenset({"depth"})),
    }


def bench_nav_outputs(
    width: int = 640, height: int = 480, frames: int = 150, warmup: int = 10
) -> dict[str, tuple[float, float]]:
    """Median (compose ms, message ms) per case; see the module's docstring."""
    import rclpy
    from std_msgs.msg import Header

    from depth_perception.nodes.conversions import output_messages

    rng = np.random.default_rng(0)
    intrinsics = CameraIntrinsics.from_hfov(width, height, 70.0)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    depth = (1.0 + 4.0 * (1 - rows) + rng.normal(0, 0.05, (height, width))).astype(np.float32)
    depth[rng.random((height, width)) < 0.05] = np.nan
    labels = rng.integers(0, len(CLASSES), (height, width), dtype=np.uint8)
    labels[height // 2 :] = 1
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    prediction = Prediction(depth, labels, intrinsics, {})
    frame = PreparedFrame("", rgb, resolve_intrinsics(None, width, height, 70.0))
    table = cases()
    palette = np.zeros((256, 3), np.uint8)
    composers = {name: FrameComposer(palette, CLASSES) for name in table}
    compose_ms: dict[str, list[float]] = {name: [] for name in table}
    message_ms: dict[str, list[float]] = {name: [] for name in table}
    header = Header(frame_id="camera_optical_frame")
    for index in range(frames + warmup):
        for name, (config, wanted) in table.items():
            start = time.perf_counter()
            outputs = composers[name].compose(frame, prediction, config, OutputDemand(wanted))
            middle = time.perf_counter()
            output_messages(outputs, header, "camera_link")
            end = time.perf_counter()
            if index >= warmup:
                compose_ms[name].append((middle - start) * 1e3)
                message_ms[name].append((end - middle) * 1e3)
    results = {
        name: (statistics.median(compose_ms[name]), statistics.median(message_ms[name]))
        for name in table
    }
    for name, (compose, message) in results.items():
        print(f"{name:<28} compose {compose:7.3f} ms   message {message:7.3f} ms")
    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    try:
        from sensor_msgs.msg import LaserScan, PointCloud2

        node = rclpy.create_node("bench_nav")
        publishers = [
            node.create_publisher(PointCloud2, "obstacles/points", 2),
            node.create_publisher(LaserScan, "scan", 2),
        ]
        calls = 2000
        start = time.perf_counter()
        for _ in range(calls):
            for publisher in publishers:
                publisher.get_subscription_count()
        idle = (time.perf_counter() - start) / calls * 1e3
        results["idle: 2 subscriber counts"] = (idle, 0.0)
        print(f"idle (nobody subscribes): 2 get_subscription_count calls {idle:.4f} ms per frame")
        node.destroy_node()
    finally:
        if owned:
            rclpy.try_shutdown()
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m depth_perception.apps.bench_nav``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args(argv)
    bench_nav_outputs(args.width, args.height, args.frames)


if __name__ == "__main__":
    main()
