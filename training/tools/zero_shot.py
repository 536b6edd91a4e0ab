"""Zero-shot benchmark on real photographs: a model next to two layout baselines.

``depth-perception eval --dataset middlebury_skimage`` (or ``--dataset middlebury --root DIR``)
runs the checkpoint (default: the bundled default weights) over every scene at the data set's
own resolution and scores it with ``depth_perception.metrics.zero_shot_metrics``, beside:

* **row prior**: "lower image rows are nearer", inverse depth increasing linearly with the row
  (``(v + 1) / H``). It has an order and an affine inverse depth, nothing more, so only its
  Spearman and aligned figures are scored.
* **constant**: one depth everywhere. Its Spearman is undefined ("-"); its aligned figures are
  those of the best constant inverse depth and its median-scaled ones those of the median depth.

A model beats the layout of the scene only where it beats the row prior.

Per image the network input is the image resized to the checkpoint's input size with the node's
preprocessing (``depth_perception.predictor.Preprocessor``), and the network's depth is resized
back bilinearly (as the node's postprocessing does) without the node's range masking, so every
pixel is scored; a model with a canonical focal length is scaled to the scene's real focal
length (its calibration), as the node does with its camera's. Figures are means over the images.

With ``--views`` each image is also scored mirrored and with a few per cent cut off its edges
(:func:`views_of`), and every figure's mean and range over those views is printed: how much of a
difference between two models one image can resolve.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from depth_perception.camera import CameraIntrinsics, aspect_matched_size, focal_scale
from depth_perception.checkpoint import CheckpointMeta
from depth_perception.metrics import DEFAULT_DEPTH_CAP, ZERO_SHOT_KEYS, zero_shot_metrics
from depth_perception.predictor import Preprocessor

# The data sets scored with this protocol by ``depth-perception eval``.
ZERO_SHOT_DATASETS: tuple[str, ...] = ("middlebury", "middlebury_skimage")

# (HxWx3 uint8 RGB, its camera) -> HxW depth (float, > 0)
DepthFn = Callable[[np.ndarray, CameraIntrinsics], np.ndarray]


@dataclass(frozen=True)
class Entry:
    """One row of the benchmark: a depth predictor and the figures that apply to it.

    Attributes:
        name: Row label.
        predict: (RGB image, its intrinsics) -> depth at the image's size.
        metric: Score the depth as metres too.
        median: Score it median-scaled too.
        input_sizes: The network input sizes ``(width, height)`` it has used so far (filled
            in by model rows; empty for the baselines).
    """

    name: str
    predict: DepthFn
    metric: bool = False
    median: bool = True
    input_sizes: Collection[tuple[int, int]] = ()


def row_prior(image: np.ndarray, intrinsics: CameraIntrinsics | None = None) -> np.ndarray:
    """The "lower rows are nearer" prior: depth whose inverse is ``(row + 1) / height``."""
    height, width = image.shape[:2]
    inverse = (np.arange(height, dtype=np.float64) + 1.0) / height
    return np.repeat(1.0 / inverse[:, None], width, axis=1)


def constant_depth(image: np.ndarray, intrinsics: CameraIntrinsics | None = None) -> np.ndarray:
    """One depth (1 m; only ratios matter to the figures it is scored with) everywhere."""
    return np.ones(image.shape[:2], dtype=np.float64)


def baselines() -> list[Entry]:
    """The two layout baselines every model is shown next to."""
    return [
        Entry("row prior", row_prior, metric=False, median=False),
        Entry("constant", constant_depth, metric=False, median=True),
    ]


def model_entry(
    model: nn.Module,
    meta: CheckpointMeta,
    name: str,
    device: torch.device | str = "cpu",
    input_size: tuple[int, int] | None = None,
    keep_aspect: bool = False,
) -> Entry:
    """A benchmark row for a loaded checkpoint (metric figures when the checkpoint is metric).

    Args:
        input_size: ``(width, height)`` of the network input; default the checkpoint's.
        keep_aspect: Per image, use instead the size of the image's aspect ratio with about
            the pixels of ``input_size`` (``depth_perception.camera.aspect_matched_size``, the
            size the node's predictor gives it), so the image is not squeezed.
    """
    base_width, base_height = input_size or (meta.input_width, meta.input_height)
    preprocessors: dict[tuple[int, int], Preprocessor] = {}

    def preprocessor(image: np.ndarray) -> Preprocessor:
        size = (base_width, base_height)
        if keep_aspect:
            height, width = image.shape[:2]
            size = aspect_matched_size(width, height, base_width, base_height)
        if size not in preprocessors:
            preprocessors[size] = Preprocessor(*size, tuple(meta.mean), tuple(meta.std))
        return preprocessors[size]

    canonical = getattr(model, "canonical_focal_px", None)
    exponent = float(getattr(model, "focal_exponent", 1.0))

    @torch.no_grad()
    def predict(image: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
        preprocess = preprocessor(image)
        input_width = preprocess.width
        batch = torch.from_numpy(preprocess(image)).to(device)
        network = model(batch)["depth"][0, 0].float().cpu().numpy()
        height, width = image.shape[:2]
        # the real camera's focal length, as the node's predictor does (camera.focal_scale)
        fx_network = intrinsics.fx * input_width / width
        network *= np.float32(focal_scale(fx_network, canonical, exponent))
        depth = cv2.resize(network, (width, height), interpolation=cv2.INTER_LINEAR)
        return depth.astype(np.float64)

    # the keys view follows the dict: the sizes used so far
    sizes = preprocessors.keys()
    return Entry(name, predict, metric=bool(meta.metric), median=True, input_sizes=sizes)


# Views of each image that ``--views`` also scores: mirrored, and VIEW_TRIM of the width or
# height cut off each edge in turn and half of it off every edge. A real image is one sample of
# its scene: how far a figure moves under such changes, which leave the scene as it is, says
# which differences between two models one image can tell apart.
VIEW_TRIM = 0.03
VIEW_NAMES: tuple[str, ...] = (
    "as is",
    "mirrored",
    "left cut",
    "right cut",
    "top cut",
    "bottom cut",
    "all sides cut",
)


def views_of(sample: Any) -> list[tuple[str, Any]]:
    """``(name, sample)`` for every name of :data:`VIEW_NAMES`, intrinsics kept consistent."""
    from training.data.augment import crop, hflip

    width, height = sample.width, sample.height
    dx, dy = round(width * VIEW_TRIM), round(height * VIEW_TRIM)
    hx, hy = dx // 2, dy // 2
    views = [
        sample,
        hflip(sample),
        crop(sample, dx, 0, width - dx, height),
        crop(sample, 0, 0, width - dx, height),
        crop(sample, 0, dy, width, height - dy),
        crop(sample, 0, 0, width, height - dy),
        crop(sample, hx, hy, width - 2 * hx, height - 2 * hy),
    ]
    return list(zip(VIEW_NAMES, views, strict=True))


def _score(entries: Sequence[Entry], sample: Any, depth_cap: float) -> dict[str, dict[str, float]]:
    """Every entry's zero-shot figures on one sample."""
    return {
        entry.name: zero_shot_metrics(
            entry.predict(sample.image, sample.intrinsics),
            sample.depth,
            sample.valid,
            metric=entry.metric,
            median=entry.median,
            depth_cap=depth_cap,
        )
        for entry in entries
    }


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _mean_rows(
    records: Sequence[dict[str, Any]], entries: Sequence[Entry]
) -> dict[str, dict[str, float]]:
    """Per entry and figure, the mean over the records where it is defined (else NaN)."""
    rows: dict[str, dict[str, float]] = {}
    for entry in entries:
        rows[entry.name] = {}
        for key in ZERO_SHOT_KEYS:
            values = _finite([r[entry.name][key] for r in records])
            rows[entry.name][key] = float(np.mean(values)) if values else float("nan")
    return rows


def run_benchmark(
    dataset: Any,
    entries: Sequence[Entry],
    depth_cap: float = DEFAULT_DEPTH_CAP,
    views: bool = False,
) -> dict[str, Any]:
    """Score every entry on every sample of ``dataset`` (``training.data`` samples).

    Args:
        views: Also score every view of :func:`views_of` of each image.

    Returns:
        ``{"rows": {name: {key: mean over images (NaN if undefined on all)}}, "per_image":
        [{"scene": ..., name: figures, ...}], "num_images": n, "depth_cap": depth_cap}``; with
        ``views`` also ``"views": {"names": [...], "per_view": {view: rows},
        "rows": {name: {key: {"mean", "min", "max"} over the views' rows}}}``.

    Raises:
        ValueError: the data set is empty or a sample has fewer than two known pixels.
    """
    if len(dataset) == 0:
        raise ValueError("the data set has no image to score")
    per_image: list[dict[str, Any]] = []
    by_view: dict[str, list[dict[str, Any]]] = {name: [] for name in VIEW_NAMES[1:]}
    for index in range(len(dataset)):
        sample = dataset[index]
        record: dict[str, Any] = {"scene": sample.meta.get("scene", str(index))}
        record.update(_score(entries, sample, depth_cap))
        per_image.append(record)
        if views:
            for name, view in views_of(sample)[1:]:  # the first view is the image as is
                by_view[name].append(_score(entries, view, depth_cap))
    result: dict[str, Any] = {
        "rows": _mean_rows(per_image, entries),
        "per_image": per_image,
        "num_images": len(per_image),
        "depth_cap": depth_cap,
    }
    if views:
        per_view = {VIEW_NAMES[0]: result["rows"]}
        per_view.update({name: _mean_rows(records, entries) for name, records in by_view.items()})
        spread: dict[str, dict[str, dict[str, float]]] = {}
        for entry in entries:
            spread[entry.name] = {}
            for key in ZERO_SHOT_KEYS:
                values = _finite([rows[entry.name][key] for rows in per_view.values()])
                spread[entry.name][key] = {
                    "mean": float(np.mean(values)) if values else float("nan"),
                    "min": min(values, default=float("nan")),
                    "max": max(values, default=float("nan")),
                }
        result["views"] = {"names": list(VIEW_NAMES), "per_view": per_view, "rows": spread}
    return result


_COLUMNS = (
    ("spearman", "Spearman"),
    ("aligned_abs_rel", "aligned AbsRel"),
    ("aligned_a1", "aligned d1"),
    ("median_abs_rel", "median AbsRel"),
    ("median_a1", "median d1"),
    ("metric_abs_rel", "metric AbsRel"),
    ("metric_a1", "metric d1"),
)


def format_table(result: dict[str, Any], markdown: bool = False) -> str:
    """The rows side by side; undefined or not-applicable figures as ``-``."""
    names = list(result["rows"])
    width = max(len(n) for n in [*names, "predictor"])

    def cell(value: float) -> str:
        return f"{value:.3f}" if math.isfinite(value) else "-"

    if markdown:
        lines = [
            "| predictor | " + " | ".join(title for _, title in _COLUMNS) + " |",
            "| --- |" + " ---: |" * len(_COLUMNS),
        ]
        for name in names:
            values = [cell(result["rows"][name][k]) for k, _ in _COLUMNS]
            lines.append(f"| {name} | " + " | ".join(values) + " |")
        return "\n".join(lines)
    header = f"{'predictor':{width}s} " + " ".join(f"{t:>14s}" for _, t in _COLUMNS)
    lines = [header]
    for name in names:
        values = " ".join(f"{cell(result['rows'][name][k]):>14s}" for k, _ in _COLUMNS)
        lines.append(f"{name:{width}s} {values}")
    return "\n".join(lines)


def format_views_table(result: dict[str, Any]) -> str:
    """Per predictor, each figure's mean over the views and, on the line below, its range."""
    views = result["views"]
    names = list(views["rows"])
    width = max(len(n) for n in [*names, "predictor"])

    def cells(name: str, what: str) -> str:
        out = []
        for key, _ in _COLUMNS:
            figure = views["rows"][name][key]
            if not math.isfinite(figure["mean"]):
                out.append(f"{'-':>14s}")
            elif what == "mean":
                out.append(f"{figure['mean']:>14.3f}")
            else:
                out.append(f"{figure['min']:.3f}..{figure['max']:.3f}".rjust(14))
        return " ".join(out)

    lines = [f"{'predictor':{width}s} " + " ".join(f"{t:>14s}" for _, t in _COLUMNS)]
    for name in names:
        lines.append(f"{name:{width}s} {cells(name, 'mean')}")
        lines.append(f"{'  min..max':{width}s} {cells(name, 'range')}")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _checkpoint_label(checkpoint: str | Path, model: str) -> str:
    from depth_perception.runtime import bundled_weights

    path = Path(checkpoint).with_suffix(".safetensors")
    bundled = bundled_weights(model)
    if bundled is not None and path.resolve() == bundled.resolve():
        return "bundled"
    return path.stem


def main(args: argparse.Namespace) -> int:
    """``depth-perception eval`` on a zero-shot data set: model, row prior and constant."""
    from depth_perception.checkpoint import load_model
    from training.data import get_dataset_spec
    from training.tools.cli_args import parse_options

    if args.dataset not in ZERO_SHOT_DATASETS:
        raise ValueError(
            f"{args.dataset!r} is not a zero-shot data set; use one of "
            f"{', '.join(ZERO_SHOT_DATASETS)}"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    options = parse_options(args.option)
    cls = get_dataset_spec(args.dataset).load_class()
    if args.dataset == "middlebury":
        if args.root is None:
            raise ValueError("--dataset middlebury needs --root, the folder of scene folders")
        dataset = cls(args.root, **options)
    else:
        if args.root is not None:
            raise ValueError(f"--dataset {args.dataset} is bundled and takes no --root")
        dataset = cls(**options)
    device = torch.device(args.device)
    model, meta = load_model(args.checkpoint, device=device)
    label = f"{meta.model} ({_checkpoint_label(args.checkpoint, meta.model)})"
    depth_cap = args.max_depth if args.max_depth is not None else DEFAULT_DEPTH_CAP
    # As the node runs it: without --width/--height each image at an input of its own aspect
    # ratio (match_camera_aspect), and beside it the same network with the image squeezed to
    # the checkpoint's size (match_camera_aspect off, or a fixed-size backend such as
    # TensorRT). --width/--height fix the input, as input_width/input_height do in the node.
    fixed = bool(args.width or args.height)
    width = args.width or meta.input_width
    height = args.height or meta.input_height
    entries = [model_entry(model, meta, label, device, (width, height), keep_aspect=not fixed)]
    if not fixed:
        squeezed = f"{label}, squeezed to {width}x{height}"
        entries.append(model_entry(model, meta, squeezed, device, (width, height)))
    entries += baselines()
    result = run_benchmark(dataset, entries, depth_cap=depth_cap, views=args.views)
    print(
        f"zero-shot on {args.dataset} ({result['num_images']} image(s) at their own resolution; "
        f"checkpoint {args.checkpoint} at {width}x{height}, "
        f"{'metric' if meta.metric else 'relative'} depth)"
    )
    print(
        "aligned: least-squares scale and shift of inverse depth, then depth capped at "
        f"{depth_cap:g} m; Spearman of inverse depth; d1 = delta < 1.25"
    )
    print(format_table(result))
    if not fixed:
        sizes = sorted(entries[0].input_sizes)
        print(
            f"{label}: each image at an input of its own aspect ratio with about the pixels of "
            f"{width}x{height} ({', '.join(f'{w}x{h}' for w, h in sizes)}), as the node runs "
            "it (match_camera_aspect); squeezed: every image resized to "
            f"{width}x{height}"
        )
    if args.views:
        print(
            f"\nover {len(VIEW_NAMES)} views of each image ({', '.join(VIEW_NAMES)}; a cut is "
            f"{VIEW_TRIM:.0%} of the width or height): mean, then min..max. Differences "
            "between models inside these ranges are within what one image can tell."
        )
        print(format_views_table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = dict(
            result,
            checkpoint=str(args.checkpoint),
            dataset=args.dataset,
            input_size=[width, height],
            aspect_kept=not fixed,
        )
        path.write_text(json.dumps(_clean(payload), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0
