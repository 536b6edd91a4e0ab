"""`depth-perception bench` end to end on a small input: every section prints its figures.

Speed is not asserted (the machine is shared); only that each figure is there and sane.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

NUMBER = r"(\d+(?:\.\d+)?)"


def test_bench_prints_model_stage_ros_and_multicamera_figures(tmp_path):
    env = {**os.environ, "DEPTH_PERCEPTION_CACHE": str(tmp_path / "cache")}
    command = [
        sys.executable,
        "-m",
        "depth_perception.cli",
        "bench",
        "--width",
        "160",
        "--height",
        "120",
        "--input-width",
        "64",
        "--input-height",
        "64",
        "--duration",
        "2",
        "--seconds",
        "0.3",
        "--cameras",
        "1",
        "2",
        "--memory-frames",
        "150",
        "--repeats",
        "1",
        "--compare-spinning",
        "--output",
        str(tmp_path / "bench"),
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "model lightweight at 64x64, camera 160x120" in out
    model_ms = re.search(rf"^\s+onnxruntime\s+{NUMBER} ms\s+{NUMBER} fps", out, re.M)
    torch_ms = re.search(rf"^\s+torch\s+{NUMBER} ms", out, re.M)
    assert model_ms and torch_ms, out
    assert float(model_ms.group(1)) > 0 and float(torch_ms.group(1)) > 0
    for stage in ("convert_in", "preprocess", "inference", "postprocess", "points", "overhead"):
        assert re.search(rf"^\s+{stage}\s+{NUMBER}", out, re.M), stage
    ros = re.search(rf"depth output {NUMBER} fps, latency mean {NUMBER} ms", out)
    assert ros and float(ros.group(1)) > 0, out
    # One row per node variant and subscription mode: fps, latency, CPU ms and % per frame,
    # minor and major page faults per frame, from the node process's /proc/<pid>/stat.
    e2e = {
        (m.group(1).strip(), m.group(2)): [float(v) for v in m.groups()[2:]]
        for m in re.finditer(
            rf"^  (this checkout|this, cpu_spinning)\s+(all|depth|cloud)\s+{NUMBER}\s+{NUMBER}"
            rf"\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$",
            out,
            re.M,
        )
    }
    assert len(e2e) == 6, out
    for (variant, mode), (fps, latency, cpu_ms, cpu_percent, minor, major) in e2e.items():
        assert fps > 0 and latency > 0 and cpu_ms > 0 and cpu_percent > 0, (variant, mode)
        assert minor >= 0 and major >= 0
    assert "median of 1 interleaved run; load average" in out
    assert re.search(rf"this checkout / this, cpu_spinning, depth: fps {NUMBER}x", out), out
    assert re.search(rf"^\s+onnxruntime_spinning\s+{NUMBER} ms", out, re.M), out
    cloud = re.search(
        rf"cloud build \+ message {NUMBER} ms vs memcpy of the same {NUMBER} MB {NUMBER} ms", out
    )
    assert cloud and float(cloud.group(3)) > 0, out
    rows = {
        int(m.group(1)): [float(v) for v in m.groups()[1:]]
        for m in re.finditer(
            rf"^\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+-?\d+$",
            out.split("multi-camera over ROS 2")[-1],
            re.M,
        )
    }
    assert sorted(rows) == [1, 2], out
    for count, (per_camera, minimum, total, batch, latency) in rows.items():
        assert per_camera > 0 and minimum > 0 and latency > 0
        assert total == pytest.approx(per_camera * count, rel=0.02, abs=0.2)
        assert 1.0 <= batch <= count
    assert re.search(rf"2 cameras vs 1, total throughput: {NUMBER}x", out), out
    assert "onnxruntime vs torch eager (CPU) speed-up" in out
    memory = re.search(
        r"node RSS after (\d+) frames ([\d,]+) KiB, after (\d+) frames ([\d,]+) KiB", out
    )
    assert memory, out
    assert int(memory.group(3)) >= 150 > int(memory.group(1)) >= 0
    assert int(memory.group(2).replace(",", "")) > 10_000  # a Python + torch process


def test_bench_startup_prints_first_depth_and_memory_of_both_paths(tmp_path):
    env = {**os.environ, "DEPTH_PERCEPTION_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "depth_perception.cli", "bench", "--startup"]
    command += ["--repeats", "1", "--steady", "1", "--width", "160", "--height", "120"]
    command += ["--output", str(tmp_path / "bench")]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4)), m.group(7))
        for m in re.finditer(
            rf"^\s+(onnxruntime|torch)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"
            r"\s+(True|False)$",
            out,
            re.M,
        )
    }
    assert sorted(rows) == ["onnxruntime", "torch"], out
    for first, cpu, rss, _ in rows.values():
        assert first > 0 and 0 < cpu and rss > 10
    # The ONNX Runtime node never maps libtorch; the torch backend's does.
    assert rows["onnxruntime"][3] == "False" and rows["torch"][3] == "True"
    assert rows["onnxruntime"][2] < rows["torch"][2]
    assert re.search(rf"onnxruntime vs torch: first depth {NUMBER}x sooner", out), out
    assert "load average" in out
