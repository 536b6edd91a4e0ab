"""Reliability: bad and unusual input sent to one running mono_depth node over ROS 2.

Every case checks the log line, the ``errors_<kind>`` counter in /diagnostics, that the
process is still up, and that the next good frame is served correctly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from ros_harness import (
    HEIGHT,
    NODE_PARAMS,
    WIDTH,
    RosHarness,
    ros_session,
    stamp_ns,
    start_mono_depth,
    test_image,
    test_intrinsics,
    wait_for_subscription,
)
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_perception.apps.processes import stop_processes
from depth_perception.camera import CameraIntrinsics, aspect_matched_size
from depth_perception.config import PARAMETERS_BY_NAME
from depth_perception.image_encoding import MAX_IMAGE_PIXELS
from depth_perception.nodes.conversions import (
    array_to_image_msg,
    camera_info_msg,
    fast_bytes,
    image_msg_to_array,
)

pytestmark = pytest.mark.integration

NAMESPACE = "/rel_input"
OUTPUTS = ("depth/image", "depth/camera_info", "points", "segmentation/mask", "segmentation/color")


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


class Node:
    """The node process, the probe and the node's log, shared by every test of the module."""

    def __init__(self, process, harness: RosHarness, log_path) -> None:
        self.process = process
        self.harness = harness
        self.log_path = log_path

    @property
    def diagnostics(self) -> dict[str, str]:
        return self.harness.monitor.results.diagnostics

    def counter(self, key: str) -> int:
        return int(self.diagnostics.get(key, 0))

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_counter_above(self, key: str, before: int, publish) -> None:
        self.harness.publish_until(
            publish, lambda: self.counter(key) > before, 30, f"{key} to count past {before}"
        )

    def serve(
        self, image: Image, info: CameraInfo | None, topics=OUTPUTS, k=None
    ) -> dict[str, object]:
        """Publish ``image`` (and ``info``) until every output for its stamp has arrived.

        With ``k``, until depth/camera_info's K is also ``k``: the first frames may still meet
        the previous camera_info, which arrives on its own topic.
        """
        stamp = stamp_ns(image.header)
        by_stamp = self.harness.monitor.by_stamp

        def publish() -> None:
            if info is not None:
                self.harness.info_pub.publish(info)
            self.harness.image_pub.publish(image)

        def done() -> bool:
            if not all((topic, stamp) in by_stamp for topic in topics):
                return False
            if k is None:
                return True
            return np.allclose(by_stamp[("depth/camera_info", stamp)].k, np.reshape(k, -1))

        self.harness.publish_until(
            publish,
            done,
            30,
            f"outputs for stamp {stamp}",
        )
        return {topic: by_stamp[(topic, stamp)] for topic in topics}


@pytest.fixture(scope="module")
def node(ros, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("rel_input")
    process = start_mono_depth(ros, NAMESPACE, log_dir)
    harness = RosHarness(NAMESPACE)
    try:
        wait_for_subscription(harness)
        yield Node(process, harness, log_dir / "mono_depth_rel_input.log")
    finally:
        harness.close()
        codes = stop_processes([process])
    assert codes == [0], (log_dir / "mono_depth_rel_input.log").read_text()


def _header(index: int) -> Header:
    return Header(stamp=Time(sec=2000 + index, nanosec=500), frame_id="test_cam_optical")


def _image(index: int, width: int = WIDTH, height: int = HEIGHT) -> Image:
    return array_to_image_msg(test_image(index, width, height), _header(index), "rgb8")


def _info(index: int, intrinsics: CameraIntrinsics | None = None) -> CameraInfo:
    return camera_info_msg(intrinsics or test_intrinsics(), _header(index))


def _good_frame_served(node: Node, index: int) -> None:
    """The next good frame after a fault: every output, with the right size and K."""
    outputs = node.serve(_image(index), _info(index), k=test_intrinsics().matrix)
    depth = image_msg_to_array(outputs["depth/image"])
    assert depth.shape == (HEIGHT, WIDTH) and np.isfinite(depth).mean() > 0.5
    np.testing.assert_allclose(
        outputs["depth/camera_info"].k, test_intrinsics().matrix.reshape(-1)
    )
    assert node.process.poll() is None, "the node must keep running"


# Runs first: the node has not seen any camera_info yet.
def test_no_camera_info_falls_back_to_the_hfov_with_a_warning(node):
    hfov = PARAMETERS_BY_NAME["fallback_hfov_deg"].default
    expected = CameraIntrinsics.from_hfov(WIDTH, HEIGHT, hfov)
    outputs = node.serve(_image(0), None)
    np.testing.assert_allclose(outputs["depth/camera_info"].k, expected.matrix.reshape(-1))
    node.harness.wait_for(
        lambda: node.counter("fallback_intrinsics") > 0, 10, "fallback_intrinsics"
    )
    assert f"assuming a horizontal field of view of {hfov}" in node.log()


def test_odd_sized_image_is_served(node):
    intrinsics = CameraIntrinsics(fx=150.0, fy=150.0, cx=80.0, cy=59.0, width=161, height=119)
    outputs = node.serve(_image(1, 161, 119), _info(1, intrinsics), k=intrinsics.matrix)
    for topic in ("depth/image", "segmentation/mask", "segmentation/color"):
        assert (outputs[topic].width, outputs[topic].height) == (161, 119), topic
    assert (outputs["points"].width, outputs["points"].height) == (161, 119)
    assert np.isfinite(image_msg_to_array(outputs["depth/image"])).mean() > 0.5
    # 1.5 % off 4:3 is no squeeze: no warning, only the line that says which input it gets
    node.harness.wait_for(
        lambda: "images of 161x119 run at the network input 128x96" in node.log(), 10, "info"
    )
    assert "images of 161x119 (aspect" not in node.log()


def test_wide_images_are_served_with_a_warning_naming_an_unsqueezed_input_size(node):
    # 2:1 into the tests' 128x96 (4:3) network input: shapes a third narrower than they are
    intrinsics = CameraIntrinsics(fx=120.0, fy=120.0, cx=99.5, cy=49.5, width=200, height=100)
    outputs = node.serve(_image(2, 200, 100), _info(2, intrinsics), k=intrinsics.matrix)
    assert (outputs["depth/image"].width, outputs["depth/image"].height) == (200, 100)
    width, height = aspect_matched_size(
        200, 100, NODE_PARAMS["input_width"], NODE_PARAMS["input_height"]
    )
    assert (width, height) == (128, 64)
    node.harness.wait_for(lambda: "images of 200x100 (aspect 2.00)" in node.log(), 10, "warning")
    assert "network input 128x96 (aspect 1.33)" in node.log() and "33% narrower" in node.log()
    assert f"input_width: {width} and input_height: {height}" in node.log()
    assert node.log().count("images of 200x100") == 1
    node.serve(_image(3, 200, 100), _info(3, intrinsics), k=intrinsics.matrix)
    assert node.log().count("images of 200x100") == 1  # once per size, not per frame


def test_row_padding_gives_the_same_depth_as_packed_rows(node):
    # The same K for both (depth scales with the focal length; an earlier test's camera_info
    # may still be the latest the node has).
    k = test_intrinsics().matrix
    packed = node.serve(_image(2), _info(2), k=k)["depth/image"]
    rgb = test_image(2)
    padded_rows = np.zeros((HEIGHT, WIDTH * 3 + 13), np.uint8)
    padded_rows[:, : WIDTH * 3] = rgb.reshape(HEIGHT, -1)
    padded_rows[:, WIDTH * 3 :] = 255  # garbage in the padding must not leak into the image
    padded = Image(
        header=_header(3), height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3 + 13
    )
    padded.data = fast_bytes(padded_rows)
    result = node.serve(padded, _info(3), k=k)["depth/image"]
    np.testing.assert_allclose(
        image_msg_to_array(result), image_msg_to_array(packed), rtol=1e-5, equal_nan=True
    )


def _bad(index: int, width: int, height: int, encoding: str, step: int, size: int) -> Image:
    msg = Image(header=_header(index), height=height, width=width, encoding=encoding, step=step)
    msg.data = fast_bytes(np.zeros(size, np.uint8))
    return msg


# (kind, message, words the error must contain). The oversized frame claims 100000x400 pixels
# with a tiny buffer: the node refuses it on the claimed size, before touching the data.
BAD_IMAGES = [
    ("encoding", "encoding", lambda i: _bad(i, 4, 2, "yuv422", 8, 16), "unsupported encoding"),
    ("zero_size", "empty", lambda i: _bad(i, 0, 0, "rgb8", 0, 0), "empty image"),
    ("zero_width", "empty", lambda i: _bad(i, 0, 120, "rgb8", 0, 0), "empty image"),
    (
        "too_large",
        "too_large",
        lambda i: _bad(i, 100_000, 400, "mono8", 100_000, 64),
        "exceeds the limit",
    ),
    (
        "data_length",
        "data_length",
        lambda i: _bad(i, WIDTH, HEIGHT, "rgb8", WIDTH * 3, 1000),
        "height x step",
    ),
    (
        "short_step",
        "step",
        lambda i: _bad(i, WIDTH, HEIGHT, "rgb8", WIDTH, WIDTH * HEIGHT),
        "shorter than",
    ),
]


@pytest.mark.parametrize(
    ("position", "kind", "make", "words"),
    [(i, *case[1:]) for i, case in enumerate(BAD_IMAGES)],
    ids=[case[0] for case in BAD_IMAGES],
)
def test_bad_image_is_counted_logged_and_the_next_frame_served(node, position, kind, make, words):
    assert 100_000 * 400 > MAX_IMAGE_PIXELS
    index = 10 + position
    bad = make(index)
    before = node.counter(f"errors_bad_image_{kind}")
    total = node.counter("errors_bad_image")
    node.wait_counter_above(
        f"errors_bad_image_{kind}", before, lambda: node.harness.image_pub.publish(bad)
    )
    assert node.counter("errors_bad_image") > total
    assert words in node.diagnostics["last_error"]
    assert node.diagnostics["level"] == "2"  # ERROR while the period had a bad frame
    assert "dropped a frame: " in node.log() and words in node.log()
    _good_frame_served(node, 30 + index)


def test_camera_info_of_another_size_is_scaled_with_a_warning(node):
    big = CameraIntrinsics(fx=320.0, fy=290.0, cx=150.0, cy=110.0, width=320, height=240)
    scaled = big.scaled(WIDTH, HEIGHT)
    assert scaled.fx == 160.0  # differs from test_intrinsics(): the wait below is meaningful
    before = node.counter("errors_camera_info_size")
    outputs = node.serve(_image(40), _info(40, big), k=scaled.matrix)
    np.testing.assert_allclose(
        outputs["depth/camera_info"].k, big.scaled(WIDTH, HEIGHT).matrix.reshape(-1)
    )
    assert (outputs["depth/camera_info"].width, outputs["depth/camera_info"].height) == (
        WIDTH,
        HEIGHT,
    )
    node.harness.wait_for(
        lambda: node.counter("errors_camera_info_size") > before, 10, "errors_camera_info_size"
    )
    assert "differs from the image's 160x120: scaling the intrinsics" in node.log()
    _good_frame_served(node, 41)


def test_camera_info_with_nan_k_uses_the_valid_p(node):
    info = _info(42)
    info.k = [math.nan] * 9
    outputs = node.serve(_image(42), info, k=test_intrinsics().matrix)
    np.testing.assert_allclose(
        outputs["depth/camera_info"].k, test_intrinsics().matrix.reshape(-1)
    )


@pytest.mark.parametrize("bad_value", [0.0, math.nan], ids=["zeros", "nan"])
def test_camera_info_without_valid_matrix_falls_back_and_is_counted(node, bad_value):
    index = 43 if bad_value == 0.0 else 45
    info = _info(index)
    info.k = [bad_value] * 9
    info.p = [bad_value] * 12
    before = node.counter("errors_bad_camera_info")
    hfov = PARAMETERS_BY_NAME["fallback_hfov_deg"].default
    expected = CameraIntrinsics.from_hfov(WIDTH, HEIGHT, hfov)
    outputs = node.serve(_image(index), info, k=expected.matrix)
    np.testing.assert_allclose(outputs["depth/camera_info"].k, expected.matrix.reshape(-1))
    node.harness.wait_for(
        lambda: node.counter("errors_bad_camera_info") > before, 10, "errors_bad_camera_info"
    )
    assert "ignoring camera_info: camera_info has neither a valid P nor a valid K" in node.log()
    _good_frame_served(node, index + 1)


def test_identical_and_decreasing_stamps_are_processed_and_counted(node):
    # Decision: such frames are processed (bag replays and relays produce them) and counted as
    # errors_stamp_not_increasing; every output keeps the frame's own stamp.
    first = node.serve(_image(60), _info(60))
    before = node.counter("errors_stamp_not_increasing")
    node.wait_counter_above(
        "errors_stamp_not_increasing",
        before,
        lambda: node.harness.image_pub.publish(_image(60)),  # the same stamp again
    )
    # A burst going back in time: each one that is processed keeps its own (older) stamp.
    burst = [_image(index) for index in (59, 58, 57)]
    for image in burst:
        node.harness.info_pub.publish(_info(0))
        node.harness.image_pub.publish(image)
    outputs = node.serve(_image(56), _info(56))
    assert first["depth/image"].header.stamp == _header(60).stamp
    assert outputs["depth/image"].header.stamp == _header(56).stamp
    assert outputs["points"].header.stamp == _header(56).stamp
    node.harness.wait_for(
        lambda: node.counter("errors_stamp_not_increasing") >= before + 2,
        10,
        "two stamp_not_increasing counts",
    )
    assert "is not after the previous frame's" in node.log()
