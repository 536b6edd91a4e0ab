"""Hand-computed values of the depth-gradient recipe's losses.

(training/objectives/gradient_losses.py)
"""

from __future__ import annotations

import math

import pytest
import torch

from training.objectives.gradient_losses import (
    depth_gradients,
    gradient_consistency_loss,
    gradient_supervision_loss,
    gradient_valid_mask,
    phi,
    scale_invariant_loss,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    """One (1, 1, H, W) tensor from nested rows."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# --- scale-invariant error -------------------------------------------------------------------


def test_scale_invariant_single_image_hand_value() -> None:
    # d = log(pred) - log(gt) = [0, 1]: 1/2 (0 + 1) - 0.5 / 4 (0 + 1)^2 = 0.375
    pred = t([[1.0, math.e]])
    gt = t([[1.0, 1.0]])
    valid = torch.ones_like(pred, dtype=torch.bool)
    assert scale_invariant_loss(pred, gt, valid).item() == pytest.approx(0.375, abs=1e-6)
    # lam = 0: plain mean squared log error 0.5; lam = 1: variance of d = 0.25
    assert scale_invariant_loss(pred, gt, valid, lam=0.0).item() == pytest.approx(0.5, abs=1e-6)
    assert scale_invariant_loss(pred, gt, valid, lam=1.0).item() == pytest.approx(0.25, abs=1e-6)


def test_scale_invariant_per_image_mean_and_invalid_pixels() -> None:
    # Image 0: d = [0, 1] on two valid pixels (third pixel invalid, gt 0): 0.375.
    # Image 1: pred = 2 gt on its 3 valid pixels: d = ln 2 everywhere:
    #   (ln 2)^2 - 0.5 (ln 2)^2 = 0.5 (ln 2)^2 = 0.240227...
    # Image 2: no valid pixel -> left out of the batch mean.
    pred = torch.tensor([[1.0, math.e, 7.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]])[:, None, None]
    gt = torch.tensor([[1.0, 1.0, 0.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])[:, None, None]
    rows = [[True, True, True], [True, True, True], [False, False, False]]
    valid = torch.tensor(rows)[:, None, None]
    expected = (0.375 + 0.5 * math.log(2.0) ** 2) / 2
    loss = scale_invariant_loss(pred, gt, valid)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_scale_invariant_is_scale_invariant_at_lam_one_and_zero_when_empty() -> None:
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 4, 5, generator=gen) + 0.5
    valid = torch.rand(2, 1, 4, 5, generator=gen) > 0.3
    assert scale_invariant_loss(3.7 * gt, gt, valid, lam=1.0).item() == pytest.approx(0, abs=1e-6)
    assert scale_invariant_loss(3.7 * gt, gt, valid, lam=0.5).item() > 0.8  # 0.5 (ln 3.7)^2
    pred = gt.clone().requires_grad_(True)
    empty = scale_invariant_loss(pred, gt, torch.zeros_like(valid))
    assert empty.item() == 0.0
    empty.backward()  # still attached to the graph
    assert pred.grad is not None


def test_scale_invariant_rejects_bad_input() -> None:
    pred = torch.ones(1, 1, 2, 2)
    with pytest.raises(ValueError, match="bool"):
        scale_invariant_loss(pred, pred, torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        scale_invariant_loss(pred, torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=bool))
    with pytest.raises(ValueError, match="lam"):
        scale_invariant_loss(pred, pred, torch.ones(1, 1, 2, 2, dtype=bool), lam=2.0)


# --- [-1, 0, 1] gradients --------------------------------------------------------------------


def test_depth_gradients_hand_values_with_replicate_border() -> None:
    depth = t([[1.0, 2.0, 4.0], [3.0, 5.0, 9.0], [0.0, 1.0, 1.0]])
    gx, gy = depth_gradients(depth)
    # x: rows padded [1,1,2,4,4], [3,3,5,9,9], [0,0,1,1,1]
    torch.testing.assert_close(gx, t([[1.0, 3.0, 2.0], [2.0, 6.0, 4.0], [1.0, 1.0, 0.0]]))
    # y: columns padded [1,1,3,0,0], [2,2,5,1,1], [4,4,9,1,1]
    torch.testing.assert_close(gy, t([[2.0, 3.0, 5.0], [-1.0, -1.0, -3.0], [-3.0, -4.0, -8.0]]))


def test_depth_gradients_of_a_ramp_are_twice_the_slope() -> None:
    cols = torch.arange(6, dtype=torch.float32)
    depth = (0.5 * cols).expand(2, 1, 4, 6).contiguous()
    gx, gy = depth_gradients(depth)
    torch.testing.assert_close(gx[..., 1:-1], torch.ones(2, 1, 4, 4))  # 2 * 0.5
    torch.testing.assert_close(gx[..., 0], torch.full((2, 1, 4), 0.5))  # one-sided at border
    torch.testing.assert_close(gy, torch.zeros_like(gy))


def test_gradient_valid_mask() -> None:
    valid = torch.tensor([[True, True, False, True]])[None, None]
    vx, vy = gradient_valid_mask(valid)
    # pixel 0: taps (0, 0, 1) valid; pixel 1: (0, 1, 2) -> 2 invalid; pixel 3: (2, 3, 3)
    assert vx.flatten().tolist() == [True, False, False, False]
    assert vy.flatten().tolist() == [True, True, False, True]  # H = 1: only the pixel itself


# --- Eq. 1 -----------------------------------------------------------------------------------


def _eq1_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    depth = t([[0.0, 1.0, 3.0]])  # gx = [1, 3, 2], gy = 0 (H = 1)
    grad_x = t([[1.0, 1.0, 2.0]])  # errors x: [0, 2, 0]
    grad_y = t([[0.0, 0.0, 0.1]])  # errors y: [0, 0, -0.1]
    return depth, grad_x, grad_y


def test_gradient_consistency_product_hand_value() -> None:
    depth, gx, gy = _eq1_example()
    # phi(0) = 0.01, phi(2) = sqrt(4.0001) = 2.000025, phi(0.1) = sqrt(0.0101) = 0.1004988
    expected = (0.01 * 0.01 + 2.000025 * 0.01 + 0.01 * 0.1004988) / 3
    assert expected == pytest.approx(0.0070351, abs=1e-7)
    loss = gradient_consistency_loss(depth, gx, gy)
    assert loss.item() == pytest.approx(expected, abs=1e-7)


def test_gradient_consistency_sum_and_mask_hand_values() -> None:
    depth, gx, gy = _eq1_example()
    expected_sum = (0.02 + 2.010025 + 0.1104988) / 3
    loss = gradient_consistency_loss(depth, gx, gy, combine="sum")
    assert loss.item() == pytest.approx(expected_sum, abs=1e-6)
    mask = torch.tensor([[True, False, True]])[None, None]
    masked = gradient_consistency_loss(depth, gx, gy, mask=mask)
    assert masked.item() == pytest.approx((1e-4 + 0.01 * 0.1004988) / 2, abs=1e-7)


def test_gradient_consistency_batch_mean_minimum_and_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    depth = (torch.rand(2, 1, 5, 6, generator=gen) + 1).requires_grad_(True)
    gx, gy = depth_gradients(depth.detach())
    # Perfect agreement: phi(0)^2 = 1e-4 at every pixel, the minimum of the product form.
    loss = gradient_consistency_loss(depth, gx, gy)
    assert loss.item() == pytest.approx(1e-4, rel=1e-5)
    # Batch mean of per-image means: image 1 fully masked out leaves image 0 alone.
    noisy_x = (gx + torch.randn(gx.shape, generator=gen)).requires_grad_(True)
    mask = torch.zeros(2, 1, 5, 6, dtype=torch.bool)
    mask[0] = True
    both = gradient_consistency_loss(depth, noisy_x, gy, mask=mask)
    first = gradient_consistency_loss(depth[:1], noisy_x[:1], gy[:1])
    assert both.item() == pytest.approx(first.item(), rel=1e-6)
    both.backward()
    # Both tasks learn from each other: depth and gradient predictions get gradients.
    assert depth.grad is not None and depth.grad.abs().sum() > 0
    assert noisy_x.grad is not None and noisy_x.grad.abs().sum() > 0
    assert noisy_x.grad[1].abs().sum() == 0


def test_gradient_consistency_rejects_bad_input() -> None:
    depth, gx, gy = _eq1_example()
    with pytest.raises(ValueError, match="combine"):
        gradient_consistency_loss(depth, gx, gy, combine="max")
    with pytest.raises(ValueError, match="shape"):
        gradient_consistency_loss(depth, gx[..., :2], gy)
    with pytest.raises(ValueError, match="bool"):
        gradient_consistency_loss(depth, gx, gy, mask=torch.ones_like(depth))


def test_phi_and_gradient_supervision_hand_value() -> None:
    assert phi(torch.tensor(0.0)).item() == pytest.approx(0.01)
    target = t([[1.0, 2.0, 4.0]])
    valid = torch.ones_like(target, dtype=torch.bool)
    # target gx = [1, 3, 2], gy = 0. Predicting exactly: phi(0) = 0.01 everywhere.
    exact = gradient_supervision_loss(
        t([[1.0, 3.0, 2.0]]), torch.zeros_like(target), target, valid
    )
    assert exact.item() == pytest.approx(0.01, abs=1e-7)
    # x errors [1, 0, 0] -> mean (sqrt(1.0001) + 0.02) / 3; y: 0.01; total is their mean
    off = gradient_supervision_loss(t([[2.0, 3.0, 2.0]]), torch.zeros_like(target), target, valid)
    expected = 0.5 * ((math.sqrt(1.0001) + 0.02) / 3 + 0.01)
    assert off.item() == pytest.approx(expected, abs=1e-6)
