"""Teacher pseudo-labels on disk: the file format and the data set that serves them.

``depth-perception teacher`` (``training.tools.teacher``) writes one file per sample of a data
set: ``<index>.npz`` (``depth`` float32 metres at the image size, 0 = invalid; ``labels`` uint8,
255 where the teacher has no segmentation; ``depth_teacher`` the uncorrected depth when a
correction table was applied) or ``<index>_depth.png`` (uint16, metres x 256, the KITTI
convention) + ``<index>_labels.png``, and ``manifest.json``. :class:`PseudoLabelDataset` serves
a data set with its depth and labels replaced by those files (``data.pseudo_labels`` in a
recipe). The format lives here, beside the data sets, so that reading it needs no tool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

MANIFEST = "manifest.json"
PNG_DEPTH_SCALE = 256.0


def write_pseudo_label(
    out_dir: Path,
    index: int,
    depth: np.ndarray,
    labels: np.ndarray,
    fmt: str = "npz",
    depth_teacher: np.ndarray | None = None,
) -> list[Path]:
    """Write one sample's pseudo-labels (atomically); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    labels = np.asarray(labels, np.uint8)
    if fmt == "npz":
        path = out_dir / f"{index:06d}.npz"
        tmp = out_dir / f".{index:06d}.{os.getpid()}.tmp.npz"
        arrays = {"depth": depth, "labels": labels}
        if depth_teacher is not None:
            arrays["depth_teacher"] = np.asarray(depth_teacher, np.float32)
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return [path]
    if fmt == "png":
        written = []
        encoded = np.clip(np.round(depth * PNG_DEPTH_SCALE), 0, 65535).astype(np.uint16)
        for suffix, image in (("depth", encoded), ("labels", labels)):
            path = out_dir / f"{index:06d}_{suffix}.png"
            tmp = out_dir / f".{index:06d}_{suffix}.{os.getpid()}.tmp.png"
            if not cv2.imwrite(str(tmp), image):
                raise OSError(f"could not write {tmp}")
            os.replace(tmp, path)
            written.append(path)
        return written
    raise ValueError(f"fmt must be 'npz' or 'png', got {fmt!r}")


def read_pseudo_label(out_dir: str | Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """``(depth float32 metres, 0 = invalid; labels uint8)`` of sample ``index``.

    Raises:
        FileNotFoundError: no pseudo-label for ``index`` in ``out_dir``.
    """
    out_dir = Path(out_dir)
    npz = out_dir / f"{index:06d}.npz"
    if npz.is_file():
        with np.load(npz) as data:
            return data["depth"].astype(np.float32), data["labels"].astype(np.uint8)
    depth_png = out_dir / f"{index:06d}_depth.png"
    labels_png = out_dir / f"{index:06d}_labels.png"
    if depth_png.is_file() and labels_png.is_file():
        depth = cv2.imread(str(depth_png), cv2.IMREAD_UNCHANGED).astype(np.float32)
        labels = cv2.imread(str(labels_png), cv2.IMREAD_UNCHANGED).astype(np.uint8)
        return depth / PNG_DEPTH_SCALE, labels
    raise FileNotFoundError(f"no pseudo-label for sample {index} in {out_dir}")


class PseudoLabelDataset(Dataset):
    """A data set whose depth and labels are replaced by a teacher's pseudo-labels.

    The image, intrinsics and meta come from ``dataset``; ``depth``/``valid``/``labels`` from
    ``<labels_dir>/<index>.npz`` (or the PNG pair) written for the same data set and split.

    Args:
        dataset: The data set the pseudo-labels were generated from (no random transforms).
        labels_dir: Output directory of :func:`generate_pseudo_labels`.
    """

    def __init__(self, dataset: Dataset, labels_dir: str | Path) -> None:
        self.dataset = dataset
        self.labels_dir = Path(labels_dir)
        if not (self.labels_dir / MANIFEST).is_file():
            raise FileNotFoundError(
                f"{self.labels_dir} has no {MANIFEST}; write it with `depth-perception teacher`"
            )
        self.class_names = tuple(getattr(dataset, "class_names", ()))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        from training.data.sample import Sample

        sample = self.dataset[index]
        depth, labels = read_pseudo_label(self.labels_dir, index)
        if depth.shape != (sample.height, sample.width):
            raise ValueError(
                f"pseudo-label {index} is {depth.shape[1]}x{depth.shape[0]} but the image is "
                f"{sample.width}x{sample.height}; generate them at the training size"
            )
        return Sample.build(
            sample.image,
            sample.intrinsics,
            depth=depth,
            labels=labels,
            meta={**sample.meta, "pseudo_labels": str(self.labels_dir)},
        )
