"""Decoding of raw image buffers in every supported encoding, and refusal of bad ones."""

import numpy as np
import pytest

from depth_perception.image_encoding import ImageFormatError, decode_to_rgb, encoding_for_array


def _rgb(height=4, width=5):
    return np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("rgb8", lambda rgb: rgb),
        ("bgr8", lambda rgb: rgb[:, :, ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_decode_to_the_same_rgb(encoding, make):
    rgb = _rgb()
    raw = np.ascontiguousarray(make(rgb))
    decoded = decode_to_rgb(raw.tobytes(), 5, 4, raw.strides[0], encoding)
    np.testing.assert_array_equal(decoded, rgb)


def test_mono8_is_replicated_to_three_channels():
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    decoded = decode_to_rgb(gray.tobytes(), 5, 4, 5, "mono8")
    assert decoded.shape == (4, 5, 3)
    np.testing.assert_array_equal(decoded[:, :, 1], gray)


def test_row_padding_is_skipped():
    rgb = _rgb()
    padded = np.zeros((4, 5 * 3 + 9), np.uint8)
    padded[:, :15] = rgb.reshape(4, 15)
    padded[:, 15:] = 255  # padding bytes must not leak into the image
    decoded = decode_to_rgb(padded.tobytes(), 5, 4, 24, "rgb8")
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"encoding": "yuv422"}, "unsupported encoding"),
        ({"width": 0}, "empty image"),
        ({"height": 0}, "empty image"),
        ({"step": 14}, "shorter than one row"),
        ({"data": b"\x00" * 59}, "data holds 59 bytes"),
        ({"width": 100000, "height": 100000, "step": 300000}, "exceeds the limit"),
    ],
)
def test_bad_images_are_refused_with_a_reason(kwargs, message):
    arguments = {"data": _rgb().tobytes(), "width": 5, "height": 4, "step": 15, "encoding": "rgb8"}
    arguments.update(kwargs)
    with pytest.raises(ImageFormatError, match=message):
        decode_to_rgb(**arguments)


def test_encoding_for_array():
    assert encoding_for_array(np.zeros((2, 2), np.float32)) == "32FC1"
    assert encoding_for_array(np.zeros((2, 2), np.uint8)) == "mono8"
    assert encoding_for_array(np.zeros((2, 2), np.uint16)) == "16UC1"
    assert encoding_for_array(np.zeros((2, 2, 3), np.uint8)) == "rgb8"
    with pytest.raises(ValueError):
        encoding_for_array(np.zeros((2, 2, 3), np.float64))


@pytest.mark.parametrize(
    "kwargs, kind",
    [
        ({"encoding": "yuv422"}, "encoding"),
        ({"width": 0}, "empty"),
        ({"width": 100000, "height": 100000, "step": 300000}, "too_large"),
        ({"step": 14}, "step"),
        ({"data": b"\x00" * 59}, "data_length"),
    ],
)
def test_errors_name_their_kind_for_the_counters(kwargs, kind):
    arguments = {"data": _rgb().tobytes(), "width": 5, "height": 4, "step": 15, "encoding": "rgb8"}
    arguments.update(kwargs)
    with pytest.raises(ImageFormatError) as caught:
        decode_to_rgb(**arguments)
    assert caught.value.kind == kind
