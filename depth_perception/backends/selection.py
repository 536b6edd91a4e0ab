"""Choosing a backend: the requested one first, then the fallbacks, with the reasons logged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from depth_perception.backends.base import BackendError, InferenceBackend

if TYPE_CHECKING:
    from torch import nn

    from depth_perception.backends.calibration import CalibrationSource

# The torch model, or a function that loads it: ONNX Runtime and TensorRT need only the ONNX
# file, so a chain that starts on them loads the model (and torch) only if it falls back.
ModelSource = Union["nn.Module", Callable[[], "nn.Module"]]

PRECISIONS = ("fp32", "fp16", "int8")


def cuda_available() -> bool:
    """Whether torch sees a usable CUDA device."""
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # a broken CUDA install must not take the CPU path down with it
        return False


def backend_chain(backend: str, device: str, has_cuda: bool) -> list[tuple[str, str]]:
    """The (backend, device) pairs to try in order for the ``backend`` and ``device`` settings.

    ``auto`` prefers TensorRT, then torch on CUDA when a GPU is present, and ONNX Runtime on the
    CPU otherwise; every chain ends on the CPU so a node always starts somewhere.
    """
    gpu = device if device.startswith("cuda") else "cuda:0"
    wants_gpu = device.startswith("cuda") or (device == "auto" and has_cuda)
    cpu_tail = [("onnxruntime", "cpu"), ("torch", "cpu")]
    if backend in ("auto", "tensorrt"):
        head = [("tensorrt", gpu), ("torch", gpu)] if (wants_gpu or backend == "tensorrt") else []
        chain = head + cpu_tail
    elif backend == "torch":
        chain = ([("torch", gpu)] if wants_gpu else []) + [("torch", "cpu")]
        chain += [("onnxruntime", "cpu")]
    elif backend == "onnxruntime":
        chain = cpu_tail
    else:
        raise ValueError(f"unknown backend '{backend}'; choose auto, onnxruntime, torch, tensorrt")
    if device == "cpu":
        chain = [pair for pair in chain if pair[1] == "cpu"]
    unique: list[tuple[str, str]] = []
    for pair in chain:
        if pair not in unique:
            unique.append(pair)
    return unique


@dataclass(frozen=True)
class BackendOptions:
    """How every backend of a chain is configured; each takes the fields that apply to it.

    Attributes:
        num_threads: CPU intra-op threads (0 = all / the library's default).
        cpu_spinning: ONNX Runtime's idle intra-op threads busy-wait for work (see
            ``OnnxRuntimeBackend``); off = they sleep and leave the cores to the rest of the node.
        precision: ``fp32``, ``fp16`` or ``int8``. TensorRT builds that precision; torch on CUDA
            runs FP16 autocast unless ``fp32`` (it has no INT8 path); the CPU backends always
            run FP32.
        cuda_graphs: torch on CUDA captures the forward pass in a CUDA graph.
        dla_core: TensorRT on a Jetson DLA core (with GPU fallback); -1 = GPU only.
        calibration_dir: folder of camera images for INT8 calibration; empty = synthetic frames.
        max_batch: largest batch one inference call gets (the number of cameras). TensorRT
            builds its optimisation profile for 1..max_batch; the others take any batch.
        mean, std: the model's input normalisation (used to preprocess calibration images).
        calibration_families: synthetic scene families for INT8 calibration without a folder.
        calibration_images: images (folder, at most) or synthetic frames (exactly) to calibrate.

    Raises:
        ValueError: a value outside its range.
    """

    num_threads: int = 0
    cpu_spinning: bool = False
    precision: str = "fp16"
    cuda_graphs: bool = False
    dla_core: int = -1
    calibration_dir: str = ""
    max_batch: int = 1
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    calibration_families: tuple[str, ...] = ("indoor", "road")
    calibration_images: int = 256

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got '{self.precision}'")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = all), got {self.num_threads}")
        if self.max_batch < 1:
            raise ValueError(
                f"max_batch must be >= 1 (e.g. the camera count), got {self.max_batch}"
            )
        if self.dla_core < -1:
            raise ValueError(f"dla_core must be -1 (none) or a core index, got {self.dla_core}")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be >= 1, got {self.calibration_images}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")

    def calibration_source(self, input_size: tuple[int, int]) -> CalibrationSource:
        """The INT8 calibration images for a network of ``input_size`` (width, height)."""
        from depth_perception.backends.calibration import CalibrationSource

        width, height = input_size
        return CalibrationSource(
            width=width,
            height=height,
            mean=tuple(float(v) for v in self.mean),
            std=tuple(float(v) for v in self.std),
            folder=self.calibration_dir,
            families=tuple(self.calibration_families),
            num_images=self.calibration_images,
        )


@dataclass
class BackendChoice:
    """The backend that started, and why the ones before it did not."""

    backend: InferenceBackend
    skipped: list[str] = field(default_factory=list)
    remaining: list[tuple[str, str]] = field(default_factory=list)


def create_backend(
    chain: list[tuple[str, str]],
    model: ModelSource,
    onnx_path: Callable[[], Path],
    input_size: tuple[int, int],
    cache_dir: Path,
    num_threads: int = 0,
    *,
    options: BackendOptions | None = None,
) -> BackendChoice:
    """Start the first backend of ``chain`` that works.

    Args:
        chain: from ``backend_chain``.
        model: the loaded torch model (eval mode), or a function that loads it, called only
            when a torch backend is tried.
        onnx_path: exports (or finds in the cache) the ONNX file; called only when needed.
        input_size: network (width, height).
        cache_dir: where TensorRT engines and calibration caches are kept (in ``tensorrt/``).
        num_threads: CPU threads (0 = all); kept for callers without ``options``.
        options: everything else (precision, CUDA graphs, DLA, batch, calibration); default
            ``BackendOptions(num_threads=num_threads)``.

    Raises:
        ValueError: ``num_threads`` given both directly and, differently, in ``options``.
        BackendError: when no backend of the chain starts; lists every reason.
    """
    if options is None:
        options = BackendOptions(num_threads=num_threads)
    elif num_threads and num_threads != options.num_threads:
        raise ValueError(
            f"num_threads={num_threads} conflicts with options.num_threads="
            f"{options.num_threads}; set it in options only"
        )
    skipped: list[str] = []
    for position, (name, device) in enumerate(chain):
        try:
            backend = _start(name, device, model, onnx_path, input_size, cache_dir, options)
        except Exception as error:  # each failure is reported, then the next is tried
            skipped.append(f"{name} on {device}: {error}")
            continue
        return BackendChoice(backend, skipped, chain[position + 1 :])
    raise BackendError("no backend could start: " + " | ".join(skipped))


def _resolve_model(model: ModelSource) -> nn.Module:
    # A module is itself callable, so it is told apart by its state_dict.
    return model if hasattr(model, "state_dict") else model()


def _start(
    name: str,
    device: str,
    model: ModelSource,
    onnx_path: Callable[[], Path],
    input_size: tuple[int, int],
    cache_dir: Path,
    options: BackendOptions,
) -> InferenceBackend:
    if name == "onnxruntime":
        from depth_perception.backends.onnxruntime_backend import (
            OnnxRuntimeBackend,
            pipeline_intra_op_threads,
        )

        # 0 = the cores left to the network once the pipeline's own threads have one.
        threads = options.num_threads or pipeline_intra_op_threads()
        return OnnxRuntimeBackend(onnx_path(), num_threads=threads, spinning=options.cpu_spinning)
    if name == "torch":
        # The model first: where torch is missing, its source says what that means here.
        torch_model = _resolve_model(model)
        from depth_perception.backends.torch_backend import TorchBackend

        # int8 has no torch path: FP16 autocast is the closest (ignored on the CPU).
        return TorchBackend(
            torch_model,
            device=device,
            num_threads=options.num_threads,
            fp16=options.precision != "fp32",
            cuda_graphs=options.cuda_graphs,
        )
    if name == "tensorrt":
        import importlib.util

        from depth_perception.backends.tensorrt_backend import TensorRTBackend

        # Checked before exporting: no ONNX export is wasted where TensorRT is absent.
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendError("TensorRT is not installed (python module 'tensorrt' not found)")

        width, height = input_size
        calibration = (
            options.calibration_source(input_size) if options.precision == "int8" else None
        )
        return TensorRTBackend(
            onnx_path(),
            width,
            height,
            cache_dir / "tensorrt",
            device=device,
            precision=options.precision,
            max_batch=options.max_batch,
            dla_core=options.dla_core,
            calibration=calibration,
        )
    raise BackendError(f"unknown backend '{name}'")
