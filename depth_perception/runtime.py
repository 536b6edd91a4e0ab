"""Assembling a ready-to-run predictor from a ``PerceptionConfig``: weights, model, backend.

Shared by the node, the demo and the tools, so they all resolve weights, sizes and backends
the same way. Imports no rclpy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from depth_perception.backends.base import BackendError
from depth_perception.backends.calibration import families_for_classes
from depth_perception.backends.selection import (
    BackendChoice,
    BackendOptions,
    backend_chain,
    create_backend,
    cuda_available,
)
from depth_perception.checkpoint import load_model
from depth_perception.config import PerceptionConfig
from depth_perception.export import export_onnx
from depth_perception.models import build_model, get_model_info
from depth_perception.predictor import DepthPredictor, ModelDescription
from depth_perception.visualize import make_palette


def cache_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are kept between runs."""
    explicit = os.environ.get("DEPTH_PERCEPTION_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "depth_perception"


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
        return (
            f"model {d.name} ({kind} depth, {d.num_classes} classes) at "
            f"{d.input_width}x{d.input_height} on {self.choice.backend.describe()}, "
            f"weights {self.weights}"
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
    info = get_model_info(config.model)
    weights = resolve_weights(config)
    warnings: list[str] = []
    notes: list[str] = []
    if weights is not None:
        model, meta = load_model(weights, device="cpu")
        if meta.model != config.model:
            raise ValueError(
                f"weights {weights} are for model '{meta.model}', but model is '{config.model}'"
            )
        trained = meta.provenance.trained is not False  # None: not recorded
        width, height = meta.input_width, meta.input_height
        mean, std = tuple(meta.mean), tuple(meta.std)
        class_names = tuple(meta.class_names)
        min_depth, max_depth, metric = meta.min_depth, meta.max_depth, meta.metric
        weights_label = str(weights)
    else:
        # Reproducible random weights so that exported files and caches are stable.
        torch.manual_seed(0)
        model = build_model(config.model)
        trained = False
        width, height = info.default_input_size
        mean, std = info.mean, info.std
        class_names = tuple(getattr(model, "class_names", ()) or ())
        if not class_names and getattr(model, "num_classes", 0):
            class_names = tuple(f"class_{i}" for i in range(model.num_classes))
        min_depth = float(getattr(model, "min_depth", 0.1)) or 0.1
        max_depth = float(getattr(model, "max_depth", 100.0))
        metric = info.metric
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
    multiple = int(getattr(model, "input_multiple", 1))
    if width % multiple or height % multiple:
        raise ValueError(
            f"input size {width}x{height} is not a multiple of {multiple}, which "
            f"'{config.model}' needs; choose e.g. {width // multiple * multiple}x"
            f"{height // multiple * multiple}"
        )
    model.eval()
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
    )

    def onnx_file() -> Path:
        key = {
            "model": config.model,
            "state": _state_digest(model),
            "size": [width, height],
            "torch": torch.__version__,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        path = cache_dir() / "onnx" / f"{config.model}-{width}x{height}-{digest}.onnx"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Fixed height and width: ONNX Runtime optimises static shapes better, and the
            # node's network size never changes without a reconfigure. The batch axis stays
            # dynamic: a multi-camera node sends one image per camera in one batch.
            export_onnx(model, path, width, height, dynamic_size=False)
            notes.append(f"exported ONNX to {path}")
        else:
            notes.append(f"reusing cached ONNX {path}")
        return path

    chain = backend_chain(config.backend, config.device, cuda_available())

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
            entries, model, onnx_file, (width, height), cache_dir(), options=options
        )

    choice = restart(chain)
    for reason in choice.skipped:
        warnings.append(f"backend skipped: {reason}")
    notes.append(f"backend {choice.backend.describe()} (chain: {chain})")
    # e.g. TensorRT: engine built or loaded, INT8 calibration, a corrupt engine file rebuilt.
    notes.extend(getattr(choice.backend, "notes", ()))
    predictor = DepthPredictor(
        description, choice.backend, config.min_depth, config.max_depth, config.depth_scale
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
