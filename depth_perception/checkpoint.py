"""Self-describing checkpoints: ``<name>.safetensors`` (weights) + ``<name>.json`` (metadata).

The metadata names the registry model and its arguments, the input size, normalisation, class
names and depth range, so the node and the exporter rebuild the model from the checkpoint alone
instead of repeating these in YAML. Weights are stored with safetensors (never pickle). Both files
are written atomically (temporary file in the same directory, fsync, ``os.replace``) and the JSON
records the SHA-256 of the weights file, so a reader never pairs weights with the wrong metadata.

Where the weights come from is typed too (:class:`Provenance`): trained or not, bundled, the
recipe, data sets, steps, parent checkpoint, the tool and command that wrote it and the source
commit. Files of format 1 kept these as free-form flags in ``extra``; they are read into a
:class:`Provenance` on load (see :func:`provenance_from_v1_extra`).
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
from typing import TYPE_CHECKING, Any

# torch and the model registry are imported where weights are touched, not here: the metadata
# (CheckpointMeta, checkpoint_paths) is read by the ONNX Runtime path, which runs without torch.
if TYPE_CHECKING:
    import torch
    from torch import nn

# 2: typed ``provenance`` (format 1 had free-form flags in ``extra``; still read).
FORMAT_VERSION = 2
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
# Keys the JSON file holds besides the CheckpointMeta fields.
_FILE_KEYS = ("weights_file", "weights_sha256")


@dataclass(frozen=True)
class DatasetRef:
    """One data set a checkpoint was trained on.

    Attributes:
        name: Registered data set name (``synthetic``, ``kitti``, ...).
        family: Scene family where the data set has several (synthetic ``indoor`` / ``road``).
        split: The split trained on.
    """

    name: str
    family: str = ""
    split: str = ""


@dataclass(frozen=True)
class Provenance:
    """Where a checkpoint's weights come from.

    Attributes:
        trained: True when the weights were optimised by a recorded run, False when they are
            known to be a random initialisation, None when the writer did not say (treated as
            trained: the node warns only about weights known to be untrained).
        bundled: Copied into the package as a model's default weights (``depth-perception
            bundle``).
        recipe: Name of the training recipe (``training/configs/<recipe>.yaml``).
        datasets: The data sets trained on.
        steps: Optimiser steps done.
        epoch: Completed epochs.
        train_seconds: Training wall time.
        stop_reason: Why training stopped (``epochs``, ``time_budget``), once it has.
        metrics: Validation (or given) metrics of these weights.
        parent: The checkpoint these weights started from (``model.init_checkpoint``, the
            previous stage) or, for a bundled file, the checkpoint it was copied from.
        created_by: The tool that wrote the file (``depth-perception train``, ``... bundle``).
        command: The training command line.
        bundle_command: The ``depth-perception bundle`` command line, for bundled weights.
        git_commit: Source commit of the training code (``git describe --always --dirty``), if
            known.
    """

    trained: bool | None = None
    bundled: bool = False
    recipe: str = ""
    datasets: tuple[DatasetRef, ...] = ()
    steps: int | None = None
    epoch: int | None = None
    train_seconds: float | None = None
    stop_reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str = ""
    created_by: str = ""
    command: str = ""
    bundle_command: str = ""
    git_commit: str = ""

    def __post_init__(self) -> None:
        # Plain values whatever the caller passed (lists from JSON, numpy scalars ...).
        datasets = tuple(
            d if isinstance(d, DatasetRef) else DatasetRef(**d) for d in self.datasets
        )
        object.__setattr__(self, "datasets", datasets)
        object.__setattr__(self, "metrics", {str(k): float(v) for k, v in self.metrics.items()})
        if self.trained is not None and not isinstance(self.trained, bool):
            raise ValueError(
                f"provenance.trained must be true, false or null, got {self.trained!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        data = dataclasses.asdict(self)
        data["datasets"] = [dataclasses.asdict(d) for d in self.datasets]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`; ValueError on unknown keys or a malformed data set."""
        if not isinstance(data, dict):
            raise ValueError(f"provenance must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"provenance: unknown keys {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:  # a data set entry with missing or unknown keys
            raise ValueError(f"provenance: {exc}") from exc


# ``extra`` keys of format 1 that are Provenance fields now.
_V1_PROVENANCE_KEYS = (
    "trained",
    "recipe",
    "epoch",
    "global_step",
    "train_seconds",
    "stop_reason",
    "metrics",
    "command",
    "dataset",
    "bundled_from",
    "bundle_command",
)


def provenance_from_v1_extra(extra: dict[str, Any]) -> tuple[Provenance, dict[str, Any]]:
    """Read the free-form provenance of a format-1 checkpoint.

    Returns:
        ``(provenance, the rest of extra)``.
    """
    rest = {k: v for k, v in extra.items() if k not in _V1_PROVENANCE_KEYS}
    steps = extra.get("global_step")
    flag = extra.get("trained")
    # The format-1 trainer wrote "trained": false into every checkpoint it saved (only bundle
    # wrote true), so the flag is believed only where no optimiser step is recorded.
    trained = True if isinstance(steps, int) and steps > 0 else flag
    dataset = extra.get("dataset") or {}
    datasets = ()
    if isinstance(dataset, dict) and dataset.get("name"):
        datasets = (
            DatasetRef(
                str(dataset["name"]),
                str(dataset.get("family", "")),
                str(dataset.get("train_split", "")),
            ),
        )
    provenance = Provenance(
        trained=bool(trained) if trained is not None else None,
        bundled="bundled_from" in extra,
        recipe=str(extra.get("recipe", "")),
        datasets=datasets,
        steps=steps if isinstance(steps, int) else None,
        epoch=extra.get("epoch") if isinstance(extra.get("epoch"), int) else None,
        train_seconds=extra.get("train_seconds"),
        stop_reason=str(extra.get("stop_reason", "")),
        metrics=dict(extra.get("metrics") or {}),
        parent=str(extra.get("bundled_from", "")),
        created_by="depth-perception bundle" if "bundled_from" in extra else "",
        command=str(extra.get("command", "")),
        bundle_command=str(extra.get("bundle_command", "")),
    )
    return provenance, rest


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
        provenance: Where the weights come from (:class:`Provenance`).
        extra: Free-form additions a tool wants to keep; nothing in this package reads them.
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
    provenance: Provenance = field(default_factory=Provenance)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.class_names = [str(c) for c in self.class_names]
        self.model_args = dict(self.model_args)
        self.extra = dict(self.extra)
        if not isinstance(self.provenance, Provenance):  # a dict read from JSON
            self.provenance = Provenance.from_dict(self.provenance)
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
        provenance: Provenance | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CheckpointMeta:
        """Metadata for ``model`` built as ``build_model(name, **model_args)``.

        Normalisation, metric flag and default input size come from the registry; class names
        and depth range from the model's contract attributes unless given.
        """
        from depth_perception.models import get_model_info

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
            provenance=provenance if provenance is not None else Provenance(),
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable when ``model_args`` and ``extra`` are)."""
        data = dataclasses.asdict(self)
        data["provenance"] = self.provenance.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        """Inverse of :meth:`to_dict`; ValueError on missing/unknown keys or a newer format.

        Format-1 metadata (provenance as flags in ``extra``) is read into a :class:`Provenance`
        and comes back as the current format.
        """
        if not isinstance(data, dict):
            raise ValueError(f"checkpoint metadata must be a JSON object, got {type(data)}")
        data = dict(data)
        if data.get("format_version") == 1 and "provenance" not in data:
            extra = data.get("extra") or {}
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be a JSON object, got {type(extra).__name__}")
            data["provenance"], data["extra"] = provenance_from_v1_extra(extra)
            data["format_version"] = FORMAT_VERSION
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
    from torch import nn

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


def read_metadata_file(meta_path: str | Path) -> tuple[CheckpointMeta, str | None]:
    """Parse a checkpoint's ``.json``: ``(metadata, SHA-256 recorded for the weights or None)``.

    Raises:
        ValueError: ``corrupt checkpoint metadata ...`` when it cannot be parsed or is
            incomplete or newer than this code.
    """
    try:
        raw = json.loads(Path(meta_path).read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not a JSON object")
        expected_hash = raw.pop("weights_sha256", None)
        for key in _FILE_KEYS:
            raw.pop(key, None)
        return CheckpointMeta.from_dict(raw), expected_hash
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {meta_path}: {exc}") from exc


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
    meta, expected_hash = read_metadata_file(meta_path)
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
    from depth_perception.models import build_model, get_model_info

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
