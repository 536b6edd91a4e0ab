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
            ``data_length`` or ``other``.
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
