"""Counters and latency statistics behind /diagnostics, and the newest-frame slot."""

import threading

import pytest

from depth_perception.frame_pipeline import LatestFrames
from depth_perception.pipeline_stats import PipelineStats


def test_snapshot_means_cover_one_period_and_totals_persist():
    stats = PipelineStats()
    stats.received = 3
    stats.record_frame({"inference": 10.0, "points": 2.0}, latency_s=0.020)
    stats.record_frame({"inference": 20.0, "points": 4.0}, latency_s=0.040)
    stats.record_error("bad_image", "unsupported encoding 'yuv422'")
    first = stats.snapshot()
    assert first["stage_inference_ms"] == pytest.approx(15.0)
    assert first["stage_points_ms"] == pytest.approx(3.0)
    assert first["latency_mean_ms"] == pytest.approx(30.0)
    assert first["latency_max_ms"] == pytest.approx(40.0)
    assert first["frames_processed"] == 2 and first["processed_in_period"] == 2
    assert first["errors_bad_image"] == 1 and first["errors_in_period"] == 1
    assert "yuv422" in first["last_error"]
    second = stats.snapshot()
    assert second["processed_in_period"] == 0 and second["errors_in_period"] == 0
    assert second["frames_processed"] == 2 and second["errors_bad_image"] == 1
    assert second["latency_mean_ms"] == 0.0


def test_latest_frame_slot_keeps_the_newest_and_counts_drops():
    # A single camera is the camera "".
    slot = LatestFrames([""])
    for value in range(5):
        slot.put("", value)
    assert slot.take_all(timeout=0.1) == {"": 4}
    assert slot.dropped == {"": 4} and slot.total_dropped == 4
    assert slot.take_all(timeout=0.01) == {}


def test_latest_frame_slot_wakes_a_waiting_worker():
    slot = LatestFrames([""])
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take_all(timeout=5.0)))
    worker.start()
    slot.put("", "frame")
    worker.join(timeout=5.0)
    assert taken == [{"": "frame"}] and slot.total_dropped == 0
