"""``depth-perception bench``: model-only speed, per-stage node cost and end-to-end ROS throughput,
measured side by side in one run, with the ratios that matter printed at the end."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.config import PerceptionConfig


def _time_it(function: Callable[[], object], min_seconds: float, min_runs: int = 5) -> float:
    """Median milliseconds per call, after one warm-up call."""
    function()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        function()
        samples.append((time.perf_counter() - begin) * 1e3)
    return float(np.median(samples))


def time_interleaved(
    functions: dict[str, Callable[[], object]], min_seconds: float, min_rounds: int = 5
) -> dict[str, float]:
    """Median milliseconds per call of each function, the functions called in turn.

    One call of each per round, so that a burst of load from another process on the shared
    machine slows every variant alike instead of whichever happened to be timed during it.
    """
    for function in functions.values():
        function()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in functions}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < min_seconds * len(functions):
        for name, function in functions.items():
            begin = time.perf_counter()
            function()
            samples[name].append((time.perf_counter() - begin) * 1e3)
        rounds += 1
    return {name: float(np.median(values)) for name, values in samples.items()}


def _sample_frame(width: int, height: int):
    from depth_perception.synthetic import SyntheticWorld

    frame = SyntheticWorld("indoor", width, height, scene_index=9000).render(0)
    return frame.rgb, frame.intrinsics


def bench_model(
    pipeline, model, seconds: float, spinning_pipeline=None, camera_size: tuple[int, int] = (0, 0)
) -> dict[str, float]:
    """Model-only milliseconds per frame: the chosen backend and the baselines beside it.

    At the network input the node gives a camera of ``camera_size`` (its aspect ratio,
    ``DepthPredictor.input_size_for``); (0, 0): the checkpoint's.

    On the CPU the baseline is torch eager; where CUDA is available also torch eager on CUDA
    (FP32, no graphs: the reference of the GPU ratios) and torch CUDA with FP16 + CUDA graphs.
    ``spinning_pipeline`` (ONNX Runtime with the other ``cpu_spinning`` setting) is timed too,
    as ``onnxruntime_spinning`` or ``onnxruntime_no_spinning``.
    """
    import torch

    from depth_perception.backends.torch_backend import TorchBackend

    d = pipeline.description
    width, height = (d.input_width, d.input_height)
    if min(camera_size) > 0:
        width, height = pipeline.predictor.input_size_for(*camera_size)
    batch = np.random.default_rng(0).normal(size=(1, 3, height, width))
    batch = batch.astype(np.float32)
    chosen = pipeline.choice.backend
    label = chosen.name if chosen.device == "cpu" else f"{chosen.name}_cuda"
    timed = {label: lambda: chosen.infer(batch)}
    other = spinning_pipeline.choice.backend if spinning_pipeline is not None else None
    if other is not None and other.name == "onnxruntime":
        name = "onnxruntime_spinning" if other.spinning else "onnxruntime_no_spinning"
        timed[name] = lambda: other.infer(batch)
    # Interleaved: the spinning trade-off is a ~10 % difference, below this VM's drift.
    results = time_interleaved(timed, seconds)
    if label != "torch":
        torch_backend = TorchBackend(model, "cpu")
        results["torch"] = _time_it(lambda: torch_backend.infer(batch), seconds)
    if torch.cuda.is_available():
        variants = {
            "torch_cuda_eager": {"fp16": False, "cuda_graphs": False},
            "torch_cuda_fp16_graphs": {"fp16": True, "cuda_graphs": True},
        }
        for name, options in variants.items():
            try:
                backend = TorchBackend(model, "cuda", **options)
                results[name] = _time_it(lambda b=backend: b.infer(batch), seconds)
            except Exception as error:  # a figure missing is reported, the rest still runs
                print(f"  {name} could not run: {error}")
        model.to("cpu")
    return results


def bench_stages(pipeline, width: int, height: int, seconds: float) -> dict[str, float]:
    """Median milliseconds of each node stage in-process, running the node's own frame code.

    Every run is one whole frame as the node's worker does it: decode the Image message, pick
    the intrinsics from the camera_info, predict, compose every output
    (``frame_pipeline.FramePipeline``) and build the messages
    (``nodes.conversions.output_messages``); the stage timings are those the node reports in
    /diagnostics (``to_messages`` = building the messages, without publishing them).
    """
    from std_msgs.msg import Header

    from depth_perception.frame_pipeline import FramePipeline, prepare_frame
    from depth_perception.nodes.conversions import (
        array_to_image_msg,
        camera_info_msg,
        image_msg_to_rgb,
        output_messages,
    )

    rgb, intrinsics = _sample_frame(width, height)
    header = Header(frame_id="camera_optical_frame")
    image_msg = array_to_image_msg(rgb, header, "rgb8")
    info_msg = camera_info_msg(intrinsics, header)
    # Every output on at full resolution: the node's defaults.
    config = PerceptionConfig()
    frames = FramePipeline(pipeline.predictor, pipeline.palette)
    samples: dict[str, list[float]] = {}

    def one_frame() -> None:
        begin = time.perf_counter()
        frame = prepare_frame("", image_msg_to_rgb(image_msg), info_msg, config.fallback_hfov_deg)
        frame.timings_ms["convert_in"] = (time.perf_counter() - begin) * 1e3
        (outputs,) = frames.process([frame], config)
        stage = time.perf_counter()
        output_messages(outputs, header)
        outputs.timings_ms["to_messages"] = (time.perf_counter() - stage) * 1e3
        for name, value in outputs.timings_ms.items():
            samples.setdefault(name, []).append(value)

    one_frame()  # warm-up: first-call allocations and lazy initialisation
    samples.clear()
    start = time.perf_counter()
    while len(samples.get("convert_in", ())) < 5 or time.perf_counter() - start < seconds:
        one_frame()
    order = ("convert_in", "preprocess", "inference", "postprocess", "points", "colorize")
    names = [name for name in order if name in samples] + [
        name for name in samples if name not in order
    ]
    return {name: float(np.median(samples[name])) for name in names}


def bench_cloud_message(
    width: int, height: int, seconds: float, compare_numpy: bool = True
) -> dict[str, float | str]:
    """The cloud's build + message against a memcpy of the same bytes (ms, median).

    ``build_message``: the node's path (reused buffer, taken by the message as it is), with the
    builders' default implementation (``kernel``: pointcloud.CLOUD_KERNEL, "c" or "numpy");
    ``build_message_numpy``: the same with the numpy path, when ``compare_numpy`` and the
    default is the C kernel; ``build_copy_message``: the same build, then the copy into a fresh
    buffer that the message took before (``fast_bytes``, a message without ``check_fields``);
    ``memcpy``: copying the payload's bytes into a preallocated buffer of the same size.
    """
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from depth_perception.nodes.conversions import cloud_msg, fast_bytes
    from depth_perception.pointcloud import CLOUD_KERNEL, OrganizedCloudBuilder

    rng = np.random.default_rng(0)
    rgb, intrinsics = _sample_frame(width, height)
    depth = rng.uniform(0.3, 10.0, (height, width)).astype(np.float32)
    depth[rng.random((height, width)) < 0.05] = np.nan
    labels = rng.integers(0, 20, (height, width), dtype=np.uint8)
    header = Header(frame_id="camera_optical_frame")
    builder = OrganizedCloudBuilder(intrinsics, with_rgb=True, with_label=True)

    def build_message(builder=builder):
        return cloud_msg(builder.build(depth, rgb=rgb, labels=labels, validated=True), header)

    def build_copy_message():
        cloud = builder.build(depth, rgb=rgb, labels=labels, validated=True)
        msg = PointCloud2()
        msg.data = fast_bytes(cloud.data)
        return msg

    source = np.frombuffer(build_message().data, np.uint8).copy()
    target = np.empty_like(source)
    result: dict[str, float | str] = {
        "kernel": CLOUD_KERNEL,
        "build_message": _time_it(build_message, seconds),
        "build_copy_message": _time_it(build_copy_message, seconds),
        "memcpy": _time_it(lambda: np.copyto(target, source), seconds),
        "megabytes": source.nbytes / 1e6,
    }
    if compare_numpy and CLOUD_KERNEL != "numpy":
        numpy_builder = OrganizedCloudBuilder(
            intrinsics, with_rgb=True, with_label=True, kernel="numpy"
        )
        result["build_message_numpy"] = _time_it(lambda: build_message(numpy_builder), seconds)
    return result


def _small_ms(value: float | str) -> str:
    """Milliseconds with two decimals, or four below 0.1 ms (a small camera's memcpy)."""
    return f"{float(value):.2f}" if float(value) >= 0.1 else f"{float(value):.4f}"


def cloud_message_line(cloud: dict[str, float | str]) -> str:
    """The bench's line for :func:`bench_cloud_message`'s figures."""
    line = (
        f"cloud build + message {_small_ms(cloud['build_message'])} ms vs memcpy of the same "
        f"{cloud['megabytes']:.1f} MB {_small_ms(cloud['memcpy'])} ms: "
        f"{cloud['build_message'] / cloud['memcpy']:.1f}x, {cloud['kernel']} kernel"
    )
    if "build_message_numpy" in cloud:
        line += (
            f" (numpy path {_small_ms(cloud['build_message_numpy'])} ms, "
            f"{cloud['build_message_numpy'] / cloud['memcpy']:.1f}x)"
        )
    return line + (
        f" (with a copy into a fresh buffer, as before: {cloud['build_copy_message']:.2f} ms, "
        f"{cloud['build_copy_message'] / cloud['memcpy']:.1f}x)"
    )


def _rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc); 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_cameras(
    args: argparse.Namespace, count: int, memory_frames: int = 0
) -> dict[str, object]:
    """One mono_depth node serving ``count`` cameras (batched), over real ROS 2.

    Starts ``count`` camera_source nodes in namespaces ``cam0``, ``cam1``, ... (each replaying
    pre-rendered frames of its own scene at ``args.rate``) and one mono_depth node with
    ``cameras`` set to those namespaces, then counts each camera's depth images for
    ``args.duration`` seconds after every camera has produced its first one.

    With ``memory_frames`` > 0 it runs until the node has processed that many frames instead,
    sampling the node's resident memory every 2 s (``memory``: list of ``(frames, KiB)``).

    Returns:
        ``ok``, ``error``, ``per_camera_fps`` (list), ``total_fps``, ``latency_mean_ms``,
        ``batch_size_mean`` and ``dropped`` (from the node's diagnostics).
    """
    import random
    import threading

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
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

    names = [f"cam{i}" for i in range(count)]
    env = ros_environment(domain_id=random.randint(1, 100))
    apply_ros_environment(env)
    output = Path(args.output) / f"cameras_{count}"
    output.mkdir(parents=True, exist_ok=True)
    node_params: dict[str, object] = {
        "model": args.model,
        "weights": args.weights,
        "backend": args.backend,
        "cameras": names,
    }
    for name in ("input_width", "input_height"):
        if getattr(args, name, 0):
            node_params[name] = getattr(args, name)
    if args.threads:
        node_params["num_threads"] = args.threads
    processes = [
        start_node("mono_depth_node", env, node_params, log_path=output / "mono_depth.log")
    ]
    for index, name in enumerate(names):
        source_params = {
            "source": "synthetic",
            "family": "indoor",
            "width": args.width,
            "height": args.height,
            "rate_hz": args.rate,
            "scene": 9000 + index,
            "replay_frames": 10,
            "frame_id": f"{name}_optical_frame",
        }
        processes.append(
            start_node(
                "camera_source_node",
                env,
                source_params,
                namespace=f"/{name}",
                log_path=output / f"camera_source_{name}.log",
            )
        )
    lock = threading.Lock()
    arrivals: dict[str, list[float]] = {name: [] for name in names}
    latencies: list[float] = []
    diagnostics: dict[str, str] = {}

    def on_depth(name: str):
        def receive(msg: Image) -> None:
            now = time.time()
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            with lock:
                arrivals[name].append(now)
                latencies.append((now - stamp) * 1e3)

        return receive

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "mono_depth" in status.name:
                with lock:
                    diagnostics.update({kv.key: kv.value for kv in status.values})

    rclpy.init()
    node = rclpy.create_node("depth_perception_bench_monitor")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    subscriptions = [
        node.create_subscription(Image, f"/{name}/depth/image", on_depth(name), qos)
        for name in names
    ]
    subscriptions.append(
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor)
    error = None
    memory: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + args.startup_timeout
        while not all(arrivals.values()):
            if time.monotonic() > deadline:
                error = f"not every camera produced depth within {args.startup_timeout:.0f} s"
                break
            if any(p.poll() is not None for p in processes):
                error = f"a node exited early; see the logs in {output}/"
                break
            time.sleep(0.2)
        if error is None:
            with lock:  # measure from a clean start: the first frames include start-up
                for times in arrivals.values():
                    times.clear()
                latencies.clear()
                dropped_before = int(diagnostics.get("dropped_frames", 0) or 0)
            if memory_frames > 0:
                memory = _sample_memory(processes[0], diagnostics, lock, memory_frames)
            else:
                time.sleep(args.duration)
    finally:
        stop_processes(processes)
        spinner.stop()
        for subscription in subscriptions:
            node.destroy_subscription(subscription)
        node.destroy_node()
        rclpy.try_shutdown()
    if error is not None:
        return {"ok": False, "error": error}
    per_camera = []
    for name in names:
        times = arrivals[name]
        rate = (len(times) - 1) / max(times[-1] - times[0], 1e-9) if len(times) >= 2 else 0.0
        per_camera.append(rate)
    return {
        "ok": True,
        "error": None,
        "per_camera_fps": per_camera,
        "total_fps": float(sum(per_camera)),
        "latency_mean_ms": float(np.mean(latencies)) if latencies else float("nan"),
        "batch_size_mean": float(diagnostics.get("batch_size_mean", "nan")),
        "dropped": int(diagnostics.get("dropped_frames", 0) or 0) - dropped_before,
        "memory": memory,
    }


def _sample_memory(
    process: subprocess.Popen, diagnostics: dict[str, str], lock: Any, frames: int
) -> list[tuple[int, int]]:
    """``(frames processed, node RSS KiB)`` every 2 s until ``frames`` were processed."""
    samples: list[tuple[int, int]] = []
    while process.poll() is None:
        with lock:
            done = int(diagnostics.get("frames_processed", 0) or 0)
        samples.append((done, _rss_kib(process.pid)))
        if done >= frames:
            break
        time.sleep(2.0)
    return samples


def print_memory(samples: list[tuple[int, int]], warmup_frames: int = 500) -> None:
    """Memory over the long run: after warm-up vs the end, and the trend per 1,000 frames."""
    steady = [(f, kib) for f, kib in samples if f >= warmup_frames]
    if len(steady) < 2:
        print("  memory: too few samples after warm-up")
        return
    frames = np.array([f for f, _ in steady], dtype=np.float64)
    rss = np.array([kib for _, kib in steady], dtype=np.float64)
    slope = float(np.polyfit(frames, rss, 1)[0]) * 1000.0
    print(
        f"  node RSS after {int(frames[0])} frames {int(rss[0]):,} KiB, after "
        f"{int(frames[-1])} frames {int(rss[-1]):,} KiB ({100 * (rss[-1] / rss[0] - 1):+.2f} %), "
        f"max {int(rss.max()):,} KiB; trend {slope:+.1f} KiB per 1,000 frames"
    )


def print_cameras_table(args: argparse.Namespace, rows: dict[int, dict[str, object]]) -> None:
    """The multi-camera figures, one row per camera count."""
    print(
        f"\nmulti-camera over ROS 2 (one mono_depth node, batched; cameras {args.width}x"
        f"{args.height} at {args.rate:.0f} Hz each, {args.duration:.0f} s per row):"
    )
    print(
        f"  {'cameras':>7s} {'fps/camera':>10s} {'min fps':>8s} {'total fps':>9s} "
        f"{'batch':>6s} {'latency ms':>10s} {'dropped':>7s}"
    )
    for count, row in rows.items():
        if not row["ok"]:
            print(f"  {count:7d}  failed: {row['error']}")
            continue
        fps = row["per_camera_fps"]
        print(
            f"  {count:7d} {np.mean(fps):10.1f} {min(fps):8.1f} {row['total_fps']:9.1f} "
            f"{row['batch_size_mean']:6.2f} {row['latency_mean_ms']:10.1f} {row['dropped']:7d}"
        )


def run_bench(args: argparse.Namespace) -> int:
    if getattr(args, "startup", False):
        # Before importing torch here: the start-up figures are of separate node processes.
        from depth_perception.apps.startup_bench import run_startup_bench

        return run_startup_bench(args)
    import torch

    from depth_perception.runtime import load_pipeline

    torch.set_num_threads(args.threads or torch.get_num_threads())
    config = PerceptionConfig(
        model=args.model,
        weights=args.weights,
        backend=args.backend,
        input_width=args.input_width,
        input_height=args.input_height,
        num_threads=args.threads,
    )
    pipeline = load_pipeline(config)
    d = pipeline.description
    model = _model_of(pipeline, config)
    network_width, network_height = pipeline.predictor.input_size_for(args.width, args.height)
    print(
        f"model {d.name} at {d.input_width}x{d.input_height}, camera {args.width}x"
        f"{args.height} (network input {network_width}x{network_height}), backend "
        f"{pipeline.choice.backend.describe()}, "
        f"weights {pipeline.weights}; load average {os.getloadavg()[0]:.2f}"
    )
    spinning_pipeline = None
    if pipeline.choice.backend.name == "onnxruntime":
        # The other cpu_spinning setting, timed beside the node's default.
        spinning_pipeline = load_pipeline(config.replace(cpu_spinning=not config.cpu_spinning))
    model_ms = bench_model(
        pipeline, model, args.seconds, spinning_pipeline, (args.width, args.height)
    )
    if spinning_pipeline is not None:
        spinning_pipeline.close()
    threads = getattr(pipeline.choice.backend, "num_threads", None)
    # The node's default leaves a core to its other threads: say what the figure ran on.
    print(
        "\nmodel only (ms per frame, median"
        + (f"; {threads} intra-op threads, as the node runs it" if threads else "")
        + "):"
    )
    for name, value in model_ms.items():
        print(f"  {name:12s} {value:8.2f} ms  {1e3 / value:8.1f} fps")
    stages = bench_stages(pipeline, args.width, args.height, args.seconds)
    overhead = sum(v for k, v in stages.items() if k != "inference")
    print(f"\nnode stages in-process at {args.width}x{args.height} (ms, median):")
    for name, value in stages.items():
        print(f"  {name:12s} {value:8.2f}")
    print(f"  {'overhead':12s} {overhead:8.2f}  (every stage except inference)")
    cloud = bench_cloud_message(args.width, args.height, args.seconds)
    print(f"\n{cloud_message_line(cloud)}")
    chosen = pipeline.choice.backend
    backend_name = chosen.name if chosen.device == "cpu" else f"{chosen.name}_cuda"
    model_fps = 1e3 / model_ms[backend_name]
    e2e = None
    if not args.skip_ros:
        from depth_perception.allocator import OPT_OUT_VARIABLE
        from depth_perception.apps.bench_e2e import (
            Variant,
            print_end_to_end,
            run_end_to_end,
        )

        variants = [Variant("this checkout")]
        if args.compare_spinning:
            variants.append(Variant("this, cpu_spinning", parameters={"cpu_spinning": True}))
        if args.compare_allocator:
            variants.append(Variant("this, untuned malloc", environment={OPT_OUT_VARIABLE: "0"}))
        if args.compare_points_stride:
            stride = args.compare_points_stride
            variants.append(
                Variant(f"this, points_stride {stride}", parameters={"points_stride": stride})
            )
        for tree in map(Path, args.compare_tree):
            if not (tree / "depth_perception" / "nodes" / "mono_depth_node.py").is_file():
                print(f"--compare-tree {tree}: not a checkout of this package")
                return 2
            variants.append(Variant(f"tree {tree.name}", tree=str(tree)))
        load_start = os.getloadavg()
        runs = run_end_to_end(args, variants, list(args.modes))
        e2e = print_end_to_end(args, runs, model_fps, (load_start, os.getloadavg()))
        ours = e2e["this checkout"].get(args.modes[0])
        if ours is None or ours.error is not None:
            print(f"end-to-end run failed: {ours.error if ours else 'not run'}")
            return 1
        print(
            f"  depth output {ours.fps:.1f} fps, latency mean {ours.latency_ms:.1f} ms "
            f"(this checkout, subscribed: {args.modes[0]})"
        )
    if args.memory_frames:
        print(f"\nmemory over {args.memory_frames:,} frames (one camera, all outputs on):")
        row = bench_cameras(args, 1, memory_frames=args.memory_frames)
        if not row["ok"]:
            print(f"  failed: {row['error']}")
            return 1
        # The first frames grow caches (allocator pools, DDS buffers): judge after them.
        print_memory(row["memory"], warmup_frames=min(500, args.memory_frames // 10))
    camera_rows: dict[int, dict[str, object]] = {}
    for count in args.cameras or []:
        camera_rows[count] = bench_cameras(args, count)
    if camera_rows:
        print_cameras_table(args, camera_rows)
    print("\nratios (same run):")
    if "torch" in model_ms and backend_name != "torch":
        print(
            f"  {backend_name} vs torch eager (CPU) speed-up: "
            f"{model_ms['torch'] / model_ms[backend_name]:.2f}x"
        )
    if "torch_cuda_eager" in model_ms:
        for name, value in model_ms.items():
            if name.endswith("_cuda") or name.startswith("torch_cuda_fp16"):
                print(
                    f"  {name} vs torch eager CUDA speed-up: "
                    f"{model_ms['torch_cuda_eager'] / value:.2f}x"
                )
    if e2e is not None and "all" in e2e["this checkout"]:
        row = e2e["this checkout"]["all"]
        if row.error is None:
            print(
                f"  pipeline efficiency (end-to-end fps / model-only fps): "
                f"{row.fps / model_fps:.2f}"
            )
    for name, value in model_ms.items():
        if name.startswith("onnxruntime_") and backend_name == "onnxruntime":
            print(f"  model only, {backend_name} vs {name}: {value / model_ms[backend_name]:.2f}x")
    if 1 in camera_rows and camera_rows[1]["ok"]:
        for count, row in camera_rows.items():
            if count > 1 and row["ok"] and camera_rows[1]["total_fps"] > 0:
                print(
                    f"  {count} cameras vs 1, total throughput: "
                    f"{row['total_fps'] / camera_rows[1]['total_fps']:.2f}x"
                )
    pipeline.close()
    return 0 if all(row["ok"] for row in camera_rows.values()) else 1


def _model_of(pipeline, config: PerceptionConfig):
    """The torch model behind the pipeline (rebuilt from the same checkpoint)."""
    from depth_perception.checkpoint import load_model
    from depth_perception.models import build_model
    from depth_perception.runtime import resolve_weights

    weights = resolve_weights(config)
    if weights is not None:
        return load_model(weights)[0].eval()
    import torch

    torch.manual_seed(0)
    return build_model(config.model).eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from depth_perception.apps.startup_bench import add_arguments as add_startup_arguments

    add_startup_arguments(parser)
    parser.add_argument("--model", default="lightweight")
    parser.add_argument("--weights", default="")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--width", type=int, default=640, help="camera width")
    parser.add_argument("--height", type=int, default=480, help="camera height")
    parser.add_argument("--input-width", type=int, default=0, help="network width (0: ckpt)")
    parser.add_argument("--input-height", type=int, default=0, help="network height (0: ckpt)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per in-process measurement")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds over ROS 2")
    parser.add_argument("--rate", type=float, default=60.0, help="camera rate over ROS 2")
    parser.add_argument("--skip-ros", action="store_true", help="only in-process figures")
    parser.add_argument("--output", default="bench_output")
    parser.add_argument(
        "--cameras",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also measure one node serving N cameras (batched), e.g. --cameras 1 2 4",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="N",
        help="end-to-end runs per variant (with --startup: starts per backend), interleaved; "
        "every figure is the median",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["all", "depth", "cloud"],
        choices=["all", "depth", "cloud"],
        help="which outputs the end-to-end monitor subscribes to (all, depth only, cloud only)",
    )
    parser.add_argument(
        "--compare-spinning",
        action="store_true",
        help="also run the node with cpu_spinning true (ONNX Runtime threads busy-wait)",
    )
    parser.add_argument(
        "--compare-allocator",
        action="store_true",
        help="also run the node with glibc's allocator left untuned "
        "(DEPTH_PERCEPTION_MALLOC_TUNING=0, see depth_perception.allocator)",
    )
    parser.add_argument(
        "--compare-points-stride",
        type=int,
        default=0,
        metavar="N",
        help="also run the node with points_stride N (a cloud of every N-th pixel)",
    )
    parser.add_argument(
        "--compare-tree",
        action="append",
        default=[],
        metavar="DIR",
        help="also run the node from another checkout (e.g. a git worktree of an older commit) "
        "in the same runs, interleaved: before/after side by side (repeatable)",
    )
    parser.add_argument("--domain-id", type=int, default=None, help="ROS domain (random)")
    parser.add_argument(
        "--memory-frames",
        type=int,
        default=0,
        metavar="N",
        help="also run the node for N frames and report its memory over the run (e.g. 10000)",
    )
