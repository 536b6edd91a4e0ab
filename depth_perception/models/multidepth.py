"""MultiDepth: depth regression with an auxiliary depth-interval classification (paper b).

Follows Liebel & Körner's paper and its public code (github lukasliebel/MultiDepth, a PSPNet):

* Encoder: dilated ResNet-101 shared by both tasks (torchvision ``resnet101`` with the strides of
  its last two stages replaced by dilation 2 and 4: output stride 8, 2048 channels).
* Two task heads of the same shape, one per task: a pyramid-pooling module (average pooling to
  6x6, 3x3, 2x2 and 1x1 bins, each 1x1 conv-BN-ReLU 2048->512, bilinearly upsampled back and
  concatenated with the encoder features: 4096 channels), a 3x3 conv-BN-ReLU to 512, Dropout2d
  0.1 and a 1x1 conv to the task's outputs: 1 channel for the regression head, ``num_bins``
  for the depth-interval classification head. Both are bilinearly upsampled to the input size
  (``align_corners=True`` as in the public code).
* The regression head predicts depth in the paper's normalised log space (Eq. 2)
  ``t = ln(d - d_min + 1) / ln(d_max - d_min + 1)``, which maps ``[d_min, d_max]`` onto
  ``[0, 1]``; the model returns ``depth = t^-1`` of the prediction clamped to ``[0, 1]``, so the
  depth lies in ``[min_depth, max_depth]`` (the range the targets are clipped to), finite and
  positive. The losses use the unclamped ``t`` (training output ``depth_norm``); the
  regression's bias starts at ``t = 0.5``, the middle of the range.
* The classification head predicts ``num_bins`` depth intervals equally spaced in ``t``. It is
  a training aid: in eval mode it does not run (no cost, not in the exported ONNX graph) unless
  ``keep_classification`` is set, which adds ``depth_class_logits`` for analysis (such a model
  cannot be exported: ONNX export takes ``depth`` only).
* The task-uncertainty parameters ``s = (s_reg, s_cls)`` of the paper's learned weighting
  (Eq. 3) live in the model as ``log_vars`` (initialised to 1 as in the paper) so that they are
  checkpointed and optimised with the network; the objective ``multidepth`` uses them and
  :meth:`MultiDepthNet.no_weight_decay_parameters` keeps weight decay off them.

With both heads the network has 88.66M parameters (encoder 42.50M, 23.08M per head); the public
code, whose ResNet stem has three 3x3 convs instead of torchvision's 7x7 conv, has about 88.8M.
``classification_head=False`` builds the paper's single-task regression baseline (65.6M).

The pyramid pooling is written as two small matrix products (:func:`adaptive_avg_pool2d`) with
the bin boundaries of ``F.adaptive_avg_pool2d``, because the TorchScript ONNX exporter cannot
export adaptive pooling to bins that do not divide a dynamic input size. Input H and W must be
multiples of 8 (the output stride).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn
from torchvision.models import resnet101

from depth_perception.models.registry import (
    DepthModel,
    load_encoder_state,
    read_state_dict,
    register_model,
)

PAPER = (
    "L. Liebel, M. Körner: MultiDepth: Single-Image Depth Estimation via Multi-Task Regression "
    "and Classification (ITSC 2019)"
)

INPUT_MULTIPLE = 8
ENCODER_CHANNELS = 2048
PSP_BINS: tuple[int, ...] = (6, 3, 2, 1)
PSP_CHANNELS = 512
DROPOUT = 0.1
# Paper: s_reg = s_cls = 1 at the start ("robust to the initialisation", Kendall et al.).
LOG_VAR_INIT = 1.0
# Names of the torchvision ResNet children kept as the encoder (fc and avgpool dropped), so the
# encoder's state-dict keys are those of a torchvision resnet101 state dict.
_ENCODER_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _check_range(min_depth: float, max_depth: float) -> None:
    if not (math.isfinite(min_depth) and math.isfinite(max_depth) and 0 < min_depth < max_depth):
        raise ValueError(f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}")


def normalize_depth(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Paper b's Eq. 2: ``t = ln(d - d_min + 1) / ln(d_max - d_min + 1)`` of clipped depth.

    Depth is first clipped to ``[min_depth, max_depth]``, so ``t`` lies in ``[0, 1]``.

    Args:
        depth: Depth in metres (any shape; invalid entries give a finite value, mask them).
        min_depth: ``d_min`` (paper: 2 m on KITTI).
        max_depth: ``d_max`` (paper: 125 m).
    """
    _check_range(min_depth, max_depth)
    d = depth.clamp(min_depth, max_depth)
    return torch.log(d - (min_depth - 1.0)) / math.log(max_depth - min_depth + 1.0)


def denormalize_depth(t: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Inverse of :func:`normalize_depth` for ``t`` clamped to ``[0, 1]``: metres in range.

    Args:
        t: Normalised log depth (values outside ``[0, 1]`` are clamped first).
        min_depth: ``d_min``.
        max_depth: ``d_max``.
    """
    _check_range(min_depth, max_depth)
    scale = math.log(max_depth - min_depth + 1.0)
    return torch.exp(t.clamp(0.0, 1.0) * scale) + (min_depth - 1.0)


def depth_to_class(
    depth: torch.Tensor, min_depth: float, max_depth: float, num_bins: int
) -> torch.Tensor:
    """Depth-interval class of each depth: ``num_bins`` intervals equally wide in ``t``.

    Class ``k`` holds ``t`` in ``[k / n, (k + 1) / n)``; ``t = 1`` (``d >= max_depth``) is in the
    last class. Invalid entries must be masked by the caller.

    Returns:
        int64 tensor of the shape of ``depth`` with values in ``[0, num_bins)``.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    t = normalize_depth(depth, min_depth, max_depth)
    return torch.floor(t * num_bins).long().clamp(0, num_bins - 1)


def class_to_depth(
    labels: torch.Tensor, min_depth: float, max_depth: float, num_bins: int
) -> torch.Tensor:
    """Depth in metres at the centre (in ``t``) of each depth-interval class."""
    t = (labels.to(torch.float32) + 0.5) / num_bins
    return denormalize_depth(t, min_depth, max_depth)


def _pool_matrix(size: torch.Tensor, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, size)`` averaging matrix with the windows of ``F.adaptive_avg_pool2d``.

    Bin ``i`` averages ``[floor(i * size / bins), ceil((i + 1) * size / bins))``. ``size`` is a
    0-d int64 tensor so that a traced graph keeps it dynamic.
    """
    index = torch.arange(bins, device=like.device, dtype=torch.int64)
    start = torch.div(index * size, bins, rounding_mode="floor")
    end = torch.div((index + 1) * size + (bins - 1), bins, rounding_mode="floor")
    position = torch.arange(size, device=like.device, dtype=torch.int64)  # type: ignore[call-overload]
    inside = (position[None, :] >= start[:, None]) & (position[None, :] < end[:, None])
    weights = inside.to(like.dtype)
    return weights / (end - start)[:, None].to(like.dtype)


def adaptive_avg_pool2d(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as two matrix products, exportable with dynamic H, W.

    Args:
        x: ``(B, C, H, W)``.
        bins: Output size (square).

    Returns:
        ``(B, C, bins, bins)``, equal to the PyTorch op up to float rounding.
    """
    shape = torch._shape_as_tensor(x)  # a tensor while tracing: keeps H and W dynamic
    rows = _pool_matrix(shape[2], bins, x)
    cols = _pool_matrix(shape[3], bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PyramidPoolingHead(nn.Module):
    """PSPNet head: pyramid pooling, 3x3 conv-BN-ReLU, Dropout2d, 1x1 conv to ``out_channels``.

    Output at the resolution of the input features.
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: int = ENCODER_CHANNELS,
        bins: Sequence[int] = PSP_BINS,
        channels: int = PSP_CHANNELS,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        self.stages = nn.ModuleList(_conv_bn_relu(in_channels, channels, 1) for _ in self.bins)
        self.bottleneck = _conv_bn_relu(in_channels + len(self.bins) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pyramid = [x]
        for bins, stage in zip(self.bins, self.stages, strict=True):
            pooled = stage(adaptive_avg_pool2d(x, bins))
            pyramid.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=True))
        return self.classifier(self.dropout(self.bottleneck(torch.cat(pyramid, dim=1))))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    # Output stride 8 and inputs a multiple of 8: x8 is exactly the input size. A fixed scale
    # (not size=) keeps the channel axis static in the ONNX graph's shape inference.
    return F.interpolate(x, scale_factor=INPUT_MULTIPLE, mode="bilinear", align_corners=True)


def dilated_resnet101() -> nn.Sequential:
    """torchvision ResNet-101 without avgpool/fc, output stride 8 (dilation 2 and 4)."""
    net = resnet101(weights=None, replace_stride_with_dilation=[False, True, True])
    return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in _ENCODER_CHILDREN))


class MultiDepthNet(DepthModel):
    """Dilated ResNet-101 shared by a depth-regression and a depth-interval classification head.

    Output (eval): ``depth`` (B, 1, H, W) in metres, in ``[min_depth, max_depth]``; plus
    ``depth_class_logits`` (B, num_bins, H, W) when ``keep_classification``. Training mode adds
    ``depth_norm`` (B, 1, H, W), the unclamped regression in normalised log space, and
    ``depth_class_logits`` when the model has a classification head.
    """

    def __init__(
        self,
        min_depth: float = 2.0,
        max_depth: float = 125.0,
        num_bins: int = 32,
        classification_head: bool = True,
        keep_classification: bool = False,
        encoder_weights: str | Path | None = None,
    ) -> None:
        """Build the network.

        Args:
            min_depth: ``d_min`` of the normalisation (paper: 2 m for KITTI; the data's
                smallest depth, e.g. 0.5 m indoors).
            max_depth: ``d_max`` (paper: 125 m; e.g. 10 m indoors).
            num_bins: Depth-interval classes of the auxiliary task (paper: 32).
            classification_head: False builds the single-task regression baseline without
                the classification branch (and without ``log_vars``).
            keep_classification: Also run the classification head in eval mode and return
                ``depth_class_logits`` (not exportable; for analysis).
            encoder_weights: Optional local path to an ImageNet state dict of torchvision's
                ``resnet101`` (``.pth`` loaded without pickle, or ``.safetensors``); nothing is
                downloaded. The paper trains from scratch.
        """
        super().__init__()
        _check_range(min_depth, max_depth)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
        if keep_classification and not classification_head:
            raise ValueError(
                "keep_classification needs the classification head; set "
                "classification_head=True or keep_classification=False"
            )
        self.input_multiple = INPUT_MULTIPLE
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.num_bins = int(num_bins)
        self.keep_classification = bool(keep_classification)

        self.encoder = dilated_resnet101()
        self.regression_head = PyramidPoolingHead(1)
        # Start in the middle of the normalised range (t = 0.5) so that the clamp of the
        # output is inactive at first; the paper leaves the initialisation unspecified.
        nn.init.constant_(self.regression_head.classifier.bias, 0.5)
        self.classification_head = (
            PyramidPoolingHead(self.num_bins) if classification_head else None
        )
        # (s_reg, s_cls) of Eq. 3; a parameter so that it is trained and checkpointed.
        self.log_vars = (
            nn.Parameter(torch.full((2,), LOG_VAR_INIT)) if classification_head else None
        )
        if encoder_weights is not None:
            self.load_encoder_weights(encoder_weights)

    @property
    def has_classification_head(self) -> bool:
        """Whether the auxiliary depth-interval classification branch exists."""
        return self.classification_head is not None

    def no_weight_decay_parameters(self) -> Iterable[str]:
        """Parameter names the optimiser must not decay: the task uncertainties ``log_vars``.

        Weight decay would pull ``s`` towards 0, i.e. bias the learned task weights (the
        public code has this defect).
        """
        return ["log_vars"] if self.log_vars is not None else []

    def load_encoder_weights(self, path: str | Path) -> None:
        """Load ImageNet weights of torchvision's ``resnet101`` into the encoder.

        Dilation changes no weight shape, so a plain ResNet-101 state dict fits; its ``fc.*``
        entries are ignored.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file cannot be read without pickle, or its tensors do not fit.
        """
        state = read_state_dict(path)
        wanted = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_encoder_state(self.encoder, wanted, path, "a torchvision resnet101 state dict")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.validate_input(x)
        features = self.encoder(x)
        t = _upsample(self.regression_head(features))
        out = {"depth": denormalize_depth(t, self.min_depth, self.max_depth)}
        run_classification = self.classification_head is not None and (
            self.training or self.keep_classification
        )
        if run_classification:
            logits = self.classification_head(features)  # type: ignore[misc]
            out["depth_class_logits"] = _upsample(logits)
        if self.training:
            out["depth_norm"] = t
        return out


@register_model(
    "multidepth",
    description="dilated ResNet-101 (output stride 8) with PSP regression head and auxiliary "
    "depth-interval classification head (training only), ~88.7M params, full-resolution output",
    paper=PAPER,
    tasks=("depth",),
    # The paper trains on 256x256 crops of KITTI frames without rescaling and predicts on the
    # full frames (fully convolutional): KITTI's 1216x352 is the size the model runs at.
    default_input_size=(1216, 352),
    metric=True,
)
def multidepth(
    min_depth: float = 2.0,
    max_depth: float = 125.0,
    num_bins: int = 32,
    classification_head: bool = True,
    keep_classification: bool = False,
    encoder_weights: str | None = None,
) -> MultiDepthNet:
    """Paper b's MultiDepth (KITTI defaults d_min 2 m, d_max 125 m, 32 intervals)."""
    return MultiDepthNet(
        min_depth, max_depth, num_bins, classification_head, keep_classification, encoder_weights
    )
