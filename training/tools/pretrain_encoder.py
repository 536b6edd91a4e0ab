"""Pre-train torchvision's DenseNet-201 on a synthetic task that is not depth (paper c's stand-in).

Paper c freezes an ImageNet-pretrained DenseNet-201. ImageNet cannot be had offline, so this
tool pre-trains the same network on semantic segmentation of the synthetic worlds instead, on
worlds of another seed than the depth runs (different rooms, like ImageNet is other images than
NYU), and writes it in exactly the format of torchvision's ImageNet file: the state dict of
``torchvision.models.densenet201(num_classes=C)`` (``features.*`` and ``classifier.*``), saved
as plain tensors that ``torch.load(weights_only=True)`` reads. ``densedepth201``'s
``encoder_weights`` therefore takes it the way it takes ``densenet201-c1103571.pth``.

The segmentation head *is* the classifier: ``classifier`` (a ``Linear(1920, C)``) is applied to
every position of the stride-32 feature map (a 1x1 convolution with the same weights) and the
logits are upsampled bilinearly to the input size. Everything the task needs beyond a linear
read-out has to be learnt by the encoder, as in ImageNet classification.

Run: ``python -m training.tools.pretrain_encoder --out runs/paper_c/encoder_seg_indoor.pth``
(``--help`` for the budget; a ``.json`` beside the output records the recipe and the curves).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.models import densenet201

from depth_perception.classes import IGNORE_LABEL
from depth_perception.models.registry import IMAGENET_MEAN, IMAGENET_STD
from training.data.sample import make_collate


def segment(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Per-pixel class logits ``(B, C, H, W)`` of a torchvision DenseNet: classifier per position.

    Mirrors torchvision's ``DenseNet.forward`` (features, ReLU, classifier) without the global
    average pooling, so the trained ``classifier`` is a valid ImageNet-style head.
    """
    features = F.relu(model.features(images))
    logits = torch.einsum("bchw,kc->bkhw", features, model.classifier.weight)
    logits = logits + model.classifier.bias.view(1, -1, 1, 1)
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _dataset(family: str, split: str, width: int, height: int, world_seed: int, length: int):
    from training.data.synthetic import SyntheticDataset

    frames = 8
    data = SyntheticDataset(
        family=family,
        split=split,
        width=width,
        height=height,
        frames_per_scene=frames,
        seed=world_seed,
        num_scenes=max(1, math.ceil(length / frames)),
    )
    return Subset(data, range(min(length, len(data)))), data.class_names


def _confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    keep = target != IGNORE_LABEL
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader: DataLoader, num_classes: int) -> dict:
    """Pixel accuracy, mIoU (over classes present) and mean cross-entropy on ``loader``."""
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    losses = []
    for batch in loader:
        logits = segment(model, batch["image"])
        losses.append(float(F.cross_entropy(logits, batch["labels"], ignore_index=IGNORE_LABEL)))
        conf += _confusion(logits.argmax(1), batch["labels"], num_classes)
    model.train()
    tp = conf.diag().double()
    union = conf.sum(0).double() + conf.sum(1).double() - tp
    present = conf.sum(1) > 0
    iou = tp[present] / union[present].clamp(min=1)
    return {
        "loss": float(np.mean(losses)),
        "pixel_acc": float(tp.sum() / conf.sum().clamp(min=1)),
        "miou": float(iou.mean()) if iou.numel() else float("nan"),
    }


def save_encoder(model: nn.Module, path: Path) -> Path:
    """Write the DenseNet's state dict as plain tensors (readable with ``weights_only=True``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def pretrain(args: argparse.Namespace) -> dict[str, Any]:
    """Train DenseNet-201 on segmentation as ``args`` say; save it; return the record."""
    if args.width % 32 or args.height % 32:
        raise ValueError(
            f"width and height must be multiples of 32, got {args.width}x{args.height}"
        )
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError("--steps and --batch-size must be positive")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_set, class_names = _dataset(
        args.family,
        "train",
        args.width,
        args.height,
        args.world_seed,
        args.steps * args.batch_size,
    )
    val_set, _ = _dataset(
        args.family, "val", args.width, args.height, args.world_seed, args.val_length
    )
    collate = make_collate(IMAGENET_MEAN, IMAGENET_STD)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
        collate_fn=collate,
        generator=generator,
        persistent_workers=False,
    )
    val_loader = DataLoader(val_set, batch_size=args.batch_size, collate_fn=collate)
    num_classes = len(class_names)
    model = densenet201(weights=None, num_classes=num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history: list[dict[str, float]] = []
    model.train()
    step, t0, window = 0, time.monotonic(), []
    stop_reason = "steps"
    for batch in train_loader:
        logits = segment(model, batch["image"])
        loss = F.cross_entropy(logits, batch["labels"], ignore_index=IGNORE_LABEL)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {step + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window.append(float(loss.detach()))
        over = args.max_minutes is not None and time.monotonic() - t0 > 60.0 * args.max_minutes
        if step % args.log_every == 0 or step == args.steps or over:
            entry: dict[str, float] = {"step": step, "loss": float(np.mean(window))}
            window = []
            if step % args.eval_every == 0 or step == args.steps or over:
                entry.update(
                    {
                        f"val_{k}": v
                        for k, v in evaluate_segmentation(model, val_loader, num_classes).items()
                    }
                )
            entry["seconds"] = time.monotonic() - t0
            history.append(entry)
            print(json.dumps(entry), flush=True)
        if step >= args.steps:
            break
        if over:
            stop_reason = "time_budget"
            break
    out = save_encoder(model, Path(args.out))
    record = {
        "weights": str(out),
        "format": f"torchvision densenet201(num_classes={num_classes}) state dict",
        "task": f"semantic segmentation of synthetic/{args.family}, world seed {args.world_seed}",
        "class_names": list(class_names),
        "args": {k: v for k, v in vars(args).items()},
        "steps": step,
        "stop_reason": stop_reason,
        "history": history,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the tool."""
    p = argparse.ArgumentParser(
        prog="python -m training.tools.pretrain_encoder",
        description="Pre-train DenseNet-201 on synthetic semantic segmentation and save it as a "
        "torchvision densenet201 state dict (what densedepth201's encoder_weights reads).",
    )
    p.add_argument("--out", required=True, help="output .pth (a .json record is written beside)")
    p.add_argument("--family", default="indoor", help="synthetic family (default indoor)")
    p.add_argument(
        "--world-seed",
        type=int,
        default=1,
        help="seed of the synthetic worlds (default 1; the depth recipes use seed 0)",
    )
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--steps", type=int, default=400, help="optimiser steps (one pass of data)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--val-length", type=int, default=64, help="validation frames")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and save) after this long"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--num-workers", type=int, default=1, help="data loader workers (render)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m training.tools.pretrain_encoder --out PATH``."""
    record = pretrain(build_parser().parse_args(argv))
    last = record["history"][-1]
    print(f"[pretrain] wrote {record['weights']}: " + json.dumps(last), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
