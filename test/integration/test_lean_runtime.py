"""The ONNX Runtime path runs without torch: the node, `infer` and `bag` with torch unimportable.

Each run is a subprocess whose import system refuses torch, torchvision and onnx as if they were
not installed (a meta-path finder, installed before anything else is imported) and records
every attempt, so an import that some code catches and hides still fails the test. The outputs
are compared with those of the torch-built path (the checkpoint rebuilt in torch, exported and
run by ONNX Runtime, as every start did before the ONNX export was kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ros_harness import RosHarness, ros_session, stamp_ns, test_intrinsics, wait_for_subscription
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from depth_perception.apps.processes import stop_processes
from depth_perception.camera import CameraIntrinsics
from depth_perception.checkpoint_meta import read_checkpoint_meta
from depth_perception.nodes.conversions import (
    array_to_image_msg,
    camera_info_msg,
    image_msg_to_array,
)
from depth_perception.onnx_files import (
    beside_weights_path,
    depth_only_path,
    find_onnx,
    stale_exports,
)
from depth_perception.runtime import bundled_weights
from depth_perception.synthetic import SyntheticWorld
from training.data.fixtures import write_rosbag_fixture

BLOCKED = ("torch", "torchvision", "onnx")

# Runs `python -m <module> <args>` (or `-c <code> <args>`) with BLOCKED unimportable;
# every attempt is appended to $LEAN_IMPORT_LOG.
LAUNCHER = f"""
import os, runpy, sys

BLOCKED = {BLOCKED!r}


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            with open(os.environ["LEAN_IMPORT_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
target = sys.argv[1]
sys.argv = [target, *sys.argv[2:]]
if target == "-c":  # code, as python -c: sys.argv = ["-c", code, args...]
    exec(compile(sys.argv[1], "<lean>", "exec"), {{"__name__": "__main__"}})
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def _lean_env(tmp_path: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LEAN_IMPORT_LOG"] = str(tmp_path / "blocked_imports.txt")
    env["DEPTH_PERCEPTION_CACHE"] = str(cache)
    return env


def _blocked_attempts(tmp_path: Path) -> list[str]:
    log = tmp_path / "blocked_imports.txt"
    return log.read_text().split() if log.exists() else []


def _run_lean(tmp_path: Path, cache: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, module, *args],
        env=_lean_env(tmp_path, cache),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _torch_built_predictor(weights: Path, tmp_path: Path):
    """The checkpoint rebuilt in torch, exported now and run by ONNX Runtime (one thread)."""
    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend
    from depth_perception.checkpoint import load_model
    from depth_perception.export import export_onnx
    from depth_perception.predictor import DepthPredictor, ModelDescription

    model, meta = load_model(weights)
    path = export_onnx(
        model, tmp_path / "reference.onnx", meta.input_width, meta.input_height, True
    )
    description = ModelDescription(
        name=meta.model,
        input_width=meta.input_width,
        input_height=meta.input_height,
        mean=tuple(meta.mean),
        std=tuple(meta.std),
        class_names=tuple(meta.class_names),
        min_depth=meta.min_depth,
        max_depth=meta.max_depth,
        metric=meta.metric,
        trained=True,
        canonical_focal_px=meta.model_args.get("canonical_focal_px"),
        focal_exponent=meta.model_args.get("focal_exponent", 1.0),
    )
    return DepthPredictor(description, OnnxRuntimeBackend(path, num_threads=1)), model


def _frames(count: int, width: int, height: int) -> list[tuple[np.ndarray, CameraIntrinsics]]:
    frames = []
    for scene in range(count):
        frame = SyntheticWorld("indoor", width, height, scene_index=9001 + scene).render(3)
        frames.append((frame.rgb, frame.intrinsics))
    return frames


def _assert_same(depth, labels, expected_depth, expected_labels) -> None:
    # The same export run by the same ONNX Runtime on one thread: the very same numbers.
    np.testing.assert_array_equal(depth, expected_depth)
    np.testing.assert_array_equal(labels, expected_labels)


_PREDICT = """
import sys
from depth_perception.config import PerceptionConfig
from depth_perception.runtime import load_pipeline
from depth_perception.synthetic import SyntheticWorld

pipeline = load_pipeline(PerceptionConfig(backend=sys.argv[2], num_threads=1))
frame = SyntheticWorld("indoor", 160, 120, scene_index=9001).render(0)
prediction = pipeline.predictor.predict(frame.rgb, frame.intrinsics)
assert prediction.depth.shape == (120, 160) and prediction.labels is not None
# a 16:9 camera at an input of its own aspect ratio: the bundled export takes any size
wide = SyntheticWorld("indoor", 320, 180, scene_index=9001).render(0)
prediction = pipeline.predictor.predict(wide.rgb, wide.intrinsics)
assert prediction.depth.shape == (180, 320) and prediction.labels.shape == (180, 320)
print(pipeline.choice.backend.describe(), pipeline.predictor.input_sizes_used)
"""


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_load_pipeline_and_predict_without_torch(tmp_path, backend):
    # The fast tier's guard: the core's ONNX Runtime path (backend onnxruntime, and auto on
    # this GPU-less machine) loads the bundled default and predicts with torch unimportable.
    run = _run_lean(tmp_path, tmp_path / "empty_cache", "-c", _PREDICT, backend)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _blocked_attempts(tmp_path) == []
    assert run.stdout.strip() == "onnxruntime on cpu [(256, 192), (288, 160)]"


def test_bundled_default_ships_its_onnx_export():
    weights = bundled_weights("lightweight")
    info = read_checkpoint_meta(weights)
    path = beside_weights_path(info, info.meta.input_width, info.meta.input_height)
    assert path.is_file(), f"run: depth-perception bundle --checkpoint {weights} --onnx-only"
    assert find_onnx(info, info.meta.input_width, info.meta.input_height) == path
    # Another size has another key: the bundled file is not used for it.
    assert beside_weights_path(info, 128, 96) != path


def test_bundled_onnx_matches_torch_eager_on_camera_frames():
    # The shipped file is the torch model's graph: it agrees with eager torch on real frames.
    # (Bit-identical to a fresh export: the integration tests below compare whole outputs.)
    import torch

    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend
    from depth_perception.checkpoint import load_model
    from depth_perception.predictor import Preprocessor

    weights = bundled_weights("lightweight")
    info = read_checkpoint_meta(weights)
    model, meta = load_model(weights)
    preprocess = Preprocessor(meta.input_width, meta.input_height, meta.mean, meta.std)
    bundled = OnnxRuntimeBackend(find_onnx(info, 256, 192), num_threads=1)
    for rgb, _ in _frames(3, 320, 240):
        batch = preprocess(rgb)
        with torch.no_grad():
            eager = {k: v.numpy() for k, v in model(torch.from_numpy(batch)).items()}
        ours = bundled.infer(batch)
        np.testing.assert_allclose(ours["depth"], eager["depth"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours["seg_logits"], eager["seg_logits"], rtol=1e-3, atol=1e-3)
        # Class ids where the two disagree are ties within the tolerance: very few.
        same = ours["seg_logits"].argmax(1) == eager["seg_logits"].argmax(1)
        assert same.mean() > 0.999


@pytest.mark.integration
def test_infer_without_torch_gives_the_torch_built_outputs(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    frames = _frames(2, 320, 240)
    for index, (rgb, _) in enumerate(frames):
        cv2.imwrite(str(images / f"f{index}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    run = _run_lean(
        tmp_path,
        tmp_path / "empty_cache",
        "depth_perception.cli",
        "infer",
        str(images),
        "-o",
        str(out),
        "--save-depth",
        "npy",
        "--backend",
        "onnxruntime",
        "--num-threads",
        "1",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert _blocked_attempts(tmp_path) == []
    reference, _ = _torch_built_predictor(bundled_weights("lightweight"), tmp_path)
    for index, (rgb, intrinsics) in enumerate(frames):
        expected = reference.predict(rgb, intrinsics)
        depth = np.load(out / f"f{index}_depth.npy")
        np.testing.assert_array_equal(depth, expected.depth)
        assert np.isfinite(depth).mean() > 0.9


def _copy_checkpoint(tmp_path: Path) -> Path:
    """The bundled weights as a user's own checkpoint: no ONNX export beside them."""
    source = bundled_weights("lightweight")
    target = tmp_path / "mine"
    target.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(source.with_suffix(suffix), target / f"lightweight{suffix}")
    return target / "lightweight.safetensors"


def _bag_outputs(path: Path) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            if connection.topic.endswith(("depth/image", "segmentation/mask")):
                msg = reader.deserialize(raw, connection.msgtype)
                dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
                array = np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)
                out.setdefault(connection.topic, []).append(array)
    return out


@pytest.mark.integration
def test_bag_exports_once_with_torch_then_runs_without_it(tmp_path):
    # A checkpoint of the user's own: the first start exports its ONNX (with torch) into the
    # cache, keyed by the weights' hash; the next start finds it there and needs no torch.
    weights = _copy_checkpoint(tmp_path)
    cache = tmp_path / "cache"
    fixture = write_rosbag_fixture(tmp_path / "in", frames=3, size=(96, 72))
    common = [
        "--image-topic",
        fixture.topics["rgb"],
        "--no-progress",
        "--backend",
        "onnxruntime",
        "--num-threads",
        "1",
        "--weights",
        str(weights),
    ]
    blocked_first = _run_lean(
        tmp_path,
        cache,
        "depth_perception.cli",
        "bag",
        str(fixture.path),
        str(tmp_path / "refused"),
        *common,
    )
    assert blocked_first.returncode != 0
    assert "has no ONNX export" in blocked_first.stdout + blocked_first.stderr
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "depth_perception.cli",
            "bag",
            str(fixture.path),
            str(tmp_path / "torch_built"),
            *common,
        ],
        env={**os.environ, "DEPTH_PERCEPTION_CACHE": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    # the export and its depth-only graph
    names = sorted(path.name for path in (cache / "onnx").glob("lightweight-256x192-*.onnx"))
    assert len(names) == 2 and names[0].endswith(".depth.onnx"), names
    (tmp_path / "blocked_imports.txt").unlink(missing_ok=True)
    lean = _run_lean(
        tmp_path,
        cache,
        "depth_perception.cli",
        "bag",
        str(fixture.path),
        str(tmp_path / "lean"),
        *common,
    )
    assert lean.returncode == 0, lean.stdout + lean.stderr
    assert _blocked_attempts(tmp_path) == []
    torch_built, ours = _bag_outputs(tmp_path / "torch_built"), _bag_outputs(tmp_path / "lean")
    assert sorted(ours) == sorted(torch_built) and len(ours) == 2
    for topic, arrays in torch_built.items():
        assert len(ours[topic]) == len(arrays) == 3
        for mine, expected in zip(ours[topic], arrays, strict=True):
            np.testing.assert_array_equal(mine, expected)


@pytest.mark.integration
def test_without_torch_a_checkpoint_lacking_its_onnx_says_what_to_do_and_bundle_fixes_it(tmp_path):
    weights = _copy_checkpoint(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((48, 64, 3), np.uint8))
    run = _run_lean(
        tmp_path,
        tmp_path / "empty_cache",
        "depth_perception.cli",
        "infer",
        str(images),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        str(weights),
    )
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "has no ONNX export" in message and "depth_perception[torch]" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # What the message's README section says to do on a machine with torch: write the export
    # beside the weights; then the same command runs without torch.
    from depth_perception.cli import main as cli_main

    assert cli_main(["bundle", "--checkpoint", str(weights), "--onnx-only"]) == 0
    exports = sorted(weights.parent.glob("lightweight-256x192-*.onnx"))
    assert [path.name.endswith(".depth.onnx") for path in exports] == [True, False]
    assert depth_only_path(exports[1]) == exports[0]
    (tmp_path / "blocked_imports.txt").unlink(missing_ok=True)
    again = _run_lean(tmp_path, tmp_path / "empty_cache", *run.args[3:])
    assert again.returncode == 0, again.stdout + again.stderr
    assert _blocked_attempts(tmp_path) == []


@pytest.fixture(scope="module")
def ros():
    yield from ros_session()


@pytest.mark.integration
def test_node_on_onnxruntime_runs_without_torch(ros, tmp_path):
    namespace = "/lean"
    env = {**ros, **_lean_env(tmp_path, tmp_path / "empty_cache")}
    command = [
        sys.executable,
        "-c",
        LAUNCHER,
        "depth_perception.nodes.mono_depth_node",
        "--ros-args",
        "-r",
        f"__ns:={namespace}",
        "-p",
        "backend:=onnxruntime",
        "-p",
        "num_threads:=1",
    ]
    log = open(tmp_path / "mono_depth.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    harness = RosHarness(namespace)
    reference, _ = _torch_built_predictor(bundled_weights("lightweight"), tmp_path)
    intrinsics = test_intrinsics()
    frames = [
        SyntheticWorld("indoor", intrinsics.width, intrinsics.height, scene_index=9001).render(i)
        for i in (0, 7)
    ]
    # and a 16:9 camera, which the node runs at an input of its own aspect ratio (288x160)
    frames.append(SyntheticWorld("indoor", 320, 180, scene_index=9002).render(0))
    try:
        wait_for_subscription(harness)
        by_stamp = harness.monitor.by_stamp
        for index, frame in enumerate(frames):
            header = Header(frame_id="lean_optical")
            header.stamp.sec, header.stamp.nanosec = 2000 + index, 0

            def publish(frame=frame, header=header) -> None:
                harness.info_pub.publish(camera_info_msg(frame.intrinsics, header))
                harness.image_pub.publish(array_to_image_msg(frame.rgb, header, "rgb8"))

            def done(header=header) -> bool:
                stamp = stamp_ns(header)
                return all(
                    (topic, stamp) in by_stamp
                    for topic in ("depth/image", "depth/camera_info", "segmentation/mask")
                )

            harness.publish_until(publish, done, 60, f"depth and labels of frame {index}")
            # The depth scales with the focal length (canonical_focal_px): compare with the
            # intrinsics the node used, which are the fallback if the image beat its camera_info.
            used = by_stamp[("depth/camera_info", stamp_ns(header))]
            used_intrinsics = CameraIntrinsics.from_matrix(used.k, used.width, used.height)
            expected = reference.predict(frame.rgb, used_intrinsics)
            depth_msg: Image = by_stamp[("depth/image", stamp_ns(header))]
            mask_msg: Image = by_stamp[("segmentation/mask", stamp_ns(header))]
            _assert_same(
                image_msg_to_array(depth_msg),
                image_msg_to_array(mask_msg),
                expected.depth,
                expected.labels,
            )
        time.sleep(0.5)
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert "libtorch" not in maps
    finally:
        harness.close()
        stop_processes([process])
        log.close()
    assert _blocked_attempts(tmp_path) == [], (tmp_path / "mono_depth.log").read_text()
    text = (tmp_path / "mono_depth.log").read_text()
    assert "using the ONNX export" in text and "weights/lightweight-256x192-" in text
    assert "images of 320x180 run at the network input 288x160" in text


@pytest.mark.integration
def test_without_torch_the_torch_backend_falls_back_to_onnxruntime(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((48, 64, 3), 90, np.uint8))
    run = _run_lean(
        tmp_path,
        tmp_path / "empty_cache",
        "depth_perception.cli",
        "infer",
        str(images),
        "-o",
        str(tmp_path / "out"),
        "--backend",
        "torch",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "backend skipped: torch on cpu: the torch backend needs torch" in run.stdout
    assert "on onnxruntime on cpu" in run.stdout
    # The fallback asked for torch once (and was refused), nothing else did.
    assert set(_blocked_attempts(tmp_path)) == {"torch"}


@pytest.mark.parametrize("model", ["lightweight", "lightweight_m"])
def test_an_input_size_the_model_cannot_take_is_refused(model):
    # The bundled checkpoint (no export for this size: the torch model is built to make one)
    # and a model with random weights alike.
    from depth_perception.config import PerceptionConfig
    from depth_perception.runtime import load_pipeline

    with pytest.raises(ValueError, match="not a multiple of 32"):
        load_pipeline(PerceptionConfig(model=model, input_width=100, input_height=64))


def test_hidden_devices_mean_no_gpu_without_asking_torch(monkeypatch):
    from depth_perception.backends import devices

    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert devices.gpu_may_be_present() is False
        assert devices.cuda_usable() is False
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    # Here: True exactly where the machine has NVIDIA/ROCm device nodes.
    nodes = any(Path(p).exists() for p in devices._MARKERS) or any(
        Path("/dev").glob("nvidia[0-9]*")
    )
    assert devices.gpu_may_be_present() is nodes


def test_stale_exports_are_those_no_checkpoint_beside_them_owns(tmp_path):
    weights = _copy_checkpoint(tmp_path)
    info = read_checkpoint_meta(weights)
    # A second checkpoint in the same run directory (other weights): its export is kept too.
    last = weights.with_name("last.safetensors")
    last.write_bytes(weights.read_bytes() + b" ")
    meta = json.loads(weights.with_suffix(".json").read_text())
    meta["weights_sha256"] = hashlib.sha256(last.read_bytes()).hexdigest()
    last.with_suffix(".json").write_text(json.dumps(meta))
    owned = [
        beside_weights_path(info, 256, 192),
        beside_weights_path(info, 128, 96),
        beside_weights_path(read_checkpoint_meta(last), 256, 192),
    ]
    owned.append(depth_only_path(owned[0]))  # a depth-only graph belongs with its export
    stale = weights.parent / "lightweight-256x192-0123456789abcdef01234567.onnx"
    stale_sibling = depth_only_path(stale)
    for path in [*owned, stale, stale_sibling, weights.parent / "notes.onnx"]:
        path.write_bytes(b"onnx")
    assert len(set(owned)) == 4
    assert stale_exports(weights.parent) == sorted([stale, stale_sibling])
