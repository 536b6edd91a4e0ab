"""Train variants of one recipe at the same budget and compare their validation curves.

Built for paper c's claim (a frozen pre-trained encoder converges faster than a random or a
from-scratch one; issue 19) but recipe-agnostic. Each variant is a list of ``--set``
overrides; each is trained with :func:`training.trainer.train` into ``OUT/<name>`` (resumable:
a finished run is not retrained), keeping a copy of every ``last`` checkpoint (one per epoch)
in ``OUT/<name>/snapshots``. Afterwards every snapshot, and the initial network (built with the
run's seed, as the trainer builds it), is scored on the validation split with the mean L1
depth error over the valid pixels (the ``l1`` objective's loss, on the eval-mode output),
beside the trainer's own validation metrics of that step (AbsRel, RMSE, delta1).
``OUT/curves.json`` holds the numbers and ``--plot`` draws them (validation L1 and AbsRel,
training loss, delta1 vs steps).

Held-out test figures come from the normal tool: ``depth-perception eval --checkpoint
OUT/<name>/final --dataset synthetic --split test --length 256``.

Run: ``python -m training.tools.transfer_study --config RECIPE --out runs/DIR --variant
"NAME=key=value,key=value" ... --plot resource/NAME.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.tools.train_cost import Variant, parse_variant

SNAPSHOTS = "snapshots"


def _quiet_build(fn, *args, **kwargs):
    # A frozen encoder without weights warns at every build; once per run is in the train log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def _val_loader(cfg):
    from torch.utils.data import DataLoader

    from depth_perception.models import get_model_info
    from training.data.registry import make_dataset
    from training.data.sample import make_collate

    info = get_model_info(cfg.model.name)
    data = make_dataset(cfg.data, cfg.data.val_split, length=cfg.data.val_length)
    return DataLoader(
        data, batch_size=cfg.train.batch_size, collate_fn=make_collate(info.mean, info.std)
    )


@torch.no_grad()
def val_l1(model: nn.Module, loader) -> float:
    """Mean L1 depth error (m) over the valid pixels of the whole split (eval-mode output)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        pred = model(batch["image"])["depth"]
        valid = batch["valid"] & (batch["depth"] > 0)
        total += float((pred[valid] - batch["depth"][valid]).abs().sum())
        count += int(valid.sum())
    return total / max(count, 1)


@torch.no_grad()
def score(model: nn.Module, cfg, loader) -> dict[str, float]:
    """:func:`val_l1` and the metrics the trainer's validation computes (same protocol)."""
    from training.evaluation import evaluate

    e = cfg.eval
    result = evaluate(
        model,
        loader,
        metric=True,
        min_depth=e.min_depth,
        max_depth=e.max_depth if e.max_depth is not None else getattr(model, "max_depth", None),
        crop=e.crop,
        median_scaling=e.median_scaling,
        desc="score",
        show_progress=False,
    )
    return {"l1": val_l1(model, loader), **result.scalars()}


def initial_model(cfg) -> nn.Module:
    """The network as :func:`training.trainer.train` builds it before its first step."""
    from training.data.base import class_names_of
    from training.data.registry import data_depth_range, make_dataset
    from training.trainer import build_training_model, seed_everything

    seed_everything(cfg.train.seed, cfg.train.deterministic)
    names = class_names_of(make_dataset(cfg.data, cfg.data.train_split, length=1))
    model, _ = _quiet_build(build_training_model, cfg, names, data_depth_range(cfg.data))
    return model


def run_variant(config: str, variant: Variant, out: Path) -> dict[str, Any]:
    """Train one variant (unless finished) and score its snapshots; returns its curve."""
    from depth_perception.checkpoint import load_model
    from training.config import load_config
    from training.trainer import STATE_FILE, train
    from training.trainer.state import load_train_state

    cfg = load_config(config, variant.overrides)
    run_dir = out / variant.name
    snaps = run_dir / SNAPSHOTS

    def snapshot(progress) -> None:
        snaps.mkdir(parents=True, exist_ok=True)
        for suffix in (".safetensors", ".json"):
            src = run_dir / f"last{suffix}"
            shutil.copy2(src, snaps / f"step_{progress.global_step:05d}{suffix}")

    command = (
        f"python -m training.tools.transfer_study --config {config} "
        f"--variant '{variant.name}={','.join(variant.overrides)}'"
    )
    if not (run_dir / "metrics.json").is_file():
        train(cfg, run_dir, command=command, on_checkpoint=snapshot)
    loader = _val_loader(cfg)
    torch.manual_seed(0)
    points = [{"step": 0, **score(initial_model(cfg), cfg, loader)}]
    state = load_train_state(run_dir / STATE_FILE)
    # The trainer validated every snapshot already; only the L1 loss is computed here.
    validated = {
        h["step"]: {k.removeprefix("val_"): v for k, v in h.items() if k.startswith("val_")}
        for h in state.progress.history
        if "val_abs_rel" in h
    }
    for path in sorted(snaps.glob("step_*.safetensors")):
        step = int(path.stem.split("_")[1])
        if step == 0 or any(p["step"] == step for p in points):
            continue
        model, _ = _quiet_build(load_model, path, encoder_weights=None)
        metrics = validated.get(step)
        points.append(
            {"step": step, "l1": val_l1(model, loader), **metrics}
            if metrics is not None
            else {"step": step, **score(model, cfg, loader)}
        )
    train_loss = [(h["step"], h["loss"]) for h in state.progress.history if "loss" in h]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps = int(metrics["global_step"])
    return {
        "variant": variant.name,
        "overrides": variant.overrides,
        "val": points,
        "train_loss": train_loss,
        "steps": steps,
        "train_seconds": float(metrics["train_seconds"]),
        "images_per_s_with_val": steps
        * cfg.train.batch_size
        * cfg.train.accumulate_steps
        / max(float(metrics["train_seconds"]), 1e-9),
    }


def plot(curves: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Validation L1 / AbsRel / delta1 and training loss of every variant, one PNG."""
    import cv2

    from training.trainer.plots import line_chart

    def val(key: str) -> dict[str, tuple[list[float], list[float]]]:
        return {
            c["variant"]: ([p["step"] for p in c["val"]], [p[key] for p in c["val"]])
            for c in curves
        }

    size = (560, 340)
    charts = [
        line_chart(val("l1"), "validation L1 loss (m)", size),
        line_chart(val("abs_rel"), "validation AbsRel", size),
        line_chart(
            {
                c["variant"]: ([s for s, _ in c["train_loss"]], [v for _, v in c["train_loss"]])
                for c in curves
            },
            "training L1 loss (m, log)",
            size,
            log_y=True,
        ),
        line_chart(val("a1"), "validation delta1 (higher is better)", size),
    ]
    grid = np.vstack([np.hstack(charts[:2]), np.hstack(charts[2:])])
    if title:
        band = np.full((30, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(
            band, title, (10, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA
        )
        grid = np.vstack([band, grid])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m training.tools.transfer_study",
        description="Train recipe variants at one budget; score per-epoch snapshots; plot.",
    )
    p.add_argument("--config", required=True, help="recipe (path or name in training/configs)")
    p.add_argument("--out", required=True, type=Path, help="directory of the runs")
    p.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        required=True,
        help='"NAME=key=value,key=value" (--set overrides); repeat; "NAME=" as is',
    )
    p.add_argument("--plot", type=Path, default=None, help="write the curves PNG here")
    p.add_argument("--title", default="", help="line above the plot")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    args = build_parser().parse_args(argv)
    names = [v.name for v in args.variant]
    if len(set(names)) != len(names):
        raise SystemExit(f"transfer_study: variant names must differ, got {names}")
    bad = [n for n in names if not n.replace("_", "").replace("-", "").isalnum()]
    if bad:
        raise SystemExit(f"transfer_study: variant names become directories; bad: {bad}")
    curves_file = args.out / "curves.json"
    done = json.loads(curves_file.read_text()) if curves_file.is_file() else {}
    for v in args.variant:
        done[v.name] = run_variant(args.config, v, args.out)
        args.out.mkdir(parents=True, exist_ok=True)
        curves_file.write_text(json.dumps(done, indent=2) + "\n")
        last = done[v.name]["val"][-1]
        print(
            f"[transfer_study] {v.name}: step {last['step']} val L1 {last['l1']:.4f} "
            f"AbsRel {last['abs_rel']:.4f}",
            flush=True,
        )
    if args.plot is not None:
        plot([done[n] for n in names], args.plot, args.title)
        print(f"[transfer_study] wrote {args.plot}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
