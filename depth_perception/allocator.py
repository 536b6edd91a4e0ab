"""Keep the C allocator from handing per-frame message buffers back to the kernel.

A node receives and sends buffers of 1-6 MB every frame (a 640x480 rgb8 image is 900 KB, the
cloud 6 MB): rmw and rclpy allocate and free them in C for every message. glibc's malloc
serves blocks above ``M_MMAP_THRESHOLD`` (128 KB at start, raised by itself only now and then)
with a fresh ``mmap`` and gives the memory back on ``free``, so every message touches fresh
pages: measured here, a subscriber taking 640x480 images at 60 Hz had 644 minor page faults
per image and spent 5.4-6.0 ms of CPU per image; with the thresholds below, 0 faults and
2.6-3.1 ms, in the same run. Whether the untuned process faults depends on the order of its
early allocations, so the cost also varied from run to run.

:func:`tune_for_large_messages` fixes both thresholds once, before any message exists. The
price is memory that stays with the process after a peak (up to the trim threshold at the top
of the heap), which is what a long-running node wants. Set ``DEPTH_PERCEPTION_MALLOC_TUNING=0``
to leave the allocator as it is. Other C libraries (musl, macOS) are left alone. Imports no
rclpy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (glibc <malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Blocks up to 32 MiB (glibc's own ceiling for the dynamic threshold on 64-bit) come from the
# heap; up to 128 MiB free at its top is kept for the next frame.
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20

OPT_OUT_VARIABLE = "DEPTH_PERCEPTION_MALLOC_TUNING"


def tune_for_large_messages(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> str:
    """Set glibc's mmap and trim thresholds for a process that moves MB-sized messages.

    Returns:
        What was done, for the node's log: ``"tuned (...)"``, or why nothing was
        (``DEPTH_PERCEPTION_MALLOC_TUNING=0``, not glibc, mallopt refused).
    """
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"left as it is ({OPT_OUT_VARIABLE}=0)"
    if not sys.platform.startswith("linux"):
        return f"left as it is (not glibc: {sys.platform})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # gnu_get_libc_version exists only in glibc: mallopt elsewhere means other things.
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "left as it is (not glibc)"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mmap_set = mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    if not (mmap_set and mallopt(M_TRIM_THRESHOLD, trim_threshold)):
        return "left as it is (mallopt refused the thresholds)"
    return (
        f"tuned (glibc {version}: blocks up to {mmap_threshold >> 20} MiB from the heap, "
        f"{trim_threshold >> 20} MiB kept free at its top)"
    )
