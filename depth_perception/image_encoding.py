"""Decoding and encoding of raw image buffers in ROS sensor_msgs/Image encodings, without rclpy.

The node hands the message's fields to these functions, so every check on untrusted input
(encoding, sizes, step, buffer length) lives here and is unit-tested without ROS.
"""

from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
_INPUT_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}

SUPPORTED_INPUT_ENCODINGS: tuple[str, ...] = tuple(_INPUT_ENCODINGS)

# Refuse absurd frames before allocating for them: 8K x 8K RGBA is already 256 MB.
MAX_IMAGE_PIXELS = 7680 * 4320


class ImageFormatError(ValueError):
    """An image message that cannot be decoded; the message says what is wrong with it.

    Attributes:
        kind: what is wrong, for counters: ``encoding``, ``empty``, ``too_large``, ``step``,
            ``data_length``, ``compressed_format``, ``corrupt`` (a compressed payload that does
            not decode) or ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def decode_to_rgb(
    data: bytes | bytearray | memoryview | np.ndarray,
    width: int,
    height: int,
    step: int,
    encoding: str,
) -> np.ndarray:
    """Turn a raw image buffer into a contiguous HxWx3 uint8 RGB array.

    Args:
        data: the message's pixel buffer (read without copying where possible).
        width: pixels per row.
        height: rows.
        step: bytes per row, which may exceed ``width * channels`` (row padding).
        encoding: one of ``SUPPORTED_INPUT_ENCODINGS``.

    Raises:
        ImageFormatError: unsupported encoding, empty or oversized image, a step shorter than
            a row, or a buffer whose length does not match ``height * step``.
    """
    if encoding not in _INPUT_ENCODINGS:
        raise ImageFormatError(
            f"unsupported encoding '{encoding}'; supported: "
            + ", ".join(SUPPORTED_INPUT_ENCODINGS),
            "encoding",
        )
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"empty image ({width}x{height})", "empty")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageFormatError(
            f"image of {width}x{height} exceeds the limit of {MAX_IMAGE_PIXELS} pixels",
            "too_large",
        )
    channels, conversion = _INPUT_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageFormatError(
            f"step {step} is shorter than one row of {width} {encoding} pixels "
            f"({row_bytes} bytes)",
            "step",
        )
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buffer = buffer.reshape(-1)
    if buffer.size != height * step:
        raise ImageFormatError(
            f"data holds {buffer.size} bytes but height x step = {height} x {step} = "
            f"{height * step}",
            "data_length",
        )
    rows = buffer.reshape(height, step)[:, :row_bytes]
    pixels = rows.reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    if channels == 1:
        pixels = pixels[:, :, 0]
    # cv2 needs contiguous rows; padded rows make a copy here, which the conversion does anyway.
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def encoding_for_array(array: np.ndarray, color_encoding: str = "rgb8") -> str:
    """The sensor_msgs/Image encoding that describes ``array``."""
    if array.dtype == np.float32 and array.ndim == 2:
        return "32FC1"
    if array.dtype == np.uint16 and array.ndim == 2:
        return "16UC1"
    if array.dtype == np.uint8 and array.ndim == 2:
        return "mono8"
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return color_encoding
    raise ValueError(f"no image encoding for an array of {array.dtype} and shape {array.shape}")


# Formats of sensor_msgs/CompressedImage that image_transport's compressed plugin writes:
# "jpeg", "png", or "<encoding>; jpeg compressed <encoding>" (and "... png compressed ...").
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")

# The largest depth (m) a 16UC1 image can hold: 65535 mm.
MAX_MILLIMETRE_DEPTH = 65.535


def decode_compressed_to_rgb(
    data: bytes | bytearray | memoryview | np.ndarray, format_: str
) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload (jpeg or png) into HxWx3 uint8 RGB.

    Args:
        data: the message's ``data`` (the encoded file's bytes).
        format_: the message's ``format``; only its codec word (jpeg/jpg or png) is read, as
            image_transport writes e.g. ``rgb8; jpeg compressed bgr8``. Grey or 16-bit PNGs
            are turned into 8-bit RGB as OpenCV reads them.

    Raises:
        ImageFormatError: an unknown codec (``compressed_format``), an empty payload
            (``empty``), a payload OpenCV cannot decode (``corrupt``), or an oversized image
            (``too_large``).
    """
    codec = format_.lower()
    if "jpeg" not in codec and "jpg" not in codec and "png" not in codec:
        raise ImageFormatError(
            f"unsupported compressed format '{format_}'; supported: jpeg, png",
            "compressed_format",
        )
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buffer.size == 0:
        raise ImageFormatError("empty compressed image", "empty")
    bgr = cv2.imdecode(buffer.reshape(-1), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageFormatError(
            f"cannot decode {buffer.size} bytes as {format_} (corrupt or truncated)", "corrupt"
        )
    height, width = bgr.shape[:2]
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageFormatError(
            f"image of {width}x{height} exceeds the limit of {MAX_IMAGE_PIXELS} pixels",
            "too_large",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def depth_to_millimetres(
    depth: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None
) -> np.ndarray:
    """float metres (NaN = no estimate) -> uint16 millimetres, 0 = no estimate (REP 118).

    Rounds to the nearest millimetre. NaN, +-Inf, depths that round to 0 mm and depths beyond
    :data:`MAX_MILLIMETRE_DEPTH` (not representable) all become 0.

    Args:
        depth: float32 metres.
        out: uint16 array of depth's shape to write into (a reused buffer), else a new one.
        scratch: float32 array of depth's shape (a reused buffer), else a new one.
    """
    if out is None:
        out = np.empty(depth.shape, np.uint16)
    if scratch is None:
        scratch = np.empty(depth.shape, np.float32)
    np.multiply(depth, np.float32(1000.0), out=scratch)
    scratch += np.float32(0.5)
    # NaN compares False: a single test catches NaN, +Inf and the unrepresentable.
    with np.errstate(invalid="ignore"):
        keep = np.less(scratch, np.float32(65536.0))
        keep &= np.greater_equal(scratch, np.float32(1.0))
    np.copyto(scratch, np.float32(0.0), where=~keep)
    np.copyto(out, scratch, casting="unsafe")  # truncation of x + 0.5: rounding
    return out
