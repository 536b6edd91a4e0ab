"""Held-out self-supervised losses of ``sfm`` / ``sfm_gradient`` checkpoints (paper a, Table II).

Paper a compares the unsupervised models by their reconstruction and smoothness losses as well
as by depth accuracy. Training curves are noisy (one batch of 4 per logged point), so this
evaluates the training objective itself, with every weight as trained, on fixed held-out
synthetic sequences (test split) for each checkpoint::

    python -m training.tools.sfm_losses RUN/final [RUN2/final ...] --stride 6 --length 128

Each checkpoint is rebuilt from its own description (``load_model``), so the pose network and
the explainability masks are those trained with it; ``sfm_gradient`` checkpoints built with
``refine: false`` (stage 1) are scored on the depth decoder's depth, with Eq. 1 reported too.
Models have no BatchNorm or dropout, so the training-mode forward (needed for the per-scale
outputs) is deterministic.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch

from depth_perception.checkpoint import load_model
from training.data import make_collate
from training.data.synthetic import SyntheticSequenceDataset
from training.objectives.sfm import POSE_SOURCES, SfmObjective

REPORTED = ("recon", "smooth", "mask", "grad", "pose_rot_err_deg")


def heldout_losses(
    checkpoint: str,
    stride: int = 6,
    frame_offsets: Sequence[int] = (-1, 1),
    length: int = 128,
    batch_size: int = 4,
    poses: str = "network",
    true_translation_scale: float = 1.0,
) -> dict[str, Any]:
    """Mean objective terms of one checkpoint over ``length`` held-out sequence samples.

    Args:
        checkpoint: Stem or file of an ``sfm`` / ``sfm_gradient`` checkpoint.
        stride: Path frames between the target and its neighbours (as trained).
        frame_offsets: Neighbours in strides (as trained); one per pose-network source.
        length: Test samples (from scene 9000 on), taken in order.
        batch_size: Samples per forward pass.
        poses: ``network`` or ``ground_truth`` (as ``loss.args.poses``).
        true_translation_scale: As ``loss.args.true_translation_scale``.

    Returns:
        ``{"checkpoint", "model", "stage", "samples", <term>: mean}`` with the terms the
        objective reports (``recon``, ``smooth``, ``mask``, ``grad`` in stage 1, and
        ``pose_rot_err_deg`` with network poses).
    """
    if length < 1 or batch_size < 1:
        raise ValueError(f"length and batch_size must be >= 1, got {length}, {batch_size}")
    model, meta = load_model(checkpoint)
    base_name = meta.model
    if base_name not in ("sfm", "sfm_gradient"):
        raise ValueError(f"{checkpoint} holds a {base_name!r} model, not sfm or sfm_gradient")
    stage = None
    if base_name == "sfm_gradient":
        stage = 2 if model.refine else 1
    if len(frame_offsets) != model.num_sources:
        raise ValueError(
            f"{checkpoint}'s pose network takes {model.num_sources} sources, got "
            f"frame_offsets {list(frame_offsets)}"
        )
    height, width = meta.input_height, meta.input_width
    dataset = SyntheticSequenceDataset(
        family="indoor",
        split="test",
        width=width,
        height=height,
        frames_per_scene=8,
        frame_offsets=tuple(frame_offsets),
        stride=stride,
    )
    objective = SfmObjective(
        stage=stage,
        mask_weight=0.2 if model.pose_net.explainability else 0.0,
        poses=poses,
        true_translation_scale=true_translation_scale,
    )
    batch_of = make_collate(meta.mean, meta.std, keep_raw=True)
    totals: dict[str, float] = {}
    count = 0
    model.train()
    with torch.no_grad():
        for start in range(0, length, batch_size):
            indices = range(start, min(start + batch_size, length))
            data = batch_of([dataset[i] for i in indices])
            _, terms = objective(model, data)
            for key in REPORTED:
                if key in terms.parts:
                    totals[key] = totals.get(key, 0.0) + terms.parts[key] * len(indices)
            count += len(indices)
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": base_name,
        "stage": stage,
        "samples": count,
    }
    result.update({key: value / count for key, value in totals.items()})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.sfm_losses",
        description="held-out SfM losses (reconstruction, smoothness, ...) of checkpoints",
    )
    parser.add_argument("checkpoints", nargs="+", help="checkpoint stems or files")
    parser.add_argument("--stride", type=int, default=6, help="frames to each neighbour")
    parser.add_argument(
        "--frame-offsets", type=int, nargs="+", default=[-1, 1], help="neighbours, in strides"
    )
    parser.add_argument("--length", type=int, default=128, help="held-out samples")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--poses", choices=POSE_SOURCES, default="network")
    parser.add_argument("--true-translation-scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for checkpoint in args.checkpoints:
        result = heldout_losses(
            checkpoint,
            args.stride,
            args.frame_offsets,
            args.length,
            args.batch_size,
            args.poses,
            args.true_translation_scale,
        )
        results.append(result)
        terms = "  ".join(f"{k} {result[k]:.5f}" for k in REPORTED if k in result)
        print(f"{checkpoint} ({result['model']}, stage {result['stage']}): {terms}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
