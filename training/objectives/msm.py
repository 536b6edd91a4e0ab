"""Objective ``msm``: the two training stages of the multi-scale models (paper a, Eigen & Fergus).

``loss.name: msm`` trains ``msm`` and ``msm_gradient`` (``depth_perception.models.msm``);
``loss.args`` selects the stage:

* ``stage: 1`` (scales 1 and 2): Eigen's scale-invariant error (``lam``, 0.5) of the scale-2
  depth against the ground truth brought to its 1/4 grid (nearest sampling, invalid stays
  invalid), plus, for ``msm_gradient``, ``grad_weight`` x paper a's Eq. 1 between the
  ``[-1, 0, 1]`` gradients of the scale-2 depth and the predicted gradients, over the valid
  pixels (``grad_combine``: ``product`` as printed, or ``sum``), and optionally
  ``grad_supervision_weight`` x the error of the predicted gradients against the gradients of
  the ground truth (not in the paper; 0 by default). Scale 3 gets a zero gradient.
* ``stage: 2`` (scale 3): the scale-invariant error of the final, full-resolution depth only.
  Recipes freeze the shared layers with ``train.freeze: ["scale1.", "scale2."]``.

The two stages run in one command with the recipe's ``stages:`` list, e.g.::

    loss: {name: msm, args: {stage: 1}}
    stages:
      - {name: stage1, set: {}}
      - {name: stage2, set: {loss.args.stage: 2, train.freeze: ["scale1.", "scale2."]}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from training.objectives import Terms, register_objective
from training.objectives.gradient_losses import (
    GRADIENT_COMBINE_MODES,
    gradient_consistency_loss,
    gradient_supervision_loss,
    scale_invariant_loss,
)
from training.objectives.losses import downsample_depth

if TYPE_CHECKING:
    from training.config import ExperimentConfig

STAGES = (1, 2)
_DEFAULTS: dict[str, Any] = {
    "stage": 1,
    "lam": 0.5,
    "grad_weight": 1.0,
    "grad_combine": "product",
    "grad_supervision_weight": 0.0,
}


class MSMObjective:
    """Stage-aware loss of the multi-scale models; see the module docstring.

    Args:
        stage: 1 (scales 1-2: sc-inv + Eq. 1) or 2 (scale 3: sc-inv).
        lam: Weight of the scale term of the scale-invariant error (Eigen: 0.5).
        grad_weight: Weight of Eq. 1 in stage 1 (gradient models only).
        grad_combine: ``product`` (Eq. 1 as printed) or ``sum``.
        grad_supervision_weight: Weight of the gradient-head supervision with ground-truth
            gradients in stage 1 (0: off, as in the paper).
    """

    needs_raw_images = False

    def __init__(
        self,
        stage: int = 1,
        lam: float = 0.5,
        grad_weight: float = 1.0,
        grad_combine: str = "product",
        grad_supervision_weight: float = 0.0,
    ) -> None:
        if isinstance(stage, bool) or stage not in STAGES:
            raise ValueError(f"loss.args.stage must be 1 or 2, got {stage!r}")
        if not isinstance(lam, (int, float)) or not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"loss.args.lam must be in [0, 1] (Eigen: 0.5), got {lam!r}")
        for name, value in (
            ("grad_weight", grad_weight),
            ("grad_supervision_weight", grad_supervision_weight),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"loss.args.{name} must be a number >= 0, got {value!r}")
        if grad_combine not in GRADIENT_COMBINE_MODES:
            raise ValueError(
                f"loss.args.grad_combine must be one of {GRADIENT_COMBINE_MODES}, "
                f"got {grad_combine!r}"
            )
        self.stage = int(stage)
        self.lam = float(lam)
        self.grad_weight = float(grad_weight)
        self.grad_combine = grad_combine
        self.grad_supervision_weight = float(grad_supervision_weight)

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict[str, Any], Terms]:
        """Forward ``data["image"]`` and compute this stage's loss."""
        outputs = model(data["image"])
        if "depth_s2" not in outputs:
            raise ValueError(
                "loss 'msm' needs a multi-scale model in training mode (outputs 'depth_s2'); "
                f"got outputs {sorted(outputs)}; use model.name msm or msm_gradient"
            )
        depth, valid = data["depth"], data["valid"]
        if self.stage == 2:
            loss = scale_invariant_loss(outputs["depth"], depth, valid, self.lam)
            return outputs, Terms(total=loss, parts={"sc_inv": float(loss.detach())})

        pred = outputs["depth_s2"]
        gt, gt_valid = downsample_depth(depth, valid, tuple(pred.shape[-2:]), "nearest")
        sc_inv = scale_invariant_loss(pred, gt, gt_valid, self.lam)
        # Scale 3 is not trained in stage 1; the zero term keeps it in the graph (DDP wants a
        # gradient, even 0, for every trained parameter).
        total = sc_inv + outputs["depth"].sum() * 0.0
        parts = {"sc_inv": float(sc_inv.detach())}
        if "grad_x" in outputs:
            gx, gy = outputs["grad_x"], outputs["grad_y"]
            consistency = gradient_consistency_loss(pred, gx, gy, gt_valid, self.grad_combine)
            total = total + self.grad_weight * consistency
            parts["grad_consistency"] = float(consistency.detach())
            if self.grad_supervision_weight > 0:
                supervision = gradient_supervision_loss(gx, gy, gt, gt_valid)
                total = total + self.grad_supervision_weight * supervision
                parts["grad_supervision"] = float(supervision.detach())
        return outputs, Terms(total=total, parts=parts)


@register_objective("msm")
def build_msm(cfg: ExperimentConfig, model: nn.Module) -> MSMObjective:
    """``loss.name: msm`` with ``loss.args`` = stage, lam, grad_weight, grad_combine,
    grad_supervision_weight (see :class:`MSMObjective`)."""
    args = dict(cfg.loss.args)
    unknown = sorted(set(args) - set(_DEFAULTS))
    if unknown:
        raise ValueError(
            f"loss.args: unknown key(s) {unknown} for loss 'msm'; valid keys: "
            f"{', '.join(_DEFAULTS)}"
        )
    return MSMObjective(**{**_DEFAULTS, **args})
