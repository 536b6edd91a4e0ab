"""Depth and segmentation evaluation metrics (numpy only).

Imports no rclpy and no torch: inputs are numpy arrays (anything ``np.asarray`` accepts, so a
CPU torch tensor works; call ``.detach().cpu()`` first for CUDA tensors). Arithmetic is done in
float64.

Depth metrics follow monodepth2's ``compute_errors`` per image (the papers average the
per-image values over the test set, see :class:`DepthMetricAverager`), with ``g`` = ground
truth and ``p`` = prediction over the valid pixels:

* abs_rel = mean(|g - p| / g), sq_rel = mean((g - p)^2 / g)
* rmse = sqrt(mean((g - p)^2)), rmse_log = sqrt(mean((ln g - ln p)^2))
* log10 = mean(|log10 p - log10 g|)
* silog = 100 * sqrt(mean(e^2) - mean(e)^2), e = ln g - ln p (KITTI devkit, scale invariant)
* a1, a2, a3 = fraction of pixels with max(g/p, p/g) < 1.25, 1.25^2, 1.25^3

Evaluation protocols: build the mask with :func:`eval_mask` (depth caps and the KITTI
Garg/Eigen or NYU Eigen crops), optionally :func:`median_scale` the prediction (monocular
self-supervised models) and clip it to the caps, then call :func:`depth_metrics`.

Zero-shot protocol (models evaluated on data they were not trained on, as in the MiDaS and
Depth Anything tables): :func:`zero_shot_metrics` aligns the predicted inverse depth to the true
inverse depth by least-squares scale and shift (:func:`align_scale_shift`) and scores AbsRel
and delta1 in depth, adds the Spearman rank correlation (:func:`spearman`) and, for metric
models, the metric and median-scaled figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

DEPTH_METRIC_KEYS: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "a1",
    "a2",
    "a3",
)

# KITTI crops as fractions of (H, W) (monodepth2 / Garg et al. / Eigen et al.): rows then columns.
_KITTI_CROPS: dict[str, tuple[float, float, float, float]] = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.03594771, 0.96405229),
}
_NYU_EIGEN_CROP = (45, 471, 41, 601)  # rows 45:471, cols 41:601 of a 480x640 image


def _same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred {pred.shape} and gt {gt.shape} differ; resize the prediction to the ground "
            "truth (cv2.resize / F.interpolate) before evaluating"
        )


def _positive_finite(a: np.ndarray) -> np.ndarray:
    # (a > 0) & (a < inf) is False for NaN and +-inf: one mask for all invalid values.
    return (a > 0) & (a < np.inf)


def _as_mask(valid: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    valid = np.asarray(valid)
    if valid.shape != shape:
        raise ValueError(f"valid mask {valid.shape} must have the depth's shape {shape}")
    if valid.dtype != np.bool_:
        raise ValueError(f"valid mask must be boolean, got {valid.dtype} (use gt > 0 etc.)")
    return valid


def depth_metrics(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """The standard monocular-depth errors of ONE image.

    Args:
        pred: Predicted depth in metres, any shape.
        gt: Ground-truth depth, same shape.
        valid: Optional boolean mask of pixels to evaluate. It is always ANDed with
            "gt and pred finite and > 0" (the logs need it), so a prediction of 0 or NaN drops
            the pixel: clip predictions to the evaluation range first (as monodepth2 does) so
            that a bad prediction is scored rather than skipped.

    Returns:
        Floats keyed abs_rel, sq_rel, rmse, rmse_log, log10, silog, a1, a2, a3.

    Raises:
        ValueError: If shapes differ or no pixel is valid.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    _same_shape(pred, gt)
    mask = _positive_finite(gt) & _positive_finite(pred)
    if valid is not None:
        mask &= _as_mask(valid, gt.shape)
    if not mask.any():
        raise ValueError(
            "no valid pixel: need gt and pred finite and > 0 inside the valid mask "
            "(check units, the depth caps and the crop)"
        )
    g = gt[mask]
    p = pred[mask]
    ratio = np.maximum(g / p, p / g)
    diff = g - p
    e = np.log(g) - np.log(p)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(e**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        # mean(e^2) - mean(e)^2 == mean((e - mean e)^2); the latter (np.var) avoids the
        # cancellation that leaves ~1e-6 instead of 0 for a pure scale error.
        "silog": float(np.sqrt(np.var(e)) * 100.0),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
    }


class DepthMetricAverager:
    """Mean of per-image depth metrics over a data set (the papers' protocol)."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(DEPTH_METRIC_KEYS, 0.0)
        self.count = 0

    def update(
        self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
    ) -> dict[str, float]:
        """Evaluate one image (see :func:`depth_metrics`), add it, and return its metrics."""
        metrics = depth_metrics(pred, gt, valid)
        self.add(metrics)
        return metrics

    def add(self, metrics: Mapping[str, float]) -> None:
        """Add the metrics of one image computed elsewhere."""
        missing = set(DEPTH_METRIC_KEYS) - set(metrics)
        if missing:
            raise ValueError(f"metrics lack {sorted(missing)}; pass depth_metrics() output")
        for k in DEPTH_METRIC_KEYS:
            self._sums[k] += float(metrics[k])
        self.count += 1

    def compute(self) -> dict[str, float]:
        """Per-metric mean over the images added so far."""
        if self.count == 0:
            raise ValueError("no image added yet: call update() first")
        return {k: v / self.count for k, v in self._sums.items()}

    def reset(self) -> None:
        self._sums = dict.fromkeys(DEPTH_METRIC_KEYS, 0.0)
        self.count = 0


def _as_labels(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class ids, got {a.dtype} (argmax first)")
    return a.astype(np.int64, copy=False)


class ConfusionMatrix:
    """Accumulates a segmentation confusion matrix over a data set.

    Rows are ground-truth classes, columns predicted classes. Ground-truth pixels equal to
    ``ignore_index`` or outside [0, num_classes) are skipped. A prediction outside
    [0, num_classes) (e.g. 255) on a labelled pixel counts as a miss of that pixel's class: it
    goes to an extra "no class" column, so it lowers the row's IoU and the pixel accuracy
    without being credited to any class.

    Args:
        num_classes: Number of classes n.
        ignore_index: Ground-truth id to skip (255 by default; if it lies inside [0, n), that
            class's IoU is NaN and predicting it on a labelled pixel is a miss).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """(n, n) int64 counts: [gt class, predicted class]."""
        return self._counts[:, : self.num_classes].copy()

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image (or batch): integer id arrays of the same shape."""
        pred = _as_labels(pred, "pred")
        gt = _as_labels(gt, "gt")
        _same_shape(pred, gt)
        n = self.num_classes
        keep = (gt >= 0) & (gt < n) & (gt != self.ignore_index)
        g = gt[keep]
        p = pred[keep]
        p = np.where((p >= 0) & (p < n), p, n)  # out-of-range predictions -> "no class"
        self._counts += np.bincount(g * (n + 1) + p, minlength=n * (n + 1)).reshape(n, n + 1)

    def compute(self) -> dict[str, float | np.ndarray]:
        """mIoU, pixel accuracy and per-class IoU of everything added.

        Returns:
            ``miou`` (float, mean IoU over classes present in gt or prediction), ``pixel_acc``
            (float, correct / labelled pixels) and ``iou`` ((n,) float64, NaN for classes
            absent from both).
        """
        total = int(self._counts.sum())
        if total == 0:
            raise ValueError("no labelled pixel seen (all ignored or nothing added)")
        n = self.num_classes
        diag = np.diag(self._counts[:, :n]).astype(np.float64)
        gt_area = self._counts.sum(axis=1).astype(np.float64)  # includes "no class" misses
        pred_area = self._counts[:, :n].sum(axis=0).astype(np.float64)
        union = gt_area + pred_area - diag
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, diag / union, np.nan)
        if 0 <= self.ignore_index < n:
            # An ignored id inside the class range (e.g. NYU's 0 = unlabelled) has no ground
            # truth by construction: leave it out of the mean rather than scoring it 0.
            iou[self.ignore_index] = np.nan
        return {
            "miou": float(np.nanmean(iou)),  # union > 0 for some class since total > 0
            "pixel_acc": float(diag.sum() / total),
            "iou": iou,
        }

    def reset(self) -> None:
        self._counts[:] = 0


def segmentation_metrics(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255
) -> dict[str, float | np.ndarray]:
    """mIoU, pixel accuracy and per-class IoU of one image (see :class:`ConfusionMatrix`).

    Args:
        pred: Predicted class ids (integers), any shape.
        gt: Ground-truth class ids, same shape; ``ignore_index`` marks unlabelled pixels.
        num_classes: Number of classes n (ids 0..n-1).
        ignore_index: Unlabelled id.

    Returns:
        ``{"miou": float, "pixel_acc": float, "iou": (n,) float64 with NaN for absent classes}``.

    Raises:
        ValueError: On shape/dtype mismatch or if no pixel is labelled.
    """
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, gt)
    return cm.compute()


def median_scale(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    clip: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Per-image median scaling of a scale-ambiguous prediction (monodepth2 protocol).

    Args:
        pred: Predicted depth (relative scale).
        gt: Ground-truth depth, same shape.
        valid: Boolean mask of evaluated pixels (ANDed with finite gt and pred).
        clip: Optional (min_depth, max_depth) to clip the scaled prediction to, as monodepth2
            does (1e-3, 80) on KITTI.

    Returns:
        (pred * ratio [clipped], ratio) with ratio = median(gt[valid]) / median(pred[valid]).
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    _same_shape(pred, gt)
    mask = _as_mask(valid, gt.shape) & np.isfinite(gt) & np.isfinite(pred)
    if not mask.any():
        raise ValueError("no valid pixel to take medians over")
    med_pred = float(np.median(pred[mask]))
    if not med_pred > 0:
        raise ValueError(f"median prediction is {med_pred}; expected positive depths")
    ratio = float(np.median(gt[mask])) / med_pred
    if not np.issubdtype(pred.dtype, np.floating):
        pred = pred.astype(np.float64)
    scaled = pred * pred.dtype.type(ratio)
    if clip is not None:
        np.clip(scaled, clip[0], clip[1], out=scaled)
    return scaled, ratio


def eval_mask(
    gt: np.ndarray, min_depth: float, max_depth: float, crop: str | None = None
) -> np.ndarray:
    """Evaluation mask: min_depth < gt < max_depth (finite), optionally inside a standard crop.

    Args:
        gt: (H, W) ground-truth depth in metres (missing = 0 or NaN).
        min_depth: Exclusive lower cap (1e-3 for KITTI and NYU).
        max_depth: Exclusive upper cap (80 for KITTI, 10 for NYU).
        crop: None; "garg" or "eigen" (KITTI crops, fractions of H and W truncated to
            integers as in monodepth2); "nyu_eigen" (rows 45:471, cols 41:601, 480x640 only).

    Returns:
        (H, W) boolean mask.
    """
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    if crop is None:
        return mask
    if gt.ndim != 2:
        raise ValueError(f"crops need a 2-D (H, W) ground truth, got {gt.shape}")
    h, w = gt.shape
    if crop in _KITTI_CROPS:
        f = _KITTI_CROPS[crop]
        # int() truncates like monodepth2's .astype(np.int32).
        r0, r1, c0, c1 = int(f[0] * h), int(f[1] * h), int(f[2] * w), int(f[3] * w)
    elif crop == "nyu_eigen":
        if (h, w) != (480, 640):
            raise ValueError(
                f"the NYU Eigen crop is defined on 480x640 images, got {w}x{h}; evaluate at "
                "the dataset resolution (resize the prediction to 640x480)"
            )
        r0, r1, c0, c1 = _NYU_EIGEN_CROP
    else:
        raise ValueError(f"unknown crop {crop!r}: use None, 'garg', 'eigen' or 'nyu_eigen'")
    crop_mask = np.zeros_like(mask)
    crop_mask[r0:r1, c0:c1] = True
    return mask & crop_mask


def mae_per_depth_bin(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None,
    bin_edges: np.ndarray | list[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean absolute error binned by ground-truth depth (e.g. 1 m bins as in paper (a)).

    Bins are [e_i, e_i+1) like np.histogram, the last one closed; pixels outside the edges are
    dropped.

    Args:
        pred: Predicted depth.
        gt: Ground-truth depth, same shape.
        valid: Optional boolean mask (ANDed with finite gt > 0 and finite pred).
        bin_edges: Increasing edges, at least two.

    Returns:
        (bin_centers, mae, counts): float64, float64 (NaN for empty bins), int64; one per bin.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    _same_shape(pred, gt)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bin_edges must be 1-D, strictly increasing, >= 2 values: {edges}")
    mask = _positive_finite(gt) & np.isfinite(pred)
    if valid is not None:
        mask &= _as_mask(valid, gt.shape)
    g = gt[mask]
    err = np.abs(pred[mask] - g)
    nbins = len(edges) - 1
    idx = np.searchsorted(edges, g, side="right") - 1
    idx[g == edges[-1]] = nbins - 1  # close the last bin like np.histogram
    inside = (idx >= 0) & (idx < nbins)
    counts = np.bincount(idx[inside], minlength=nbins).astype(np.int64)
    sums = np.bincount(idx[inside], weights=err[inside], minlength=nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(counts > 0, sums / counts, np.nan)
    centers = 0.5 * (edges[:-1] + edges[1:])
    return centers, mae, counts


def format_depth_metrics(metrics: Mapping[str, float]) -> str:
    """One line in the usual column order, e.g. for logs and the README tables."""
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in DEPTH_METRIC_KEYS if k in metrics)


# --------------------------------------------------------------------------- zero-shot protocol
ZERO_SHOT_KEYS: tuple[str, ...] = (
    "spearman",
    "aligned_abs_rel",
    "aligned_a1",
    "median_abs_rel",
    "median_a1",
    "metric_abs_rel",
    "metric_a1",
)
# MiDaS caps the aligned prediction at the data set's farthest depth (10 m on NYU, 80 m on
# KITTI); 10 m also covers Middlebury's indoor scenes (at most about 6 m).
DEFAULT_DEPTH_CAP = 10.0


def rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties sharing the mean of their ranks (as scipy's rankdata).

    Raises:
        ValueError: If ``values`` is not 1-D or holds NaN.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"rank_average takes a 1-D array, got shape {values.shape}")
    if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
        raise ValueError("cannot rank NaN; mask invalid pixels first")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    # A run of tied values occupies ranks (end - count + 1) .. end; each gets their mean.
    mean_rank = ends - (counts - 1) / 2.0
    return mean_rank[inverse.reshape(-1)]


def _pixels(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray | None, what: str
) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _same_shape(a, b)
    mask = np.isfinite(a) & np.isfinite(b)
    if valid is not None:
        mask &= _as_mask(valid, b.shape)
    if mask.sum() < 2:
        raise ValueError(f"{what} needs at least two valid (finite) pixels")
    return a[mask], b[mask]


def spearman(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Spearman rank correlation of two maps over the valid pixels.

    The Pearson correlation of the average ranks (ties share their mean rank), so it equals
    ``scipy.stats.spearmanr``. It depends only on the order of the values: the correlation of
    two inverse-depth maps equals that of the depths.

    Args:
        a: First map, any shape.
        b: Second map, same shape.
        valid: Optional boolean mask, ANDed with "both finite".

    Returns:
        The correlation in [-1, 1]; NaN when either map is constant over the pixels (the
        correlation is undefined then, as for a constant-depth baseline).

    Raises:
        ValueError: If shapes differ or fewer than two pixels are valid.
    """
    x, y = _pixels(a, b, valid, "spearman")
    rx = rank_average(x)
    ry = rank_average(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.dot(rx, ry) / denom, -1.0, 1.0))


def align_scale_shift(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None
) -> tuple[float, float]:
    """Least-squares scale s and shift t minimising sum((s * pred + t - target)^2).

    The zero-shot alignment of MiDaS and Depth Anything, applied to inverse depth (disparity).
    A constant ``pred`` leaves the scale undetermined: s = 0 and t = mean(target) then, the
    best constant.

    Args:
        pred: Prediction (e.g. predicted inverse depth), any shape.
        target: Target of the same shape (e.g. true inverse depth).
        valid: Optional boolean mask, ANDed with "both finite".

    Returns:
        ``(scale, shift)``.

    Raises:
        ValueError: If shapes differ or fewer than two pixels are valid.
    """
    p, g = _pixels(pred, target, valid, "align_scale_shift")
    # Centred normal equations: s = cov(p, g) / var(p), t = mean(g) - s * mean(p); centring
    # avoids the cancellation of the raw 2x2 system when p has a large offset.
    pc = p - p.mean()
    var = float(np.dot(pc, pc))
    scale = float(np.dot(pc, g - g.mean()) / var) if var > 0.0 else 0.0
    shift = float(g.mean() - scale * p.mean())
    return scale, shift


def zero_shot_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    metric: bool = False,
    median: bool = True,
    depth_cap: float = DEFAULT_DEPTH_CAP,
) -> dict[str, float]:
    """The zero-shot figures of ONE image (the MiDaS / Depth Anything protocol, plus more).

    Over the pixels where ``gt`` and ``pred`` are finite and > 0 (and ``valid``):

    * ``spearman``: rank correlation of predicted and true inverse depth (:func:`spearman`).
    * ``aligned_abs_rel``, ``aligned_a1``: the predicted inverse depth is aligned to the true
      inverse depth by least-squares scale and shift (:func:`align_scale_shift`), raised to at
      least ``1 / depth_cap`` (MiDaS's disparity cap, which also keeps it positive), inverted,
      and scored in depth with AbsRel and delta1 (:func:`depth_metrics`).
    * ``median_abs_rel``, ``median_a1``: the depth median-scaled (:func:`median_scale`),
      clipped to ``depth_cap``; NaN unless ``median``.
    * ``metric_abs_rel``, ``metric_a1``: the depth as predicted; NaN unless ``metric``.

    Args:
        pred: Predicted depth (or anything whose inverse is an inverse-depth estimate; only
            its inverse matters for the aligned figures and its order for ``spearman``).
        gt: Ground-truth depth in metres, same shape; 0, NaN or inf = unknown.
        valid: Optional boolean mask of pixels to evaluate.
        metric: Also score the prediction as metres (models that predict metric depth).
        median: Also score it median-scaled (predictions with a meaningful depth ratio).
        depth_cap: Farthest depth an aligned or median-scaled prediction may take, metres.

    Returns:
        Floats keyed by :data:`ZERO_SHOT_KEYS`; figures that were not asked for are NaN.

    Raises:
        ValueError: If shapes differ, ``depth_cap`` is not positive, or fewer than two pixels
            are valid.
    """
    if not depth_cap > 0:
        raise ValueError(f"depth_cap must be a positive depth in metres, got {depth_cap}")
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    _same_shape(pred, gt)
    mask = _positive_finite(gt) & _positive_finite(pred)
    if valid is not None:
        mask &= _as_mask(valid, gt.shape)
    if mask.sum() < 2:
        raise ValueError(
            "zero-shot metrics need at least two pixels with gt and pred finite and > 0"
        )
    g = gt[mask]
    p = pred[mask]
    g_inv = 1.0 / g
    p_inv = 1.0 / p
    nan = float("nan")
    out = dict.fromkeys(ZERO_SHOT_KEYS, nan)
    out["spearman"] = spearman(p_inv, g_inv)
    scale, shift = align_scale_shift(p_inv, g_inv)
    aligned_inv = np.maximum(scale * p_inv + shift, 1.0 / depth_cap)
    aligned = depth_metrics(1.0 / aligned_inv, g)
    out["aligned_abs_rel"] = aligned["abs_rel"]
    out["aligned_a1"] = aligned["a1"]
    if median:
        scaled, _ = median_scale(p, g, np.ones(g.shape, bool), clip=(1e-3, depth_cap))
        figures = depth_metrics(scaled, g)
        out["median_abs_rel"] = figures["abs_rel"]
        out["median_a1"] = figures["a1"]
    if metric:
        figures = depth_metrics(p, g)
        out["metric_abs_rel"] = figures["abs_rel"]
        out["metric_a1"] = figures["a1"]
    return out
