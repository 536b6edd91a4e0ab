"""Assembling a ready-to-run predictor from a ``PerceptionConfig``: weights, model, backend.

Shared by the node, the demo and the tools, so they all resolve weights, sizes and backends
the same way. Imports no rclpy.

Imports no torch either until a torch model is needed: when the backend chain starts on ONNX
Runtime and the checkpoint's ONNX export exists (bundled beside the weights, or cached by an
earlier start; ``depth_perception.onnx_files``), the checkpoint's metadata and that file are
all it reads. The model is rebuilt in torch only to export a missing ONNX file, for the torch
or TensorRT backends, or when ONNX Runtime fails and the chain falls back to torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_perception.backends.base import BackendError, BackendUnavailableError
from depth_perception.backends.calibration import families_for_classes
from depth_perception.backends.devices import cuda_usable
from depth_perception.backends.selection import (
    BackendChoice,
    BackendOptions,
    backend_chain,
    create_backend,
)
from depth_perception.checkpoint_meta import CheckpointInfo, read_checkpoint_meta
from depth_perception.config import PerceptionConfig
from depth_perception.onnx_files import cache_dir, export_to_cache, find_onnx
from depth_perception.predictor import DepthPredictor, ModelDescription
from depth_perception.visualize import make_palette

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadedPipeline",
    "bundled_weights",
    "cache_dir",
    "load_pipeline",
    "palette_for",
    "resolve_weights",
]


def bundled_weights(model: str) -> Path | None:
    """The checkpoint shipped in the package for ``model``, if there is one."""
    candidate = resources.files("depth_perception") / "weights" / f"{model}.safetensors"
    path = Path(str(candidate))
    return path if path.is_file() else None


def resolve_weights(config: PerceptionConfig) -> Path | None:
    """The checkpoint to load: the ``weights`` parameter, else the bundled default, else None.

    Raises:
        FileNotFoundError: ``weights`` or the metadata .json beside it does not exist.
        ValueError: ``weights`` is not a regular .safetensors file.
    """
    if not config.weights:
        return bundled_weights(config.model)
    path = Path(os.path.expanduser(config.weights))
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must be a .safetensors checkpoint (with its .json), got {path}")
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"weights {path} is not a regular file")
    meta = path.with_suffix(".json")
    if not meta.is_file():
        raise FileNotFoundError(
            f"weights {path} has no metadata file {meta} beside it; copy the .json that was "
            "saved with the checkpoint next to it"
        )
    return path


def palette_for(class_names: tuple[str, ...]) -> np.ndarray:
    """Colours for the classes: the dataset's own palette where known, else distinct colours."""
    from depth_perception.synthetic.classes import (
        INDOOR_CLASSES,
        INDOOR_PALETTE,
        ROAD_CLASSES,
        ROAD_PALETTE,
    )

    if tuple(class_names) == tuple(ROAD_CLASSES):
        return np.asarray(ROAD_PALETTE, np.uint8)
    if tuple(class_names) == tuple(INDOOR_CLASSES):
        return np.asarray(INDOOR_PALETTE, np.uint8)
    return make_palette(max(len(class_names), 1))


def _state_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class LoadedPipeline:
    """A predictor with everything the node reports about it."""

    predictor: DepthPredictor
    description: ModelDescription
    choice: BackendChoice
    palette: np.ndarray
    weights: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Starts the first backend of a (backend, device) list that works; used by fall_back().
    restart: Callable[[list[tuple[str, str]]], BackendChoice] | None = None

    def summary(self) -> str:
        d = self.description
        kind = "metric" if d.metric else "relative"
        matched = self.predictor.match_aspect and getattr(
            self.choice.backend, "variable_input_size", False
        )
        size = f"{d.input_width}x{d.input_height}" + (
            " (about that many pixels at each camera's aspect ratio)" if matched else ""
        )
        return (
            f"model {d.name} ({kind} depth, {d.num_classes} classes) at {size} on "
            f"{self.choice.backend.describe()}, weights {self.weights}"
        )

    def diagnostic_values(self) -> dict[str, object]:
        d = self.description
        return {
            "model": d.name,
            "backend": self.choice.backend.name,
            "device": self.choice.backend.device,
            "weights": self.weights,
            "weights_trained": d.trained,
            "depth_is_metric": d.metric,
            "input_size": f"{d.input_width}x{d.input_height}",
            # The sizes the images really get (their own aspect ratio, match_camera_aspect).
            "input_sizes_used": " ".join(f"{w}x{h}" for w, h in self.predictor.input_sizes_used),
            "num_classes": d.num_classes,
            # ONNX Runtime's thread settings (absent for the other backends).
            **{
                key: getattr(self.choice.backend, attribute)
                for key, attribute in (
                    ("cpu_threads", "num_threads"),
                    ("cpu_spinning", "spinning"),
                )
                if hasattr(self.choice.backend, attribute)
            },
        }

    def fall_back(self, reason: str) -> str:
        """Replace a failing backend by the next one of ``choice.remaining`` that starts.

        Args:
            reason: why the current backend is given up (kept in ``choice.skipped``).

        Returns:
            The new backend's description, e.g. ``torch on cpu``.

        Raises:
            BackendError: no fallback is left, or none of the remaining ones starts.
        """
        old = self.choice.backend
        if self.restart is None or not self.choice.remaining:
            raise BackendError(f"{old.describe()} failed ({reason}) and no fallback is left")
        choice = self.restart(list(self.choice.remaining))
        old.close()
        skipped = [*self.choice.skipped, f"{old.describe()}: {reason}", *choice.skipped]
        self.choice = BackendChoice(choice.backend, skipped, choice.remaining)
        self.predictor.backend = choice.backend
        return choice.backend.describe()

    def close(self) -> None:
        self.choice.backend.close()
        self.restart = None  # drops the torch model the fallback would have needed


def load_pipeline(config: PerceptionConfig, *, max_batch: int = 1) -> LoadedPipeline:
    """Load weights, build the model, pick and start a backend, and wrap them in a predictor.

    On the ONNX Runtime path (``backend: onnxruntime``, or ``auto`` without a GPU) with an
    existing ONNX export of the checkpoint, torch is not imported (see the module docstring).

    Args:
        config: the node's parameters.
        max_batch: largest batch one inference call gets (a multi-camera node passes its
            camera count); TensorRT builds its engine for batches 1..max_batch.

    Raises:
        ValueError / FileNotFoundError: unknown model, missing or unusable weights, weights for
            another architecture, or an input size the model cannot take.
        BackendError: no backend could start.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1 (the number of cameras), got {max_batch}")
    weights = resolve_weights(config)
    warnings: list[str] = []
    notes: list[str] = []
    if weights is not None:
        checkpoint = read_checkpoint_meta(weights)
        meta = checkpoint.meta
        if meta.model != config.model:
            raise ValueError(
                f"weights {weights} are for model '{meta.model}', but model is '{config.model}'"
            )
        source = _ModelSource(config.model, checkpoint, notes)
        trained = checkpoint.trained
        width, height = meta.input_width, meta.input_height
        mean, std = tuple(meta.mean), tuple(meta.std)
        class_names = tuple(meta.class_names)
        min_depth, max_depth, metric = meta.min_depth, meta.max_depth, meta.metric
        # Read from the metadata, not the torch model: the ONNX Runtime path never builds it.
        canonical_focal_px = meta.model_args.get("canonical_focal_px")
        focal_exponent = float(meta.model_args.get("focal_exponent", 1.0))
        weights_label = str(weights)
    else:
        try:
            from depth_perception.models import get_model_info
        except ImportError as error:
            raise BackendUnavailableError(
                f"model '{config.model}' has no weights here (no bundled checkpoint, weights "
                f"parameter empty), and random weights need torch, which is not importable "
                f"({error})"
            ) from error
        info = get_model_info(config.model)
        source = _ModelSource(config.model, None, notes)
        model = source.model()
        trained = False
        width, height = info.default_input_size
        mean, std = info.mean, info.std
        class_names = tuple(getattr(model, "class_names", ()) or ())
        if not class_names and getattr(model, "num_classes", 0):
            class_names = tuple(f"class_{i}" for i in range(model.num_classes))
        min_depth = float(getattr(model, "min_depth", 0.1)) or 0.1
        max_depth = float(getattr(model, "max_depth", 100.0))
        metric = info.metric
        canonical_focal_px = getattr(model, "canonical_focal_px", None)
        focal_exponent = float(getattr(model, "focal_exponent", 1.0))
        weights_label = "none (random init)"
    if not trained:
        warnings.append(
            f"WEIGHTS ARE UNTRAINED: model '{config.model}' has no trained checkpoint here; "
            "its depth and labels are meaningless. Train one (depth-perception train) and pass "
            "it with the weights parameter."
        )
    if not metric and config.depth_scale == 1.0:
        warnings.append(
            f"model '{config.model}' predicts RELATIVE depth: published values are not metres "
            "until depth_scale is set"
        )
    if config.input_width:
        width, height = config.input_width, config.input_height
    description = ModelDescription(
        name=config.model,
        input_width=width,
        input_height=height,
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        class_names=class_names,
        min_depth=float(min_depth),
        max_depth=float(max_depth),
        metric=bool(metric),
        trained=trained,
        canonical_focal_px=canonical_focal_px,
        focal_exponent=focal_exponent,
    )
    # Asking torch about CUDA costs its import: only a chain that may use the GPU asks, and
    # only where a GPU may be present at all.
    may_use_gpu = config.backend != "onnxruntime" and config.device == "auto"
    chain = backend_chain(config.backend, config.device, may_use_gpu and cuda_usable())
    source.set_size(width, height)
    if chain[0][0] != "onnxruntime" or source.find_onnx() is None:
        # The first backend needs the torch model (or an export made from it): load it now,
        # so that weights that do not fit the architecture or the size fail the start.
        try:
            source.model()
        except BackendUnavailableError:
            # No torch here: the chain skips what needs it, with this reason, and ONNX
            # Runtime still starts where the export exists.
            pass
    options = BackendOptions(
        num_threads=config.num_threads,
        cpu_spinning=config.cpu_spinning,
        precision=config.precision,
        cuda_graphs=config.cuda_graphs,
        dla_core=config.dla_core,
        calibration_dir=config.int8_calibration_dir,
        max_batch=max_batch,
        mean=description.mean,
        std=description.std,
        calibration_families=families_for_classes(class_names),
    )

    def restart(entries: list[tuple[str, str]]) -> BackendChoice:
        # TensorRT sets max_batch_size = max_batch; DepthPredictor.predict_batch splits larger
        # batches by it, the other backends take any batch.
        return create_backend(
            entries, source.model, source.onnx_file, (width, height), cache_dir(), options=options
        )

    choice = restart(chain)
    for reason in choice.skipped:
        warnings.append(f"backend skipped: {reason}")
    notes.append(f"backend {choice.backend.describe()} (chain: {chain})")
    # e.g. TensorRT: engine built or loaded, INT8 calibration, a corrupt engine file rebuilt.
    notes.extend(getattr(choice.backend, "notes", ()))
    predictor = DepthPredictor(
        description,
        choice.backend,
        config.min_depth,
        config.max_depth,
        config.depth_scale,
        # An explicit input size is the size every image gets.
        match_aspect=config.match_camera_aspect and not config.input_width,
    )
    return LoadedPipeline(
        predictor=predictor,
        description=description,
        choice=choice,
        palette=palette_for(class_names),
        weights=weights_label,
        notes=notes,
        warnings=warnings,
        restart=restart,
    )


class _ModelSource:
    """The torch model and the ONNX file of one checkpoint, each made at most once, on demand.

    ``model()`` imports torch and rebuilds the network; ``onnx_file()`` finds the checkpoint's
    export (no torch) or makes one from ``model()`` into the cache.
    """

    def __init__(self, name: str, checkpoint: CheckpointInfo | None, notes: list[str]) -> None:
        self.name = name
        self.checkpoint = checkpoint
        self.size = (0, 0)
        # The pipeline's notes: what is found or exported, also on a later fallback.
        self.notes = notes
        self._model: torch.nn.Module | None = None
        self._onnx: Path | None = None

    def set_size(self, width: int, height: int) -> None:
        """The network input size (checked against a model already loaded)."""
        self.size = (width, height)
        if self._model is not None:
            self._check_size(self._model)

    def model(self) -> torch.nn.Module:
        """The network in eval mode on the CPU (checked against the input size, once set)."""
        if self._model is None:
            model = self._build()
            if self.size != (0, 0):
                self._check_size(model)
            self._model = model
        return self._model

    def _check_size(self, model: torch.nn.Module) -> None:
        width, height = self.size
        multiple = int(getattr(model, "input_multiple", 1))
        if width % multiple or height % multiple:
            raise ValueError(
                f"input size {width}x{height} is not a multiple of {multiple}, which "
                f"'{self.name}' needs; choose e.g. {width // multiple * multiple}x"
                f"{height // multiple * multiple}"
            )

    def _build(self) -> torch.nn.Module:
        if self.checkpoint is None:
            import torch

            from depth_perception.models import build_model

            # Reproducible random weights so that exported files and caches are stable.
            torch.manual_seed(0)
            return build_model(self.name).eval()
        try:
            # Imported first, alone, so a missing torch is reported as what it means here.
            import torch
        except ImportError as error:
            width, height = self.size
            weights = self.checkpoint.weights_path
            if self.find_onnx() is None:
                reason = (
                    f"{weights} has no ONNX export for {width}x{height} beside it or in "
                    f"{cache_dir() / 'onnx'}, and making one needs torch, which is not "
                    f"importable ({error}): install the torch extra (pip install "
                    "'depth_perception[torch]') and start once to export it; later starts "
                    "run without torch"
                )
            else:
                reason = (
                    f"the torch backend needs torch, which is not importable ({error}); ONNX "
                    f"Runtime runs {self._onnx} without it (backend onnxruntime)"
                )
            raise BackendUnavailableError(reason) from error
        from depth_perception.checkpoint import load_model

        return load_model(self.checkpoint.weights_path, device="cpu")[0].eval()

    def find_onnx(self) -> Path | None:
        """The existing export for the checkpoint at ``size``, without torch; None if none."""
        if self._onnx is None and self.checkpoint is not None:
            self._onnx = find_onnx(self.checkpoint, *self.size)
            if self._onnx is not None:
                self.notes.append(f"using the ONNX export {self._onnx}")
        return self._onnx

    def onnx_file(self) -> Path:
        """The export for ``size``: found, else exported once (into the cache)."""
        if self.find_onnx() is not None:
            return self._onnx
        width, height = self.size
        if self.checkpoint is not None:
            self._onnx = export_to_cache(self.model(), self.checkpoint, width, height)
            self.notes.append(f"exported ONNX to {self._onnx}; later starts load it without torch")
            return self._onnx
        # Random weights: keyed by their tensors (and torch, whose generator made them).
        import torch

        from depth_perception.export import export_onnx

        key = {
            "model": self.name,
            "state": _state_digest(self.model()),
            "size": [width, height],
            "torch": torch.__version__,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        path = cache_dir() / "onnx" / f"{self.name}-{width}x{height}-random-{digest}.onnx"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(self.model(), path, width, height, dynamic_size=False)
            self.notes.append(f"exported ONNX to {path}")
        self._onnx = path
        return path
