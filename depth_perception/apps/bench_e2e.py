"""End-to-end figures of ``depth-perception bench``: what a user of the node feels.

One mono_depth process and one camera_source process (replaying pre-rendered frames, so the
node and not the renderer is measured) over real ROS 2. For each *variant* of the node (this
checkout; this checkout with ONNX Runtime spinning; another checkout, for before/after) and each
*subscription mode*, a light monitor subscribes to exactly the topics of that mode and counts
what arrives, while the node process's CPU time and page faults are read from
``/proc/<pid>/stat``:

* ``all``: every output (depth, depth/camera_info, points, segmentation mask and colour);
* ``depth``: depth/image only;
* ``cloud``: points only.

Variants are interleaved run after run (``--repeats``), and every figure is reported as the
median over the runs, so a change of machine load hits every variant alike.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.apps.processes import (
    apply_ros_environment,
    ros_environment,
    start_node,
    stop_processes,
)
from depth_perception.apps.spinning import BackgroundSpinner

# Subscription modes: (label, topics subscribed, the topic whose rate is the frame rate).
MODES: dict[str, tuple[tuple[str, ...], str]] = {
    "all": (
        (
            "depth/image",
            "depth/camera_info",
            "points",
            "segmentation/mask",
            "segmentation/color",
        ),
        "depth/image",
    ),
    "depth": (("depth/image",), "depth/image"),
    "cloud": (("points",), "points"),
}

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds (user + system, all threads) and page faults of a process so far."""

    cpu_s: float
    minor_faults: int
    major_faults: int


def _stat_fields(path: str) -> list[str]:
    with open(path, encoding="ascii", errors="replace") as stream:
        text = stream.read()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def thread_group(pid: int, tid: int, name: str) -> str:
    """Which part of the node a thread is: its main thread runs the rclpy executor, Fast DDS
    names its threads ``dds.*``, and the rest are the worker (ONNX Runtime runs on the calling
    thread with one intra-op thread) and any further intra-op threads."""
    if tid == pid:
        return "executor"
    if name.startswith("dds."):
        return "dds"
    return "worker"


def sample_threads(pid: int) -> dict[str, float]:
    """CPU seconds so far of a process's threads, summed per :func:`thread_group`.

    Threads that ended take their time with them: compare samples of a steady state only.
    """
    groups: dict[str, float] = {}
    for entry in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{entry.path}/comm", encoding="ascii", errors="replace") as stream:
                name = stream.read().strip()
            fields = _stat_fields(f"{entry.path}/stat")
        except OSError:  # the thread ended between the listing and the read
            continue
        group = thread_group(pid, int(entry.name), name)
        groups[group] = groups.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return groups


def sample_process(pid: int) -> ProcessSample:
    """Read ``/proc/<pid>/stat`` (Linux).

    Raises:
        OSError: the process is gone or there is no /proc.
    """
    fields = _stat_fields(f"/proc/{pid}/stat")
    # fields[0] is field 3 (state): minflt = 10, majflt = 12, utime = 14, stime = 15.
    minor, major = int(fields[7]), int(fields[9])
    utime, stime = int(fields[11]), int(fields[12])
    return ProcessSample((utime + stime) / _CLOCK_TICKS, minor, major)


@dataclass(frozen=True)
class Variant:
    """One way of running the node: a checkout (None = this one), extra parameters and extra
    environment variables of the node process."""

    label: str
    tree: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class ModeResult:
    """The figures of one variant in one subscription mode, in one run."""

    fps: float
    latency_ms: float
    cpu_ms_per_frame: float
    cpu_percent: float
    minor_faults_per_frame: float
    major_faults_per_frame: float
    frames: int
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # CPU ms per frame of the node's threads by thread_group (executor, worker, dds).
    cpu_ms_by_thread: dict[str, float] = field(default_factory=dict)


def _this_tree() -> Path:
    import depth_perception

    return Path(depth_perception.__file__).resolve().parents[1]


class _Monitor:
    """Subscribes to one mode's topics at a time; counts arrivals and stamps, nothing else."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = {}
        self.latencies: list[float] = []
        self.primary = ""
        self.diagnostics: dict[str, str] = {}
        self._subscriptions: list[Any] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if "mono_depth" in status.name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def subscribe(self, mode: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        types = {
            "depth/image": Image,
            "depth/camera_info": CameraInfo,
            "points": PointCloud2,
            "segmentation/mask": Image,
            "segmentation/color": Image,
        }
        self.unsubscribe()
        topics, primary = MODES[mode]
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        with self.lock:
            self.primary = primary
            self.arrivals = {topic: [] for topic in topics}
            self.latencies = []
        for topic in topics:
            self._subscriptions.append(
                self.node.create_subscription(types[topic], topic, self._callback(topic), qos)
            )

    def unsubscribe(self) -> None:
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions = []

    def _callback(self, topic: str):
        def receive(msg) -> None:
            now = time.time()
            with self.lock:
                times = self.arrivals.get(topic)
                if times is None:  # a message of the previous mode's subscription, late
                    return
                times.append(now)
                if topic == self.primary:
                    stamp = msg.header.stamp
                    self.latencies.append((now - stamp.sec - stamp.nanosec * 1e-9) * 1e3)

        return receive

    def reset(self) -> None:
        with self.lock:
            for times in self.arrivals.values():
                times.clear()
            self.latencies.clear()

    def count(self, topic: str | None = None) -> int:
        with self.lock:
            return len(self.arrivals.get(topic or self.primary, []))


def _rate(times: list[float]) -> float:
    return (len(times) - 1) / max(times[-1] - times[0], 1e-9) if len(times) >= 2 else 0.0


def run_variant(
    args: Any, variant: Variant, modes: list[str], domain_id: int, output: Path
) -> dict[str, ModeResult]:
    """Start the node of ``variant`` once and measure it in each subscription mode in turn."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    env = ros_environment(domain_id=domain_id)
    apply_ros_environment(env)
    tree = Path(variant.tree).resolve() if variant.tree else _this_tree()
    node_env = dict(env)
    # The node's code comes from the variant's checkout; everything else from this one.
    node_env["PYTHONPATH"] = os.pathsep.join(
        [str(tree), *filter(None, [env.get("PYTHONPATH", "")])]
    )
    node_env.update(variant.environment)
    output.mkdir(parents=True, exist_ok=True)
    node_params: dict[str, object] = {
        "model": args.model,
        "weights": args.weights,
        "backend": args.backend,
        **variant.parameters,
    }
    for name in ("input_width", "input_height"):
        if getattr(args, name, 0):
            node_params[name] = getattr(args, name)
    if args.threads:
        node_params["num_threads"] = args.threads
    source_params = {
        "source": "synthetic",
        "family": "indoor",
        "width": args.width,
        "height": args.height,
        "rate_hz": args.rate,
        "scene": 9000,
        "replay_frames": 30,
    }
    # cwd too: ``python -m`` puts the working directory before PYTHONPATH on sys.path.
    node_process = start_node(
        "mono_depth_node", node_env, node_params, log_path=output / "mono_depth.log", cwd=tree
    )
    processes = [
        node_process,
        start_node(
            "camera_source_node", env, source_params, log_path=output / "camera_source.log"
        ),
    ]
    if not rclpy.ok():
        rclpy.init()
    node = rclpy.create_node("depth_perception_bench_e2e")
    monitor = _Monitor(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor)
    results: dict[str, ModeResult] = {}
    try:
        for mode in modes:
            results[mode] = _measure_mode(args, monitor, mode, processes, node_process, output)
            if results[mode].error and node_process.poll() is not None:
                break
    finally:
        spinner.stop()
        monitor.unsubscribe()
        stop_processes(processes)
        node.destroy_node()
    return results


def _failed(error: str) -> ModeResult:
    nan = float("nan")
    return ModeResult(nan, nan, nan, nan, nan, nan, 0, error=error)


def _measure_mode(
    args: Any,
    monitor: _Monitor,
    mode: str,
    processes: list[subprocess.Popen],
    node_process: subprocess.Popen,
    output: Path,
) -> ModeResult:
    monitor.subscribe(mode)
    deadline = time.monotonic() + args.startup_timeout
    while monitor.count() == 0:
        if time.monotonic() > deadline:
            return _failed(f"no {MODES[mode][1]} within {args.startup_timeout:.0f} s")
        if any(p.poll() is not None for p in processes):
            return _failed(f"a node exited early; see the logs in {output}/")
        time.sleep(0.1)
    # Let the node settle on the new set of subscribers before measuring.
    time.sleep(min(2.0, max(0.5, args.duration / 5)))
    monitor.reset()
    before = sample_process(node_process.pid)
    threads_before = sample_threads(node_process.pid)
    start = time.monotonic()
    time.sleep(args.duration)
    after = sample_process(node_process.pid)
    threads_after = sample_threads(node_process.pid)
    elapsed = time.monotonic() - start
    with monitor.lock:
        times = list(monitor.arrivals[monitor.primary])
        latencies = list(monitor.latencies)
        diagnostics = dict(monitor.diagnostics)
    frames = len(times)
    if frames < 2:
        return _failed(f"only {frames} {MODES[mode][1]} messages in {args.duration:.0f} s")
    cpu_s = after.cpu_s - before.cpu_s
    return ModeResult(
        fps=_rate(times),
        latency_ms=float(np.mean(latencies)),
        cpu_ms_per_frame=cpu_s * 1e3 / frames,
        cpu_percent=100.0 * cpu_s / elapsed,
        minor_faults_per_frame=(after.minor_faults - before.minor_faults) / frames,
        major_faults_per_frame=(after.major_faults - before.major_faults) / frames,
        frames=frames,
        stages={k[6:-3]: float(v) for k, v in diagnostics.items() if k.startswith("stage_")},
        cpu_ms_by_thread={
            group: (threads_after[group] - threads_before.get(group, 0.0)) * 1e3 / frames
            for group in sorted(threads_after)
        },
    )


def run_end_to_end(
    args: Any, variants: list[Variant], modes: list[str]
) -> dict[str, dict[str, list[ModeResult]]]:
    """Every variant in every mode, ``args.repeats`` times interleaved: results[variant][mode]."""
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    results: dict[str, dict[str, list[ModeResult]]] = {
        v.label: {m: [] for m in modes} for v in variants
    }
    domain = args.domain_id if getattr(args, "domain_id", None) else random.randint(1, 100)
    for repeat in range(args.repeats):
        for index, variant in enumerate(variants):
            output = Path(args.output).resolve() / f"e2e_{index}_run{repeat}"
            print(
                f"  run {repeat + 1}/{args.repeats}: {variant.label} ...",
                end="",
                flush=True,
                file=sys.stderr,
            )
            for mode, result in run_variant(args, variant, modes, domain, output).items():
                results[variant.label][mode].append(result)
            print(" done", file=sys.stderr)
    import rclpy

    rclpy.try_shutdown()  # later sections (multi-camera) start their own context
    return results


def median_result(runs: list[ModeResult]) -> ModeResult:
    """Field-wise median over the runs that worked (the first error when none did)."""
    good = [r for r in runs if r.error is None]
    if not good:
        return runs[0] if runs else _failed("not run")
    stages = sorted({key for r in good for key in r.stages})

    def median(values: list[float]) -> float:
        return float(np.median(values))

    return ModeResult(
        fps=median([r.fps for r in good]),
        latency_ms=median([r.latency_ms for r in good]),
        cpu_ms_per_frame=median([r.cpu_ms_per_frame for r in good]),
        cpu_percent=median([r.cpu_percent for r in good]),
        minor_faults_per_frame=median([r.minor_faults_per_frame for r in good]),
        major_faults_per_frame=median([r.major_faults_per_frame for r in good]),
        frames=int(median([r.frames for r in good])),
        stages={key: median([r.stages[key] for r in good if key in r.stages]) for key in stages},
        cpu_ms_by_thread={
            key: median([r.cpu_ms_by_thread[key] for r in good if key in r.cpu_ms_by_thread])
            for key in sorted({key for r in good for key in r.cpu_ms_by_thread})
        },
    )


def print_end_to_end(
    args: Any,
    results: dict[str, dict[str, list[ModeResult]]],
    model_fps: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> dict[str, dict[str, ModeResult]]:
    """The end-to-end table (medians), the ratios between variants and pipeline efficiency."""
    medians = {
        label: {mode: median_result(runs) for mode, runs in by_mode.items()}
        for label, by_mode in results.items()
    }
    print(
        f"\nend to end over ROS 2 (camera {args.width}x{args.height} at {args.rate:.0f} Hz, "
        f"{args.duration:.0f} s per row, median of {args.repeats} interleaved run"
        f"{'s' if args.repeats > 1 else ''}; load average {load[0][0]:.2f} at the start, "
        f"{load[1][0]:.2f} at the end):"
    )
    print(
        f"  {'variant':24s} {'subscribed':10s} {'fps':>6s} {'latency ms':>10s} "
        f"{'CPU ms/frame':>12s} {'CPU %':>6s} {'minflt/frame':>12s} {'majflt/frame':>12s}"
    )
    for label, by_mode in medians.items():
        for mode, row in by_mode.items():
            if row.error is not None:
                print(f"  {label:24s} {mode:10s} failed: {row.error}")
                continue
            print(
                f"  {label:24s} {mode:10s} {row.fps:6.1f} {row.latency_ms:10.1f} "
                f"{row.cpu_ms_per_frame:12.2f} {row.cpu_percent:6.0f} "
                f"{row.minor_faults_per_frame:12.1f} {row.major_faults_per_frame:12.2f}"
            )
    for label, by_mode in medians.items():
        for mode, row in by_mode.items():
            if row.error is None and row.stages:
                stages = ", ".join(f"{k} {v:.2f}" for k, v in row.stages.items())
                print(f"  node stages, {label}, {mode} (ms): {stages}")
            if row.error is None and row.cpu_ms_by_thread:
                threads = ", ".join(f"{k} {v:.2f}" for k, v in row.cpu_ms_by_thread.items())
                print(f"  node CPU per frame by thread, {label}, {mode} (ms): {threads}")
    labels = list(medians)
    if len(labels) > 1:
        base = labels[0]
        for other in labels[1:]:
            for mode, row in medians[other].items():
                ref = medians[base][mode]
                if row.error is None and ref.error is None and row.fps > 0:
                    print(
                        f"  {base} / {other}, {mode}: fps {ref.fps / row.fps:.2f}x, "
                        f"CPU ms per frame {ref.cpu_ms_per_frame / row.cpu_ms_per_frame:.2f}x"
                    )
    if model_fps > 0:
        for label, by_mode in medians.items():
            row = by_mode.get("all")
            if row is not None and row.error is None:
                print(
                    f"  pipeline efficiency, {label} (all outputs fps / model-only fps "
                    f"{model_fps:.1f}): {row.fps / model_fps:.2f}"
                )
    return medians
