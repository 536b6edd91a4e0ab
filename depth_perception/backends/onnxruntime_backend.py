"""ONNX Runtime on CPU: the default CPU backend (about 4x faster than torch eager here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from depth_perception.backends.base import BackendError, BackendUnavailableError, InferenceBackend


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an exported ONNX model with ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, num_threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:  # pragma: no cover - onnxruntime is a hard requirement
            raise BackendUnavailableError(f"onnxruntime is not importable: {error}") from error
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = num_threads or (os.cpu_count() or 1)
        # One frame at a time: parallelism inside operators, not between them.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise BackendError(f"ONNX Runtime could not load {onnx_path}: {error}") from error
        self._input_name = self._session.get_inputs()[0].name
        self.output_names = tuple(output.name for output in self._session.get_outputs())
        self.device = "cpu"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._session.run(None, {self._input_name: batch})
        return dict(zip(self.output_names, outputs, strict=True))
