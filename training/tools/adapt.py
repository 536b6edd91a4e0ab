"""``depth-perception adapt``: fine-tune a depth checkpoint on a robot's own bag, self-supervised.

``depth-perception adapt BAG --image-topic T --weights START --out ADAPTED`` runs the recipe
``training/configs/lightweight_adapt_rosbag.yaml`` (data set ``rosbag_posed``, objective
``photometric``: the known odometry motion warps neighbouring frames, so no depth sensor is
needed and the depth stays metric) with the model, input size and weights of ``START``, then
writes ``ADAPTED`` (``.safetensors`` + ``.json``), a checkpoint the node and every tool load like
any other, whose provenance says ``adapted``, from which weights and on which bag.

Without ground truth the tool reports the label-free figure it optimises: the masked
photometric error of the bag's triplets with the starting and the adapted depth (lower is
better), and writes a before/after panel (``ADAPTED_panel.png``, also in TensorBoard).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RECIPE = "lightweight_adapt_rosbag"
CREATED_BY = "depth-perception adapt"


def build_config(args: argparse.Namespace, meta: Any) -> Any:
    """The recipe with the bag, the topics and ``START``'s model, size and weights."""
    from training.config import config_from_dict, config_to_dict, load_config

    data = config_to_dict(load_config(args.recipe))
    data["model"] = {
        "name": meta.model,
        "args": dict(meta.model_args),
        "init_checkpoint": str(args.weights),
    }
    d = data["data"]
    d["root"] = str(args.bag)
    d["width"] = int(args.width or meta.input_width)
    d["height"] = int(args.height or meta.input_height)
    d["options"].update(
        {
            "image_topic": args.image_topic,
            "camera_info_topic": args.camera_info_topic,
            "odom_frame": args.odom_frame,
            "base_frame": args.base_frame,
            "min_translation_m": args.min_translation,
            "max_rotation_deg": args.max_rotation,
        }
    )
    if args.camera_frame:
        d["options"]["camera_frame"] = args.camera_frame
    data["loss"]["args"]["anchor_weight"] = float(args.anchor_weight)
    data["optim"]["lr"] = float(args.lr)
    t = data["train"]
    t.update(
        {
            "batch_size": int(args.batch_size),
            "seed": int(args.seed),
            "device": args.device,
            "threads": int(args.threads) or None,
            "max_minutes": args.max_minutes,
        }
    )
    return config_from_dict(data)


def _plan_steps(cfg: Any, triplets: int, steps: int) -> Any:
    """Epochs and steps per epoch giving ``steps`` optimiser steps over ``triplets``."""
    from training.config import config_from_dict, config_to_dict

    data = config_to_dict(cfg)
    batch = min(int(data["train"]["batch_size"]), triplets)
    per_epoch = triplets // batch
    epochs = max(1, math.ceil(steps / per_epoch))
    data["train"]["batch_size"] = batch
    data["train"]["epochs"] = epochs
    # Whole epochs: at least ``steps``, fewer than ``steps + epochs``.
    data["train"]["steps_per_epoch"] = math.ceil(steps / epochs)
    data["train"]["checkpoint_every_steps"] = max(1, min(100, steps))
    return config_from_dict(data)


@torch.no_grad()
def photometric_score(
    model: torch.nn.Module, dataset: Any, meta: Any, indices: Sequence[int]
) -> tuple[float, list[np.ndarray]]:
    """Mean masked photometric error of ``dataset[indices]`` with ``model``'s depth, and the
    depth maps (label-free: what the adaptation minimises, lower is better)."""
    from training.data.sample import collate
    from training.objectives.photometric import view_synthesis_loss

    model.eval()
    values, depths = [], []
    for i in indices:
        batch = collate([dataset[i]], mean=tuple(meta.mean), std=tuple(meta.std), keep_raw=True)
        from training.objectives.photometric import metric_factor

        depth = model(batch["image"])["depth"] * metric_factor(model, batch["K"])
        loss, _ = view_synthesis_loss(
            batch["image_raw"], batch["neighbours_raw"], depth, batch["poses"], batch["K"]
        )
        values.append(float(loss))
        depths.append(depth[0, 0].numpy())
    return float(np.mean(values)), depths


def before_after_panel(
    dataset: Any, indices: Sequence[int], before: list[np.ndarray], after: list[np.ndarray], meta
) -> np.ndarray:
    """Rows of input | starting depth | adapted depth (same colour scale, log)."""
    import cv2

    from depth_perception.visualize import colorize_depth, make_panel

    rows = []
    for i, b, a in zip(indices, before, after, strict=True):
        rgb = dataset[i].image
        h, w = rgb.shape[:2]
        up = [cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (b, a)]
        images = [rgb] + [
            colorize_depth(x, meta.min_depth, meta.max_depth, log_scale=True) for x in up
        ]
        rows.append(make_panel(images, ["input", "before (start)", "after (adapted)"], h))
    return np.concatenate(rows, axis=0)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception adapt``: see the module docstring."""
    from training.tools.cli_args import add_adapt_arguments

    argv = None
    if not isinstance(args, argparse.Namespace):
        argv = list(sys.argv[1:] if args is None else args)
        parser = argparse.ArgumentParser(prog="depth-perception adapt", description=main.__doc__)
        add_adapt_arguments(parser)
        args = parser.parse_args(argv)
    if argv is None:
        argv = list(getattr(args, "argv", None) or sys.argv[1:])[1:]
    command = "depth-perception adapt " + " ".join(shlex.quote(a) for a in argv)
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    import cv2

    from depth_perception.checkpoint import (
        DatasetRef,
        checkpoint_paths,
        load_checkpoint,
        load_model,
        save_checkpoint,
    )
    from training.data.registry import make_dataset
    from training.trainer.loop import train

    if args.threads:
        torch.set_num_threads(int(args.threads))
    weights = Path(args.weights)
    start_meta, _ = load_checkpoint(weights)
    out_weights, out_json = checkpoint_paths(args.out)
    out = out_weights.with_suffix("")
    if out_weights.exists() and not args.overwrite:
        raise FileExistsError(f"{out_weights} exists; give --overwrite to replace it")
    cfg = build_config(args, start_meta)
    dataset = make_dataset(cfg.data, cfg.data.train_split)  # refuses a bad bag before training
    bag = dataset
    cfg = _plan_steps(cfg, len(dataset), int(args.steps))
    print(
        f"[adapt] {args.bag}: {len(bag)} triplets from {len(bag._rgb_refs)} images over "
        f"{bag.duration_s:.1f} s of bag, camera moved {bag.moved_m:.2f} m; "
        f"{cfg.train.epochs} epochs x {cfg.train.steps_per_epoch} steps of "
        f"{cfg.train.batch_size} at {cfg.data.width}x{cfg.data.height}",
        flush=True,
    )
    n_score = min(len(dataset), int(args.score_frames))
    score_idx = sorted({round(i) for i in np.linspace(0, len(dataset) - 1, n_score)})
    start_model, _ = load_model(weights)
    before, before_depth = photometric_score(start_model, dataset, start_meta, score_idx)
    run_dir = Path(args.run_dir) if args.run_dir else out.parent / f"{out.name}_run"
    result = train(
        cfg,
        run_dir,
        resume=True,
        restart=args.restart,
        command=command,
        show_progress=False if args.no_progress else None,
    )
    if result.final_checkpoint is None:
        raise ValueError(f"training in {run_dir} wrote no final checkpoint")
    model, meta = load_model(result.final_checkpoint)
    after, after_depth = photometric_score(model, dataset, meta, score_idx)
    metrics = {"photometric_before": before, "photometric_after": after}
    meta.provenance = dataclasses.replace(
        meta.provenance,
        adapted=True,
        recipe=cfg.name,
        datasets=(DatasetRef("rosbag_posed", split=cfg.data.train_split, source=str(args.bag)),),
        parent=str(weights),
        created_by=CREATED_BY,
        command=command,
        metrics=metrics,
    )
    meta.extra = {
        **meta.extra,
        "adapt": {
            "image_topic": args.image_topic,
            "triplets": len(dataset),
            "bag_seconds": round(bag.duration_s, 2),
            "moved_m": round(bag.moved_m, 3),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, meta)
    panel = before_after_panel(dataset, score_idx[:3], before_depth[:3], after_depth[:3], meta)
    panel_path = out.parent / f"{out.name}_panel.png"
    cv2.imwrite(str(panel_path), panel[..., ::-1])
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tb")) as writer:
        writer.add_image(
            "adapt/before_after", panel, result.progress.global_step, dataformats="HWC"
        )
        writer.add_scalars("adapt/photometric", {"before": before, "after": after}, 0)
    print(
        f"[adapt] photometric error on {len(score_idx)} triplets: {before:.4f} (start) -> "
        f"{after:.4f} (adapted), {result.progress.global_step} steps in "
        f"{result.progress.train_seconds:.0f} s; wrote {out_weights}, {out_json} and {panel_path}",
        flush=True,
    )
    return 0 if result.progress.finished else 1


if __name__ == "__main__":
    sys.exit(main())
