"""Counters and per-stage latency statistics of the perception pipeline (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict


class PipelineStats:
    """Collects what /diagnostics reports: rates, per-stage latency, drops and errors.

    The worker thread records; the diagnostics timer takes snapshots, each of which covers the
    period since the previous one (means over that period, totals since the last reset).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.processed = 0
            self.rate_limited = 0
            self.fallback_intrinsics = 0
            self.errors: Counter[str] = Counter()
            self.last_error = ""
            self.last_warning = ""
            self._period_start = time.monotonic()
            self._period_frames = 0
            self._period_errors = 0
            self._period_warnings = 0
            self._stage_sums: defaultdict[str, float] = defaultdict(float)
            self._latency_sum = 0.0
            self._latency_max = 0.0

    def record_frame(self, timings_ms: dict[str, float], latency_s: float) -> None:
        """One frame fully processed; ``latency_s`` is now minus the image's stamp."""
        with self._lock:
            self.processed += 1
            self._period_frames += 1
            for stage, value in timings_ms.items():
                self._stage_sums[stage] += value
            self._latency_sum += latency_s
            self._latency_max = max(self._latency_max, latency_s)

    def record_error(self, kind: str, text: str, detail: str = "") -> None:
        """A frame (or an input message) that could not be used, by kind.

        ``detail`` also counts the error under ``<kind>_<detail>`` (e.g. ``bad_image_step``),
        so diagnostics show both the total and the precise reason.
        """
        with self._lock:
            self.errors[kind] += 1
            if detail:
                self.errors[f"{kind}_{detail}"] += 1
            self._period_errors += 1
            self.last_error = f"{kind}: {text}"

    def record_warning(self, kind: str, text: str) -> None:
        """Questionable input that was still processed (counted as ``errors_<kind>`` too)."""
        with self._lock:
            self.errors[kind] += 1
            self._period_warnings += 1
            self.last_warning = f"{kind}: {text}"

    def snapshot(self) -> dict[str, object]:
        """Figures for the period since the last snapshot, and totals; starts a new period."""
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._period_start, 1e-9)
            frames = self._period_frames
            values: dict[str, object] = {
                "rate_hz": frames / elapsed,
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_rate_limited": self.rate_limited,
                "processed_in_period": frames,
                "errors_in_period": self._period_errors,
                "warnings_in_period": self._period_warnings,
                "fallback_intrinsics": self.fallback_intrinsics,
                "latency_mean_ms": 1e3 * self._latency_sum / frames if frames else 0.0,
                "latency_max_ms": 1e3 * self._latency_max,
            }
            for stage, total in sorted(self._stage_sums.items()):
                values[f"stage_{stage}_ms"] = total / frames if frames else 0.0
            for kind, count in sorted(self.errors.items()):
                values[f"errors_{kind}"] = count
            values["last_error"] = self.last_error
            values["last_warning"] = self.last_warning
            self._period_start = now
            self._period_frames = 0
            self._period_errors = 0
            self._period_warnings = 0
            self._stage_sums.clear()
            self._latency_sum = 0.0
            self._latency_max = 0.0
            return values
