"""TensorRT engine backend with a persistent on-disk engine cache.

Written against TensorRT 10's documented Python API (``trt.Builder``, ``trt.OnnxParser``,
``IExecutionContext.set_tensor_address`` / ``execute_async_v3``) with torch CUDA tensors as I/O
buffers, so no pycuda is needed. TensorRT cannot be installed on the development machines:
this backend is not verified there; its cache keys are unit-tested without the library.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from depth_perception.backends.base import BackendError, BackendUnavailableError, InferenceBackend

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on: change any of it and the engine is rebuilt."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    onnx_sha256: str
    input_width: int
    input_height: int
    precision: str

    def filename(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"engine-{digest[:24]}.plan"


def file_sha256(path: str | Path) -> str:
    """Hash of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TensorRTBackend(InferenceBackend):
    """Builds (once) or loads a cached engine for the ONNX model and runs it on CUDA."""

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        input_width: int,
        input_height: int,
        cache_dir: str | Path,
        device: str = "cuda:0",
        precision: str = "fp16",
        logger=None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision}")
        try:
            import tensorrt as trt
        except ImportError as error:
            raise BackendUnavailableError(f"TensorRT is not importable: {error}") from error
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError("TensorRT needs CUDA, which is not available")
        self._torch = torch
        self._trt = trt
        self.device = device if device.startswith("cuda") else "cuda:0"
        torch_device = torch.device(self.device)
        properties = torch.cuda.get_device_properties(torch_device)
        key = EngineKey(
            gpu_name=properties.name,
            compute_capability=f"{properties.major}.{properties.minor}",
            tensorrt_version=trt.__version__,
            onnx_sha256=file_sha256(onnx_path),
            input_width=input_width,
            input_height=input_height,
            precision=precision,
        )
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        engine_path = Path(cache_dir) / key.filename()
        serialized = engine_path.read_bytes() if engine_path.exists() else None
        if serialized is None:
            serialized = self._build(onnx_path, key)
            engine_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = engine_path.with_suffix(".tmp")
            temporary.write_bytes(serialized)
            os.replace(temporary, engine_path)
            engine_path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2))
            self.engine_built = True
        else:
            self.engine_built = False
        self.engine_path = engine_path
        runtime = trt.Runtime(self._trt_logger)
        self._engine = runtime.deserialize_cuda_engine(serialized)
        if self._engine is None:
            raise BackendError(f"TensorRT could not deserialize {engine_path}")
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream(device=torch_device)
        self._input_name = ""
        self._outputs: dict[str, object] = {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            shape = tuple(self._engine.get_tensor_shape(name))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._input_name = name
            else:
                buffer = torch.empty(shape, dtype=torch.float32, device=torch_device)
                self._outputs[name] = buffer
                self._context.set_tensor_address(name, buffer.data_ptr())
        self.output_names = tuple(self._outputs)
        self._input = torch.empty(
            (1, 3, input_height, input_width), dtype=torch.float32, device=torch_device
        )
        self._context.set_tensor_address(self._input_name, self._input.data_ptr())

    def _build(self, onnx_path: str | Path, key: EngineKey) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._trt_logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._trt_logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if key.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        input_tensor = network.get_input(0)
        shape = (1, 3, key.input_height, key.input_width)
        profile.set_shape(input_tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError("TensorRT failed to build an engine (see its log above)")
        return bytes(serialized)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        if batch.shape != tuple(self._input.shape):
            raise BackendError(
                f"engine built for input {tuple(self._input.shape)}, got {batch.shape}"
            )
        with torch.cuda.stream(self._stream):
            self._input.copy_(torch.from_numpy(batch), non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
            outputs = {name: buffer.cpu().numpy() for name, buffer in self._outputs.items()}
        return outputs
