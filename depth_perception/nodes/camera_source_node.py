"""camera_source: publishes image + camera_info from a video, an image folder, a V4L2 camera or
the synthetic world (which also publishes ground-truth depth and class ids)."""

from __future__ import annotations

import threading
import time

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_perception.allocator import tune_for_large_messages
from depth_perception.camera import CameraIntrinsics
from depth_perception.nodes.conversions import array_to_image_msg, camera_info_msg
from depth_perception.sources import FrameSource, ReplaySource, open_source

SOURCES = ("synthetic", "video", "images", "v4l2")
# REP 2003: sensor drivers publish reliable; best-effort subscribers still connect.
SENSOR_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)


def _descriptor(
    text: str, low: float | None = None, high: float | None = None, integer: bool = False
) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=text)
    if low is not None and high is not None:
        if integer:
            descriptor.integer_range = [
                IntegerRange(from_value=int(low), to_value=int(high), step=1)
            ]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
            ]
    return descriptor


class CameraSourceNode(Node):
    """Publishes frames from one source at a fixed rate, stamped at capture time."""

    def __init__(self, node_name: str = "camera_source", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare = self.declare_parameter
        declare("source", "synthetic", _descriptor("Frame source: " + ", ".join(SOURCES)))
        declare("path", "", _descriptor("Video file or image folder (video, images sources)"))
        declare("device", "0", _descriptor("V4L2 device index or path (v4l2 source)"))
        declare("family", "indoor", _descriptor("Synthetic world family: indoor or road"))
        declare("seed", 0, _descriptor("Synthetic world seed", 0, 2**31 - 1, integer=True))
        declare("scene", 0, _descriptor("Synthetic scene index", 0, 2**31 - 1, integer=True))
        declare("width", 640, _descriptor("Image width (synthetic, v4l2)", 16, 8192, True))
        declare("height", 480, _descriptor("Image height (synthetic, v4l2)", 16, 8192, True))
        declare(
            "hfov_deg",
            70.0,
            _descriptor("Horizontal field of view when the source has no calibration", 1.0, 179.0),
        )
        declare("rate_hz", 15.0, _descriptor("Publishing rate", 0.1, 1000.0))
        declare("loop", True, _descriptor("Start again at the end of a video or folder"))
        declare(
            "frame_id",
            "camera_optical_frame",
            _descriptor("frame_id of the images: the camera's REP 103 optical frame"),
        )
        declare(
            "max_frames",
            0,
            _descriptor("Stop after this many frames; 0 = never", 0, 2**31 - 1, True),
        )
        declare(
            "replay_frames",
            0,
            _descriptor(
                "Read this many frames once and replay them (benchmarks); 0 = live",
                0,
                10000,
                True,
            ),
        )
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        source = get("source")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got '{source}'")
        self._frame_id = get("frame_id")
        self._hfov = get("hfov_deg")
        self._max_frames = get("max_frames")
        self._source: FrameSource = open_source(
            source,
            path=get("path"),
            device=get("device"),
            family=get("family"),
            seed=get("seed"),
            scene_index=get("scene"),
            width=get("width"),
            height=get("height"),
            hfov_deg=self._hfov,
            loop=get("loop"),
        )
        if get("replay_frames"):
            self._source = ReplaySource(self._source, get("replay_frames"))
        options = QoSOverridingOptions.with_default_policies()
        self._image_pub = self.create_publisher(
            Image, "image", SENSOR_QOS, qos_overriding_options=options
        )
        self._info_pub = self.create_publisher(
            CameraInfo, "camera_info", SENSOR_QOS, qos_overriding_options=options
        )
        self._gt_depth_pub = self.create_publisher(Image, "ground_truth/depth", SENSOR_QOS)
        self._gt_mask_pub = self.create_publisher(Image, "ground_truth/mask", SENSOR_QOS)
        self.published = 0
        self._period = 1.0 / get("rate_hz")
        self._stop = threading.Event()
        # A thread, not a timer: rendering or decoding must not hold up the executor.
        self._thread = threading.Thread(target=self._run, name="camera_source", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"publishing {source} frames at {get('rate_hz')} Hz on "
            f"{self.resolve_topic_name('image')}"
        )

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            frame = self._source.read()
            if frame is None:
                self.get_logger().info("source finished")
                return
            stamp = self.get_clock().now().to_msg()
            self._publish(frame, stamp)
            self.published += 1
            if self._max_frames and self.published >= self._max_frames:
                self.get_logger().info(f"published {self.published} frames, stopping")
                return
            next_time += self._period
            delay = next_time - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_time = time.monotonic()  # fell behind: do not burst to catch up

    def _publish(self, frame, stamp) -> None:
        image = array_to_image_msg(frame.rgb, _header(stamp, self._frame_id), "rgb8")
        height, width = frame.rgb.shape[:2]
        intrinsics = frame.intrinsics or CameraIntrinsics.from_hfov(width, height, self._hfov)
        info = camera_info_msg(intrinsics, image.header)
        # camera_info first: a subscriber pairing each image with the latest info gets this one.
        self._info_pub.publish(info)
        self._image_pub.publish(image)
        if frame.depth is not None:
            self._gt_depth_pub.publish(array_to_image_msg(frame.depth, image.header, "32FC1"))
        if frame.labels is not None:
            self._gt_mask_pub.publish(array_to_image_msg(frame.labels, image.header, "mono8"))

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._source.close()
        super().destroy_node()


def _header(stamp, frame_id: str) -> Header:
    return Header(stamp=stamp, frame_id=frame_id)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run depth_perception camera_source_node``."""
    allocator = tune_for_large_messages()  # before the first message buffer
    rclpy.init(args=args)
    node = None
    try:
        node = CameraSourceNode()
        node.get_logger().info(f"allocator: {allocator}")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()


if __name__ == "__main__":
    main()
