"""``depth-perception bench``: model-only speed, per-stage node cost and end-to-end ROS throughput,
measured side by side in one run, with the ratios that matter printed at the end."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

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


def _sample_frame(width: int, height: int):
    from depth_perception.synthetic import SyntheticWorld

    frame = SyntheticWorld("indoor", width, height, scene_index=9000).render(0)
    return frame.rgb, frame.intrinsics


def bench_model(pipeline, model, seconds: float) -> dict[str, float]:
    """Model-only milliseconds per frame: the chosen backend and torch eager on the CPU."""
    from depth_perception.backends.torch_backend import TorchBackend

    d = pipeline.description
    batch = np.random.default_rng(0).normal(size=(1, 3, d.input_height, d.input_width))
    batch = batch.astype(np.float32)
    results = {
        pipeline.choice.backend.name: _time_it(
            lambda: pipeline.choice.backend.infer(batch), seconds
        )
    }
    if pipeline.choice.backend.name != "torch":
        torch_backend = TorchBackend(model, "cpu")
        results["torch"] = _time_it(lambda: torch_backend.infer(batch), seconds)
    return results


def bench_stages(pipeline, width: int, height: int, seconds: float) -> dict[str, float]:
    """Milliseconds of each node stage in-process, with the node's own conversion code."""
    from std_msgs.msg import Header

    from depth_perception.nodes.conversions import (
        array_to_image_msg,
        camera_info_msg,
        cloud_msg,
        image_msg_to_rgb,
    )
    from depth_perception.pointcloud import OrganizedCloudBuilder
    from depth_perception.visualize import colorize_labels, overlay

    rgb, intrinsics = _sample_frame(width, height)
    header = Header(frame_id="camera_optical_frame")
    image_msg = array_to_image_msg(rgb, header, "rgb8")
    predictor = pipeline.predictor
    batch = predictor.preprocess(rgb)
    outputs = predictor.backend.infer(batch)
    depth, labels = predictor.postprocess(outputs, width, height)
    builder = OrganizedCloudBuilder(
        intrinsics, stride=1, with_rgb=True, with_label=labels is not None
    )
    cloud = builder.build(depth, rgb=rgb, labels=labels)
    colors = colorize_labels(labels, pipeline.palette) if labels is not None else rgb
    blended = overlay(rgb, colors, 0.5, labels)
    stages = {
        "convert_in": lambda: image_msg_to_rgb(image_msg),
        "preprocess": lambda: predictor.preprocess(rgb),
        "inference": lambda: predictor.backend.infer(batch),
        "postprocess": lambda: predictor.postprocess(outputs, width, height),
        "points": lambda: builder.build(depth, rgb=rgb, labels=labels),
        "colorize": lambda: overlay(rgb, colorize_labels(labels, pipeline.palette), 0.5, labels),
        "to_messages": lambda: (
            array_to_image_msg(depth, header, "32FC1"),
            camera_info_msg(intrinsics, header),
            cloud_msg(builder.build(depth, rgb=rgb, labels=labels), header),
            array_to_image_msg(labels, header, "mono8"),
            array_to_image_msg(blended, header, "rgb8"),
        ),
    }
    del cloud
    return {name: _time_it(function, seconds) for name, function in stages.items()}


def bench_ros(args: argparse.Namespace) -> dict[str, object]:
    """End to end through real ROS 2: camera_source (replaying frames) -> mono_depth."""
    from depth_perception.apps.demo import run_monitored

    args.family, args.seed, args.scene = "indoor", 0, 9000
    args.domain_id, args.startup_timeout = None, 120.0
    return run_monitored(args, replay_frames=30)


def run_bench(args: argparse.Namespace) -> int:
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
    print(
        f"model {d.name} at {d.input_width}x{d.input_height}, camera {args.width}x"
        f"{args.height}, backend {pipeline.choice.backend.describe()}, "
        f"weights {pipeline.weights}"
    )
    model_ms = bench_model(pipeline, model, args.seconds)
    print("\nmodel only (ms per frame, median):")
    for name, value in model_ms.items():
        print(f"  {name:12s} {value:8.2f} ms  {1e3 / value:8.1f} fps")
    stages = bench_stages(pipeline, args.width, args.height, args.seconds)
    overhead = sum(v for k, v in stages.items() if k != "inference")
    print(f"\nnode stages in-process at {args.width}x{args.height} (ms, median):")
    for name, value in stages.items():
        print(f"  {name:12s} {value:8.2f}")
    print(f"  {'overhead':12s} {overhead:8.2f}  (every stage except inference)")
    ros = None
    if not args.skip_ros:
        ros = bench_ros(args)
        if not ros["ok"]:
            print(f"end-to-end run failed: {ros['error']}")
            return 1
        print(
            f"\nend to end over ROS 2 ({args.duration:.0f} s, camera {args.rate:.0f} Hz, "
            "separate processes, shipped Fast DDS profile):"
        )
        print(
            f"  depth output {ros['fps']:.1f} fps, latency mean {ros['latency_mean_ms']:.1f} "
            f"ms, p95 {ros['latency_p95_ms']:.1f} ms, dropped {ros['dropped']}"
        )
        node_stages = ros["node_stages"]
        if node_stages:
            print(
                "  node stages (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in node_stages.items())
            )
    print("\nratios (same run):")
    backend_name = pipeline.choice.backend.name
    if "torch" in model_ms and backend_name != "torch":
        print(
            f"  {backend_name} vs torch eager (CPU) speed-up: "
            f"{model_ms['torch'] / model_ms[backend_name]:.2f}x"
        )
    if ros is not None:
        model_fps = 1e3 / model_ms[backend_name]
        print(
            f"  pipeline efficiency (end-to-end fps / model-only fps): "
            f"{ros['fps'] / model_fps:.2f}"
        )
    pipeline.close()
    return 0


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
