"""Frame sources: video files, image folders, V4L2 cameras and the synthetic renderer.

Pure core used by ``camera_source_node`` (no rclpy). Every source yields
:class:`SourceFrame` objects with an RGB uint8 image and, when the source knows them, the camera
intrinsics, metric depth and semantic labels (the synthetic source provides all of them).

Usage::

    with open_source("video", path="drive.mp4", loop=True) as source:
        while (frame := source.read()) is not None:
            ...
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True, eq=False)
class SourceFrame:
    """One frame of a source.

    Attributes:
        rgb: HxWx3 uint8 image in RGB order.
        intrinsics: camera intrinsics for this image size, if known.
        depth: HxW float32 metric z-depth (+inf = sky / no return), if known.
        labels: HxW uint8 semantic class ids (255 = unlabelled), if known.
        pose: 4x4 float64 camera-to-world transform of the optical frame, if known.
    """

    rgb: np.ndarray
    intrinsics: CameraIntrinsics | None = None
    depth: np.ndarray | None = None
    labels: np.ndarray | None = None
    pose: np.ndarray | None = None


class FrameSource:
    """Base class: ``read()`` returns the next frame or None at the end; ``close()`` frees it.

    Sources are context managers and iterables (iteration stops at the end of the stream).
    ``read()`` after ``close()`` returns None.
    """

    #: nominal frame rate in Hz, when the source knows it (video files, cameras)
    frame_rate: float | None = None

    def read(self) -> SourceFrame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying resources (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[SourceFrame]:
        while (frame := self.read()) is not None:
            yield frame


def _intrinsics_for(
    intrinsics: CameraIntrinsics | None, width: int, height: int
) -> CameraIntrinsics | None:
    """The given intrinsics, rescaled if they were calibrated at another resolution."""
    if intrinsics is None:
        return None
    if (intrinsics.width, intrinsics.height) == (width, height):
        return intrinsics
    return intrinsics.scaled(width, height)


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class VideoFileSource(FrameSource):
    """Frames of a video file decoded by OpenCV.

    Args:
        path: video file (any container / codec the OpenCV build reads).
        loop: restart from the first frame at the end instead of returning None.
        intrinsics: calibration to attach to every frame (rescaled to the video size).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot decode it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        loop: bool = False,
        intrinsics: CameraIntrinsics | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self.loop = bool(loop)
        self._intrinsics = intrinsics
        self._cap: cv2.VideoCapture | None = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.frame_rate = float(fps) if fps and fps > 0 else None
        self._frames = 0  # frames read since the (re)start

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise ValueError(
                f"OpenCV cannot open video {self.path} (not a video, or a codec this OpenCV "
                "build lacks; try converting it to MJPG .avi or H.264 .mp4)"
            )
        return cap

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok and self.loop and self._frames > 0:
            # rewind; some backends cannot seek, so reopen when that fails
            if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                self._cap.release()
                self._cap = self._open()
            self._frames = 0
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        self._frames += 1
        rgb = _to_rgb(bgr)
        h, w = rgb.shape[:2]
        return SourceFrame(rgb=rgb, intrinsics=_intrinsics_for(self._intrinsics, w, h))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _natural_key(path: Path) -> list:
    """Sort key that orders frame_2.png before frame_10.png."""
    return [
        int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)
    ]


class ImageFolderSource(FrameSource):
    """The PNG / JPEG images of a folder, in natural name order (frame_2 before frame_10).

    Args:
        path: folder with the images (not searched recursively; other files are ignored).
        loop: restart from the first image at the end instead of returning None.
        intrinsics: calibration to attach to every frame (rescaled to each image's size).

    Raises:
        FileNotFoundError: the folder does not exist or holds no PNG / JPEG image.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        loop: bool = False,
        intrinsics: CameraIntrinsics | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.path}")
        self.files = sorted(
            (
                p
                for p in self.path.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            ),
            key=_natural_key,
        )
        if not self.files:
            raise FileNotFoundError(
                f"no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} images in folder {self.path}"
            )
        self.loop = bool(loop)
        self._intrinsics = intrinsics
        self._next = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self.files)

    def read(self) -> SourceFrame | None:
        if self._closed:
            return None
        if self._next >= len(self.files):
            if not self.loop:
                return None
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode image {path}")
        rgb = _to_rgb(bgr)
        h, w = rgb.shape[:2]
        return SourceFrame(rgb=rgb, intrinsics=_intrinsics_for(self._intrinsics, w, h))

    def close(self) -> None:
        self._closed = True


class V4L2Source(FrameSource):
    """A live camera through OpenCV's Video4Linux2 backend.

    Args:
        device: camera index (0 for /dev/video0) or device path.
        width, height: requested capture size (the driver may pick the nearest it supports).
        fps: requested frame rate, or None for the driver default.
        intrinsics: calibration to attach to every frame (rescaled to the capture size).

    Raises:
        FileNotFoundError: the device node does not exist.
        RuntimeError: the device exists but cannot be opened (busy, no permission, not a
            capture device).
    """

    def __init__(
        self,
        device: int | str = 0,
        width: int | None = 640,
        height: int | None = 480,
        fps: float | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ) -> None:
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        node = f"/dev/video{device}" if isinstance(device, int) else str(device)
        if not os.path.exists(node):
            raise FileNotFoundError(
                f"camera device {node} does not exist (is the camera connected? list the "
                "devices with `ls /dev/video*` or `v4l2-ctl --list-devices`)"
            )
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise RuntimeError(
                f"cannot open camera {node}: it may be busy, not a capture device, or need "
                "permissions (add the user to the 'video' group)"
            )
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        got = cap.get(cv2.CAP_PROP_FPS)
        self.frame_rate = float(got) if got and got > 0 else None
        self.device = node
        self._cap: cv2.VideoCapture | None = cap
        self._intrinsics = intrinsics

    def read(self) -> SourceFrame | None:
        """The next camera frame, or None when the camera stopped delivering (unplugged)."""
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        rgb = _to_rgb(bgr)
        h, w = rgb.shape[:2]
        return SourceFrame(rgb=rgb, intrinsics=_intrinsics_for(self._intrinsics, w, h))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticSource(FrameSource):
    """Frames of a :class:`~depth_perception.synthetic.SyntheticWorld` with ground truth.

    Args:
        family: ``"indoor"`` or ``"road"``.
        width, height: image size.
        seed, scene_index: select the procedural scene.
        hfov_deg: horizontal field of view.
        max_frames: stop after this many frames (None: endless, the camera loops its path).
        start_index: index of the first frame along the camera path.
        frame_rate: nominal rate reported to consumers (Hz).
    """

    def __init__(
        self,
        family: str = "indoor",
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        scene_index: int = 0,
        hfov_deg: float = 70.0,
        max_frames: int | None = None,
        start_index: int = 0,
        frame_rate: float = 30.0,
    ) -> None:
        from depth_perception.synthetic import SyntheticWorld

        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
        self.world = SyntheticWorld(
            family, width, height, seed=seed, hfov_deg=hfov_deg, scene_index=scene_index
        )
        self.max_frames = max_frames
        self.frame_rate = float(frame_rate)
        self._index = int(start_index)
        self._count = 0
        self._closed = False

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.world.class_names

    @property
    def palette(self) -> np.ndarray:
        return self.world.palette

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.world.intrinsics

    def read(self) -> SourceFrame | None:
        if self._closed or (self.max_frames is not None and self._count >= self.max_frames):
            return None
        frame = self.world.render(self._index)
        self._index += 1
        self._count += 1
        return SourceFrame(
            rgb=frame.rgb,
            intrinsics=frame.intrinsics,
            depth=frame.depth,
            labels=frame.labels,
            pose=frame.pose,
        )

    def close(self) -> None:
        self._closed = True


SOURCE_KINDS: dict[str, type[FrameSource]] = {
    "video": VideoFileSource,
    "images": ImageFolderSource,
    "v4l2": V4L2Source,
    "synthetic": SyntheticSource,
}


def open_source(kind: str, **kwargs: Any) -> FrameSource:
    """Create a frame source by kind name.

    Settings that only other kinds use (e.g. ``path`` for a ``synthetic`` source) are ignored,
    so a caller such as ``camera_source_node`` can pass one superset of settings whatever the
    kind; names that no source kind knows raise TypeError (typos do not pass silently).

    Args:
        kind: one of ``video`` (path, loop, intrinsics), ``images`` (path, loop, intrinsics),
            ``v4l2`` (device, width, height, fps, intrinsics) or ``synthetic`` (family, width,
            height, seed, scene_index, hfov_deg, max_frames, start_index, frame_rate).
        **kwargs: settings passed to the source's constructor.

    Raises:
        ValueError: unknown kind.
        TypeError: a setting no source kind accepts.
    """
    cls = SOURCE_KINDS.get(kind)
    if cls is None:
        raise ValueError(
            f"unknown frame source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}"
        )
    accepted = _parameters(cls)
    known = set().union(*(_parameters(c) for c in SOURCE_KINDS.values()))
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(
            f"unknown frame source setting(s) {', '.join(unknown)}; {kind} sources accept "
            f"{', '.join(sorted(accepted))}"
        )
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def _parameters(cls: type[FrameSource]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


class ReplaySource(FrameSource):
    """Reads ``count`` frames of another source once, then replays them in a loop.

    For benchmarks: the consumer is measured, not the renderer or decoder behind the source.
    """

    def __init__(self, source: FrameSource, count: int) -> None:
        if count <= 0:
            raise ValueError(f"count must be > 0, got {count}")
        self._frames: list[SourceFrame] = []
        for _ in range(count):
            frame = source.read()
            if frame is None:
                break
            self._frames.append(frame)
        source.close()
        if not self._frames:
            raise ValueError("the source gave no frame to replay")
        self.frame_rate = source.frame_rate
        self._next = 0

    def read(self) -> SourceFrame | None:
        if not self._frames:
            return None
        frame = self._frames[self._next % len(self._frames)]
        self._next += 1
        return frame

    def close(self) -> None:
        self._frames = []
