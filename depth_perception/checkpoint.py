"""Self-describing checkpoints: ``<name>.safetensors`` (weights) + ``<name>.json`` (metadata).

The metadata names the registry model and its arguments, the input size, normalisation, class
names and depth range, so the node and the exporter rebuild the model from the checkpoint alone
instead of repeating these in YAML. Weights are stored with safetensors (never pickle). Both files
are written atomically (temporary file in the same directory, fsync, ``os.replace``) and the JSON
records the SHA-256 of the weights file, so a reader never pairs weights with the wrong metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depth_perception.models import build_model, get_model_info

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
# Keys the JSON file holds besides the CheckpointMeta fields.
_FILE_KEYS = ("weights_file", "weights_sha256")


@dataclass
class CheckpointMeta:
    """Everything needed to rebuild and run a model, stored beside its weights.

    Attributes:
        model: Registry name (``depth_perception.models.list_models()``).
        model_args: Keyword arguments for ``build_model`` (JSON-serialisable).
        input_width: Width the model was trained at (multiple of its ``input_multiple``).
        input_height: Height the model was trained at.
        mean: Per-channel RGB normalisation mean for images scaled to [0, 1].
        std: Per-channel RGB normalisation std.
        class_names: Segmentation class names; empty for depth-only models.
        min_depth: Smallest depth (metres) the model was trained on.
        max_depth: Largest depth (metres) the model was trained on.
        metric: True when the output depth is in metres, False when only up to scale.
        format_version: Version of this file format.
        extra: Free-form provenance: epoch, metrics, the command that produced the file.
    """

    model: str
    model_args: dict[str, Any]
    input_width: int
    input_height: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    min_depth: float
    max_depth: float
    metric: bool
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.class_names = [str(c) for c in self.class_names]
        self.model_args = dict(self.model_args)
        self.extra = dict(self.extra)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")
        if int(self.input_width) <= 0 or int(self.input_height) <= 0:
            raise ValueError(
                f"input size must be positive, got {self.input_width}x{self.input_height}"
            )
        self.input_width, self.input_height = int(self.input_width), int(self.input_height)
        if not (0 <= self.min_depth < self.max_depth) or math.isnan(self.max_depth):
            raise ValueError(
                f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}"
            )

    @classmethod
    def for_model(
        cls,
        name: str,
        model: nn.Module,
        model_args: dict[str, Any] | None = None,
        *,
        input_size: tuple[int, int] | None = None,
        class_names: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CheckpointMeta:
        """Metadata for ``model`` built as ``build_model(name, **model_args)``.

        Normalisation, metric flag and default input size come from the registry; class names
        and depth range from the model's contract attributes unless given.
        """
        info = get_model_info(name)
        width, height = input_size if input_size is not None else info.default_input_size
        names = class_names if class_names is not None else list(getattr(model, "class_names", ()))
        return cls(
            model=name,
            model_args=dict(model_args or {}),
            input_width=width,
            input_height=height,
            mean=list(info.mean),
            std=list(info.std),
            class_names=names,
            min_depth=float(getattr(model, "min_depth", 0.0)),
            max_depth=float(getattr(model, "max_depth", math.inf)),
            metric=info.metric,
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable when ``model_args`` and ``extra`` are)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        """Inverse of :meth:`to_dict`; ValueError on missing/unknown keys or a newer format."""
        if not isinstance(data, dict):
            raise ValueError(f"checkpoint metadata must be a JSON object, got {type(data)}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(
                f"checkpoint metadata: missing keys {missing}, unknown keys {unknown}"
            )
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"checkpoint format_version {version!r} is newer than this code supports "
                f"({FORMAT_VERSION}); update depth_perception"
            )
        return cls(**data)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, metadata)`` paths for a stem or either file of a checkpoint."""
    path = Path(path)
    if path.suffix in (WEIGHTS_SUFFIX, META_SUFFIX):
        path = path.with_suffix("")
    return path.with_name(path.name + WEIGHTS_SUFFIX), path.with_name(path.name + META_SUFFIX)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP/DataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _atomic_write(path: Path, data: bytes) -> None:
    # Temp file in the same directory so os.replace is a rename on one file system: readers see
    # the old file or the complete new one, never a partial write.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; checkpoints are read by other users (e.g. a ROS service).
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename durable; not supported on every platform/file system
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(path: str | Path, model: nn.Module, metadata: CheckpointMeta) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` atomically.

    Args:
        path: A stem (``runs/best`` -> ``runs/best.safetensors`` + ``runs/best.json``; a
            ``.safetensors``/``.json`` suffix is dropped) or an existing directory (files named
            after ``metadata.model``).
        model: The model; DDP/compile wrappers are removed first.
        metadata: Its description.

    Returns:
        Path of the weights file.
    """
    from safetensors.torch import save as save_safetensors

    path = Path(path)
    if path.is_dir():
        path = path / metadata.model
    weights_path, meta_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)

    state = unwrap_model(model).state_dict()
    # safetensors needs contiguous CPU tensors that do not share memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    blob = save_safetensors(tensors, metadata={"format": "pt"})
    meta = metadata.to_dict()
    meta["weights_file"] = weights_path.name
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"checkpoint metadata must be JSON-serialisable (model_args, extra): {exc}"
        ) from exc
    # Weights first: a crash between the two leaves new weights with the old JSON, which the
    # hash check in load_checkpoint reports instead of silently mixing them.
    _atomic_write(weights_path, blob)
    _atomic_write(meta_path, (text + "\n").encode())
    return weights_path


def load_checkpoint(path: str | Path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: The stem or either of the two files.

    Returns:
        ``(metadata, state_dict)`` with CPU tensors.

    Raises:
        FileNotFoundError: a file is missing (the message names both).
        ValueError: ``corrupt checkpoint ...`` when a file cannot be parsed, the metadata is
            incomplete, or the weights do not match the metadata's hash.
    """
    from safetensors.torch import load as load_safetensors

    weights_path, meta_path = checkpoint_paths(path)
    missing = [p for p in (weights_path, meta_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"checkpoint needs both {weights_path} and {meta_path}; missing: "
            + ", ".join(str(p) for p in missing)
        )
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not a JSON object")
        expected_hash = raw.pop("weights_sha256", None)
        for key in _FILE_KEYS:
            raw.pop(key, None)
        meta = CheckpointMeta.from_dict(raw)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {meta_path}: {exc}") from exc

    blob = weights_path.read_bytes()
    if expected_hash is not None and hashlib.sha256(blob).hexdigest() != expected_hash:
        raise ValueError(
            f"corrupt checkpoint {weights_path}: its SHA-256 does not match the one recorded in "
            f"{meta_path} (file damaged, or weights and metadata from different saves)"
        )
    try:
        state = load_safetensors(blob)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ValueError(f"corrupt checkpoint weights {weights_path}: {exc}") from exc
    return meta, state


def _describe_mismatch(
    model: nn.Module, state: dict[str, torch.Tensor], meta: CheckpointMeta
) -> str | None:
    own = model.state_dict()
    problems = []
    n_classes = getattr(model, "num_classes", None)
    if meta.class_names and n_classes is not None and n_classes != len(meta.class_names):
        problems.append(
            f"checkpoint has {len(meta.class_names)} classes but model expects {n_classes}"
        )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(own)
        if k in state and state[k].shape != own[k].shape
    ]
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            problems.append(f"{label}: {', '.join(items[:8])}{more}")
    return "; ".join(problems) or None


def load_model(
    path: str | Path, device: str | torch.device = "cpu", **overrides: Any
) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights strictly.

    Args:
        path: The stem or either file of the checkpoint.
        device: Where to put the model.
        **overrides: Replace entries of ``meta.model_args``; the weights must still fit.

    Returns:
        ``(model, metadata)``; the model is in eval mode with ``class_names`` from the metadata.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`; ValueError also when the
            weights do not fit the architecture (naming the keys/shapes or class counts).
    """
    meta, state = load_checkpoint(path)
    args = dict(meta.model_args)
    # Pretrained-initialisation files are irrelevant once the checkpoint's weights are loaded
    # and usually absent on the robot, so the builders' ``encoder_weights`` is not replayed.
    if "encoder_weights" in args:
        args["encoder_weights"] = None
    legacy = get_model_info(meta.model).legacy_args
    if legacy is not None:
        args = legacy(args, state.keys())
    args.update(overrides)
    model = build_model(meta.model, **args)
    problem = _describe_mismatch(model, state, meta)
    if problem:
        raise ValueError(
            f"checkpoint {path} does not fit model {meta.model!r} with args {args}: {problem}"
        )
    model.load_state_dict(state, strict=True)
    if meta.class_names:
        model.class_names = tuple(meta.class_names)
    return model.to(device).eval(), meta
