"""The C cloud kernel writes exactly the numpy path's bytes (and is what builders use)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from depth_perception import pointcloud as pc
from depth_perception.camera import CameraIntrinsics
from depth_perception.pointcloud import OrganizedCloudBuilder

needs_kernel = pytest.mark.skipif(
    pc._cloud_kernel is None,
    reason=f"{pc._KERNEL_IMPORT_ERROR}: build it with `python setup.py build_ext --inplace` "
    "or `pip install -e .` (only the numpy path can be tested)",
)

LAYOUTS = [(False, False), (True, False), (False, True), (True, True)]
KINDS = ["validated", "float32", "float64", "uint16"]
# Odd sizes: SIMD bodies and scalar tails, strided grids that do not divide the image, 1 pixel.
SIZES = [(1, 1), (4, 5), (7, 13), (9, 37), (17, 31)]


def _inputs(height: int, width: int, kind: str, seed: int):
    depths = pc._kernel_probe_depths(height, width, seed)
    depth = depths["float32" if kind == "validated" else kind]
    if kind == "validated":  # the predictor's promise: NaN or finite positive
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    rng = np.random.default_rng(seed + 1)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    return depth, rgb, labels


def _intrinsics(height: int, width: int) -> CameraIntrinsics:
    # cx on a pixel centre: rx = 0 there, so inf * 0 (a float64 depth beyond float32) is hit.
    return CameraIntrinsics(fx=31.0, fy=47.0, cx=width // 2, cy=0.3 * height, width=width,
                            height=height)  # fmt: skip


def _both(intrinsics, depth, rgb, labels, *, stride, with_rgb, with_label, order, validated):
    clouds = []
    for kernel in ("c", "numpy"):
        builder = OrganizedCloudBuilder(
            intrinsics, stride, with_rgb, with_label, order, kernel=kernel
        )
        with np.errstate(all="ignore"):  # signalling NaNs, float64 overflow
            cloud = builder.build(
                depth,
                rgb if with_rgb else None,
                labels if with_label else None,
                validated=validated,
            )
        clouds.append(cloud)
    return clouds


def _assert_same_bytes(c_cloud, np_cloud, what: str) -> None:
    c_bytes, np_bytes = c_cloud.tobytes(), np_cloud.tobytes()
    assert len(c_bytes) == len(np_bytes), what
    if c_bytes != np_bytes:
        words_c = np.frombuffer(c_bytes, np.uint32).reshape(-1, c_cloud.point_step // 4)
        words_np = np.frombuffer(np_bytes, np.uint32).reshape(words_c.shape)
        point = int(np.nonzero((words_c != words_np).any(axis=1))[0][0])
        pytest.fail(
            f"{what}: point {point} differs: C {[hex(w) for w in words_c[point]]} "
            f"numpy {[hex(w) for w in words_np[point]]}"
        )


@needs_kernel
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_rgb, with_label", LAYOUTS)
def test_kernel_bytes_equal_the_numpy_path(with_rgb, with_label, kind, stride):
    for height, width in SIZES:
        for order in ("rgb", "bgr") if with_rgb else ("rgb",):
            depth, rgb, labels = _inputs(height, width, kind, seed=height * 100 + width)
            c_cloud, np_cloud = _both(
                _intrinsics(height, width),
                depth,
                rgb,
                labels,
                stride=stride,
                with_rgb=with_rgb,
                with_label=with_label,
                order=order,
                validated=kind == "validated",
            )
            assert (c_cloud.height, c_cloud.width) == (np_cloud.height, np_cloud.width)
            _assert_same_bytes(c_cloud, np_cloud, f"{height}x{width} {order}")


@needs_kernel
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_takes_non_contiguous_images(kind, stride):
    height, width = 11, 23
    depth, rgb, labels = _inputs(height, width, kind, seed=5)
    views = {
        # A window of a larger image, a Fortran-ordered copy, a doubly flipped copy (negative
        # strides), and BGR pixels read through a channel-reversed view.
        "window": (
            np.pad(depth, 2)[2:-2, 2:-2],
            np.pad(rgb, ((1, 1), (3, 3), (0, 0)))[1:-1, 3:-3],
            np.pad(labels, 1)[1:-1, 1:-1],
        ),
        "fortran": (np.asfortranarray(depth), np.asfortranarray(rgb), np.asfortranarray(labels)),
        "flipped": (
            depth[::-1, ::-1].copy()[::-1, ::-1],
            rgb[::-1, ::-1].copy()[::-1, ::-1],
            labels[::-1, ::-1].copy()[::-1, ::-1],
        ),
        "channels": (depth, rgb[..., ::-1].copy()[..., ::-1], labels),
    }
    reference = None
    for name, (d, c, lab) in views.items():
        assert not (d.flags.c_contiguous and c.flags.c_contiguous and lab.flags.c_contiguous)
        c_cloud, np_cloud = _both(
            _intrinsics(height, width),
            d,
            c,
            lab,
            stride=stride,
            with_rgb=True,
            with_label=True,
            order="rgb",
            validated=kind == "validated",
        )
        _assert_same_bytes(c_cloud, np_cloud, name)
        # ... and the same cloud as from the contiguous images.
        reference = reference or c_cloud.tobytes()
        assert c_cloud.tobytes() == reference, name


@needs_kernel
@pytest.mark.parametrize("with_rgb, with_label", LAYOUTS)
def test_kernel_zeroes_padding_in_a_reused_buffer(with_rgb, with_label):
    intrinsics = _intrinsics(6, 9)
    depth, rgb, labels = _inputs(6, 9, "float32", seed=3)
    kwargs = {"rgb": rgb if with_rgb else None, "labels": labels if with_label else None}
    builder = OrganizedCloudBuilder(intrinsics, with_rgb=with_rgb, with_label=with_label)
    first = builder.build(depth, **kwargs)
    first.data[...] = 0xFF  # whatever a previous frame (or anything else) left there
    again = builder.build(depth, **kwargs)
    assert again.payload is first.payload
    fresh = OrganizedCloudBuilder(
        intrinsics, with_rgb=with_rgb, with_label=with_label, kernel="numpy"
    ).build(depth, **kwargs)
    _assert_same_bytes(again, fresh, "rebuilt over 0xff")


@needs_kernel
def test_kernel_is_the_default_when_built():
    if os.environ.get("DEPTH_PERCEPTION_CLOUD_KERNEL", "").lower() == "numpy":
        pytest.skip("DEPTH_PERCEPTION_CLOUD_KERNEL=numpy is set")
    assert pc.CLOUD_KERNEL == "c", pc.CLOUD_KERNEL_REASON
    assert pc.CLOUD_KERNEL_REASON == ""
    assert OrganizedCloudBuilder(_intrinsics(4, 4)).kernel == "c"


@needs_kernel
def test_kernel_releases_the_gil():
    # While one thread is inside the kernel, another runs Python: it records times strictly
    # inside the kernel call. With the GIL held it could not (the call is one bytecode).
    height, width = 1200, 1600
    intrinsics = _intrinsics(height, width)
    depth = np.full((height, width), 2.0, np.float32)
    builder = OrganizedCloudBuilder(intrinsics)
    builder.build(depth, validated=True)  # allocate the buffer
    for _ in range(5):
        window: list[float] = []
        ticks: list[float] = []
        started = threading.Event()

        def build(window=window, started=started):
            started.set()
            begin = time.perf_counter()
            for _ in range(3):
                builder.build(depth, validated=True)
            window.extend((begin, time.perf_counter()))

        thread = threading.Thread(target=build)
        thread.start()
        started.wait()
        while thread.is_alive():
            ticks.append(time.perf_counter())
        thread.join()
        inside = [t for t in ticks if window[0] < t < window[1]]
        if len(inside) > 10:
            return
    pytest.fail("no Python ran in another thread while the kernel wrote the cloud")


def test_unknown_or_unavailable_kernel_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="kernel must be"):
        OrganizedCloudBuilder(_intrinsics(4, 4), kernel="fortran")
    monkeypatch.setattr(pc, "_cloud_kernel", None)
    monkeypatch.setattr(pc, "_KERNEL_IMPORT_ERROR", "the C extension is not built (test)")
    with pytest.raises(ValueError, match="not built"):
        OrganizedCloudBuilder(_intrinsics(4, 4), kernel="c")
    assert OrganizedCloudBuilder(_intrinsics(4, 4), kernel="numpy").kernel == "numpy"


def _default_kernel_in_a_fresh_process(prelude: str, **env: str) -> list[str]:
    code = (
        f"{prelude}\nfrom depth_perception import pointcloud as pc\n"
        "print(pc.CLOUD_KERNEL); print(pc.CLOUD_KERNEL_REASON)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return run.stdout.splitlines()


def test_numpy_path_when_the_extension_is_missing_or_refused():
    # An install without a compiler has no extension module: the import falls back.
    missing = _default_kernel_in_a_fresh_process(
        "import sys; sys.modules['depth_perception._cloud_kernel'] = None"
    )
    assert missing[0] == "numpy" and "not built" in missing[1], missing
    forced = _default_kernel_in_a_fresh_process("", DEPTH_PERCEPTION_CLOUD_KERNEL="numpy")
    assert forced == ["numpy", "DEPTH_PERCEPTION_CLOUD_KERNEL=numpy"], forced


def test_bench_line_names_the_kernel():
    from depth_perception.apps.bench import cloud_message_line

    figures = {"build_message": 0.5, "build_copy_message": 2.0, "memcpy": 0.25, "megabytes": 6.1}
    line = cloud_message_line({**figures, "kernel": "c", "build_message_numpy": 2.5})
    # The figures test/integration/test_bench.py reads, then the kernel and the numpy path.
    assert line.startswith("cloud build + message 0.50 ms vs memcpy of the same 6.1 MB 0.25 ms")
    assert "2.0x, c kernel (numpy path 2.50 ms, 10.0x)" in line, line
    assert "numpy kernel (with a copy" in cloud_message_line({**figures, "kernel": "numpy"})
