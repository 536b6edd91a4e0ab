"""Paper b's MultiDepth objective: sparse regression + depth-interval classification.

For the ``multidepth`` model (``depth_perception.models.multidepth``):

* ``L_reg``: sparse MSE between the regression output and the ground truth, both in the
  normalised log space of Eq. 2 (``t = ln(d - d_min + 1) / ln(d_max - d_min + 1)``, depth
  clipped to ``[d_min, d_max]``), over the pixels with valid depth only;
* ``L_cls``: sparse softmax cross-entropy over ``num_bins`` depth intervals equally spaced in
  ``t``, pixels without valid depth ignored;
* combined according to ``loss.args.weighting``:

  - ``uncertainty`` (default, the paper's learned weighting, Eq. 3):
    ``L = w_reg * L_reg + 0.5 * s_reg + w_cls * L_cls + 0.5 * s_cls`` with
    ``w_reg = 0.5 * exp(-s_reg^2)`` and ``w_cls = exp(-s_cls^2)`` as the paper writes them
    (``uncertainty_form: paper``); ``uncertainty_form: kendall`` uses ``exp(-s)`` instead, as
    Kendall et al. and the public MultiDepth code do. ``s = model.log_vars`` (init 1).
    Note: the paper's form is not bounded below in ``s`` (as ``s -> -inf`` the weight goes to
    0 while ``0.5 * s`` keeps decreasing), so ``s`` drifts down for as long as it trains; at
    ``lr 1e-4`` Adam moves it by at most about ``1e-4`` per step;
  - ``equal``: ``L_reg + L_cls`` (the paper's naive sum);
  - ``fixed``: ``w_reg * L_reg + w_cls * L_cls`` with ``loss.args.weights: [w_reg, w_cls]``
    (the paper's manually tuned weights);
  - ``regression_only``: ``L_reg`` alone, the paper's single-task baseline (train it with
    ``model.args.classification_head: false``, which removes the classification branch as the
    paper does).

Logged parts: ``loss_reg``, ``loss_cls``, and for learned weights ``s_reg``, ``s_cls``,
``w_reg``, ``w_cls``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn

from depth_perception.models.multidepth import depth_to_class, normalize_depth
from training.objectives import Terms, register_objective, unwrap
from training.objectives.losses import downsample_depth

if TYPE_CHECKING:
    from training.config import ExperimentConfig

WEIGHTINGS: tuple[str, ...] = ("uncertainty", "equal", "fixed", "regression_only")
UNCERTAINTY_FORMS: tuple[str, ...] = ("paper", "kendall")
ARGS: tuple[str, ...] = ("weighting", "weights", "uncertainty_form")
# Class id the cross-entropy skips (pixels without depth).
IGNORE_CLASS = -100


def _zero_like(t: torch.Tensor) -> torch.Tensor:
    # 0 that keeps ``t`` in the graph (DDP needs every used parameter to get a gradient).
    return t.sum() * 0.0


def sparse_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``(pred - target)^2`` over the ``valid`` pixels (0 if there are none).

    Args:
        pred: ``(B, 1, H, W)`` predictions.
        target: Targets of the same shape (any value where invalid).
        valid: Boolean mask of the same shape.
    """
    if pred.shape != target.shape or pred.shape != valid.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and valid "
            f"{tuple(valid.shape)} must have one shape"
        )
    if not valid.any():
        return _zero_like(pred)
    diff = pred[valid] - target[valid]
    return (diff * diff).mean()


def sparse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy over pixels whose label is not ``IGNORE_CLASS``.

    Args:
        logits: ``(B, C, H, W)``.
        labels: ``(B, H, W)`` int64 in ``[0, C)`` or ``IGNORE_CLASS``.
    """
    if not (labels != IGNORE_CLASS).any():
        return _zero_like(logits)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_CLASS)


def uncertainty_weights(
    log_vars: torch.Tensor, form: str = "paper"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_reg, w_cls)`` of the learned weighting from ``log_vars = (s_reg, s_cls)``.

    ``paper`` (Eq. 3 as printed): ``0.5 * exp(-s_reg^2)``, ``exp(-s_cls^2)``;
    ``kendall`` (Kendall et al., public MultiDepth code): ``0.5 * exp(-s_reg)``, ``exp(-s_cls)``.
    """
    if form not in UNCERTAINTY_FORMS:
        raise ValueError(f"uncertainty_form must be one of {UNCERTAINTY_FORMS}, got {form!r}")
    if log_vars.shape != (2,):
        raise ValueError(f"log_vars must hold (s_reg, s_cls), got shape {tuple(log_vars.shape)}")
    s_reg, s_cls = log_vars[0], log_vars[1]
    if form == "paper":
        return 0.5 * torch.exp(-s_reg * s_reg), torch.exp(-s_cls * s_cls)
    return 0.5 * torch.exp(-s_reg), torch.exp(-s_cls)


def uncertainty_weighted_loss(
    loss_reg: torch.Tensor, loss_cls: torch.Tensor, log_vars: torch.Tensor, form: str = "paper"
) -> torch.Tensor:
    """Eq. 3: ``w_reg * L_reg + 0.5 * s_reg + w_cls * L_cls + 0.5 * s_cls``."""
    w_reg, w_cls = uncertainty_weights(log_vars, form)
    return w_reg * loss_reg + w_cls * loss_cls + 0.5 * (log_vars[0] + log_vars[1])


class MultiDepthLoss:
    """Sparse MSE in normalised log space + sparse CE over depth intervals, weighted.

    Args:
        min_depth: ``d_min`` of the normalisation (the model's ``min_depth``).
        max_depth: ``d_max`` (the model's ``max_depth``).
        num_bins: Depth-interval classes (the model's ``num_bins``).
        weighting: One of :data:`WEIGHTINGS` (see the module docstring).
        weights: ``(w_reg, w_cls)`` of the ``fixed`` weighting.
        uncertainty_form: ``paper`` or ``kendall`` (``uncertainty`` weighting only).
    """

    def __init__(
        self,
        min_depth: float,
        max_depth: float,
        num_bins: int,
        weighting: str = "uncertainty",
        weights: Sequence[float] = (1.0, 1.0),
        uncertainty_form: str = "paper",
    ) -> None:
        if not (math.isfinite(max_depth) and 0 < min_depth < max_depth):
            raise ValueError(
                f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}"
            )
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if uncertainty_form not in UNCERTAINTY_FORMS:
            raise ValueError(
                f"uncertainty_form must be one of {UNCERTAINTY_FORMS}, got {uncertainty_form!r}"
            )
        if len(weights) != 2 or not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError(f"weights must be [w_reg, w_cls], both >= 0, got {list(weights)}")
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.num_bins = int(num_bins)
        self.weighting = weighting
        self.weights = (float(weights[0]), float(weights[1]))
        self.uncertainty_form = uncertainty_form

    def targets(
        self, depth: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(t, classes, mask)``: normalised log depth, interval classes, validity.

        Args:
            depth: ``(B, 1, H, W)`` or ``(B, H, W)`` metres, 0 where invalid.
            valid: Boolean mask of the same shape.

        Returns:
            ``t`` and ``mask`` as ``(B, 1, H, W)``; ``classes`` ``(B, H, W)`` int64 with
            ``IGNORE_CLASS`` where the depth is missing.
        """
        if depth.dim() == 3:
            depth, valid = depth[:, None], valid[:, None]
        mask = valid.bool() & torch.isfinite(depth) & (depth > 0)
        safe = torch.where(mask, depth, torch.full_like(depth, self.min_depth))
        t = normalize_depth(safe, self.min_depth, self.max_depth)
        classes = depth_to_class(safe, self.min_depth, self.max_depth, self.num_bins)
        classes = torch.where(mask, classes, torch.full_like(classes, IGNORE_CLASS))
        return t, classes[:, 0], mask

    def __call__(
        self,
        outputs: Mapping[str, torch.Tensor],
        depth: torch.Tensor,
        valid: torch.Tensor,
        log_vars: torch.Tensor | None = None,
    ) -> Terms:
        """Loss of a training-mode forward of ``multidepth`` against sparse ground truth.

        Args:
            outputs: ``depth_norm`` (B, 1, H, W) and, unless ``regression_only``,
                ``depth_class_logits`` (B, num_bins, H, W).
            depth: Ground-truth depth in metres, 0 where missing.
            valid: Boolean mask of valid depth.
            log_vars: ``(s_reg, s_cls)``, needed by the ``uncertainty`` weighting.
        """
        if "depth_norm" not in outputs:
            raise ValueError(
                f"the multidepth loss needs the training-mode output 'depth_norm' of the "
                f"multidepth model, got {sorted(outputs)}"
            )
        pred = outputs["depth_norm"]
        size = (int(pred.shape[-2]), int(pred.shape[-1]))
        # (B, 1, H, W) and validity incl. finite and > 0; nearest sampling (invents no depth)
        # only when the ground truth has another size than the input-size outputs.
        depth, valid = downsample_depth(depth, valid.bool(), size, "nearest")
        t, classes, mask = self.targets(depth, valid)
        loss_reg = sparse_mse(pred, t, mask)
        logits = outputs.get("depth_class_logits")
        parts = {"loss_reg": float(loss_reg.detach())}

        if self.weighting == "regression_only":
            total = loss_reg
            if logits is not None:
                total = total + _zero_like(logits)
            if log_vars is not None:
                total = total + _zero_like(log_vars)
            return Terms(total=total, parts=parts)

        if logits is None:
            raise ValueError(
                f"weighting {self.weighting!r} needs the classification head's "
                "'depth_class_logits'; build the model with classification_head: true or use "
                "weighting: regression_only"
            )
        if logits.shape[1] != self.num_bins:
            raise ValueError(
                f"the model predicts {logits.shape[1]} depth intervals, the loss expects "
                f"{self.num_bins}"
            )
        loss_cls = sparse_cross_entropy(logits, classes)
        parts["loss_cls"] = float(loss_cls.detach())
        if self.weighting == "uncertainty":
            if log_vars is None:
                raise ValueError("the uncertainty weighting needs the model's log_vars")
            total = uncertainty_weighted_loss(loss_reg, loss_cls, log_vars, self.uncertainty_form)
            w_reg, w_cls = uncertainty_weights(log_vars.detach(), self.uncertainty_form)
            parts.update(
                s_reg=float(log_vars[0].detach()),
                s_cls=float(log_vars[1].detach()),
                w_reg=float(w_reg),
                w_cls=float(w_cls),
            )
            return Terms(total=total, parts=parts)
        w_reg, w_cls = (1.0, 1.0) if self.weighting == "equal" else self.weights
        total = w_reg * loss_reg + w_cls * loss_cls
        if log_vars is not None:
            total = total + _zero_like(log_vars)
        return Terms(total=total, parts=parts)


class MultiDepthObjective:
    """Runs the model on ``data["image"]`` and applies :class:`MultiDepthLoss`.

    Attributes:
        loss: The configured loss.
    """

    needs_raw_images = False

    def __init__(self, loss: MultiDepthLoss) -> None:
        self.loss = loss

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict, Terms]:
        outputs = model(data["image"])
        log_vars = getattr(unwrap(model), "log_vars", None)
        return outputs, self.loss(outputs, data["depth"], data["valid"], log_vars)


def multidepth_loss_from_args(model: nn.Module, args: Mapping[str, Any]) -> MultiDepthLoss:
    """Build the loss from ``loss.args`` and the (unwrapped) model's depth range and bins.

    Raises:
        ValueError: unknown or invalid arguments, or a model that does not fit them.
    """
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise ValueError(
            f"loss.args: unknown key(s) {unknown} for loss 'multidepth'; valid: {', '.join(ARGS)}"
        )
    weighting = args.get("weighting", "uncertainty")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"loss.args.weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    form = args.get("uncertainty_form", "paper")
    if form not in UNCERTAINTY_FORMS:
        raise ValueError(
            f"loss.args.uncertainty_form must be one of {UNCERTAINTY_FORMS}, got {form!r}"
        )
    if "weights" in args and weighting != "fixed":
        raise ValueError("loss.args.weights is only used with weighting: fixed; remove it")
    weights = args.get("weights", (1.0, 1.0))
    if weighting == "fixed" and "weights" not in args:
        raise ValueError("weighting: fixed needs loss.args.weights: [w_reg, w_cls]")
    if (
        not isinstance(weights, (list, tuple))
        or len(weights) != 2
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)
    ):
        raise ValueError(f"loss.args.weights must be two numbers [w_reg, w_cls], got {weights!r}")

    base = unwrap(model)
    missing = [a for a in ("min_depth", "max_depth", "num_bins") if not hasattr(base, a)]
    if missing:
        raise ValueError(
            f"loss 'multidepth' needs a model with {missing} (the multidepth model), got "
            f"{type(base).__name__}"
        )
    has_cls = getattr(base, "classification_head", None) is not None
    if weighting != "regression_only" and not has_cls:
        raise ValueError(
            f"weighting {weighting!r} needs the classification head: set "
            "model.args.classification_head: true, or use loss.args.weighting: regression_only"
        )
    if weighting == "uncertainty" and getattr(base, "log_vars", None) is None:
        raise ValueError("weighting 'uncertainty' needs the model's log_vars parameter")
    return MultiDepthLoss(
        float(base.min_depth),
        float(base.max_depth),
        int(base.num_bins),
        weighting=weighting,
        weights=tuple(float(w) for w in weights),
        uncertainty_form=form,
    )


@register_objective("multidepth")
def build_multidepth(cfg: ExperimentConfig, model: nn.Module) -> MultiDepthObjective:
    """``loss.name: multidepth`` with ``loss.args`` {weighting, weights, uncertainty_form}."""
    return MultiDepthObjective(multidepth_loss_from_args(model, cfg.loss.args))
