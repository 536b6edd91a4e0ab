"""What a run records about where its checkpoints come from (``checkpoint.Provenance``)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from depth_perception.checkpoint import DatasetRef, Provenance
from training.config import ExperimentConfig
from training.trainer.state import Progress

CREATED_BY = "depth-perception train"


def source_commit(where: str | Path | None = None) -> str:
    """``git describe --always --dirty`` of the training code, or ``""`` outside a git tree."""
    where = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def run_provenance(
    cfg: ExperimentConfig,
    progress: Progress,
    *,
    command: str = "",
    git_commit: str = "",
    metrics: Mapping[str, float] | None = None,
    stop_reason: str = "",
) -> Provenance:
    """The provenance of a checkpoint a run writes now: trained, at ``progress``'s step."""
    return Provenance(
        trained=True,
        recipe=cfg.name,
        datasets=(DatasetRef(cfg.data.dataset, cfg.data.family, cfg.data.train_split),),
        steps=progress.global_step,
        epoch=progress.epoch,
        train_seconds=round(progress.train_seconds, 1),
        stop_reason=stop_reason,
        metrics=dict(metrics or {}),
        parent=str(cfg.model.init_checkpoint or ""),
        created_by=CREATED_BY,
        command=command,
        git_commit=git_commit,
    )
