"""``depth-perception infer``: images, folders and videos in; preview panels and depth files out.

Each frame gives a PNG panel: input | colourised depth with a scale bar in metres | segmentation
overlay with a legend of the classes present (depth-only models: the first two). Optionally the
panels also go into a video, and the depth into 16-bit PNGs (millimetres, 0 = invalid, the
REP 118 16UC1 convention) or ``.npy`` files (float32 metres, NaN = invalid). Images carry no
calibration, so the intrinsics come from a horizontal field of view (``--hfov``). Imports no
rclpy.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics, aspect_warning
from depth_perception.classes import IGNORE_LABEL
from depth_perception.config import BACKENDS, PerceptionConfig, load_config
from depth_perception.visualize import colorize_depth, colorize_labels, make_panel, overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
# 16-bit PNG depth: millimetres in 1..65535, so 65.535 m is the farthest storable depth.
MAX_PNG_DEPTH_M = 65.535


# --------------------------------------------------------------------------- model options
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The PerceptionConfig settings as options, shared by ``infer`` and ``bag``."""
    group = parser.add_argument_group("model (mono_depth parameters)")
    group.add_argument(
        "--params-file",
        default=None,
        help="mono_depth parameters YAML (e.g. config/mono_depth.yaml); options below override it",
    )
    group.add_argument("--model", default=None, help="registered model (default lightweight)")
    group.add_argument("--weights", default=None, help=".safetensors checkpoint; default bundled")
    group.add_argument("--backend", default=None, choices=BACKENDS, help="default auto")
    group.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    group.add_argument("--num-threads", type=int, default=None, help="CPU threads, 0 = all")
    group.add_argument("--input-width", type=int, default=None, help="network input width")
    group.add_argument("--input-height", type=int, default=None, help="network input height")
    group.add_argument("--min-depth", type=float, default=None, help="nearer is invalid (m)")
    group.add_argument("--max-depth", type=float, default=None, help="farther is invalid (m)")
    group.add_argument(
        "--depth-scale", type=float, default=None, help="factor on the depth (relative models)"
    )


_OPTION_TO_FIELD = {
    "model": "model",
    "weights": "weights",
    "backend": "backend",
    "device": "device",
    "num_threads": "num_threads",
    "input_width": "input_width",
    "input_height": "input_height",
    "min_depth": "min_depth",
    "max_depth": "max_depth",
    "depth_scale": "depth_scale",
}


def config_from_args(args: argparse.Namespace, **extra: object) -> PerceptionConfig:
    """The PerceptionConfig of the options (params file first, then the explicit options).

    Raises:
        ValueError: a value the node would refuse too (the message says which and why).
    """
    params_file = getattr(args, "params_file", None)
    config = load_config(params_file) if params_file else PerceptionConfig()
    changes = {
        name: getattr(args, option)
        for option, name in _OPTION_TO_FIELD.items()
        if getattr(args, option, None) is not None
    }
    changes.update(extra)
    return config.replace(**changes) if changes else config


# --------------------------------------------------------------------------- drawing
def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) inside [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"need finite low < high, got {low}, {high}")
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def depth_range(depth: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> tuple:
    """A colour range for ``depth``: robust percentiles of the valid pixels, (0.1, 10) if none."""
    valid = depth[(depth > 0) & (depth < np.inf)]
    if valid.size == 0:
        return 0.1, 10.0
    low, high = (float(v) for v in np.percentile(valid, percentiles))
    if high - low < 1e-3:  # a flat image: widen so the colour map has a range
        low, high = max(low - 0.5, 1e-3), high + 0.5
    return low, high


def _put_text(image: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    thickness = max(1, round(scale * 1.5))
    cv2.putText(
        image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
    )


def depth_with_scale_bar(
    depth: np.ndarray, min_depth: float, max_depth: float, log_scale: bool = False
) -> np.ndarray:
    """Colourised depth (TURBO, near warm) with a vertical colour scale and metre ticks beside it.

    Args:
        depth: (H, W) metres; NaN, +-inf and <= 0 are drawn black.
        min_depth: Depth of the warm end of the scale (nearer is clipped).
        max_depth: Depth of the cold end (farther is clipped).
        log_scale: Colour in ln(depth).

    Returns:
        (H, W + bar width, 3) uint8 RGB.
    """
    colored = colorize_depth(depth, min_depth, max_depth, log_scale=log_scale)
    h = colored.shape[0]
    font_scale = max(0.3, min(0.6, h / 400.0))
    (label_w, label_h), _ = cv2.getTextSize("00.0 m", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    ramp_w = max(8, h // 24)
    margin = max(3, label_h)
    strip = np.zeros((h, ramp_w + label_w + 3 * margin, 3), np.uint8)
    top, bottom = margin, h - margin - 1
    if bottom - top < 2:
        return np.hstack([colored, strip])
    # The ramp runs from max_depth (top) to min_depth (bottom), drawn with the same mapping.
    span = bottom - top
    fractions = np.arange(span + 1, dtype=np.float64) / span
    if log_scale:
        values = np.exp(
            math.log(max_depth) + fractions * (math.log(min_depth) - math.log(max_depth))
        )
    else:
        values = max_depth + fractions * (min_depth - max_depth)
    column = colorize_depth(
        values.astype(np.float32)[:, None], min_depth, max_depth, log_scale=log_scale
    )
    strip[top : bottom + 1, margin : margin + ramp_w] = column
    for tick in nice_ticks(min_depth, max_depth, count=max(2, min(6, h // 40))):
        if log_scale:
            f = (math.log(max_depth) - math.log(tick)) / (
                math.log(max_depth) - math.log(min_depth)
            )
        else:
            f = (max_depth - tick) / (max_depth - min_depth)
        y = round(top + f * span)
        cv2.line(
            strip, (margin + ramp_w, y), (margin + ramp_w + margin // 2 + 2, y), (255, 255, 255), 1
        )
        text = f"{tick:g} m"
        _put_text(strip, text, (margin * 2 + ramp_w, min(h - 2, y + label_h // 2)), font_scale)
    return np.hstack([colored, strip])


def overlay_with_legend(
    rgb: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.5,
) -> np.ndarray:
    """Segmentation overlay with a legend (colour swatch + name) of the classes present.

    Returns:
        (H, W + legend width, 3) uint8 RGB; the legend lists classes by id, 255 left out.
    """
    colors = colorize_labels(labels, palette)
    blended = overlay(rgb, colors, alpha, labels)
    h = blended.shape[0]
    present = [int(c) for c in np.unique(labels) if c != IGNORE_LABEL and c < len(palette)]
    names = [class_names[c] if c < len(class_names) else f"class_{c}" for c in present]
    if not present:
        return blended
    row_h = max(8, min(24, (h - 4) // len(present)))
    font_scale = max(0.25, min(0.5, row_h / 30.0))
    widest = max(cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] for n in names)
    swatch = max(6, row_h - 4)
    legend = np.zeros((h, swatch + widest + 12, 3), np.uint8)
    for i, (class_id, name) in enumerate(zip(present, names, strict=True)):
        y = 2 + i * row_h
        if y + swatch > h:
            break  # more classes than rows fit: the first ones are listed
        color = tuple(int(v) for v in palette[class_id])
        cv2.rectangle(legend, (3, y), (3 + swatch, y + swatch), color, -1)
        _put_text(legend, name, (swatch + 8, y + swatch - 1), font_scale)
    return np.hstack([blended, legend])


# --------------------------------------------------------------------------- inputs and outputs
@dataclass
class Frame:
    """One input frame: RGB pixels and a name that is unique within the run."""

    rgb: np.ndarray
    name: str
    source: str
    index: int = 0


def iter_inputs(
    paths: Sequence[str | Path], every: int = 1, max_frames: int = 0
) -> Iterator[Frame]:
    """Frames of image files, folders of images/videos (sorted, not recursive) and video files.

    Raises:
        ValueError / FileNotFoundError: an input that is missing or of an unknown kind.
    """
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )
            if not found:
                raise ValueError(
                    f"{path} holds no image or video file ({', '.join(IMAGE_SUFFIXES)})"
                )
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                raise ValueError(
                    f"{path}: unknown file type; images: {' '.join(IMAGE_SUFFIXES)}, videos: "
                    f"{' '.join(VIDEO_SUFFIXES)}"
                )
            files.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    seen: dict[str, int] = {}
    produced = 0
    for path in files:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:  # same name in two folders: keep outputs apart
            stem = f"{stem}_{seen[stem]}"
        if path.suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read image {path}")
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stem, str(path))
            produced += 1
        else:
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise ValueError(f"cannot open video {path} (codec not supported by OpenCV?)")
            try:
                index = 0
                while True:
                    ok, bgr = capture.read()
                    if not ok:
                        break
                    if index % every == 0:
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        yield Frame(rgb, f"{stem}_{index:06d}", str(path), index)
                        produced += 1
                        if max_frames and produced >= max_frames:
                            return
                    index += 1
            finally:
                capture.release()
        if max_frames and produced >= max_frames:
            return


def depth_to_png_mm(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres, round(depth * 1000); invalid or beyond 65.535 m -> 0.

    The product is taken in float64, so it is the exact rounding of the float32 value (in
    float32, ``depth * 1000`` itself rounds and ~2 % of pixels would be 1 mm off).
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = (depth > 0) & (depth <= MAX_PNG_DEPTH_M)  # False for NaN and +-inf
    mm = np.zeros(depth.shape, np.uint16)
    mm[valid] = np.rint(depth[valid].astype(np.float64) * 1000.0).astype(np.uint16)
    return mm


@dataclass
class InferReport:
    """What ``run_infer`` wrote."""

    frames: int = 0
    panels: list[Path] = field(default_factory=list)
    depth_files: list[Path] = field(default_factory=list)
    video: Path | None = None
    mean_inference_ms: float = 0.0


def make_frame_panel(
    rgb: np.ndarray,
    depth: np.ndarray,
    labels: np.ndarray | None,
    palette: np.ndarray,
    class_names: Sequence[str],
    depth_limits: tuple[float, float] | None = None,
    alpha: float = 0.5,
    metric: bool = True,
) -> np.ndarray:
    """input | depth with scale bar | overlay with legend (the last only with labels)."""
    low, high = depth_limits if depth_limits is not None else depth_range(depth)
    unit = "depth (m)" if metric else "relative depth"
    images = [rgb, depth_with_scale_bar(depth, low, high)]
    captions = ["input", unit]
    if labels is not None:
        images.append(overlay_with_legend(rgb, labels, palette, class_names, alpha))
        captions.append("segmentation")
    return make_panel(images, captions)


def run_infer(args: argparse.Namespace) -> InferReport:
    """Run the ``infer`` command (see :func:`add_arguments`); returns what it wrote."""
    from tqdm import tqdm

    from depth_perception.runtime import load_pipeline

    config = config_from_args(args, fallback_hfov_deg=float(args.hfov))
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = set(args.save_depth or ())
    limits = tuple(args.depth_range) if args.depth_range else None
    if limits is not None and not 0 < limits[0] < limits[1]:
        raise ValueError(f"--depth-range needs 0 < MIN < MAX, got {limits[0]} {limits[1]}")
    pipeline = load_pipeline(config)
    for line in pipeline.warnings:
        print(f"warning: {line}")
    print(pipeline.summary())
    report = InferReport()
    writer: cv2.VideoWriter | None = None
    video_size: tuple[int, int] | None = None
    inference_ms = 0.0
    description = pipeline.description
    sizes_seen: set[tuple[int, int]] = set()
    try:
        for frame in tqdm(
            iter_inputs(args.inputs, args.every, args.max_frames),
            unit="frame",
            disable=bool(getattr(args, "no_progress", False)),
        ):
            h, w = frame.rgb.shape[:2]
            if (w, h) not in sizes_seen:
                sizes_seen.add((w, h))
                squeezed = aspect_warning(w, h, *pipeline.predictor.input_size_for(w, h))
                if squeezed is not None:
                    # tqdm.write keeps the progress bar intact
                    tqdm.write(f"warning: {squeezed} (here --input-width, --input-height)")
            intrinsics = CameraIntrinsics.from_hfov(w, h, float(args.hfov))
            prediction = pipeline.predictor.predict(frame.rgb, intrinsics)
            inference_ms += prediction.timings_ms.get("inference", 0.0)
            panel = make_frame_panel(
                frame.rgb,
                prediction.depth,
                prediction.labels,
                pipeline.palette,
                description.class_names,
                limits,
                config.overlay_alpha,
                description.metric or config.depth_scale != 1.0,
            )
            bgr_panel = cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)
            if not args.no_panels:
                path = out_dir / f"{frame.name}_panel.png"
                if not cv2.imwrite(str(path), bgr_panel):
                    raise OSError(f"cannot write {path}")
                report.panels.append(path)
            if "png" in formats:
                path = out_dir / f"{frame.name}_depth.png"
                if not cv2.imwrite(str(path), depth_to_png_mm(prediction.depth)):
                    raise OSError(f"cannot write {path}")
                report.depth_files.append(path)
            if "npy" in formats:
                path = out_dir / f"{frame.name}_depth.npy"
                np.save(path, prediction.depth.astype(np.float32))
                report.depth_files.append(path)
            if args.video:
                if writer is None:
                    video_size = (panel.shape[1] // 2 * 2, panel.shape[0] // 2 * 2)
                    fourcc = cv2.VideoWriter_fourcc(*args.fourcc)
                    writer = cv2.VideoWriter(str(args.video), fourcc, args.fps, video_size)
                    if not writer.isOpened():
                        raise ValueError(
                            f"cannot write video {args.video} with codec {args.fourcc}; try "
                            "--fourcc MJPG and an .avi name"
                        )
                    report.video = Path(args.video)
                # Panels of differently sized inputs are fitted into the first one's size.
                if (bgr_panel.shape[1], bgr_panel.shape[0]) != video_size:
                    bgr_panel = cv2.resize(bgr_panel, video_size, interpolation=cv2.INTER_AREA)
                writer.write(bgr_panel)
            report.frames += 1
    finally:
        if writer is not None:
            writer.release()
        pipeline.close()
    report.mean_inference_ms = inference_ms / max(report.frames, 1)
    print(
        f"{report.frames} frames, mean inference {report.mean_inference_ms:.1f} ms; "
        f"{len(report.panels)} panels, {len(report.depth_files)} depth files in {out_dir}"
        + (f", video {report.video}" if report.video else "")
    )
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depth-perception infer``."""
    parser.add_argument("inputs", nargs="+", help="image files, folders or video files")
    parser.add_argument("-o", "--output", default="infer_output", help="output folder")
    parser.add_argument(
        "--hfov",
        type=float,
        default=70.0,
        help="horizontal field of view (deg) for the intrinsics (images carry none)",
    )
    parser.add_argument(
        "--save-depth",
        nargs="+",
        choices=("png", "npy"),
        default=None,
        help="also write depth: png = 16-bit millimetres (0 invalid), npy = float32 metres "
        "(NaN invalid)",
    )
    parser.add_argument("--video", default=None, help="also write the panels into this video")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of --video")
    parser.add_argument("--fourcc", default="mp4v", help="codec of --video (mp4v, MJPG, ...)")
    parser.add_argument("--no-panels", action="store_true", help="do not write panel PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--depth-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        default=None,
        help="fixed colour range in metres (default: 2nd-98th percentile of each frame)",
    )
    parser.add_argument("--every", type=int, default=1, help="use every n-th video frame")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after n frames (0 = all)")
    add_model_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Entry of the ``infer`` subcommand."""
    run_infer(args)
    return 0
