"""From a camera image to metric depth and class ids at the image's own size.

``DepthPredictor`` is the core the node calls once per frame: preprocessing (resize to the
network size, normalisation from the checkpoint), a backend, and postprocessing (depth scaling,
range limits as NaN, resize back, arg-max of the class scores). Imports no rclpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from depth_perception.backends.base import BackendError, InferenceBackend
from depth_perception.camera import CameraIntrinsics, focal_scale


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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.into(rgb, self._batch[0])
        # A fresh array per call: a backend may still hold the previous one.
        return self._batch.copy()

    def batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Several RGB images as one (N, 3, H, W) float32 batch, in the order given."""
        out = np.empty((len(images), 3, self.height, self.width), np.float32)
        for index, rgb in enumerate(images):
            self.into(rgb, out[index])
        return out

    def into(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """Resize and normalise one RGB image into ``out``, a (3, H, W) float32 array."""
        if rgb.shape[:2] != (self.height, self.width):
            shrinking = rgb.shape[0] > self.height
            # INTER_AREA averages when shrinking (no aliasing); linear when enlarging.
            rgb = cv2.resize(
                rgb,
                (self.width, self.height),
                interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
            )
        planar = rgb.transpose(2, 0, 1)
        np.multiply(planar, self._scale, out=out, casting="unsafe")
        out -= self._offset


class DepthPredictor:
    """Runs one model through one backend and returns depth and class ids per image."""

    def __init__(
        self,
        description: ModelDescription,
        backend: InferenceBackend,
        min_depth: float = 0.0,
        max_depth: float = 0.0,
        depth_scale: float = 1.0,
    ) -> None:
        self.description = description
        self.backend = backend
        self.preprocess = Preprocessor(
            description.input_width, description.input_height, description.mean, description.std
        )
        self.set_depth_limits(min_depth, max_depth, depth_scale)
        # Called with (stage, predictor) before each stage; may raise to fail that stage
        # (the node's fault_injection testing aid uses it).
        self.stage_hook: Callable[[str, DepthPredictor], None] | None = None

    def set_depth_limits(self, min_depth: float, max_depth: float, depth_scale: float) -> None:
        """Change the published range (0 = the checkpoint's) and scale without reloading."""
        self.min_depth = min_depth or self.description.min_depth
        self.max_depth = max_depth or self.description.max_depth
        if self.min_depth >= self.max_depth:
            raise ValueError(
                f"min_depth {self.min_depth} must be below max_depth {self.max_depth}"
            )
        self.depth_scale = depth_scale

    def predict(self, rgb: np.ndarray, intrinsics: CameraIntrinsics) -> Prediction:
        """Depth and labels for an HxWx3 uint8 RGB image seen through ``intrinsics``.

        Raises:
            ValueError: an image or intrinsics that do not fit.
            StageError: inference or postprocessing failed (names the stage).
        """
        _check_input(rgb, intrinsics)
        height, width = rgb.shape[:2]
        timings: dict[str, float] = {}
        start = time.perf_counter()
        batch = self.preprocess(rgb)
        after_pre = time.perf_counter()
        try:
            if self.stage_hook is not None:
                self.stage_hook("inference", self)
            outputs = self.backend.infer(batch)
        except Exception as error:
            raise StageError("inference", error) from error
        after_inference = time.perf_counter()
        try:
            if self.stage_hook is not None:
                self.stage_hook("postprocess", self)
            depth, labels = self.postprocess(
                outputs, width, height, focal=self.focal_factor(intrinsics)
            )
        except Exception as error:
            raise StageError("postprocess", error) from error
        end = time.perf_counter()
        timings["preprocess"] = (after_pre - start) * 1e3
        timings["inference"] = (after_inference - after_pre) * 1e3
        timings["postprocess"] = (end - after_inference) * 1e3
        return Prediction(depth, labels, intrinsics, timings)

    def predict_batch(
        self, items: Sequence[tuple[np.ndarray, CameraIntrinsics]]
    ) -> list[Prediction]:
        """Depth and labels for several images (e.g. one per camera) in one inference call.

        Each image is preprocessed on its own (sizes may differ), the network inputs are stacked
        along the batch axis and run through ONE ``backend.infer`` call (or chunks of
        ``backend.max_batch_size`` where a backend has that limit), then each image is
        postprocessed at its own size. ``timings_ms`` of every prediction holds the whole
        batch's stage times.

        Args:
            items: (HxWx3 uint8 RGB image, its intrinsics) pairs.

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
        start = time.perf_counter()
        batch = self.preprocess.batch([rgb for rgb, _ in items])
        after_pre = time.perf_counter()
        try:
            if self.stage_hook is not None:
                self.stage_hook("inference", self)
            outputs = self._infer_chunked(batch)
        except Exception as error:
            raise StageError("inference", error) from error
        after_inference = time.perf_counter()
        results = []
        try:
            if self.stage_hook is not None:
                self.stage_hook("postprocess", self)
            for index, (rgb, intrinsics) in enumerate(items):
                height, width = rgb.shape[:2]
                focal = self.focal_factor(intrinsics)
                results.append(self.postprocess(outputs, width, height, index, focal))
        except Exception as error:
            raise StageError("postprocess", error) from error
        end = time.perf_counter()
        timings = {
            "preprocess": (after_pre - start) * 1e3,
            "inference": (after_inference - after_pre) * 1e3,
            "postprocess": (end - after_inference) * 1e3,
        }
        return [
            Prediction(depth, labels, intrinsics, dict(timings))
            for (depth, labels), (_, intrinsics) in zip(results, items, strict=True)
        ]

    def _infer_chunked(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        # Backends with a largest batch (a TensorRT engine's optimisation profile) say so with
        # ``max_batch_size``; all others take the whole batch in one call.
        limit = getattr(self.backend, "max_batch_size", None)
        if not limit or len(batch) <= limit:
            return self.backend.infer(batch)
        parts = [self.backend.infer(batch[i : i + limit]) for i in range(0, len(batch), limit)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def focal_factor(self, intrinsics: CameraIntrinsics) -> float:
        """Factor from the network's depth to metres for a camera with ``intrinsics``.

        1.0 unless the model predicts depth for a canonical focal length; then the camera's
        ``fx`` in network-input pixels over that focal length (``camera.focal_scale``).
        """
        fx_network = intrinsics.fx * self.description.input_width / intrinsics.width
        return float(focal_scale(fx_network, self.description.canonical_focal_px))

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        width: int,
        height: int,
        index: int = 0,
        focal: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Network outputs -> (depth in metres with NaN out of range, uint8 labels or None).

        ``index`` selects the image of a batch; ``focal`` is :meth:`focal_factor` of its camera.
        """
        if "depth" not in outputs:
            raise BackendError(f"backend returned {sorted(outputs)} without 'depth'")
        if len(outputs["depth"]) <= index:
            raise BackendError(
                f"backend returned a batch of {len(outputs['depth'])} for image {index}"
            )
        network_depth = outputs["depth"][index, 0]
        if self.depth_scale * focal != 1.0:
            network_depth = network_depth * np.float32(self.depth_scale * focal)
        depth = cv2.resize(network_depth, (width, height), interpolation=cv2.INTER_LINEAR)
        # REP 117: never publish a number for "unknown"; NaN also covers non-finite outputs.
        invalid = ~((depth >= self.min_depth) & (depth <= self.max_depth))
        depth[invalid] = np.nan
        labels = None
        logits = outputs.get("seg_logits")
        if logits is not None:
            # Arg-max at network resolution, then nearest-neighbour: ids stay valid classes.
            coarse = np.argmax(logits[index], axis=0).astype(np.uint8)
            labels = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
        return depth, labels


def _check_input(rgb: np.ndarray, intrinsics: CameraIntrinsics) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height}, image is {width}x{height}"
        )
