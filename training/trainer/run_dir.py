"""The run directory and resuming a run where it stopped.

A run directory holds:

* ``config.yaml``: the resolved configuration (loadable as a recipe);
* ``last_state.safetensors``: weights + optimiser + scheduler + RNG + counters, written
  atomically every ``train.checkpoint_every_steps`` steps and every epoch; the only file used to
  resume (see ``training.trainer.state``);
* ``last``, ``best`` and ``final`` self-describing model checkpoints (``.safetensors`` +
  ``.json``, ``depth_perception.checkpoint``), loadable by the node and the exporter;
* ``tb/``: TensorBoard scalars and image panels (input, predicted depth, ground truth,
  segmentation); ``curves.png``: the training curves; ``metrics.json``: final validation.

Resuming: when the run directory has a state (or with ``--resume DIR``) training continues at
the saved step with the same data order. The sampler shuffles with a generator seeded by
``(seed, epoch)`` and skips the batches already done in the interrupted epoch; every sample's
augmentation is seeded by ``(seed, epoch, index)`` (``datasets.SeededAugmentation``); RNG
states are restored. A run killed at any instant therefore continues as if it had never
stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from training.config import ExperimentConfig, config_to_dict, save_config
from training.trainer.state import Progress, TrainState, load_train_state, restore_rng

STATE_FILE = "last_state.safetensors"
CONFIG_FILE = "config.yaml"


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


def make_loader(
    dataset: Dataset,
    cfg: ExperimentConfig,
    sampler: ResumableSampler | None,
    collate: Callable,
    epoch: int,
    shuffle: bool = False,
) -> DataLoader:
    """DataLoader over ``dataset`` whose worker seeds depend on ``(train.seed, epoch)`` only."""
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
        "random_scale",
        "aspect_sizes",
        "train_load_size",
        "object_paste",
        "pseudo_labels",
        "options",
    ),
    "train": ("batch_size", "seed", "accumulate_steps", "freeze"),
}


def check_resume_config(cfg: ExperimentConfig, saved: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume a run whose fixed entries (model, data, batch, seed) changed.

    Raises:
        ValueError: naming each changed entry, old and new value.
    """
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


def load_resumable_state(
    cfg: ExperimentConfig, run_dir: Path, *, resume: bool, restart: bool
) -> TrainState | None:
    """The state to continue from, or None for a fresh run.

    Raises:
        FileExistsError: the directory holds a run, ``resume`` is False and ``restart`` too.
        ValueError: the saved run's fixed entries differ from ``cfg`` (see
            :func:`check_resume_config`).
    """
    state_path = run_dir / STATE_FILE
    if not state_path.is_file() or restart:
        return None
    if not resume:
        raise FileExistsError(
            f"{run_dir} already holds a run ({STATE_FILE}); resume it, pass --restart to "
            "overwrite it, or choose another --run-dir"
        )
    state = load_train_state(state_path)
    check_resume_config(cfg, state.extra.get("config", {}), run_dir)
    return state


def restore_state(
    state: TrainState,
    cfg: ExperimentConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    steps_per_epoch: int,
) -> Progress:
    """Load weights, optimiser, scheduler and RNG from ``state``; returns its progress.

    Raises:
        ValueError: the saved run stopped inside an epoch longer than ``steps_per_epoch``.
    """
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
    if progress.step_in_epoch > steps_per_epoch:
        raise ValueError(
            f"the saved run is at step {progress.step_in_epoch} of an epoch but epochs now "
            f"have {steps_per_epoch} steps; keep train.steps_per_epoch as it was"
        )
    return progress


def prepare_run_dir(cfg: ExperimentConfig, run_dir: Path) -> None:
    """Create ``run_dir``, drop temporary files a crash left, write ``config.yaml``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):  # left by a write a crash interrupted
        stale.unlink(missing_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
