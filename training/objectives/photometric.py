"""Objective ``photometric``: self-supervised depth from known camera motion (monodepth2-style).

For a target frame ``I_t`` with source frames ``I_s`` and the *known* target-to-source motion
``T_s<-t`` (odometry + the camera's mounting, from the data set's ``poses``), the depth network's
depth ``D`` warps each source into the target view (``sfm.inverse_warp``). Following
monodepth2 (Godard et al., ICCV 2019) the per-pixel error is

    pe(a, b) = alpha * (1 - SSIM(a, b)) / 2 + (1 - alpha) * |a - b|,   alpha = 0.85

(3x3 SSIM, mean over colour), taken as the **minimum over the sources** (a pixel occluded or
out of view in one source is usually visible in the other) and **auto-masked**: a pixel counts
only where the warped error is below the error of the *unwarped* source, which removes pixels
that do not move between frames (a static camera, objects moving with it, textureless areas).
Depth at every output scale is upsampled to the input size before warping (monodepth2), so all
scales are judged at full resolution. Because the motion is metric, the depth that minimises
the error is metric too: no scale ambiguity, no pose network.

Terms (``loss.args``):

* ``photo`` (weight 1): the masked minimum error, averaged over scales;
* ``smooth_weight`` (1e-3): edge-aware first-order smoothness of the mean-normalised inverse
  depth, divided by ``2^k`` at the k-th coarser scale (monodepth2);
* ``anchor_weight`` (0: off): mean ``|log D - log D_start|`` against the depth of the frozen
  starting checkpoint (``model.init_checkpoint``) at full resolution, which keeps the model
  where the photometric loss sees no parallax (distant, textureless or masked pixels);
* ``ssim_alpha`` (0.85), ``automask`` (true), ``min_over_sources`` (true; false averages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn

from depth_perception.camera import focal_scale
from training.objectives import Terms, register_objective, unwrap
from training.objectives.sfm import inverse_warp

if TYPE_CHECKING:
    from training.config import ExperimentConfig

# Error given to a pixel whose projection leaves the source image: it loses every minimum.
_OUT_OF_VIEW = 1e3
_DEFAULTS: dict[str, Any] = {
    "ssim_alpha": 0.85,
    "smooth_weight": 1e-3,
    "anchor_weight": 0.0,
    "automask": True,
    "min_over_sources": True,
}


def ssim_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(1 - SSIM) / 2`` per pixel, 3x3 windows, reflection padding; ``(B, C, H, W)``."""
    c1, c2 = 0.01**2, 0.03**2
    a, b = F.pad(a, (1, 1, 1, 1), mode="reflect"), F.pad(b, (1, 1, 1, 1), mode="reflect")
    mu_a, mu_b = F.avg_pool2d(a, 3, 1), F.avg_pool2d(b, 3, 1)
    var_a = F.avg_pool2d(a * a, 3, 1) - mu_a**2
    var_b = F.avg_pool2d(b * b, 3, 1) - mu_b**2
    cov = F.avg_pool2d(a * b, 3, 1) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return ((1 - num / den) / 2).clamp(0, 1)


def photometric_error(a: torch.Tensor, b: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """``alpha * SSIM error + (1 - alpha) * L1``, mean over colour: ``(B, 1, H, W)``."""
    l1 = (a - b).abs().mean(1, keepdim=True)
    if alpha == 0:
        return l1
    return alpha * ssim_error(a, b).mean(1, keepdim=True) + (1 - alpha) * l1


def edge_aware_smoothness(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """monodepth2's smoothness of the mean-normalised inverse depth, weighted by image edges."""
    disp = 1.0 / depth.clamp_min(1e-6)
    disp = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
    image = F.interpolate(image, size=disp.shape[-2:], mode="area")
    dx = (disp[..., :, 1:] - disp[..., :, :-1]).abs()
    dy = (disp[..., 1:, :] - disp[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()


def view_synthesis_loss(
    target: torch.Tensor,
    sources: torch.Tensor,
    depth: torch.Tensor,
    transforms: torch.Tensor,
    k: torch.Tensor,
    alpha: float = 0.85,
    automask: bool = True,
    min_over_sources: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked per-pixel minimum reprojection error of one depth map.

    Args:
        target: ``(B, 3, H, W)`` in [0, 1].
        sources: ``(B, N, 3, H, W)`` in [0, 1].
        depth: ``(B, 1, h, w)`` metric depth (upsampled bilinearly to ``H x W``).
        transforms: ``(B, N, 4, 4)`` target-to-source motion (metres).
        k: ``(B, 3, 3)`` intrinsics of the ``H x W`` images.
        alpha: SSIM share of the error.
        automask: drop pixels where an unwarped source matches better than the warped ones.
        min_over_sources: per-pixel minimum over the sources (else their mean).

    Returns:
        ``(loss, mask)``: the mean error over the kept pixels and the ``(B, 1, H, W)`` mask
        of kept pixels.
    """
    size = target.shape[-2:]
    if depth.shape[-2:] != size:
        depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
    errors, identity = [], []
    for n in range(sources.shape[1]):
        warped, valid = inverse_warp(sources[:, n], depth, transforms[:, n], k, "border")
        err = photometric_error(warped, target, alpha)
        errors.append(torch.where(valid, err, torch.full_like(err, _OUT_OF_VIEW)))
        if automask:
            identity.append(photometric_error(sources[:, n], target, alpha))
    reproj = torch.cat(errors, 1)
    if min_over_sources:
        best = reproj.min(1, keepdim=True).values
    else:
        seen = reproj < _OUT_OF_VIEW
        best = (reproj * seen).sum(1, keepdim=True) / seen.sum(1, keepdim=True).clamp_min(1)
        best = torch.where(seen.any(1, keepdim=True), best, torch.full_like(best, _OUT_OF_VIEW))
    mask = best < _OUT_OF_VIEW
    if automask:
        # monodepth2 breaks ties with tiny noise; a strict comparison does the same here.
        mask = mask & (best < torch.cat(identity, 1).min(1, keepdim=True).values)
    kept = mask.to(best.dtype)
    loss = (best * kept).sum() / kept.sum().clamp_min(1.0)
    return loss, mask


def metric_factor(model: nn.Module, k: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, 1)`` factor from the model's output to metric depth for intrinsics ``k``
    (network-input pixels): ``(fx / canonical_focal_px) ** focal_exponent``, or 1 for a model
    without a canonical focal length."""
    base = unwrap(model)
    focal = getattr(base, "canonical_focal_px", None)
    factor = focal_scale(k[:, 0, 0], focal, float(getattr(base, "focal_exponent", 1.0)))
    if not isinstance(factor, torch.Tensor):
        factor = torch.full((k.shape[0],), float(factor))
    return factor.to(k.dtype).view(-1, 1, 1, 1)


class PhotometricObjective:
    """Self-supervised depth from known poses (see the module docstring).

    Args:
        ssim_alpha: SSIM share of the photometric error (monodepth2: 0.85).
        smooth_weight: Weight of the edge-aware smoothness (monodepth2: 1e-3).
        anchor_weight: Weight of the agreement with ``anchor`` (0: none).
        automask: Auto-masking of pixels that do not move.
        min_over_sources: Per-pixel minimum over the sources (else the mean).
        anchor: The frozen starting model (needed when ``anchor_weight`` > 0).
    """

    needs_raw_images = True

    def __init__(
        self,
        ssim_alpha: float = 0.85,
        smooth_weight: float = 1e-3,
        anchor_weight: float = 0.0,
        automask: bool = True,
        min_over_sources: bool = True,
        anchor: nn.Module | None = None,
    ) -> None:
        for key, value in (
            ("ssim_alpha", ssim_alpha),
            ("smooth_weight", smooth_weight),
            ("anchor_weight", anchor_weight),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"loss.args.{key} must be a number >= 0, got {value!r}")
        if ssim_alpha > 1:
            raise ValueError(f"loss.args.ssim_alpha must be in [0, 1], got {ssim_alpha}")
        for key, flag in (("automask", automask), ("min_over_sources", min_over_sources)):
            if not isinstance(flag, bool):
                raise ValueError(f"loss.args.{key} must be true or false, got {flag!r}")
        if anchor_weight > 0 and anchor is None:
            raise ValueError(
                "loss.args.anchor_weight > 0 needs the starting model: set model.init_checkpoint"
            )
        self.ssim_alpha = float(ssim_alpha)
        self.smooth_weight = float(smooth_weight)
        self.anchor_weight = float(anchor_weight)
        self.automask = automask
        self.min_over_sources = min_over_sources
        self.anchor = anchor
        if anchor is not None:
            anchor.eval()
            for p in anchor.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_args(cls, args: Mapping[str, Any], anchor: nn.Module | None = None) -> Any:
        """Build from ``loss.args``; ValueError naming an unknown key."""
        unknown = sorted(set(args) - set(_DEFAULTS))
        if unknown:
            raise ValueError(
                f"loss.args {unknown} not understood by the photometric objective; valid keys: "
                f"{', '.join(_DEFAULTS)}"
            )
        return cls(**{**_DEFAULTS, **dict(args)}, anchor=anchor)

    def depth_scales(
        self, model: nn.Module, outputs: Mapping[str, Any], k: torch.Tensor
    ) -> Sequence[torch.Tensor]:
        """The model's metric depth maps, finest last (``depth_scales`` in training, else
        ``depth``); a model with ``canonical_focal_px`` predicts the depth its canonical camera
        would see, times ``fx / canonical_focal_px`` for this camera (``camera.focal_scale``)."""
        scales = outputs.get("depth_scales")
        scales = list(scales) if scales else [outputs["depth"]]
        return [d * metric_factor(model, k).to(d) for d in scales]

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict[str, Any], Terms]:
        missing = [k for k in ("poses", "K", "image_raw", "neighbours_raw") if k not in data]
        if missing:
            raise ValueError(
                f"the photometric objective needs {missing} in the batch: use a posed sequence "
                "(data.dataset rosbag_posed or synthetic_sequence)"
            )
        outputs = model(data["image"])
        target, sources = data["image_raw"], data["neighbours_raw"]
        transforms = data["poses"].to(target)
        scales = self.depth_scales(model, outputs, data["K"])
        photo = target.new_zeros(())
        smooth = target.new_zeros(())
        mask = None
        for index, depth in enumerate(scales):
            loss, mask = view_synthesis_loss(
                target,
                sources,
                depth,
                transforms,
                data["K"],
                self.ssim_alpha,
                self.automask,
                self.min_over_sources,
            )
            photo = photo + loss
            coarser = len(scales) - 1 - index
            smooth = smooth + edge_aware_smoothness(depth, target) / 2**coarser
        photo = photo / len(scales)
        total = photo + self.smooth_weight * smooth / len(scales)
        parts = {"photo": float(photo.detach()), "smooth": float(smooth.detach())}
        if mask is not None:
            parts["kept"] = float(mask.float().mean())
        if self.anchor is not None and self.anchor_weight > 0:
            with torch.no_grad():
                start = self.anchor(data["image"])["depth"] * metric_factor(self.anchor, data["K"])
            final = outputs["depth"] * metric_factor(model, data["K"]).to(outputs["depth"])
            if start.shape[-2:] != final.shape[-2:]:
                start = F.interpolate(start, size=final.shape[-2:], mode="bilinear")
            anchor = (final.clamp_min(1e-6).log() - start.clamp_min(1e-6).log()).abs().mean()
            total = total + self.anchor_weight * anchor
            parts["anchor"] = float(anchor.detach())
        return outputs, Terms(total=total, parts=parts)


@register_objective("photometric")
def build_photometric(cfg: ExperimentConfig, model: nn.Module) -> PhotometricObjective:
    """``loss.name: photometric`` with ``loss.args`` (see :class:`PhotometricObjective`)."""
    anchor = None
    if float(cfg.loss.args.get("anchor_weight", 0.0) or 0.0) > 0 and cfg.model.init_checkpoint:
        from depth_perception.checkpoint import load_model

        anchor, _ = load_model(cfg.model.init_checkpoint)
        anchor.to(next(model.parameters()).device)
    return PhotometricObjective.from_args(cfg.loss.args, anchor=anchor)
