"""Training loop: plain functions driven by an :class:`~training.config.ExperimentConfig`.

``depth-perception train --config training/configs/<recipe>.yaml [--set k=v ...] [--run-dir D]``
calls :func:`main`, which calls :func:`train`; :func:`train_one_epoch` runs one epoch and
``training.evaluate.evaluate`` validates. Works for every registered model (the loss takes the
per-scale outputs where a model has them, see ``training.losses``).

A run directory holds:

* ``config.yaml``: the resolved configuration (loadable as a recipe);
* ``last_state.safetensors``: weights + optimiser + scheduler + RNG + counters, written
  atomically every ``train.checkpoint_every_steps`` steps and every epoch; the only file used to
  resume (see ``training.train_state``);
* ``last``, ``best`` and ``final`` self-describing model checkpoints (``.safetensors`` +
  ``.json``, ``depth_perception.checkpoint``), loadable by the node and the exporter;
* ``tb/``: TensorBoard scalars and image panels (input, predicted depth, ground truth,
  segmentation); ``curves.png``: the training curves; ``metrics.json``: final validation.

Resuming: when the run directory has a state (or with ``--resume DIR``) training continues at
the saved step with the same data order. The sampler shuffles with a generator seeded by
``(seed, epoch)`` and skips the batches already done in the interrupted epoch; every sample's
augmentation is seeded by ``(seed, epoch, index)`` (``datasets.SeededAugmentation``); RNG
states are restored. A run killed at any
instant therefore continues as if it had never stopped.

Multi-GPU: launch with ``torchrun --nproc_per_node N -m training.trainer --config ...``
(or the ``depth-perception`` entry point); with ``WORLD_SIZE > 1`` the process group is
initialised from the environment (NCCL on GPUs, gloo on CPU), each rank reads its shard through a
DistributedSampler, gradients are averaged by DistributedDataParallel and only rank 0 writes
files (the model is unwrapped before saving). ``train.batch_size`` is per process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from depth_perception.checkpoint import CheckpointMeta, load_model, save_checkpoint, unwrap_model
from depth_perception.models import build_model, get_model_info
from training.config import (
    ExperimentConfig,
    config_to_dict,
    load_config,
    save_config,
    stage_config,
)
from training.datasets import (
    SeededAugmentation,
    class_names_of,
    data_depth_range,
    make_collate,
    make_dataset,
    training_augmentations,
)
from training.evaluate import EvalResult, evaluate
from training.losses import MultiScaleDepthSegLoss, MultitaskLoss
from training.objectives import Objective, build_objective
from training.train_state import Progress, load_train_state, restore_rng, save_train_state

STATE_FILE = "last_state.safetensors"
CONFIG_FILE = "config.yaml"


# ---------------------------------------------------------------------------------------------
# distributed set-up and seeding


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> tuple[DistInfo, torch.device]:
    """Initialise torch.distributed from torchrun's env vars when ``WORLD_SIZE > 1``.

    Args:
        device: ``train.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        ``(DistInfo, device)``; under DDP on GPUs each rank gets ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={device!r} but CUDA is not available; use cpu or auto")
    if world <= 1:
        if not use_cuda:
            return DistInfo(), torch.device("cpu")
        return DistInfo(), torch.device("cuda" if device == "auto" else device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistInfo(rank, world, local_rank), torch_device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally demand deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------------------------------------
# data order that survives a restart


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can skip the samples already used in the current epoch.

    The order is a function of ``(seed, epoch)`` only (DistributedSampler's generator), so after
    a restart ``set_epoch(e)`` + ``set_skip(k)`` yields exactly the rest of the interrupted
    epoch. Also used for single-process runs (one replica).
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool, seed: int
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.skip = 0

    def set_skip(self, samples: int) -> None:
        """Leave out the first ``samples`` indices of this rank in the current epoch."""
        self.skip = max(0, int(samples))

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


# ---------------------------------------------------------------------------------------------
# building blocks


def build_training_model(
    cfg: ExperimentConfig, class_names: Sequence[str], depth_range: tuple[float, float] | None
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the configured model, filling ``num_classes`` and the depth range from the data.

    Returns:
        ``(model, model_args)``; ``model_args`` are what the checkpoint records.
    """
    info = get_model_info(cfg.model.name)
    defaults = info.default_args()
    args = dict(cfg.model.args)
    if "num_classes" in defaults and "num_classes" not in args:
        args["num_classes"] = len(class_names)
    if depth_range is not None:
        if "min_depth" in defaults and "min_depth" not in args:
            args["min_depth"] = float(depth_range[0])
        if "max_depth" in defaults and "max_depth" not in args:
            args["max_depth"] = float(depth_range[1])
    model = build_model(cfg.model.name, **args)
    n_classes = int(getattr(model, "num_classes", 0))
    if n_classes and class_names:
        if n_classes != len(class_names):
            raise ValueError(
                f"model.args.num_classes={n_classes} but the data set has {len(class_names)} "
                f"classes ({', '.join(class_names)}); drop model.args.num_classes or fix it"
            )
        model.class_names = tuple(class_names)
    if cfg.model.init_checkpoint:
        init, _ = load_model(cfg.model.init_checkpoint, **args)
        model.load_state_dict(init.state_dict(), strict=True)
    freeze_parameters(model, cfg.train.freeze)
    return model, args


def freeze_parameters(model: nn.Module, prefixes: Sequence[str]) -> int:
    """Stop training every parameter whose name starts with one of ``prefixes``.

    Returns:
        The number of frozen parameter tensors.

    Raises:
        ValueError: a prefix matches no parameter (a typo would otherwise train everything).
    """
    frozen = 0
    for prefix in prefixes:
        matched = [p for name, p in model.named_parameters() if name.startswith(prefix)]
        if not matched:
            top = sorted({name.split(".")[0] for name, _ in model.named_parameters()})
            raise ValueError(
                f"train.freeze: no parameter name starts with {prefix!r}; the model's "
                f"top-level modules are {', '.join(top)}"
            )
        for param in matched:
            param.requires_grad_(False)
        frozen += len(matched)
    return frozen


def build_optimizer(cfg: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over the model's trainable parameters.

    Frozen parameters (``requires_grad`` False) are left out. Parameters the model names in
    ``no_weight_decay_parameters()`` (e.g. paper b's learned task weights, which weight decay
    would pull towards 0) get their own group without weight decay.
    """
    base = unwrap_model(model)
    exempt = set(getattr(base, "no_weight_decay_parameters", lambda: ())())
    named = dict(base.named_parameters())
    unknown = sorted(exempt - set(named))
    if unknown:
        raise ValueError(f"no_weight_decay_parameters() names unknown parameters {unknown}")
    decay = [p for n, p in named.items() if p.requires_grad and n not in exempt]
    no_decay = [p for n, p in named.items() if p.requires_grad and n in exempt]
    if not decay and not no_decay:
        raise ValueError("every parameter is frozen: nothing to train (check train.freeze)")
    params: list[dict[str, Any]] = [{"params": decay}]
    if no_decay:
        params.append({"params": no_decay, "weight_decay": 0.0})
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def lr_factor(cfg: ExperimentConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``optim.lr`` at optimiser step ``step`` (0-based).

    ``exponential``: ``lr_decay ** epoch`` (paper d: 10 % less every epoch); ``cosine``: half
    cosine to 0 over all steps; ``poly``: ``(1 - step / all steps) ** poly_power`` (paper b);
    ``constant``: 1. A linear warm-up multiplies the first
    ``optim.warmup_steps`` steps.
    """
    o = cfg.optim
    epoch = step // max(1, steps_per_epoch)
    if o.scheduler == "exponential":
        factor = o.lr_decay**epoch
    elif o.scheduler == "cosine":
        total = max(1, cfg.train.epochs * steps_per_epoch)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif o.scheduler == "poly":
        total = max(1, cfg.train.epochs * steps_per_epoch)
        factor = (1.0 - min(step, total) / total) ** o.poly_power
    else:
        factor = 1.0
    if o.warmup_steps > 0 and step < o.warmup_steps:
        factor *= (step + 1) / o.warmup_steps
    return factor


def build_scheduler(
    cfg: ExperimentConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR of :func:`lr_factor` (its state is plain JSON: the step count)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch)
    )


def build_loss(cfg: ExperimentConfig, model: nn.Module) -> MultiScaleDepthSegLoss | MultitaskLoss:
    """The supervised loss of the ``multiscale`` / ``multitask`` objectives (for tools and tests).

    Raises:
        ValueError: ``loss.name`` is another objective (use ``training.objectives``).
    """
    objective = build_objective(cfg, model)
    loss = getattr(objective, "loss", None)
    if loss is None:
        raise ValueError(f"objective {cfg.loss.name!r} is not a plain supervised loss")
    return loss


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class TrainContext:
    """Everything the epoch loop needs (built by :func:`train`)."""

    cfg: ExperimentConfig
    run_dir: Path
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Objective
    device: torch.device
    dist: DistInfo
    progress: Progress
    steps_per_epoch: int
    meta: CheckpointMeta
    val_loader: DataLoader | None = None
    writer: Any = None
    palette: np.ndarray | None = None
    command: str = ""
    on_checkpoint: Callable[[Progress], None] | None = None
    show_progress: bool | None = None
    _clock: float = field(default_factory=time.monotonic)

    @property
    def base_model(self) -> nn.Module:
        return unwrap_model(self.model)

    def tick(self) -> float:
        """Add the wall time since the last tick to ``progress.train_seconds``."""
        now = time.monotonic()
        self.progress.train_seconds += now - self._clock
        self._clock = now
        return self.progress.train_seconds

    def over_budget(self) -> bool:
        """True once ``train.max_minutes`` is used up (agreed by all ranks)."""
        limit = self.cfg.train.max_minutes
        over = limit is not None and self.tick() >= limit * 60.0
        if self.dist.enabled:
            flag = torch.tensor([1.0 if over else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # rank clocks differ slightly
            over = bool(flag.item() > 0)
        return over


def _barrier(ctx: TrainContext) -> None:
    if ctx.dist.enabled:
        dist.barrier()


def _checkpoint_extra(ctx: TrainContext, **more: Any) -> dict[str, Any]:
    p = ctx.progress
    extra = {
        "trained": False,
        "recipe": ctx.cfg.name,
        "epoch": p.epoch,
        "global_step": p.global_step,
        "train_seconds": round(p.train_seconds, 1),
        "command": ctx.command,
        "dataset": {
            "name": ctx.cfg.data.dataset,
            "family": ctx.cfg.data.family,
            "train_split": ctx.cfg.data.train_split,
        },
    }
    extra.update(more)
    return extra


def save_last(ctx: TrainContext) -> None:
    """Write the resumable state, then the ``last`` model checkpoint (rank 0 only)."""
    ctx.tick()
    if ctx.dist.is_main:
        save_train_state(
            ctx.run_dir / STATE_FILE,
            ctx.model,
            ctx.optimizer,
            ctx.scheduler,
            ctx.progress,
            extra={"config": config_to_dict(ctx.cfg)},
        )
        ctx.meta.extra = _checkpoint_extra(ctx)
        save_checkpoint(ctx.run_dir / "last", ctx.model, ctx.meta)
        if ctx.on_checkpoint is not None:
            ctx.on_checkpoint(ctx.progress)
    _barrier(ctx)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    # Every tensor: image, depth, valid, labels, K and, for sequences, neighbours, poses and
    # the raw images of photometric losses (meta and skipped stay behind).
    return {
        k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)
    }


def _log_scalars(ctx: TrainContext, values: dict[str, float], prefix: str) -> None:
    if ctx.writer is None:
        return
    for key, value in values.items():
        if value is not None and math.isfinite(value):
            ctx.writer.add_scalar(f"{prefix}/{key}", value, ctx.progress.global_step)


def image_panel(
    ctx: TrainContext, batch: dict[str, Any], outputs: dict[str, Any] | None = None
) -> np.ndarray:
    """Panel of the first sample: input | predicted depth | ground truth | seg | seg truth."""
    from depth_perception.visualize import colorize_depth, colorize_labels, make_panel

    base = ctx.base_model
    image = batch["image"][:1].to(ctx.device)
    if outputs is None:
        was_training = base.training
        base.eval()
        with torch.no_grad():
            outputs = base(image)
        base.train(was_training)
    mean = torch.tensor(ctx.meta.mean).view(3, 1, 1)
    std = torch.tensor(ctx.meta.std).view(3, 1, 1)
    rgb = (batch["image"][0].detach().cpu() * std + mean).clamp(0, 1)
    rgb = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lo, hi = ctx.meta.min_depth, ctx.meta.max_depth
    pred = outputs["depth"][0, 0].detach().float().cpu().numpy()
    gt = batch["depth"][0, 0].detach().cpu().numpy()
    gt = np.where(batch["valid"][0, 0].cpu().numpy(), gt, 0.0)
    images = [
        rgb,
        colorize_depth(pred, lo, hi, log_scale=True),
        colorize_depth(gt, lo, hi, log_scale=True),
    ]
    names = ["input", "depth", "ground truth"]
    if "seg_logits" in outputs and ctx.palette is not None:
        seg = outputs["seg_logits"][0].detach().argmax(0).cpu().numpy().astype(np.uint8)
        labels = batch["labels"][0].detach().cpu().numpy().astype(np.uint8)
        images += [colorize_labels(seg, ctx.palette), colorize_labels(labels, ctx.palette)]
        names += ["segmentation", "labels"]
    return make_panel(images, names, height=rgb.shape[0])


def train_one_epoch(ctx: TrainContext, loader: DataLoader) -> bool:
    """Train for the rest of the current epoch (``ctx.progress`` says where it stands).

    Writes the ``last`` state every ``train.checkpoint_every_steps`` steps, logs scalars and
    image panels, and stops early when the time budget is used up.

    Returns:
        True when the epoch was completed, False when the time budget stopped it.

    Raises:
        FloatingPointError: the loss became NaN or infinite (nothing is saved for that step).
    """
    from tqdm import tqdm

    cfg, p = ctx.cfg, ctx.progress
    ctx.model.train()
    total = ctx.steps_per_epoch
    disable = (not ctx.dist.is_main) or (
        None if ctx.show_progress is None else not ctx.show_progress
    )
    bar = tqdm(
        total=total,
        initial=p.step_in_epoch,
        desc=f"epoch {p.epoch + 1}/{cfg.train.epochs}",
        disable=disable,
        dynamic_ncols=True,
    )
    window: list[float] = []
    samples_seen, t_window = 0, time.monotonic()
    accumulate = cfg.train.accumulate_steps
    micro_batches: list[dict[str, Any]] = []
    try:
        for batch in loader:
            if p.step_in_epoch >= total:
                break
            micro_batches.append(batch)
            if len(micro_batches) < accumulate:
                continue
            ctx.optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for number, micro in enumerate(micro_batches, start=1):
                data = _to_device(micro, ctx.device)
                # DDP: average gradients once per optimiser step, not per micro-batch.
                sync = number == accumulate or not ctx.dist.enabled
                with contextlib.nullcontext() if sync else ctx.model.no_sync():
                    _outputs, terms = ctx.loss_fn(ctx.model, data)
                    loss = terms.total
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"loss is {float(loss)} at step {p.global_step + 1}; lower "
                            "optim.lr or set optim.grad_clip_norm (the last checkpoint is "
                            "untouched)"
                        )
                    (loss / accumulate).backward()
                loss_sum += float(loss.detach())
                samples_seen += int(data["image"].shape[0]) * ctx.dist.world_size
            micro_batches = []
            grad_norm = None
            if cfg.optim.grad_clip_norm is not None:
                grad_norm = float(
                    torch.nn.utils.clip_grad_norm_(
                        ctx.model.parameters(), cfg.optim.grad_clip_norm
                    )
                )
            lr = float(ctx.optimizer.param_groups[0]["lr"])  # the rate this step used
            ctx.optimizer.step()
            ctx.scheduler.step()
            p.global_step += 1
            p.step_in_epoch += 1
            window.append(loss_sum / accumulate)
            bar.update(1)
            bar.set_postfix(loss=f"{window[-1]:.4f}", lr=f"{lr:.2e}")

            if p.global_step % cfg.train.log_every_steps == 0:
                scalars = terms.scalars()
                scalars["loss"] = float(np.mean(window))
                if ctx.dist.enabled:
                    t = torch.tensor(scalars["loss"], device=ctx.device)
                    dist.all_reduce(t)
                    scalars["loss"] = float(t) / ctx.dist.world_size
                now = time.monotonic()
                scalars["images_per_s"] = samples_seen / max(now - t_window, 1e-9)
                scalars["lr"] = lr
                if grad_norm is not None:
                    scalars["grad_norm"] = grad_norm
                samples_seen, t_window, window = 0, now, []
                _log_scalars(ctx, scalars, "train")
                p.history.append(
                    {
                        "step": p.global_step,
                        "epoch": p.epoch + p.step_in_epoch / total,
                        "loss": scalars["loss"],
                        "lr": scalars["lr"],
                    }
                )
            every = cfg.train.image_every_steps
            if ctx.writer is not None and every and p.global_step % every == 0:
                ctx.writer.add_image(
                    "train/panel", image_panel(ctx, batch), p.global_step, dataformats="HWC"
                )
            if p.step_in_epoch < total and p.global_step % cfg.train.checkpoint_every_steps == 0:
                save_last(ctx)
            if ctx.over_budget():
                return p.step_in_epoch >= total
    finally:
        bar.close()
    if p.step_in_epoch < total:
        raise RuntimeError(
            f"the data loader ended after {p.step_in_epoch} of {total} steps of epoch "
            f"{p.epoch + 1}; is the data set shorter than train.steps_per_epoch batches?"
        )
    return True


def validate(ctx: TrainContext) -> EvalResult | None:
    """Evaluate on the validation split (rank 0), log it and update ``best``."""
    if ctx.val_loader is None or not ctx.dist.is_main:
        _barrier(ctx)
        return None
    cfg = ctx.cfg
    e = cfg.eval
    result = evaluate(
        ctx.base_model,
        ctx.val_loader,
        device=ctx.device,
        num_classes=len(ctx.meta.class_names),
        metric=ctx.meta.metric,
        min_depth=e.min_depth,
        max_depth=e.max_depth if e.max_depth is not None else ctx.meta.max_depth,
        crop=e.crop,
        median_scaling=e.median_scaling,
        mae_bin_size=e.mae_bin_size,
        max_batches=cfg.train.val_batches,
        desc="validate",
        show_progress=ctx.show_progress,
    )
    scalars = result.scalars()
    _log_scalars(ctx, scalars, "val")
    p = ctx.progress
    p.history.append(
        {
            "step": p.global_step,
            "epoch": float(p.epoch),
            **{f"val_{k}": v for k, v in scalars.items()},
        }
    )
    if ctx.writer is not None:
        batch = next(iter(ctx.val_loader))
        ctx.writer.add_image(
            "val/panel", image_panel(ctx, batch), p.global_step, dataformats="HWC"
        )
    key = cfg.train.best_metric
    value = scalars.get(key)
    if value is None:
        raise ValueError(f"train.best_metric {key!r} is not one of {sorted(scalars)}")
    if p.best_value is None or value < p.best_value:
        p.best_value, p.best_epoch = float(value), p.epoch
        ctx.meta.extra = _checkpoint_extra(ctx, metrics=scalars)
        save_checkpoint(ctx.run_dir / "best", ctx.model, ctx.meta)
    _barrier(ctx)
    return result


def _make_loader(
    dataset: Dataset,
    cfg: ExperimentConfig,
    sampler: ResumableSampler | None,
    collate: Callable,
    epoch: int,
    shuffle: bool = False,
) -> DataLoader:
    # The workers' base seed comes from this generator: a function of (seed, epoch) only.
    generator = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        drop_last=sampler is not None,
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        generator=generator,
    )


# Entries a resumed run must keep: they decide the weights' shapes, the training data and
# its order. Everything else (epochs, lr, logging, validation, workers) may change on resume.
_FIXED_ON_RESUME: dict[str, tuple[str, ...]] = {
    "model": ("name", "args", "init_checkpoint"),
    "data": (
        "dataset",
        "family",
        "root",
        "width",
        "height",
        "train_split",
        "train_length",
        "augment",
        "random_crop",
        "pseudo_labels",
        "options",
    ),
    "train": ("batch_size", "seed", "accumulate_steps", "freeze"),
}


def _check_resume_config(cfg: ExperimentConfig, saved: dict[str, Any], run_dir: Path) -> None:
    now = config_to_dict(cfg)
    # A key the saved run does not have (written before the key existed) had its default.
    defaults = config_to_dict(ExperimentConfig())
    for section, keys in _FIXED_ON_RESUME.items():
        before = {**defaults[section], **saved.get(section, {})}
        changed = [
            f"{section}.{k}: {before[k]!r} -> {now[section][k]!r}"
            for k in keys
            if before[k] != now[section][k]
        ]
        if changed:
            raise ValueError(
                f"{run_dir} holds a run with a different {section!r} section "
                f"({'; '.join(changed)}); use another --run-dir or --restart"
            )


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    progress: Progress
    metrics: dict[str, float] = field(default_factory=dict)
    final_checkpoint: Path | None = None


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    restart: bool = False,
    command: str = "",
    on_checkpoint: Callable[[Progress], None] | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train (or continue training) ``cfg`` in ``run_dir``.

    Args:
        cfg: The resolved configuration.
        run_dir: Output directory; its ``last_state.safetensors`` is resumed from if present.
        resume: Continue from an existing state (False with an existing state is an error
            unless ``restart``).
        restart: Ignore and overwrite an existing state.
        command: The command line, recorded in the checkpoints.
        on_checkpoint: Called (rank 0) after each ``last`` checkpoint is written.
        show_progress: tqdm bars (None: only on a terminal).

    Returns:
        The run directory, final progress and validation metrics.
    """
    cfg.validate()
    run_dir = Path(run_dir)
    if cfg.stages:
        return train_stages(
            cfg,
            run_dir,
            resume=resume,
            restart=restart,
            command=command,
            on_checkpoint=on_checkpoint,
            show_progress=show_progress,
        )
    dinfo, device = init_distributed(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed, cfg.train.deterministic)

    state_path = run_dir / STATE_FILE
    state = None
    if state_path.is_file() and not restart:
        if not resume:
            raise FileExistsError(
                f"{run_dir} already holds a run ({STATE_FILE}); resume it, pass --restart to "
                "overwrite it, or choose another --run-dir"
            )
        state = load_train_state(state_path)
        saved_cfg = state.extra.get("config", {})
        _check_resume_config(cfg, saved_cfg, run_dir)

    # data
    train_set = make_dataset(cfg.data, cfg.data.train_split, length=cfg.data.train_length)
    class_names = class_names_of(train_set)
    train_set = SeededAugmentation(train_set, training_augmentations(cfg.data), cfg.train.seed)
    val_set = None
    if cfg.data.val_split:
        val_set = make_dataset(cfg.data, cfg.data.val_split, length=cfg.data.val_length)

    # model, loss, optimiser
    model, model_args = build_training_model(cfg, class_names, data_depth_range(cfg.data))
    model.to(device)
    meta = CheckpointMeta.for_model(
        cfg.model.name,
        model,
        model_args,
        input_size=(cfg.data.width, cfg.data.height),
        class_names=list(class_names) if getattr(model, "num_classes", 0) else [],
    )
    loss_fn = build_objective(cfg, model)
    collate = make_collate(meta.mean, meta.std, getattr(loss_fn, "needs_raw_images", False))
    sampler = ResumableSampler(
        train_set, dinfo.world_size, dinfo.rank, shuffle=True, seed=cfg.train.seed
    )
    samples_per_step = cfg.train.batch_size * cfg.train.accumulate_steps
    batches_per_epoch = len(sampler) // samples_per_step
    steps = cfg.train.steps_per_epoch or batches_per_epoch
    if steps > batches_per_epoch or batches_per_epoch == 0:
        raise ValueError(
            f"train.steps_per_epoch={steps} but the training set gives {batches_per_epoch} "
            f"steps of {cfg.train.batch_size} x {cfg.train.accumulate_steps} samples per "
            "process; raise data.train_length or lower the steps / batch size"
        )
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, steps)
    progress = Progress()
    if state is not None:
        model.load_state_dict(state.model, strict=True)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        progress = state.progress
        restore_rng(state.rng["tensors"], state.rng["data"])
        budget = cfg.train.max_minutes
        more_time = budget is None or progress.train_seconds < budget * 60.0
        if progress.finished and progress.epoch < cfg.train.epochs and more_time:
            # Resumed with more epochs or a larger time budget: extend the finished run.
            progress.finished, progress.stop_reason = False, ""
        # Counters of an interrupted epoch refer to the old epoch length only if unchanged.
        if progress.step_in_epoch > steps:
            raise ValueError(
                f"the saved run is at step {progress.step_in_epoch} of an epoch but epochs now "
                f"have {steps} steps; keep train.steps_per_epoch as it was"
            )

    ddp_model: nn.Module = model
    if dinfo.enabled:
        # Depthwise conv weights (C, 1, 3, 3) have arbitrary strides on their size-1 dim, which
        # DDP reports on every step although the layout of a size-1 dim does not matter.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    writer = None
    palette = None
    if dinfo.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.tmp"):  # left by a write a crash interrupted
            stale.unlink(missing_ok=True)
        save_config(cfg, run_dir / CONFIG_FILE)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after its last checkpoint.
        writer = SummaryWriter(
            str(run_dir / "tb"), purge_step=progress.global_step if state is not None else None
        )
        if meta.class_names:
            from depth_perception.runtime import palette_for

            palette = palette_for(tuple(meta.class_names))
    val_loader = None
    if val_set is not None and dinfo.is_main:
        val_loader = _make_loader(val_set, cfg, None, collate, 0)

    ctx = TrainContext(
        cfg=cfg,
        run_dir=run_dir,
        model=ddp_model,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=loss_fn,
        device=device,
        dist=dinfo,
        progress=progress,
        steps_per_epoch=steps,
        meta=meta,
        val_loader=val_loader,
        writer=writer,
        palette=palette,
        command=command,
        on_checkpoint=on_checkpoint,
        show_progress=show_progress,
    )
    if dinfo.is_main:
        where = f"resuming at step {progress.global_step}" if state is not None else "starting"
        print(
            f"[train] {cfg.name}: {cfg.model.name} on {cfg.data.dataset}/{cfg.data.family} "
            f"{cfg.data.width}x{cfg.data.height}, {cfg.train.epochs} epochs x {steps} steps, "
            f"batch {cfg.train.batch_size} x {dinfo.world_size}, device {device}; {where}; "
            f"run dir {run_dir}",
            flush=True,
        )

    last_result: EvalResult | None = None
    try:
        if state is not None:
            save_last(ctx)  # re-pair the `last` checkpoint with the state after a crash
        while not progress.finished and progress.epoch < cfg.train.epochs:
            train_set.set_epoch(progress.epoch)
            sampler.set_epoch(progress.epoch)
            sampler.set_skip(progress.step_in_epoch * samples_per_step)
            loader = _make_loader(train_set, cfg, sampler, collate, progress.epoch)
            completed = train_one_epoch(ctx, loader)
            if completed:
                progress.epoch += 1
                progress.step_in_epoch = 0
            last_epoch = progress.epoch >= cfg.train.epochs
            if not completed or (not last_epoch and ctx.over_budget()):
                progress.finished, progress.stop_reason = True, "time_budget"
            elif last_epoch:
                progress.finished, progress.stop_reason = True, "epochs"
            if progress.finished or progress.epoch % cfg.train.eval_every_epochs == 0:
                last_result = validate(ctx)
            save_last(ctx)
        if progress.epoch >= cfg.train.epochs and not progress.finished:
            progress.finished, progress.stop_reason = True, "epochs"
            save_last(ctx)
        return _finish(ctx, last_result)
    finally:
        if writer is not None:
            writer.close()


def train_stages(
    cfg: ExperimentConfig, run_dir: Path, *, restart: bool, **kwargs: Any
) -> TrainResult:
    """Run the stages of a multi-stage recipe one after the other (one command).

    Stage ``k`` trains :func:`training.config.stage_config` of ``cfg`` in
    ``<run_dir>/<stage name>``, starting from the previous stage's ``final`` weights. A stage
    whose directory already holds ``final`` and ``metrics.json`` is skipped; an interrupted
    stage resumes from its own state. The last stage's ``final`` checkpoint and
    ``metrics.json`` are copied to ``run_dir``, so tools find the result where a single-stage
    run puts it.
    """
    import shutil

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    previous: Path | None = None
    result: TrainResult | None = None
    for index, stage in enumerate(cfg.stages):
        stage_cfg = stage_config(cfg, index)
        if previous is not None:
            stage_cfg.model.init_checkpoint = str(previous)
        stage_dir = run_dir / stage.name
        final = stage_dir / "final.safetensors"
        where = f"[train] stage {index + 1}/{len(cfg.stages)} {stage.name!r}"
        if not restart and final.is_file() and (stage_dir / "metrics.json").is_file():
            print(f"{where}: already finished, skipped", flush=True)
            previous = final
            continue
        print(f"{where} in {stage_dir}", flush=True)
        result = train(stage_cfg, stage_dir, restart=restart, **kwargs)
        if not result.progress.finished or result.final_checkpoint is None:
            return result
        previous = result.final_checkpoint
    if previous is None:  # unreachable: train() only calls this with stages
        raise RuntimeError("no stage ran")
    last_dir = previous.parent
    for name in ("final.safetensors", "final.json", "metrics.json"):
        shutil.copy2(last_dir / name, run_dir / name)
    if result is None:  # every stage was already done
        saved = json.loads((run_dir / "metrics.json").read_text())
        progress = Progress(finished=True, stop_reason=saved.get("stop_reason", ""))
        return TrainResult(
            run_dir, progress, saved.get("metrics", {}), run_dir / "final.safetensors"
        )
    return TrainResult(run_dir, result.progress, result.metrics, run_dir / "final.safetensors")


def _finish(ctx: TrainContext, result: EvalResult | None) -> TrainResult:
    """Write ``final``, ``metrics.json`` and ``curves.png`` (rank 0)."""
    metrics: dict[str, float] = {}
    if result is None and ctx.val_loader is not None and ctx.dist.is_main:
        final_file = ctx.run_dir / "metrics.json"
        if final_file.is_file():  # finished earlier; nothing left to do
            metrics = json.loads(final_file.read_text()).get("metrics", {})
        else:
            result = validate(ctx)
    if result is not None:
        metrics = result.scalars()
    final = None
    if ctx.dist.is_main:
        ctx.meta.extra = _checkpoint_extra(
            ctx, metrics=metrics, stop_reason=ctx.progress.stop_reason
        )
        final = save_checkpoint(ctx.run_dir / "final", ctx.model, ctx.meta)
        payload = {
            "metrics": metrics,
            "global_step": ctx.progress.global_step,
            "epoch": ctx.progress.epoch,
            "stop_reason": ctx.progress.stop_reason,
            "train_seconds": ctx.progress.train_seconds,
        }
        if result is not None:
            payload.update(result.to_dict())
        (ctx.run_dir / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
        from training.plots import save_training_curves

        save_training_curves(ctx.progress.history, ctx.run_dir / "curves.png")
        print(
            f"[train] done ({ctx.progress.stop_reason}) at step {ctx.progress.global_step}; "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            flush=True,
        )
    _barrier(ctx)
    return TrainResult(ctx.run_dir, ctx.progress, metrics, final)


def benchmark(cfg: ExperimentConfig, seconds: float = 30.0, warmup_steps: int = 2) -> dict:
    """Measure training throughput of a recipe (real data pipeline, nothing written).

    Runs optimiser steps for ``seconds`` after ``warmup_steps`` and splits the time into
    waiting for data and computing (forward + loss + backward + step).

    Returns:
        ``images_per_s``, ``compute_images_per_s``, ``data_wait_fraction``, ``steps``,
        ``seconds``, ``threads``, ``device``.
    """
    cfg.validate()
    _, device = init_distributed(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    dataset = make_dataset(cfg.data, cfg.data.train_split, length=cfg.data.train_length)
    class_names = class_names_of(dataset)
    dataset = SeededAugmentation(dataset, training_augmentations(cfg.data), cfg.train.seed)
    model, _ = build_training_model(cfg, class_names, data_depth_range(cfg.data))
    model.to(device).train()
    info = get_model_info(cfg.model.name)
    sampler = ResumableSampler(dataset, 1, 0, shuffle=True, seed=cfg.train.seed)
    loss_fn = build_objective(cfg, model)
    raw = getattr(loss_fn, "needs_raw_images", False)
    loader = _make_loader(dataset, cfg, sampler, make_collate(info.mean, info.std, raw), 0)
    optimizer = build_optimizer(cfg, model)
    steps, images, data_wait, compute = 0, 0, 0.0, 0.0
    start = None
    t = time.perf_counter()
    for batch in loader:
        t_data = time.perf_counter()
        data = _to_device(batch, device)
        _, terms = loss_fn(model, data)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_done = time.perf_counter()
        steps += 1
        if steps == warmup_steps:
            start = t_done
        elif start is not None:
            images += int(data["image"].shape[0])
            data_wait += t_data - t
            compute += t_done - t_data
            if t_done - start >= seconds:
                break
        t = time.perf_counter()
    if start is None or images == 0:
        raise ValueError("the data set is too short for the benchmark; raise data.train_length")
    total = data_wait + compute
    return {
        "images_per_s": images / total,
        "compute_images_per_s": images / compute,
        "data_wait_fraction": data_wait / total,
        "steps": steps - warmup_steps,
        "seconds": total,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "input": f"{cfg.data.width}x{cfg.data.height}",
        "batch_size": cfg.train.batch_size,
    }


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception train``: train a recipe, resuming its run directory if it has one."""
    from training.cli_args import add_train_arguments

    argv = None
    if not isinstance(args, argparse.Namespace):
        argv = list(sys.argv[1:] if args is None else args)
        parser = argparse.ArgumentParser(prog="depth-perception train", description=main.__doc__)
        add_train_arguments(parser)
        args = parser.parse_args(argv)
    config_path = args.config
    run_dir = args.run_dir
    if args.resume is not None:
        run_dir = run_dir or args.resume
        if config_path is None:
            config_path = str(Path(args.resume) / CONFIG_FILE)
    if config_path is None:
        raise SystemExit("depth-perception train: --config (or --resume DIR) is required")
    cfg = load_config(config_path, args.set or [])
    if args.benchmark:
        figures = benchmark(cfg, args.benchmark)
        print(
            f"[benchmark] {cfg.model.name} {figures['input']} batch {figures['batch_size']} on "
            f"{figures['device']} ({figures['threads']} threads), {figures['steps']} steps in "
            f"{figures['seconds']:.1f} s: {figures['images_per_s']:.2f} images/s "
            f"(compute only {figures['compute_images_per_s']:.2f} images/s, waiting for data "
            f"{100 * figures['data_wait_fraction']:.0f} % of the time)"
        )
        return 0
    if run_dir is None:
        run_dir = str(Path("runs") / cfg.name)
    if argv is None:
        # The depth-perception CLI stores its argv (["train", ...]) on the namespace.
        argv = list(getattr(args, "argv", None) or sys.argv[1:])[1:]
    command = "depth-perception train " + " ".join(shlex.quote(a) for a in argv)
    try:
        result = train(
            cfg,
            run_dir,
            resume=True,
            restart=args.restart,
            command=command,
            show_progress=False if args.no_progress else None,
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result.progress.finished:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
