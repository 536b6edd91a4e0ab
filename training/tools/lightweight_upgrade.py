"""Carry ``lightweight`` weights of the PixelShuffle decoder over to the bilinear one.

``python -m training.tools.lightweight_upgrade --checkpoint OLD --output NEW [--min-depth m
--max-depth M --canonical-focal-px F]`` writes a checkpoint of the same network with
``upsample: bilinear`` that starts where OLD left off, for fine-tuning
(``model.init_checkpoint``):

* every tensor the two architectures share (encoder, bottlenecks, heads) is copied;
* each decoder block's new 1x1 ``reduce`` convolution averages the four input channels that the
  PixelShuffle put into one 2x2 cell (channels ``4c .. 4c+3`` -> output channel ``c``), so the
  bottlenecks see at each pixel what the old network saw averaged over a cell;
* the depth heads are re-expressed exactly for a new depth range of G(d): G is affine in
  ``log d``, so ``G_new = a G_old + b`` holds for every depth and the heads' weights and biases
  are mapped with the same ``a``, ``b``.

``canonical_focal_px`` only records the focal length the output depth belongs to (use the
focal length of the cameras OLD was trained with); it changes no weight.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import torch


def g_affine(old: tuple[float, float], new: tuple[float, float]) -> tuple[float, float]:
    """``(a, b)`` with ``G_new(d) = a * G_old(d) + b`` for the depth ranges ``(m, M)``."""
    (m0, big0), (m1, big1) = old, new
    k0 = big0 / (math.log(big0) - math.log(m0))
    k1 = big1 / (math.log(big1) - math.log(m1))
    return k1 / k0, k1 * (math.log(m0) - math.log(m1))


def upgrade_lightweight(
    checkpoint: str | Path,
    output: str | Path,
    *,
    min_depth: float | None = None,
    max_depth: float | None = None,
    canonical_focal_px: float | None = None,
) -> Path:
    """Write ``output``: ``checkpoint`` (a ``upsample: shuffle`` lightweight) as ``bilinear``.

    Args:
        checkpoint: Source checkpoint (stem or file) of a lightweight-family model.
        output: Output stem.
        min_depth, max_depth: New depth range of G(d) (None: the source's).
        canonical_focal_px: Recorded in the new model's arguments (None: none).

    Returns:
        The written ``.safetensors`` path.

    Raises:
        ValueError: the source is no lightweight model or already uses the bilinear decoder.
    """
    from depth_perception.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
    from depth_perception.models import build_model

    meta, state = load_checkpoint(checkpoint)
    if not meta.model.startswith("lightweight"):
        raise ValueError(f"{checkpoint} holds a {meta.model!r} model, not a lightweight one")
    if any(key.endswith(".reduce.weight") for key in state):
        raise ValueError(f"{checkpoint} already has the bilinear decoder; nothing to upgrade")
    args = dict(meta.model_args)
    args["encoder_weights"] = None
    old_range = (float(args.get("min_depth", meta.min_depth)), float(args["max_depth"]))
    new_range = (
        old_range[0] if min_depth is None else float(min_depth),
        old_range[1] if max_depth is None else float(max_depth),
    )
    args.update(
        upsample="bilinear",
        min_depth=new_range[0],
        max_depth=new_range[1],
        canonical_focal_px=canonical_focal_px,
    )
    args.pop("encoder_weights")
    model = build_model(meta.model, **args)
    new_state = model.state_dict()
    a, b = g_affine(old_range, new_range)
    with torch.no_grad():
        for key, value in new_state.items():
            if key.endswith(".reduce.weight"):
                out_channels, in_channels = value.shape[:2]
                value.zero_()
                for c in range(out_channels):
                    value[c, 4 * c : 4 * c + 4] = 0.25
                if in_channels != 4 * out_channels:
                    raise ValueError(f"{key}: expected 4x{out_channels} inputs, got {in_channels}")
                continue
            if key not in state or state[key].shape != value.shape:
                raise ValueError(f"{checkpoint}: no tensor {key} of shape {tuple(value.shape)}")
            value.copy_(state[key])
            if key.startswith("depth_heads."):
                value.mul_(a)
                if key.endswith(".bias"):
                    value.add_(b)
    model.load_state_dict(new_state, strict=True)
    new_meta = CheckpointMeta(
        model=meta.model,
        model_args=args,
        input_width=meta.input_width,
        input_height=meta.input_height,
        mean=meta.mean,
        std=meta.std,
        class_names=meta.class_names,
        min_depth=new_range[0],
        max_depth=new_range[1],
        metric=meta.metric,
        extra={"upgraded_from": str(checkpoint), "source_extra": meta.extra},
    )
    return save_checkpoint(output, model, new_meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`upgrade_lightweight`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="source checkpoint (shuffle)")
    parser.add_argument("--output", required=True, help="output stem")
    parser.add_argument("--min-depth", type=float, default=None)
    parser.add_argument("--max-depth", type=float, default=None)
    parser.add_argument("--canonical-focal-px", type=float, default=None)
    args = parser.parse_args(argv)
    path = upgrade_lightweight(
        args.checkpoint,
        args.output,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        canonical_focal_px=args.canonical_focal_px,
    )
    print(f"wrote {path} (+ .json)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
