"""``depth-perception bag``: run mono_depth over a rosbag2 recording, offline, without ROS.

Reads a bag (sqlite3 or MCAP) with the pure-Python ``rosbags`` library and writes a NEW bag with
every original message plus what the live node would have published for each image, under a
prefix (default: the image topic's namespace)::

    <prefix>/depth/image          sensor_msgs/Image        32FC1 metres, NaN = no estimate
    <prefix>/depth/camera_info    sensor_msgs/CameraInfo   intrinsics of depth/image
    <prefix>/points               sensor_msgs/PointCloud2  organized, x y z [rgb] [label]
    <prefix>/segmentation/mask    sensor_msgs/Image        mono8 class ids (multi-task models)
    <prefix>/segmentation/color   sensor_msgs/Image        rgb8 overlay (multi-task models)

Every output carries the input image's header (stamp and frame_id) and is logged at the input
image's receive time, as the node does. The intrinsics are those of the latest camera_info
received before the image (the first one of the bag for images before it; the ``--hfov``
fallback when the bag has none). With ``--depth-topic`` (a registered depth image, 16UC1 mm or
32FC1 m) the depth metrics against it are printed. The arrays come from the node's own frame
code (``frame_pipeline``: intrinsics, predictor, cloud, overlay); only the message classes
differ (rosbags' instead of rclpy's). Imports no rclpy.
"""

from __future__ import annotations

import argparse
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.config import PerceptionConfig
from depth_perception.frame_pipeline import (
    FrameOutputs,
    FramePipeline,
    OutputDemand,
    prepare_frame,
)
from depth_perception.image_encoding import encoding_for_array
from depth_perception.pointcloud import CloudData

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"

# The node's output topics (relative names; see mono_depth_node.on_configure) and their types.
OUTPUT_TOPICS: dict[str, tuple[str, str]] = {
    "depth": ("depth/image", IMAGE_TYPE),
    "depth_info": ("depth/camera_info", CAMERA_INFO_TYPE),
    "points": ("points", POINTCLOUD2_TYPE),
    "mask": ("segmentation/mask", IMAGE_TYPE),
    "color": ("segmentation/color", IMAGE_TYPE),
}


def default_prefix(image_topic: str) -> str:
    """The namespace of ``image_topic``: ``/camera/image_raw`` -> ``/camera`` ("" at the root)."""
    return image_topic.rstrip("/").rsplit("/", 1)[0]


def output_topic_names(prefix: str) -> dict[str, str]:
    """Absolute output topic names under ``prefix`` (keys as in ``OUTPUT_TOPICS``)."""
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return {key: f"{base}/{name}" for key, (name, _) in OUTPUT_TOPICS.items()}


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class RosbagsMessages:
    """Builds rosbags message objects from the core's arrays, like ``nodes.conversions`` does
    with rclpy classes (same fields, same layout)."""

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore
        types = typestore.types
        self._image = types[IMAGE_TYPE]
        self._info = types[CAMERA_INFO_TYPE]
        self._cloud = types[POINTCLOUD2_TYPE]
        self._field = types["sensor_msgs/msg/PointField"]
        self._roi = types["sensor_msgs/msg/RegionOfInterest"]

    def image(self, array: np.ndarray, header: Any, encoding: str | None = None) -> Any:
        """An Image for a 2-D float32/uint16/uint8 or HxWx3 uint8 array (rows unpadded)."""
        array = np.ascontiguousarray(array)
        height, width = array.shape[:2]
        return self._image(
            header=header,
            height=height,
            width=width,
            encoding=encoding or encoding_for_array(array),
            is_bigendian=0,
            step=int(array.strides[0]),
            data=array.reshape(-1).view(np.uint8),
        )

    def camera_info(
        self, intrinsics: CameraIntrinsics, header: Any, source: Any | None = None
    ) -> Any:
        """A CameraInfo for ``intrinsics``; distortion model and D copied from ``source``."""
        return self._info(
            header=header,
            height=intrinsics.height,
            width=intrinsics.width,
            distortion_model=source.distortion_model if source is not None else "plumb_bob",
            d=np.asarray(source.d if source is not None else np.zeros(5), np.float64),
            k=intrinsics.matrix.reshape(-1).astype(np.float64),
            r=np.eye(3).reshape(-1),
            p=intrinsics.projection.reshape(-1).astype(np.float64),
            binning_x=0,
            binning_y=0,
            roi=self._roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )

    def cloud(self, cloud: CloudData, header: Any) -> Any:
        """An organized PointCloud2 from the core's cloud buffer."""
        return self._cloud(
            header=header,
            height=cloud.height,
            width=cloud.width,
            fields=[
                self._field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                for f in cloud.fields
            ],
            is_bigendian=bool(cloud.is_bigendian),
            point_step=cloud.point_step,
            row_step=cloud.row_step,
            data=np.ascontiguousarray(cloud.data).reshape(-1),
            is_dense=bool(cloud.is_dense),
        )

    def frame_messages(self, outputs: FrameOutputs, header: Any) -> dict[str, Any]:
        """One frame's outputs as messages keyed like ``OUTPUT_TOPICS`` (the node's set)."""
        messages: dict[str, Any] = {}
        if outputs.depth is not None:
            # 32FC1 metres or 16UC1 millimetres (depth_encoding): the dtype says which.
            messages["depth"] = self.image(outputs.depth, header)
            messages["depth_info"] = self.camera_info(
                outputs.intrinsics, header, outputs.camera_info
            )
        if outputs.cloud is not None:
            messages["points"] = self.cloud(outputs.cloud, header)
        if outputs.labels is not None:
            messages["mask"] = self.image(outputs.labels, header, "mono8")
        if outputs.overlay is not None:
            messages["color"] = self.image(outputs.overlay, header, "rgb8")
        return messages

    def serialize(self, msg: Any, msgtype: str) -> bytes:
        return self.typestore.serialize_cdr(msg, msgtype)


@dataclass
class BagReport:
    """What ``process_bag`` did."""

    output: Path
    frames: int = 0
    copied: int = 0
    topics: dict[str, str] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    metrics: dict[str, float] | None = None
    median_scaled_metrics: dict[str, float] | None = None
    evaluated: int = 0
    fallback_intrinsics: int = 0


def _storage_of(path: Path) -> str:
    return "mcap" if any(path.glob("*.mcap")) else "sqlite3"


def process_bag(
    input_path: str | Path,
    output_path: str | Path,
    image_topic: str,
    config: PerceptionConfig | None = None,
    camera_info_topic: str | None = None,
    depth_topic: str | None = None,
    prefix: str | None = None,
    storage: str | None = None,
    hfov_deg: float | None = None,
    tolerance_s: float = 0.02,
    overwrite: bool = False,
    progress: bool = True,
) -> BagReport:
    """Copy a bag and add the node's outputs for every message on ``image_topic``.

    Args:
        input_path: rosbag2 directory (sqlite3 or MCAP).
        output_path: new bag directory (must not exist unless ``overwrite``).
        image_topic: sensor_msgs/Image or CompressedImage topic.
        config: the mono_depth settings (model, backend, limits, cloud options...).
        camera_info_topic: CameraInfo topic; None = the image topic's sibling ``camera_info``
            if present, else the only CameraInfo topic of the bag, else the hfov fallback.
        depth_topic: registered ground-truth depth (16UC1 mm or 32FC1 m) for metrics.
        prefix: namespace of the outputs; None = the image topic's namespace.
        storage: "sqlite3" or "mcap" for the new bag; None = the input's.
        hfov_deg: field of view without camera_info; None = ``config.fallback_hfov_deg``.
        tolerance_s: largest image/ground-truth stamp difference for a metrics pair.
        overwrite: replace an existing ``output_path``.
        progress: show a tqdm progress bar.

    Raises:
        ValueError / FileNotFoundError: missing bag or topic, wrong types, existing output.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    from depth_perception.message_fields import decode_depth, decode_rgb
    from depth_perception.metrics import DepthMetricAverager, depth_metrics, median_scale
    from depth_perception.runtime import load_pipeline

    config = config or PerceptionConfig()
    hfov = float(hfov_deg if hfov_deg is not None else config.fallback_hfov_deg)
    src, dst = Path(input_path), Path(output_path)
    if not (src / "metadata.yaml").is_file():
        raise FileNotFoundError(f"{src} is not a rosbag2 directory (no metadata.yaml)")
    if dst.resolve() == src.resolve():
        raise ValueError("the output bag must differ from the input bag")
    if dst.exists():
        if not overwrite:
            raise FileExistsError(f"{dst} exists; remove it or pass --overwrite")
        shutil.rmtree(dst)
    storage = storage or _storage_of(src)
    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"storage must be sqlite3 or mcap, got {storage!r}")
    prefix = default_prefix(image_topic) if prefix is None else prefix
    names = output_topic_names(prefix)

    typestore = get_typestore(Stores.ROS2_JAZZY)
    messages = RosbagsMessages(typestore)
    report = BagReport(output=dst, topics=names)
    with AnyReader([src], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        if image_topic not in types:
            raise ValueError(
                f"{src} has no topic {image_topic}; topics: {', '.join(sorted(types))}"
            )
        if types[image_topic] not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise ValueError(f"{image_topic} is {types[image_topic]}, expected an image")
        clashes = sorted(set(names.values()) & set(types))
        if clashes:
            raise ValueError(f"{src} already holds {', '.join(clashes)}; choose another --prefix")
        if camera_info_topic is None:
            sibling = f"{default_prefix(image_topic)}/camera_info"
            infos = [t for t, m in types.items() if m == CAMERA_INFO_TYPE]
            camera_info_topic = (
                sibling if sibling in infos else (infos[0] if len(infos) == 1 else None)
            )
        elif types.get(camera_info_topic) != CAMERA_INFO_TYPE:
            raise ValueError(f"{camera_info_topic} is not a CameraInfo topic of {src}")
        if depth_topic is not None and types.get(depth_topic) != IMAGE_TYPE:
            raise ValueError(f"{depth_topic} is not an Image topic of {src} (for --depth-topic)")

        # Pre-pass over the small topics: the first camera_info (for images before any), and
        # the image -> ground-truth pairing by stamp, so the main pass can stream.
        first_info = None
        image_stamps: list[int] = []
        depth_stamps: list[int] = []
        small = [
            c
            for c in reader.connections
            if c.topic in {camera_info_topic, image_topic, depth_topic}
        ]
        for conn, _, raw in reader.messages(connections=small):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == camera_info_topic:
                if first_info is None:
                    first_info = msg
            elif conn.topic == image_topic:
                image_stamps.append(_stamp_ns(msg.header))
            else:
                depth_stamps.append(_stamp_ns(msg.header))
        pair_of: dict[int, int] = {}  # image stamp -> ground-truth stamp
        if depth_topic is not None and depth_stamps:
            sorted_depth = np.array(sorted(depth_stamps), np.int64)
            for stamp in image_stamps:
                j = int(np.searchsorted(sorted_depth, stamp))
                near = [k for k in (j - 1, j) if 0 <= k < len(sorted_depth)]
                best = min(near, key=lambda k: abs(int(sorted_depth[k]) - stamp))
                if abs(int(sorted_depth[best]) - stamp) <= round(tolerance_s * 1e9):
                    pair_of[stamp] = int(sorted_depth[best])
        waiting: dict[int, list[np.ndarray]] = defaultdict(list)  # gt stamp -> predictions
        needed = defaultdict(int)
        for gt_stamp in pair_of.values():
            needed[gt_stamp] += 1
        ground_truth: dict[int, np.ndarray] = {}
        averager, scaled_averager = DepthMetricAverager(), DepthMetricAverager()

        pipeline = load_pipeline(config)
        for line in pipeline.warnings:
            print(f"warning: {line}")
        print(pipeline.summary())
        metric = pipeline.description.metric or config.depth_scale != 1.0

        def evaluate(pred: np.ndarray, gt: np.ndarray) -> None:
            if gt.shape != pred.shape:
                import cv2

                gt = cv2.resize(gt, pred.shape[::-1], interpolation=cv2.INTER_NEAREST)
            try:
                averager.add(depth_metrics(pred, gt))
                valid = (gt > 0) & (gt < np.inf) & np.isfinite(pred)
                scaled, _ = median_scale(pred, gt, valid)
                scaled_averager.add(depth_metrics(scaled, gt))
            except ValueError:
                return  # no valid pixel in this pair: nothing to score
            report.evaluated += 1

        dst.parent.mkdir(parents=True, exist_ok=True)
        # The node's own frame code: intrinsics, one predictor call, every output composed.
        frames = FramePipeline(pipeline.predictor, pipeline.palette)
        # The bag gets the image outputs and the cloud; the navigation outputs (obstacle
        # cloud, scan) are the node's only, so they are not computed here.
        demand = OutputDemand(OutputDemand.everything(config).wanted & set(OUTPUT_TOPICS))
        latest_info = first_info
        try:
            with Writer(dst, version=9, storage_plugin=plugins[storage]) as writer:
                copies = {}
                for conn in reader.connections:
                    ext = conn.ext
                    kwargs: dict[str, Any] = {
                        "serialization_format": getattr(ext, "serialization_format", "cdr"),
                        "offered_qos_profiles": getattr(ext, "offered_qos_profiles", ()) or (),
                    }
                    if conn.msgdef is not None and conn.msgdef.data:
                        kwargs.update(msgdef=conn.msgdef.data, rihs01=conn.digest)
                    else:  # old bags without definitions: the reader's typestore knows them
                        kwargs["typestore"] = reader.typestore
                    copies[conn.id] = writer.add_connection(conn.topic, conn.msgtype, **kwargs)
                connections = {
                    key: writer.add_connection(names[key], msgtype, typestore=typestore)
                    for key, (_, msgtype) in OUTPUT_TOPICS.items()
                }
                bar = tqdm(total=len(image_stamps), unit="frame", disable=not progress)
                for conn, log_time, raw in reader.messages():
                    writer.write(copies[conn.id], log_time, raw)
                    report.copied += 1
                    if conn.topic == camera_info_topic:
                        latest_info = reader.deserialize(raw, conn.msgtype)
                        continue
                    if conn.topic == depth_topic:
                        msg = reader.deserialize(raw, conn.msgtype)
                        stamp = _stamp_ns(msg.header)
                        if needed.get(stamp):
                            gt = decode_depth(msg)
                            for pred in waiting.pop(stamp, []):
                                evaluate(pred, gt)
                                needed[stamp] -= 1
                            if needed[stamp] > 0:
                                ground_truth[stamp] = gt
                        continue
                    if conn.topic != image_topic:
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    frame = prepare_frame("", decode_rgb(msg, conn.msgtype), latest_info, hfov)
                    if not frame.intrinsics.from_camera_info:
                        report.fallback_intrinsics += 1
                    (outputs,) = frames.process([frame], config, demand)
                    header = msg.header  # the node copies the input image's header
                    depth = outputs.prediction.depth
                    for key, out_msg in messages.frame_messages(outputs, header).items():
                        writer.write(
                            connections[key],
                            log_time,
                            messages.serialize(out_msg, OUTPUT_TOPICS[key][1]),
                        )
                        report.written[names[key]] += 1
                    stamp = _stamp_ns(header)
                    gt_stamp = pair_of.get(stamp)
                    if gt_stamp is not None:
                        if gt_stamp in ground_truth:
                            evaluate(depth, ground_truth[gt_stamp])
                            needed[gt_stamp] -= 1
                            if needed[gt_stamp] <= 0:
                                del ground_truth[gt_stamp]
                        else:
                            waiting[gt_stamp].append(depth.copy())
                    report.frames += 1
                    bar.update(1)
                bar.close()
        finally:
            pipeline.close()
    if report.evaluated:
        report.metrics = averager.compute()
        report.median_scaled_metrics = scaled_averager.compute()
    _print_report(report, metric, depth_topic)
    return report


def _print_report(report: BagReport, metric: bool, depth_topic: str | None) -> None:
    from depth_perception.metrics import format_depth_metrics

    print(f"wrote {report.output}: {report.frames} frames, {report.copied} messages copied")
    for topic, count in sorted(report.written.items()):
        print(f"  {topic}: {count}")
    if report.fallback_intrinsics:
        print(f"  {report.fallback_intrinsics} frames without camera_info used the hfov fallback")
    if depth_topic is None:
        return
    if report.metrics is None:
        print(f"no image paired with a message on {depth_topic}: no metrics")
        return
    print(f"depth metrics against {depth_topic} ({report.evaluated} frames):")
    m = report.metrics
    print(f"  AbsRel {m['abs_rel']:.4f}  RMSE {m['rmse']:.4f} m  delta1 {m['a1']:.4f}")
    print(f"  {format_depth_metrics(m)}")
    if report.median_scaled_metrics is not None:
        note = "" if metric else " (the model is relative: these are the meaningful ones)"
        print(f"  median-scaled{note}: {format_depth_metrics(report.median_scaled_metrics)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depth-perception bag``."""
    from depth_perception.apps.infer_tool import add_model_arguments

    parser.add_argument("input", help="rosbag2 directory (sqlite3 or MCAP)")
    parser.add_argument("output", help="new bag directory to write")
    parser.add_argument("--image-topic", required=True, help="Image or CompressedImage topic")
    parser.add_argument(
        "--camera-info-topic",
        default=None,
        help="CameraInfo topic (default: <image namespace>/camera_info or the only one)",
    )
    parser.add_argument(
        "--depth-topic",
        default=None,
        help="registered depth (16UC1 mm or 32FC1 m): print depth metrics against it",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="namespace of the outputs (default: the image topic's, e.g. /camera)",
    )
    parser.add_argument("--storage", default=None, choices=("sqlite3", "mcap"))
    parser.add_argument("--hfov", type=float, default=70.0, help="fov without camera_info")
    parser.add_argument("--points-stride", type=int, default=None, help="cloud stride")
    parser.add_argument("--tolerance", type=float, default=0.02, help="depth pairing, seconds")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Entry of the ``bag`` subcommand."""
    from depth_perception.apps.infer_tool import config_from_args

    extra: dict[str, object] = {"fallback_hfov_deg": float(args.hfov)}
    if args.points_stride is not None:
        extra["points_stride"] = int(args.points_stride)
    process_bag(
        args.input,
        args.output,
        args.image_topic,
        config=config_from_args(args, **extra),
        camera_info_topic=args.camera_info_topic,
        depth_topic=args.depth_topic,
        prefix=args.prefix,
        storage=args.storage,
        tolerance_s=args.tolerance,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    return 0
