"""Choosing a backend: the requested one first, then the fallbacks, with the reasons logged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from depth_perception.backends.base import BackendError, InferenceBackend


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


@dataclass
class BackendChoice:
    """The backend that started, and why the ones before it did not."""

    backend: InferenceBackend
    skipped: list[str] = field(default_factory=list)
    remaining: list[tuple[str, str]] = field(default_factory=list)


def create_backend(
    chain: list[tuple[str, str]],
    model: nn.Module,
    onnx_path: Callable[[], Path],
    input_size: tuple[int, int],
    cache_dir: Path,
    num_threads: int = 0,
) -> BackendChoice:
    """Start the first backend of ``chain`` that works.

    Args:
        chain: from ``backend_chain``.
        model: the loaded torch model (eval mode).
        onnx_path: exports (or finds in the cache) the ONNX file; called only when needed.
        input_size: network (width, height).
        cache_dir: where TensorRT engines are cached.
        num_threads: CPU threads (0 = all).

    Raises:
        BackendError: when no backend of the chain starts; lists every reason.
    """
    skipped: list[str] = []
    for position, (name, device) in enumerate(chain):
        try:
            backend = _start(name, device, model, onnx_path, input_size, cache_dir, num_threads)
        except Exception as error:  # each failure is reported, then the next is tried
            skipped.append(f"{name} on {device}: {error}")
            continue
        return BackendChoice(backend, skipped, chain[position + 1 :])
    raise BackendError("no backend could start: " + " | ".join(skipped))


def _start(
    name: str,
    device: str,
    model: nn.Module,
    onnx_path: Callable[[], Path],
    input_size: tuple[int, int],
    cache_dir: Path,
    num_threads: int,
) -> InferenceBackend:
    if name == "onnxruntime":
        from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path(), num_threads=num_threads)
    if name == "torch":
        from depth_perception.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=device, num_threads=num_threads)
    if name == "tensorrt":
        import importlib.util

        from depth_perception.backends.tensorrt_backend import TensorRTBackend

        # Checked before exporting: no ONNX export is wasted where TensorRT is absent.
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendError("TensorRT is not installed (python module 'tensorrt' not found)")

        width, height = input_size
        return TensorRTBackend(onnx_path(), width, height, cache_dir / "tensorrt", device=device)
    raise BackendError(f"unknown backend '{name}'")
