"""Inference backends behind one interface, and the choice among them.

A backend takes a normalised NCHW float32 batch and returns the model's outputs as numpy
arrays keyed like the model's forward (``depth`` and, for multi-task models, ``seg_logits``).
"""

from depth_perception.backends.base import (
    BackendError,
    BackendUnavailableError,
    InferenceBackend,
)
from depth_perception.backends.selection import (
    BackendOptions,
    backend_chain,
    create_backend,
    cuda_available,
)

__all__ = [
    "BackendError",
    "BackendOptions",
    "BackendUnavailableError",
    "InferenceBackend",
    "backend_chain",
    "create_backend",
    "cuda_available",
]
