"""Losses of the light-weight recipe (paper d, Chiu et al.) and the ground-truth pyramid.

The paper's total loss sums, over the decoder scales i, ``alpha * L_D_i + beta * L_S_i`` with
``alpha = 0.25`` and ``beta = 0.75``:

* ``L_D_i`` = mean over valid pixels of ``BerHu(G(pred) - G(gt))`` with
  ``G(d) = (log d - log m) * M / (log M - log m)`` (``m``/``M`` = the model's depth range) and
  the BerHu threshold ``c = 0.2 * max |G(pred) - G(gt)|`` over the batch's valid pixels of that
  scale (a constant for the gradient, as in Nekrasov et al.'s InvHuber);
* ``L_S_i`` = pixel-wise cross-entropy, pixels labelled ``ignore_index`` (255) skipped.

The paper averages over all ``W_i * H_i`` pixels because its teacher depth is dense; here the
mean runs over valid pixels only so that sparse or partly missing ground truth (sky at +inf)
does not shrink the loss.

Ground truth is brought to each scale's size without inventing values: labels with nearest
sampling; depth with a validity-aware pool (see :func:`downsample_depth`).

Models without per-scale outputs (any registered model returning only ``depth`` and optionally
``seg_logits``) are handled as a single scale at their output resolution, so the same loss
trains every model in the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from depth_perception.models.lightweight import log_depth_transform

DEPTH_DOWNSAMPLE_MODES = ("min", "nearest")


def g_transform(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """The paper's log transform ``G(d) = (log d - log m) * M / (log M - log m)``.

    Maps ``[m, M]`` onto ``[0, M]``; ``G(m) = 0`` and ``G(M) = M``. Same function the
    ``lightweight`` model inverts on its output.

    Args:
        depth: Depth in metres, > 0.
        min_depth: ``m`` (paper: 4 m).
        max_depth: ``M`` (paper: 80 m).
    """
    if not (0 < min_depth < max_depth and math.isfinite(max_depth)):
        raise ValueError(f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}")
    return log_depth_transform(depth, min_depth, max_depth)


def berhu(x: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Element-wise reverse Huber: ``|x|`` if ``|x| <= c`` else ``(x^2 + c^2) / (2c)``.

    Args:
        x: Residuals.
        c: Threshold > 0 (scalar or broadcastable tensor).
    """
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    a = x.abs()
    # clamp keeps the unused branch finite when c == 0 (then every |x| <= c is 0 anyway).
    quadratic = (x * x + c * c) / (2 * c.clamp_min(torch.finfo(x.dtype).tiny))
    return torch.where(a <= c, a, quadratic)


def berhu_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, c_ratio: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BerHu of ``pred - target`` over the valid pixels, threshold from the batch.

    Args:
        pred: Predictions, e.g. G-space depth ``(B, 1, H, W)``.
        target: Targets, same shape.
        valid: Boolean mask, same shape.
        c_ratio: ``c = c_ratio * max |pred - target|`` over the valid pixels (paper: 1/5).

    Returns:
        ``(loss, c)``; both 0 (loss still attached to ``pred``'s graph) when no pixel is valid.
    """
    if pred.shape != target.shape or pred.shape != valid.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and valid "
            f"{tuple(valid.shape)} must have one shape; downsample the ground truth first"
        )
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor, got {valid.dtype}")
    if not valid.any():
        zero = pred.sum() * 0.0  # keeps the graph (DDP needs every parameter used)
        return zero, zero.detach()
    diff = pred[valid] - target[valid]
    # The threshold is a statistic of the batch, not a function to differentiate.
    c = c_ratio * diff.detach().abs().max()
    return berhu(diff, c).mean(), c


def downsample_depth(
    depth: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], mode: str = "min"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring ground-truth depth and its validity to ``size`` without inventing depths.

    ``mode="min"``: each output cell takes the nearest (minimum) valid depth of the input
    pixels it covers (adaptive min-pool) and is valid if any of them is. Averaging would create
    depths that exist nowhere at object boundaries ("flying pixels"); the minimum keeps thin
    near obstacles visible at coarse scales (what matters for avoiding them) and keeps every
    valid sample of sparse LiDAR-like ground truth. It shifts foreground edges outwards by at
    most one output cell.
    ``mode="nearest"``: nearest-neighbour sampling of depth and validity (an invalid sample
    stays invalid); unbiased at edges but drops most samples of sparse ground truth.

    Args:
        depth: ``(B, 1, H, W)`` or ``(B, H, W)`` depth in metres (anything where invalid).
        valid: Boolean mask of the same shape.
        size: ``(height, width)`` of the output.
        mode: ``"min"`` or ``"nearest"``.

    Returns:
        ``(depth, valid)`` as ``(B, 1, h, w)``; invalid cells hold 1.0 (finite, log-safe).
    """
    if mode not in DEPTH_DOWNSAMPLE_MODES:
        raise ValueError(
            f"unknown depth downsample mode {mode!r}; use one of {DEPTH_DOWNSAMPLE_MODES}"
        )
    depth, valid = _as_b1hw(depth), _as_b1hw(valid)
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor, got {valid.dtype}")
    valid = valid & torch.isfinite(depth) & (depth > 0)
    size = (int(size[0]), int(size[1]))
    if tuple(depth.shape[-2:]) == size:
        out_valid = valid
        out = depth
    elif mode == "min":
        filled = torch.where(valid, depth.float(), torch.full_like(depth.float(), math.inf))
        out = -F.adaptive_max_pool2d(-filled, size)
        out_valid = torch.isfinite(out)
    else:
        out = F.interpolate(depth.float(), size=size, mode="nearest")
        out_valid = F.interpolate(valid.float(), size=size, mode="nearest") > 0.5
    out = torch.where(out_valid, out, torch.ones_like(out))
    return out, out_valid


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of ``(B, H, W)`` integer labels to ``size`` = (h, w)."""
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W), got {tuple(labels.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(labels.shape[-2:]) == size:
        return labels.long()
    # Float holds every id 0..255 exactly; nearest never mixes two ids.
    out = F.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return out[:, 0].round().long()


def _as_b1hw(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 3:
        return t[:, None]
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"expected (B, H, W) or (B, 1, H, W), got {tuple(t.shape)}")
    return t


@dataclass
class LossTerms:
    """What :class:`MultiScaleDepthSegLoss` returns: the total and its parts for logging.

    Attributes:
        total: Scalar to back-propagate.
        depth: ``L_D_i`` per scale, coarse to fine (detached floats).
        seg: ``L_S_i`` per scale (empty for depth-only models).
        berhu_c: BerHu threshold per scale.
    """

    total: torch.Tensor
    depth: list[float] = field(default_factory=list)
    seg: list[float] = field(default_factory=list)
    berhu_c: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Flat ``name -> value`` dict for TensorBoard and progress bars."""
        out = {"loss": float(self.total.detach()), **self.extra}
        for i, v in enumerate(self.depth):
            out[f"loss_depth/s{i}"] = v
        for i, v in enumerate(self.seg):
            out[f"loss_seg/s{i}"] = v
        for i, v in enumerate(self.berhu_c):
            out[f"berhu_c/s{i}"] = v
        return out


class MultiScaleDepthSegLoss:
    """``sum_i depth_weight * L_D_i + seg_weight * L_S_i`` over the model's output scales.

    Args:
        min_depth: ``m`` of G(d): the model's ``min_depth``.
        max_depth: ``M`` of G(d): the model's ``max_depth``.
        depth_weight: ``alpha`` (paper 0.25).
        seg_weight: ``beta`` (paper 0.75).
        berhu_c_ratio: BerHu threshold as a fraction of the batch's largest residual (0.2).
        ignore_index: Label id skipped by the cross-entropy.
        depth_downsample: ``"min"`` or ``"nearest"``, see :func:`downsample_depth`.
    """

    def __init__(
        self,
        min_depth: float,
        max_depth: float,
        depth_weight: float = 0.25,
        seg_weight: float = 0.75,
        berhu_c_ratio: float = 0.2,
        ignore_index: int = 255,
        depth_downsample: str = "min",
    ) -> None:
        if not (0 < min_depth < max_depth and math.isfinite(max_depth)):
            raise ValueError(
                f"need 0 < min_depth < max_depth (finite) for G(d), got {min_depth}, {max_depth}"
            )
        if depth_weight < 0 or seg_weight < 0 or depth_weight + seg_weight <= 0:
            raise ValueError(
                f"weights must be >= 0 and not both 0, got {depth_weight}, {seg_weight}"
            )
        if not 0 < berhu_c_ratio <= 1:
            raise ValueError(f"berhu_c_ratio must be in (0, 1], got {berhu_c_ratio}")
        if depth_downsample not in DEPTH_DOWNSAMPLE_MODES:
            raise ValueError(
                f"depth_downsample must be one of {DEPTH_DOWNSAMPLE_MODES}, "
                f"got {depth_downsample!r}"
            )
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.depth_weight = float(depth_weight)
        self.seg_weight = float(seg_weight)
        self.berhu_c_ratio = float(berhu_c_ratio)
        self.ignore_index = int(ignore_index)
        self.depth_downsample = depth_downsample

    def g(self, depth: torch.Tensor) -> torch.Tensor:
        """G(depth) with this loss's depth range."""
        return g_transform(depth, self.min_depth, self.max_depth)

    def scales(
        self, outputs: dict[str, torch.Tensor | list[torch.Tensor]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(g_scales, seg_scales)`` of a model's outputs, coarse to fine.

        Uses the model's raw G-space predictions (``g_scales``) when it has them: taking G of
        the clamped metric output would zero the gradient outside the clamp. Otherwise the
        single ``depth`` output is mapped with G.
        """
        if "g_scales" in outputs:
            g_scales = list(outputs["g_scales"])
        elif "depth" in outputs:
            depth = outputs["depth"]
            g_scales = [self.g(depth.clamp_min(torch.finfo(depth.dtype).tiny))]
        else:
            raise ValueError(f"model outputs need 'g_scales' or 'depth', got {sorted(outputs)}")
        if "seg_scales" in outputs:
            seg_scales = list(outputs["seg_scales"])
        elif "seg_logits" in outputs:
            seg_scales = [outputs["seg_logits"]]
        else:
            seg_scales = []
        if seg_scales and len(seg_scales) != len(g_scales):
            raise ValueError(
                f"{len(g_scales)} depth scales but {len(seg_scales)} segmentation scales"
            )
        return g_scales, seg_scales

    def __call__(
        self,
        outputs: dict[str, torch.Tensor | list[torch.Tensor]],
        depth: torch.Tensor,
        valid: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> LossTerms:
        """Loss of a training-mode forward against full-resolution ground truth.

        Args:
            outputs: The model's output dict (training mode).
            depth: ``(B, H, W)`` or ``(B, 1, H, W)`` ground-truth depth in metres.
            valid: Boolean mask of valid depth, same shape.
            labels: ``(B, H, W)`` integer labels (``ignore_index`` = unlabelled); None skips
                the segmentation term.

        Returns:
            The total and its per-scale parts.
        """
        g_scales, seg_scales = self.scales(outputs)
        use_seg = bool(seg_scales) and labels is not None and self.seg_weight > 0
        total = g_scales[0].new_zeros(())
        terms = LossTerms(total=total)
        for i, g_pred in enumerate(g_scales):
            size = (int(g_pred.shape[-2]), int(g_pred.shape[-1]))
            gt, gt_valid = downsample_depth(depth, valid, size, self.depth_downsample)
            loss_d, c = berhu_loss(g_pred, self.g(gt), gt_valid, self.berhu_c_ratio)
            total = total + self.depth_weight * loss_d
            terms.depth.append(float(loss_d.detach()))
            terms.berhu_c.append(float(c))
            if use_seg:
                logits = seg_scales[i]
                target = downsample_labels(labels, size)
                labelled = target != self.ignore_index
                if labelled.any():
                    loss_s = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
                else:  # cross_entropy would return NaN (0 / 0)
                    loss_s = logits.sum() * 0.0
                total = total + self.seg_weight * loss_s
                terms.seg.append(float(loss_s.detach()))
            elif seg_scales:
                # Keep the segmentation heads in the graph (DDP insists every parameter gets a
                # gradient) without changing the loss.
                total = total + seg_scales[i].sum() * 0.0
        terms.total = total
        return terms


def log_gradient_matching(
    g_pred: torch.Tensor,
    depth: torch.Tensor,
    valid: torch.Tensor,
    loss: MultiScaleDepthSegLoss,
    scales: int = 4,
) -> torch.Tensor:
    """Multi-scale gradient matching of the log-depth residual (MiDaS's L_reg, in log depth).

    With ``r = log pred - log gt`` on the valid pixels, the mean of ``|grad_x r| + |grad_y r|``
    over pixel pairs that are both valid, summed over ``scales`` resolutions (the prediction's,
    then 2x subsampled each time). A constant ``r`` (a wrong overall scale) costs nothing, a
    wrong step between two surfaces costs its size in log depth.

    Args:
        g_pred: ``(B, 1, h, w)`` G-space prediction (the model's raw finest ``g_scales``).
        depth: Ground-truth depth in metres at full resolution, ``(B, [1,] H, W)``.
        valid: Its validity mask, same shape.
        loss: Supplies G's depth range and the ground-truth downsampling of ``multiscale``.
        scales: Resolutions summed over.

    Returns:
        A scalar (0 attached to the graph where no pair is valid).
    """
    size = (int(g_pred.shape[-2]), int(g_pred.shape[-1]))
    gt, gt_valid = downsample_depth(depth, valid, size, loss.depth_downsample)
    per_g = (math.log(loss.max_depth) - math.log(loss.min_depth)) / loss.max_depth
    residual = (g_pred - loss.g(gt.clamp_min(1e-6))) * per_g
    residual = torch.where(gt_valid, residual, torch.zeros_like(residual))
    total = g_pred.new_zeros(()) + g_pred.sum() * 0.0
    r, m = residual, gt_valid
    for level in range(scales):
        if level:
            r, m = r[..., ::2, ::2], m[..., ::2, ::2]
        mx = m[..., :, 1:] & m[..., :, :-1]
        my = m[..., 1:, :] & m[..., :-1, :]
        count = mx.sum() + my.sum()
        if count == 0:
            continue
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs()[mx].sum()
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs()[my].sum()
        total = total + (gx + gy) / count
    return total


# ---------------------------------------------------------------------------------------------
# MultitaskNet (paper e, Rajvanshi & Kumar): lambda x CE + (1 - lambda) x log-depth loss


def multitask_depth_loss(
    log_pred: torch.Tensor, log_gt: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Paper e's depth loss (sec. 3.2.2), per image, averaged over the batch.

    With ``d = log pred - log gt`` over the ``n`` valid pixels of an image::

        L = 1/n sum d^2 - 1/(2 n^2) (sum d)^2 + 1/n sum [(grad_x d)^2 + (grad_y d)^2]

    ``grad_x d`` / ``grad_y d`` are forward differences between horizontally / vertically
    adjacent pixels, counted only where both pixels are valid (a difference with a missing pixel
    is undefined); their sum is still divided by ``n``, as in the paper. Images without a valid
    pixel are left out of the batch mean.

    Args:
        log_pred: ``(B, 1, H, W)`` predicted log-depth.
        log_gt: ``(B, 1, H, W)`` log of the ground-truth depth (anything finite where invalid).
        valid: Boolean mask, same shape.

    Returns:
        Scalar loss; 0 (attached to ``log_pred``'s graph) when no pixel is valid.
    """
    if log_pred.shape != log_gt.shape or log_pred.shape != valid.shape or log_pred.dim() != 4:
        raise ValueError(
            f"log_pred {tuple(log_pred.shape)}, log_gt {tuple(log_gt.shape)} and valid "
            f"{tuple(valid.shape)} must all be (B, 1, H, W); resize the ground truth first"
        )
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor, got {valid.dtype}")
    mask = valid.to(log_pred.dtype)
    # where() rather than a product: invalid ground truth may hold inf/nan.
    d = torch.where(valid, log_pred - log_gt, torch.zeros_like(log_pred))
    n = mask.sum(dim=(1, 2, 3))
    has = n > 0
    if not bool(has.any()):
        return log_pred.sum() * 0.0
    n_safe = n.clamp_min(1.0)
    sum_d = d.sum(dim=(1, 2, 3))
    sum_d2 = (d * d).sum(dim=(1, 2, 3))
    gx = (d[..., :, 1:] - d[..., :, :-1]) * (mask[..., :, 1:] * mask[..., :, :-1])
    gy = (d[..., 1:, :] - d[..., :-1, :]) * (mask[..., 1:, :] * mask[..., :-1, :])
    sum_grad = (gx * gx).sum(dim=(1, 2, 3)) + (gy * gy).sum(dim=(1, 2, 3))
    per_image = sum_d2 / n_safe - sum_d * sum_d / (2 * n_safe * n_safe) + sum_grad / n_safe
    return per_image[has].mean()


class MultitaskLoss:
    """Paper e's total loss ``lam * CE + (1 - lam) * L_depth`` for single-scale models.

    ``L_depth`` is :func:`multitask_depth_loss` on ``log`` depth; the model's raw
    ``log_depth`` output is used when present (its ``depth`` is clamped, which would zero the
    gradient outside the clamp). CE is the mean pixel-wise cross-entropy over labelled pixels
    (``ignore_index`` skipped). Ground truth of another size than the output is resized with
    nearest sampling (the paper resizes depth and labels with nearest neighbours).

    Args:
        seg_lambda: ``lam`` (paper: 0.5; 0.3 in its experiment 4).
        ignore_index: Label id skipped by the cross-entropy.
    """

    def __init__(self, seg_lambda: float = 0.5, ignore_index: int = 255) -> None:
        if not 0.0 <= seg_lambda <= 1.0:
            raise ValueError(f"seg_lambda must be in [0, 1], got {seg_lambda}")
        self.seg_lambda = float(seg_lambda)
        self.ignore_index = int(ignore_index)

    def __call__(
        self,
        outputs: dict[str, torch.Tensor | list[torch.Tensor]],
        depth: torch.Tensor,
        valid: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> LossTerms:
        """Loss of a training-mode forward against ground truth.

        Args:
            outputs: The model's output dict (``log_depth`` or ``depth``; ``seg_logits``).
            depth: ``(B, H, W)`` or ``(B, 1, H, W)`` ground-truth depth in metres.
            valid: Boolean mask of valid depth, same shape.
            labels: ``(B, H, W)`` integer labels; None skips the segmentation term.

        Returns:
            The total, with ``depth`` and ``seg`` holding the unweighted parts.
        """
        if "log_depth" in outputs:
            log_pred = outputs["log_depth"]
        elif "depth" in outputs:
            pred = outputs["depth"]
            log_pred = torch.log(pred.clamp_min(torch.finfo(pred.dtype).tiny))
        else:
            raise ValueError(f"model outputs need 'log_depth' or 'depth', got {sorted(outputs)}")
        size = (int(log_pred.shape[-2]), int(log_pred.shape[-1]))
        gt, gt_valid = downsample_depth(depth, valid, size, "nearest")
        loss_d = multitask_depth_loss(log_pred, torch.log(gt), gt_valid)
        total = (1.0 - self.seg_lambda) * loss_d
        terms = LossTerms(total=total, depth=[float(loss_d.detach())])
        logits = outputs.get("seg_logits")
        if logits is not None:
            target = downsample_labels(labels, size) if labels is not None else None
            if target is not None and self.seg_lambda > 0 and (target != self.ignore_index).any():
                loss_s = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
                total = total + self.seg_lambda * loss_s
                terms.seg.append(float(loss_s.detach()))
            else:
                # Keeps the segmentation decoder in the graph (DDP) without changing the loss.
                total = total + logits.sum() * 0.0
        terms.total = total
        return terms
