"""Augmentations of :class:`~training.data.sample.Sample` that keep the intrinsics consistent.

Geometric transforms move the pixels and update ``intrinsics`` so that every pixel still sees
the same ray (pixel-centre convention of ``CameraIntrinsics``):

* crop at (x0, y0): ``cx -= x0``, ``cy -= y0``;
* resize to w x h: ``CameraIntrinsics.scaled(w, h)``;
* horizontal flip: ``cx -> W - 1 - cx``; relative ``poses`` are mirrored too
  (``S T S`` with ``S = diag(-1, 1, 1, 1)``), so a flipped sequence stays a rigid motion.

Depth, validity and labels are resampled nearest-neighbour with the same pixel-centre
convention (``cv2.INTER_NEAREST_EXACT``; plain ``INTER_NEAREST`` is shifted by half a pixel),
so no value is interpolated across an invalid pixel or a class boundary. Metric depth is
unchanged by resizing: the focal length carries the scale.

Photometric transforms (colour jitter, channel swap) change ``image`` and every neighbour
identically, keeping photometric losses between frames consistent.

Random transforms draw from their own generator, seeded per process from ``seed`` and
``torch.initial_seed()`` (which the DataLoader sets differently for each worker and epoch),
or from an explicit ``rng`` argument.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.base import class_names_of
from training.data.sample import Sample

if TYPE_CHECKING:
    from training.config import DataConfig

_FLIP = np.diag([-1.0, 1.0, 1.0, 1.0])


def crop(sample: Sample, x0: int, y0: int, width: int, height: int) -> Sample:
    """Cut the ``width`` x ``height`` window at column ``x0``, row ``y0``.

    Raises:
        ValueError: the window is empty or leaves the image.
    """
    w, h = sample.width, sample.height
    if width < 1 or height < 1 or x0 < 0 or y0 < 0 or x0 + width > w or y0 + height > h:
        raise ValueError(f"crop {width}x{height} at ({x0}, {y0}) does not fit a {w}x{h} image")
    win = (slice(y0, y0 + height), slice(x0, x0 + width))
    k = sample.intrinsics
    intr = dataclasses.replace(k, cx=k.cx - x0, cy=k.cy - y0, width=width, height=height)
    return dataclasses.replace(
        sample,
        image=np.ascontiguousarray(sample.image[win]),
        depth=np.ascontiguousarray(sample.depth[win]),
        valid=np.ascontiguousarray(sample.valid[win]),
        labels=np.ascontiguousarray(sample.labels[win]),
        intrinsics=intr,
        neighbours=[np.ascontiguousarray(n[win]) for n in sample.neighbours],
    )


def _resize_nearest(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.dtype == np.bool_:
        out = cv2.resize(
            arr.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT
        )
        return out.astype(bool)
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def _resize_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = width < img.shape[1] and height < img.shape[0]
    # INTER_AREA anti-aliases when shrinking; both are pixel-centre aligned
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def resize(sample: Sample, width: int, height: int) -> Sample:
    """Resample the sample to ``width`` x ``height`` (intrinsics via ``scaled``).

    Raises:
        ValueError: non-positive size.
    """
    if width < 1 or height < 1:
        raise ValueError(f"resize target must be positive, got {width}x{height}")
    if (width, height) == (sample.width, sample.height):
        return sample
    return dataclasses.replace(
        sample,
        image=_resize_image(sample.image, width, height),
        depth=_resize_nearest(sample.depth, width, height),
        valid=_resize_nearest(sample.valid, width, height),
        labels=_resize_nearest(sample.labels, width, height),
        intrinsics=sample.intrinsics.scaled(width, height),
        neighbours=[_resize_image(n, width, height) for n in sample.neighbours],
    )


def hflip(sample: Sample) -> Sample:
    """Mirror left-right: ``cx -> W - 1 - cx``, poses mirrored (see module docstring)."""
    k = sample.intrinsics
    return dataclasses.replace(
        sample,
        image=np.ascontiguousarray(sample.image[:, ::-1]),
        depth=np.ascontiguousarray(sample.depth[:, ::-1]),
        valid=np.ascontiguousarray(sample.valid[:, ::-1]),
        labels=np.ascontiguousarray(sample.labels[:, ::-1]),
        intrinsics=dataclasses.replace(k, cx=k.width - 1 - k.cx),
        neighbours=[np.ascontiguousarray(n[:, ::-1]) for n in sample.neighbours],
        poses=None if sample.poses is None else [_FLIP @ p @ _FLIP for p in sample.poses],
    )


def _map_images(sample: Sample, fn: Callable[[np.ndarray], np.ndarray]) -> Sample:
    return dataclasses.replace(
        sample, image=fn(sample.image), neighbours=[fn(n) for n in sample.neighbours]
    )


class RandomTransform:
    """Base of the random transforms: a lazily seeded per-process generator.

    Args:
        seed: mixed with ``torch.initial_seed()`` so that each DataLoader worker (and each
            epoch with non-persistent workers) draws differently yet reproducibly.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._rng: np.random.Generator | None = None
        self._pid = -1

    def generator(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % (2**63)])
            self._pid = os.getpid()
        return self._rng

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return self.apply(sample, rng if rng is not None else self.generator())

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        raise NotImplementedError


class Compose:
    """Apply transforms in order (random ones draw from their own generators)."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample


class Resize:
    """Deterministic resize to ``width`` x ``height`` (e.g. for evaluation)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)

    def __call__(self, sample: Sample) -> Sample:
        return resize(sample, self.width, self.height)


class CenterCrop:
    """Deterministic centre crop to ``width`` x ``height``."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)

    def __call__(self, sample: Sample) -> Sample:
        x0 = (sample.width - self.width) // 2
        y0 = (sample.height - self.height) // 2
        return crop(sample, x0, y0, self.width, self.height)


class RandomCrop(RandomTransform):
    """Crop a random ``width`` x ``height`` window (the image must be at least that size)."""

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        super().__init__(seed)
        self.width, self.height = int(width), int(height)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.width < self.width or sample.height < self.height:
            raise ValueError(
                f"cannot crop {self.width}x{self.height} from a {sample.width}x{sample.height} "
                "image; use RandomScaleCrop or Resize first"
            )
        x0 = int(rng.integers(0, sample.width - self.width + 1))
        y0 = int(rng.integers(0, sample.height - self.height + 1))
        return crop(sample, x0, y0, self.width, self.height)


class RandomScaleCrop(RandomTransform):
    """Resize by a random factor, then crop a random ``width`` x ``height`` window.

    The factor is drawn log-uniformly from ``scale_range`` times the smallest factor at which
    the image still covers the window, so the crop always fits.
    """

    def __init__(
        self, width: int, height: int, scale_range: tuple[float, float] = (1.0, 1.5), seed: int = 0
    ) -> None:
        super().__init__(seed)
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        if scale_range[0] < 1.0:
            raise ValueError(
                f"scale_range must be >= 1 (relative to the covering size), got {scale_range}"
            )
        self.width, self.height = int(width), int(height)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        cover = max(self.width / sample.width, self.height / sample.height)
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        s = cover * float(np.exp(rng.uniform(lo, hi)))
        w = max(self.width, round(sample.width * s))
        h = max(self.height, round(sample.height * s))
        sample = resize(sample, w, h)
        x0 = int(rng.integers(0, w - self.width + 1))
        y0 = int(rng.integers(0, h - self.height + 1))
        return crop(sample, x0, y0, self.width, self.height)


class RandomHorizontalFlip(RandomTransform):
    """Flip with probability ``p``."""

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        super().__init__(seed)
        self.p = float(p)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return hflip(sample) if rng.random() < self.p else sample


class ColorJitter(RandomTransform):
    """Random brightness, contrast and saturation factors in ``[1 - x, 1 + x]``."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        s = rng.uniform(1 - self.saturation, 1 + self.saturation)

        def jitter(img: np.ndarray) -> np.ndarray:
            x = img.astype(np.float32) * np.float32(b)
            grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            x = (x - grey.mean()) * np.float32(c) + grey.mean()
            grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
            x = (x - grey) * np.float32(s) + grey
            return np.clip(x + 0.5, 0, 255).astype(np.uint8)

        return _map_images(sample, jitter)


class RandomChannelSwap(RandomTransform):
    """Permute the colour channels randomly with probability ``p``."""

    def __init__(self, p: float = 0.25, seed: int = 0) -> None:
        super().__init__(seed)
        self.p = float(p)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        order = rng.permutation(3)
        return _map_images(sample, lambda img: np.ascontiguousarray(img[..., order]))


def train_transform(
    width: int,
    height: int,
    scale_range: tuple[float, float] = (1.0, 1.5),
    flip: bool = True,
    jitter: bool = True,
    channel_swap: float = 0.0,
    seed: int = 0,
) -> Compose:
    """The usual training pipeline: random scale + crop, flip, colour jitter, channel swap."""
    steps: list = [RandomScaleCrop(width, height, scale_range, seed=seed)]
    if flip:
        steps.append(RandomHorizontalFlip(0.5, seed=seed + 1))
    if jitter:
        steps.append(ColorJitter(seed=seed + 2))
    if channel_swap > 0:
        steps.append(RandomChannelSwap(channel_swap, seed=seed + 3))
    return Compose(steps)


def training_augmentations(cfg: DataConfig) -> list[Callable]:
    """Random zoom (``data.random_scale``), crop (``data.random_crop``), flips and photometric
    jitter of the training split."""
    transforms: list[Callable] = []
    if cfg.random_scale is not None:
        low, high = cfg.random_scale
        transforms.append(RandomScaleCrop(cfg.width, cfg.height, (float(low), float(high))))
    if cfg.random_crop is not None:
        transforms.append(RandomCrop(*cfg.random_crop))
    if cfg.augment:
        transforms += [RandomHorizontalFlip(0.5), ColorJitter()]
    return transforms


def aspect_window(width: int, height: int, aspect: float) -> tuple[int, int]:
    """Size of the largest window of ``aspect`` (width / height) inside ``width`` x ``height``."""
    if aspect <= 0 or width < 1 or height < 1:
        raise ValueError(f"need a positive aspect and size, got {aspect} and {width}x{height}")
    if width / height > aspect:
        return max(1, min(width, round(height * aspect))), height
    return width, max(1, min(height, round(width / aspect)))


def pixels_key(samples: Sequence[Sample]) -> int:
    """CRC-32 of the samples' images in order: a batch-level seed that the seeded augmentation
    makes a function of ``(seed, epoch, indices)``, whichever worker collates the batch."""
    key = 0
    for sample in samples:
        key = zlib.crc32(np.ascontiguousarray(sample.image).data, key)
    return key


class BatchAspect:
    """Collate wrapper that brings each batch to one network input size of ``sizes``.

    The size is drawn once per batch (a batch must share one size); each image then keeps the
    largest window of that size's aspect ratio at a random position and is resized to it, the
    intrinsics following (``crop``, ``resize``). The network so sees cameras of several aspect
    ratios at the inputs the node gives them (``depth_perception.camera.aspect_matched_size``)
    instead of squeezed frames. The draw is seeded by ``seed`` and the batch's pixels, which the
    seeded augmentation makes a function of ``(seed, epoch, indices)``: a resumed run draws the
    same sizes, whichever worker collates.

    Args:
        collate: The collate function that turns the resized samples into a batch.
        sizes: ``(width, height)`` choices, drawn uniformly.
        seed: Run seed.
    """

    def __init__(self, collate: Callable, sizes: Sequence[Sequence[int]], seed: int) -> None:
        if not sizes:
            raise ValueError("BatchAspect needs at least one size")
        self.collate = collate
        self.sizes = [(int(w), int(h)) for w, h in sizes]
        self.seed = int(seed)

    def size_for(self, samples: Sequence[Sample]) -> tuple[tuple[int, int], np.random.Generator]:
        """The batch's size, and the generator its crops draw from."""
        rng = np.random.default_rng([self.seed, pixels_key(samples)])
        return self.sizes[int(rng.integers(len(self.sizes)))], rng

    def __call__(self, samples: Sequence[Sample]) -> Any:
        (width, height), rng = self.size_for(samples)
        out = []
        for s in samples:
            cw, ch = aspect_window(s.width, s.height, width / height)
            x0 = int(rng.integers(0, s.width - cw + 1))
            y0 = int(rng.integers(0, s.height - ch + 1))
            out.append(resize(crop(s, x0, y0, cw, ch), width, height))
        return self.collate(out)


class SeededAugmentation(Dataset):
    """Applies random transforms with a generator seeded by ``(seed, epoch, index)``.

    Each sample's augmentation is then a function of the sample and the epoch alone, not of
    the DataLoader worker that loads it or of how many samples that worker loaded before, so a
    resumed run sees exactly the data an uninterrupted one would. Call :meth:`set_epoch` before
    each epoch (before the DataLoader starts its workers).

    Args:
        dataset: The un-augmented data set.
        transforms: Transforms of this module; random ones get the explicit ``rng``.
        seed: Run seed.
    """

    def __init__(self, dataset: Dataset, transforms: Sequence[Callable], seed: int) -> None:
        self.dataset = dataset
        self.transforms = list(transforms)
        self.seed = int(seed)
        self.epoch = 0
        self.class_names = class_names_of(dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        if not self.transforms:
            return sample
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))
        for t in self.transforms:
            sample = t(sample, rng) if isinstance(t, RandomTransform) else t(sample)
        return sample


# Class names that are surfaces of the room or street (or flat on them), not objects that stand
# in front of them, in the class sets of the synthetic world, NYU-40/13 and Cityscapes:
# ObjectPaste moves only the others.
STUFF_CLASSES: frozenset[str] = frozenset(
    {
        "wall",
        "floor",
        "ceiling",
        "window",
        "door",
        "picture",
        "painting",
        "blinds",
        "curtain",
        "mirror",
        "floor mat",
        "whiteboard",
        "otherstructure",
        "road",
        "sidewalk",
        "building",
        "terrain",
        "vegetation",
        "sky",
    }
)


def thing_class_ids(class_names: Sequence[str]) -> list[int]:
    """Ids of the classes that are objects (not in :data:`STUFF_CLASSES`)."""
    return [i for i, name in enumerate(class_names) if name not in STUFF_CLASSES]


class ObjectPaste:
    """Collate wrapper that pastes an object of another frame of the batch in front of a frame.

    One connected region of one object class of frame B is put at the same pixels of frame A,
    with its image and labels, and its depth times one factor ``s``, drawn below the smallest
    ratio of A's depth to the object's over the pixels where both have depth, so that it
    stands in front of everything with depth that it covers. The pasted pixels are a surface of
    A's camera in front of what they hide: where A and B were seen through the same lens it is
    exactly B's object scaled by ``s`` about the camera centre (a pinhole camera sees a scene so
    scaled as the scene itself, every depth times ``s``), smaller and floating nearer; between
    lenses of other focal lengths its outline is also stretched by their ratio (the randomised
    world draws the field of view per scene). Either way its depth order is right.

    Why: in the synthetic rooms depth is mostly explained by where a pixel is in the frame
    (lower rows are nearer) and objects stand on the floor, so the cheapest thing to learn is
    the layout; on a real photograph (Middlebury *Motorcycle*) the bundled model ordered the
    object worst. A pasted object has no floor contact and no place in the layout: only its
    occluding outline says that it is nearer.

    The draw is seeded by ``seed`` and the batch's pixels, as :class:`BatchAspect`'s is. Frames
    with ``neighbours`` (sequences for photometric losses) are left as they are.

    Args:
        collate: The collate function that turns the samples into a batch.
        thing_ids: Class ids that may be pasted (:func:`thing_class_ids`).
        probability: Chance that a frame gets an object.
        seed: Run seed.
        area: ``(low, high)`` fractions of the frame an object's region may cover.
        nearer: ``(low, high)`` range of the factor below the largest ``s`` that keeps the
            object in front (1: touching what it covers at its nearest point).
        min_depth: Nearest depth a pasted object may reach (m); draws that would bring it
            nearer are skipped.
        min_covered_depth: Share of the covered pixels that must have depth (where A has none,
            a hole or the sky, nothing says how near the object must be); below it, skipped.
    """

    def __init__(
        self,
        collate: Callable,
        thing_ids: Sequence[int],
        probability: float,
        seed: int,
        area: tuple[float, float] = (0.01, 0.25),
        nearer: tuple[float, float] = (0.5, 0.95),
        min_depth: float = 0.3,
        min_covered_depth: float = 0.9,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"ObjectPaste probability must be in [0, 1], got {probability}")
        if not (0.0 < area[0] <= area[1] <= 1.0 and 0.0 < nearer[0] <= nearer[1] <= 1.0):
            raise ValueError(f"ObjectPaste needs 0 < low <= high <= 1, got {area} and {nearer}")
        if not 0.0 < min_covered_depth <= 1.0:
            raise ValueError(f"min_covered_depth must be in (0, 1], got {min_covered_depth}")
        self.collate = collate
        self.thing_ids = np.asarray(sorted({int(i) for i in thing_ids}), dtype=np.int64)
        self.probability = float(probability)
        self.seed = int(seed)
        self.area = area
        self.nearer = nearer
        self.min_depth = float(min_depth)
        self.min_covered_depth = float(min_covered_depth)

    def __call__(self, samples: Sequence[Sample]) -> Any:
        return self.collate(self.paste(samples))

    def paste(self, samples: Sequence[Sample]) -> list[Sample]:
        """The samples, some with an object of another one pasted in front (see the class)."""
        out = list(samples)
        if len(out) < 2 or self.probability == 0.0 or self.thing_ids.size == 0:
            return out
        rng = np.random.default_rng([self.seed, pixels_key(samples), 0x0B1EC7])
        for index, target in enumerate(samples):
            if rng.random() >= self.probability or target.neighbours:
                continue
            donor = samples[(index + 1 + int(rng.integers(len(samples) - 1))) % len(samples)]
            if donor.image.shape != target.image.shape:
                continue
            region = self._object_region(donor, rng)
            if region is not None:
                pasted = self._paste_one(target, donor, region, rng)
                if pasted is not None:
                    out[index] = pasted
        return out

    def _object_region(self, donor: Sample, rng: np.random.Generator) -> np.ndarray | None:
        """A random connected region of one object class of ``donor`` of a suitable size.

        The region follows the labels alone: pixels of it without depth (a sensor's holes)
        are pasted with their image and class and stay without depth.
        """
        present = np.intersect1d(np.unique(donor.labels), self.thing_ids)
        if present.size == 0:
            return None
        pixels = donor.width * donor.height
        low, high = self.area[0] * pixels, self.area[1] * pixels
        candidates: list[tuple[np.ndarray, int]] = []
        for class_id in present:
            mask = (donor.labels == class_id).astype(np.uint8)
            count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for component in range(1, count):
                if low <= stats[component, cv2.CC_STAT_AREA] <= high:
                    candidates.append((components, component))
        if not candidates:
            return None
        components, component = candidates[int(rng.integers(len(candidates)))]
        return components == component

    def _paste_one(
        self, target: Sample, donor: Sample, region: np.ndarray, rng: np.random.Generator
    ) -> Sample | None:
        object_valid = donor.valid[region]
        covered_valid = target.valid[region]
        if covered_valid.mean() < self.min_covered_depth:
            return None
        both = object_valid & covered_valid
        if not both.any():
            return None
        object_depth = donor.depth[region]
        largest = float(np.min(target.depth[region][both] / object_depth[both]))
        scale = largest * float(rng.uniform(*self.nearer))
        if scale * float(object_depth[object_valid].min()) < self.min_depth:
            return None
        depth = target.depth.copy()
        depth[region] = np.where(object_valid, object_depth * np.float32(scale), np.float32(0.0))
        image = target.image.copy()
        image[region] = donor.image[region]
        labels = target.labels.copy()
        labels[region] = donor.labels[region]
        valid = target.valid.copy()
        valid[region] = object_valid
        return dataclasses.replace(target, image=image, depth=depth, valid=valid, labels=labels)
