"""Teacher pseudo-labels and the per-distance depth correction table (paper d, Sec. III-A).

Paper d trains its small network on dense targets produced by large teachers (PSMNet depth,
DeepLabV3 segmentation) instead of sparse LiDAR, after correcting the teacher's depth with a
look-up table of its mean error per distance measured against the sparse ground truth.

* :func:`generate_pseudo_labels` runs any registered model's checkpoint over a data set and
  writes one file per sample: ``<index>.npz`` (``depth`` float32 metres at the image size,
  0 = invalid; ``labels`` uint8, 255 where the teacher has no segmentation; ``depth_teacher``
  the uncorrected depth when a table was applied) or, with ``fmt="png"``,
  ``<index>_depth.png`` (uint16, metres x 256, the KITTI convention) + ``<index>_labels.png``.
  ``manifest.json`` records the teacher, data set and table.
* :class:`DepthCorrectionLUT` is the table: bins of ``bin_size`` metres over the TEACHER's depth
  (the only depth known when the table is applied), each holding the mean of
  ``gt - teacher`` over the valid ground-truth pixels that fell in it; :meth:`apply` adds the
  correction interpolated linearly between bins (at the mean teacher depth of each bin, so a
  bias linear in depth is removed exactly), constant beyond the first/last filled bin.
* ``training.data.pseudo_labels`` reads and writes that format; its
  :class:`~training.data.pseudo_labels.PseudoLabelDataset` serves a data set with its
  depth/labels replaced by such files (``data.pseudo_labels`` in a training config).

``depth-perception teacher --checkpoint C --output DIR [--fit-lut]`` drives it (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.pseudo_labels import MANIFEST, write_pseudo_label

LUT_FILE = "lut.json"


@dataclass
class DepthCorrectionLUT:
    """Mean error of a teacher's depth per distance bin, and its correction.

    Attributes:
        bin_size: Width of the bins in metres (paper: 1 m).
        sums: Per bin, the sum of ``gt - teacher`` over the fitted pixels.
        depth_sums: Per bin, the sum of the teacher depths (for the bins' mean positions).
        counts: Per bin, the number of fitted pixels.
    """

    bin_size: float
    sums: np.ndarray
    depth_sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls, bin_size: float = 1.0, max_depth: float = 100.0) -> DepthCorrectionLUT:
        """A table with no data, bins covering ``0..max_depth`` (grown on demand)."""
        if not bin_size > 0 or not max_depth > 0:
            raise ValueError(f"need bin_size > 0 and max_depth > 0, got {bin_size}, {max_depth}")
        n = max(1, math.ceil(max_depth / bin_size))
        return cls(float(bin_size), np.zeros(n), np.zeros(n), np.zeros(n, np.int64))

    def update(self, teacher: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add the pixels where ``gt`` (sparse is fine) and ``teacher`` are valid."""
        teacher = np.asarray(teacher, np.float64)
        gt = np.asarray(gt, np.float64)
        if teacher.shape != gt.shape:
            raise ValueError(
                f"teacher {teacher.shape} and gt {gt.shape} differ; resize the teacher output"
            )
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(gt) & (gt > 0) & np.isfinite(teacher) & (teacher > 0)
        if valid is not None:
            mask &= np.asarray(valid, bool)
        t, g = teacher[mask], gt[mask]
        if t.size == 0:
            return
        idx = (t / self.bin_size).astype(np.int64)
        n = int(idx.max()) + 1
        if n > len(self.counts):
            grow = n - len(self.counts)
            self.sums = np.concatenate([self.sums, np.zeros(grow)])
            self.depth_sums = np.concatenate([self.depth_sums, np.zeros(grow)])
            self.counts = np.concatenate([self.counts, np.zeros(grow, np.int64)])
        size = len(self.counts)
        self.sums += np.bincount(idx, weights=g - t, minlength=size)
        self.depth_sums += np.bincount(idx, weights=t, minlength=size)
        self.counts += np.bincount(idx, minlength=size)

    @classmethod
    def fit(
        cls,
        teacher: np.ndarray,
        gt: np.ndarray,
        valid: np.ndarray | None = None,
        bin_size: float = 1.0,
    ) -> DepthCorrectionLUT:
        """Fit a table on one array pair (use :meth:`update` to accumulate over a data set)."""
        lut = cls.empty(bin_size, 1.0)
        lut.update(teacher, gt, valid)
        return lut

    @property
    def filled(self) -> np.ndarray:
        """Boolean mask of the bins that hold data."""
        return self.counts > 0

    @property
    def bin_centres(self) -> np.ndarray:
        """Centres of all bins in metres."""
        return (np.arange(len(self.counts)) + 0.5) * self.bin_size

    @property
    def bin_depths(self) -> np.ndarray:
        """Mean teacher depth of each bin (NaN for empty bins): where its correction applies."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.filled, self.depth_sums / np.maximum(self.counts, 1), np.nan)

    @property
    def mean_error(self) -> np.ndarray:
        """Mean ``gt - teacher`` per bin (NaN for empty bins), as in the paper's Fig. 2."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.filled, self.sums / np.maximum(self.counts, 1), np.nan)

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """Corrected depth: ``depth + mean error`` interpolated at ``depth``.

        Non-positive or non-finite depths (invalid) are returned unchanged; corrected values
        are kept >= 1 mm so that they stay valid depths.

        Raises:
            ValueError: the table holds no data.
        """
        ok = self.filled
        if not ok.any():
            raise ValueError("the look-up table is empty: fit it on ground truth first")
        x, y = self.bin_depths[ok], self.mean_error[ok]
        depth = np.asarray(depth)
        out = depth.astype(np.float64, copy=True)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(out) & (out > 0)
        out[valid] = np.maximum(out[valid] + np.interp(out[valid], x, y), 1e-3)
        return out.astype(depth.dtype if np.issubdtype(depth.dtype, np.floating) else np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (with the per-bin mean error for reading)."""
        return {
            "bin_size": self.bin_size,
            "sums": self.sums.tolist(),
            "depth_sums": self.depth_sums.tolist(),
            "counts": self.counts.tolist(),
            "mean_error": [None if not math.isfinite(v) else v for v in self.mean_error],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthCorrectionLUT:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(data["bin_size"]),
            np.asarray(data["sums"], np.float64),
            np.asarray(data["depth_sums"], np.float64),
            np.asarray(data["counts"], np.int64),
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DepthCorrectionLUT:
        """Read a table written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _sample_index(sample_meta: dict[str, Any], fallback: int) -> int:
    return int(sample_meta.get("index", fallback))


@torch.no_grad()
def generate_pseudo_labels(
    model: torch.nn.Module,
    loader: Any,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    fmt: str = "npz",
    lut_bin_size: float | None = None,
    manifest: dict[str, Any] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Run a teacher over ``loader`` and write its depth and segmentation per sample.

    Args:
        model: The teacher (eval-mode outputs ``depth`` and optionally ``seg_logits``).
        loader: Batches from ``training.data.collate`` (with ``meta`` holding sample indices).
        out_dir: Output directory.
        device: Where to run the teacher.
        fmt: ``npz`` or ``png``.
        lut_bin_size: When set, fit a :class:`DepthCorrectionLUT` of this bin width against the
            batches' ground truth and store the corrected depth (the raw one too, in npz).
        manifest: Extra entries for ``manifest.json``.
        show_progress: tqdm bar (None: only on a terminal).

    Returns:
        The manifest written (``count``, ``format``, ``lut`` file if fitted, ...).
    """
    from tqdm import tqdm

    from training.evaluation import predict_batch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    lut = DepthCorrectionLUT.empty(lut_bin_size) if lut_bin_size else None
    disable = None if show_progress is None else not show_progress
    indices: list[int] = []
    # With a table, raw predictions wait in .raw/ until the table is fitted on all of them.
    raw_dir = out_dir / ".raw" if lut is not None else out_dir
    raw_dir.mkdir(exist_ok=True)
    for batch in tqdm(loader, desc="teacher", disable=disable):
        size = (int(batch["image"].shape[-2]), int(batch["image"].shape[-1]))
        depth, labels = predict_batch(model, batch["image"].to(device), size)
        depth_np = depth[:, 0].float().cpu().numpy()
        labels_np = (
            labels.cpu().numpy().astype(np.uint8)
            if labels is not None
            else np.full(depth_np.shape, 255, np.uint8)
        )
        for b in range(depth_np.shape[0]):
            index = _sample_index(batch["meta"][b], len(indices))
            indices.append(index)
            if lut is not None:
                gt = batch["depth"][b, 0].numpy()
                lut.update(depth_np[b], gt, batch["valid"][b, 0].numpy())
                np.save(raw_dir / f"{index:06d}_depth.npy", depth_np[b])
                np.save(raw_dir / f"{index:06d}_labels.npy", labels_np[b])
            else:
                write_pseudo_label(out_dir, index, depth_np[b], labels_np[b], fmt)
    info: dict[str, Any] = {"count": len(indices), "format": fmt, **(manifest or {})}
    if lut is not None:
        # Second pass over the stored raw predictions: apply the table fitted on all of them.
        lut.save(out_dir / LUT_FILE)
        info["lut"] = LUT_FILE
        for index in indices:
            raw = np.load(raw_dir / f"{index:06d}_depth.npy")
            labels = np.load(raw_dir / f"{index:06d}_labels.npy")
            write_pseudo_label(out_dir, index, lut.apply(raw), labels, fmt, depth_teacher=raw)
            (raw_dir / f"{index:06d}_depth.npy").unlink()
            (raw_dir / f"{index:06d}_labels.npy").unlink()
        raw_dir.rmdir()
    (out_dir / MANIFEST).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception teacher``: write a checkpoint's pseudo-labels for a data set."""
    from training.tools.cli_args import add_teacher_arguments, parse_options

    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="depth-perception teacher", description=main.__doc__)
        add_teacher_arguments(parser)
        args = parser.parse_args(args)

    from torch.utils.data import DataLoader

    from depth_perception.checkpoint import load_model
    from training.config import DataConfig
    from training.data import make_collate, make_dataset

    device = torch.device(args.device)
    model, meta = load_model(args.checkpoint, device=device)
    width = args.width or meta.input_width
    height = args.height or meta.input_height
    data_cfg = DataConfig(
        dataset=args.dataset,
        family=args.family,
        root=args.root,
        width=width,
        height=height,
        options=parse_options(args.option),
    )
    dataset = make_dataset(data_cfg, args.split, length=args.length)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        collate_fn=make_collate(meta.mean, meta.std),
    )
    info = generate_pseudo_labels(
        model,
        loader,
        args.output,
        device=device,
        fmt=args.format,
        lut_bin_size=args.bin_size if args.fit_lut else None,
        manifest={
            "teacher": str(args.checkpoint),
            "model": meta.model,
            "dataset": {
                "name": args.dataset,
                "family": args.family,
                "split": args.split,
                "length": args.length,
                "width": width,
                "height": height,
            },
        },
    )
    print(
        f"wrote {info['count']} pseudo-labels to {args.output}"
        + (f" (corrected with {LUT_FILE})" if "lut" in info else "")
    )
    return 0
