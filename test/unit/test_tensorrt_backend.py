"""TensorRT backend: engine cache, keys, profiles, INT8 calibration data; backend options.

The TensorRT-free logic runs everywhere. Tests that need TensorRT (marked ``tensorrt``) or a
CUDA device (marked ``gpu``) skip without them, saying why.
"""

import dataclasses
import logging
import shutil

import cv2
import numpy as np
import pytest
import torch

from depth_perception.backends import BackendOptions, create_backend
from depth_perception.backends.calibration import (
    IMAGE_SUFFIXES,
    CalibrationSource,
    families_for_classes,
    find_calibration_images,
)
from depth_perception.backends.tensorrt_backend import (
    CalibrationKey,
    EngineCache,
    EngineKey,
    TensorRTBackend,
    profile_shapes,
    run_batch_size,
)
from depth_perception.backends.torch_backend import TorchBackend
from depth_perception.config import PerceptionConfig
from depth_perception.predictor import Preprocessor
from depth_perception.synthetic import INDOOR_CLASSES, ROAD_CLASSES

WIDTH, HEIGHT = 64, 32  # multiples of the lightweight model's input multiple (32)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
KEY = EngineKey("NVIDIA H100", "9.0", "10.3.0", "abc", 384, 288, "fp16")
MAGIC = b"ENGINE:"


def _deserialize(data: bytes):
    """A stand-in for ``runtime.deserialize_cuda_engine``: None for bytes it cannot use."""
    return data[len(MAGIC) :].decode() if data.startswith(MAGIC) else None


class Builder:
    """Counts builds; returns a valid serialized 'engine'."""

    def __init__(self, payload: str = "built"):
        self.calls = 0
        self.payload = payload

    def __call__(self) -> bytes:
        self.calls += 1
        return MAGIC + self.payload.encode()


# ----- engine key and cache -----


def test_engine_key_filename_is_stable():
    # Fixed expected names: the hash must not depend on the process (no hash() randomisation)
    # or on field order; a change here orphans every cached engine, so it must be deliberate.
    assert KEY.filename() == "engine-e5a659c3e7c9a174fdf667af.plan"
    int8_dla = EngineKey("Orin", "8.7", "10.3.0", "abc", 384, 288, "int8", "d" * 64, 0, 4)
    assert int8_dla.filename() == "engine-255c1e0958d6e3893904416b.plan"
    calibration = CalibrationKey("10.3.0", "abc", 384, 288, "d" * 64)
    assert calibration.filename() == "calibration-164bfdf5f0d8fbafba476b0c.cache"


def test_cache_hit_does_not_build(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, MAGIC + b"cached")
    builder = Builder()
    engine, built = cache.get_or_build(KEY, builder, _deserialize)
    assert (engine, built, builder.calls) == ("cached", False, 0)
    assert cache.warnings == []


CHANGES = [
    {"gpu_name": "Orin"},
    {"compute_capability": "8.7"},
    {"tensorrt_version": "10.4.0"},
    {"onnx_sha256": "abd"},
    {"input_width": 320},
    {"input_height": 256},
    {"precision": "int8"},
    {"int8_calibration_digest": "0" * 64},
    {"dla_core": 0},
    {"max_batch": 4},
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: next(iter(c)))
def test_cache_misses_on_any_key_change(tmp_path, change):
    cache = EngineCache(tmp_path)
    cache.store(KEY, MAGIC + b"stale")
    changed = dataclasses.replace(KEY, **change)
    assert changed.filename() != KEY.filename()
    assert cache.load(changed) is None
    builder = Builder("fresh")
    engine, built = cache.get_or_build(changed, builder, _deserialize)
    assert (engine, built, builder.calls) == ("fresh", True, 1)
    # The other key's engine is untouched, and the new one is found next time.
    assert cache.load(KEY) == MAGIC + b"stale"
    assert cache.get_or_build(changed, Builder(), _deserialize) == ("fresh", False)


def test_store_is_atomic_and_records_the_key(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    path = cache.store(KEY, MAGIC + b"x")
    assert path == tmp_path / "engines" / KEY.filename()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [KEY.filename(), path.with_suffix(".json").name]
    )  # no temporary file left behind
    import json

    assert json.loads(path.with_suffix(".json").read_text())["precision"] == "fp16"
    cache.invalidate(KEY)
    assert list(path.parent.iterdir()) == []
    cache.invalidate(KEY)  # invalidating twice is fine


@pytest.mark.parametrize("corruption", [b"garbage", MAGIC[:3], b""])
def test_corrupt_engine_file_is_rebuilt_once(tmp_path, caplog, corruption):
    cache = EngineCache(tmp_path)
    cache.path(KEY).write_bytes(corruption)
    builder = Builder("rebuilt")
    with caplog.at_level(logging.WARNING):
        engine, built = cache.get_or_build(KEY, builder, _deserialize)
    assert (engine, built, builder.calls) == ("rebuilt", True, 1)
    assert cache.path(KEY).read_bytes() == MAGIC + b"rebuilt"
    if corruption:  # an empty file is simply a miss
        assert "could not be deserialized" in caplog.text
        assert len(cache.warnings) == 1 and KEY.filename() in cache.warnings[0]
    # Repaired: the next lookup loads without building.
    assert cache.get_or_build(KEY, builder, _deserialize) == ("rebuilt", False)
    assert builder.calls == 1


def test_deserializer_exception_counts_as_corrupt(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"old format")

    def strict(data: bytes):
        if not data.startswith(MAGIC):
            raise RuntimeError("version mismatch")
        return "ok"

    builder = Builder()
    assert cache.get_or_build(KEY, builder, strict) == ("ok", True)
    assert "RuntimeError: version mismatch" in cache.warnings[0]


def test_freshly_built_engine_that_does_not_load_is_an_error(tmp_path):
    from depth_perception.backends.base import BackendError

    cache = EngineCache(tmp_path)
    with pytest.raises(BackendError, match="freshly built"):
        cache.get_or_build(KEY, lambda: b"bad", _deserialize)
    assert not cache.path(KEY).exists()  # not left to fail again next start


def test_calibration_key_changes_with_its_inputs():
    base = CalibrationKey("10.3.0", "abc", 384, 288, "d" * 64)
    names = {base.filename()}
    for change in (
        {"tensorrt_version": "10.4.0"},
        {"onnx_sha256": "abd"},
        {"input_width": 320},
        {"input_height": 256},
        {"source_digest": "e" * 64},
    ):
        names.add(dataclasses.replace(base, **change).filename())
    assert len(names) == 6


# ----- profiles and batches -----


def test_profile_shapes_dynamic_and_static():
    assert profile_shapes(4, 320, 240) == ((1, 3, 240, 320), (4, 3, 240, 320), (4, 3, 240, 320))
    assert profile_shapes(1, 320, 240) == ((1, 3, 240, 320),) * 3
    # DLA has no dynamic dimensions: min = opt = max.
    assert profile_shapes(3, 320, 240, static=True) == ((3, 3, 240, 320),) * 3
    with pytest.raises(ValueError, match="max_batch"):
        profile_shapes(0, 320, 240)


def test_run_batch_size():
    assert [run_batch_size(n, 4) for n in (1, 2, 3, 4)] == [1, 2, 3, 4]
    assert [run_batch_size(n, 4, static=True) for n in (1, 2, 4)] == [4, 4, 4]
    for bad in (0, 5):
        with pytest.raises(ValueError, match="1 to 4"):
            run_batch_size(bad, 4)


# ----- calibration data -----


def _write_images(folder, sizes, seed=0):
    """PNG files of random content, one per (width, height); returns their RGB arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index, (width, height) in enumerate(sizes):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame_{index:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append(rgb)
    return images


def test_folder_batches_equal_the_predictors_preprocessing(tmp_path):
    # Larger, smaller and equal to the network size: every resize path of the predictor.
    images = _write_images(
        tmp_path / "cal", [(128, 96), (32, 24), (WIDTH, HEIGHT), (100, 60), (80, 80)]
    )
    (tmp_path / "cal" / "notes.txt").write_text("not an image")
    source = CalibrationSource(WIDTH, HEIGHT, MEAN, STD, folder=str(tmp_path / "cal"))
    assert source.count() == 5
    batches = list(source.batches(2))
    assert [b.shape for b in batches] == [(2, 3, HEIGHT, WIDTH)] * 3
    assert all(b.dtype == np.float32 for b in batches)
    expected = Preprocessor(WIDTH, HEIGHT, MEAN, STD).batch(images)
    stacked = np.concatenate(batches)
    np.testing.assert_array_equal(stacked[:5], expected)
    # The last batch is completed with the first image, not zeros.
    np.testing.assert_array_equal(stacked[5], expected[0])


def test_calibration_normalisation_values(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    cv2.imwrite(
        str(folder / "flat.jpg"),
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 100],
    )
    (batch,) = CalibrationSource(WIDTH, HEIGHT, MEAN, STD, folder=str(folder)).batches(1)
    expected = [
        (255 / 255 - MEAN[0]) / STD[0],
        (128 / 255 - MEAN[1]) / STD[1],
        (0 - MEAN[2]) / STD[2],
    ]
    # Channel order RGB (the file is BGR on disk); JPEG may move a level by one.
    np.testing.assert_allclose(batch[0].mean(axis=(1, 2)), expected, atol=2 / 255 / min(STD))


def test_folder_without_images_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images") as info:
        find_calibration_images(empty)
    assert ".png" in str(info.value) and "synthetic" in str(info.value)
    with pytest.raises(ValueError, match="does not exist"):
        find_calibration_images(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a directory"):
        find_calibration_images(tmp_path / "file.png")
    # Through the source, as the TensorRT backend uses it.
    with pytest.raises(ValueError, match="holds no images"):
        CalibrationSource(WIDTH, HEIGHT, MEAN, STD, folder=str(empty)).digest()


def test_undecodable_image_names_the_file(tmp_path):
    folder = tmp_path / "cal"
    _write_images(folder, [(WIDTH, HEIGHT)])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg cannot be decoded"):
        list(CalibrationSource(WIDTH, HEIGHT, MEAN, STD, folder=str(folder)).batches(1))


def test_large_folders_are_sampled_evenly(tmp_path):
    _write_images(tmp_path / "seq", [(16, 16)] * 10)
    (tmp_path / "seq" / "sub").mkdir()
    _write_images(tmp_path / "seq" / "sub", [(16, 16)])  # recursive: sub/frame_000.png
    picks = find_calibration_images(tmp_path / "seq", max_images=4)
    # 11 sorted files (sub/ last), indices linspace(0, 10, 4) rounded: 0, 3, 7, 10.
    assert [p.relative_to(tmp_path / "seq").as_posix() for p in picks] == [
        "frame_000.png",
        "frame_003.png",
        "frame_007.png",
        "sub/frame_000.png",
    ]
    assert len(find_calibration_images(tmp_path / "seq")) == 11
    assert all(suffix.startswith(".") for suffix in IMAGE_SUFFIXES)


def test_calibration_digest_tracks_the_images_and_preprocessing(tmp_path):
    folder = tmp_path / "cal"
    _write_images(folder, [(32, 24), (40, 30)])

    def digest(**changes):
        values = dict(width=WIDTH, height=HEIGHT, mean=MEAN, std=STD, folder=str(folder))
        values.update(changes)
        return CalibrationSource(**values).digest()

    base = digest()
    assert digest() == base  # stable
    assert digest(width=WIDTH * 2) != base
    assert digest(std=(0.5, 0.5, 0.5)) != base
    # Moving the folder keeps the digest: names are relative.
    moved = tmp_path / "elsewhere" / "cal"
    shutil.copytree(folder, moved)
    assert digest(folder=str(moved)) == base
    # Changing one pixel of one image, or adding an image, changes it.
    image = cv2.imread(str(folder / "frame_000.png"))
    image[0, 0, 0] ^= 1
    cv2.imwrite(str(folder / "frame_000.png"), image)
    changed = digest()
    assert changed != base
    _write_images(tmp_path / "extra", [(8, 8)])
    shutil.copy(tmp_path / "extra" / "frame_000.png", folder / "frame_999.png")
    assert digest() not in (base, changed)
    # Synthetic sources differ from folders and by their settings.
    synthetic = digest(folder="")
    assert synthetic not in (base, changed)
    assert digest(folder="", families=("road",)) != synthetic
    assert digest(folder="", num_images=10) != synthetic


def test_synthetic_batches_are_preprocessed_rendered_frames():
    source = CalibrationSource(WIDTH, HEIGHT, MEAN, STD, families=("indoor",), num_images=3)
    frames = list(source.rgb_images())
    assert len(frames) == 3 and all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert len({f.tobytes() for f in frames}) == 3  # distinct views, not one frame repeated
    batches = list(source.batches(2))
    assert [b.shape for b in batches] == [(2, 3, HEIGHT, WIDTH)] * 2
    expected = Preprocessor(WIDTH, HEIGHT, MEAN, STD).batch(frames)
    np.testing.assert_array_equal(np.concatenate(batches)[:3], expected)
    assert source.describe() == "3 synthetic indoor frames"


def test_families_for_classes():
    assert families_for_classes(ROAD_CLASSES) == ("road",)
    assert families_for_classes(INDOOR_CLASSES) == ("indoor",)
    assert families_for_classes(()) == ("indoor", "road")
    assert families_for_classes(("a", "b")) == ("indoor", "road")


def test_calibration_source_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown synthetic families"):
        CalibrationSource(WIDTH, HEIGHT, MEAN, STD, families=("forest",))
    with pytest.raises(ValueError, match="num_images"):
        CalibrationSource(WIDTH, HEIGHT, MEAN, STD, num_images=0)
    with pytest.raises(ValueError, match="std"):
        CalibrationSource(WIDTH, HEIGHT, MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="batch_size"):
        next(CalibrationSource(WIDTH, HEIGHT, MEAN, STD, num_images=1).batches(0))


# ----- backend options -----


def test_backend_options_validate_and_describe_calibration(tmp_path):
    for bad in ({"precision": "int4"}, {"max_batch": 0}, {"dla_core": -2}, {"num_threads": -1}):
        with pytest.raises(ValueError):
            BackendOptions(**bad)
    options = BackendOptions(
        precision="int8",
        calibration_dir=str(tmp_path),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        calibration_families=("road",),
        calibration_images=7,
    )
    source = options.calibration_source((WIDTH, HEIGHT))
    assert source == CalibrationSource(
        WIDTH, HEIGHT, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), str(tmp_path), ("road",), 7
    )


def test_tensorrt_backend_rejects_impossible_options_before_touching_the_library(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(ValueError, match="int8 needs calibration"):
        TensorRTBackend(onnx, WIDTH, HEIGHT, tmp_path, precision="int8")
    with pytest.raises(ValueError, match="DLA runs fp16 or int8"):
        TensorRTBackend(onnx, WIDTH, HEIGHT, tmp_path, precision="fp32", dla_core=0)
    with pytest.raises(ValueError, match="max_batch"):
        TensorRTBackend(onnx, WIDTH, HEIGHT, tmp_path, max_batch=0)
    wrong_size = CalibrationSource(WIDTH * 2, HEIGHT, MEAN, STD)
    with pytest.raises(ValueError, match="calibration is for"):
        TensorRTBackend(onnx, WIDTH, HEIGHT, tmp_path, precision="int8", calibration=wrong_size)


@pytest.fixture(scope="module")
def model():
    from depth_perception.models import build_model

    torch.manual_seed(0)
    return build_model("lightweight").eval()


def _no_export():
    raise AssertionError("the torch backend must not export ONNX")


def test_cuda_options_leave_the_cpu_torch_path_unchanged(model, tmp_path):
    batch = np.random.default_rng(0).normal(size=(2, 3, HEIGHT, WIDTH)).astype(np.float32)
    with torch.inference_mode():
        expected = {k: v.numpy() for k, v in model(torch.from_numpy(batch)).items()}
    for precision in ("fp32", "fp16", "int8"):
        options = BackendOptions(precision=precision, cuda_graphs=True, max_batch=2)
        choice = create_backend(
            [("torch", "cpu")], model, _no_export, (WIDTH, HEIGHT), tmp_path, options=options
        )
        backend = choice.backend
        assert isinstance(backend, TorchBackend) and choice.skipped == []
        assert backend.fp16 is False and backend.cuda_graphs is False  # CUDA-only options
        outputs = backend.infer(batch)
        assert backend.cuda_graph_active is False
        for key in expected:
            assert outputs[key].dtype == np.float32
            np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-5, atol=1e-6)
        assert backend.describe() == "torch on cpu"


def test_create_backend_keeps_its_positional_form_and_rejects_conflicts(model, tmp_path):
    choice = create_backend([("torch", "cpu")], model, _no_export, (WIDTH, HEIGHT), tmp_path, 0)
    assert choice.backend.name == "torch"
    with pytest.raises(ValueError, match="num_threads"):
        create_backend(
            [("torch", "cpu")],
            model,
            _no_export,
            (WIDTH, HEIGHT),
            tmp_path,
            2,
            options=BackendOptions(num_threads=1),
        )


def test_load_pipeline_passes_max_batch_and_precision():
    from depth_perception.camera import CameraIntrinsics
    from depth_perception.runtime import load_pipeline

    with pytest.raises(ValueError, match="max_batch"):
        load_pipeline(PerceptionConfig(backend="torch", device="cpu"), max_batch=0)
    config = PerceptionConfig(
        backend="torch",
        device="cpu",
        precision="int8",
        cuda_graphs=True,
        input_width=WIDTH,
        input_height=HEIGHT,
    )
    pipeline = load_pipeline(config, max_batch=2)
    try:
        backend = pipeline.choice.backend
        assert backend.name == "torch"
        # No limit from a non-TensorRT backend: the predictor sends the whole batch.
        assert getattr(backend, "max_batch_size", None) is None
        rng = np.random.default_rng(2)
        items = []
        for height in (48, 56, 64):  # one image per camera, sizes may differ
            rgb = rng.integers(0, 255, (height, 64, 3), dtype=np.uint8)
            items.append((rgb, CameraIntrinsics.from_hfov(64, height, 70.0)))
        predictions = pipeline.predictor.predict_batch(items)
        assert [p.depth.shape for p in predictions] == [(48, 64), (56, 64), (64, 64)]
    finally:
        pipeline.close()


# ----- with TensorRT (skipped without it) -----


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    _needs_tensorrt()  # before the export: no export for tests that will skip
    from depth_perception.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "lightweight.onnx"
    export_onnx(model, path, WIDTH, HEIGHT, dynamic_size=False)
    return path


def _needs_tensorrt():
    pytest.importorskip(
        "tensorrt", reason="TensorRT is not installed (pip install tensorrt on a CUDA machine)"
    )
    if not torch.cuda.is_available():
        pytest.skip("TensorRT tests need a CUDA device")


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_runs_every_batch_size_and_reuses_its_engine(precision, onnx_file, tmp_path):
    _needs_tensorrt()
    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = TensorRTBackend(onnx_file, WIDTH, HEIGHT, tmp_path, precision=precision, max_batch=3)
    assert backend.engine_built and backend.max_batch_size == 3
    reference = OnnxRuntimeBackend(onnx_file, num_threads=1)
    rng = np.random.default_rng(0)
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    for count in (1, 3, 2, 1):
        batch = rng.normal(size=(count, 3, HEIGHT, WIDTH)).astype(np.float32)
        outputs = backend.infer(batch)
        expected = reference.infer(batch)
        assert set(outputs) == set(expected)
        for key in expected:
            assert outputs[key].shape == expected[key].shape
            np.testing.assert_allclose(outputs[key], expected[key], rtol=tolerance, atol=tolerance)
    from depth_perception.backends.base import BackendError

    with pytest.raises(BackendError, match="1 to 3"):
        backend.infer(np.zeros((4, 3, HEIGHT, WIDTH), np.float32))
    backend.close()
    again = TensorRTBackend(onnx_file, WIDTH, HEIGHT, tmp_path, precision=precision, max_batch=3)
    assert not again.engine_built and again.engine_path == backend.engine_path
    again.close()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_rebuilds_a_corrupt_engine_file(onnx_file, tmp_path):
    _needs_tensorrt()
    first = TensorRTBackend(onnx_file, WIDTH, HEIGHT, tmp_path)
    path = first.engine_path
    first.close()
    path.write_bytes(path.read_bytes()[:100])  # truncated
    second = TensorRTBackend(onnx_file, WIDTH, HEIGHT, tmp_path)
    assert second.engine_built
    assert any("could not be deserialized" in note for note in second.notes)
    second.close()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_int8_calibrates_once_and_reuses_the_cache(onnx_file, tmp_path):
    _needs_tensorrt()
    source = CalibrationSource(WIDTH, HEIGHT, MEAN, STD, families=("indoor",), num_images=8)
    backend = TensorRTBackend(
        onnx_file, WIDTH, HEIGHT, tmp_path, precision="int8", max_batch=2, calibration=source
    )
    assert any("INT8 calibrated on" in note for note in backend.notes)
    assert list(tmp_path.glob("calibration-*.cache"))
    outputs = backend.infer(np.zeros((2, 3, HEIGHT, WIDTH), np.float32))
    assert np.isfinite(outputs["depth"]).all()
    backend.close()
    # Another batch size is another engine, but the calibration cache is reused.
    other = TensorRTBackend(
        onnx_file, WIDTH, HEIGHT, tmp_path, precision="int8", max_batch=3, calibration=source
    )
    assert other.engine_built
    assert any("read from the calibration cache" in note for note in other.notes)
    other.close()


# ----- torch on CUDA (skipped without it) -----


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision,cuda_graphs", [("fp32", False), ("fp16", True)])
def test_torch_cuda_honours_precision_and_cuda_graphs(model, tmp_path, precision, cuda_graphs):
    batch = np.random.default_rng(0).normal(size=(2, 3, HEIGHT, WIDTH)).astype(np.float32)
    with torch.inference_mode():
        expected = model.cpu()(torch.from_numpy(batch))["depth"].numpy()
    options = BackendOptions(precision=precision, cuda_graphs=cuda_graphs)
    choice = create_backend(
        [("torch", "cuda:0")], model, _no_export, (WIDTH, HEIGHT), tmp_path, options=options
    )
    backend = choice.backend
    try:
        assert backend.fp16 is (precision != "fp32")
        assert backend.cuda_graphs is cuda_graphs
        for _ in range(5):
            outputs = backend.infer(batch)
        tolerance = 1e-3 if precision == "fp32" else 5e-2
        np.testing.assert_allclose(outputs["depth"], expected, rtol=tolerance, atol=tolerance)
        assert backend.cuda_graph_active is cuda_graphs, backend.cuda_graph_error
    finally:
        backend.close()
        model.cpu()
