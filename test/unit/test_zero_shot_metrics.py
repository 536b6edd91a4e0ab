"""The zero-shot metrics (alignment, Spearman, AbsRel/delta1 aligned) against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from depth_perception.metrics import (
    ZERO_SHOT_KEYS,
    align_scale_shift,
    rank_average,
    spearman,
    zero_shot_metrics,
)


def test_rank_average_shares_tied_ranks() -> None:
    # sorted: 5 -> 1, 10 -> 2, the two 20s take ranks 3 and 4 -> 3.5 each
    np.testing.assert_array_equal(rank_average(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])
    with pytest.raises(ValueError, match="NaN"):
        rank_average(np.array([1.0, np.nan]))


def test_spearman_by_hand() -> None:
    # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)), d = (0, 1, 1, 0): 1 - 12 / 60
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4])) == pytest.approx(0.8)
    # ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4); centred dot 4.5, norms^2 4.5 and 5
    rho = spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 4]))
    assert rho == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    # order only: any increasing map keeps it, inverting both keeps it, reversing one negates
    a = np.array([0.5, 3.0, 1.0, 7.0, 2.0])
    b = np.array([1.0, 4.0, 2.5, 5.0, 2.0])
    assert spearman(1.0 / a, 1.0 / b) == pytest.approx(spearman(a, b))
    assert spearman(-a, b) == pytest.approx(-spearman(a, b))
    assert spearman(np.exp(a), b**3) == pytest.approx(spearman(a, b))


def test_spearman_matches_scipy_with_ties_and_mask() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 12, size=(20, 30)).astype(np.float64)  # many ties
    b = a + rng.normal(0.0, 4.0, size=a.shape)
    b[0, :5] = np.nan  # dropped like a masked pixel
    valid = rng.random(a.shape) > 0.2
    keep = valid & np.isfinite(b)
    expected = spearmanr(a[keep], b[keep]).statistic
    assert spearman(a, b, valid) == pytest.approx(expected, abs=1e-12)


def test_spearman_constant_is_undefined_and_bad_input_fails() -> None:
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    with pytest.raises(ValueError, match="differ"):
        spearman(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="two valid"):
        spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_align_scale_shift_by_hand() -> None:
    assert align_scale_shift(np.array([1.0, 2, 3]), np.array([3.0, 5, 7])) == pytest.approx(
        (2.0, 1.0)
    )
    # p centred (-1, 0, 1), g centred (-1, 1, 0): s = 1 / 2, t = 1 - s * 1
    assert align_scale_shift(np.array([0.0, 1, 2]), np.array([0.0, 2, 1])) == pytest.approx(
        (0.5, 0.5)
    )
    # constant prediction: the scale is undetermined, the best constant is the mean
    assert align_scale_shift(np.full(3, 4.0), np.array([1.0, 2, 6])) == pytest.approx((0.0, 3.0))
    # a large offset in p must not cost precision (centred normal equations)
    p = 1e6 + np.array([0.0, 1, 2])
    s, t = align_scale_shift(p, 2.0 * p - 5.0)
    assert s == pytest.approx(2.0, rel=1e-9) and t == pytest.approx(-5.0, rel=1e-6)
    # masked pixels play no part
    valid = np.array([True, True, True, False])
    p = np.array([1.0, 2, 3, 100])
    assert align_scale_shift(p, np.array([3.0, 5, 7, -1]), valid) == pytest.approx((2.0, 1.0))


def test_zero_shot_metrics_by_hand() -> None:
    gt = np.array([1.0, 2.0, 4.0])  # inverse depth (1, 1/2, 1/4), mean 7/12
    pred = 1.0 / np.array([1.0, 2.0, 3.0])  # inverse depth (1, 2, 3): the wrong order
    m = zero_shot_metrics(pred, gt, metric=True)
    assert tuple(m) == ZERO_SHOT_KEYS
    assert m["spearman"] == pytest.approx(-1.0)
    # alignment: p centred (-1, 0, 1), g centred (5, -1, -4) / 12: s = (-9/12) / 2 = -3/8,
    # t = 7/12 + 3/8 * 2 = 4/3; aligned inverse depth 4/3 - 3/8 (1, 2, 3) = (23, 14, 5) / 24
    aligned = 24.0 / np.array([23.0, 14.0, 5.0])
    assert m["aligned_abs_rel"] == pytest.approx(np.mean(np.abs(aligned - gt) / gt))
    assert m["aligned_abs_rel"] == pytest.approx((1 / 23 + 1 / 7 + 1 / 5) / 3)
    assert m["aligned_a1"] == 1.0  # ratios 24/23, 7/6, 6/5 all < 1.25
    # median scaling: median(gt) / median(pred) = 2 / (1/2) = 4 -> (4, 2, 4/3)
    assert m["median_abs_rel"] == pytest.approx((3.0 + 0.0 + 2.0 / 3.0) / 3.0)
    assert m["median_a1"] == pytest.approx(1.0 / 3.0)
    # as predicted: (1, 1/2, 1/3) vs (1, 2, 4)
    assert m["metric_abs_rel"] == pytest.approx((0.0 + 0.75 + 11.0 / 12.0) / 3.0)
    assert m["metric_a1"] == pytest.approx(1.0 / 3.0)


def test_zero_shot_depth_cap_and_figures_not_asked_for() -> None:
    gt = np.array([1.0, 2.0, 4.0])
    pred = 1.0 / np.array([1.0, 2.0, 3.0])
    # cap 4 m: the aligned inverse depth 5/24 of the last pixel rises to 1/4 -> depth 4, exact
    m = zero_shot_metrics(pred, gt, depth_cap=4.0, median=False)
    assert m["aligned_abs_rel"] == pytest.approx((1 / 23 + 1 / 7 + 0.0) / 3)
    for key in ("median_abs_rel", "median_a1", "metric_abs_rel", "metric_a1"):
        assert math.isnan(m[key])
    # an affine map of the true inverse depth is perfect after alignment, whatever its scale
    gt = np.linspace(1.0, 5.0, 12).reshape(3, 4)
    pred = 1.0 / (0.3 / gt + 2.0)
    m = zero_shot_metrics(pred, gt)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["aligned_abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert m["aligned_a1"] == 1.0


def test_zero_shot_constant_and_invalid_pixels() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 = unknown
    m = zero_shot_metrics(np.full(gt.shape, 3.0), gt)
    assert math.isnan(m["spearman"])
    # the best constant inverse depth is mean(1, 1/2, 1/4) = 7/12 -> depth 12/7
    assert m["aligned_abs_rel"] == pytest.approx(
        np.mean(np.abs(12 / 7 - np.array([1.0, 2, 4])) / np.array([1.0, 2, 4]))
    )
    valid = np.array([[True, True], [False, True]])
    m = zero_shot_metrics(np.array([[1.0, 2.0], [9.0, 5.0]]), gt, valid, metric=True)
    assert m["metric_abs_rel"] == 0.0  # only the first row survives the mask and the unknown
    with pytest.raises(ValueError, match="at least two"):
        zero_shot_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="depth_cap"):
        zero_shot_metrics(np.ones(3), np.ones(3), depth_cap=0.0)
    with pytest.raises(ValueError, match="boolean"):
        zero_shot_metrics(np.ones(3), np.ones(3), valid=np.ones(3))
