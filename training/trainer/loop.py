"""The training loop: :func:`train` a recipe in a run directory, epoch by epoch.

:func:`train` builds the data, model, objective, optimiser and schedule of an
:class:`~training.config.ExperimentConfig`, resumes the run directory's state if it has one
(``training.trainer.run_dir``), then alternates :func:`train_one_epoch` and :func:`validate`
(``training.evaluation.evaluate``) until the epochs or the time budget are used up, writing the
``last``, ``best`` and ``final`` checkpoints. Multi-stage recipes run as :func:`train_stages`.
Works for every registered model: ``loss.name`` selects the objective (``training.objectives``).

Multi-GPU: with ``WORLD_SIZE > 1`` (torchrun) each rank reads its shard through the sampler,
gradients are averaged by DistributedDataParallel and only rank 0 writes files (the model is
unwrapped before saving); ``train.batch_size`` is per process (``training.trainer.distributed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from depth_perception.checkpoint import (
    CheckpointMeta,
    Provenance,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from training.config import ExperimentConfig, config_to_dict, save_config, stage_config
from training.data import (
    BatchAspect,
    ObjectPaste,
    SeededAugmentation,
    class_names_of,
    data_depth_range,
    make_collate,
    make_dataset,
    thing_class_ids,
    training_augmentations,
)
from training.evaluation import EvalResult, evaluate
from training.objectives import Objective, build_objective
from training.trainer.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    seed_everything,
    to_device,
)
from training.trainer.model import build_training_model
from training.trainer.optim import build_optimizer, build_scheduler
from training.trainer.panels import class_palette, image_panel
from training.trainer.provenance import run_provenance, source_commit
from training.trainer.run_dir import (
    CONFIG_FILE,
    STATE_FILE,
    ResumableSampler,
    load_resumable_state,
    make_loader,
    prepare_run_dir,
    restore_state,
)
from training.trainer.state import Progress, save_train_state


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
    git_commit: str = ""
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


def _provenance(ctx: TrainContext, **more: Any) -> Provenance:
    return run_provenance(
        ctx.cfg, ctx.progress, command=ctx.command, git_commit=ctx.git_commit, **more
    )


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
        ctx.meta.provenance = _provenance(ctx)
        save_checkpoint(ctx.run_dir / "last", ctx.model, ctx.meta)
        if ctx.on_checkpoint is not None:
            ctx.on_checkpoint(ctx.progress)
    barrier(ctx.dist)


def _log_scalars(ctx: TrainContext, values: dict[str, float], prefix: str) -> None:
    if ctx.writer is None:
        return
    for key, value in values.items():
        if value is not None and math.isfinite(value):
            ctx.writer.add_scalar(f"{prefix}/{key}", value, ctx.progress.global_step)


def training_split(cfg: ExperimentConfig) -> Any:
    """The un-augmented training split, at ``data.train_load_size`` where one is set."""
    data = cfg.data
    if data.train_load_size:
        width, height = data.train_load_size
        data = dataclasses.replace(data, width=width, height=height)
    return make_dataset(data, cfg.data.train_split, length=cfg.data.train_length)


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
                data = to_device(micro, ctx.device)
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
                    "train/panel",
                    image_panel(ctx.base_model, batch, ctx.meta, ctx.palette, ctx.device),
                    p.global_step,
                    dataformats="HWC",
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
        barrier(ctx.dist)
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
            "val/panel",
            image_panel(ctx.base_model, batch, ctx.meta, ctx.palette, ctx.device),
            p.global_step,
            dataformats="HWC",
        )
    key = cfg.train.best_metric
    value = scalars.get(key)
    if value is None:
        raise ValueError(f"train.best_metric {key!r} is not one of {sorted(scalars)}")
    if p.best_value is None or value < p.best_value:
        p.best_value, p.best_epoch = float(value), p.epoch
        ctx.meta.provenance = _provenance(ctx, metrics=scalars)
        save_checkpoint(ctx.run_dir / "best", ctx.model, ctx.meta)
    barrier(ctx.dist)
    return result


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

    state = load_resumable_state(cfg, run_dir, resume=resume, restart=restart)

    # data
    train_set = training_split(cfg)
    class_names = class_names_of(train_set)
    train_set = SeededAugmentation(train_set, training_augmentations(cfg.data), cfg.train.seed)
    val_set = None
    if cfg.data.val_split:
        val_set = make_dataset(cfg.data, cfg.data.val_split, length=cfg.data.val_length)

    # model, loss, optimiser
    model, model_args = build_training_model(cfg, class_names, data_depth_range(cfg.data))
    model.to(device)
    if not class_names and getattr(model, "num_classes", 0) and cfg.model.init_checkpoint:
        # Data without labels (a bag, self-supervised) fine-tunes depth only: the
        # segmentation head keeps the starting checkpoint's classes, so the names come from it.
        class_names = tuple(load_checkpoint(cfg.model.init_checkpoint)[0].class_names)
    meta = CheckpointMeta.for_model(
        cfg.model.name,
        model,
        model_args,
        input_size=(cfg.data.width, cfg.data.height),
        class_names=list(class_names) if getattr(model, "num_classes", 0) else [],
    )
    loss_fn = build_objective(cfg, model)
    collate = make_collate(meta.mean, meta.std, getattr(loss_fn, "needs_raw_images", False))
    train_collate = collate
    if cfg.data.object_paste:
        things = thing_class_ids(class_names)
        if not things:
            raise ValueError(
                f"data.object_paste needs a data set with object classes; {cfg.data.dataset} "
                f"has {list(class_names) or 'no labels'}"
            )
        # Inside BatchAspect: the frames of a batch have one size when the paste sees them.
        train_collate = ObjectPaste(collate, things, cfg.data.object_paste, cfg.train.seed)
    if cfg.data.aspect_sizes:
        multiple = int(getattr(model, "input_multiple", 1))
        odd = [size for size in cfg.data.aspect_sizes if size[0] % multiple or size[1] % multiple]
        if odd:
            raise ValueError(
                f"data.aspect_sizes {odd} are not multiples of {cfg.model.name}'s input "
                f"multiple {multiple}"
            )
        train_collate = BatchAspect(train_collate, cfg.data.aspect_sizes, cfg.train.seed)
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
        progress = restore_state(state, cfg, model, optimizer, scheduler, steps)

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
        prepare_run_dir(cfg, run_dir)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after its last checkpoint.
        writer = SummaryWriter(
            str(run_dir / "tb"), purge_step=progress.global_step if state is not None else None
        )
        palette = class_palette(meta.class_names)
    val_loader = None
    if val_set is not None and dinfo.is_main:
        val_loader = make_loader(val_set, cfg, None, collate, 0)

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
        git_commit=source_commit() if dinfo.is_main else "",
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
            loader = make_loader(train_set, cfg, sampler, train_collate, progress.epoch)
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
        ctx.meta.provenance = _provenance(
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
        from training.trainer.plots import save_training_curves

        save_training_curves(ctx.progress.history, ctx.run_dir / "curves.png")
        print(
            f"[train] done ({ctx.progress.stop_reason}) at step {ctx.progress.global_step}; "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            flush=True,
        )
    barrier(ctx.dist)
    return TrainResult(ctx.run_dir, ctx.progress, metrics, final)
