"""The interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class BackendError(RuntimeError):
    """A backend failed to start or to run a batch."""


class BackendUnavailableError(BackendError):
    """A backend cannot run on this machine (library or device missing)."""


class InferenceBackend(ABC):
    """Runs one model on batches of the spatial size it was started for (or of any size).

    Attributes:
        name: backend name as chosen by the ``backend`` parameter.
        device: where it runs, e.g. ``cpu`` or ``cuda:0``.
        output_names: keys of the dict ``infer`` returns.
        variable_input_size: ``infer`` also takes batches of other heights and widths (in
            multiples of the model's ``input_multiple``) than the size the backend was started
            for. False where the size is fixed (a TensorRT engine, a static ONNX export, a
            fixed-size model): the predictor then resizes every image to that size.
    """

    name: str = ""
    device: str = "cpu"
    output_names: tuple[str, ...] = ()
    variable_input_size: bool = False

    @abstractmethod
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a (B, 3, H, W) float32 batch; returns float32 numpy arrays."""

    def infer_depth(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``infer`` for a batch whose class scores nobody needs: at least ``depth``.

        Backends that can skip the segmentation head (ONNX Runtime with a depth-only graph)
        override it; the others run the whole network.
        """
        return self.infer(batch)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends free on GC
        """Free the backend's resources."""

    def describe(self) -> str:
        return f"{self.name} on {self.device}"
