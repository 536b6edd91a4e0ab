"""Integration: the real nodes in separate processes over Fast DDS, checked topic by topic."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from ros_harness import HEIGHT, WIDTH, RosHarness, ros_session
from ros_harness import call as _call
from ros_harness import header as _header
from ros_harness import publish_frame as _publish_frame
from ros_harness import stamp_ns as _stamp_ns
from ros_harness import start_mono_depth as _start_mono_depth
from ros_harness import test_intrinsics as _intrinsics
from ros_harness import wait_for_subscription as _wait_for_subscription
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from depth_perception.apps.processes import start_node, stop_processes
from depth_perception.nodes.conversions import image_msg_to_array

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


def test_every_output_topic_of_mono_depth(ros, tmp_path):
    namespace = "/it_outputs"
    process = _start_mono_depth(ros, namespace, tmp_path)
    harness = RosHarness(namespace)
    try:
        _wait_for_subscription(harness)
        by_stamp = harness.monitor.by_stamp
        # Warm-up until camera_info has reached the node (until then it falls back to hfov).
        warm_up = _header(99)
        harness.publish_until(
            lambda: _publish_frame(harness, 99),
            lambda: (
                by_stamp.get(("depth/camera_info", _stamp_ns(warm_up)), CameraInfo()).k[0] == 150.0
            ),
            60,
            "camera_info to be used",
        )
        sent = []
        for index in range(3):
            encoding = "bgr8" if index == 1 else "rgb8"
            sent.append(_header(index))
            harness.publish_until(
                lambda i=index, e=encoding: _publish_frame(harness, i, e),
                lambda h=sent[-1]: all(
                    (topic, _stamp_ns(h)) in by_stamp
                    for topic in (
                        "depth/image",
                        "depth/camera_info",
                        "points",
                        "segmentation/mask",
                        "segmentation/color",
                    )
                ),
                60,
                f"all outputs of frame {index}",
            )
        # Stage timings only appear in diagnostics of a period with processed frames: keep
        # feeding frames (new stamps) until one such message has arrived.
        extra = iter(range(200, 400))
        harness.publish_until(
            lambda: _publish_frame(harness, next(extra)),
            lambda: "stage_inference_ms" in harness.monitor.results.diagnostic_keys,
            30,
            "diagnostics with stage timings",
        )
        intrinsics = _intrinsics()
        for header in sent:
            stamp = _stamp_ns(header)
            depth_msg = by_stamp[("depth/image", stamp)]
            info = by_stamp[("depth/camera_info", stamp)]
            cloud = by_stamp[("points", stamp)]
            mask_msg = by_stamp[("segmentation/mask", stamp)]
            color = by_stamp[("segmentation/color", stamp)]
            for msg in (depth_msg, info, cloud, mask_msg, color):
                assert msg.header.frame_id == "test_cam_optical"
                assert msg.header.stamp == header.stamp
            assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == (
                "32FC1",
                WIDTH,
                HEIGHT,
            )
            assert (mask_msg.encoding, mask_msg.width, mask_msg.height) == ("mono8", WIDTH, HEIGHT)
            assert (color.encoding, color.width, color.height) == ("rgb8", WIDTH, HEIGHT)
            depth = image_msg_to_array(depth_msg)
            assert not np.any(np.isinf(depth)), "depth must be finite or NaN"
            assert np.isfinite(depth).mean() > 0.5
            assert (info.width, info.height) == (WIDTH, HEIGHT)
            np.testing.assert_allclose(info.k, intrinsics.matrix.reshape(-1))
            mask = image_msg_to_array(mask_msg)
            classes = int(harness.monitor.results.diagnostics["num_classes"])
            assert np.all((mask < classes) | (mask == 255))
            # Organized cloud consistent with depth and intrinsics, pixel for pixel.
            assert (cloud.height, cloud.width, cloud.is_dense) == (HEIGHT, WIDTH, False)
            offsets = {f.name: f.offset for f in cloud.fields}
            assert {"x", "y", "z", "rgb", "label"} <= set(offsets)
            raw = np.frombuffer(cloud.data, np.uint8).reshape(HEIGHT, WIDTH, cloud.point_step)
            xyz = {
                axis: np.ascontiguousarray(raw[:, :, offsets[axis] : offsets[axis] + 4]).view(
                    np.float32
                )[:, :, 0]
                for axis in "xyz"
            }
            labels = raw[:, :, offsets["label"]]
            valid = np.isfinite(depth)
            np.testing.assert_allclose(xyz["z"][valid], depth[valid], rtol=1e-6)
            assert np.all(np.isnan(xyz["z"][~valid]))
            u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
            np.testing.assert_allclose(
                xyz["x"][valid],
                ((u - intrinsics.cx) * depth / intrinsics.fx)[valid],
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_allclose(
                xyz["y"][valid],
                ((v - intrinsics.cy) * depth / intrinsics.fy)[valid],
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_array_equal(labels, mask)
        diagnostics = harness.monitor.results.diagnostics
        for key in (
            "rate_hz",
            "dropped_frames",
            "model",
            "backend",
            "depth_is_metric",
            "stage_inference_ms",
            "stage_points_ms",
        ):
            assert key in harness.monitor.results.diagnostic_keys, key
        assert diagnostics["backend"] == "onnxruntime"
        # bgr8 and rgb8 frames of the same scene must give the same overlay colours' input:
        # checked through the decoded colour image being RGB (red channel rises left to right).
        color = image_msg_to_array(by_stamp[("segmentation/color", _stamp_ns(sent[1]))])
        assert color.shape == (HEIGHT, WIDTH, 3)
    finally:
        harness.close()
        codes = stop_processes([process])
    assert codes == [0], (tmp_path / "mono_depth_it_outputs.log").read_text()


def test_bad_frame_is_reported_and_next_frame_served(ros, tmp_path):
    namespace = "/it_bad"
    process = _start_mono_depth(ros, namespace, tmp_path)
    harness = RosHarness(namespace)
    try:
        _wait_for_subscription(harness)
        bad = Image(
            header=Header(stamp=Time(sec=5, nanosec=0), frame_id="test_cam_optical"),
            height=2,
            width=2,
            encoding="yuv422",
            step=4,
            data=b"\x00" * 8,
        )
        harness.publish_until(
            lambda: harness.image_pub.publish(bad),
            lambda: "errors_bad_image" in harness.monitor.results.diagnostics,
            30,
            "the bad frame in diagnostics",
        )
        assert "yuv422" in harness.monitor.results.diagnostics["last_error"]
        header = _header(7)
        harness.publish_until(
            lambda: _publish_frame(harness, 7),
            lambda: ("depth/image", _stamp_ns(header)) in harness.monitor.by_stamp,
            30,
            "depth for the good frame after the bad one",
        )
        assert process.poll() is None
    finally:
        harness.close()
        stop_processes([process])


def test_synthetic_camera_source_feeds_mono_depth(ros, tmp_path):
    namespace = "/it_synthetic"
    source = start_node(
        "camera_source_node",
        ros,
        {"source": "synthetic", "width": WIDTH, "height": HEIGHT, "rate_hz": 10.0, "scene": 3},
        namespace=namespace,
        log_path=tmp_path / "camera_source.log",
    )
    process = _start_mono_depth(ros, namespace, tmp_path)
    harness = RosHarness(namespace)
    expected = (
        "image",
        "camera_info",
        "ground_truth/depth",
        "ground_truth/mask",
        "points",
        "segmentation/mask",
    )
    try:
        # Every topic is waited for, not only depth: the monitor's subscription to the camera's
        # own topics can match later than its depth subscription on a loaded machine.
        harness.wait_for(
            lambda: (
                harness.monitor.results.counts.get("depth/image", 0) >= 3
                and all(harness.monitor.results.counts.get(t, 0) > 0 for t in expected)
            ),
            120,
            "three depth images and every camera topic from the synthetic camera",
        )
        counts = harness.monitor.results.counts
        for topic in expected:
            assert counts.get(topic, 0) > 0, topic
        truth = harness.monitor.last["ground_truth/depth"]
        assert truth.encoding == "32FC1" and truth.header.frame_id == "camera_optical_frame"
        # Depth outputs carry the stamps of camera frames that really were published.
        image_stamps = {s for (t, s) in harness.monitor.by_stamp if t == "image"}
        # (only those from after the monitor's first image: before, it could not see them)
        depth_stamps = {
            s
            for (t, s) in harness.monitor.by_stamp
            if t == "depth/image" and s >= min(image_stamps)
        }
        assert depth_stamps and depth_stamps <= image_stamps
    finally:
        harness.close()
        stop_processes([process, source])


def test_parameters_and_lifecycle_over_ros(ros, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, SetParameters

    namespace = "/it_lifecycle"
    process = _start_mono_depth(ros, namespace, tmp_path)
    harness = RosHarness(namespace)
    node = harness.node
    try:
        _wait_for_subscription(harness)
        set_client = node.create_client(SetParameters, "mono_depth/set_parameters")
        describe = node.create_client(DescribeParameters, "mono_depth/describe_parameters")
        get_state = node.create_client(GetState, "mono_depth/get_state")
        change_state = node.create_client(ChangeState, "mono_depth/change_state")

        def set_int(name, value):
            parameter = ParameterMsg(
                name=name,
                value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value),
            )
            return _call(harness, set_client, SetParameters.Request(parameters=[parameter]))

        refused = set_int("points_stride", 0).results[0]
        assert not refused.successful and "out of range" in refused.reason
        backend = ParameterMsg(
            name="backend",
            value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="cudnn"),
        )
        reply = _call(harness, set_client, SetParameters.Request(parameters=[backend]))
        assert not reply.results[0].successful
        assert "must be one of auto, onnxruntime, torch, tensorrt" in reply.results[0].reason
        assert set_int("points_stride", 2).results[0].successful
        described = _call(harness, describe, DescribeParameters.Request(names=["points_stride"]))
        descriptor = described.descriptors[0]
        assert descriptor.description and descriptor.integer_range[0].to_value == 16

        # The new stride applies at run time: the next cloud is half the size.
        harness.publish_until(
            lambda: _publish_frame(harness, 20),
            lambda: ("points", _stamp_ns(_header(20))) in harness.monitor.by_stamp,
            60,
            "a cloud after the stride change",
        )
        cloud = harness.monitor.by_stamp[("points", _stamp_ns(_header(20)))]
        assert (cloud.width, cloud.height) == (WIDTH // 2, HEIGHT // 2)

        assert _call(harness, get_state, GetState.Request()).current_state.label == "active"
        for transition, label in (
            (Transition.TRANSITION_DEACTIVATE, "inactive"),
            (Transition.TRANSITION_CLEANUP, "unconfigured"),
            (Transition.TRANSITION_CONFIGURE, "inactive"),
            (Transition.TRANSITION_ACTIVATE, "active"),
        ):
            request = ChangeState.Request()
            request.transition.id = transition
            assert _call(harness, change_state, request, timeout=120).success, label
            assert _call(harness, get_state, GetState.Request()).current_state.label == label
        # Serving again after the full cycle.
        harness.publish_until(
            lambda: _publish_frame(harness, 21),
            lambda: ("depth/image", _stamp_ns(_header(21))) in harness.monitor.by_stamp,
            60,
            "depth after a reconfigure cycle",
        )
    finally:
        harness.close()
        codes = stop_processes([process])
    assert codes == [0]


def test_unknown_model_leaves_the_node_unconfigured_and_saying_why(ros, tmp_path):
    namespace = "/it_unknown_model"
    process = _start_mono_depth(ros, namespace, tmp_path, model="no_such_model")
    harness = RosHarness(namespace)
    try:
        harness.wait_for(
            lambda: harness.monitor.results.diagnostics.get("message", "").startswith(
                "configure failed"
            ),
            60,
            "diagnostics of the failed configure",
        )
        diagnostics = harness.monitor.results.diagnostics
        assert (
            "Available models" in diagnostics["message"]
            and "lightweight" in diagnostics["message"]
        )
        assert diagnostics["level"] == "2"  # ERROR
        assert process.poll() is None, "the node must stay up, unconfigured"
    finally:
        harness.close()
        stop_processes([process])
