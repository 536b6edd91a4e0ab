"""INT8 calibration data: which images, preprocessed how, and a digest that names them.

TensorRT's INT8 calibrator needs representative network inputs. They come either from a folder
of camera images (``int8_calibration_dir``) or, when none is given, from frames rendered by
``depth_perception.synthetic`` for the model's class family (road or indoor, both when the
model's classes are neither). Every image goes through the predictor's own ``Preprocessor``
(resize to the network size, then the checkpoint's mean/std), so the calibrated ranges are those
of the tensors the engine sees at run time.

Everything here is TensorRT-free: the TensorRT backend only copies ``batches()`` to the GPU.
The digest keys the calibration cache and the INT8 engine: it changes with the images (names
and content), their number, the network size and the normalisation, and with nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_perception.predictor import Preprocessor

# What cv2.imread reads on every platform OpenCV supports.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".ppm",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
SYNTHETIC_FAMILIES: tuple[str, ...] = ("indoor", "road")
# Bump when the selection or rendering of synthetic calibration frames changes: old calibration
# caches and INT8 engines are then rebuilt.
_SYNTHETIC_VERSION = 1
# Scenes per family: several layouts, not hundreds of frames of one room.
_SCENES_PER_FAMILY = 4


def find_calibration_images(folder: str | Path, max_images: int = 0) -> list[Path]:
    """The image files of ``folder`` (recursively, sorted), at most ``max_images`` of them.

    When there are more than ``max_images``, an evenly spaced subset of the sorted list is
    taken, so a folder holding one recorded sequence is sampled along all of it.

    Args:
        folder: directory of images (``~`` is expanded).
        max_images: upper bound (0 = all).

    Raises:
        ValueError: the folder does not exist, is not a directory, or holds no image file.
    """
    root = Path(os.path.expanduser(str(folder)))
    if not root.exists():
        raise ValueError(
            f"int8_calibration_dir {root} does not exist; give a folder of sample camera "
            "images, or leave it empty to calibrate on synthetic frames"
        )
    if not root.is_dir():
        raise ValueError(f"int8_calibration_dir {root} is not a directory")
    images = sorted(
        path
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
    if not images:
        raise ValueError(
            f"int8_calibration_dir {root} holds no images ({', '.join(IMAGE_SUFFIXES)}); add "
            "a few hundred frames from the target cameras, or leave the parameter empty to "
            "calibrate on synthetic frames"
        )
    if max_images and len(images) > max_images:
        picks = np.linspace(0, len(images) - 1, max_images).round().astype(int)
        images = [images[i] for i in picks]
    return images


def families_for_classes(class_names: Sequence[str]) -> tuple[str, ...]:
    """The synthetic scene families that match a model's classes.

    ``("road",)`` for the Cityscapes classes, ``("indoor",)`` for the indoor classes, and both
    for anything else (depth-only models, custom label sets).
    """
    from depth_perception.synthetic.classes import INDOOR_CLASSES, ROAD_CLASSES

    names = tuple(class_names)
    if names and names == tuple(ROAD_CLASSES):
        return ("road",)
    if names and names == tuple(INDOOR_CLASSES):
        return ("indoor",)
    return SYNTHETIC_FAMILIES


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and 16-bit images converted).

    Raises:
        ValueError: OpenCV cannot decode the file.
    """
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"calibration image {path} cannot be decoded; remove it from the folder")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class CalibrationSource:
    """Where INT8 calibration images come from, and how they are turned into network inputs.

    Args:
        width, height: network input size.
        mean, std: the model's normalisation (as in its checkpoint).
        folder: directory of camera images; empty = synthetic frames.
        families: synthetic scene families to render when ``folder`` is empty (see
            ``families_for_classes``).
        num_images: at most this many images of the folder, or exactly this many synthetic
            frames.
        seed: seed of the synthetic scenes.

    Raises:
        ValueError: a size, count, normalisation or family that cannot work.
    """

    width: int
    height: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    folder: str = ""
    families: tuple[str, ...] = SYNTHETIC_FAMILIES
    num_images: int = 256
    seed: int = 0
    _images: list[Path] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(
                f"calibration size must be at least 8x8, got {self.width}x{self.height}"
            )
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {self.num_images}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")
        if not self.folder:
            if not self.families:
                raise ValueError("families must name at least one synthetic scene family")
            unknown = [f for f in self.families if f not in SYNTHETIC_FAMILIES]
            if unknown:
                raise ValueError(
                    f"unknown synthetic families {unknown}; choose from {SYNTHETIC_FAMILIES}"
                )

    @property
    def synthetic(self) -> bool:
        return not self.folder

    def images(self) -> list[Path]:
        """The folder's calibration images (listed once); empty for synthetic calibration.

        Raises:
            ValueError: see ``find_calibration_images``.
        """
        if self.synthetic:
            return []
        if not self._images:
            # Cached on the frozen instance: the folder is listed (and hashed) once.
            self._images.extend(find_calibration_images(self.folder, self.num_images))
        return list(self._images)

    def count(self) -> int:
        """How many images one pass over the source yields."""
        return self.num_images if self.synthetic else len(self.images())

    def describe(self) -> str:
        if self.synthetic:
            return f"{self.num_images} synthetic {'+'.join(self.families)} frames"
        return f"{self.count()} images from {os.path.expanduser(self.folder)}"

    def digest(self) -> str:
        """SHA-256 naming this exact calibration input (images' names and bytes, size, norm).

        Raises:
            ValueError: see ``find_calibration_images``.
        """
        header = {
            "size": [int(self.width), int(self.height)],
            "mean": [round(float(v), 8) for v in self.mean],
            "std": [round(float(v), 8) for v in self.std],
        }
        digest = hashlib.sha256()
        if self.synthetic:
            header.update(
                kind="synthetic",
                version=_SYNTHETIC_VERSION,
                families=list(self.families),
                count=int(self.num_images),
                seed=int(self.seed),
            )
            digest.update(json.dumps(header, sort_keys=True).encode())
            return digest.hexdigest()
        images = self.images()
        root = Path(os.path.expanduser(self.folder))
        header.update(kind="folder", count=len(images))
        digest.update(json.dumps(header, sort_keys=True).encode())
        for path in images:
            # Names relative to the folder: moving the folder does not invalidate the cache,
            # changing, adding or removing an image does.
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(_file_digest(path) + b"\0")
        return digest.hexdigest()

    def rgb_images(self) -> Iterator[np.ndarray]:
        """The calibration images as HxWx3 uint8 RGB, in a fixed order (read lazily)."""
        if not self.synthetic:
            for path in self.images():
                yield read_rgb(path)
            return
        yield from _synthetic_frames(
            self.families, self.num_images, self.width, self.height, self.seed
        )

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """(batch_size, 3, H, W) float32 network inputs, preprocessed like the predictor's.

        Every batch is full: the last one is completed with the first images again, so every
        image is seen at least once and the batch shape never changes (TensorRT's calibration
        profile has one fixed shape).

        Raises:
            ValueError: batch_size < 1, or an image that cannot be decoded.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        preprocess = Preprocessor(self.width, self.height, self.mean, self.std)
        batch = np.empty((batch_size, 3, self.height, self.width), np.float32)
        filled = 0
        first: list[np.ndarray] = []  # the first images, kept to complete the last batch
        for rgb in self.rgb_images():
            if len(first) < batch_size:
                first.append(rgb)
            preprocess.into(rgb, batch[filled])
            filled += 1
            if filled == batch_size:
                yield batch.copy()
                filled = 0
        if filled:
            for index in range(filled, batch_size):
                preprocess.into(first[(index - filled) % len(first)], batch[index])
            yield batch.copy()


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal counts (the first ones get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def _synthetic_frames(
    families: Sequence[str], count: int, width: int, height: int, seed: int
) -> Iterator[np.ndarray]:
    """``count`` RGB frames spread over the families, several scenes each, evenly along paths."""
    from depth_perception.synthetic import SyntheticWorld

    for family, per_family in zip(families, _split(count, len(families)), strict=True):
        scenes = min(_SCENES_PER_FAMILY, per_family)
        for scene_index, per_scene in enumerate(_split(per_family, scenes)):
            if not per_scene:
                continue
            # Rendered at the network size: no resampling, and the preprocessing reduces to
            # the normalisation, as for a camera that already delivers that size.
            world = SyntheticWorld(family, width, height, seed=seed, scene_index=scene_index)
            step = max(world.frames_per_loop // per_scene, 1)
            for index in range(per_scene):
                yield world.render(index * step).rgb
