"""Training throughput of a recipe: images per second, split into data wait and compute.

``depth-perception train --config <recipe> --benchmark SECONDS`` prints it; nothing is written.
"""

from __future__ import annotations

import time

import torch

from depth_perception.models import get_model_info
from training.config import ExperimentConfig
from training.data import (
    SeededAugmentation,
    class_names_of,
    data_depth_range,
    make_collate,
    make_dataset,
    training_augmentations,
)
from training.objectives import build_objective
from training.trainer.distributed import init_distributed, seed_everything, to_device
from training.trainer.model import build_training_model
from training.trainer.optim import build_optimizer
from training.trainer.run_dir import ResumableSampler, make_loader


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
    loader = make_loader(dataset, cfg, sampler, make_collate(info.mean, info.std, raw), 0)
    optimizer = build_optimizer(cfg, model)
    steps, images, data_wait, compute = 0, 0, 0.0, 0.0
    start = None
    t = time.perf_counter()
    for batch in loader:
        t_data = time.perf_counter()
        data = to_device(batch, device)
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
