"""Resumable training state in ONE safetensors file: weights, optimiser, scheduler, RNG, progress.

Everything needed to continue a run after a crash lives in a single file written atomically
(temporary file + fsync + rename), so a run killed at any instant leaves either the previous
complete state or the new one, never a mix of weights from one step and optimiser moments from
another. Tensors (model weights, optimiser moments, RNG states) are safetensors entries; the
rest (step counters, learning rates, Python/NumPy RNG, metric history) is JSON in the
safetensors header. Nothing is unpickled when loading.

The self-describing model checkpoint ``last`` (``depth_perception.checkpoint``) is written
beside it for users; the state file stays the only source of truth for resuming.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_perception.checkpoint import _atomic_write, unwrap_model

STATE_FORMAT = 1
_META_KEY = "train_state"


@dataclass
class Progress:
    """Where a run stands; saved in the state file.

    Attributes:
        epoch: Current epoch, 0-based (== number of completed epochs).
        step_in_epoch: Optimiser steps already done in ``epoch``.
        global_step: Optimiser steps done in total.
        train_seconds: Training wall time so far, summed over resumes (for ``max_minutes``).
        best_value: Best validation value of ``train.best_metric`` so far.
        best_epoch: Epoch (1-based count of completed epochs) of ``best_value``.
        finished: The run completed (all epochs or the time budget).
        stop_reason: Why it finished (``epochs`` or ``time_budget``).
        history: Logged scalars: dicts with ``step``, ``epoch`` and values.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    best_value: float | None = None
    best_epoch: int | None = None
    finished: bool = False
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainState:
    """What :func:`load_train_state` returns."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    progress: Progress
    rng: dict[str, Any]
    extra: dict[str, Any]


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Current torch / CUDA / NumPy / Python RNG states as (tensors, JSON data)."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng/numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    data = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, data


def restore_rng(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only where the device count matches)."""
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"].to(torch.uint8))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])
    if "rng/numpy_keys" in tensors and "numpy" in data:
        kind, pos, has_gauss, cached = data["numpy"]
        keys = tensors["rng/numpy_keys"].numpy().astype(np.uint32)
        np.random.set_state((kind, keys, int(pos), int(has_gauss), float(cached)))
    if "python" in data:
        version, state, gauss = data["python"]
        random.setstate((version, tuple(state), gauss))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{pid}/{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, entries in data.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": data["param_groups"]}


def save_train_state(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: Progress,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write the complete training state to ``path`` (a ``.safetensors`` file).

    Args:
        path: Output file.
        model: The model (DDP / compile wrappers are removed).
        optimizer: Its optimiser.
        scheduler: A torch LR scheduler (anything with a JSON-serialisable ``state_dict``).
        progress: Counters and history.
        extra: JSON-serialisable additions (e.g. the resolved config).

    Returns:
        ``path``.
    """
    from safetensors.torch import save as save_safetensors

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {
        f"model/{k}": v for k, v in unwrap_model(model).state_dict().items()
    }
    optim_tensors, optim_data = _flatten_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    rng_tensors, rng_data = capture_rng()
    tensors.update(rng_tensors)
    # safetensors wants contiguous CPU tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    data = {
        "format": STATE_FORMAT,
        "optimizer": optim_data,
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "progress": asdict(progress),
        "rng": rng_data,
        "extra": dict(extra or {}),
    }
    try:
        header = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"training state is not JSON-serialisable: {exc}") from exc
    _atomic_write(path, save_safetensors(tensors, metadata={_META_KEY: header}))
    return path


def load_train_state(path: str | Path) -> TrainState:
    """Read a state written by :func:`save_train_state` (no pickle).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable training state (the message names it).
    """
    from safetensors.torch import load as load_safetensors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    blob = path.read_bytes()
    try:
        tensors = load_safetensors(blob)
        # The safetensors layout: 8-byte little-endian header size, then the JSON header.
        size = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + size]).get("__metadata__", {}).get(_META_KEY)
        if header is None:
            raise ValueError(f"no {_META_KEY!r} entry in the header")
        data = json.loads(header)
    except Exception as exc:  # safetensors raises its own types for damaged files
        raise ValueError(f"corrupt training state {path}: {exc}") from exc
    if data.get("format", 0) > STATE_FORMAT:
        raise ValueError(f"{path} was written by a newer version (format {data.get('format')})")
    progress_data = dict(data["progress"])
    known = set(Progress.__dataclass_fields__)
    progress = Progress(**{k: v for k, v in progress_data.items() if k in known})
    return TrainState(
        model={k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")},
        optimizer=_unflatten_optimizer(tensors, data["optimizer"]),
        scheduler=data.get("scheduler", {}),
        progress=progress,
        rng={
            "tensors": {k: v for k, v in tensors.items() if k.startswith("rng/")},
            "data": data.get("rng", {}),
        },
        extra=data.get("extra", {}),
    )
