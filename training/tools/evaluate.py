"""``depth-perception eval``: the metrics table of a checkpoint on a data set.

The protocol (resizing, caps, crops, median scaling) is ``training.evaluation.evaluate``'s; this
module only builds the data set the checkpoint asks for and prints or saves the table. On the
real-image sets (``middlebury``, ``middlebury_skimage``) it runs the zero-shot benchmark of
``training.tools.zero_shot`` instead.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from training.evaluation import evaluate, format_metrics_table


def default_checkpoint() -> str:
    """The bundled weights of the default model (what the node loads without ``weights``).

    Raises:
        FileNotFoundError: the package ships no weights for it.
    """
    from depth_perception.config import PerceptionConfig
    from depth_perception.runtime import bundled_weights

    model = PerceptionConfig().model
    path = bundled_weights(model)
    if path is None:
        raise FileNotFoundError(
            f"no bundled weights for the default model {model!r}; pass --checkpoint"
        )
    return str(path)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception eval``: evaluate a checkpoint on a data set, print the table."""
    from training.tools.cli_args import add_eval_arguments, parse_options

    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="depth-perception eval", description=main.__doc__)
        add_eval_arguments(parser)
        args = parser.parse_args(args)
    if args.checkpoint is None:
        args.checkpoint = default_checkpoint()
    from training.tools.zero_shot import ZERO_SHOT_DATASETS

    if args.dataset in ZERO_SHOT_DATASETS:
        # Real images at their own resolution, the model beside a row prior and a constant.
        from training.tools.zero_shot import main as zero_shot_main

        return zero_shot_main(args)
    if getattr(args, "views", False):
        raise ValueError(
            f"--views scores real images at their own size: use it with "
            f"{', '.join(ZERO_SHOT_DATASETS)}"
        )

    from torch.utils.data import DataLoader

    from depth_perception.checkpoint import load_model
    from training.config import DataConfig
    from training.data import family_for_classes, make_collate, make_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, meta = load_model(args.checkpoint, device=device)
    width = args.width or meta.input_width
    height = args.height or meta.input_height
    synthetic = [d for d in meta.provenance.datasets if d.name.startswith("synthetic")]
    family = (
        args.family
        or family_for_classes(meta.class_names)
        # Depth-only checkpoints have no classes: the family they were trained on decides.
        or (synthetic[0].family if synthetic else None)
        or "indoor"
    )
    data_cfg = DataConfig(
        dataset=args.dataset,
        family=family,
        root=args.root,
        width=width,
        height=height,
        val_split=args.split,
        val_length=args.length,
        augment=False,
        options=parse_options(args.option),
    )
    dataset = make_dataset(data_cfg, args.split, length=args.length)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.num_workers,
        collate_fn=make_collate(meta.mean, meta.std),
    )
    median = {"auto": None, "on": True, "off": False}[args.median_scaling]
    result = evaluate(
        model,
        loader,
        device=device,
        num_classes=len(meta.class_names),
        metric=meta.metric,
        min_depth=args.min_depth,
        max_depth=args.max_depth if args.max_depth is not None else meta.max_depth,
        crop=args.crop,
        median_scaling=median,
        mae_bin_size=args.mae_bin_size,
        max_batches=args.max_batches,
        show_progress=None,
    )
    print(
        f"checkpoint {args.checkpoint} ({meta.model}, {width}x{height}) on "
        f"{args.dataset}/{family}/{args.split}"
    )
    print(format_metrics_table(result, meta.class_names))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = result.to_dict()
        payload["checkpoint"] = str(args.checkpoint)
        payload["dataset"] = {
            "name": args.dataset,
            "family": family,
            "split": args.split,
            "width": width,
            "height": height,
        }
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0
