"""Training objectives: what one optimiser step computes from a batch, per model family.

An objective turns ``(model, batch)`` into the model's outputs and a loss. The trainer knows no
model family: ``loss.name`` in a recipe selects a registered objective and ``loss.args`` (a
free-form mapping) configures it. Supervised objectives run ``model(data["image"])``;
self-supervised ones also use neighbouring frames, poses and training-only sub-networks kept as
attributes of the model (a pose network), which inference and export never touch.

Register one with::

    @register_objective("my_loss")
    def build(cfg: ExperimentConfig, model: nn.Module) -> Objective:
        return MyObjective(**cfg.loss.args)

Every public module of this package is imported on first use, so a new file here is all it
takes (files starting with ``_`` are skipped, which keeps work in progress out of the registry).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from depth_perception.checkpoint import unwrap_model

if TYPE_CHECKING:
    from training.config import ExperimentConfig

__all__ = [
    "Objective",
    "Terms",
    "build_objective",
    "objective_names",
    "register_objective",
    "unwrap",
]


@dataclass
class Terms:
    """A loss and its named parts.

    Attributes:
        total: Scalar to back-propagate.
        parts: ``name -> value`` of the detached parts, logged next to ``loss``.
    """

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Flat ``name -> value`` dict for TensorBoard and progress bars."""
        return {"loss": float(self.total.detach()), **self.parts}


class Objective(Protocol):
    """``objective(model, data) -> (outputs, terms)``; ``terms`` has ``total`` and ``scalars()``.

    ``data`` is the collated batch on the training device (see ``training.data.collate``);
    an objective whose ``needs_raw_images`` attribute is True also gets ``image_raw`` and
    ``neighbours_raw`` in [0, 1].
    """

    def __call__(self, model: nn.Module, data: dict[str, Any]) -> tuple[dict[str, Any], Any]: ...


ObjectiveBuilder = Callable[["ExperimentConfig", nn.Module], Objective]
_BUILDERS: dict[str, ObjectiveBuilder] = {}
_loaded = False


def register_objective(name: str) -> Callable[[ObjectiveBuilder], ObjectiveBuilder]:
    """Decorator registering ``builder(cfg, model) -> Objective`` under ``name``.

    Raises:
        ValueError: the name is taken.
    """

    def decorate(builder: ObjectiveBuilder) -> ObjectiveBuilder:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"objective {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def objective_names() -> tuple[str, ...]:
    """Names ``loss.name`` accepts."""
    _load_all()
    return tuple(sorted(_BUILDERS))


def build_objective(cfg: ExperimentConfig, model: nn.Module) -> Objective:
    """The objective ``cfg.loss.name`` selects, configured from ``cfg``.

    Raises:
        ValueError: unknown name (the message lists the registered ones) or bad arguments.
    """
    _load_all()
    builder = _BUILDERS.get(cfg.loss.name)
    if builder is None:
        raise ValueError(
            f"unknown loss.name {cfg.loss.name!r}; registered objectives: "
            f"{', '.join(objective_names())}"
        )
    return builder(cfg, model)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return unwrap_model(model)
