"""The supervised objectives every single-image model can use: ``multiscale`` and ``multitask``.

``multiscale``: paper d's multi-scale log-space BerHu + cross-entropy over the model's output
scales (``training.objectives.losses.MultiScaleDepthSegLoss``); ``multitask``: paper e's
``seg_lambda * CE + (1 - seg_lambda) * L_depth`` (``training.objectives.losses.MultitaskLoss``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn

from training.objectives import register_objective, unwrap
from training.objectives.losses import LossTerms, MultiScaleDepthSegLoss, MultitaskLoss

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
        return outputs, self.loss(outputs, data["depth"], data["valid"], data.get("labels"))


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
