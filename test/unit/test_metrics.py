"""Tests of the depth and segmentation metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_perception.metrics import (
    DEPTH_METRIC_KEYS,
    ConfusionMatrix,
    DepthMetricAverager,
    depth_metrics,
    eval_mask,
    mae_per_depth_bin,
    median_scale,
    segmentation_metrics,
)


def test_keys_exact() -> None:
    m = depth_metrics(np.array([1.0]), np.array([1.0]))
    assert tuple(m) == DEPTH_METRIC_KEYS
    assert set(m) == {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "a1", "a2", "a3"}


def test_perfect_prediction() -> None:
    gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    m = depth_metrics(gt.copy(), gt)
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
        assert m[k] == pytest.approx(0.0, abs=1e-12), k
    assert m["a1"] == m["a2"] == m["a3"] == 1.0


def test_double_prediction() -> None:
    # pred = 2 g: |g - p| / g = 1; (g - p)^2 / g = g -> mean(g) = 2.5; rmse = sqrt(mean g^2)
    # = sqrt(30 / 4); ln g - ln p = -ln 2 everywhere -> rmse_log = ln 2, silog = 0 (scale
    # invariant); log10 = log10 2; the ratio 2 exceeds 1.25, 1.5625 and 1.953125 -> a1..a3 = 0.
    gt = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    m = depth_metrics(2 * gt, gt)
    assert m["abs_rel"] == pytest.approx(1.0)
    assert m["sq_rel"] == pytest.approx(2.5)
    assert m["rmse"] == pytest.approx(math.sqrt(7.5))
    assert m["rmse_log"] == pytest.approx(math.log(2))
    assert m["log10"] == pytest.approx(math.log10(2))
    assert m["silog"] == pytest.approx(0.0, abs=1e-9)
    assert (m["a1"], m["a2"], m["a3"]) == (0.0, 0.0, 0.0)


def test_mixed_prediction_by_hand() -> None:
    gt = np.array([1.0, 2.0, 4.0, 5.0])
    pred = np.array([1.0, 2.4, 6.0, 10.0])  # ratios 1, 1.2, 1.5, 2
    m = depth_metrics(pred, gt)
    # abs_rel = (0 + 0.4/2 + 2/4 + 5/5) / 4 = 1.7 / 4
    assert m["abs_rel"] == pytest.approx(0.425)
    # sq_rel = (0 + 0.16/2 + 4/4 + 25/5) / 4 = 6.08 / 4
    assert m["sq_rel"] == pytest.approx(1.52)
    # rmse = sqrt((0 + 0.16 + 4 + 25) / 4) = sqrt(7.29)
    assert m["rmse"] == pytest.approx(2.7)
    logs = [0.0, math.log(1.2), math.log(1.5), math.log(2.0)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in logs) / 4))
    # log10 = (log10 1.2 + log10 1.5 + log10 2) / 4 = log10(3.6) / 4
    assert m["log10"] == pytest.approx(math.log10(3.6) / 4)
    # e = -logs: silog = 100 * population std of logs
    mean = sum(logs) / 4
    assert m["silog"] == pytest.approx(100 * math.sqrt(sum(x * x for x in logs) / 4 - mean**2))
    # a1: ratios < 1.25 -> {1, 1.2}; a2, a3: < 1.5625 / 1.953 -> {1, 1.2, 1.5}
    assert (m["a1"], m["a2"], m["a3"]) == (0.5, 0.75, 0.75)
    # Symmetric ratio: pred = g / 2 also misses every threshold.
    assert depth_metrics(gt / 2, gt)["a3"] == 0.0


def test_invalid_pixels_and_explicit_mask() -> None:
    gt = np.array([1.0, 2.0, 0.0, np.nan, 4.0, np.inf, 3.0])
    pred = np.array([1.0, 2.0, 5.0, 5.0, 8.0, 5.0, np.nan])
    # Default: gt 0, NaN, inf and pred NaN are dropped -> pixels 0, 1, 4: abs_rel = 1/3.
    assert depth_metrics(pred, gt)["abs_rel"] == pytest.approx(1 / 3)
    # Explicit mask ANDed with finiteness: pixels 0 and 4 -> abs_rel = (0 + 1) / 2.
    valid = np.array([True, False, True, True, True, True, True])
    m = depth_metrics(pred, gt, valid)
    assert m["abs_rel"] == pytest.approx(0.5)
    assert m["a1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no valid pixel"):
        depth_metrics(pred, gt, np.zeros(7, dtype=bool))
    with pytest.raises(ValueError):
        depth_metrics(pred[:3], gt)
    with pytest.raises(ValueError):
        depth_metrics(pred, gt, valid.astype(np.uint8))
    with pytest.raises(ValueError):
        depth_metrics(np.array([np.nan]), np.array([0.0]))


def test_depth_metric_averager() -> None:
    gt = np.array([1.0, 2.0])
    avg = DepthMetricAverager()
    m1 = avg.update(gt.copy(), gt)  # abs_rel 0, a1 1
    m2 = avg.update(2 * gt, gt)  # abs_rel 1, a1 0
    assert (m1["abs_rel"], m2["abs_rel"]) == pytest.approx((0.0, 1.0))
    out = avg.compute()
    assert avg.count == 2
    assert out["abs_rel"] == pytest.approx(0.5) and out["a1"] == pytest.approx(0.5)
    # Mean of per-image values, not pooled over pixels: image 2 has 1 pixel, image 1 has 3.
    avg.reset()
    avg.update(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0]))
    avg.update(np.array([4.0]), np.array([2.0]))
    assert avg.compute()["abs_rel"] == pytest.approx(0.5)  # pooled would be 0.25
    with pytest.raises(ValueError):
        DepthMetricAverager().compute()
    with pytest.raises(ValueError):
        avg.add({"abs_rel": 0.0})


def test_segmentation_known_confusion() -> None:
    gt = np.array([0, 0, 1, 1, 2, 255], dtype=np.uint8)
    pred = np.array([0, 1, 1, 1, 0, 2], dtype=np.uint8)
    # Counts [gt, pred]: (0,0)=1 (0,1)=1 (1,1)=2 (2,0)=1; the 255 pixel is ignored.
    # IoU0 = 1 / (2 + 2 - 1) = 1/3; IoU1 = 2 / (2 + 3 - 2) = 2/3; IoU2 = 0 / 1 = 0;
    # class 3 absent from both -> NaN. mIoU = (1/3 + 2/3 + 0) / 3 = 1/3; pixel_acc = 3/5.
    out = segmentation_metrics(pred, gt, num_classes=4)
    np.testing.assert_allclose(out["iou"][:3], [1 / 3, 2 / 3, 0.0])
    assert np.isnan(out["iou"][3])
    assert out["miou"] == pytest.approx(1 / 3)
    assert out["pixel_acc"] == pytest.approx(0.6)


def test_segmentation_edge_cases() -> None:
    # A class only predicted: IoU0 = 1 / (2 + 1 - 1) = 0.5, IoU1 = 0 / (0 + 1 - 0) = 0.
    out = segmentation_metrics(np.array([0, 1]), np.array([0, 0]), num_classes=2)
    np.testing.assert_allclose(out["iou"], [0.5, 0.0])
    assert out["miou"] == pytest.approx(0.25)
    # An out-of-range prediction is a miss, credited to no class: IoU0 = 1 / (2 + 1 - 1).
    out = segmentation_metrics(np.array([0, 255]), np.array([0, 0]), num_classes=2)
    np.testing.assert_allclose(out["iou"][0], 0.5)
    assert np.isnan(out["iou"][1]) and out["pixel_acc"] == 0.5
    # Ignored id inside the class range (NYU-style 0 = unlabelled) is not scored.
    out = segmentation_metrics(np.array([0, 1, 0]), np.array([0, 1, 1]), 3, ignore_index=0)
    assert np.isnan(out["iou"][0]) and out["iou"][1] == pytest.approx(0.5)
    assert out["pixel_acc"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        segmentation_metrics(np.array([0]), np.array([255]), num_classes=2)
    with pytest.raises(ValueError):
        segmentation_metrics(np.array([0.0]), np.array([0]), num_classes=2)
    with pytest.raises(ValueError):
        segmentation_metrics(np.array([0, 1]), np.array([0]), num_classes=2)


def test_confusion_matrix_accumulates() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 2]]))
    cm.update(np.array([0, 0]), np.array([0, 255]))
    expected = np.array([[2, 0, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(cm.matrix, expected)
    out = cm.compute()
    # IoU0 = 2/2, IoU1 = 1/2, IoU2 = 1/(1 + 2 - 1); pixel_acc = 4/5.
    np.testing.assert_allclose(out["iou"], [1.0, 0.5, 0.5])
    assert out["miou"] == pytest.approx(2 / 3)
    assert out["pixel_acc"] == pytest.approx(0.8)
    # Same as evaluating everything at once.
    once = segmentation_metrics(np.array([0, 1, 2, 2, 0]), np.array([0, 1, 1, 2, 0]), 3)
    assert once["miou"] == pytest.approx(out["miou"])
    cm.reset()
    with pytest.raises(ValueError):
        cm.compute()


def test_median_scale() -> None:
    gt = np.array([2.0, 4.0, 6.0, 100.0])
    pred = np.array([1.0, 2.0, 3.0, np.nan])
    valid = np.array([True, True, True, True])
    scaled, ratio = median_scale(pred, gt, valid)
    # Finite pixels 0..2: median(gt) = 4, median(pred) = 2 -> ratio 2.
    assert ratio == pytest.approx(2.0)
    np.testing.assert_allclose(scaled[:3], [2.0, 4.0, 6.0])
    scaled, _ = median_scale(pred, gt, valid, clip=(1e-3, 5.0))
    np.testing.assert_allclose(scaled[:3], [2.0, 4.0, 5.0])
    # After median scaling a scale-only error disappears.
    assert depth_metrics(median_scale(gt / 7, gt, gt > 0)[0], gt)["abs_rel"] == pytest.approx(0)
    with pytest.raises(ValueError):
        median_scale(pred, gt, np.zeros(4, dtype=bool))


def test_eval_mask_caps_and_crops() -> None:
    gt = np.array([[0.0, 1e-3, 0.5], [80.0, 79.9, np.nan]])
    np.testing.assert_array_equal(
        eval_mask(gt, 1e-3, 80.0), [[False, False, True], [False, True, False]]
    )
    ones = np.ones((100, 1000))
    # garg: rows int(40.81)=40 : int(99.19)=99, cols int(35.95)=35 : int(964.05)=964.
    m = eval_mask(ones, 0.0, 10.0, crop="garg")
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (40, 99, 35, 964)
    assert m.sum() == 59 * 929
    # eigen: rows int(33.24)=33 : int(91.35)=91, same columns.
    rows, cols = np.nonzero(eval_mask(ones, 0.0, 10.0, crop="eigen"))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (33, 91, 35, 964)
    # KITTI 375x1242 garg crop (monodepth2): rows 153:371, cols 44:1197.
    rows, cols = np.nonzero(eval_mask(np.ones((375, 1242)), 1e-3, 80.0, crop="garg"))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    nyu = np.full((480, 640), 5.0)
    nyu[100, 100] = 0.0
    m = eval_mask(nyu, 1e-3, 10.0, crop="nyu_eigen")
    assert m.sum() == (471 - 45) * (601 - 41) - 1
    assert m[45, 41] and m[470, 600] and not m[44, 41] and not m[45, 601]
    with pytest.raises(ValueError):
        eval_mask(np.ones((240, 320)), 1e-3, 10.0, crop="nyu_eigen")
    with pytest.raises(ValueError):
        eval_mask(ones, 0.0, 10.0, crop="kitti")


def test_mae_per_depth_bin() -> None:
    gt = np.array([0.5, 1.5, 1.2, 3.5, 4.0, 5.0, 0.0])
    pred = np.array([1.0, 1.0, 2.0, 0.0, 4.5, 1.0, 9.0])
    centers, mae, counts = mae_per_depth_bin(pred, gt, None, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(centers, [0.5, 1.5, 2.5, 3.5])
    # bin0: |1 - 0.5| = 0.5; bin1: (0.5 + 0.8) / 2; bin2 empty; bin3: 3.5 and 4.0 (the last
    # bin is closed) -> (3.5 + 0.5) / 2; gt 5.0 is outside, gt 0.0 is invalid.
    np.testing.assert_array_equal(counts, [1, 2, 0, 2])
    np.testing.assert_allclose(mae[[0, 1, 3]], [0.5, 0.65, 2.0])
    assert np.isnan(mae[2])
    valid = np.array([True, False, True, True, True, True, True])
    _, mae, counts = mae_per_depth_bin(pred, gt, valid, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(counts, [1, 1, 0, 2])
    assert mae[1] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        mae_per_depth_bin(pred, gt, None, [0, 2, 1])
