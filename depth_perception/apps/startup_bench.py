"""``depth-perception bench --startup``: how long a node takes to see, and what it costs to keep.

For each backend (the ONNX Runtime path and the torch backend, alternating, ``--repeats``
times) a fresh ``mono_depth_node`` process is started beside a running synthetic camera; the
figures are the time from just before the process is spawned to the first ``depth/image``
received, and the node's resident memory (VmRSS) once it has been running for ``--steady``
seconds. Medians over the repeats are printed side by side with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("onnxruntime", "torch")
CAMERA_HZ = 30.0
NAMESPACE = "/startup"


@dataclass
class StartupRun:
    """One start of the node.

    Attributes:
        backend: the ``backend`` parameter.
        first_depth_s: seconds from spawning the process to the first depth image received.
        first_depth_cpu_s: CPU seconds (user + system, all threads) the node had used by then:
            less sensitive than the wall time to other processes sharing the machine.
        rss_mib: median VmRSS over the second half of the steady period, MiB.
        private_mib: the node's private memory (USS: pages no other process shares, e.g. not
            the libraries' code or the Fast DDS shared-memory segment) at the end, MiB; what
            one more node on the robot adds.
        fps: depth images per second over the steady period.
        torch_loaded: whether libtorch was mapped into the node's process.
        error: why the run gave no figures, or None.
    """

    backend: str
    first_depth_s: float = float("nan")
    first_depth_cpu_s: float = float("nan")
    rss_mib: float = float("nan")
    private_mib: float = float("nan")
    fps: float = float("nan")
    torch_loaded: bool | None = None
    error: str | None = None


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc); NaN if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            # Fields after the parenthesised command name; utime and stime are the 12th, 13th.
            fields = stream.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _private_kib(pid: int) -> int:
    """Private_Clean + Private_Dirty of a process in KiB (Linux smaps_rollup); 0 when unknown."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as stream:
            for line in stream:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


def _torch_loaded(pid: int) -> bool | None:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def _load() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def run_startup_bench(args: argparse.Namespace) -> int:
    """Start the node ``args.repeats`` times per backend and print the medians."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from depth_perception.apps.processes import (
        apply_ros_environment,
        ros_environment,
        start_node,
        stop_processes,
    )
    from depth_perception.apps.spinning import BackgroundSpinner

    output = Path(args.output) / "startup"
    output.mkdir(parents=True, exist_ok=True)
    env = ros_environment(domain_id=random.randint(1, 100))
    apply_ros_environment(env)
    camera = start_node(
        "camera_source_node",
        env,
        {
            "source": "synthetic",
            "family": "indoor",
            "width": args.width,
            "height": args.height,
            "rate_hz": CAMERA_HZ,
            "scene": 9000,
            "replay_frames": 10,
        },
        namespace=NAMESPACE,
        log_path=output / "camera_source.log",
    )
    lock = threading.Lock()
    arrivals: list[float] = []

    def on_depth(_: Image) -> None:
        with lock:
            arrivals.append(time.monotonic())

    rclpy.init()
    node = rclpy.create_node("depth_perception_startup_bench")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    subscription = node.create_subscription(Image, f"{NAMESPACE}/depth/image", on_depth, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor)
    load_before = _load()
    runs: list[StartupRun] = []
    try:
        for repeat in range(args.repeats):
            # Alternating order: a load that drifts during the run weighs on both alike.
            order = BACKENDS if repeat % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                with lock:
                    arrivals.clear()
                params: dict[str, object] = {"model": args.model, "weights": args.weights}
                params["backend"] = backend
                if args.threads:
                    params["num_threads"] = args.threads
                log = output / f"mono_depth_{backend}_{repeat}.log"
                start = time.monotonic()
                process = start_node(
                    "mono_depth_node", env, params, namespace=NAMESPACE, log_path=log
                )
                try:
                    runs.append(_measure(process, backend, start, arrivals, lock, args))
                finally:
                    stop_processes([process])
                run = runs[-1]
                error = f", error: {run.error}" if run.error else ""
                print(
                    f"  {backend:12s} repeat {repeat + 1}: first depth {run.first_depth_s:6.2f} "
                    f"s ({run.first_depth_cpu_s:5.2f} s CPU), RSS {run.rss_mib:7.1f} MiB "
                    f"(private {run.private_mib:6.1f}), "
                    f"{run.fps:5.1f} fps, torch loaded {run.torch_loaded}{error}"
                )
    finally:
        stop_processes([camera])
        spinner.stop()
        node.destroy_subscription(subscription)
        node.destroy_node()
        rclpy.try_shutdown()
    print_startup_table(args, runs, load_before, _load())
    return 0 if all(run.error is None for run in runs) else 1


def _measure(process, backend, start, arrivals, lock, args) -> StartupRun:
    run = StartupRun(backend)
    deadline = start + args.startup_timeout
    while True:
        with lock:
            first = arrivals[0] if arrivals else None
        if first is not None:
            run.first_depth_cpu_s = _cpu_seconds(process.pid)
            break
        if process.poll() is not None:
            run.error = f"the node exited with {process.returncode} before publishing depth"
            return run
        if time.monotonic() > deadline:
            run.error = f"no depth image within {args.startup_timeout:.0f} s"
            return run
        time.sleep(0.01)
    run.first_depth_s = first - start
    samples: list[int] = []
    steady_end = time.monotonic() + args.steady
    while time.monotonic() < steady_end and process.poll() is None:
        samples.append(_rss_kib(process.pid))
        time.sleep(0.25)
    with lock:
        frames = len(arrivals)
        span = arrivals[-1] - arrivals[0] if frames > 1 else 0.0
    run.fps = (frames - 1) / span if span > 0 else float("nan")
    run.torch_loaded = _torch_loaded(process.pid)
    run.private_mib = _private_kib(process.pid) / 1024.0
    steady = samples[len(samples) // 2 :]
    run.rss_mib = float(np.median(steady)) / 1024.0 if steady else float("nan")
    return run


def print_startup_table(
    args: argparse.Namespace, runs: list[StartupRun], load_before: str, load_after: str
) -> None:
    """Medians per backend, side by side, and the ratios."""
    print(
        f"\nstart-up and memory of mono_depth_node (model {args.model}, camera "
        f"{args.width}x{args.height} at {CAMERA_HZ:.0f} Hz, {args.repeats} starts per backend, "
        f"RSS after {args.steady:.0f} s running; medians):"
    )
    print(
        f"  {'backend':12s} {'first depth s':>13s} {'CPU s':>6s} {'RSS MiB':>8s} "
        f"{'private MiB':>11s} "
        f"{'fps':>6s} torch loaded"
    )
    medians: dict[str, tuple[float, float]] = {}
    for backend in BACKENDS:
        ok = [run for run in runs if run.backend == backend and run.error is None]
        if not ok:
            print(f"  {backend:12s} no successful start")
            continue
        first = float(np.median([run.first_depth_s for run in ok]))
        cpu = float(np.median([run.first_depth_cpu_s for run in ok]))
        rss = float(np.median([run.rss_mib for run in ok]))
        private = float(np.median([run.private_mib for run in ok]))
        fps = float(np.median([run.fps for run in ok]))
        loaded = sorted({str(run.torch_loaded) for run in ok})
        medians[backend] = (first, rss)
        print(
            f"  {backend:12s} {first:13.2f} {cpu:6.2f} {rss:8.1f} {private:11.1f} {fps:6.1f} "
            f"{'/'.join(loaded)}"
        )
    torch_runs = [run for run in runs if run.backend == "torch" and run.error is None]
    if any(run.torch_loaded is False for run in torch_runs):
        # Without torch the torch backend falls back to ONNX Runtime: no comparison then.
        print("  the torch backend fell back to ONNX Runtime (torch not installed?): no ratio")
        medians.pop("torch", None)
    if len(medians) == 2:
        (ort_first, ort_rss), (torch_first, torch_rss) = medians["onnxruntime"], medians["torch"]
        print(
            f"  onnxruntime vs torch: first depth {torch_first / ort_first:.1f}x sooner, "
            f"{torch_rss / ort_rss:.1f}x less memory"
        )
    print(f"  {load_before} before, {load_after} after ({os.cpu_count()} CPUs)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--startup`` options of ``depth-perception bench``."""
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only measure start-up (process start to first depth image) and node RSS, "
        "ONNX Runtime vs torch backend, side by side",
    )
    # --repeats (starts per backend here) is the bench's own option, shared with the e2e runs.
    parser.add_argument(
        "--steady", type=float, default=6.0, help="seconds running before RSS (--startup)"
    )
