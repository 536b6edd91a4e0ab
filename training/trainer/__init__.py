"""The trainer: plain functions driven by an :class:`~training.config.ExperimentConfig`.

Where things are:

* ``loop``: :func:`train` (a recipe in a run directory), :func:`train_one_epoch`,
  :func:`validate`, :func:`train_stages` (multi-stage recipes);
* ``run_dir``: the run directory's files, resuming (state, config check, the data order that
  survives a restart);
* ``state``: the resumable state file (weights, optimiser, scheduler, RNG, progress);
* ``distributed``: torchrun set-up, seeding, batches to the device;
* ``optim``: optimiser, learning-rate schedule, frozen parameters;
* ``model``: the model and supervised loss a recipe trains;
* ``panels``, ``plots``: TensorBoard image panels and ``curves.png``;
* ``benchmark``: training throughput of a recipe.

The command line is ``training.tools.train`` (``depth-perception train``).
"""

from training.trainer.benchmark import benchmark
from training.trainer.distributed import DistInfo, init_distributed, seed_everything
from training.trainer.loop import (
    TrainContext,
    TrainResult,
    train,
    train_one_epoch,
    train_stages,
    validate,
)
from training.trainer.model import build_loss, build_training_model
from training.trainer.optim import build_optimizer, build_scheduler, freeze_parameters, lr_factor
from training.trainer.run_dir import CONFIG_FILE, STATE_FILE, ResumableSampler

__all__ = [
    "CONFIG_FILE",
    "STATE_FILE",
    "DistInfo",
    "ResumableSampler",
    "TrainContext",
    "TrainResult",
    "benchmark",
    "build_loss",
    "build_optimizer",
    "build_scheduler",
    "build_training_model",
    "freeze_parameters",
    "init_distributed",
    "lr_factor",
    "seed_everything",
    "train",
    "train_one_epoch",
    "train_stages",
    "validate",
]
