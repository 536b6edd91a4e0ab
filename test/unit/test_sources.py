"""Tests of the frame sources: video file, image folder, V4L2 errors, synthetic, factory."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from depth_perception.sources import (
    SOURCE_KINDS,
    FrameSource,
    ImageFolderSource,
    SourceFrame,
    SyntheticSource,
    V4L2Source,
    VideoFileSource,
    open_source,
)
from depth_perception.synthetic import SyntheticWorld

W, H = 64, 48


def _frame(i: int) -> np.ndarray:
    """RGB test frame: a colour that identifies the frame, and a red square top left."""
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[:] = (20 * i, 100, 200 - 20 * i)
    rgb[:16, :16] = (255, 0, 0)
    return rgb


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(5):
        writer.write(cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_file_source_reads_all_frames_in_rgb(video):
    with VideoFileSource(video) as source:
        assert source.frame_rate == pytest.approx(10.0)
        frames = list(source)
        assert source.read() is None  # stays at the end
    assert len(frames) == 5
    for i, frame in enumerate(frames):
        assert isinstance(frame, SourceFrame)
        assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
        assert frame.intrinsics is None and frame.depth is None and frame.labels is None
        # RGB order: the top-left square is red, the body colour identifies the frame (JPEG)
        assert frame.rgb[4:12, 4:12, 0].mean() > 200 and frame.rgb[4:12, 4:12, 2].mean() < 60
        np.testing.assert_allclose(
            frame.rgb[30:, 30:].mean(axis=(0, 1)), _frame(i)[40, 40], atol=8
        )


def test_video_file_source_loops_and_attaches_intrinsics(video):
    calib = CameraIntrinsics.from_hfov(2 * W, 2 * H, 60.0)  # calibrated at twice the size
    source = VideoFileSource(str(video), loop=True, intrinsics=calib)
    frames = [source.read() for _ in range(12)]
    source.close()
    assert all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[5].rgb, frames[0].rgb)
    np.testing.assert_array_equal(frames[11].rgb, frames[1].rgb)
    assert frames[0].intrinsics == calib.scaled(W, H)
    assert source.read() is None  # closed


def test_video_file_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4"):
        VideoFileSource(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="cannot open video"):
        VideoFileSource(junk)


def test_image_folder_source_natural_order_and_loop(tmp_path):
    names = ["frame_10.png", "frame_2.png", "frame_1.jpg"]
    for i, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name is skipped
    source = ImageFolderSource(tmp_path)
    assert len(source) == 3
    assert [p.name for p in source.files] == ["frame_1.jpg", "frame_2.png", "frame_10.png"]
    frames = list(source)
    assert len(frames) == 3 and source.read() is None
    np.testing.assert_array_equal(frames[1].rgb, _frame(1))  # PNG: lossless, RGB order
    np.testing.assert_array_equal(frames[2].rgb, _frame(0))
    assert frames[0].rgb[8, 8].tolist()[0] > 200  # JPEG, still red first
    with ImageFolderSource(tmp_path, loop=True) as looping:
        again = [looping.read() for _ in range(7)]
    np.testing.assert_array_equal(again[6].rgb, again[0].rgb)
    assert looping.read() is None


def test_image_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderSource(tmp_path / "nope")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no png/jpg/jpeg images"):
        ImageFolderSource(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="cannot decode"):
        ImageFolderSource(tmp_path).read()


def test_v4l2_source_reports_missing_device():
    index = next(i for i in range(90, 200) if not os.path.exists(f"/dev/video{i}"))
    with pytest.raises(FileNotFoundError, match=f"/dev/video{index} does not exist"):
        V4L2Source(index)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        V4L2Source(str(index))
    with pytest.raises(FileNotFoundError, match="/dev/no_such_camera"):
        V4L2Source("/dev/no_such_camera")


def test_synthetic_source_provides_ground_truth():
    source = SyntheticSource("road", W, H, seed=0, scene_index=0, max_frames=3, start_index=4)
    world = SyntheticWorld("road", W, H, seed=0, scene_index=0)
    frames = list(source)
    assert len(frames) == 3 and source.read() is None
    assert source.class_names == world.class_names
    assert source.intrinsics == world.intrinsics
    for k, frame in enumerate(frames):
        ref = world.render(4 + k)
        np.testing.assert_array_equal(frame.rgb, ref.rgb)
        np.testing.assert_array_equal(frame.depth, ref.depth)
        np.testing.assert_array_equal(frame.labels, ref.labels)
        np.testing.assert_array_equal(frame.pose, ref.pose)
        assert frame.intrinsics == ref.intrinsics
    with pytest.raises(ValueError, match="max_frames"):
        SyntheticSource("indoor", W, H, max_frames=-1)


def test_open_source_factory(tmp_path):
    assert set(SOURCE_KINDS) == {"video", "images", "v4l2", "synthetic"}
    with pytest.raises(ValueError, match="video, images, v4l2, synthetic"):
        open_source("webcam")
    cv2.imwrite(str(tmp_path / "0.png"), _frame(0))
    with open_source("images", path=tmp_path) as source:
        assert isinstance(source, ImageFolderSource) and isinstance(source, FrameSource)
        assert source.read().rgb.shape == (H, W, 3)
    with open_source("synthetic", family="indoor", width=W, height=H, max_frames=1) as source:
        frame = source.read()
        assert frame.depth.shape == (H, W) and np.isfinite(frame.depth).all()
        assert frame.labels.shape == (H, W)
    with pytest.raises(FileNotFoundError):
        open_source("video", path=tmp_path / "none.avi")
    # one superset of settings works for every kind (camera_source_node passes all of them)
    common = dict(path=str(tmp_path), device="0", family="road", seed=0, scene_index=1)
    common.update(width=W, height=H, hfov_deg=70.0, loop=True)
    with open_source("synthetic", **common) as source:
        assert source.world.family == "road" and source.world.scene_index == 1
    with open_source("images", **common) as source:
        assert source.loop and len(source) == 1
    with pytest.raises(TypeError, match="widht"):
        open_source("images", path=tmp_path, widht=3)


def test_replay_source_cycles_the_first_frames():
    from depth_perception.sources import ReplaySource, SyntheticSource

    replay = ReplaySource(SyntheticSource("indoor", 64, 48, scene_index=1), 3)
    frames = [replay.read() for _ in range(7)]
    assert frames[0] is frames[3] is frames[6]
    assert frames[1] is not frames[0]
    with pytest.raises(ValueError, match="count"):
        ReplaySource(SyntheticSource("indoor", 64, 48), 0)
