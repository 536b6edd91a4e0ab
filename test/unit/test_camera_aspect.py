"""``aspect_matched_size``: network input sizes that keep a camera's aspect ratio."""

from __future__ import annotations

import pytest

from depth_perception.camera import aspect_matched_size, aspect_squeeze, aspect_warning


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ((640, 480), (256, 192)),  # 4:3 keeps the checkpoint's size
        ((1280, 720), (288, 160)),  # 16:9: 1.8 instead of a 4:3 squeeze by a third
        ((1920, 1080), (288, 160)),
        ((741, 500), (288, 192)),  # Middlebury Motorcycle as scikit-image ships it
        ((640, 400), (256, 160)),
        ((480, 640), (192, 256)),  # portrait
    ],
)
def test_common_cameras(image: tuple[int, int], expected: tuple[int, int]) -> None:
    assert aspect_matched_size(*image, 256, 192) == expected


@pytest.mark.parametrize("multiple", [4, 8, 14, 32])
@pytest.mark.parametrize("image", [(640, 480), (1280, 720), (1000, 300), (300, 1000)])
def test_sizes_are_multiples_keep_the_aspect_and_the_pixel_budget(
    image: tuple[int, int], multiple: int
) -> None:
    width, height = aspect_matched_size(*image, 256, 192, multiple)
    assert width % multiple == 0 and height % multiple == 0
    # rounding each side to the multiple moves the aspect by at most about half a step per side
    tolerance = multiple / 2 / min(width, height) * 2.2
    assert abs(aspect_squeeze(*image, width, height) - 1.0) <= tolerance
    assert 0.6 <= width * height / (256 * 192) <= 1.6


def test_squeeze_and_errors() -> None:
    assert aspect_squeeze(1280, 720, 256, 192) == pytest.approx(0.75)
    assert aspect_squeeze(640, 480, 256, 192) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        aspect_matched_size(640, 0, 256, 192)
    with pytest.raises(ValueError, match="positive"):
        aspect_matched_size(640, 480, 256, 192, multiple=0)


def test_aspect_warning_names_the_parameters_that_fix_it() -> None:
    assert aspect_warning(640, 480, 256, 192) is None
    assert aspect_warning(660, 480, 256, 192) is None  # 3 %: within the tolerance
    text = aspect_warning(1280, 720, 256, 192)
    assert text is not None
    assert "1280x720 (aspect 1.78)" in text and "256x192 (aspect 1.33)" in text
    assert "25% narrower" in text
    assert "input_width: 288 and input_height: 160" in text
    assert "wider" in (aspect_warning(480, 640, 256, 192) or "")


def test_aspect_warning_without_a_better_input_says_so_instead_of_naming_the_same_size() -> None:
    # 5:4 at 256x192's pixel count: the 32-grid's nearest is 256x192 itself (6.7 % off)
    assert aspect_matched_size(1280, 1024, 256, 192) == (256, 192)
    text = aspect_warning(1280, 1024, 256, 192)
    assert text is not None and "input_width: 256" not in text
    assert "No input in multiples of 32 with about as many pixels" in text
