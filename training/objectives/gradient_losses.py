"""Losses of the depth-gradient multi-task recipe (paper a, Takamine & Endo).

* :func:`scale_invariant_loss`: Eigen et al.'s scale-invariant error on log depth
  (NIPS 2014, lambda 0.5 for training), the paper's "sc-inv" loss of both stages.
* :func:`depth_gradients`: the paper's "simple matrix operation" ``[-1, 0, 1]`` (x) and
  ``[-1, 0, 1]^T`` (y) applied to a depth map.
* :func:`gradient_consistency_loss`: the paper's Eq. 1, which ties the gradient of the
  predicted depth to the separately predicted depth gradients.

All functions take ``(B, 1, H, W)`` tensors and reduce per image first, then average over the
images of the batch that have at least one valid pixel, so that an image with few valid pixels
weighs as much as one with many (Eq. 1 and the sc-inv error are both defined per image).
Functions return a 0 still attached to the prediction's graph when nothing is valid (DDP
needs every parameter to receive a gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

GRADIENT_COMBINE_MODES = ("product", "sum")
# phi(x) = sqrt(x^2 + PHI_EPS): the paper's smooth L1 ("1e-4").
PHI_EPS = 1e-4


def _check_b1hw(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 1:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a (B, 1, H, W) tensor, got {shape}")


def _check_mask(mask: torch.Tensor, like: torch.Tensor, name: str = "valid") -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor, got {got}; use mask > 0")
    if mask.shape != like.shape:
        raise ValueError(
            f"{name} {tuple(mask.shape)} must have the prediction's shape {tuple(like.shape)}; "
            "resize the ground truth to the prediction first"
        )


def _per_image_mean(
    values: torch.Tensor, mask: torch.Tensor, anchor: torch.Tensor
) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` per image, averaged over images with a masked pixel."""
    weights = mask.to(values.dtype)
    n = weights.sum(dim=(1, 2, 3))
    has = n > 0
    if not bool(has.any()):
        return anchor.sum() * 0.0
    # where() rather than a product: values at masked-out pixels may be inf/nan.
    summed = torch.where(mask, values, torch.zeros_like(values)).sum(dim=(1, 2, 3))
    return (summed / n.clamp_min(1.0))[has].mean()


def scale_invariant_loss(
    pred_depth: torch.Tensor,
    target_depth: torch.Tensor,
    valid: torch.Tensor,
    lam: float = 0.5,
) -> torch.Tensor:
    """Eigen's scale-invariant error on log depth, per image, averaged over the batch.

    With ``d = log pred - log target`` over the ``n`` valid pixels of an image::

        L = 1/n sum d^2 - lam / n^2 (sum d)^2

    ``lam = 1`` is fully scale invariant (the evaluation metric "sc-inv" uses ``lam = 1`` and
    reports the square root); Eigen et al. train with ``lam = 0.5``. Images without a valid
    pixel are left out of the batch mean.

    Args:
        pred_depth: ``(B, 1, H, W)`` predicted depth in metres, > 0 at valid pixels.
        target_depth: ``(B, 1, H, W)`` ground-truth depth (anything where invalid).
        valid: Boolean mask, same shape; pixels where the target is not finite and > 0 are
            treated as invalid too.
        lam: Weight of the scale term, in [0, 1].

    Returns:
        Scalar loss; 0 (attached to ``pred_depth``'s graph) when no pixel is valid.
    """
    _check_b1hw("pred_depth", pred_depth)
    _check_b1hw("target_depth", target_depth)
    if target_depth.shape != pred_depth.shape:
        raise ValueError(
            f"target_depth {tuple(target_depth.shape)} must have pred_depth's shape "
            f"{tuple(pred_depth.shape)}; resize the ground truth first"
        )
    _check_mask(valid, pred_depth)
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1] (Eigen et al. train with 0.5), got {lam}")
    valid = valid & torch.isfinite(target_depth) & (target_depth > 0)
    tiny = torch.finfo(pred_depth.dtype).tiny
    safe_target = torch.where(valid, target_depth, torch.ones_like(target_depth))
    d = torch.log(pred_depth.clamp_min(tiny)) - torch.log(safe_target)
    d = torch.where(valid, d, torch.zeros_like(d))
    n = valid.to(d.dtype).sum(dim=(1, 2, 3))
    has = n > 0
    if not bool(has.any()):
        return pred_depth.sum() * 0.0
    n_safe = n.clamp_min(1.0)
    sum_d = d.sum(dim=(1, 2, 3))
    sum_d2 = (d * d).sum(dim=(1, 2, 3))
    per_image = sum_d2 / n_safe - float(lam) * sum_d * sum_d / (n_safe * n_safe)
    return per_image[has].mean()


def depth_gradients(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[-1, 0, 1]`` (x) and ``[-1, 0, 1]^T`` (y) filtered depth (central differences).

    ``gx[i, j] = D[i, j+1] - D[i, j-1]`` and ``gy[i, j] = D[i+1, j] - D[i-1, j]`` (a
    correlation, as the paper's "simple matrix operation"; no division by 2, so the result is
    twice the per-pixel slope). Positive ``gx`` means depth grows to the right, positive ``gy``
    that it grows downwards.

    Border handling: the map is padded by replicating its edge pixels, so at the first / last
    column ``gx`` is the one-sided difference ``D[:, 1] - D[:, 0]`` / ``D[:, -1] - D[:, -2]``
    (half the central-difference scale) and a map one pixel wide gets 0. The output has the
    input's size; :func:`gradient_valid_mask` says where all three taps were valid.

    Args:
        depth: ``(B, 1, H, W)`` depth (or any single-channel map).

    Returns:
        ``(gx, gy)``, each ``(B, 1, H, W)``.
    """
    _check_b1hw("depth", depth)
    # Slicing rather than conv2d: exact (no multiply-add rounding) and exports to ONNX as Pad
    # plus Slice with dynamic H and W.
    padded = F.pad(depth, (1, 1, 1, 1), mode="replicate")
    gx = padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]
    gy = padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]
    return gx, gy


def gradient_valid_mask(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the ``[-1, 0, 1]`` x / y filters of :func:`depth_gradients` only saw valid pixels.

    Uses the same replicate border as :func:`depth_gradients`, so a border pixel is valid when
    it and its one inner neighbour are.

    Args:
        valid: ``(B, 1, H, W)`` boolean mask of valid depth.

    Returns:
        ``(valid_x, valid_y)`` boolean masks of the input's shape.
    """
    _check_b1hw("valid", valid)
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor, got {valid.dtype}; use mask > 0")
    padded = F.pad(valid.float(), (1, 1, 1, 1), mode="replicate") > 0.5
    centre = padded[:, :, 1:-1, 1:-1]
    valid_x = centre & padded[:, :, 1:-1, 2:] & padded[:, :, 1:-1, :-2]
    valid_y = centre & padded[:, :, 2:, 1:-1] & padded[:, :, :-2, 1:-1]
    return valid_x, valid_y


def phi(x: torch.Tensor, eps: float = PHI_EPS) -> torch.Tensor:
    """The paper's smooth L1 ``phi(x) = sqrt(x^2 + eps)``, eps = 1e-4."""
    return torch.sqrt(x * x + eps)


def gradient_consistency_loss(
    pred_depth: torch.Tensor,
    pred_grad_x: torch.Tensor,
    pred_grad_y: torch.Tensor,
    mask: torch.Tensor | None = None,
    combine: str = "product",
) -> torch.Tensor:
    """Paper a's Eq. 1 between the filtered predicted depth and the predicted gradients.

    ::

        L = 1/N sum_p [ phi(grad_x D_p - G_x_p) x phi(grad_y D_p - G_y_p) ]

    with ``grad D`` from :func:`depth_gradients` (``[-1, 0, 1]`` filters, replicate border),
    ``G`` the predicted gradients, ``phi(x) = sqrt(x^2 + 1e-4)`` and ``N`` the number of valid
    pixels of the image. Eq. 1 is printed with a product of the two directions, which is what
    ``combine="product"`` computes; note that it is small as soon as one direction agrees
    (``phi(0) = 0.01``). ``combine="sum"`` uses ``phi(.) + phi(.)`` instead (each direction
    penalised on its own, as in L1 gradient losses), for comparison. Both depth and gradient
    predictions receive gradients: the paper has the two tasks "learn from each other".

    Args:
        pred_depth: ``(B, 1, H, W)`` predicted depth (metres).
        pred_grad_x: ``(B, 1, H, W)`` predicted ``[-1, 0, 1]`` x-gradient of the depth.
        pred_grad_y: ``(B, 1, H, W)`` predicted y-gradient.
        mask: Optional boolean ``(B, 1, H, W)`` of the pixels counted (the paper's "valid
            depth pixels"); None counts every pixel.
        combine: ``"product"`` (Eq. 1 as printed) or ``"sum"``.

    Returns:
        Scalar loss, per image mean over the mask, averaged over the batch; 0 (attached to the
        graph) when the mask is empty.
    """
    _check_b1hw("pred_depth", pred_depth)
    for name, t in (("pred_grad_x", pred_grad_x), ("pred_grad_y", pred_grad_y)):
        _check_b1hw(name, t)
        if t.shape != pred_depth.shape:
            raise ValueError(
                f"{name} {tuple(t.shape)} must have pred_depth's shape {tuple(pred_depth.shape)}"
            )
    if combine not in GRADIENT_COMBINE_MODES:
        raise ValueError(f"combine must be one of {GRADIENT_COMBINE_MODES}, got {combine!r}")
    if mask is None:
        mask = torch.ones_like(pred_depth, dtype=torch.bool)
    else:
        _check_mask(mask, pred_depth, "mask")
    gx, gy = depth_gradients(pred_depth)
    ex, ey = phi(gx - pred_grad_x), phi(gy - pred_grad_y)
    per_pixel = ex * ey if combine == "product" else ex + ey
    anchor = pred_depth.sum() + pred_grad_x.sum() + pred_grad_y.sum()
    return _per_image_mean(per_pixel, mask, anchor)


def gradient_supervision_loss(
    pred_grad_x: torch.Tensor,
    pred_grad_y: torch.Tensor,
    target_depth: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Mean ``phi`` error of predicted gradients against ``[-1, 0, 1]`` ground-truth gradients.

    Not in paper a's printed losses (its stage 1 uses sc-inv + Eq. 1 only); offered as an
    option for the gradient head, as Li et al.'s two-stream network supervises its gradient
    stream. Counted where all three filter taps of the ground truth are valid, per direction.

    Args:
        pred_grad_x: ``(B, 1, H, W)`` predicted x-gradient.
        pred_grad_y: ``(B, 1, H, W)`` predicted y-gradient.
        target_depth: ``(B, 1, H, W)`` ground-truth depth (metres).
        valid: Boolean mask of valid ground truth, same shape.

    Returns:
        ``(Lx + Ly) / 2``, each a per-image mean averaged over the batch.
    """
    _check_b1hw("target_depth", target_depth)
    for name, t in (("pred_grad_x", pred_grad_x), ("pred_grad_y", pred_grad_y)):
        _check_b1hw(name, t)
        if t.shape != target_depth.shape:
            raise ValueError(
                f"{name} {tuple(t.shape)} must have target_depth's shape "
                f"{tuple(target_depth.shape)}; resize the ground truth first"
            )
    _check_mask(valid, target_depth)
    valid = valid & torch.isfinite(target_depth) & (target_depth > 0)
    safe = torch.where(valid, target_depth, torch.zeros_like(target_depth))
    tx, ty = depth_gradients(safe)
    vx, vy = gradient_valid_mask(valid)
    lx = _per_image_mean(phi(pred_grad_x - tx), vx, pred_grad_x)
    ly = _per_image_mean(phi(pred_grad_y - ty), vy, pred_grad_y)
    return 0.5 * (lx + ly)
