"""Evaluation of a depth (+ segmentation) model over a data set: the papers' metrics table.

:func:`evaluate` runs a model over a DataLoader of collated samples (``training.data``) and
averages per-image depth metrics (abs_rel, sq_rel, rmse, rmse_log, log10, silog, a1..a3; see
``depth_perception.metrics``), accumulates a confusion matrix for mIoU and, optionally, the mean
absolute error per depth bin (1 m bins in paper d's analysis).

Protocol, per image: the predicted depth (and segmentation logits) are resized bilinearly to the
ground truth's resolution; the mask is the data set's valid pixels with
``min_depth < gt < max_depth`` (the caps) and the optional KITTI/NYU crop; a relative model's
prediction is median-scaled per image; the prediction is clipped to the caps (monodepth2), so
that a wild prediction is scored rather than dropped.

``depth-perception eval --checkpoint C --dataset synthetic ...`` (``training.tools.evaluate``)
prints the table for a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depth_perception.metrics import (
    DEPTH_METRIC_KEYS,
    ConfusionMatrix,
    DepthMetricAverager,
    eval_mask,
    mae_per_depth_bin,
    median_scale,
)

DEFAULT_MIN_CAP = 1e-3


@dataclass
class EvalResult:
    """What :func:`evaluate` returns.

    Attributes:
        depth: Mean per-image depth metrics (keys of ``DEPTH_METRIC_KEYS``).
        miou: Mean IoU over the classes present, or None without segmentation.
        pixel_acc: Segmentation pixel accuracy, or None.
        iou: Per-class IoU (NaN for absent classes), or None.
        num_images: Images evaluated for depth.
        skipped_images: Images without any valid pixel inside the caps/crop.
        mae_bins: ``(bin_centres, mae, counts)`` when binned MAE was asked for.
        caps: ``(min_depth, max_depth)`` used.
        median_scaling: Whether predictions were median-scaled.
    """

    depth: dict[str, float]
    miou: float | None = None
    pixel_acc: float | None = None
    iou: list[float] | None = None
    num_images: int = 0
    skipped_images: int = 0
    mae_bins: tuple[list[float], list[float], list[int]] | None = None
    caps: tuple[float, float] = (DEFAULT_MIN_CAP, math.inf)
    median_scaling: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Flat metrics (depth metrics, ``miou``, ``pixel_acc``) for logging and JSON."""
        out = dict(self.depth)
        if self.miou is not None:
            out["miou"] = self.miou
            out["pixel_acc"] = float(self.pixel_acc or 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (NaN -> None)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return clean(
            {
                "metrics": self.scalars(),
                "iou": self.iou,
                "num_images": self.num_images,
                "skipped_images": self.skipped_images,
                "mae_bins": (
                    None
                    if self.mae_bins is None
                    else dict(zip(("centres", "mae", "counts"), self.mae_bins, strict=True))
                ),
                "caps": list(self.caps),
                "median_scaling": self.median_scaling,
            }
        )


class _BinAccumulator:
    def __init__(self, bin_size: float, max_depth: float) -> None:
        top = math.ceil(max_depth / bin_size) * bin_size
        self.edges = np.arange(0.0, top + bin_size / 2, bin_size)
        self.sums = np.zeros(len(self.edges) - 1)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> None:
        _, mae, counts = mae_per_depth_bin(pred, gt, mask, self.edges)
        self.sums += np.where(counts > 0, mae * counts, 0.0)
        self.counts += counts

    def result(self) -> tuple[list[float], list[float], list[int]]:
        centres = 0.5 * (self.edges[:-1] + self.edges[1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            mae = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)
        return centres.tolist(), mae.tolist(), self.counts.tolist()


def predict_batch(
    model: nn.Module, image: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode forward, outputs resized to ``size`` = (H, W).

    Returns:
        ``(depth (B, 1, H, W), class ids (B, H, W) or None)`` on the model's device.
    """
    out = model(image)
    depth = out["depth"]
    if tuple(depth.shape[-2:]) != tuple(size):
        depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
    labels = None
    logits = out.get("seg_logits")
    if logits is not None:
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        labels = logits.argmax(dim=1)
    return depth, labels


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device | str = "cpu",
    num_classes: int = 0,
    metric: bool = True,
    min_depth: float | None = None,
    max_depth: float | None = None,
    crop: str | None = None,
    median_scaling: bool | None = None,
    mae_bin_size: float = 0.0,
    max_batches: int | None = None,
    ignore_index: int = 255,
    desc: str = "eval",
    show_progress: bool | None = None,
) -> EvalResult:
    """Evaluate ``model`` over ``loader`` (batches from ``training.data.collate``).

    Args:
        model: Model returning ``depth`` (and ``seg_logits``) in eval mode; wrappers are fine.
        loader: Iterable of batches with ``image``, ``depth``, ``valid`` and ``labels`` (and
            ``K``, network-input pixels, for a model with ``canonical_focal_px``).
        device: Where to run the model.
        num_classes: Segmentation classes (0: no mIoU).
        metric: False for relative-depth models (median scaling by default).
        min_depth: Lower cap (default 1e-3 m).
        max_depth: Upper cap (default the model's ``max_depth`` attribute, else no cap).
        crop: None, ``garg``, ``eigen`` or ``nyu_eigen`` (see ``eval_mask``).
        median_scaling: Force per-image median scaling on or off (None: ``not metric``).
        mae_bin_size: Bin width in metres for the MAE per depth bin (0: off).
        max_batches: Stop after this many batches (None: all).
        ignore_index: Unlabelled id of the labels.
        desc: Progress-bar title.
        show_progress: tqdm bar (None: only on a terminal).

    Returns:
        The averaged metrics.

    Raises:
        ValueError: no image had a valid pixel.
    """
    from tqdm import tqdm

    from depth_perception.camera import focal_scale
    from depth_perception.checkpoint import unwrap_model

    base = unwrap_model(model)
    focal = getattr(base, "canonical_focal_px", None)
    exponent = float(getattr(base, "focal_exponent", 1.0))
    lo = DEFAULT_MIN_CAP if min_depth is None else float(min_depth)
    hi = float(getattr(base, "max_depth", math.inf)) if max_depth is None else float(max_depth)
    if not hi > lo:
        raise ValueError(f"need max_depth > min_depth for the caps, got {lo}, {hi}")
    scale = (not metric) if median_scaling is None else bool(median_scaling)
    averager = DepthMetricAverager()
    confusion = ConfusionMatrix(num_classes, ignore_index) if num_classes > 0 else None
    bins = None
    if mae_bin_size > 0:
        bins = _BinAccumulator(mae_bin_size, hi if math.isfinite(hi) else 100.0)
    was_training = base.training
    base.eval()
    skipped = 0
    total = None
    try:
        total = len(loader)
    except TypeError:
        pass
    if max_batches is not None and total is not None:
        total = min(total, max_batches)
    try:
        # disable=None: tqdm shows the bar only on a terminal.
        disable = None if show_progress is None else not show_progress
        bar = tqdm(loader, total=total, desc=desc, leave=False, disable=disable)
        for index, batch in enumerate(bar):
            if max_batches is not None and index >= max_batches:
                break
            image = batch["image"].to(device)
            gt_depth = batch["depth"]
            size = (int(gt_depth.shape[-2]), int(gt_depth.shape[-1]))
            pred, pred_labels = predict_batch(base, image, size)
            if focal is not None:
                # canonical-focal depth -> metres for each image's own camera (network pixels)
                fx = batch["K"][:, 0, 0].to(pred.device, pred.dtype)
                pred = pred * focal_scale(fx, focal, exponent).view(-1, 1, 1, 1)
            pred_np = pred[:, 0].float().cpu().numpy()
            gt_np = gt_depth[:, 0].numpy() if gt_depth.dim() == 4 else gt_depth.numpy()
            valid = batch["valid"]
            valid_np = (valid[:, 0] if valid.dim() == 4 else valid).numpy().astype(bool)
            for b in range(pred_np.shape[0]):
                mask = eval_mask(gt_np[b], lo, hi, crop) & valid_np[b]
                if not mask.any():
                    skipped += 1
                    continue
                p = pred_np[b].astype(np.float64)
                if scale:
                    p, _ = median_scale(p, gt_np[b], mask, clip=(lo, hi))
                else:
                    p = np.clip(p, lo, hi)
                averager.update(p, gt_np[b], mask)
                if bins is not None:
                    bins.update(p, gt_np[b], mask)
            if confusion is not None and pred_labels is not None and "labels" in batch:
                confusion.update(pred_labels.cpu().numpy(), batch["labels"].numpy())
    finally:
        base.train(was_training)
    if averager.count == 0:
        raise ValueError(
            f"no image had a valid ground-truth pixel inside the caps ({lo}, {hi}) and crop "
            f"{crop!r}; check the data set and --min-depth/--max-depth"
        )
    result = EvalResult(
        depth=averager.compute(),
        num_images=averager.count,
        skipped_images=skipped,
        caps=(lo, hi),
        median_scaling=scale,
    )
    if confusion is not None:
        try:
            seg = confusion.compute()
        except ValueError:  # no labelled pixel at all (depth-only data set)
            seg = None
        if seg is not None:
            result.miou = float(seg["miou"])
            result.pixel_acc = float(seg["pixel_acc"])
            result.iou = [float(v) for v in seg["iou"]]
    if bins is not None:
        result.mae_bins = bins.result()
    return result


def format_metrics_table(result: EvalResult, class_names: Sequence[str] = ()) -> str:
    """The metrics as a text table (header row + value row), plus optional extras."""
    keys = [*DEPTH_METRIC_KEYS, "miou"]
    values = [result.depth[k] for k in DEPTH_METRIC_KEYS]
    values.append(result.miou if result.miou is not None else float("nan"))
    header = " ".join(f"{k:>9s}" for k in keys)
    row = " ".join(f"{v:9.4f}" if math.isfinite(v) else f"{'-':>9s}" for v in values)
    lines = [header, row]
    lines.append(
        f"{result.num_images} images ({result.skipped_images} without valid pixels), caps "
        f"{result.caps[0]:g}..{result.caps[1]:g} m, median scaling "
        f"{'on' if result.median_scaling else 'off'}"
    )
    if result.iou is not None and class_names:
        parts = [
            f"{name} {iou:.3f}"
            for name, iou in zip(class_names, result.iou, strict=False)
            if math.isfinite(iou)
        ]
        lines.append("IoU: " + ", ".join(parts))
    if result.mae_bins is not None:
        centres, mae, counts = result.mae_bins
        lines.append("MAE per depth bin (centre m: MAE m [pixels]):")
        for c, m, n in zip(centres, mae, counts, strict=True):
            if n > 0:
                lines.append(f"  {c:7.2f}: {m:8.4f} [{n}]")
    return "\n".join(lines)
