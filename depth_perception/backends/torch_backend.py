"""PyTorch eager on CPU or CUDA: the universal fallback.

On CUDA three things make it fast (none of them touches the CPU path):

* FP16 autocast (``torch.autocast("cuda", dtype=torch.float16)``): outputs are returned as
  float32 like everywhere else.
* A pinned host buffer and a separate copy stream: the upload of a batch is queued on the copy
  stream and the compute stream waits on it with an event, so an upload does not serialise
  behind unrelated work on the default stream, and the host copy is a plain memcpy into
  page-locked memory (no per-call ``pin_memory()`` allocation).
* Optional CUDA graphs for the fixed input shape: after ``warmup_runs`` eager calls on a side
  stream the forward pass is captured once with ``torch.cuda.CUDAGraph`` and later calls only
  copy the input into the static tensor and ``replay()``. If capture fails (an operator that
  cannot be captured, out of memory), the backend stays eager and says why in
  ``cuda_graph_error``. A batch of another shape (another camera count) runs eagerly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from depth_perception.backends.base import BackendUnavailableError, InferenceBackend


class TorchBackend(InferenceBackend):
    """Runs the nn.Module directly; on CUDA optionally in FP16 and through a CUDA graph.

    Args:
        model: the network; moved to ``device`` and put in eval mode.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        num_threads: CPU intra-op threads (0 = leave torch's default).
        fp16: on CUDA, run under FP16 autocast (ignored on the CPU). ``create_backend`` sets it
            from ``BackendOptions.precision``: on unless ``fp32`` (int8 has no torch path).
        cuda_graphs: on CUDA, capture a CUDA graph of the forward pass after warm-up (ignored
            on the CPU).
        warmup_runs: eager calls of one shape before capturing it (cuDNN picks its algorithms
            and the caching allocator settles during these).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: str = "cpu",
        num_threads: int = 0,
        fp16: bool = True,
        cuda_graphs: bool = False,
        warmup_runs: int = 3,
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device '{device}' requested but CUDA is not available")
        if device == "cpu" and num_threads:
            torch.set_num_threads(num_threads)
        self.device = device
        self._model = model.to(device).eval()
        # Convolutional models take any multiple of their input_multiple; a few are built
        # for one size (``fixed_input_size``, e.g. fully connected layers).
        self.variable_input_size = getattr(model, "fixed_input_size", None) is None
        self._torch_device = torch.device(device)
        self.output_names = ()
        self._cuda = self._torch_device.type == "cuda"
        self.fp16 = bool(fp16 and self._cuda)
        self.cuda_graphs = bool(cuda_graphs and self._cuda)
        self.warmup_runs = max(int(warmup_runs), 1)
        self.cuda_graph_error = ""
        self._host: torch.Tensor | None = None  # pinned staging buffer
        self._copy_stream = torch.cuda.Stream(self._torch_device) if self._cuda else None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_shape: tuple[int, ...] | None = None
        self._static_input: torch.Tensor | None = None
        self._static_outputs: dict[str, torch.Tensor] | None = None
        self._eager_runs: dict[tuple[int, ...], int] = {}

    @property
    def cuda_graph_active(self) -> bool:
        """True once a CUDA graph has been captured and is replayed."""
        return self._graph is not None

    def describe(self) -> str:
        extras = []
        if self.fp16:
            extras.append("fp16")
        if self.cuda_graph_active:
            extras.append("cuda graph")
        return f"{self.name} on {self.device}" + (f" ({', '.join(extras)})" if extras else "")

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if not self._cuda:
            outputs = self._model(torch.from_numpy(batch))
            if not self.output_names:
                self.output_names = tuple(outputs)
            return {key: value.float().numpy() for key, value in outputs.items()}
        return self._infer_cuda(batch)

    # ----- CUDA -----
    def _upload(self, batch: np.ndarray) -> torch.Tensor:
        """Copy ``batch`` to the device on the copy stream; the current stream waits for it."""
        shape = tuple(batch.shape)
        if self._host is None or tuple(self._host.shape) != shape:
            self._host = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        compute = torch.cuda.current_stream(self._torch_device)
        # The previous batch's upload must be done before its pinned buffer is overwritten.
        self._copy_stream.synchronize()
        self._host.copy_(torch.from_numpy(batch))
        with torch.cuda.stream(self._copy_stream):
            device_tensor = torch.empty(shape, dtype=torch.float32, device=self._torch_device)
            device_tensor.copy_(self._host, non_blocking=True)
        compute.wait_stream(self._copy_stream)
        # Allocated on the copy stream, used on the compute stream: tell the allocator.
        device_tensor.record_stream(compute)
        return device_tensor

    def _forward(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        # The autocast weight cache cannot live across a graph capture (torch.cuda.graphs docs).
        with torch.autocast(
            "cuda", dtype=torch.float16, enabled=self.fp16, cache_enabled=not self.cuda_graphs
        ):
            return dict(self._model(tensor))

    def _infer_cuda(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        tensor = self._upload(batch)
        shape = tuple(batch.shape)
        if self._graph is not None and shape == self._graph_shape:
            self._static_input.copy_(tensor)
            self._graph.replay()
            outputs = self._static_outputs
        else:
            outputs = self._forward(tensor)
            runs = self._eager_runs.get(shape, 0) + 1
            self._eager_runs[shape] = runs
            if (
                self.cuda_graphs
                and self._graph is None
                and not self.cuda_graph_error
                and runs >= self.warmup_runs
            ):
                self._capture(tensor)
        if not self.output_names:
            self.output_names = tuple(outputs)
        # .cpu() synchronises with the compute stream; the static outputs are copied out
        # before the next replay can overwrite them.
        return {key: value.float().cpu().numpy() for key, value in outputs.items()}

    def _capture(self, example: torch.Tensor) -> None:
        """Capture the forward pass for ``example``'s shape; on failure stay eager."""
        try:
            static_input = example.clone()
            # Warm-up on a side stream, as the CUDA graphs documentation requires.
            side = torch.cuda.Stream(self._torch_device)
            side.wait_stream(torch.cuda.current_stream(self._torch_device))
            with torch.cuda.stream(side):
                self._forward(static_input)
            torch.cuda.current_stream(self._torch_device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_outputs = self._forward(static_input)
            graph.replay()  # a first replay proves the graph runs
            torch.cuda.synchronize(self._torch_device)
        except Exception as error:  # any capture failure: eager from now on, and say why
            self.cuda_graph_error = f"{type(error).__name__}: {error}"
            self._graph = None
            torch.cuda.synchronize(self._torch_device)
            return
        self._graph = graph
        self._graph_shape = tuple(example.shape)
        self._static_input = static_input
        self._static_outputs = static_outputs

    def close(self) -> None:
        self._graph = None
        self._static_input = None
        self._static_outputs = None
        self._host = None
        self._model = None  # type: ignore[assignment]
        if self._cuda:
            torch.cuda.empty_cache()
