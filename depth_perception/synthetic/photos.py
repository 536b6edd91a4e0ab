"""Photographs used as textures by the randomised synthetic domain.

The tiles are crops of the photographs that ship inside the scikit-image wheel (read from its
installed ``data`` directory with ``sample_data.read_skimage_photo``; nothing downloads),
resized to ``TILE`` x ``TILE`` and stored in colour-shifted copies (original, channels rotated,
hue-rotated and inverted-luminance variants; grey images are tinted). Every image the project
evaluates on is held out (``HELD_OUT`` = ``sample_data.SKIMAGE_PHOTOS``: the Middlebury
*Motorcycle* benchmark image and the real-photo panels ``coffee``, ``astronaut``, ``chelsea``,
``rocket``), so none of them leaks into training data.

The bank is built once per process (a fraction of a second) and is a pure function of the
installed images, so renders are deterministic for a given scikit-image version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from depth_perception.sample_data import SKIMAGE_PHOTOS, read_skimage_photo

TILE = 128
# Files of scikit-image's data directory used as texture sources (photographs and scans, no
# synthetic charts), none of them an evaluation image.
PHOTO_SOURCES: tuple[str, ...] = (
    "brick.png",
    "camera.png",
    "cell.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "page.png",
    "retina.jpg",
    "text.png",
)
HELD_OUT: tuple[str, ...] = (*SKIMAGE_PHOTOS, "motorcycle_right.png")
if set(PHOTO_SOURCES) & set(HELD_OUT):  # pragma: no cover - guards edits of the tables
    raise RuntimeError("an evaluation photograph is listed as a texture source")
# crop windows as fractions (x0, y0, side) of the image's shorter side
_CROPS = ((0.0, 0.0, 1.0), (0.35, 0.3, 0.45), (0.05, 0.5, 0.5))
_TINTS = ((1.0, 0.85, 0.7), (0.7, 0.85, 1.0), (0.8, 1.0, 0.75))


@dataclass(frozen=True)
class PhotoBank:
    """``count`` RGBA tiles packed one texel per uint32 (one gather per lookup).

    Attributes:
        packed: (count * TILE * TILE,) uint32 texels, tile-major then row-major.
        means: (3, count) float32 mean RGB of each tile in [0, 1].
        size: tile side in texels.
        count: number of tiles.
    """

    packed: np.ndarray
    means: np.ndarray
    size: int
    count: int


def _variants(rgb: np.ndarray, grey: bool) -> list[np.ndarray]:
    """Colour-shifted copies of one uint8 RGB tile."""
    out = [rgb]
    if grey:
        for tint in _TINTS[:2]:
            out.append(np.clip(rgb * np.array(tint, dtype=np.float32), 0, 255).astype(np.uint8))
        out.append(255 - rgb)
        return out
    out.append(np.ascontiguousarray(rgb[..., [1, 2, 0]]))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 60) % 180
    out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = 255 - lab[..., 0]
    out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return out


def load_sources() -> dict[str, np.ndarray]:
    """The source photographs as uint8 RGB, by file name.

    Raises:
        FileNotFoundError: scikit-image is not installed or lacks a file.
    """
    return {name: read_skimage_photo(name) for name in PHOTO_SOURCES}


@functools.lru_cache(maxsize=1)
def photo_bank() -> PhotoBank:
    """The process-wide bank of photo tiles (built on first use)."""
    tiles = []
    for img in load_sources().values():
        h, w = img.shape[:2]
        side = min(h, w)
        grey = bool(np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
        for fx, fy, fs in _CROPS:
            cs = max(int(side * fs), 8)
            x0 = int((w - cs) * min(fx / max(1.0 - fs, 1e-6), 1.0)) if fs < 1 else (w - cs) // 2
            y0 = int((h - cs) * min(fy / max(1.0 - fs, 1e-6), 1.0)) if fs < 1 else (h - cs) // 2
            crop = img[y0 : y0 + cs, x0 : x0 + cs]
            tile = cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)
            tiles.extend(_variants(tile, grey))
    stack = np.stack(tiles)  # (T, TILE, TILE, 3) uint8
    rgba = np.concatenate([stack, np.full((*stack.shape[:3], 1), 255, np.uint8)], axis=3)
    packed = np.ascontiguousarray(rgba).view(np.uint32).reshape(-1)
    means = (stack.reshape(len(tiles), -1, 3).mean(axis=1).T / 255.0).astype(np.float32)
    return PhotoBank(packed=packed, means=np.maximum(means, 0.02), size=TILE, count=len(tiles))
