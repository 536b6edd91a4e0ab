"""TensorRT engine backend: FP32/FP16/INT8, optional DLA, batches 1..max_batch, cached engines.

Written against TensorRT 10's documented Python API (``trt.Builder``, ``trt.OnnxParser``,
``IInt8EntropyCalibrator2``, ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3``) with torch CUDA tensors as device buffers, so no pycuda is needed.
TensorRT cannot be installed on the development machines: the TensorRT calls here are NOT
verified there. What does not need the library is split out and unit-tested: the engine key,
the on-disk ``EngineCache`` (lookup, atomic store, invalidation, one rebuild of an engine file
that fails to deserialize), the optimisation-profile shapes and the batch a call runs at, and
the calibration data (``calibration.py``).

Engine build, in short:

* one optimisation profile for the (dynamic) batch axis: min 1, opt and max ``max_batch``
  (H and W fixed). On a DLA core min = opt = max = ``max_batch`` because DLA has no dynamic
  dimensions; smaller batches are then padded to ``max_batch`` and the padding dropped;
* FP16 sets ``BuilderFlag.FP16``; INT8 sets ``INT8`` (and FP16 for the layers without INT8
  kernels) with an entropy calibrator fed by ``CalibrationSource.batches``. The calibration
  cache is written beside the engine, keyed by ONNX hash, input size, calibration source digest
  and TensorRT version, and read back by the next build, which then skips calibration;
* ``dla_core >= 0`` sets ``default_device_type = DLA``, ``DLA_core`` and ``GPU_FALLBACK`` (layers
  DLA cannot run go to the GPU). DLA runs FP16 or INT8 only.

INT8 through a calibrator ("implicit quantisation") is deprecated since TensorRT 10.1 in favour
of Q/DQ nodes in the ONNX graph but still supported in TensorRT 10.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from depth_perception.backends.base import BackendError, BackendUnavailableError, InferenceBackend
from depth_perception.backends.calibration import CalibrationSource

PRECISIONS = ("fp32", "fp16", "int8")

_LOG = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on: change any of it and the engine is rebuilt.

    ``int8_calibration_digest`` is ``CalibrationSource.digest()`` for INT8 engines, empty
    otherwise.
    """

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    onnx_sha256: str
    input_width: int
    input_height: int
    precision: str
    int8_calibration_digest: str = ""
    dla_core: int = -1
    max_batch: int = 1

    def filename(self) -> str:
        return f"engine-{_digest(self)[:24]}.plan"


@dataclass(frozen=True)
class CalibrationKey:
    """What an INT8 calibration cache depends on (scales are per tensor of one ONNX graph)."""

    tensorrt_version: str
    onnx_sha256: str
    input_width: int
    input_height: int
    source_digest: str

    def filename(self) -> str:
        return f"calibration-{_digest(self)[:24]}.cache"


def _digest(key: Any) -> str:
    return hashlib.sha256(json.dumps(asdict(key), sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hash of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CacheKey(Protocol):
    def filename(self) -> str: ...


class EngineCache:
    """Serialized engines (or calibration caches) on disk, one file per key.

    The file name is a hash of the whole key, so a key that differs in anything (GPU, TensorRT
    version, ONNX content, size, precision, calibration data, DLA core, batch) never finds a
    stale file, and the same key always finds its file. Writes are atomic (temporary file +
    rename): a crash mid-write, or two processes building at once, never leave half a file under
    the final name. A ``.json`` beside each file records the key for people.

    Args:
        directory: where the files live (created on the first store).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        # What get_or_build had to repair, for the backend's notes (also logged).
        self.warnings: list[str] = []

    def path(self, key: CacheKey) -> Path:
        return self.directory / key.filename()

    def load(self, key: CacheKey) -> bytes | None:
        """The stored bytes for ``key``, or None when there is no (non-empty, readable) file."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data or None

    def store(self, key: CacheKey, data: bytes) -> Path:
        """Write ``data`` for ``key`` atomically; returns the file's path."""
        path = self.path(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        if is_dataclass(key):
            path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2))
        return path

    def invalidate(self, key: CacheKey) -> None:
        """Remove the file for ``key`` (and its ``.json``), if present."""
        path = self.path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def get_or_build(
        self,
        key: CacheKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T | None],
    ) -> tuple[T, bool]:
        """The deserialized object for ``key``: from the cache, else built, stored and loaded.

        A cached file that fails to deserialize (truncated, from a broken disk, or written by an
        incompatible library the key did not capture) is logged, removed and rebuilt once.

        Args:
            key: the cache key.
            build: makes the serialized bytes (called at most once).
            deserialize: bytes -> object; returns None (or raises) when the bytes are unusable.

        Returns:
            (object, True when it was built now).

        Raises:
            BackendError: freshly built bytes do not deserialize either.
        """
        cached = self.load(key)
        if cached is not None:
            loaded, problem = _try(deserialize, cached)
            if loaded is not None:
                return loaded, False
            message = (
                f"cached engine {self.path(key)} could not be deserialized ({problem}); rebuilt it"
            )
            _LOG.warning(message)
            self.warnings.append(message)
            self.invalidate(key)
        data = build()
        self.store(key, data)
        loaded, problem = _try(deserialize, data)
        if loaded is None:
            self.invalidate(key)
            raise BackendError(f"a freshly built engine could not be deserialized ({problem})")
        return loaded, True


def _try(deserialize: Callable[[bytes], T | None], data: bytes) -> tuple[T | None, str]:
    try:
        loaded = deserialize(data)
    except Exception as error:  # a library's own exception type: any is "unusable"
        return None, f"{type(error).__name__}: {error}"
    return loaded, "" if loaded is not None else "the deserializer returned nothing"


def profile_shapes(
    max_batch: int, width: int, height: int, static: bool = False
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) input shapes of the engine's optimisation profile.

    Batches 1..max_batch, tuned for ``max_batch`` (a multi-camera node fills it every cycle);
    ``static`` (DLA) pins all three to ``max_batch``.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    full = (int(max_batch), 3, int(height), int(width))
    smallest = full if static else (1, 3, int(height), int(width))
    return smallest, full, full


def run_batch_size(batch: int, max_batch: int, static: bool = False) -> int:
    """The batch size the engine runs for a request of ``batch`` images.

    Raises:
        ValueError: ``batch`` outside 1..max_batch (DepthPredictor splits larger batches by the
            backend's ``max_batch_size``).
    """
    if not 1 <= batch <= max_batch:
        raise ValueError(f"engine takes batches of 1 to {max_batch} images, got {batch}")
    return max_batch if static else batch


class TensorRTBackend(InferenceBackend):
    """Builds (once) or loads a cached engine for the ONNX model and runs it on CUDA.

    Args:
        onnx_path: the exported model (dynamic batch axis; H and W fixed or dynamic).
        input_width, input_height: network input size.
        cache_dir: where engines and calibration caches are kept.
        device: ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        logger: a ``trt.ILogger`` to use instead of a WARNING-level ``trt.Logger``.
        max_batch: largest batch one ``infer`` call takes (e.g. the number of cameras).
        dla_core: DLA core to run on (Jetson), -1 = GPU only.
        calibration: INT8 calibration images; required for ``int8``.

    Raises:
        ValueError: options that cannot work together (int8 without calibration, fp32 on DLA).
        BackendUnavailableError: no TensorRT, no CUDA, or no such DLA core.
        BackendError: parsing, building or deserializing the engine failed.
    """

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        input_width: int,
        input_height: int,
        cache_dir: str | Path,
        device: str = "cuda:0",
        precision: str = "fp16",
        logger: Any = None,
        *,
        max_batch: int = 1,
        dla_core: int = -1,
        calibration: CalibrationSource | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if precision == "int8" and calibration is None:
            raise ValueError("precision int8 needs calibration images (a CalibrationSource)")
        if calibration is not None and (calibration.width, calibration.height) != (
            input_width,
            input_height,
        ):
            raise ValueError(
                f"calibration is for {calibration.width}x{calibration.height}, the engine for "
                f"{input_width}x{input_height}"
            )
        if dla_core >= 0 and precision == "fp32":
            raise ValueError("DLA runs fp16 or int8 only; set precision to fp16 or int8")
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
        self._torch_device = torch.device(self.device)
        self.precision = precision
        self.dla_core = int(dla_core)
        self.max_batch_size = int(max_batch)
        self._static = self.dla_core >= 0
        self._width, self._height = int(input_width), int(input_height)
        self.notes: list[str] = []
        self._trt_logger = logger if logger is not None else trt.Logger(trt.Logger.WARNING)

        onnx_sha256 = file_sha256(onnx_path)
        properties = torch.cuda.get_device_properties(self._torch_device)
        self._calibration = calibration if precision == "int8" else None
        self._calibration_key: CalibrationKey | None = None
        if self._calibration is not None:
            self._calibration_key = CalibrationKey(
                tensorrt_version=trt.__version__,
                onnx_sha256=onnx_sha256,
                input_width=self._width,
                input_height=self._height,
                source_digest=self._calibration.digest(),
            )
        key = EngineKey(
            gpu_name=properties.name,
            compute_capability=f"{properties.major}.{properties.minor}",
            tensorrt_version=trt.__version__,
            onnx_sha256=onnx_sha256,
            input_width=self._width,
            input_height=self._height,
            precision=precision,
            int8_calibration_digest=(
                self._calibration_key.source_digest if self._calibration_key else ""
            ),
            dla_core=self.dla_core,
            max_batch=self.max_batch_size,
        )
        self._cache = EngineCache(cache_dir)
        self.engine_path = self._cache.path(key)

        with torch.cuda.device(self._torch_device):
            self._runtime = trt.Runtime(self._trt_logger)
            if self._static:
                # A DLA engine is deserialized onto the core it was built for.
                self._runtime.DLA_core = self.dla_core
            self._engine, self.engine_built = self._cache.get_or_build(
                key, lambda: self._build(onnx_path), self._runtime.deserialize_cuda_engine
            )
            self._setup_io()
        self.notes.extend(self._cache.warnings)
        action = "built" if self.engine_built else "loaded cached"
        self.notes.append(f"{action} TensorRT engine {self.engine_path}")

    # ----- build -----
    def _build(self, onnx_path: str | Path) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._trt_logger)
        network = builder.create_network(0)  # TensorRT 10: always explicit batch
        parser = trt.OnnxParser(network, self._trt_logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
        if network.num_inputs != 1:
            raise BackendError(
                f"expected a model with one input, {onnx_path} has {network.num_inputs}"
            )
        config = builder.create_builder_config()
        if self.precision in ("fp16", "int8"):
            # Also for int8: layers without INT8 kernels then run in FP16, not FP32.
            config.set_flag(trt.BuilderFlag.FP16)
        if self._static:
            if builder.num_DLA_cores <= self.dla_core:
                raise BackendUnavailableError(
                    f"DLA core {self.dla_core} requested, this device has "
                    f"{builder.num_DLA_cores} DLA cores"
                )
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = self.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        input_name = network.get_input(0).name
        shapes = profile_shapes(self.max_batch_size, self._width, self._height, self._static)
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, *shapes)
        config.add_optimization_profile(profile)
        calibrator = None
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            calibrator = _make_calibrator(
                trt,
                self._torch,
                self._calibration,
                self.max_batch_size,
                self._cache,
                self._calibration_key,
                self._torch_device,
            )
            config.int8_calibrator = calibrator
            # Calibration runs at one fixed shape: the full batch the calibrator yields.
            calibration_profile = builder.create_optimization_profile()
            full = shapes[2]
            calibration_profile.set_shape(input_name, full, full, full)
            config.set_calibration_profile(calibration_profile)
        serialized = builder.build_serialized_network(network, config)
        if calibrator is not None:
            if calibrator.error is not None:
                raise BackendError(f"INT8 calibration failed: {calibrator.error}")
            if calibrator.images_seen:
                self.notes.append(
                    f"INT8 calibrated on {self._calibration.describe()} "
                    f"({calibrator.images_seen} images run)"
                )
            else:
                self.notes.append("INT8 scales read from the calibration cache")
        if serialized is None:
            raise BackendError("TensorRT failed to build an engine (see its log above)")
        return bytes(memoryview(serialized))

    # ----- run -----
    def _setup_io(self) -> None:
        trt, torch = self._trt, self._torch
        engine = self._engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context")
        self._stream = torch.cuda.Stream(device=self._torch_device)
        self._input_name = ""
        output_names = []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._input_name = name
            else:
                output_names.append(name)
        if engine.get_tensor_dtype(self._input_name) != trt.DataType.FLOAT:
            raise BackendError("engine input is not float32")
        full = (self.max_batch_size, 3, self._height, self._width)
        self._input = torch.empty(full, dtype=torch.float32, device=self._torch_device)
        self._host = torch.empty(full, dtype=torch.float32, pin_memory=True)
        if not self._context.set_input_shape(self._input_name, full):
            raise BackendError(f"engine rejects input shape {full}")
        self._context.set_tensor_address(self._input_name, self._input.data_ptr())
        # Allocated once at the largest batch; a smaller batch uses the front of each buffer
        # (batch is the leading axis), so the tensor addresses never change.
        self._outputs: dict[str, Any] = {}
        for name in output_names:
            shape = tuple(self._context.get_tensor_shape(name))
            dtype = _torch_dtype(trt, torch, engine.get_tensor_dtype(name))
            buffer = torch.empty(shape, dtype=dtype, device=self._torch_device)
            self._outputs[name] = buffer
            self._context.set_tensor_address(name, buffer.data_ptr())
        self.output_names = tuple(self._outputs)
        self._context_batch = self.max_batch_size

    def describe(self) -> str:
        extras = [self.precision, f"batch 1-{self.max_batch_size}"]
        if self.dla_core >= 0:
            extras.append(f"DLA core {self.dla_core} + GPU fallback")
        return f"{self.name} on {self.device} ({', '.join(extras)})"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        expected = (3, self._height, self._width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise BackendError(f"engine built for inputs (B, {expected}), got {batch.shape}")
        count = len(batch)
        try:
            run = run_batch_size(count, self.max_batch_size, self._static)
        except ValueError as error:
            raise BackendError(str(error)) from error
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with torch.cuda.device(self._torch_device), torch.cuda.stream(self._stream):
            # Rows count..run (DLA padding) keep older data: their outputs are dropped.
            self._host[:count].copy_(torch.from_numpy(batch))
            self._input[:count].copy_(self._host[:count], non_blocking=True)
            if run != self._context_batch:
                shape = (run, *expected)
                if not self._context.set_input_shape(self._input_name, shape):
                    raise BackendError(f"engine rejects input shape {shape}")
                self._context_batch = run
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError("TensorRT execution failed")
            outputs = {}
            for name, buffer in self._outputs.items():
                shape = tuple(self._context.get_tensor_shape(name))
                size = int(np.prod(shape))
                if size > buffer.numel():
                    raise BackendError(f"output {name} of shape {shape} exceeds its buffer")
                view = buffer.reshape(-1)[:size].view(shape)[:count]
                # .cpu() waits for this stream: the copy sees the finished outputs.
                outputs[name] = view.float().cpu().numpy()
        return outputs

    def close(self) -> None:
        # Context before engine before runtime, as TensorRT requires.
        self._context = None
        self._engine = None
        self._runtime = None
        self._outputs = {}
        self._input = None
        self._host = None


def _torch_dtype(trt: Any, torch: Any, dtype: Any) -> Any:
    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    if dtype not in table:
        raise BackendError(f"engine output of unsupported type {dtype}")
    return table[dtype]


def _make_calibrator(
    trt: Any,
    torch: Any,
    source: CalibrationSource,
    batch_size: int,
    cache: EngineCache,
    key: CalibrationKey,
    device: Any,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` over ``source``; its cache lives in ``cache`` at ``key``."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            # The binding's trampoline must be initialised explicitly.
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = None  # created on the first get_batch: no work on a cache hit
            self._buffer = None
            self.error: Exception | None = None
            self.images_seen = 0

        def get_batch_size(self) -> int:
            # Explicit-batch networks take the batch from the calibration profile's shape;
            # TensorRT 10 deprecates this value and expects 1.
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            # An exception must not cross into TensorRT: keep it, end calibration, raise later.
            try:
                if self._batches is None:
                    self._batches = source.batches(batch_size)
                batch = next(self._batches, None)
                if batch is None:
                    return None
                if self._buffer is None:
                    self._buffer = torch.empty(batch.shape, dtype=torch.float32, device=device)
                self._buffer.copy_(torch.from_numpy(batch))
                torch.cuda.synchronize(device)
                self.images_seen += len(batch)
                return [int(self._buffer.data_ptr()) for _ in names]
            except Exception as error:
                self.error = error
                return None

        def read_calibration_cache(self) -> bytes | None:
            return cache.load(key)

        def write_calibration_cache(self, data: Any) -> None:
            try:
                cache.store(key, bytes(memoryview(data)))
            except OSError as error:  # the engine is still built; only the reuse is lost
                _LOG.warning("could not write the calibration cache: %s", error)

    return EntropyCalibrator()
