"""Middlebury 2014 stereo scenes as depth ground truth (a zero-shot real-image benchmark).

On-disk format of the Middlebury 2014 data sets (``<Scene>-perfect/`` or ``-imperfect/``
folders as unpacked from the benchmark's zip files; only the left view is used)::

    <root>/<scene>/im0.png      left colour image
    <root>/<scene>/disp0.pfm    left ground-truth disparity in pixels, float32 PFM, inf = unknown
    <root>/<scene>/calib.txt    cam0=[f 0 cx; 0 f cy; 0 0 1], doffs, baseline (mm), width, ...

Depth in metres is ``f * baseline / (disparity + doffs)`` (``depth_from_disparity``) with
``f`` = cam0's focal length in pixels, ``doffs`` the x-difference of the two principal points
and the baseline converted from millimetres. ``root`` may also be one scene folder itself.

PFM (portable float map): a text header ``Pf`` (1 channel) or ``PF`` (3 channels), then
``width height``, then a scale whose sign gives the byte order (negative: little endian,
positive: big endian; its magnitude is not used), each token followed by one whitespace
character, then the float32 rows from the BOTTOM row of the image to the top.

:class:`MiddleburySkimageDataset` is the one-scene set scikit-image ships: *Motorcycle*,
down-sampled 4x (``skimage/data/motorcycle_left.png`` and ``motorcycle_disp.npz``, where
unknown pixels are +inf although the docstring says NaN), with the calibration given in
``skimage.data.stereo_motorcycle``'s docstring. It is read from the installed wheel; nothing
downloads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_perception.camera import CameraIntrinsics, depth_from_disparity
from depth_perception.sample_data import motorcycle_ground_truth, skimage_data_file
from training.data.base import (
    CorruptSampleError,
    SampleDataset,
    Transform,
    check_same_size,
    read_rgb,
)
from training.data.sample import Sample

_PFM_CHANNELS = {b"Pf": 1, b"PF": 3}
_REQUIRED_CALIB = ("cam0", "doffs", "baseline", "width", "height")


def read_pfm(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PFM file as float32, rows top to bottom: (H, W) for ``Pf``, (H, W, 3) for ``PF``.

    Raises:
        CorruptSampleError: missing file, malformed header, zero scale or wrong data size.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "file not found")
    raw = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(raw) and raw[pos : pos + 1].isspace():
            pos += 1
        start = pos
        while pos < len(raw) and not raw[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise CorruptSampleError(path, "truncated PFM header")
        tokens.append(raw[start:pos])
        if len(tokens) == 1 and tokens[0] not in _PFM_CHANNELS:
            raise CorruptSampleError(path, f"not a PFM file (magic {tokens[0][:8]!r})")
    pos += 1  # exactly one whitespace character ends the header
    try:
        width, height = int(tokens[1]), int(tokens[2])
        scale = float(tokens[3])
    except ValueError as err:
        raise CorruptSampleError(path, f"malformed PFM header: {err}") from err
    if width <= 0 or height <= 0:
        raise CorruptSampleError(path, f"PFM size must be positive, got {width}x{height}")
    if scale == 0.0 or not np.isfinite(scale):
        raise CorruptSampleError(
            path, f"PFM scale must be finite and non-zero (its sign is the byte order): {scale}"
        )
    channels = _PFM_CHANNELS[tokens[0]]
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    expected = width * height * channels * 4
    data = raw[pos:]
    if len(data) != expected:
        raise CorruptSampleError(
            path,
            f"PFM data is {len(data)} bytes, expected {expected} for {width}x{height}x{channels} "
            "float32",
        )
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = np.frombuffer(data, dtype=dtype).reshape(shape)
    return np.ascontiguousarray(image[::-1]).astype(np.float32)


@dataclass(frozen=True)
class MiddleburyCalibration:
    """The ``calib.txt`` of one Middlebury 2014 scene.

    Attributes:
        cam0: 3x3 intrinsics of the left camera (pixels).
        doffs: x-difference of the principal points, cam1 minus cam0 (pixels).
        baseline_mm: Camera baseline in millimetres.
        width: Image width in pixels.
        height: Image height in pixels.
        extra: The file's other entries (cam1, ndisp, vmin, vmax, ...) as text.
    """

    cam0: np.ndarray
    doffs: float
    baseline_mm: float
    width: int
    height: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def focal(self) -> float:
        return float(self.cam0[0, 0])

    @property
    def baseline_m(self) -> float:
        return self.baseline_mm / 1000.0

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_matrix(self.cam0, self.width, self.height)


def _matrix(text: str) -> np.ndarray:
    # "[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]": MATLAB syntax, rows split by ';'.
    values = [float(v) for v in re.split(r"[\s;,]+", text.strip().strip("[]").strip()) if v]
    if len(values) != 9:
        raise ValueError(f"expected a 3x3 matrix, got {len(values)} numbers")
    return np.asarray(values, dtype=np.float64).reshape(3, 3)


def read_calibration(path: str | os.PathLike[str]) -> MiddleburyCalibration:
    """Parse a Middlebury 2014 ``calib.txt`` (``key=value`` lines).

    Raises:
        CorruptSampleError: missing file, a required entry (cam0, doffs, baseline, width,
            height) missing or malformed, or non-positive focal length, baseline or size.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "file not found")
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            entries[key.strip()] = value.strip()
    missing = [k for k in _REQUIRED_CALIB if k not in entries]
    if missing:
        raise CorruptSampleError(path, f"calib.txt lacks {', '.join(missing)}")
    try:
        cam0 = _matrix(entries["cam0"])
        doffs = float(entries["doffs"])
        baseline = float(entries["baseline"])
        width, height = int(entries["width"]), int(entries["height"])
    except ValueError as err:
        raise CorruptSampleError(path, f"malformed calib.txt: {err}") from err
    if not (cam0[0, 0] > 0 and baseline > 0 and width > 0 and height > 0):
        raise CorruptSampleError(
            path,
            f"need positive focal length, baseline and size, got f={cam0[0, 0]}, "
            f"baseline={baseline}, {width}x{height}",
        )
    extra = {k: v for k, v in entries.items() if k not in _REQUIRED_CALIB}
    return MiddleburyCalibration(cam0, doffs, baseline, width, height, extra)


def find_scenes(root: str | os.PathLike[str], calib_name: str = "calib.txt") -> list[Path]:
    """Scene folders under ``root`` (those holding ``calib.txt``), sorted; or ``root`` itself."""
    root = Path(root)
    if (root / calib_name).is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / calib_name).is_file())


class MiddleburyDataset(SampleDataset):
    """Middlebury 2014 scenes: left image, depth from the left ground-truth disparity.

    Args:
        root: Folder of scene folders (or one scene folder); layout in the module docstring.
        scenes: Scene folder names to keep, in this order (None: all found, sorted).
        image_file: Left image of a scene (``im0.png``; the benchmark also has ``im0E.png``
            and ``im0L.png``, other exposure and lighting).
        disparity_file: Left disparity (``disp0.pfm``; MiddEval3 names it ``disp0GT.pfm``).
        transform: Applied to every sample.

    Raises:
        ValueError: no scene under ``root``, or a name in ``scenes`` that is not there.
    """

    name = "middlebury"

    def __init__(
        self,
        root: str | os.PathLike[str],
        scenes: list[str] | None = None,
        image_file: str = "im0.png",
        disparity_file: str = "disp0.pfm",
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.image_file = image_file
        self.disparity_file = disparity_file
        found = find_scenes(self.root)
        if not found:
            raise ValueError(
                f"no Middlebury 2014 scene under {self.root}: expected folders holding "
                f"{image_file}, {disparity_file} and calib.txt"
            )
        if scenes is not None:
            by_name = {p.name: p for p in found}
            unknown = [s for s in scenes if s not in by_name]
            if unknown:
                raise ValueError(
                    f"scenes {unknown} are not under {self.root}; found: "
                    f"{', '.join(sorted(by_name))}"
                )
            found = [by_name[s] for s in scenes]
        self.scenes = found

    def __len__(self) -> int:
        return len(self.scenes)

    def path_of(self, index: int) -> str:
        return str(self.scenes[index] / self.image_file)

    def load(self, index: int) -> Sample:
        scene = self.scenes[index]
        calib = read_calibration(scene / "calib.txt")
        image = read_rgb(scene / self.image_file)
        disparity_path = scene / self.disparity_file
        disparity = read_pfm(disparity_path)
        if disparity.ndim != 2:
            raise CorruptSampleError(disparity_path, "disparity must be a one-channel Pf map")
        if image.shape[:2] != (calib.height, calib.width):
            raise CorruptSampleError(
                scene / self.image_file,
                f"image is {image.shape[1]}x{image.shape[0]} but calib.txt says "
                f"{calib.width}x{calib.height}",
            )
        check_same_size(disparity_path, "disparity", disparity, image.shape)
        depth = depth_from_disparity(disparity, calib.focal, calib.baseline_m, calib.doffs)
        return Sample.build(
            image,
            calib.intrinsics(),
            depth=depth,
            meta={"scene": scene.name},
        )


class MiddleburySkimageDataset(SampleDataset):
    """scikit-image's copy of Middlebury 2014 *Motorcycle* (741x500): a one-scene set.

    Args:
        transform: Applied to the sample.

    Raises:
        FileNotFoundError: scikit-image (``scikit-image==0.26.0``) is not installed.
    """

    name = "middlebury_skimage"

    def __init__(self, transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.image_path = skimage_data_file("motorcycle_left.png")
        self.disparity_path = skimage_data_file("motorcycle_disp.npz")

    def __len__(self) -> int:
        return 1

    def path_of(self, index: int) -> str:
        return str(self.image_path)

    def load(self, index: int) -> Sample:
        image = read_rgb(self.image_path)
        try:
            depth, intrinsics = motorcycle_ground_truth()
        except ValueError as err:
            raise CorruptSampleError(self.disparity_path, str(err)) from err
        check_same_size(self.disparity_path, "disparity", depth, image.shape)
        return Sample.build(image, intrinsics, depth=depth, meta={"scene": "Motorcycle"})
