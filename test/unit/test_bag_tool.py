"""`depth-perception bag` on bags the test writes (sqlite3 and MCAP), read back with rosbags."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from depth_perception.apps.bag_tool import (
    default_prefix,
    output_topic_names,
    process_bag,
)
from depth_perception.cli import main as cli_main
from depth_perception.config import PerceptionConfig
from depth_perception.metrics import depth_metrics
from depth_perception.pointcloud import FLOAT32, UINT32
from training.data.fixtures import write_rosbag_fixture

SIZE = (64, 48)
FRAMES = 4
# torch backend and a small network input keep the test fast (no ONNX export).
MODEL_OPTIONS = ["--backend", "torch", "--input-width", "64", "--input-height", "64"]
CONFIG = PerceptionConfig(backend="torch", input_width=64, input_height=64)


def _read(path):
    """topic -> list of (log_time, msgtype, message), and the connections' types."""
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, log_time, raw in reader.messages():
            out.setdefault(conn.topic, []).append(
                (log_time, conn.msgtype, reader.deserialize(raw, conn.msgtype))
            )
    return out, types


def _stamp(msg) -> tuple[int, int]:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def test_prefix_and_topic_names():
    assert default_prefix("/camera/color/image_raw") == "/camera/color"
    assert default_prefix("/image") == ""
    names = output_topic_names("/camera")
    assert names["depth"] == "/camera/depth/image"
    assert names["points"] == "/camera/points"
    assert names["mask"] == "/camera/segmentation/mask"
    assert output_topic_names("")["depth_info"] == "/depth/camera_info"


@pytest.mark.parametrize(("storage", "depth_encoding"), [("sqlite3", "16UC1"), ("mcap", "32FC1")])
def test_bag_adds_node_outputs_with_input_headers(tmp_path, capsys, storage, depth_encoding):
    fixture = write_rosbag_fixture(
        tmp_path / "in", storage=storage, frames=FRAMES, size=SIZE, depth_encoding=depth_encoding
    )
    out = tmp_path / "out"
    rc = cli_main(
        [
            "bag",
            str(fixture.path),
            str(out),
            "--image-topic",
            fixture.topics["rgb"],
            "--depth-topic",
            fixture.topics["depth"],
            "--no-progress",
            "--points-stride",  # one point per pixel: the cloud is checked pixel by pixel
            "1",
            *MODEL_OPTIONS,
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "AbsRel" in printed and "RMSE" in printed and "delta1" in printed
    assert f"({FRAMES - 1} frames)" in printed  # the fixture's last depth is 100 ms off
    assert list(out.glob("*.mcap" if storage == "mcap" else "*.db3"))

    source, _ = _read(fixture.path)
    result, types = _read(out)
    # Every original message is copied unchanged.
    for topic, items in source.items():
        assert [(t, m) for t, m, _ in result[topic]] == [(t, m) for t, m, _ in items]
    images = source[fixture.topics["rgb"]]
    names = output_topic_names("/camera/color")
    expected_types = {
        "depth": "sensor_msgs/msg/Image",
        "depth_info": "sensor_msgs/msg/CameraInfo",
        "points": "sensor_msgs/msg/PointCloud2",
        "mask": "sensor_msgs/msg/Image",
        "color": "sensor_msgs/msg/Image",
    }
    w, h = SIZE
    for key, topic in names.items():
        assert types[topic] == expected_types[key]
        outputs = result[topic]
        assert len(outputs) == FRAMES
        for (log_in, _, image), (log_out, _, msg) in zip(images, outputs, strict=True):
            assert log_out == log_in
            assert _stamp(msg) == _stamp(image)
            assert msg.header.frame_id == image.header.frame_id == "camera_color_optical_frame"
            assert (msg.width, msg.height) == (w, h)

    encodings = {"depth": ("32FC1", 4 * w), "mask": ("mono8", w), "color": ("rgb8", 3 * w)}
    for key, (encoding, step) in encodings.items():
        for _, _, msg in result[names[key]]:
            assert msg.encoding == encoding
            assert msg.step == step and len(msg.data) == step * h

    intr = fixture.intrinsics
    for _, _, info in result[names["depth_info"]]:
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), intr.matrix)
        np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4), intr.projection)

    per_frame = []
    for (_, _, depth_msg), (_, _, cloud), (_, _, mask_msg), gt in zip(
        result[names["depth"]],
        result[names["points"]],
        result[names["mask"]],
        [*fixture.depth_m, None],
        strict=True,
    ):
        depth = np.frombuffer(bytes(depth_msg.data), np.float32).reshape(h, w)
        labels = np.frombuffer(bytes(mask_msg.data), np.uint8).reshape(h, w)
        assert np.isfinite(depth).any()
        assert not np.any(depth == 0) and not np.any(np.isinf(depth))  # NaN for unknown only
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            ("x", 0, FLOAT32),
            ("y", 4, FLOAT32),
            ("z", 8, FLOAT32),
            ("rgb", 12, FLOAT32),
            ("label", 16, UINT32),
        ]
        assert (cloud.height, cloud.width, cloud.point_step) == (h, w, 20)
        assert cloud.row_step == 20 * w and not cloud.is_dense
        points = np.frombuffer(bytes(cloud.data), np.uint8).reshape(h, w, 20)
        xyz = points[..., :12].copy().view(np.float32)
        # Same depth in the cloud as on depth/image, unprojected with the bag's intrinsics.
        np.testing.assert_array_equal(np.isnan(xyz[..., 2]), np.isnan(depth))
        valid = np.isfinite(depth)
        np.testing.assert_allclose(xyz[..., 2][valid], depth[valid])
        u = np.arange(w, dtype=np.float64)[None, :].repeat(h, 0)
        np.testing.assert_allclose(
            xyz[..., 0][valid], ((u - intr.cx) / intr.fx * depth)[valid], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(points[..., 16:20].copy().view("<u4")[..., 0], labels)
        if gt is not None:
            per_frame.append(depth_metrics(depth, gt))

    # The printed metrics are the mean over the paired frames of metrics computed here.
    expected_abs_rel = np.mean([m["abs_rel"] for m in per_frame])
    assert f"AbsRel {expected_abs_rel:.4f}" in printed


def test_bag_report_without_camera_info_uses_fallback(tmp_path):
    from rosbags.rosbag2 import Reader, Writer

    fixture = write_rosbag_fixture(tmp_path / "in", frames=2, size=SIZE)
    # A copy of the bag without its camera_info topic.
    stripped = tmp_path / "no_info"
    with Reader(fixture.path) as reader, Writer(stripped, version=9) as writer:
        conns = {}
        for conn in reader.connections:
            if conn.topic != fixture.topics["info"]:
                conns[conn.id] = writer.add_connection(
                    conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest
                )
        for conn, log_time, raw in reader.messages():
            if conn.id in conns:
                writer.write(conns[conn.id], log_time, raw)
    report = process_bag(
        stripped,
        tmp_path / "out",
        fixture.topics["rgb"],
        config=CONFIG,
        prefix="/mono",
        hfov_deg=90.0,
        progress=False,
    )
    assert report.frames == 2 and report.fallback_intrinsics == 2 and report.metrics is None
    assert report.written["/mono/points"] == 2
    result, _ = _read(tmp_path / "out")
    info = result["/mono/depth/camera_info"][0][2]
    # 90 deg: fx = (w / 2) / tan(45 deg) = w / 2.
    assert info.k[0] == pytest.approx(SIZE[0] / 2)


def test_bag_errors_are_reported(tmp_path, capsys):
    fixture = write_rosbag_fixture(tmp_path / "in", frames=1, size=SIZE)
    with pytest.raises(ValueError, match="no topic /nope"):
        process_bag(fixture.path, tmp_path / "o1", "/nope", config=CONFIG, progress=False)
    process_bag(
        fixture.path, tmp_path / "o2", fixture.topics["rgb"], config=CONFIG, progress=False
    )
    # Running again on the output would write the same topics twice: refused.
    with pytest.raises(ValueError, match="already holds"):
        process_bag(
            tmp_path / "o2", tmp_path / "o3", fixture.topics["rgb"], config=CONFIG, progress=False
        )
    (tmp_path / "exists").mkdir()
    rc = cli_main(
        ["bag", str(fixture.path), str(tmp_path / "exists"), "--image-topic", "/x", *MODEL_OPTIONS]
    )
    assert rc == 2
    assert "exists" in capsys.readouterr().err
