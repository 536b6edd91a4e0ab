"""Reliability under overload: images at four times mono_depth's capacity for a while.

Checks that latency stays bounded (the newest-frame slot drops old frames instead of queueing
them), that every received frame is either processed or counted as dropped, and that memory
stays flat. The duration is ``DEPTH_PERCEPTION_OVERLOAD_S`` (default 60 s, the CI setting).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import ros_session, start_mono_depth, test_image, vm_rss_kib
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_perception.apps.processes import stop_processes
from depth_perception.apps.spinning import BackgroundSpinner
from depth_perception.camera import CameraIntrinsics
from depth_perception.nodes.conversions import array_to_image_msg, camera_info_msg

pytestmark = pytest.mark.integration

DURATION_S = float(os.environ.get("DEPTH_PERCEPTION_OVERLOAD_S", "60"))
OVERLOAD_FACTOR = 4.0
WIDTH, HEIGHT = 640, 480
NAMESPACE = "/rel_overload"
RSS_GROWTH_BOUND_MIB = 24.0


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


class LeanProbe:
    """Publishes images and records, per depth image, how far it is behind the newest input.

    Lighter than RosHarness (no monitor keeping every image), so the probe itself does not
    become the bottleneck or the memory hog.
    """

    def __init__(self) -> None:
        self.node = rclpy.create_node("overload_probe", namespace=NAMESPACE)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.lock = threading.Lock()
        self.newest_stamp_ns = 0
        self.published = 0
        self.lags_s: list[float] = []
        self.receipts: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(Image, "depth/image", self._on_depth, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        intrinsics = CameraIntrinsics.from_hfov(WIDTH, HEIGHT, 70.0)
        self.images = [
            array_to_image_msg(test_image(seed, WIDTH, HEIGHT), Header(), "rgb8")
            for seed in range(4)
        ]
        self.info = camera_info_msg(intrinsics, Header())
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinner = BackgroundSpinner(self.executor)

    def _on_depth(self, msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.lags_s.append((self.newest_stamp_ns - stamp) * 1e-9)
            self.receipts.append(time.monotonic())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "mono_depth" in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def publish(self) -> None:
        now = time.time_ns()
        stamp = Time(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)
        image = self.images[self.published % len(self.images)]
        image.header = Header(stamp=stamp, frame_id="cam")
        self.info.header = image.header
        with self.lock:
            self.newest_stamp_ns = now
            self.published += 1
        self.info_pub.publish(self.info)
        self.image_pub.publish(image)

    def run(self, rate_hz: float, duration_s: float) -> None:
        period = 1.0 / rate_hz
        next_time = time.monotonic()
        end = next_time + duration_s
        while next_time < end:
            self.publish()
            next_time += period
            time.sleep(max(0.0, next_time - time.monotonic()))

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


class RssSampler:
    """Samples a process's resident memory every ``period_s`` in a thread, from start to stop."""

    def __init__(self, pid: int, period_s: float) -> None:
        self._pid = pid
        self.samples_kib = [vm_rss_kib(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)
        self._thread.start()

    def _run(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            self.samples_kib.append(vm_rss_kib(self._pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples_kib.append(vm_rss_kib(self._pid))


def test_overload_keeps_latency_bounded_counts_drops_and_holds_memory(ros, tmp_path):
    # 512x384 (4x the bundled input's pixels): a fast machine runs 256x192 at ~200 fps, which
    # the probe's 400 Hz ceiling cannot overload by OVERLOAD_FACTOR.
    process = start_mono_depth(
        ros, NAMESPACE, tmp_path, input_width=512, input_height=384, diagnostics_period_s=1.0
    )
    probe = LeanProbe()
    try:
        probe.wait(lambda: probe.image_pub.get_subscription_count() > 0, 120, "subscription")
        # Calibration at a gentle rate: the node's processing time per frame.
        probe.wait(lambda: probe.lags_s or probe.run(5.0, 0.5), 60, "first depth image")
        probe.run(5.0, 3.0)
        probe.wait(lambda: "stage_total_ms" in probe.diagnostics, 10, "diagnostics")
        probe.run(5.0, 1.5)
        processing_s = float(probe.diagnostics["stage_total_ms"]) * 1e-3
        rate_hz = min(OVERLOAD_FACTOR / processing_s, 400.0)

        warm_up = min(5.0, DURATION_S / 4)
        with probe.lock:
            probe.receipts.clear()
        probe.run(rate_hz, warm_up)
        # A warm node under load cycles faster than its calibration at a gentle rate said
        # (caches, clocks; the worker takes its own input): re-aim at its real output rate.
        with probe.lock:
            output_hz = len(probe.receipts) / warm_up
        rate_hz = min(max(rate_hz, OVERLOAD_FACTOR * output_hz), 400.0)
        with probe.lock:
            probe.lags_s.clear()
            probe.receipts.clear()
        published_before = probe.published
        sampler = RssSampler(process.pid, period_s=1.0)
        start = time.monotonic()
        try:
            probe.run(rate_hz, DURATION_S - warm_up)
        finally:
            sampler.stop()
        elapsed = time.monotonic() - start
        rss = sampler.samples_kib
        published = probe.published - published_before
        time.sleep(2.5)  # the last frame finishes and a diagnostics period covers it
        diagnostics = dict(probe.diagnostics)
        with probe.lock:
            lags = np.array(probe.lags_s)
        input_rate = published / elapsed
        output_rate = len(lags) / elapsed
        frame_period = 1.0 / output_rate  # the node's real cycle under this load
        received = int(diagnostics["frames_received"])
        processed = int(diagnostics["frames_processed"])
        dropped = int(diagnostics["dropped_frames"])
        errors = sum(int(v) for k, v in diagnostics.items() if k.startswith("errors_bad_image"))
        print(
            f"\noverload {elapsed:.0f} s: processing {processing_s * 1e3:.1f} ms/frame, input "
            f"{input_rate:.1f} Hz ({input_rate / output_rate:.1f}x the output {output_rate:.1f} "
            f"Hz); lag behind newest input p50 {np.median(lags) * 1e3:.0f} ms, p99 "
            f"{np.percentile(lags, 99) * 1e3:.0f} ms, max {lags.max() * 1e3:.0f} ms, frame period "
            f"{frame_period * 1e3:.0f} ms; node received {received}, processed {processed}, "
            f"dropped {dropped}; RSS {rss[0]} -> {rss[-1]} KiB ({rss[-1] / rss[0] - 1:+.1%}); "
            f"RSS MiB every second: {[round(kib / 1024) for kib in rss]}"
        )
        assert input_rate > 3.0 * output_rate, "the node was not overloaded"
        # Bounded: nearly every output is within two of the node's frame periods of the newest
        # input, plus the scheduling jitter of a loaded shared machine, which does not shrink
        # with the period (a depth-only node now cycles in ~20 ms; a queue would instead fall
        # further behind for the whole run: seconds, not tens of ms).
        assert np.percentile(lags, 99) <= 2.0 * frame_period + 0.15
        assert np.median(lags[-len(lags) // 4 :]) <= 2.0 * frame_period
        # Nothing lost silently: every received frame was processed or counted as dropped.
        assert dropped > 0
        assert received == processed + dropped + errors
        # Memory: what a leak here would keep is frames (a 640x480 image is 900 KiB): keeping
        # one in a hundred of the ~5,000 processed in 60 s adds > 40 MiB. Allocator arenas and
        # DDS pools grow in steps of a few MiB at any time (measured: 194 -> 196 -> 201 MiB in
        # one 55 s run, +3.8 %; +5.9 % in another), so the bound is absolute, not a ratio.
        growth_mib = (rss[-1] - rss[0]) / 1024
        assert growth_mib < RSS_GROWTH_BOUND_MIB, f"RSS grew {growth_mib:.0f} MiB"
        assert process.poll() is None
    finally:
        probe.close()
        codes = stop_processes([process])
    assert codes == [0], (tmp_path / "mono_depth_rel_overload.log").read_text()
