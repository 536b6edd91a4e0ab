"""Training-curve plot drawn with NumPy + OpenCV (no matplotlib dependency).

:func:`save_training_curves` turns the history a run keeps (``Progress.history``: dicts with
``step`` and values) into one PNG of small line charts: training loss (log scale), learning
rate, and the validation metrics that were logged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fmt(value: float, step: float) -> str:
    """Tick label with enough digits to tell ticks ``step`` apart."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2e}"
    decimals = max(0, min(6, 1 - math.floor(math.log10(abs(step))))) if step > 0 else 3
    return f"{value:.{decimals}f}"


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    size: tuple[int, int] = (480, 300),
    log_y: bool = False,
) -> np.ndarray:
    """One chart: ``series`` maps a name to ``(x, y)``; returns an RGB uint8 image.

    Args:
        series: Lines to draw; non-finite (and, with ``log_y``, non-positive) points skipped.
        title: Text above the chart.
        size: ``(width, height)`` in pixels.
        log_y: Logarithmic y axis.
    """
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 62, 12, 28, 34
    cv2.putText(img, title, (left, 18), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (xs, ys) in series.items():
        x = np.asarray(xs, np.float64)
        y = np.asarray(ys, np.float64)
        keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        if keep.any():
            clean[name] = (x[keep], np.log10(y[keep]) if log_y else y[keep])
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    if not clean:
        cv2.putText(img, "no data", (x0 + 10, (y0 + y1) // 2), _FONT, 0.5, (128, 128, 128), 1)
        return img
    all_x = np.concatenate([v[0] for v in clean.values()])
    all_y = np.concatenate([v[1] for v in clean.values()])
    xmin, xmax = float(all_x.min()), float(all_x.max())
    ymin, ymax = float(all_y.min()), float(all_y.max())
    if xmax <= xmin:
        xmin, xmax = xmin - 1, xmax + 1
    if ymax <= ymin:
        pad = abs(ymin) * 0.1 or 1.0
        ymin, ymax = ymin - pad, ymax + pad
    margin = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - margin, ymax + margin

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)
        py = y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for i in range(5):  # grid and tick labels
        fy = ymin + (ymax - ymin) * i / 4
        py = round(y1 - (fy - ymin) / (ymax - ymin) * (y1 - y0))
        cv2.line(img, (x0, py), (x1, py), (225, 225, 225), 1)
        if log_y:
            label = _fmt(10**fy, 10**fy * (10 ** ((ymax - ymin) / 4) - 1))
        else:
            label = _fmt(fy, (ymax - ymin) / 4)
        cv2.putText(img, label, (4, py + 4), _FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        fx = xmin + (xmax - xmin) * i / 4
        px = round(x0 + (fx - xmin) / (xmax - xmin) * (x1 - x0))
        cv2.line(img, (px, y1), (px, y1 + 4), (0, 0, 0), 1)
        cv2.putText(
            img,
            _fmt(fx, (xmax - xmin) / 4),
            (px - 14, y1 + 16),
            _FONT,
            0.35,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(img, "step", (x1 - 30, height - 4), _FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, (x, y)) in enumerate(clean.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pts = to_px(x, y)
        if len(pts) == 1:
            cv2.circle(img, tuple(int(v) for v in pts[0]), 3, colour, -1, cv2.LINE_AA)
        else:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
            if len(pts) <= 30:
                for pt in pts:
                    cv2.circle(img, (int(pt[0]), int(pt[1])), 2, colour, -1, cv2.LINE_AA)
        ly = y0 + 14 + 14 * k
        cv2.line(img, (x1 - 110, ly - 4), (x1 - 92, ly - 4), colour, 2)
        cv2.putText(img, name, (x1 - 88, ly), _FONT, 0.38, colour, 1, cv2.LINE_AA)
    return img


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(h["step"], h[key]) for h in history if key in h and h[key] is not None]
    return [float(p[0]) for p in pts], [float(p[1]) for p in pts]


def training_curves(history: Sequence[dict[str, Any]]) -> np.ndarray:
    """The chart grid (RGB uint8) for a run's history."""
    charts = [
        line_chart({"train loss": _series(history, "loss")}, "training loss (log)", log_y=True),
        line_chart({"lr": _series(history, "lr")}, "learning rate", log_y=True),
    ]
    depth_keys = [
        k for k in ("val_abs_rel", "val_rmse_log", "val_silog") if any(k in h for h in history)
    ]
    rmse = [k for k in ("val_rmse",) if any(k in h for h in history)]
    ratio = [k for k in ("val_a1", "val_miou", "val_pixel_acc") if any(k in h for h in history)]
    if depth_keys:
        # silog is reported x100; scale it down to share the axis with the others.
        series = {}
        for k in depth_keys:
            xs, ys = _series(history, k)
            if k == "val_silog":
                ys = [v / 100.0 for v in ys]
                k = "val_silog/100"
            series[k.removeprefix("val_")] = (xs, ys)
        charts.append(line_chart(series, "validation errors"))
    if rmse:
        charts.append(line_chart({"rmse": _series(history, "val_rmse")}, "validation RMSE (m)"))
    if ratio:
        charts.append(
            line_chart(
                {k.removeprefix("val_"): _series(history, k) for k in ratio}, "validation accuracy"
            )
        )
    cols = 2
    rows = math.ceil(len(charts) / cols)
    blank = np.full_like(charts[0], 255)
    charts += [blank] * (rows * cols - len(charts))
    return np.vstack([np.hstack(charts[r * cols : (r + 1) * cols]) for r in range(rows)])


def save_training_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write :func:`training_curves` as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = training_curves(history)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
