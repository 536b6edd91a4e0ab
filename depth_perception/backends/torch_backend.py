"""PyTorch eager on CPU or CUDA: the universal fallback."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from depth_perception.backends.base import BackendUnavailableError, InferenceBackend


class TorchBackend(InferenceBackend):
    """Runs the nn.Module directly; on CUDA the batch is uploaded from pinned memory."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", num_threads: int = 0) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device '{device}' requested but CUDA is not available")
        if device == "cpu" and num_threads:
            torch.set_num_threads(num_threads)
        self.device = device
        self._model = model.to(device).eval()
        self._torch_device = torch.device(device)
        self.output_names = ()

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        tensor = torch.from_numpy(batch)
        if self._torch_device.type == "cuda":
            tensor = tensor.pin_memory().to(self._torch_device, non_blocking=True)
        outputs = self._model(tensor)
        if not self.output_names:
            self.output_names = tuple(outputs)
        return {key: value.float().cpu().numpy() for key, value in outputs.items()}

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]
        if self._torch_device.type == "cuda":
            torch.cuda.empty_cache()
