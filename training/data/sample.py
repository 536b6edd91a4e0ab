"""The one sample format every loader returns, and the collate function that batches it.

A :class:`Sample` is pure numpy (plus a :class:`CameraIntrinsics`), so loaders, augmentations
and tests need no torch; :func:`collate` turns a list of samples into torch tensors.

Conventions (identical for every dataset):

* ``image``: HxWx3 ``uint8`` RGB.
* ``depth``: HxW ``float32`` metric z-depth along the optical axis; **0 where invalid**.
* ``valid``: HxW ``bool``, True where ``depth`` is a measurement (finite and > 0). Loaders set
  ``depth`` to 0 wherever ``valid`` is False, so ``depth * valid`` is never needed.
* ``labels``: HxW ``uint8`` class ids in ``[0, len(dataset.class_names))``;
  ``IGNORE_LABEL`` (255) marks void / unlabelled pixels. All 255 when the data set has no labels.
* ``intrinsics``: the pinhole camera of ``image`` (pixel-centre convention of
  ``depth_perception.camera``); augmentations keep it consistent with the pixels.
* ``neighbours`` (sequences only): list of HxWx3 ``uint8`` RGB frames of the same camera,
  in the order of ``meta["offsets"]`` (e.g. offsets (-1, 1): previous frame, next frame).
* ``poses`` (sequences only, None when unknown): list of 4x4 ``float64`` rigid transforms
  ``T_nb_from_target``, one per neighbour, mapping a 3-D point in the target (``image``)
  camera's optical frame to the neighbour camera's optical frame:
  ``X_nb = T @ X_target`` (= ``inv(pose_nb) @ pose_target`` for camera-to-world poses).
* ``meta``: free-form dict; loaders set ``dataset`` (name), ``index`` and ``path`` (the
  sample's main file, for error reports). :class:`SkipCorrupt` adds ``skipped``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np
import torch

from depth_perception.camera import CameraIntrinsics
from depth_perception.classes import IGNORE_LABEL

# ImageNet statistics (RGB, for images scaled to [0, 1]); the models' default normalisation.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class Sample:
    """One training sample (see the module docstring for every convention).

    Fields are read as attributes (``s.depth``) or, dict-like, as ``s["depth"]``.
    """

    image: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    intrinsics: CameraIntrinsics
    neighbours: list[np.ndarray] = field(default_factory=list)
    poses: list[np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(f"Sample has no field {key!r}; fields: {', '.join(self.keys())}")
        return getattr(self, key)

    @staticmethod
    def keys() -> tuple[str, ...]:
        return tuple(f.name for f in fields(Sample))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @classmethod
    def build(
        cls,
        image: np.ndarray,
        intrinsics: CameraIntrinsics,
        depth: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        neighbours: Sequence[np.ndarray] = (),
        poses: Sequence[np.ndarray] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Sample:
        """Assemble a checked sample from raw arrays.

        Args:
            image: HxWx3 uint8 RGB.
            intrinsics: camera of ``image``; its size must be W x H.
            depth: HxW metres; NaN, +-inf and values <= 0 become invalid (depth 0). None: no
                depth (all invalid).
            labels: HxW integer class ids already in the data set's class set (255 ignore).
                None: all 255.
            neighbours: HxWx3 uint8 RGB frames (sequences).
            poses: 4x4 target-to-neighbour transforms, one per neighbour, or None.
            meta: extra information (``dataset``, ``index``, ``path`` ...).

        Raises:
            ValueError: inconsistent shapes or dtypes (the message names the field).
        """
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        if depth is None:
            depth_f = np.zeros((h, w), dtype=np.float32)
            valid = np.zeros((h, w), dtype=bool)
        else:
            depth_f = np.asarray(depth, dtype=np.float32)
            with np.errstate(invalid="ignore"):
                valid = np.isfinite(depth_f) & (depth_f > 0)
            depth_f = np.where(valid, depth_f, np.float32(0.0)).astype(np.float32, copy=False)
        if labels is None:
            labels_u8 = np.full((h, w), IGNORE_LABEL, dtype=np.uint8)
        else:
            labels = np.asarray(labels)
            if labels.size and (labels.min() < 0 or labels.max() > IGNORE_LABEL):
                raise ValueError(
                    f"labels must be class ids in 0..{IGNORE_LABEL}, got range "
                    f"{labels.min()}..{labels.max()}; map the data set's ids first"
                )
            labels_u8 = labels.astype(np.uint8, copy=False)
        sample = cls(
            image=image,
            depth=depth_f,
            valid=valid,
            labels=labels_u8,
            intrinsics=intrinsics,
            neighbours=[np.ascontiguousarray(n) for n in neighbours],
            poses=None if poses is None else [np.asarray(p, dtype=np.float64) for p in poses],
            meta=dict(meta or {}),
        )
        sample.validate()
        return sample

    def validate(self) -> None:
        """Raise ValueError if any field breaks the conventions of the module docstring."""
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {img.dtype} {img.shape}")
        hw = img.shape[:2]
        for name, dtype in (("depth", np.float32), ("valid", np.bool_), ("labels", np.uint8)):
            arr = getattr(self, name)
            if arr.shape != hw or arr.dtype != dtype:
                raise ValueError(
                    f"{name} must be {hw[0]}x{hw[1]} {np.dtype(dtype)}, got {arr.dtype} "
                    f"{arr.shape}"
                )
        intr = self.intrinsics
        if (intr.height, intr.width) != hw:
            raise ValueError(
                f"intrinsics are for {intr.width}x{intr.height} but the image is {hw[1]}x{hw[0]}"
            )
        for i, nb in enumerate(self.neighbours):
            if nb.shape != img.shape or nb.dtype != np.uint8:
                raise ValueError(
                    f"neighbour {i} must be {img.shape} uint8, got {nb.dtype} {nb.shape}"
                )
        if self.poses is not None:
            if len(self.poses) != len(self.neighbours):
                raise ValueError(
                    f"{len(self.poses)} poses for {len(self.neighbours)} neighbours; need one each"
                )
            for i, pose in enumerate(self.poses):
                if pose.shape != (4, 4):
                    raise ValueError(f"pose {i} must be 4x4, got {pose.shape}")


def relative_pose(pose_target: np.ndarray, pose_neighbour: np.ndarray) -> np.ndarray:
    """``T_nb_from_target`` from two camera-to-world 4x4 poses (see :class:`Sample`)."""
    return np.linalg.inv(np.asarray(pose_neighbour, dtype=np.float64)) @ np.asarray(
        pose_target, dtype=np.float64
    )


def _images_to_tensor(
    images: np.ndarray, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # (..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1], then normalised
    raw = torch.from_numpy(images).movedim(-1, -3).float().div_(255.0)
    return raw, (raw - mean) / std


def collate(
    samples: Sequence[Sample],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """Batch samples into torch tensors (use ``functools.partial`` to fix mean/std).

    Returns a dict with:

    * ``image``: (B, 3, H, W) float32, ``(rgb / 255 - mean) / std``;
    * ``depth``: (B, 1, H, W) float32 metres, 0 where invalid; ``valid``: (B, 1, H, W) bool;
    * ``labels``: (B, H, W) int64, 255 = ignore (the ``ignore_index`` of cross-entropy);
    * ``K``: (B, 3, 3) float32 camera matrices;
    * ``neighbours``: (B, N, 3, H, W) float32 normalised like ``image``, only when every sample
      has the same number N > 0 of neighbours; ``poses``: (B, N, 4, 4) float32, only when
      every sample has poses;
    * ``image_raw`` / ``neighbours_raw``: the same images in [0, 1] (only with ``keep_raw``,
      for photometric losses);
    * ``meta``: list of the samples' meta dicts; ``skipped``: list of ``(path, error)`` of
      corrupt samples replaced by :class:`training.data.robust.SkipCorrupt` in this batch.

    Raises:
        ValueError: empty batch, or samples of different sizes (add a resize / crop transform).
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    shape = samples[0].image.shape
    for s in samples:
        if s.image.shape != shape:
            raise ValueError(
                f"samples of different sizes in one batch ({shape} and {s.image.shape}); add a "
                "transform (training.data.augment.Resize or RandomCrop) that fixes the size"
            )
    mean_t = torch.tensor([float(v) for v in mean], dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor([float(v) for v in std], dtype=torch.float32).view(3, 1, 1)
    if mean_t.numel() != 3 or std_t.numel() != 3 or bool((std_t <= 0).any()):
        raise ValueError(f"mean and std need 3 values each with std > 0, got {mean}, {std}")
    raw, image = _images_to_tensor(np.stack([s.image for s in samples]), mean_t, std_t)
    batch: dict[str, Any] = {
        "image": image,
        "depth": torch.from_numpy(np.stack([s.depth for s in samples]))[:, None],
        "valid": torch.from_numpy(np.stack([s.valid for s in samples]))[:, None],
        "labels": torch.from_numpy(np.stack([s.labels for s in samples])).long(),
        "K": torch.from_numpy(np.stack([s.intrinsics.matrix for s in samples])).float(),
        "meta": [s.meta for s in samples],
        "skipped": [item for s in samples for item in s.meta.get("skipped", [])],
    }
    if keep_raw:
        batch["image_raw"] = raw
    counts = {len(s.neighbours) for s in samples}
    if len(counts) == 1 and counts != {0}:
        nb = np.stack([np.stack(s.neighbours) for s in samples])
        nb_raw, nb_norm = _images_to_tensor(nb, mean_t, std_t)
        batch["neighbours"] = nb_norm
        if keep_raw:
            batch["neighbours_raw"] = nb_raw
        if all(s.poses is not None for s in samples):
            batch["poses"] = torch.from_numpy(
                np.stack([np.stack(s.poses) for s in samples])  # type: ignore[arg-type]
            ).float()
    return batch


def make_collate(mean: Sequence[float], std: Sequence[float], keep_raw: bool = False) -> Callable:
    """:func:`collate` with the model's normalisation fixed (picklable for DataLoader workers).

    ``keep_raw`` adds the [0, 1] images photometric (self-supervised) losses need.
    """
    return partial(collate, mean=tuple(mean), std=tuple(std), keep_raw=keep_raw)
