"""The end-to-end bench's process sampling and medians (no ROS needed)."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from depth_perception.apps.bench_e2e import (
    ModeResult,
    median_result,
    sample_process,
    sample_threads,
    thread_group,
)


def test_sample_process_counts_cpu_time_and_page_faults() -> None:
    pages = 2048
    memory = mmap.mmap(-1, pages * mmap.PAGESIZE)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # 4 KiB pages: one fault per page touched
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    before = sample_process(os.getpid())
    np.frombuffer(memory, np.uint8)[:: mmap.PAGESIZE] = 1  # first touch of every page
    total = sum(int(np.sum(np.arange(200_000))) for _ in range(50))  # some CPU time
    after = sample_process(os.getpid())
    memory.close()
    assert total > 0
    assert after.minor_faults - before.minor_faults >= pages
    assert after.major_faults >= before.major_faults
    assert after.cpu_s >= before.cpu_s


def test_thread_groups_name_the_executor_dds_and_worker_threads() -> None:
    assert thread_group(100, 100, "python") == "executor"
    assert thread_group(100, 101, "dds.shm.7411") == "dds"
    assert thread_group(100, 102, "python") == "worker"


def test_sample_threads_charges_a_busy_thread_to_its_group() -> None:
    burned, sampled = threading.Event(), threading.Event()

    def burn() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        burned.set()
        sampled.wait(10.0)  # alive until sampled: an ended thread's time is gone

    before = sample_threads(os.getpid())
    thread = threading.Thread(target=burn)
    thread.start()
    assert burned.wait(30.0)
    during = sample_threads(os.getpid())
    sampled.set()
    thread.join()
    assert during.get("worker", 0.0) - before.get("worker", 0.0) >= 0.2
    assert during["executor"] >= before["executor"]


def test_sample_process_of_a_process_that_is_gone_raises() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(OSError):
        sample_process(child.pid)


def test_median_result_is_field_wise_and_skips_failed_runs() -> None:
    def row(fps: float, cpu: float, error: str | None = None) -> ModeResult:
        return ModeResult(fps, 10.0, cpu, 50.0, 1.0, 0.0, 100, {"inference": cpu}, error)

    median = median_result([row(10, 3), row(30, 1), row(20, 2), row(0, 0, "failed")])
    assert (median.fps, median.cpu_ms_per_frame, median.stages["inference"]) == (20, 2, 2)
    assert median.error is None
    assert median_result([row(0, 0, "boom")]).error == "boom"


def test_model_timings_are_interleaved_round_by_round() -> None:
    from depth_perception.apps.bench import time_interleaved

    calls: list[str] = []
    medians = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        min_seconds=0.0,
        min_rounds=4,
    )
    assert set(medians) == {"a", "b"}
    assert all(value >= 0.0 for value in medians.values())
    # one warm-up call each, then a, b, a, b, ...: neither variant is timed in a block
    assert calls[:2] == ["a", "b"]
    assert calls[2:] == ["a", "b"] * ((len(calls) - 2) // 2)
    assert len(calls) >= 2 + 2 * 4
