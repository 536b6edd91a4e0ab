"""Pinhole camera intrinsics shared by the renderer, the predictor and the point-cloud builder.

Imports no rclpy: the node converts sensor_msgs/CameraInfo to and from this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Rectified pinhole intrinsics for an image of ``width`` x ``height`` pixels.

    Follows REP 103 / the ROS CameraInfo convention: the optical frame has x right, y down,
    z forward, and a pixel centre (u, v) sees the ray ((u - cx) / fx, (v - cy) / fy, 1).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"intrinsics must be finite, got fx, fy, cx, cy = {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
        """Square-pixel intrinsics with the principal point at the image centre."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"horizontal field of view must be in (0, 180) deg, got {hfov_deg}")
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    @classmethod
    def from_matrix(cls, k: np.ndarray | list[float], width: int, height: int) -> CameraIntrinsics:
        """From a 3x3 K (or a 3x4 P, or either flattened row-major)."""
        m = np.asarray(k, dtype=np.float64).reshape(3, -1)
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), width, height)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of the same camera after resizing the image to ``width`` x ``height``.

        Uses the pixel-centre convention of cv2.resize / align_corners=False, so a pixel of the
        resized image sees the same ray as the corresponding area of the original.
        """
        sx = width / self.width
        sy = height / self.height
        return CameraIntrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @property
    def projection(self) -> np.ndarray:
        """The 3x4 projection matrix P of a monocular rectified camera (Tx = Ty = 0)."""
        return np.hstack([self.matrix, np.zeros((3, 1))])

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan((self.width / 2.0) / self.fx))


def depth_from_disparity(
    disparity: np.ndarray, focal: float, baseline_m: float, doffs: float = 0.0
) -> np.ndarray:
    """Depth of a rectified stereo pair, ``focal * baseline / (disparity + doffs)``, in metres.

    Args:
        disparity: Left-image disparity in pixels, any shape.
        focal: Focal length in pixels.
        baseline_m: Baseline in metres.
        doffs: x-difference of the two principal points in pixels (Middlebury's ``doffs``).

    Returns:
        float32 depth of disparity's shape, 0 where it is unknown: a non-finite disparity or
        ``disparity + doffs <= 0``.
    """
    d = np.asarray(disparity, dtype=np.float64) + doffs
    with np.errstate(invalid="ignore"):
        known = np.isfinite(d) & (d > 0)
    depth = np.zeros(d.shape, dtype=np.float32)
    depth[known] = (focal * baseline_m / d[known]).astype(np.float32)
    return depth


def focal_scale(
    fx_network: Any, canonical_focal_px: float | None, focal_exponent: float = 1.0
) -> Any:
    """Factor from a model's canonical-focal depth output to metres for a camera.

    A model trained over many fields of view predicts the depth that a camera with focal
    length ``canonical_focal_px`` (network-input pixels) would see; a camera whose focal
    length is ``fx_network`` in the same pixels sees that depth times
    ``(fx_network / canonical_focal_px) ** focal_exponent``. The exponent is 1 for a network
    that follows the focal length exactly; a fitted one (< 1) corrects one that follows it
    only partly (``depth_perception.models.lightweight``).

    Args:
        fx_network: Horizontal focal length(s) in pixels of the network input, i.e. the
            image's ``fx`` times ``input_width / image_width`` (a float, array or tensor).
        canonical_focal_px: The model's ``canonical_focal_px``; None means the output is
            metric as it is (factor 1.0).
        focal_exponent: The model's ``focal_exponent``.
    """
    if canonical_focal_px is None:
        return 1.0
    ratio = fx_network / float(canonical_focal_px)
    return ratio if focal_exponent == 1.0 else ratio ** float(focal_exponent)


# Input sizes that :func:`aspect_matched_size` suggests are multiples of this: every registered
# model's ``input_multiple`` (4, 8 or 32) divides it (the model contract test checks that), so a
# suggestion is a size every model can take.
SUGGESTED_SIZE_MULTIPLE = 32
# Aspect ratios further apart than this (relative) are reported as a squeeze.
ASPECT_TOLERANCE = 0.05


def aspect_matched_size(
    image_width: int,
    image_height: int,
    base_width: int,
    base_height: int,
    multiple: int = SUGGESTED_SIZE_MULTIPLE,
) -> tuple[int, int]:
    """A network input ``(width, height)`` with the image's aspect ratio and about the pixels
    of ``base_width x base_height``, both sides multiples of ``multiple``.

    The network input is the image resized to it; when the two aspect ratios differ, every
    shape the network sees is squeezed one way (a 16:9 camera into a 4:3 input: a quarter),
    which no training frame was. Keeping the pixel count keeps the inference cost about the
    same: 640x480 stays 256x192 for a 256x192 base, 741x500 gets 288x192, 1280x720 288x160.

    Raises:
        ValueError: a size or ``multiple`` is not positive.
    """
    sizes = (image_width, image_height, base_width, base_height, multiple)
    if min(sizes) < 1:
        raise ValueError(f"sizes and multiple must be positive, got {sizes}")
    aspect = image_width / image_height
    area = base_width * base_height
    height = max(multiple, round(math.sqrt(area / aspect) / multiple) * multiple)
    width = max(multiple, round(height * aspect / multiple) * multiple)
    return int(width), int(height)


def aspect_squeeze(
    image_width: int, image_height: int, input_width: int, input_height: int
) -> float:
    """How much resizing the image to the input stretches it: the ratio of the input's aspect
    ratio to the image's (1.0 = undistorted; 0.75 = a 16:9 image in a 4:3 input)."""
    return (input_width / input_height) / (image_width / image_height)


def aspect_warning(
    image_width: int, image_height: int, input_width: int, input_height: int
) -> str | None:
    """The warning for images squeezed into a network input of another aspect ratio, with the
    ``input_width`` / ``input_height`` that fix it; None within :data:`ASPECT_TOLERANCE`."""
    squeeze = aspect_squeeze(image_width, image_height, input_width, input_height)
    if abs(squeeze - 1.0) <= ASPECT_TOLERANCE:
        return None
    width, height = aspect_matched_size(image_width, image_height, input_width, input_height)
    way = "narrower" if squeeze < 1.0 else "wider"
    text = (
        f"images of {image_width}x{image_height} (aspect {image_width / image_height:.2f}) are "
        f"resized to the network input {input_width}x{input_height} (aspect "
        f"{input_width / input_height:.2f}): the network sees every shape "
        f"{abs(1.0 - squeeze):.0%} {way} than it is, which no training frame was. "
    )
    if (width, height) == (input_width, input_height):
        # e.g. 5:4 at 256x192: no size on the multiple-of-32 grid near this pixel count fits.
        return text + (
            f"No input in multiples of {SUGGESTED_SIZE_MULTIPLE} with about as many pixels "
            "has a closer aspect ratio; a larger input_width/input_height may"
        )
    return text + (
        f"Set input_width: {width} and input_height: {height} (the images' aspect ratio, about "
        "the same cost; match_camera_aspect does this by itself on a backend that takes any "
        "size, ONNX Runtime or torch, unless input_width/height are set; `depth-perception "
        "eval --dataset middlebury_skimage` shows the difference on a real image)"
    )
