"""Optimiser and learning-rate schedule of a recipe, and which parameters they train."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from depth_perception.checkpoint import unwrap_model
from training.config import ExperimentConfig


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
