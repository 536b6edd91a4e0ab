"""The allocator tuning of the node processes: applied on glibc, refused by the opt-out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from depth_perception import allocator

# Frees and re-allocates ~1 MB blocks (an image message's size) and counts the minor page
# faults per block: untuned glibc hands such blocks back to the kernel (420 faults per block
# in the main thread on the CI VM), tuned it keeps them (2).
PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from depth_perception.allocator import tune_for_large_messages
    if sys.argv[1] == "tuned":
        print(tune_for_large_messages())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(100):
        block = np.empty(921600 + (i % 3) * 4096, np.uint8)
        block[::4096] = 1
        copy = bytes(block)
        del block, copy
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
    """
)


def _faults_per_block(mode: str, env: dict | None = None) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.split("\n")
    return out[0], float(out[-2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_process_reuses_message_sized_blocks():
    note, faults = _faults_per_block("tuned")
    assert note.startswith("tuned (glibc"), note
    assert faults < 20, f"{faults} minor faults per 900 KB block after tuning"


def test_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv(allocator.OPT_OUT_VARIABLE, "0")
    assert allocator.tune_for_large_messages().startswith("left as it is")
