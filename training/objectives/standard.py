"""The supervised objectives every single-image model can use: ``multiscale`` and ``multitask``.

``multiscale``: paper d's multi-scale log-space BerHu + cross-entropy over the model's output
scales (``training.objectives.losses.MultiScaleDepthSegLoss``); ``multitask``: paper e's
``seg_lambda * CE + (1 - seg_lambda) * L_depth`` (``training.objectives.losses.MultitaskLoss``);
``multiscale_gradient``: ``multiscale`` plus a multi-scale gradient-matching term on the
log-depth residual of the finest output (``training.objectives.losses.log_gradient_matching``),
which does not care about the overall scale and rewards getting the ordering and the edges of
a scene right where its metric scale is ambiguous (real photographs).

A model with a ``canonical_focal_px`` (see ``depth_perception.models.lightweight``) is trained
on the depth its canonical camera would see: every target is multiplied by
``canonical_focal_px / fx`` of its own camera (``data["K"]``, network-input pixels).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn

from depth_perception.camera import focal_scale
from training.objectives import register_objective, unwrap
from training.objectives.losses import (
    LossTerms,
    MultiScaleDepthSegLoss,
    MultitaskLoss,
    log_gradient_matching,
)

if TYPE_CHECKING:
    from training.config import ExperimentConfig


class SupervisedObjective:
    """Runs the model on ``data["image"]`` and applies a ``(outputs, depth, valid, labels)`` loss.

    Attributes:
        loss: The loss callable (kept public: tests and tools inspect its settings).
    """

    needs_raw_images = False

    def __init__(self, loss: MultiScaleDepthSegLoss | MultitaskLoss) -> None:
        self.loss = loss

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict, LossTerms]:
        outputs = model(data["image"])
        depth = canonical_targets(model, data)
        return outputs, self.loss(outputs, depth, data["valid"], data.get("labels"))


def canonical_targets(model: nn.Module, data: dict[str, Any]) -> Any:
    """``data["depth"]``, or for a model with ``canonical_focal_px`` the depth its canonical
    camera would see (``depth / camera.focal_scale(fx, ...)`` per image, i.e. ``depth *
    canonical_focal_px / fx`` for the default ``focal_exponent`` 1; invalid pixels stay 0).

    Raises:
        ValueError: the model has a canonical focal length but the batch carries no ``K``.
    """
    focal = getattr(unwrap(model), "canonical_focal_px", None)
    depth = data["depth"]
    if focal is None:
        return depth
    if "K" not in data:
        raise ValueError("a model with canonical_focal_px needs the batch's intrinsics 'K'")
    fx = data["K"][:, 0, 0].to(depth.device, depth.dtype)
    shape = (-1,) + (1,) * (depth.dim() - 1)
    exponent = float(getattr(unwrap(model), "focal_exponent", 1.0))
    return depth / focal_scale(fx, float(focal), exponent).view(shape)


class GradientMatchingObjective(SupervisedObjective):
    """``multiscale`` + ``grad_weight`` x gradient matching of the finest log-depth residual."""

    def __init__(self, loss: MultiScaleDepthSegLoss, grad_weight: float, grad_scales: int) -> None:
        super().__init__(loss)
        self.multiscale = loss
        self.grad_weight = float(grad_weight)
        self.grad_scales = int(grad_scales)

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict, LossTerms]:
        outputs = model(data["image"])
        depth = canonical_targets(model, data)
        terms = self.multiscale(outputs, depth, data["valid"], data.get("labels"))
        g_pred = self.multiscale.scales(outputs)[0][-1]
        grad = log_gradient_matching(
            g_pred, depth, data["valid"], self.multiscale, scales=self.grad_scales
        )
        terms.total = terms.total + self.grad_weight * grad
        terms.extra["loss_grad"] = float(grad.detach())
        return outputs, terms


def _no_args(cfg: ExperimentConfig) -> None:
    if cfg.loss.args:
        raise ValueError(
            f"loss {cfg.loss.name!r} takes its settings from the loss section's own keys, not "
            f"loss.args (got {sorted(cfg.loss.args)})"
        )


def multiscale_loss(cfg: ExperimentConfig, model: nn.Module) -> MultiScaleDepthSegLoss:
    """Paper d's multi-scale loss with G(d) over the model's depth range."""
    base = unwrap(model)
    lo, hi = float(getattr(base, "min_depth", 0.0)), float(getattr(base, "max_depth", math.inf))
    if not (lo > 0 and math.isfinite(hi)):
        raise ValueError(
            f"the log-space loss needs a finite depth range > 0, model {cfg.model.name!r} has "
            f"{lo}..{hi}; set model.args.min_depth/max_depth"
        )
    return MultiScaleDepthSegLoss(
        lo,
        hi,
        depth_weight=cfg.loss.depth_weight,
        seg_weight=cfg.loss.seg_weight,
        berhu_c_ratio=cfg.loss.berhu_c_ratio,
        ignore_index=cfg.loss.ignore_index,
        depth_downsample=cfg.loss.depth_downsample,
    )


@register_objective("multiscale")
def build_multiscale(cfg: ExperimentConfig, model: nn.Module) -> SupervisedObjective:
    """``loss.name: multiscale``."""
    _no_args(cfg)
    return SupervisedObjective(multiscale_loss(cfg, model))


@register_objective("multitask")
def build_multitask(cfg: ExperimentConfig, model: nn.Module) -> SupervisedObjective:
    """``loss.name: multitask`` (weights from ``loss.seg_lambda``)."""
    _no_args(cfg)
    return SupervisedObjective(
        MultitaskLoss(seg_lambda=cfg.loss.seg_lambda, ignore_index=cfg.loss.ignore_index)
    )


@register_objective("multiscale_gradient")
def build_multiscale_gradient(cfg: ExperimentConfig, model: nn.Module) -> SupervisedObjective:
    """``loss.name: multiscale_gradient``; ``loss.args``: ``grad_weight`` (default 0.5) and
    ``grad_scales`` (default 4: the finest output and three 2x subsamplings)."""
    args = dict(cfg.loss.args)
    unknown = sorted(set(args) - {"grad_weight", "grad_scales"})
    if unknown:
        raise ValueError(
            f"loss multiscale_gradient takes loss.args grad_weight and grad_scales, got {unknown}"
        )
    weight = float(args.get("grad_weight", 0.5))
    scales = args.get("grad_scales", 4)
    if not weight >= 0 or isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(
            f"need loss.args.grad_weight >= 0 and grad_scales an int >= 1, got {weight}, {scales}"
        )
    return GradientMatchingObjective(multiscale_loss(cfg, model), weight, scales)
