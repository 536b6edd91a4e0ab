"""The demo: a synthetic camera and mono_depth in separate processes over real DDS.

Prints per-topic rates, end-to-end latency and accuracy against the synthetic ground truth
(AbsRel, delta1, mIoU), and writes a preview PNG (input | predicted depth | ground-truth depth |
segmentation overlay).
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_perception.apps.processes import (
    apply_ros_environment,
    ros_environment,
    start_node,
    stop_processes,
)

OUTPUT_TOPICS = (
    "depth/image",
    "depth/camera_info",
    "points",
    "segmentation/mask",
    "segmentation/color",
)


@dataclass
class MonitorResults:
    """What the monitor saw, per topic and per matched frame."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_time: dict[str, float] = field(default_factory=dict)
    last_time: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    depth_metrics: list[dict[str, float]] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)
    # Every key any diagnostics message carried (stage timings only appear in busy periods).
    diagnostic_keys: set[str] = field(default_factory=set)

    def rate(self, topic: str) -> float:
        count = self.counts.get(topic, 0)
        if count < 2:
            return 0.0
        return (count - 1) / max(self.last_time[topic] - self.first_time[topic], 1e-9)


class TopicMonitor:
    """An rclpy node that subscribes to the inputs, outputs and ground truth and scores them."""

    def __init__(self, node, num_classes_hint: int = 256, keep_messages: bool = False) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from depth_perception.metrics import ConfusionMatrix

        self.node = node
        self.results = MonitorResults()
        self.keep_messages = keep_messages
        self.last: dict[str, object] = {}
        self.by_stamp: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()
        self._ground_truth: dict[int, dict[str, object]] = {}
        self._predictions: dict[int, dict[str, object]] = {}
        self.confusion: ConfusionMatrix | None = None
        self._confusion_cls = ConfusionMatrix
        self.preview: dict[str, np.ndarray] = {}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        types = {
            "depth/image": Image,
            "depth/camera_info": CameraInfo,
            "points": PointCloud2,
            "segmentation/mask": Image,
            "segmentation/color": Image,
            "image": Image,
            "camera_info": CameraInfo,
            "ground_truth/depth": Image,
            "ground_truth/mask": Image,
        }
        self._subs = [
            node.create_subscription(message_type, topic, self._callback(topic), qos)
            for topic, message_type in types.items()
        ]
        self._subs.append(
            node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        )

    def reset(self) -> None:
        """Forget everything seen so far (start-up frames are not measured)."""
        with self._lock:
            diagnostics = self.results.diagnostics
            self.results = MonitorResults(diagnostics=diagnostics)
            self.confusion = None

    def _callback(self, topic: str):
        def receive(msg) -> None:
            now = time.time()
            results = self.results
            with self._lock:
                results.counts[topic] += 1
                results.first_time.setdefault(topic, now)
                results.last_time[topic] = now
                self.last[topic] = msg
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                if self.keep_messages:
                    self.by_stamp[(topic, stamp)] = msg
                if topic == "depth/image":
                    results.latencies_ms.append((now - stamp * 1e-9) * 1e3)
                if topic in ("ground_truth/depth", "ground_truth/mask", "image"):
                    self._ground_truth.setdefault(stamp, {})[topic] = msg
                    self._trim(self._ground_truth)
                if topic in ("depth/image", "segmentation/mask", "segmentation/color"):
                    self._predictions.setdefault(stamp, {})[topic] = msg
                    self._trim(self._predictions)
                    self._score(stamp)

        return receive

    @staticmethod
    def _trim(store: dict) -> None:
        while len(store) > 60:
            store.pop(next(iter(store)))

    def _score(self, stamp: int) -> None:
        from depth_perception.metrics import depth_metrics
        from depth_perception.nodes.conversions import image_msg_to_array

        truth = self._ground_truth.get(stamp, {})
        prediction = self._predictions.get(stamp, {})
        needed_truth = {"ground_truth/depth", "ground_truth/mask", "image"}
        needed_prediction = {"depth/image"}
        if "segmentation/mask" in self.results.counts:
            needed_prediction |= {"segmentation/mask", "segmentation/color"}
        if not needed_truth <= set(truth) or not needed_prediction <= set(prediction):
            return
        if prediction.get("scored"):
            return
        prediction["scored"] = True
        predicted = image_msg_to_array(prediction["depth/image"])
        gt_depth = image_msg_to_array(truth["ground_truth/depth"])
        valid = np.isfinite(gt_depth) & np.isfinite(predicted) & (gt_depth > 0)
        if valid.any():
            self.results.depth_metrics.append(depth_metrics(predicted, gt_depth, valid))
        gt_mask = image_msg_to_array(truth["ground_truth/mask"])
        self.preview = {
            "image": image_msg_to_array(truth["image"]).copy(),
            "depth": predicted.copy(),
            "gt_depth": gt_depth.copy(),
        }
        if "segmentation/mask" in prediction:
            mask = image_msg_to_array(prediction["segmentation/mask"])
            if self.confusion is None:
                classes = int(self.results.diagnostics.get("num_classes", 0) or 0)
                classes = classes or int(
                    max(mask[mask != 255].max(initial=0), gt_mask[gt_mask != 255].max(initial=0))
                    + 1
                )
                self.confusion = self._confusion_cls(classes)
            self.confusion.update(mask, gt_mask)
            self.preview["overlay"] = image_msg_to_array(prediction["segmentation/color"]).copy()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if "mono_depth" in status.name:
                values = {kv.key: kv.value for kv in status.values}
                values["level"] = str(
                    int.from_bytes(status.level, "little")
                    if isinstance(status.level, bytes)
                    else status.level
                )
                values["message"] = status.message
                with self._lock:
                    self.results.diagnostics = values
                    self.results.diagnostic_keys.update(values)


def write_preview(preview: dict[str, np.ndarray], path: Path, max_depth: float) -> Path:
    """input | predicted depth | ground-truth depth | segmentation overlay, as one PNG.

    Both depth maps share one colour range, the ground truth's 1st-99th percentile (capped at
    ``max_depth``), so they compare directly and a room does not fade into one colour.
    """
    from depth_perception.visualize import colorize_depth, make_panel

    truth = preview["gt_depth"][np.isfinite(preview["gt_depth"])]
    low, high = np.percentile(truth, (1, 99)) if truth.size else (0.0, max_depth)
    high = min(float(high), max_depth)
    low = min(float(low), high * 0.9)
    images = [
        preview["image"],
        colorize_depth(preview["depth"], low, high),
        colorize_depth(preview["gt_depth"], low, high),
    ]
    labels = [
        "input",
        f"predicted depth ({low:.1f}-{high:.1f} m)",
        "ground-truth depth",
    ]
    if "overlay" in preview:
        images.append(preview["overlay"])
        labels.append("segmentation")
    panel = make_panel(images, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return path


def run_monitored(args: argparse.Namespace, replay_frames: int = 0) -> dict[str, object]:
    """Start the source and the node, watch for ``args.duration`` seconds, return the figures.

    With ``replay_frames`` the camera renders that many frames once and replays them, so the
    node (not the renderer) is what is measured.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from depth_perception.apps.spinning import BackgroundSpinner

    domain = args.domain_id if args.domain_id is not None else random.randint(1, 100)
    env = ros_environment(domain_id=domain)
    apply_ros_environment(env)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    source_params = {
        "source": "synthetic",
        "family": args.family,
        "width": args.width,
        "height": args.height,
        "rate_hz": args.rate,
        "seed": args.seed,
        "scene": args.scene,
        "replay_frames": replay_frames,
    }
    node_params = {"model": args.model, "weights": args.weights, "backend": args.backend}
    for name in ("input_width", "input_height"):
        if getattr(args, name, 0):
            node_params[name] = getattr(args, name)
    profile = env["FASTRTPS_DEFAULT_PROFILES_FILE"]
    print(f"[ros] ROS_DOMAIN_ID={domain}, Fast DDS profile {profile}, logs in {output}/")
    processes = [
        start_node("mono_depth_node", env, node_params, log_path=output / "mono_depth.log"),
        start_node(
            "camera_source_node", env, source_params, log_path=output / "camera_source.log"
        ),
    ]
    rclpy.init()
    node = rclpy.create_node("depth_perception_monitor")
    monitor = TopicMonitor(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor)
    error = None
    try:
        deadline = time.monotonic() + args.startup_timeout
        while monitor.results.counts.get("depth/image", 0) == 0:
            if time.monotonic() > deadline:
                error = (
                    f"no depth image within {args.startup_timeout:.0f} s; see "
                    f"{output}/mono_depth.log"
                )
                break
            if any(p.poll() is not None for p in processes):
                error = f"a node exited early; see the logs in {output}/"
                break
            time.sleep(0.2)
        if error is None:
            # Measure from a clean start: the first frames include start-up.
            monitor.reset()
            time.sleep(args.duration)
    finally:
        stop_processes(processes)
        results = monitor.results
        preview = dict(monitor.preview)
        confusion = monitor.confusion
        spinner.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    latency = np.asarray(results.latencies_ms or [np.nan])
    diagnostics = results.diagnostics
    return {
        "ok": error is None,
        "error": error,
        "results": results,
        "preview": preview,
        "confusion": confusion,
        "fps": results.rate("depth/image"),
        "latency_mean_ms": float(np.mean(latency)),
        "latency_p95_ms": float(np.percentile(latency, 95)),
        "dropped": diagnostics.get("dropped_frames", "?"),
        "node_stages": {
            k[6:-3]: float(v) for k, v in diagnostics.items() if k.startswith("stage_")
        },
    }


def run_demo(args: argparse.Namespace) -> int:
    """The demo: run, report, write the preview."""
    run = run_monitored(args)
    if not run["ok"]:
        print(f"[demo] FAILED: {run['error']}")
        return 1
    return report(run["results"], run["preview"], run["confusion"], Path(args.output), args)


def report(results: MonitorResults, preview, confusion, output: Path, args) -> int:
    diagnostics = results.diagnostics
    print(
        f"\n[demo] {args.duration:.0f} s of {args.width}x{args.height} synthetic "
        f"{args.family} frames at {args.rate} Hz"
    )
    print(f"{'topic':24s} {'messages':>9s} {'rate Hz':>8s}")
    for topic in ("image", *OUTPUT_TOPICS):
        print(f"{topic:24s} {results.counts.get(topic, 0):9d} {results.rate(topic):8.2f}")
    if results.latencies_ms:
        latency = np.asarray(results.latencies_ms)
        print(
            f"end-to-end latency (image stamp -> depth received): mean {latency.mean():.1f} ms,"
            f" p95 {np.percentile(latency, 95):.1f} ms"
        )
    stages = {k[6:-3]: v for k, v in diagnostics.items() if k.startswith("stage_")}
    if stages:
        print(
            "node stages (ms, mean of the last diagnostics period): "
            + ", ".join(f"{k} {float(v):.2f}" for k, v in stages.items())
        )
    if results.depth_metrics:
        abs_rel = np.mean([m["abs_rel"] for m in results.depth_metrics])
        delta1 = np.mean([m["a1"] for m in results.depth_metrics])
        rmse = np.mean([m["rmse"] for m in results.depth_metrics])
        print(
            f"accuracy on {len(results.depth_metrics)} frames vs ground truth: "
            f"AbsRel {abs_rel:.3f}, delta1 {delta1:.3f}, RMSE {rmse:.3f} m",
            end="",
        )
        if confusion is not None:
            print(f", mIoU {confusion.compute()['miou']:.3f}")
        else:
            print()
    print(
        f"model {diagnostics.get('model', '?')} on {diagnostics.get('backend', '?')}, "
        f"weights {diagnostics.get('weights', '?')}, metric depth: "
        f"{diagnostics.get('depth_is_metric', '?')}, dropped frames: "
        f"{diagnostics.get('dropped_frames', '?')}"
    )
    if diagnostics.get("weights_trained") == "False":
        banner = "!" * 78
        print(
            f"\n{banner}\n!! THE WEIGHTS ARE UNTRAINED (random init): the accuracy above is "
            f"meaningless.\n{banner}"
        )
    if preview:
        max_depth = 10.0 if args.family == "indoor" else 80.0
        path = write_preview(preview, output / "preview.png", max_depth)
        print(f"preview written to {path}")
    ok = all(results.counts.get(t, 0) > 0 for t in ("depth/image", "points"))
    print("[demo] OK" if ok else "[demo] FAILED: some outputs never arrived")
    return 0 if ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to measure")
    parser.add_argument("--family", default="indoor", choices=("indoor", "road"))
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=15.0, help="camera frames per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scene", type=int, default=9000, help="synthetic scene index (held out from training)"
    )
    parser.add_argument("--model", default="lightweight")
    parser.add_argument("--weights", default="")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--domain-id", type=int, default=None)
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--output", default=os.path.join("demo_output"))
