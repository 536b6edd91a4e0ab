"""Shared pieces of the loaders: dataset base class, image readers, the corrupt-file error."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from training.data.sample import Sample

Transform = Callable[[Sample], Sample]


class CorruptSampleError(RuntimeError):
    """A file of a sample is missing, unreadable or malformed; ``path`` names it."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SampleDataset(Dataset):
    """Base class of every loader: ``dataset[i]`` loads sample i and applies ``transform``.

    Subclasses implement :meth:`__len__`, :meth:`load` and :meth:`path_of`, and set
    ``class_names`` (empty tuple when the data set has no labels).
    """

    name: str = "dataset"
    class_names: tuple[str, ...] = ()

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """Read sample ``index`` from disk (no transform)."""
        raise NotImplementedError

    def path_of(self, index: int) -> str:
        """The main file of sample ``index`` (reported when it is corrupt)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} of {n} samples")
        index = index % n
        sample = self.load(index)
        sample.meta.setdefault("dataset", self.name)
        sample.meta.setdefault("index", index)
        sample.meta.setdefault("path", self.path_of(index))
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


def class_names_of(dataset: Dataset) -> tuple[str, ...]:
    """``class_names`` of a data set, or of the data set inside a Subset / wrapper."""
    while not hasattr(dataset, "class_names") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return tuple(getattr(dataset, "class_names", ()))


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit colour (or grey) image file as HxWx3 uint8 RGB.

    Raises:
        CorruptSampleError: missing or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CorruptSampleError(path, "cannot decode image")
    if img.dtype == np.uint16:
        # 16-bit colour PNGs exist in some exports: keep the high byte
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise CorruptSampleError(path, f"expected an 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_png_u16(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel 16-bit PNG as HxW uint16.

    Raises:
        CorruptSampleError: missing or undecodable file, or not 16-bit single-channel.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CorruptSampleError(path, "cannot decode image")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise CorruptSampleError(
            path, f"expected a single-channel 16-bit PNG, got {img.dtype} {img.shape}"
        )
    return img


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel 8- or 16-bit label image as HxW integer ids (dtype kept).

    Raises:
        CorruptSampleError: missing or undecodable file, or more than one channel.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(path, "file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CorruptSampleError(path, "cannot decode image")
    if img.ndim != 2:
        raise CorruptSampleError(path, f"expected a single-channel label image, got {img.shape}")
    return img


def check_same_size(path: str | os.PathLike[str], what: str, arr: np.ndarray, hw: tuple) -> None:
    """Raise CorruptSampleError when ``arr`` is not ``hw`` (H, W) in size."""
    if arr.shape[:2] != tuple(hw)[:2]:
        raise CorruptSampleError(
            path, f"{what} is {arr.shape[1]}x{arr.shape[0]} but the image is {hw[1]}x{hw[0]}"
        )


def lookup_table(pairs: dict[int, int], size: int = 65536, fill: int = 255) -> np.ndarray:
    """A uint8 look-up table of ``size`` entries mapping each key to its value, others to fill."""
    lut = np.full(size, fill, dtype=np.uint8)
    for key, value in pairs.items():
        lut[key] = value
    return lut


def benchmark_dataset(dataset: Dataset, count: int = 20, label: str = "") -> float:
    """Load ``count`` samples (after one untimed warm-up) and print and return samples/s."""
    import time

    n = min(int(count), len(dataset))
    if n < 1:
        raise ValueError("benchmark needs a non-empty data set and count >= 1")
    dataset[0]
    start = time.perf_counter()
    for i in range(n):
        dataset[i]
    elapsed = time.perf_counter() - start
    rate = n / elapsed if elapsed > 0 else float("inf")
    name = label or getattr(dataset, "name", type(dataset).__name__)
    print(f"{name}: {rate:8.1f} samples/s ({n} samples, {1e3 / rate:.1f} ms each)")
    return rate
