"""Image panels of a training run (TensorBoard): input, depth, ground truth, segmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from depth_perception.checkpoint import CheckpointMeta


def class_palette(class_names: Sequence[str]) -> np.ndarray | None:
    """The node's colours for ``class_names`` (None for a depth-only model)."""
    if not class_names:
        return None
    from depth_perception.runtime import palette_for

    return palette_for(tuple(class_names))


def image_panel(
    model: nn.Module,
    batch: dict[str, Any],
    meta: CheckpointMeta,
    palette: np.ndarray | None,
    device: torch.device,
    outputs: dict[str, Any] | None = None,
) -> np.ndarray:
    """Panel of the first sample: input | predicted depth | ground truth | seg | seg truth.

    Args:
        model: The plain model (not a DDP wrapper); run in eval mode when ``outputs`` is None.
        batch: A collated batch (normalised images, ground truth).
        meta: The run's checkpoint metadata (normalisation and depth range).
        palette: Class colours (:func:`class_palette`); None draws no segmentation.
        device: The model's device.
        outputs: The model's outputs for ``batch`` when already computed.
    """
    from depth_perception.visualize import colorize_depth, colorize_labels, make_panel

    base = model
    image = batch["image"][:1].to(device)
    if outputs is None:
        was_training = base.training
        base.eval()
        with torch.no_grad():
            outputs = base(image)
        base.train(was_training)
    mean = torch.tensor(meta.mean).view(3, 1, 1)
    std = torch.tensor(meta.std).view(3, 1, 1)
    rgb = (batch["image"][0].detach().cpu() * std + mean).clamp(0, 1)
    rgb = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lo, hi = meta.min_depth, meta.max_depth
    pred = outputs["depth"][0, 0].detach().float().cpu().numpy()
    gt = batch["depth"][0, 0].detach().cpu().numpy()
    gt = np.where(batch["valid"][0, 0].cpu().numpy(), gt, 0.0)
    images = [
        rgb,
        colorize_depth(pred, lo, hi, log_scale=True),
        colorize_depth(gt, lo, hi, log_scale=True),
    ]
    names = ["input", "depth", "ground truth"]
    if "seg_logits" in outputs and palette is not None:
        seg = outputs["seg_logits"][0].detach().argmax(0).cpu().numpy().astype(np.uint8)
        labels = batch["labels"][0].detach().cpu().numpy().astype(np.uint8)
        images += [colorize_labels(seg, palette), colorize_labels(labels, palette)]
        names += ["segmentation", "labels"]
    return make_panel(images, names, height=rgb.shape[0])
