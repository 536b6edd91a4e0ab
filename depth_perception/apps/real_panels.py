"""Depth panels of real photographs: image | predicted depth (| ground truth), one row each.

The photographs are those scikit-image ships (``depth_perception.sample_data``), so the same
command renders the same panel on any machine, before and after a model change::

    python -m depth_perception.apps.real_panels --label "before: bundled lightweight" \\
        --output resource/real_before.png
    python -m depth_perception.apps.real_panels --label "after: ..." --weights W.safetensors \\
        --output resource/real_after.png

Each depth image is coloured over its own 2nd..98th percentile (near = red, far = blue; the
caption gives the range in metres), so the panel shows whether the model sees the scene's
layout whatever its scale. *Motorcycle* gets its Middlebury ground truth as a third column. The
model runs through the node's pipeline (``depth_perception.runtime``) on the torch CPU backend.
Imports no rclpy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics
from depth_perception.sample_data import (
    SKIMAGE_PHOTOS,
    motorcycle_ground_truth,
    read_skimage_photo,
    skimage_data_file,
)
from depth_perception.visualize import colorize_depth, make_panel

_MOTORCYCLE = "motorcycle_left.png"


def depth_tile(depth: np.ndarray) -> tuple[np.ndarray, str]:
    """A depth map coloured over its own 2nd..98th percentile, and a caption with that range."""
    finite = depth[np.isfinite(depth) & (depth > 0)]
    if finite.size == 0:
        return np.zeros((*depth.shape, 3), np.uint8), "no valid depth"
    lo, hi = (float(v) for v in np.percentile(finite, (2.0, 98.0)))
    if hi <= lo:
        hi = lo * 1.01 + 1e-6  # a flat prediction: one colour, still a valid range
    return colorize_depth(depth, lo, hi), f"{lo:.2f}..{hi:.2f} m"


def render(
    predict,
    photos: Sequence[str],
    label: str,
    row_height: int = 150,
) -> np.ndarray:
    """The panel: a title bar with ``label``, then one row per photo.

    Args:
        predict: (HxWx3 uint8 RGB) -> HxW depth in metres (NaN = none), e.g. a predictor's.
        photos: File names in scikit-image's data directory.
        label: Title of the panel (e.g. "before: bundled lightweight").
        row_height: Height of every image in the panel.
    """
    rows = []
    for name in photos:
        image = read_skimage_photo(name)
        depth = predict(image)
        tile, caption = depth_tile(depth)
        images, captions = [image, tile], [name, f"predicted {caption}"]
        if name == _MOTORCYCLE:
            truth, truth_caption = depth_tile(motorcycle_ground_truth()[0])
            images.append(truth)
            captions.append(f"ground truth {truth_caption}")
        rows.append(make_panel(images, captions, height=row_height))
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    title = make_panel([np.zeros((1, width, 3), np.uint8)], [label], caption_height=28)[:28]
    return np.vstack([title, *padded])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, help="panel title, e.g. 'before: bundled'")
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument("--model", default=None, help="registered model (default lightweight)")
    parser.add_argument("--weights", default=None, help=".safetensors checkpoint; default bundled")
    parser.add_argument(
        "--photos",
        nargs="+",
        default=list(SKIMAGE_PHOTOS),
        help=f"scikit-image photos to show (default: {' '.join(SKIMAGE_PHOTOS)})",
    )
    parser.add_argument("--row-height", type=int, default=150, help="pixels per row")
    parser.add_argument(
        "--hfov", type=float, default=60.0, help="assumed horizontal field of view (deg)"
    )
    parser.add_argument(
        "--squeeze",
        action="store_true",
        help="resize every photo to the checkpoint's input size (match_camera_aspect off) "
        "instead of an input of its own aspect ratio with about that many pixels, as the node "
        "does by default",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Render the panel and write it; bad arguments give an error and write nothing."""
    parser = argparse.ArgumentParser(prog="python -m depth_perception.apps.real_panels")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"real_panels: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from depth_perception.config import PerceptionConfig
    from depth_perception.runtime import load_pipeline

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"--output must be a .png file, got {output}")
    if args.row_height < 16:
        raise ValueError(f"--row-height must be at least 16 pixels, got {args.row_height}")
    for name in args.photos:
        skimage_data_file(name)  # every photo exists before anything runs
    changes = {"backend": "torch", "device": "cpu", "match_camera_aspect": not args.squeeze}
    if args.model:
        changes["model"] = args.model
    if args.weights:
        changes["weights"] = args.weights
    pipeline = load_pipeline(PerceptionConfig(**changes))
    try:
        for warning in pipeline.warnings:
            print(f"real_panels: {warning}", file=sys.stderr)

        def predict(image: np.ndarray) -> np.ndarray:
            h, w = image.shape[:2]
            intrinsics = CameraIntrinsics.from_hfov(w, h, args.hfov)
            return pipeline.predictor.predict(image, intrinsics).depth

        panel = render(predict, args.photos, args.label, args.row_height)
    finally:
        pipeline.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(output), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"cannot write {output}")
    sizes = ", ".join(f"{w}x{h}" for w, h in pipeline.predictor.input_sizes_used)
    print(
        f"wrote {output} ({panel.shape[1]}x{panel.shape[0]}, inputs {sizes}): {pipeline.summary()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
