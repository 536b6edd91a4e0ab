"""From a camera image to metric depth and class ids at the image's own size.

``DepthPredictor`` is the core the node calls once per frame: preprocessing (resize to the
network size, normalisation from the checkpoint), a backend, and postprocessing (depth scaling,
range limits as NaN, resize back, arg-max of the class scores). Imports no rclpy.

The network size is the checkpoint's for a 4:3 image; an image of another aspect ratio gets an
input of its own aspect ratio with about the same pixel count (``camera.aspect_matched_size``)
where the backend takes any size, so nothing is squeezed (``DepthPredictor.input_size_for``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from depth_perception.backends.base import BackendError, InferenceBackend
from depth_perception.buffers import BufferSet
from depth_perception.camera import CameraIntrinsics, aspect_matched_size, focal_scale


@dataclass(frozen=True)
class ModelDescription:
    """What the predictor must know about the model, read from its checkpoint."""

    name: str
    input_width: int
    input_height: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]
    min_depth: float
    max_depth: float
    metric: bool
    trained: bool
    # Focal length (network-input pixels) the depth output is metric for; None: as it is.
    canonical_focal_px: float | None = None
    # Exponent of the focal-length factor (``camera.focal_scale``); 1: the plain ratio.
    focal_exponent: float = 1.0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DepthLimits:
    """The published depth range and the factor on the network's depth, checked as one.

    Frozen: a change is a new object swapped in with one assignment, so a frame never sees a
    new minimum with an old maximum, and a refused change leaves the old limits in place.
    """

    min_depth: float
    max_depth: float
    depth_scale: float = 1.0

    @classmethod
    def resolve(
        cls,
        description: ModelDescription,
        min_depth: float = 0.0,
        max_depth: float = 0.0,
        depth_scale: float = 1.0,
    ) -> DepthLimits:
        """Limits for ``description``'s checkpoint, where 0 means the checkpoint's own value.

        Raises:
            ValueError: an empty range (e.g. min_depth 20 on a 10 m checkpoint) or a scale
                that is not a positive finite number.
        """
        low = float(min_depth or description.min_depth)
        high = float(max_depth or description.max_depth)
        if not low < high:
            raise ValueError(
                f"min_depth {low} must be below max_depth {high} (0 = the checkpoint's "
                f"{description.min_depth} / {description.max_depth} m)"
            )
        if not (math.isfinite(depth_scale) and depth_scale > 0.0):
            raise ValueError(f"depth_scale must be a positive finite number, got {depth_scale}")
        return cls(low, high, float(depth_scale))


@dataclass
class Prediction:
    """The outputs for one image, all at the input image's size and for its intrinsics.

    Attributes:
        depth: float32 metres along the optical axis, NaN where the estimate is out of range.
        labels: uint8 class ids (255 = unlabelled), or None for depth-only models.
        intrinsics: intrinsics of ``depth`` and ``labels`` (those of the input image).
        timings_ms: milliseconds spent in each stage.
    """

    depth: np.ndarray
    labels: np.ndarray | None
    intrinsics: CameraIntrinsics
    timings_ms: dict[str, float] = field(default_factory=dict)


class StageError(RuntimeError):
    """A frame failed in one stage of the predictor (``inference`` or ``postprocess``).

    Attributes:
        stage: the stage that failed.
        error: the original exception.
    """

    def __init__(self, stage: str, error: Exception) -> None:
        super().__init__(f"{stage} failed: {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error


class Preprocessor:
    """Resizes an RGB uint8 image to the network size and normalises it to NCHW float32."""

    def __init__(
        self,
        width: int,
        height: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        self.width = width
        self.height = height
        # (x / 255 - mean) / std folded into one multiply-add per channel.
        self._scale = (1.0 / (255.0 * np.asarray(std, np.float32))).reshape(3, 1, 1)
        self._offset = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(
            3, 1, 1
        )
        self._batch = np.empty((1, 3, height, width), np.float32)
        self._resized = np.empty((height, width, 3), np.uint8)
        self._boxed: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One image as a fresh (1, 3, H, W) batch (the caller may keep it)."""
        out = np.empty((1, 3, self.height, self.width), np.float32)
        self.into(rgb, out[0])
        return out

    def batch(self, images: Sequence[np.ndarray], *, reuse: bool = False) -> np.ndarray:
        """Several RGB images as one (N, 3, H, W) float32 batch, in the order given.

        With ``reuse`` the batch is the preprocessor's own buffer, overwritten by the next call:
        what a backend's ``infer`` may take (backends copy their input before returning).
        """
        shape = (len(images), 3, self.height, self.width)
        if not reuse:
            out = np.empty(shape, np.float32)
        else:
            if self._batch.shape != shape:
                self._batch = np.empty(shape, np.float32)
            out = self._batch
        for index, rgb in enumerate(images):
            self.into(rgb, out[index])
        return out

    def into(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """Resize and normalise one RGB image into ``out``, a (3, H, W) float32 array."""
        if rgb.shape[:2] != (self.height, self.width):
            rgb = self._resize(rgb)
        planar = rgb.transpose(2, 0, 1)
        np.multiply(planar, self._scale, out=out, casting="unsafe")
        out -= self._offset

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` at the network size: box-filtered by the integer factor, then linear.

        OpenCV's INTER_AREA is a fast box filter only for an integer factor; for 640x480 ->
        256x192 (2.5x) its general path costs ~1.9 ms against ~0.2 ms for a 2x box filter to
        320x240 and a linear resize of the rest (< 2x, where linear sampling barely aliases).
        """
        src_h, src_w = rgb.shape[:2]
        factor = min(src_w // self.width, src_h // self.height)
        if factor >= 2:
            shape = (src_h // factor, src_w // factor, 3)
            if self._boxed is None or self._boxed.shape != shape:
                self._boxed = np.empty(shape, np.uint8)
            rgb = cv2.resize(rgb, shape[1::-1], dst=self._boxed, interpolation=cv2.INTER_AREA)
            if rgb.shape[:2] == (self.height, self.width):
                return rgb
        return cv2.resize(
            rgb, (self.width, self.height), dst=self._resized, interpolation=cv2.INTER_LINEAR
        )


class DepthPredictor:
    """Runs one model through one backend and returns depth and class ids per image."""

    def __init__(
        self,
        description: ModelDescription,
        backend: InferenceBackend,
        min_depth: float = 0.0,
        max_depth: float = 0.0,
        depth_scale: float = 1.0,
        *,
        match_aspect: bool = True,
    ) -> None:
        self.description = description
        self.backend = backend
        # Whether images of another aspect ratio than the description's input get an input of
        # their own (where the backend can take it); see input_size_for.
        self.match_aspect = bool(match_aspect)
        self.preprocess = Preprocessor(
            description.input_width, description.input_height, description.mean, description.std
        )
        self._preprocessors = {
            (description.input_width, description.input_height): self.preprocess
        }
        self._input_sizes: dict[tuple[int, int], tuple[int, int]] = {}
        self._sizes_used: set[tuple[int, int]] = set()
        self.set_depth_limits(min_depth, max_depth, depth_scale)
        self._work: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
        # Called with (stage, predictor) before each stage; may raise to fail that stage
        # (the node's fault_injection testing aid uses it).
        self.stage_hook: Callable[[str, DepthPredictor], None] | None = None

    def set_depth_limits(self, min_depth: float, max_depth: float, depth_scale: float) -> None:
        """Change the published range (0 = the checkpoint's) and scale without reloading.

        Validated before anything changes: a refused range leaves the current limits.

        Raises:
            ValueError: see :meth:`DepthLimits.resolve`.
        """
        self.limits = DepthLimits.resolve(self.description, min_depth, max_depth, depth_scale)

    def input_size_for(self, width: int, height: int) -> tuple[int, int]:
        """The network input ``(width, height)`` an image of ``width`` x ``height`` is resized to.

        The description's size, unless ``match_aspect`` is on and the backend takes any size
        (``variable_input_size``): then the size of the image's aspect ratio with about the
        description's pixel count, in multiples of 32 (``camera.aspect_matched_size``; 640x480
        -> 256x192, 1280x720 -> 288x160, 741x500 -> 288x192 for a 256x192 checkpoint). Every
        training frame was 4:3-shaped like its input; resizing a 16:9 image to 4:3 shows the
        network every shape a quarter narrower than it is and bends its metric scale (on
        synthetic 640x360 test frames metric AbsRel 0.193 squeezed against 0.101 kept). Read
        per call, so a fallback to a fixed-size backend (TensorRT) goes back to the description's.
        """
        base = (self.description.input_width, self.description.input_height)
        if not (self.match_aspect and getattr(self.backend, "variable_input_size", False)):
            return base
        key = (int(width), int(height))
        size = self._input_sizes.get(key)
        if size is None:
            size = self._input_sizes[key] = aspect_matched_size(*key, *base)
        return size

    def preprocessor_for(self, width: int, height: int) -> Preprocessor:
        """The preprocessor of images of ``width`` x ``height`` (one per network input size)."""
        size = self.input_size_for(width, height)
        found = self._preprocessors.get(size)
        if found is None:
            d = self.description
            found = self._preprocessors[size] = Preprocessor(*size, d.mean, d.std)
        self._sizes_used.add(size)
        return found

    @property
    def input_sizes_used(self) -> list[tuple[int, int]]:
        """Network input sizes that images have been resized to so far (sorted); before the
        first image, the description's."""
        d = self.description
        return sorted(self._sizes_used or {(d.input_width, d.input_height)})

    @property
    def min_depth(self) -> float:
        return self.limits.min_depth

    @property
    def max_depth(self) -> float:
        return self.limits.max_depth

    @property
    def depth_scale(self) -> float:
        return self.limits.depth_scale

    def predict(
        self,
        rgb: np.ndarray,
        intrinsics: CameraIntrinsics,
        buffers: BufferSet | None = None,
        *,
        labels: bool = True,
    ) -> Prediction:
        """Depth and labels for an HxWx3 uint8 RGB image seen through ``intrinsics``.

        Args:
            rgb: the image.
            intrinsics: its intrinsics.
            buffers: where to write ``depth`` and ``labels`` (reused every frame, overwritten
                by the next call with the same buffers); None = fresh arrays.
            labels: compute the class ids (False skips the arg-max when nobody needs them, and
                the segmentation head where the backend can: ``infer_depth``).

        Raises:
            ValueError: an image or intrinsics that do not fit.
            StageError: inference or postprocessing failed (names the stage).
        """
        # One image is a batch of one: the same stages, hooks, timings and errors.
        return self.predict_batch([(rgb, intrinsics)], [buffers], labels=labels)[0]

    def predict_batch(
        self,
        items: Sequence[tuple[np.ndarray, CameraIntrinsics]],
        buffers: Sequence[BufferSet | None] | None = None,
        *,
        labels: bool = True,
    ) -> list[Prediction]:
        """Depth and labels for several images (e.g. one per camera) in one inference call.

        Each image is preprocessed on its own (sizes may differ), the network inputs of one
        network size (:meth:`input_size_for`; all of them for cameras of one aspect ratio) are
        stacked along the batch axis and run through ONE ``backend.infer`` call (or chunks of
        ``backend.max_batch_size`` where a backend has that limit), then each image is
        postprocessed at its own size. ``timings_ms`` of every prediction holds the whole
        batch's stage times.

        Args:
            items: (HxWx3 uint8 RGB image, its intrinsics) pairs.
            buffers: one BufferSet (or None) per item, where its outputs are written.
            labels: compute the class ids (False skips the arg-max).

        Returns:
            One Prediction per item, in the order given.

        Raises:
            ValueError: an empty list, or an image or intrinsics that do not fit.
            StageError: inference or postprocessing failed (names the stage); the whole batch
                fails together.
        """
        if not items:
            raise ValueError("predict_batch needs at least one (rgb, intrinsics) pair")
        for rgb, intrinsics in items:
            _check_input(rgb, intrinsics)
        if buffers is not None and len(buffers) != len(items):
            raise ValueError(f"{len(buffers)} buffer sets for {len(items)} images")
        targets = list(buffers) if buffers is not None else [None] * len(items)
        # Images by network input size, in order of first appearance: one infer call per size.
        groups: dict[Preprocessor, list[int]] = {}
        for index, (rgb, _) in enumerate(items):
            height, width = rgb.shape[:2]
            groups.setdefault(self.preprocessor_for(width, height), []).append(index)
        stage_ms = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        results: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for preprocess, indices in groups.items():
            start = time.perf_counter()
            batch = preprocess.batch([items[i][0] for i in indices], reuse=True)
            after_pre = time.perf_counter()
            try:
                if self.stage_hook is not None:
                    self.stage_hook("inference", self)
                outputs = self._infer_chunked(batch, labels)
            except Exception as error:
                raise StageError("inference", error) from error
            after_inference = time.perf_counter()
            try:
                if self.stage_hook is not None:
                    self.stage_hook("postprocess", self)
                for position, index in enumerate(indices):
                    rgb, intrinsics = items[index]
                    height, width = rgb.shape[:2]
                    results[index] = self.postprocess(
                        outputs,
                        width,
                        height,
                        position,
                        buffers=targets[index],
                        labels=labels,
                        focal=self.focal_factor(intrinsics),
                    )
            except Exception as error:
                raise StageError("postprocess", error) from error
            end = time.perf_counter()
            stage_ms["preprocess"] += (after_pre - start) * 1e3
            stage_ms["inference"] += (after_inference - after_pre) * 1e3
            stage_ms["postprocess"] += (end - after_inference) * 1e3
        return [
            Prediction(depth, labels, intrinsics, dict(stage_ms))
            for (depth, labels), (_, intrinsics) in zip(
                (results[i] for i in range(len(items))), items, strict=True
            )
        ]

    def _infer(self, batch: np.ndarray, labels: bool) -> dict[str, np.ndarray]:
        # Without class ids to make, a backend may skip the segmentation head (infer_depth).
        if labels or not self.description.class_names:
            return self.backend.infer(batch)
        infer_depth = getattr(self.backend, "infer_depth", None)
        return infer_depth(batch) if infer_depth is not None else self.backend.infer(batch)

    def _infer_chunked(self, batch: np.ndarray, labels: bool = True) -> dict[str, np.ndarray]:
        # Backends with a largest batch (a TensorRT engine's optimisation profile) say so with
        # ``max_batch_size``; all others take the whole batch in one call.
        limit = getattr(self.backend, "max_batch_size", None)
        if not limit or len(batch) <= limit:
            return self._infer(batch, labels)
        parts = [self._infer(batch[i : i + limit], labels) for i in range(0, len(batch), limit)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        # Per-shape work arrays, allocated once: a frame makes no temporaries of image size.
        key = (name, shape)
        found = self._work.get(key)
        if found is None:
            found = self._work[key] = np.empty(shape, dtype)
        return found

    def focal_factor(self, intrinsics: CameraIntrinsics) -> float:
        """Factor from the network's depth to metres for a camera with ``intrinsics``.

        1.0 unless the model predicts depth for a canonical focal length; then the camera's
        ``fx`` in network-input pixels (at the input its images get, :meth:`input_size_for`)
        over that focal length, to the model's ``focal_exponent`` (``camera.focal_scale``).
        """
        input_width, _ = self.input_size_for(intrinsics.width, intrinsics.height)
        fx_network = intrinsics.fx * input_width / intrinsics.width
        d = self.description
        return float(focal_scale(fx_network, d.canonical_focal_px, d.focal_exponent))

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        width: int,
        height: int,
        index: int = 0,
        *,
        buffers: BufferSet | None = None,
        labels: bool = True,
        focal: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Network outputs -> (depth in metres with NaN out of range, uint8 labels or None).

        ``index`` selects the image of a batch. With ``buffers`` the results are written into
        its ``depth`` and ``labels`` buffers (reused, no allocation); ``labels=False`` skips the
        class ids; ``focal`` is :meth:`focal_factor` of the image's camera.
        """
        if "depth" not in outputs:
            raise BackendError(f"backend returned {sorted(outputs)} without 'depth'")
        if len(outputs["depth"]) <= index:
            raise BackendError(
                f"backend returned a batch of {len(outputs['depth'])} for image {index}"
            )
        limits = self.limits  # read once: a swap mid-frame must not mix two ranges
        network_depth = np.asarray(outputs["depth"][index, 0], dtype=np.float32)
        factor = limits.depth_scale * focal
        if factor != 1.0:
            scaled = self._scratch("scaled", network_depth.shape, np.float32)
            np.multiply(network_depth, np.float32(factor), out=scaled)
            network_depth = scaled
        shape = (height, width)
        depth = _output(buffers, "depth", shape, np.float32)
        _resize_into(network_depth, depth, cv2.INTER_LINEAR)
        # REP 117: never publish a number for "unknown"; NaN also covers non-finite outputs.
        if not _strictly_within(network_depth, limits):
            self._nan_out_of_range(depth, limits)
        class_ids = None
        logits = outputs.get("seg_logits")
        if logits is not None and labels:
            # Arg-max at network resolution, then nearest-neighbour: ids stay valid classes.
            scores = logits[index]
            coarse = self._scratch("coarse", scores.shape[1:], np.uint8)
            self._argmax_classes(scores, coarse)
            class_ids = _output(buffers, "labels", shape, np.uint8)
            _resize_into(coarse, class_ids, cv2.INTER_NEAREST)
        return depth, class_ids

    def _argmax_classes(self, scores: np.ndarray, out: np.ndarray) -> None:
        """Index of the largest of (C, H, W) ``scores`` per pixel into (H, W) uint8 ``out``.

        np.argmax over the class axis of a C-contiguous array is a strided reduction (~3-4 ms
        for 14 x 192 x 256); a running maximum over the class planes with a branch-free update
        of the index is ~0.5 ms. Ties keep the first class, as np.argmax does.
        """
        classes = scores.shape[0]
        if classes > 256 or scores.dtype != np.float32:
            np.copyto(out, np.argmax(scores, axis=0), casting="unsafe")
            return
        best = self._scratch("best_score", out.shape, np.float32)
        greater = self._scratch("greater", out.shape, np.uint8)
        step = self._scratch("step", out.shape, np.uint8)
        np.copyto(best, scores[0])
        out.fill(0)
        for index in range(1, classes):
            plane = scores[index]
            np.greater(plane, best, out=greater)
            np.maximum(best, plane, out=best)
            # out += (index - out) * greater: index > out always, so uint8 does not wrap.
            np.subtract(np.uint8(index), out, out=step)
            np.multiply(step, greater, out=step)
            np.add(out, step, out=out)

    def _nan_out_of_range(self, depth: np.ndarray, limits: DepthLimits) -> None:
        """REP 117: NaN where depth is outside [min, max] or not finite, in place.

        Branch-free: adding sqrt(valid - 1) (0 where valid, NaN where not) costs the same
        whatever the pattern of invalid pixels, where ``depth[~valid] = nan`` branches per pixel
        and allocates the inverted mask.
        """
        valid = self._scratch("valid", depth.shape, np.bool_)
        upper = self._scratch("upper", depth.shape, np.bool_)
        offset = self._scratch("offset", depth.shape, np.float32)
        np.greater_equal(depth, np.float32(limits.min_depth), out=valid)
        np.less_equal(depth, np.float32(limits.max_depth), out=upper)
        np.logical_and(valid, upper, out=valid)
        np.subtract(valid, np.float32(1.0), out=offset)
        with np.errstate(invalid="ignore"):
            np.sqrt(offset, out=offset)
        np.add(depth, offset, out=depth)


def _strictly_within(network_depth: np.ndarray, limits: DepthLimits) -> bool:
    """Whether every network-resolution depth is finite and inside the limits with a margin.

    Linear resizing only forms convex combinations of neighbouring values, so then every
    resized pixel is inside too and the full-size range check (~0.27 ms at 640x480, against
    ~0.01 ms for this min/max at 256x192) can be skipped. The relative margin of 1e-5 covers
    float32 rounding of the interpolation weights; NaN fails both comparisons.
    """
    low, high = float(network_depth.min()), float(network_depth.max())
    return low >= limits.min_depth * (1.0 + 1e-5) and high <= limits.max_depth * (1.0 - 1e-5)


def _output(
    buffers: BufferSet | None, name: str, shape: tuple[int, int], dtype: type
) -> np.ndarray:
    return buffers.view(name, shape, dtype) if buffers is not None else np.empty(shape, dtype)


def _resize_into(source: np.ndarray, out: np.ndarray, interpolation: int) -> None:
    """cv2.resize into ``out`` (OpenCV writes in place when size and type match)."""
    height, width = out.shape[:2]
    if source.shape[:2] == (height, width):
        np.copyto(out, source)
        return
    result = cv2.resize(source, (width, height), dst=out, interpolation=interpolation)
    if not np.shares_memory(result, out):  # never expected; correct even if OpenCV changes
        np.copyto(out, result)


def _check_input(rgb: np.ndarray, intrinsics: CameraIntrinsics) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height}, image is {width}x{height}"
        )
