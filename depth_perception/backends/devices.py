"""Whether a CUDA GPU may be present, decided without importing torch.

``backend: auto`` prefers the GPU when there is one, and asking torch costs its import (about
2 s and 700 MB here). A machine without NVIDIA (or ROCm) device nodes cannot have a CUDA
device, so the ONNX Runtime path on a CPU-only robot never needs to ask torch.
"""

from __future__ import annotations

import glob
import os

# Device nodes and files a CUDA (or ROCm, which torch reports as CUDA) device brings: desktop
# and data-centre drivers, Jetson (Tegra) boards, AMD ROCm.
_MARKERS = (
    "/dev/nvidiactl",
    "/proc/driver/nvidia/gpus",
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvgpu",
    "/etc/nv_tegra_release",
    "/dev/kfd",
)


def gpu_may_be_present() -> bool:
    """False when this machine certainly has no usable CUDA device; True when it may have one.

    ``CUDA_VISIBLE_DEVICES`` set to empty or ``-1`` hides every device, as it does for torch.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if any(os.path.exists(marker) for marker in _MARKERS):
        return True
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def cuda_usable() -> bool:
    """Whether torch sees a usable CUDA device; imports torch only where one may be present."""
    if not gpu_may_be_present():
        return False
    from depth_perception.backends.selection import cuda_available

    return cuda_available()
