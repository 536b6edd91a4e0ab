"""ONNX Runtime on CPU: the default CPU backend (about 4x faster than torch eager here)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from depth_perception.backends.base import BackendError, BackendUnavailableError, InferenceBackend
from depth_perception.onnx_files import depth_only_path


def usable_cpu_count() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota.

    ``os.cpu_count()`` counts the machine's CPUs even where a container or ``taskset`` gives
    the process fewer; intra-op threads beyond the usable ones only queue behind each other.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as stream:
            quota, period = stream.read().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 quota: the affinity mask is the limit
        pass
    return max(1, count)


def pipeline_intra_op_threads() -> int:
    """Intra-op threads for a network inside a frame pipeline: the usable CPUs but one.

    The pipeline's own thread (decoding, outputs, publish), its executor taking camera
    images and DDS's threads need a core too; on the 2-core VM one intra-op thread instead of
    two raised the node's fps with every output subscribed by 13-14 % and cut its CPU per
    frame by 16-22 % (``depth-perception bench --threads 1`` vs ``--threads 2``, interleaved).
    """
    return max(1, usable_cpu_count() - 1)


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an exported ONNX model with ONNX Runtime's CPU execution provider.

    Args:
        onnx_path: the exported model.
        num_threads: intra-op threads, the calling thread included; 0 = every usable CPU
            (:func:`usable_cpu_count`).
        spinning: let idle intra-op threads busy-wait for the next parallel section. Faster for
            inference alone, but in a node that shares its cores with its own decoding,
            publishing and DDS threads (and other processes), spinning threads take the CPU
            those need; off by default for that reason (``cpu_spinning`` parameter).
    """

    name = "onnxruntime"

    def __init__(
        self, onnx_path: str | Path, num_threads: int = 0, spinning: bool = False
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:  # pragma: no cover - onnxruntime is a hard requirement
            raise BackendUnavailableError(f"onnxruntime is not importable: {error}") from error
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.num_threads = num_threads or usable_cpu_count()
        self.spinning = bool(spinning)
        options.intra_op_num_threads = self.num_threads
        # One frame at a time: parallelism inside operators, not between them.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        flag = "1" if self.spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", flag)
        options.add_session_config_entry("session.inter_op.allow_spinning", flag)
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise BackendError(f"ONNX Runtime could not load {onnx_path}: {error}") from error
        # The export cut down to its depth output, where one lies beside it
        # (onnx_files.depth_only_path): frames whose class ids nobody takes skip the
        # segmentation head (bundled model, 256x192, 1 thread: 5.21 against 5.51 ms).
        self._depth_session = None
        sibling = depth_only_path(onnx_path)
        if sibling.is_file():
            try:
                session = ort.InferenceSession(
                    str(sibling), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:
                raise BackendError(f"ONNX Runtime could not load {sibling}: {error}") from error
            names = [output.name for output in session.get_outputs()]
            if (
                names != ["depth"]
                or session.get_inputs()[0].name != self._session.get_inputs()[0].name
            ):
                raise BackendError(
                    f"{sibling} is not the depth-only graph of {onnx_path}: outputs {names}"
                )
            self._depth_session = session
        network_input = self._session.get_inputs()[0]
        self._input_name = network_input.name
        # A dynamic export names its H and W axes ('height', 'width'); a static one has ints.
        self.variable_input_size = not all(isinstance(d, int) for d in network_input.shape[2:])
        self.output_names = tuple(output.name for output in self._session.get_outputs())
        self.device = "cpu"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._session.run(None, {self._input_name: batch})
        return dict(zip(self.output_names, outputs, strict=True))

    @property
    def has_depth_only_graph(self) -> bool:
        """Whether ``infer_depth`` runs a depth-only graph (else the whole network)."""
        return self._depth_session is not None

    def infer_depth(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._depth_session is None:
            return self.infer(batch)
        (depth,) = self._depth_session.run(None, {self._input_name: batch})
        return {"depth": depth}
