"""``l1``: mean absolute depth error in metres over the valid pixels (paper c's loss).

Works for any single-scale model: it uses the training-mode output ``depth_raw`` when the model
returns one (``densedepth201``: the unclamped decoder output, so the output clamp does not cut
the gradient), otherwise ``depth``. Ground truth of another size than the prediction is brought
to the prediction's size with nearest sampling (no depth is invented). Pixels without valid
depth are ignored; a batch without any gives a zero loss that keeps the graph.

``loss.args`` takes no keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from training.objectives import Terms, register_objective
from training.objectives.losses import downsample_depth

if TYPE_CHECKING:
    from training.config import ExperimentConfig


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``|pred - target|`` over the ``valid`` pixels (0, still in the graph, if none).

    Args:
        pred: ``(B, 1, H, W)`` depth in metres.
        target: Ground truth of the same shape (any value where invalid).
        valid: Boolean mask of the same shape.
    """
    if pred.shape != target.shape or pred.shape != valid.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and valid "
            f"{tuple(valid.shape)} must have one shape"
        )
    if not valid.any():
        return pred.sum() * 0.0
    return (pred[valid] - target[valid]).abs().mean()


class L1DepthLoss:
    """Masked L1 between the model's (raw) depth and the ground truth."""

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], depth: torch.Tensor, valid: torch.Tensor
    ) -> Terms:
        """Loss of a training-mode forward.

        Args:
            outputs: ``depth_raw`` or ``depth`` (B, 1, h, w) in metres.
            depth: ``(B, 1, H, W)`` or ``(B, H, W)`` ground truth, 0 where missing.
            valid: Boolean mask of the same shape.
        """
        pred = outputs.get("depth_raw", outputs.get("depth"))
        if pred is None:
            raise ValueError(f"the l1 loss needs 'depth_raw' or 'depth', got {sorted(outputs)}")
        size = (int(pred.shape[-2]), int(pred.shape[-1]))
        gt, gt_valid = downsample_depth(depth, valid, size, "nearest")
        gt_valid = gt_valid & torch.isfinite(gt) & (gt > 0)
        loss = masked_l1(pred, gt, gt_valid)
        return Terms(total=loss, parts={"loss_l1": float(loss.detach())})


class L1Objective:
    """Runs the model on ``data["image"]`` and applies :class:`L1DepthLoss`."""

    needs_raw_images = False

    def __init__(self) -> None:
        self.loss = L1DepthLoss()

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict, Terms]:
        outputs = model(data["image"])
        return outputs, self.loss(outputs, data["depth"], data["valid"])


@register_objective("l1")
def build_l1(cfg: ExperimentConfig, model: nn.Module) -> L1Objective:
    """``loss.name: l1`` (no ``loss.args``)."""
    if cfg.loss.args:
        raise ValueError(f"loss 'l1' takes no loss.args, got {sorted(cfg.loss.args)}")
    return L1Objective()
