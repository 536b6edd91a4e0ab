"""Self-supervised objective ``sfm``: SfMLearner's view-synthesis losses (+ paper a's Eq. 1).

For each target frame the model predicts depth at four scales (coarse to fine) and, through
its pose network, the 6-DoF motion to each of the N source frames and explainability masks.
Following SfMLearner (Zhou et al., CVPR 2017; PyTorch reference ClementPinard/SfmLearner-Pytorch)
the loss is::

    recon_weight * sum_scales sum_sources mean |E * V * (I_t - warp(I_s, D_t, T_t->s, K))|
  + mask_weight  * sum_scales BCE(E, 1)
  + smooth_weight * sum_scales 2.3^-k * mean(|d2D/dx2| + |d2D/dxdy| + |d2D/dydx| + |d2D/dy2|)

with ``I`` the [0, 1] images area-resampled to each scale, ``K`` the intrinsics scaled to it
(pixel-centre convention, as ``CameraIntrinsics.scaled``), ``V`` the pixels whose projection
lands inside the source image in front of the camera, ``E`` the explainability mask of that
source and ``k`` the scale's distance from the finest (the reference's "weight /= 2.3").
Weights default to paper a's unsupervised setting (1, 0.2, 0.1; SfMLearner's).

For ``sfm_gradient`` (paper a sec. IV-B) ``loss.args.stage`` selects the stage:

* stage 1: the SfM losses on the depth decoder's depth plus ``gradient_weight`` x Eq. 1
  (``training.objectives.gradient_losses.gradient_consistency_loss``) between the
  ``[-1, 0, 1]`` gradients of that depth and the gradient decoder's output, summed over the
  scales; the model must be built with ``refine: false``;
* stage 2: the SfM losses on the refined depth alone (``refine: true``; freeze the encoder and
  the depth and gradient decoders with ``train.freeze``).

``loss.args`` keys: ``stage`` (1 or 2; only for ``sfm_gradient``), ``recon_weight``,
``mask_weight``, ``smooth_weight``, ``smooth_decay``, ``gradient_weight``,
``gradient_combine`` (``product`` as printed in Eq. 1, or ``sum``), ``padding_mode``
(``zeros`` or ``border`` for ``grid_sample``), ``poses`` (``network``, or ``ground_truth``: a
diagnostic that warps with the synthetic sequences' exact poses instead of the pose network's)
and ``true_translation_scale`` (multiplies those poses' translations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn

from depth_perception.models.sfm import pose_vec_to_mat
from training.objectives import Terms, register_objective, unwrap
from training.objectives.gradient_losses import GRADIENT_COMBINE_MODES, gradient_consistency_loss

if TYPE_CHECKING:
    from training.config import ExperimentConfig

# Points closer than this to the source camera's image plane count as behind it.
MIN_PROJECTED_DEPTH = 1e-3
# Projections this far (pixels) outside the outermost pixel centres still count as inside.
PIXEL_TOLERANCE = 1e-3
PADDING_MODES = ("zeros", "border")


def scale_intrinsics(
    k: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]
) -> torch.Tensor:
    """Intrinsics of an image resampled from ``from_size`` to ``to_size`` (both ``(h, w)``).

    Pixel-centre convention (pixel ``i`` covers ``[i - 0.5, i + 0.5]``), as
    ``CameraIntrinsics.scaled``: ``fx' = fx * sx``, ``cx' = (cx + 0.5) * sx - 0.5``; exact for
    area (box) downsampling by an integer factor.

    Args:
        k: ``(B, 3, 3)`` camera matrices of the ``from_size`` image.
        from_size: ``(height, width)`` the matrices are for.
        to_size: ``(height, width)`` wanted.

    Returns:
        ``(B, 3, 3)``.
    """
    if k.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (B, 3, 3), got {tuple(k.shape)}")
    sy = to_size[0] / from_size[0]
    sx = to_size[1] / from_size[1]
    out = k.clone()
    out[..., 0, 0] = k[..., 0, 0] * sx
    out[..., 0, 1] = k[..., 0, 1] * sx
    out[..., 0, 2] = (k[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 1] = k[..., 1, 1] * sy
    out[..., 1, 2] = (k[..., 1, 2] + 0.5) * sy - 0.5
    return out


def inverse_warp(
    source: torch.Tensor,
    depth: torch.Tensor,
    transform: torch.Tensor,
    k: torch.Tensor,
    padding_mode: str = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthesise the target view from a source image, the target depth and the motion.

    Each target pixel ``p`` is back-projected with its depth, ``X = D(p) K^-1 p``, moved into
    the source camera, ``X' = R X + t`` (``transform`` = target -> source, the data sets'
    ``poses`` convention), projected, ``p' = K X'``, and the source is sampled there
    bilinearly.

    Args:
        source: ``(B, C, h, w)`` source image.
        depth: ``(B, 1, h, w)`` depth of the target view (> 0).
        transform: ``(B, 4, 4)`` (or ``(B, 3, 4)``) target-to-source rigid transforms.
        k: ``(B, 3, 3)`` intrinsics at ``(h, w)`` (pixel-centre convention).
        padding_mode: ``grid_sample`` padding outside the source.

    Returns:
        ``(warped (B, C, h, w), valid (B, 1, h, w) bool)``; ``valid`` marks target pixels whose
        projection lies in front of the source camera and inside its pixel centres.
    """
    if source.dim() != 4 or depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(
            f"source must be (B, C, h, w) and depth (B, 1, h, w), got {tuple(source.shape)} "
            f"and {tuple(depth.shape)}"
        )
    if source.shape[0] != depth.shape[0] or source.shape[-2:] != depth.shape[-2:]:
        raise ValueError(
            f"source {tuple(source.shape)} and depth {tuple(depth.shape)} must share B, h, w"
        )
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    b, _, h, w = source.shape
    dtype, device = depth.dtype, depth.device
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=dtype, device=device),
        torch.arange(w, dtype=dtype, device=device),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys, torch.ones_like(xs)]).view(1, 3, h * w)
    k = k.to(dtype)
    rays = torch.linalg.inv(k) @ pixels  # (B, 3, hw)
    points = rays * depth.reshape(b, 1, h * w)
    rot = transform[:, :3, :3].to(dtype)
    trans = transform[:, :3, 3:].to(dtype)
    projected = k @ (rot @ points + trans)
    z = projected[:, 2]
    in_front = z > MIN_PROJECTED_DEPTH
    z_safe = torch.where(in_front, z, torch.full_like(z, MIN_PROJECTED_DEPTH))
    x = projected[:, 0] / z_safe
    y = projected[:, 1] / z_safe
    # A pixel-centre tolerance absorbs the rounding of K^-1 K (identity motion stays valid).
    tol = PIXEL_TOLERANCE
    valid = in_front & (x >= -tol) & (x <= w - 1 + tol) & (y >= -tol) & (y <= h - 1 + tol)
    # align_corners=False maps pixel centre i to (2i + 1) / size - 1.
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1).view(b, h, w, 2)
    warped = F.grid_sample(
        source, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
    return warped, valid.view(b, 1, h, w)


def resize_area(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(..., C, H, W)`` images area-resampled to ``size`` = (h, w) (identity if equal)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    out = F.interpolate(flat, size=size, mode="area")
    return out.reshape(*lead, *out.shape[-3:])


def photometric_loss(
    target: torch.Tensor,
    sources: torch.Tensor,
    depth_scales: Sequence[torch.Tensor],
    transforms: torch.Tensor,
    k: torch.Tensor,
    masks: Sequence[torch.Tensor] | None = None,
    padding_mode: str = "zeros",
) -> tuple[torch.Tensor, list[float]]:
    """SfMLearner's view-synthesis loss summed over scales and sources.

    Args:
        target: ``(B, 3, H, W)`` target image in [0, 1].
        sources: ``(B, N, 3, H, W)`` source images in [0, 1].
        depth_scales: Depth ``(B, 1, h, w)`` per scale (any order).
        transforms: ``(B, N, 4, 4)`` target-to-source transforms.
        k: ``(B, 3, 3)`` intrinsics of the ``H x W`` images.
        masks: Explainability ``(B, N, h, w)`` per scale (same order as ``depth_scales``), or
            None.
        padding_mode: ``grid_sample`` padding.

    Returns:
        ``(loss, per-scale values)``: the sum over scales and sources of
        ``mean |mask * valid * (target - warped source)|``.
    """
    if sources.dim() != 5 or sources.shape[1] != transforms.shape[1]:
        raise ValueError(
            f"sources (B, N, 3, H, W) {tuple(sources.shape)} need one transform each, got "
            f"{tuple(transforms.shape)}"
        )
    if masks is not None and len(masks) != len(depth_scales):
        raise ValueError(f"{len(depth_scales)} depth scales but {len(masks)} masks")
    full = (int(target.shape[-2]), int(target.shape[-1]))
    total = target.new_zeros(())
    per_scale: list[float] = []
    for index, depth in enumerate(depth_scales):
        size = (int(depth.shape[-2]), int(depth.shape[-1]))
        tgt = resize_area(target, size)
        srcs = resize_area(sources, size)
        k_s = scale_intrinsics(k, full, size)
        scale_loss = target.new_zeros(())
        for n in range(sources.shape[1]):
            warped, valid = inverse_warp(srcs[:, n], depth, transforms[:, n], k_s, padding_mode)
            diff = (tgt - warped) * valid.to(tgt.dtype)
            if masks is not None:
                diff = diff * masks[index][:, n : n + 1]
            scale_loss = scale_loss + diff.abs().mean()
        total = total + scale_loss
        per_scale.append(float(scale_loss.detach()))
    return total, per_scale


def explainability_loss(masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """SfMLearner's mask regulariser: sum over scales of ``BCE(mask, 1) = mean(-log mask)``."""
    if not masks:
        raise ValueError("explainability_loss needs at least one mask")
    total = masks[0].new_zeros(())
    for mask in masks:
        total = total + F.binary_cross_entropy(mask, torch.ones_like(mask))
    return total


def second_order_smoothness(x: torch.Tensor) -> torch.Tensor:
    """``mean|d2x/dx2| + mean|d2x/dxdy| + mean|d2x/dydx| + mean|d2x/dy2|`` of ``(B, C, h, w)``.

    Forward differences as SfMLearner's ``smooth_loss`` (each mean over its own valid size).
    """
    dy = x[:, :, 1:] - x[:, :, :-1]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    dx2 = dx[:, :, :, 1:] - dx[:, :, :, :-1]
    dxdy = dx[:, :, 1:] - dx[:, :, :-1]
    dydx = dy[:, :, :, 1:] - dy[:, :, :, :-1]
    dy2 = dy[:, :, 1:] - dy[:, :, :-1]
    return dx2.abs().mean() + dxdy.abs().mean() + dydx.abs().mean() + dy2.abs().mean()


def smoothness_loss(depth_scales: Sequence[torch.Tensor], decay: float = 2.3) -> torch.Tensor:
    """Second-order smoothness summed over scales, weight ``decay^-k`` at ``k`` from the finest.

    Args:
        depth_scales: Maps per scale, coarse to fine (the finest gets weight 1).
        decay: Per-scale divisor (the reference's 2.3).
    """
    if not depth_scales:
        raise ValueError("smoothness_loss needs at least one scale")
    total = depth_scales[0].new_zeros(())
    weight = 1.0
    for depth in reversed(list(depth_scales)):
        total = total + weight * second_order_smoothness(depth)
        weight /= decay
    return total


_DEFAULTS: dict[str, Any] = {
    "stage": None,
    "recon_weight": 1.0,
    "mask_weight": 0.2,
    "smooth_weight": 0.1,
    "smooth_decay": 2.3,
    "gradient_weight": 1.0,
    "gradient_combine": "product",
    "padding_mode": "zeros",
    "poses": "network",
    "true_translation_scale": 1.0,
}
POSE_SOURCES = ("network", "ground_truth")


class SfmObjective:
    """SfMLearner's losses (+ Eq. 1 in stage 1 of ``sfm_gradient``); see the module docstring.

    Args:
        stage: None for ``sfm``; 1 or 2 for ``sfm_gradient``.
        recon_weight: Weight of the view-synthesis loss (paper a: 1).
        mask_weight: Weight of the explainability regulariser (paper a: 0.2); 0 needs a model
            built with ``explainability: false``.
        smooth_weight: Weight of the smoothness loss (paper a: 0.1).
        smooth_decay: Per-scale divisor of the smoothness weight (2.3).
        gradient_weight: Weight of Eq. 1 in stage 1.
        gradient_combine: ``product`` (Eq. 1 as printed) or ``sum``.
        padding_mode: ``zeros`` or ``border``.
        poses: ``network`` (SfMLearner: the pose network's motion warps the sources) or
            ``ground_truth`` (a diagnostic for synthetic sequences: the data's exact relative poses
            warp them, so only the depth network is learnt, self-supervised and metric; it
            tells a depth network that cannot learn from a pose network that has not yet).
        true_translation_scale: With ``poses: ground_truth``, the true translations are multiplied
            by this, so the depth learnt is the true depth times it (depth is relative
            anyway): 0.1 puts indoor depths (~2.4 m) where the models' disparity head starts
            (~0.2; its range suits SfMLearner's unit-free depth, not metres).
    """

    needs_raw_images = True

    def __init__(
        self,
        stage: int | None = None,
        recon_weight: float = 1.0,
        mask_weight: float = 0.2,
        smooth_weight: float = 0.1,
        smooth_decay: float = 2.3,
        gradient_weight: float = 1.0,
        gradient_combine: str = "product",
        padding_mode: str = "zeros",
        poses: str = "network",
        true_translation_scale: float = 1.0,
    ) -> None:
        if poses not in POSE_SOURCES:
            raise ValueError(f"loss.args.poses must be one of {POSE_SOURCES}, got {poses!r}")
        if stage not in (None, 1, 2) or isinstance(stage, bool):
            raise ValueError(f"loss.args.stage must be 1, 2 or absent, got {stage!r}")
        weights = {
            "recon_weight": recon_weight,
            "mask_weight": mask_weight,
            "smooth_weight": smooth_weight,
            "gradient_weight": gradient_weight,
        }
        for key, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"loss.args.{key} must be a number >= 0, got {value!r}")
        if not recon_weight > 0:
            raise ValueError("loss.args.recon_weight must be > 0 (it is what trains the depth)")
        if isinstance(smooth_decay, bool) or not isinstance(smooth_decay, (int, float)):
            raise ValueError(f"loss.args.smooth_decay must be a number, got {smooth_decay!r}")
        if not smooth_decay > 0:
            raise ValueError(f"loss.args.smooth_decay must be > 0, got {smooth_decay}")
        if gradient_combine not in GRADIENT_COMBINE_MODES:
            raise ValueError(
                f"loss.args.gradient_combine must be one of {GRADIENT_COMBINE_MODES}, got "
                f"{gradient_combine!r}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"loss.args.padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}"
            )
        self.stage = stage
        self.recon_weight = float(recon_weight)
        self.mask_weight = float(mask_weight)
        self.smooth_weight = float(smooth_weight)
        self.smooth_decay = float(smooth_decay)
        self.gradient_weight = float(gradient_weight)
        self.gradient_combine = gradient_combine
        self.padding_mode = padding_mode
        self.poses = poses
        if isinstance(true_translation_scale, bool) or not isinstance(
            true_translation_scale, (int, float)
        ):
            raise ValueError(
                "loss.args.true_translation_scale must be a number, got "
                f"{true_translation_scale!r}"
            )
        if not true_translation_scale > 0:
            raise ValueError(
                f"loss.args.true_translation_scale must be > 0, got {true_translation_scale}"
            )
        self.true_translation_scale = float(true_translation_scale)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SfmObjective:
        """Build from a ``loss.args`` mapping; ValueError naming an unknown key."""
        unknown = sorted(set(args) - set(_DEFAULTS))
        if unknown:
            raise ValueError(
                f"loss.args {unknown} not understood by the sfm objective; valid keys: "
                f"{', '.join(_DEFAULTS)}"
            )
        return cls(**{**_DEFAULTS, **dict(args)})

    def check_model(self, model: nn.Module) -> None:
        """Raise ValueError when the model and the arguments do not fit together."""
        base = unwrap(model)
        pose_net = getattr(base, "pose_net", None)
        if pose_net is None:
            raise ValueError(
                f"the sfm objective needs a model with a pose network (sfm, sfm_gradient), "
                f"got {type(base).__name__}"
            )
        if pose_net.explainability and self.mask_weight == 0:
            raise ValueError(
                "loss.args.mask_weight is 0 but the model predicts explainability masks; set "
                "model.args.explainability: false (SfMLearner without masks)"
            )
        gradient_model = hasattr(base, "grad_decoder")
        if gradient_model and self.stage is None:
            raise ValueError("sfm_gradient trains in two stages: set loss.args.stage to 1 or 2")
        if not gradient_model and self.stage is not None:
            raise ValueError(
                f"loss.args.stage is for sfm_gradient only; {type(base).__name__} has one stage"
            )
        if self.stage == 1 and base.refine:
            raise ValueError(
                "stage 1 trains the depth and gradient decoders: set model.args.refine: false "
                "(the refinement decoder is trained in stage 2)"
            )
        if self.stage == 2 and not base.refine:
            raise ValueError("stage 2 trains the refinement decoder: set model.args.refine: true")

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict[str, Any], Terms]:
        self.check_model(model)
        needed = ["neighbours", "K", "image_raw", "neighbours_raw"]
        if self.poses == "ground_truth":
            needed.append("poses")
        missing = [k for k in needed if k not in data]
        if missing:
            raise ValueError(
                f"the sfm objective needs {missing} in the batch: use a sequence data set "
                "(data.dataset synthetic_sequence or kitti_raw) and raw images"
            )
        outputs = model(data["image"], data["neighbours"])
        key = "initial_depth_scales" if self.stage == 1 else "depth_scales"
        depth_scales = list(outputs[key])
        masks = outputs.get("exp_masks")
        if self.poses == "ground_truth":
            transforms = data["poses"].to(outputs["poses"]).clone()
            transforms[..., :3, 3] *= self.true_translation_scale
        else:
            transforms = pose_vec_to_mat(outputs["poses"])
        recon, _ = photometric_loss(
            data["image_raw"],
            data["neighbours_raw"],
            depth_scales,
            transforms,
            data["K"],
            masks,
            self.padding_mode,
        )
        total = self.recon_weight * recon
        if self.poses == "ground_truth":
            # The pose head takes no part; a zero term keeps it in the graph, so that
            # DistributedDataParallel does not wait for its gradients.
            total = total + 0.0 * outputs["poses"].sum()
        parts = {"recon": float(recon.detach())}
        if masks is not None:
            mask_loss = explainability_loss(masks)
            total = total + self.mask_weight * mask_loss
            parts["mask"] = float(mask_loss.detach())
        smooth = smoothness_loss(depth_scales, self.smooth_decay)
        total = total + self.smooth_weight * smooth
        parts["smooth"] = float(smooth.detach())
        if self.stage == 1:
            grad_loss = depth_scales[0].new_zeros(())
            for depth, grads in zip(depth_scales, outputs["grad_scales"], strict=True):
                grad_loss = grad_loss + gradient_consistency_loss(
                    depth, grads[:, 0:1], grads[:, 1:2], combine=self.gradient_combine
                )
            total = total + self.gradient_weight * grad_loss
            parts["grad"] = float(grad_loss.detach())
        with torch.no_grad():
            parts["pose_translation"] = float(outputs["poses"][..., :3].norm(dim=-1).mean())
            if "poses" in data and self.poses == "network":
                # Synthetic sequences: how far the predicted rotation is from the truth (a
                # scale-free check that the pose network learns).
                rot_err = _rotation_angle(
                    transforms[..., :3, :3].transpose(-1, -2) @ data["poses"][..., :3, :3]
                )
                parts["pose_rot_err_deg"] = float(torch.rad2deg(rot_err).mean())
        return outputs, Terms(total=total, parts=parts)


def _rotation_angle(rot: torch.Tensor) -> torch.Tensor:
    cos = ((rot.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return torch.arccos(cos)


@register_objective("sfm")
def build_sfm(cfg: ExperimentConfig, model: nn.Module) -> SfmObjective:
    """``loss.name: sfm`` with ``loss.args`` (see :class:`SfmObjective`)."""
    objective = SfmObjective.from_args(cfg.loss.args)
    objective.check_model(model)
    return objective
