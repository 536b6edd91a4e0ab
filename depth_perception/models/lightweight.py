"""Extremely light-weight multi-task depth network (paper d: Chiu et al.).

Encoder: torchvision MobileNetV2 with width multiplier 0.35, without its final 1280-channel
convolution (stride 32, about 0.25M parameters). Decoder: four blocks D1..D4; each concatenates
the previous feature map with the encoder feature of the same resolution, doubles the resolution
(``upsample``, below), runs inverted-residual bottlenecks shared by both tasks
(the paper's (N, 0) design) and feeds a 1x1 depth head and a 1x1 segmentation head. For a
1056x320 input D1..D4 give 66x20, 132x40, 264x80 and 528x160 (W x H), i.e. strides 16, 8, 4, 2.

Variants ``lightweight`` (L), ``lightweight_m``, ``lightweight_s``, ``lightweight_xs`` keep 4, 3,
2, 1 decoder blocks (the paper's detachable decoders); the state dict of a smaller variant is a
subset of the larger one's, so weights trained for L load into M/S/XS by dropping keys.

The depth head predicts in the paper's log space
``G(d) = (log d - log m) * M / (log M - log m)`` and the model returns ``depth = G^-1(pred)``,
which is positive by construction. Input H and W must be multiples of 32.

``upsample`` selects how a decoder block doubles the resolution. ``shuffle`` is the paper's
PixelShuffle of the concatenated features: each of the four output pixels of a 2x2 cell comes
from a different channel, i.e. a different feature, so the depth map shows a checkerboard at
that period until training (if ever) makes the channels agree. ``bilinear`` (the default)
reduces the channels with a 1x1 convolution to the same count and upsamples bilinearly
(resize-then-convolve; a 1x1 convolution commutes with the resize, so it runs at the low
resolution): neighbouring output pixels mix the same features, so there is no such pattern.

``canonical_focal_px`` (optional): the network predicts the depth a camera with this focal
length (in pixels of the network input) would see; a camera with focal length ``f`` (same
pixels) sees ``depth * f / canonical_focal_px``. One image cannot tell a wide lens near a
wall from a long lens far from it, so a network trained over many fields of view can only be
metric for a known focal length; the predictor, the evaluation and the loss apply the factor
(``depth_perception.camera.focal_scale``). None: the output is metric for the training cameras
as it is.

``focal_exponent`` (default 1): the factor becomes ``(f / canonical_focal_px) ** focal_exponent``.
A network cannot see the focal length, so it only partly follows it: on its own synthetic
validation frames the bundled model read narrow lenses long and wide ones short, its depth
error growing as ``(f / canonical_focal_px) ** 0.25``. An exponent fitted on such frames
(``python -m training.tools.focal_calibration``) takes that trend out; training uses the same
factor for its targets, so a fine-tune keeps the checkpoint's exponent consistent.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.mobilenetv2 import InvertedResidual

from depth_perception.classes import CITYSCAPES_CLASSES
from depth_perception.models.registry import (
    DepthModel,
    load_encoder_state,
    read_state_dict,
    register_model,
)

PAPER = (
    "M.-J. Chiu, H.-T. Chen, W.-C. Chiu, J.-H. Chuang: Real-time Monocular Depth Estimation "
    "with Extremely Light-Weight Neural Network"
)


WIDTH_MULT = 0.35
INPUT_MULTIPLE = 32
# Layers of torchvision's mobilenet_v2(width_mult=0.35).features that are kept: all but the last
# 1x1 conv to 1280 channels, which alone has 146k parameters (more than the whole decoder).
_ENCODER_LAYERS = 18
_ENCODER_OUT_CHANNELS = 112
# (encoder layer index, channels) of the skips used by D1..D4, at strides 32, 16, 8, 4.
_SKIPS: tuple[tuple[int, int], ...] = ((16, 56), (13, 32), (6, 16), (3, 8))
# (output channels, bottlenecks, expansion ratio) of D1..D4. Chosen so that L with 19 classes
# has ~0.318M parameters, the paper's 0.32M; the channels entering each PixelShuffle are
# multiples of 4 as it needs.
_DECODER_CONFIG: tuple[tuple[int, int, int], ...] = ((32, 2, 6), (24, 2, 6), (16, 3, 6), (8, 3, 6))
# Output depth is clamped to [min_depth / 1000, max_depth * 1000] before exp so it stays finite
# and positive whatever the head predicts; the losses use the unclamped G-space output.
_LOG_DEPTH_MARGIN = math.log(1000.0)


def log_depth_transform(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """The paper's ``G(d) = (log d - log m) * M / (log M - log m)``; maps [m, M] onto [0, M].

    Args:
        depth: Depth in metres, > 0.
        min_depth: ``m`` (4 m in the paper, for KITTI).
        max_depth: ``M`` (80 m in the paper).
    """
    log_m = math.log(min_depth)
    return (torch.log(depth) - log_m) * (max_depth / (math.log(max_depth) - log_m))


def inverse_log_depth_transform(
    g: torch.Tensor, min_depth: float, max_depth: float
) -> torch.Tensor:
    """``G^-1``: depth in metres from G-space values, clamped to stay finite and > 0."""
    log_m, log_big_m = math.log(min_depth), math.log(max_depth)
    log_depth = g * ((log_big_m - log_m) / max_depth) + log_m
    log_depth = log_depth.clamp(log_m - _LOG_DEPTH_MARGIN, log_big_m + _LOG_DEPTH_MARGIN)
    return torch.exp(log_depth)


UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "shuffle")


class DecoderBlock(nn.Module):
    """concat(previous, skip) -> 2x upsampling -> shared inverted-residual bottlenecks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_bottlenecks: int,
        expand_ratio: int,
        upsample: str = "bilinear",
    ) -> None:
        super().__init__()
        if in_channels % 4:
            raise ValueError(f"the 2x upsampling needs channels divisible by 4, got {in_channels}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        channels = in_channels // 4
        if upsample == "shuffle":
            self.shuffle = nn.PixelShuffle(2)
        else:
            # Same channel count as the shuffle gives, so the bottlenecks are unchanged.
            self.reduce = nn.Conv2d(in_channels, channels, 1, bias=False)
        layers = []
        for _ in range(num_bottlenecks):
            layers.append(InvertedResidual(channels, out_channels, 1, expand_ratio))
            channels = out_channels
        self.bottlenecks = nn.Sequential(*layers)

    def forward(self, previous: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([previous, skip], dim=1)
        if self.upsample == "shuffle":
            x = self.shuffle(x)
        else:
            x = F.interpolate(self.reduce(x), scale_factor=2.0, mode="bilinear")
        return self.bottlenecks(x)


class LightweightDepthNet(DepthModel):
    """MobileNetV2-0.35 encoder with detachable multi-scale, multi-task decoder blocks.

    Output (eval): ``depth`` (B, 1, H/2^(5-k), W/2^(5-k)) for k kept decoder blocks, and
    ``seg_logits`` (B, num_classes, same size) when ``num_classes > 0``. Training mode adds
    ``depth_scales``, ``g_scales`` (raw G-space predictions, for the loss) and ``seg_scales``,
    lists ordered coarse (D1) to fine.
    """

    def __init__(
        self,
        num_classes: int = 19,
        min_depth: float = 4.0,
        max_depth: float = 80.0,
        decoder_blocks: int = 4,
        encoder_weights: str | Path | None = None,
        upsample: str = "bilinear",
        canonical_focal_px: float | None = None,
        focal_exponent: float = 1.0,
    ) -> None:
        """Build the network.

        Args:
            num_classes: Segmentation classes; 0 for a depth-only model.
            min_depth: ``m`` of G(d), metres (paper: 4 for KITTI).
            max_depth: ``M`` of G(d), metres (paper: 80 for KITTI).
            decoder_blocks: Decoder blocks kept, 1..4 (XS..L).
            encoder_weights: Optional local path to an ImageNet state dict of torchvision's
                ``mobilenet_v2(width_mult=0.35)`` (``.pth`` loaded without pickle, or
                ``.safetensors``); nothing is downloaded.
            upsample: ``bilinear`` (1x1 conv + bilinear 2x, no checkerboard) or ``shuffle``
                (the paper's PixelShuffle; checkpoints from before this option).
            canonical_focal_px: Focal length in network-input pixels for which the depth
                output is metric (see the module docstring); None: no focal rescaling.
            focal_exponent: Exponent of the focal-length factor (module docstring), in (0, 2].
        """
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        if not (
            math.isfinite(min_depth) and math.isfinite(max_depth) and 0 < min_depth < max_depth
        ):
            raise ValueError(
                f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}"
            )
        if decoder_blocks not in (1, 2, 3, 4):
            raise ValueError(f"decoder_blocks must be 1, 2, 3 or 4, got {decoder_blocks!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        if canonical_focal_px is not None and not (
            math.isfinite(canonical_focal_px) and canonical_focal_px > 0
        ):
            raise ValueError(f"canonical_focal_px must be > 0 or None, got {canonical_focal_px}")
        if not (math.isfinite(focal_exponent) and 0 < focal_exponent <= 2):
            raise ValueError(f"focal_exponent must be in (0, 2], got {focal_exponent}")

        self.input_multiple = INPUT_MULTIPLE
        self.num_classes = num_classes
        self.class_names = (
            CITYSCAPES_CLASSES
            if num_classes == len(CITYSCAPES_CLASSES)
            else tuple(f"class_{i}" for i in range(num_classes))
        )
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.decoder_blocks = decoder_blocks
        self.upsample = upsample
        self.canonical_focal_px = None if canonical_focal_px is None else float(canonical_focal_px)
        self.focal_exponent = float(focal_exponent)

        features = mobilenet_v2(weights=None, width_mult=WIDTH_MULT).features
        self.encoder = nn.Sequential(*list(features)[:_ENCODER_LAYERS])

        self.decoder = nn.ModuleList()
        self.depth_heads = nn.ModuleList()
        self.seg_heads = nn.ModuleList()
        previous = _ENCODER_OUT_CHANNELS
        for (_, skip_channels), (out_channels, n, t) in zip(
            _SKIPS[:decoder_blocks], _DECODER_CONFIG[:decoder_blocks], strict=True
        ):
            self.decoder.append(
                DecoderBlock(previous + skip_channels, out_channels, n, t, upsample)
            )
            self.depth_heads.append(nn.Conv2d(out_channels, 1, 1))
            if num_classes:
                self.seg_heads.append(nn.Conv2d(out_channels, num_classes, 1))
            previous = out_channels
        self._skip_indices = tuple(index for index, _ in _SKIPS[:decoder_blocks])
        self._init_decoder()

        if encoder_weights is not None:
            self.load_encoder_weights(encoder_weights)

    def _init_decoder(self) -> None:
        # The paper initialises the decoder with a normal initialiser; the encoder keeps
        # torchvision's initialisation unless ImageNet weights are loaded.
        for module in self.decoder.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for head in self.depth_heads:
            nn.init.normal_(head.weight, std=0.01)
            # Start at G = M/2, the geometric mean sqrt(m * M) of the depth range.
            nn.init.constant_(head.bias, self.max_depth / 2.0)
        for head in self.seg_heads:
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)

    def load_encoder_weights(self, path: str | Path) -> None:
        """Load ImageNet weights of torchvision's ``mobilenet_v2(width_mult=0.35)``.

        Accepts a full-model state dict (``features.*`` and ``classifier.*`` keys) or one of
        ``features`` only; the classifier and the dropped last conv are ignored.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file cannot be read without pickle, or its tensors do not fit.
        """
        state = read_state_dict(path)
        wanted = {}
        for key, value in state.items():
            name = key.removeprefix("features.")
            index = name.split(".", 1)[0]
            if key.startswith("classifier.") or not index.isdigit():
                continue
            if int(index) < _ENCODER_LAYERS:
                wanted[name] = value
        load_encoder_state(
            self.encoder, wanted, path, f"a MobileNetV2 width_mult={WIDTH_MULT} state dict"
        )

    def output_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """``(width, height)`` of the outputs of the kept decoder blocks, D1 first."""
        return [
            (width // 2 ** (4 - i), height // 2 ** (4 - i)) for i in range(self.decoder_blocks)
        ]

    def to_g_space(self, depth: torch.Tensor) -> torch.Tensor:
        """G(depth) with this model's ``min_depth``/``max_depth`` (targets for ``g_scales``)."""
        return log_depth_transform(depth, self.min_depth, self.max_depth)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        return self._run(x, all_scales=self.training)

    def forward_all_scales(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Like training-mode ``forward`` (per-scale lists included) whatever the mode.

        Lets the coarser decoder blocks be inspected in eval mode, e.g. to compare a detached
        M/S/XS model with the L model it came from.
        """
        return self._run(x, all_scales=True)

    def _run(
        self, x: torch.Tensor, all_scales: bool
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        self.validate_input(x)
        skips: list[torch.Tensor] = []
        for index, layer in enumerate(self.encoder):
            x = layer(x)
            if index in self._skip_indices:
                skips.append(x)
        skips.reverse()  # D1 takes the deepest skip

        last = len(self.decoder) - 1
        g_scales: list[torch.Tensor] = []
        seg_scales: list[torch.Tensor] = []
        for index, block in enumerate(self.decoder):
            x = block(x, skips[index])
            # In eval mode only the finest kept block's heads run: the others are training aids.
            if all_scales or index == last:
                g_scales.append(self.depth_heads[index](x))
                if self.num_classes:
                    seg_scales.append(self.seg_heads[index](x))

        depth_scales = [
            inverse_log_depth_transform(g, self.min_depth, self.max_depth) for g in g_scales
        ]
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {"depth": depth_scales[-1]}
        if self.num_classes:
            out["seg_logits"] = seg_scales[-1]
        if all_scales:
            out["depth_scales"] = depth_scales
            out["g_scales"] = g_scales
            if self.num_classes:
                out["seg_scales"] = seg_scales
        return out


def _legacy_args(args: dict[str, Any], tensor_names: Collection[str]) -> dict[str, Any]:
    # Checkpoints from before ``upsample`` existed hold the PixelShuffle decoder (no
    # ``reduce`` convolutions) and record no ``upsample``; they keep loading as they were.
    if "upsample" not in args and not any(n.endswith(".reduce.weight") for n in tensor_names):
        return {**args, "upsample": "shuffle"}
    return args


_REGISTRATION = {
    "legacy_args": _legacy_args,
    "tasks": ("depth", "segmentation"),
    "paper": PAPER,
    "default_input_size": (1056, 320),
    "metric": True,
}


@register_model(
    "lightweight",
    description="MobileNetV2-0.35 multi-task depth+segmentation net, 4 decoder blocks (L), "
    "~0.32M params, output at 1/2 input resolution",
    **_REGISTRATION,
)
def lightweight(
    num_classes: int = 19,
    min_depth: float = 4.0,
    max_depth: float = 80.0,
    encoder_weights: str | None = None,
    decoder_blocks: int = 4,
    upsample: str = "bilinear",
    canonical_focal_px: float | None = None,
    focal_exponent: float = 1.0,
) -> LightweightDepthNet:
    """Paper d's L model; ``decoder_blocks`` < 4 gives the M/S/XS architectures."""
    return LightweightDepthNet(
        num_classes,
        min_depth,
        max_depth,
        decoder_blocks,
        encoder_weights,
        upsample,
        canonical_focal_px,
        focal_exponent,
    )


@register_model(
    "lightweight_m",
    description="lightweight with 3 decoder blocks (M), output at 1/4 input resolution",
    **_REGISTRATION,
)
def lightweight_m(
    num_classes: int = 19,
    min_depth: float = 4.0,
    max_depth: float = 80.0,
    encoder_weights: str | None = None,
    upsample: str = "bilinear",
    canonical_focal_px: float | None = None,
    focal_exponent: float = 1.0,
) -> LightweightDepthNet:
    """Paper d's M model: L without D4."""
    return LightweightDepthNet(
        num_classes,
        min_depth,
        max_depth,
        3,
        encoder_weights,
        upsample,
        canonical_focal_px,
        focal_exponent,
    )


@register_model(
    "lightweight_s",
    description="lightweight with 2 decoder blocks (S), output at 1/8 input resolution",
    **_REGISTRATION,
)
def lightweight_s(
    num_classes: int = 19,
    min_depth: float = 4.0,
    max_depth: float = 80.0,
    encoder_weights: str | None = None,
    upsample: str = "bilinear",
    canonical_focal_px: float | None = None,
    focal_exponent: float = 1.0,
) -> LightweightDepthNet:
    """Paper d's S model: L without D3 and D4."""
    return LightweightDepthNet(
        num_classes,
        min_depth,
        max_depth,
        2,
        encoder_weights,
        upsample,
        canonical_focal_px,
        focal_exponent,
    )


@register_model(
    "lightweight_xs",
    description="lightweight with 1 decoder block (XS), output at 1/16 input resolution",
    **_REGISTRATION,
)
def lightweight_xs(
    num_classes: int = 19,
    min_depth: float = 4.0,
    max_depth: float = 80.0,
    encoder_weights: str | None = None,
    upsample: str = "bilinear",
    canonical_focal_px: float | None = None,
    focal_exponent: float = 1.0,
) -> LightweightDepthNet:
    """Paper d's XS model: D1 only."""
    return LightweightDepthNet(
        num_classes,
        min_depth,
        max_depth,
        1,
        encoder_weights,
        upsample,
        canonical_focal_px,
        focal_exponent,
    )
