"""Images for humans: coloured label masks, overlays, colourised depth and preview panels.

Imports no rclpy. Every function takes and returns RGB (not BGR) uint8 images, as published on
rgb8 topics; convert with ``cv2.cvtColor`` before ``cv2.imwrite``. Class palettes for specific
datasets live with the datasets (``depth_perception.synthetic``); this module only has the
generic :func:`make_palette`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from depth_perception.classes import IGNORE_LABEL

"""Label id reserved for "unlabelled" pixels (drawn black, left untouched by overlays)."""


def make_palette(n: int) -> np.ndarray:
    """Deterministic, pairwise distinct, non-black colours for ``n`` classes.

    Class k gets the PASCAL VOC colour of index k + 1 (the bits of k + 1 spread over the high
    bits of R, G and B). That map is one-to-one, so the colours are distinct, and skipping VOC's
    index 0 keeps black free for unlabelled pixels.

    Args:
        n: Number of classes, 0..256 (label masks are uint8; id 255 is reserved).

    Returns:
        (n, 3) uint8 RGB palette.
    """
    if int(n) != n or not 0 <= n <= 256:
        raise ValueError(f"palette size must be an integer in [0, 256] (uint8 label ids), got {n}")
    idx = np.arange(1, int(n) + 1, dtype=np.int64)
    pal = np.zeros((int(n), 3), dtype=np.int64)
    for j in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * j + ch)) & 1) << (7 - j)
    return pal.astype(np.uint8)


def _check_palette(palette: np.ndarray) -> np.ndarray:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.dtype != np.uint8:
        raise ValueError(
            f"palette must be (N, 3) uint8 RGB, got {palette.shape} {palette.dtype} "
            "(use make_palette(n) for a generic one)"
        )
    return palette


def colorize_labels(
    labels: np.ndarray,
    palette: np.ndarray,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Colour a label-id mask with a palette.

    Args:
        labels: (H, W) uint8 class ids.
        palette: (N, 3) uint8 RGB colours of classes 0..N-1.
        out: optional (H, W, 3) uint8 array to write the colours into (reused per frame).
        scratch: optional (H, W, 3) uint8 work array (the ids on three channels).

    Returns:
        (H, W, 3) uint8 RGB (``out`` when given); ids >= N and the reserved id 255 are black.
    """
    palette = _check_palette(palette)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    # A 256-entry LUT makes this one table look-up, whatever the palette size; cv2.LUT on a
    # 3-channel copy of the ids is ~8x faster than numpy fancy indexing (0.35 ms at 640x480).
    lut = np.zeros((256, 1, 3), dtype=np.uint8)
    n = min(len(palette), IGNORE_LABEL)
    lut[:n, 0] = palette[:n]
    labels = np.ascontiguousarray(labels)
    shape = (*labels.shape, 3)
    for name, array in (("out", out), ("scratch", scratch)):
        if array is not None and (array.shape != shape or array.dtype != np.uint8):
            raise ValueError(f"{name} must be {shape} uint8, got {array.shape} {array.dtype}")
    ids = cv2.merge([labels, labels, labels], dst=scratch)
    if out is None:
        return cv2.LUT(ids, lut)
    cv2.LUT(ids, lut, dst=out)
    return out


def overlay(
    rgb: np.ndarray,
    color: np.ndarray,
    alpha: float,
    labels: np.ndarray | None = None,
    ignore_index: int = IGNORE_LABEL,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Alpha-blend a coloured mask onto an image: ``(1 - alpha) * rgb + alpha * color``.

    Args:
        rgb: (H, W, 3) uint8 input image.
        color: (H, W, 3) uint8 coloured mask (e.g. from :func:`colorize_labels`).
        alpha: Weight of the mask in [0, 1].
        labels: Optional (H, W) label ids: pixels equal to ``ignore_index`` keep the input.
        ignore_index: The unlabelled id.
        out: optional (H, W, 3) uint8 array to write the result into (reused per frame).

    Returns:
        (H, W, 3) uint8 blended image (rounded to nearest; ``out``, else a new array).
    """
    rgb = np.asarray(rgb)
    color = np.asarray(color)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if color.shape != rgb.shape or color.dtype != np.uint8:
        raise ValueError(
            f"color must match rgb {rgb.shape} uint8, got {color.shape} {color.dtype}; "
            "resize the mask to the image first (cv2.INTER_NEAREST)"
        )
    if out is not None and (out.shape != rgb.shape or out.dtype != np.uint8):
        raise ValueError(f"out must be {rgb.shape} uint8, got {out.shape} {out.dtype}")
    blended = cv2.addWeighted(rgb, 1.0 - float(alpha), color, float(alpha), 0.0, dst=out)
    out = blended if out is None else out
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"labels must be {rgb.shape[:2]}, got {labels.shape}")
        ignored = (labels == ignore_index).view(np.uint8)
        cv2.copyTo(rgb, ignored, out)  # in place; far faster than np.copyto(where=...)
    return out


@lru_cache(maxsize=32)
def _colormap_rgb(colormap: int) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    # (256, 1, 3) RGB: the shape cv2.LUT wants for a 3-channel table.
    table = cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB)
    table.setflags(write=False)
    return table


def depth_to_colormap_index(
    depth: np.ndarray, min_depth: float, max_depth: float, log_scale: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Map depth to colour-map indices: ``min_depth`` -> 255, ``max_depth`` -> 0.

    Args:
        depth: Depth in metres, any shape.
        min_depth: Depth drawn at index 255 (nearer is clipped to it).
        max_depth: Depth drawn at index 0 (farther is clipped to it).
        log_scale: Interpolate in ln(depth) instead of depth (more contrast up close).

    Returns:
        (index uint8, valid bool) arrays of depth's shape; valid = finite and > 0.
    """
    if not (np.isfinite(min_depth) and np.isfinite(max_depth) and min_depth < max_depth):
        raise ValueError(f"need finite min_depth < max_depth, got {min_depth}, {max_depth}")
    if log_scale and min_depth <= 0:
        raise ValueError(f"log_scale needs min_depth > 0, got {min_depth}")
    d = np.asarray(depth, dtype=np.float32)
    valid = (d > 0) & (d < np.inf)
    lo, hi = float(min_depth), float(max_depth)
    # fmax/fmin replace NaN too (with lo), so no branchy np.where; invalid pixels get masked
    # by the caller anyway.
    x = np.fmax(d, np.float32(lo))
    np.fmin(x, np.float32(hi), out=x)
    if log_scale:
        np.log(x, out=x)
        lo, hi = math.log(lo), math.log(hi)
    # index = 255 * (hi - x) / (hi - lo): 255 at min_depth, 0 at max_depth.
    np.subtract(np.float32(hi), x, out=x)
    x *= np.float32(255.0 / (hi - lo))
    np.clip(x, 0.0, 255.0, out=x)  # float rounding may step just outside
    np.rint(x, out=x)
    index = x.astype(np.uint8)
    return index, valid


def colorize_depth(
    depth: np.ndarray,
    min_depth: float,
    max_depth: float,
    colormap: int = cv2.COLORMAP_TURBO,
    log_scale: bool = False,
) -> np.ndarray:
    """Colourise a depth image: near is warm, far is cold.

    With the default TURBO map, ``min_depth`` (and nearer) is dark red, ``max_depth`` (and
    farther) dark blue; the colour-map index is 255 at ``min_depth`` and 0 at ``max_depth``
    (see :func:`depth_to_colormap_index`). NaN, +-inf, 0 and negative depths are black.

    Args:
        depth: (H, W) depth in metres.
        min_depth: Nearest depth of the colour range.
        max_depth: Farthest depth of the colour range.
        colormap: An OpenCV colour map id (cv2.COLORMAP_*).
        log_scale: Interpolate in ln(depth).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    index, valid = depth_to_colormap_index(depth, min_depth, max_depth, log_scale)
    out = cv2.LUT(cv2.merge([index, index, index]), _colormap_rgb(int(colormap)))
    return cv2.bitwise_and(out, out, mask=valid.view(np.uint8))


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"panel images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"panel images must be (H, W, 3) or (H, W), got {image.shape}")
    return image


def _draw_caption(bar: np.ndarray, text: str) -> None:
    if not text:
        return
    h, w = bar.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = h / 40.0
    # Shrink the text until it fits the column (long captions on narrow images).
    while True:
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        if tw <= w - 4 or scale < 0.2:
            break
        scale *= 0.85
    thickness = max(1, round(scale * 1.5))
    org = (max(2, (w - tw) // 2), (h + th) // 2)
    cv2.putText(bar, text, org, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def make_panel(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    height: int | None = None,
    caption_height: int | None = None,
) -> np.ndarray:
    """Put images side by side, each with a caption bar above it.

    Args:
        images: (H, W, 3) uint8 RGB (or (H, W) grey) images of any sizes.
        labels: One caption per image ("" for none).
        height: Common image height; default the tallest image's. Widths keep aspect ratios.
        caption_height: Height of the black caption bar; default max(16, height // 10).

    Returns:
        (caption_height + height, sum of widths, 3) uint8 RGB.
    """
    if len(images) == 0:
        raise ValueError("make_panel needs at least one image")
    if len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels; give one each")
    rgbs = [_as_rgb(im) for im in images]
    target = int(height) if height is not None else max(im.shape[0] for im in rgbs)
    if target <= 0:
        raise ValueError(f"height must be positive, got {height}")
    bar_h = int(caption_height) if caption_height is not None else max(16, target // 10)
    columns = []
    for im, text in zip(rgbs, labels, strict=True):
        h, w = im.shape[:2]
        if h != target:
            new_w = max(1, round(w * target / h))
            # Nearest when enlarging keeps label masks crisp; area averaging when shrinking.
            interp = cv2.INTER_NEAREST if target > h else cv2.INTER_AREA
            im = cv2.resize(im, (new_w, target), interpolation=interp)
        bar = np.zeros((bar_h, im.shape[1], 3), dtype=np.uint8)
        _draw_caption(bar, str(text))
        columns.append(np.vstack([bar, im]))
    return np.hstack(columns)
