"""Eigen & Fergus' multi-scale model (MSM) and paper a's depth-gradient multi-task variant.

``msm``: D. Eigen, R. Fergus, ICCV 2015 (VGG16 version), the base model of paper a
(Takamine & Endo). Three scales, sizes given for the default 320x240 input:

* Scale 1 (``scale1``): VGG16 convolutions and pools (torchvision's ``vgg16`` features, see
  :func:`vgg16_features`; optional ImageNet weights from a local file) -> 512 x 7 x 10 at
  1/32 -> full1 (4096, ReLU, dropout 0.5) -> full2 (64 x 15 x 20, a 1/16 grid) -> bilinear x4
  to 1/4.
* Scale 2 (``scale2``): conv 9x9 / 96 stride 2 + 2x2 max-pool on the image (1/4) -> concat
  with scale 1 (160 ch) -> three conv 5x5 / 64 -> conv 5x5 to log-depth at 1/4 (80 x 60).
* Scale 3 (``scale3``): conv 9x9 / 64 stride 2 on the image (1/2) -> concat with the x2
  upsampled scale-2 output -> two conv 5x5 / 64 -> conv 5x5 to log-depth at 1/2 (160 x 120).
* The scale-3 log-depth is upsampled bilinearly to the input size; ``depth = exp(.)``.

``msm_gradient`` (paper a, Fig. 4): scale 2 branches into a depth head and an x/y depth-gradient
head that share the image conv and the first two 5x5 convs ("the middle layers"); each branch
keeps its own last 5x5 conv and output conv (1 channel: log-depth; 2 channels: the
``[-1, 0, 1]`` x and y gradients of the depth in metres, on the 1/4 grid, see
``training.objectives.gradient_losses.depth_gradients``). Scale 3 takes the multiple input
concat(image features, log-depth, grad_x, grad_y), all upsampled x2, and outputs the refined
depth.

Design decisions (differences from the papers, and why):

* Full-image fully connected layers and variable input size: Eigen's full1/full2 see the whole
  image at one size. Here the layers are laid out for ``fc_input_size`` (default 320x240, the
  paper's): the VGG output is bilinearly resampled to that size's 1/32 grid (7 x 10; the
  identity at that input size, so the model *is* Eigen's there) and full2's 1/16 grid is
  resized bilinearly to 1/4 of the actual input. Any other input size (multiples of 4, at
  least 32 px) therefore works and ONNX export keeps H and W dynamic (Resize with constant
  output sizes); far from ``fc_input_size`` the global layers see a resampled feature map.
* Padded ("same") convolutions instead of Eigen's valid ones, so every scale is an exact
  1/4, 1/2 of the input (Eigen: 74x55 and 147x109 for a 320x240 input) and the output is at
  input resolution.
* Scale 3 predicts a log-depth correction added to the upsampled scale-2 log-depth, with its
  output conv initialised to 0. Eigen's scale 3 outputs the depth directly; since the
  scale-2 output is one of its inputs the function class is the same, but with the residual
  form stage 2 starts from stage 1's accuracy instead of from noise.
* Depth is predicted as log-depth (the scale-invariant loss compares logs); the output is
  ``exp(clamp(log d, log(min_depth / 1000), log(max_depth * 1000)))``: finite and positive.
* No batch normalisation (as Eigen). full1's dropout is switched off while scale 1 is frozen
  (stage 2), so frozen layers give scale 3 a deterministic input.

Training mode adds ``log_depth`` (unclamped, full resolution), ``depth_s2`` / ``log_depth_s2``
(scale 2, 1/4 resolution) and, for ``msm_gradient``, ``grad_x`` / ``grad_y`` (1/4 resolution).
Eval mode returns ``{"depth"}`` only. Parameter names start with ``scale1.``, ``scale2.`` and
``scale3.``, so ``train.freeze: ["scale1.", "scale2."]`` freezes the shared layers (stage 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from depth_perception.models.registry import (
    DepthModel,
    load_encoder_state,
    read_state_dict,
    register_model,
)

PAPER_MSM = (
    "D. Eigen, R. Fergus: Predicting Depth, Surface Normals and Semantic Labels with a Common "
    "Multi-Scale Convolutional Architecture (ICCV 2015)"
)
PAPER_GRADIENT = (
    "M. Takamine, S. Endo: Monocular Depth Estimation with a Multi-task and Multiple-input "
    "Architecture Using Depth Gradient"
)

INPUT_MULTIPLE = 4
# VGG16 needs at least one pixel after its five 2x2 pools.
MIN_INPUT_SIDE = 32
DEFAULT_FC_INPUT_SIZE = (320, 240)
FC_DIM = 4096
COARSE_CHANNELS = 64
DROPOUT = 0.5
SCALE2_IMAGE_CHANNELS = 96
SCALE3_IMAGE_CHANNELS = 64
HIDDEN_CHANNELS = 64
_LOG_DEPTH_MARGIN = math.log(1000.0)


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    # "same" padding: every scale is an exact 1/2^k of the input (Eigen uses valid convs).
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


def _conv_relu(in_channels: int, out_channels: int, kernel: int = 5) -> list[nn.Module]:
    return [_conv(in_channels, out_channels, kernel), nn.ReLU(inplace=True)]


def _check_size(name: str, value: Sequence[int]) -> tuple[int, int]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be (width, height), e.g. [320, 240], got {value!r}")
    width, height = (int(v) for v in value)
    if width < MIN_INPUT_SIDE or height < MIN_INPUT_SIDE:
        raise ValueError(f"{name} must be at least {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}, got {value}")
    return width, height


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16(weights=None).features``: 13 convs + 5 pools, 512 ch at 1/32.

    Built with torchvision's own ``make_layers`` and initialised as torchvision's VGG does
    (He normal, fan-out), without constructing the 120M-parameter classifier that ``vgg16()``
    would build and initialise only to be thrown away. Same module indices, so torchvision's
    ``features.*`` weights load unchanged.
    """
    features = make_layers(cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features


class Scale1(nn.Module):
    """VGG16 convolutions + Eigen's two full-image fully connected layers.

    Output: ``(B, coarse_channels, h/16, w/16)`` for the ``fc_input_size`` ``(w, h)`` grid,
    whatever the input size.
    """

    def __init__(
        self,
        fc_input_size: tuple[int, int],
        fc_dim: int,
        coarse_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        width, height = fc_input_size
        self.feature_grid = (height // 32, width // 32)
        self.coarse_grid = (height // 16, width // 16)
        self.coarse_channels = coarse_channels
        self.dropout = dropout
        self.features = vgg16_features()
        self.fc1 = nn.Linear(512 * self.feature_grid[0] * self.feature_grid[1], fc_dim)
        self.fc2 = nn.Linear(fc_dim, coarse_channels * self.coarse_grid[0] * self.coarse_grid[1])
        for fc in (self.fc1, self.fc2):
            # torchvision's VGG initialisation of its fully connected layers.
            nn.init.normal_(fc.weight, 0.0, 0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        # Resample to the grid full1 was laid out for (identity at fc_input_size).
        f = F.interpolate(f, size=self.feature_grid, mode="bilinear", align_corners=False)
        # Dropout only while full1 is trained: frozen layers must give a fixed input.
        drop = self.training and self.fc1.weight.requires_grad
        h = F.dropout(F.relu(self.fc1(f.flatten(1))), self.dropout, training=drop)
        out = self.fc2(h)
        return out.view(-1, self.coarse_channels, self.coarse_grid[0], self.coarse_grid[1])


class Scale2(nn.Module):
    """Eigen's scale 2: image conv 9x9/96 s2 + pool, concat scale 1, 5x5 convs, 1/4 output.

    With ``gradient_head`` the last hidden conv and the output conv are duplicated into a
    depth branch (1 channel) and a gradient branch (2 channels: x, y); the rest is shared.
    """

    def __init__(self, coarse_channels: int, gradient_head: bool) -> None:
        super().__init__()
        self.image = nn.Sequential(
            _conv(3, SCALE2_IMAGE_CHANNELS, 9, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        channels = SCALE2_IMAGE_CHANNELS + coarse_channels
        # conv2_2, conv2_3: shared by both tasks in msm_gradient ("middle layers").
        self.shared = nn.Sequential(
            *_conv_relu(channels, HIDDEN_CHANNELS), *_conv_relu(HIDDEN_CHANNELS, HIDDEN_CHANNELS)
        )
        # conv2_4 + conv2_5 (output) per task.
        self.depth_head = nn.Sequential(
            *_conv_relu(HIDDEN_CHANNELS, HIDDEN_CHANNELS), _conv(HIDDEN_CHANNELS, 1, 5)
        )
        self.grad_head = (
            nn.Sequential(
                *_conv_relu(HIDDEN_CHANNELS, HIDDEN_CHANNELS), _conv(HIDDEN_CHANNELS, 2, 5)
            )
            if gradient_head
            else None
        )

    def forward(
        self, x: torch.Tensor, coarse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = self.image(x)
        coarse = F.interpolate(coarse, size=f.shape[-2:], mode="bilinear", align_corners=False)
        h = self.shared(torch.cat([f, coarse], dim=1))
        log_depth = self.depth_head(h)
        grads = self.grad_head(h) if self.grad_head is not None else None
        return log_depth, grads


class Scale3(nn.Module):
    """Eigen's scale 3: image conv 9x9/64 s2, concat the upsampled scale-2 outputs, 5x5 convs.

    Predicts a log-depth correction at 1/2 resolution (output conv initialised to 0).
    """

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.image = nn.Sequential(_conv(3, SCALE3_IMAGE_CHANNELS, 9, stride=2), nn.ReLU(True))
        self.refine = nn.Sequential(
            *_conv_relu(SCALE3_IMAGE_CHANNELS + extra_channels, HIDDEN_CHANNELS),
            *_conv_relu(HIDDEN_CHANNELS, HIDDEN_CHANNELS),
            _conv(HIDDEN_CHANNELS, 1, 5),
        )

    def forward(self, x: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return self.refine(torch.cat([self.image(x), inputs], dim=1))


class MultiScaleDepthNet(DepthModel):
    """Eigen & Fergus' three-scale network; ``gradient_head=True`` gives paper a's variant.

    Output (eval): ``depth`` (B, 1, H, W) in metres. Training mode adds ``log_depth``
    (B, 1, H, W), ``depth_s2`` / ``log_depth_s2`` (B, 1, H/4, W/4) and, with the gradient head,
    ``grad_x`` / ``grad_y`` (B, 1, H/4, W/4).
    """

    def __init__(
        self,
        min_depth: float = 0.1,
        max_depth: float = 10.0,
        gradient_head: bool = False,
        fc_input_size: Sequence[int] = DEFAULT_FC_INPUT_SIZE,
        fc_dim: int = FC_DIM,
        coarse_channels: int = COARSE_CHANNELS,
        dropout: float = DROPOUT,
        encoder_weights: str | Path | None = None,
    ) -> None:
        """Build the network.

        Args:
            min_depth: Smallest depth of the scene range, metres (> 0).
            max_depth: Largest depth; with ``min_depth`` sets the initial output
                ``sqrt(min_depth * max_depth)`` and the output clamp.
            gradient_head: Paper a's depth-gradient branch at scale 2 and multiple-input
                scale 3.
            fc_input_size: ``(width, height)`` the full-image layers are laid out for (the
                model equals Eigen's at this input size); multiples of 32 keep the 1/32 grid
                exact.
            fc_dim: Units of full1 (Eigen: 4096).
            coarse_channels: Channels of full2's output grid (Eigen: 64).
            dropout: Dropout after full1 (Eigen: 0.5).
            encoder_weights: Optional local path to an ImageNet state dict of torchvision's
                ``vgg16`` (``.pth`` loaded without pickle, or ``.safetensors``); nothing is
                downloaded.
        """
        super().__init__()
        if not (
            math.isfinite(min_depth) and math.isfinite(max_depth) and 0 < min_depth < max_depth
        ):
            raise ValueError(
                f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}"
            )
        size = _check_size("fc_input_size", fc_input_size)
        for name, value in (("fc_dim", fc_dim), ("coarse_channels", coarse_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_multiple = INPUT_MULTIPLE
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.gradient_head = bool(gradient_head)
        self.fc_input_size = size

        self.scale1 = Scale1(size, fc_dim, coarse_channels, float(dropout))
        self.scale2 = Scale2(coarse_channels, self.gradient_head)
        self.scale3 = Scale3(3 if self.gradient_head else 1)
        self._init_weights()
        if encoder_weights is not None:
            self.load_encoder_weights(encoder_weights)

    def _init_weights(self) -> None:
        # He initialisation of the ReLU convs of scales 2 and 3 (no BatchNorm to rescale them);
        # VGG keeps torchvision's own initialisation.
        for scale in (self.scale2, self.scale3):
            for module in scale.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)
        depth_out = self.scale2.depth_head[-1]
        nn.init.normal_(depth_out.weight, std=1e-3)
        nn.init.constant_(depth_out.bias, 0.5 * math.log(self.min_depth * self.max_depth))
        if self.scale2.grad_head is not None:
            grad_out = self.scale2.grad_head[-1]
            nn.init.normal_(grad_out.weight, std=1e-3)
            nn.init.zeros_(grad_out.bias)
        # Scale 3 starts as the identity on the scale-2 prediction (residual form).
        nn.init.zeros_(self.scale3.refine[-1].weight)
        nn.init.zeros_(self.scale3.refine[-1].bias)

    def load_encoder_weights(self, path: str | Path) -> None:
        """Load ImageNet weights of torchvision's ``vgg16`` into scale 1's convolutions.

        Accepts a full-model state dict (``features.*`` and ``classifier.*`` keys) or one of
        ``features`` only; the classifier is ignored (Eigen's full1/full2 differ in size).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file cannot be read without pickle, or its tensors do not fit.
        """
        state = read_state_dict(path)
        wanted = {
            key.removeprefix("features."): value
            for key, value in state.items()
            if not key.startswith("classifier.") and key.removeprefix("features.")[:1].isdigit()
        }
        load_encoder_state(self.scale1.features, wanted, path, "a torchvision vgg16 state dict")

    def validate_input(self, x: torch.Tensor) -> None:
        """The registry's input checks plus VGG's minimum size (see :class:`DepthModel`)."""
        super().validate_input(x)
        if isinstance(x, torch.Tensor) and x.dim() == 4 and not torch.jit.is_tracing():
            height, width = int(x.shape[2]), int(x.shape[3])
            if min(height, width) < MIN_INPUT_SIDE:
                raise ValueError(
                    f"{type(self).__name__} needs H and W >= {MIN_INPUT_SIDE} (VGG16 pools 5 "
                    f"times), got {width}x{height}; resize the image"
                )

    def _to_depth(self, log_depth: torch.Tensor) -> torch.Tensor:
        low = math.log(self.min_depth) - _LOG_DEPTH_MARGIN
        high = math.log(self.max_depth) + _LOG_DEPTH_MARGIN
        return torch.exp(log_depth.clamp(low, high))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.validate_input(x)
        coarse = self.scale1(x)
        log_depth_s2, grads = self.scale2(x, coarse)
        half = (x.shape[-2] // 2, x.shape[-1] // 2)
        up_log_s2 = F.interpolate(log_depth_s2, size=half, mode="bilinear", align_corners=False)
        extra = [up_log_s2]
        if grads is not None:
            extra.append(F.interpolate(grads, size=half, mode="bilinear", align_corners=False))
        log_depth_s3 = up_log_s2 + self.scale3(x, torch.cat(extra, dim=1))
        log_depth = F.interpolate(
            log_depth_s3, size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        out = {"depth": self._to_depth(log_depth)}
        if self.training:
            out["log_depth"] = log_depth
            out["log_depth_s2"] = log_depth_s2
            out["depth_s2"] = self._to_depth(log_depth_s2)
            if grads is not None:
                out["grad_x"] = grads[:, 0:1]
                out["grad_y"] = grads[:, 1:2]
        return out


@register_model(
    "msm",
    description="Eigen & Fergus multi-scale model (VGG16 scale 1 with full-image FC layers, "
    "scales 2 and 3 refine), ~241M params at 320x240",
    paper=PAPER_MSM,
    tasks=("depth",),
    default_input_size=DEFAULT_FC_INPUT_SIZE,
    metric=True,
)
def msm(
    min_depth: float = 0.1,
    max_depth: float = 10.0,
    fc_input_size: Sequence[int] = DEFAULT_FC_INPUT_SIZE,
    fc_dim: int = FC_DIM,
    coarse_channels: int = COARSE_CHANNELS,
    dropout: float = DROPOUT,
    encoder_weights: str | None = None,
) -> MultiScaleDepthNet:
    """Eigen & Fergus' MSM (paper a's baseline); NYU depth range by default."""
    return MultiScaleDepthNet(
        min_depth,
        max_depth,
        False,
        fc_input_size,
        fc_dim,
        coarse_channels,
        dropout,
        encoder_weights,
    )


@register_model(
    "msm_gradient",
    description="MSM with a shared-layer depth-gradient branch at scale 2 and multiple-input "
    "(depth + gradients) scale 3 (paper a), ~241M params at 320x240",
    paper=PAPER_GRADIENT,
    tasks=("depth",),
    default_input_size=DEFAULT_FC_INPUT_SIZE,
    metric=True,
)
def msm_gradient(
    min_depth: float = 0.1,
    max_depth: float = 10.0,
    fc_input_size: Sequence[int] = DEFAULT_FC_INPUT_SIZE,
    fc_dim: int = FC_DIM,
    coarse_channels: int = COARSE_CHANNELS,
    dropout: float = DROPOUT,
    encoder_weights: str | None = None,
) -> MultiScaleDepthNet:
    """Paper a's supervised multi-task, multiple-input model on the MSM."""
    return MultiScaleDepthNet(
        min_depth,
        max_depth,
        True,
        fc_input_size,
        fc_dim,
        coarse_channels,
        dropout,
        encoder_weights,
    )
