"""MultitaskNet: joint depth estimation and semantic segmentation (paper e: Rajvanshi & Kumar).

Follows the paper and its public code (github imvinod/MultitaskNet, built on FuseNet):

* Encoder: VGG16 with BatchNorm after every conv (CBR = conv 3x3, BN, ReLU); stages of
  2/2/3/3/3 convs with 64/128/256/512/512 channels, each followed by a 2x2 max-pool that keeps
  its indices; dropout 0.5 after pools 3, 4 and 5. No fully connected layers.
* Two decoders of the same shape, one for segmentation (``num_classes`` outputs) and one for
  depth (1 output). Each stage max-unpools with the stored indices of its encoder stage,
  concatenates that stage's pre-pool feature map (skip connection) and runs CBRs:
  stage 5 1024->1024->1024->512, stage 4 1024->1024->1024->256, stage 3 512->512->512->128
  (each followed by dropout 0.5, the paper's "Unpool-CBR-Dropout"), stage 2 256->256->64,
  stage 1 128->64 then a plain 3x3 score conv 64->C. Outputs are at full input resolution.

With 37 classes this is 116,675,558 parameters; the public code (38 classes incl. void) has
116,676,135 (see ``test/contract/test_multitasknet.py``). SUN RGB-D's void maps to the ignore
label 255 in this framework, so the default is 37 classes.

Depth: the depth decoder predicts log-depth; ``depth = exp(log_depth)``, positive by
construction. The head's bias starts at ``log sqrt(min_depth * max_depth)`` (the geometric
middle of the range) and the output is clamped to ``[min_depth / 1000, max_depth * 1000]``
so it stays finite whatever the head predicts. The paper's loss compares log depths, so the
training-mode output adds ``log_depth`` (unclamped) for the loss.

Max-unpooling is written with a pixel shuffle (:func:`max_unpool2x2`) instead of
``F.max_unpool2d``, which the TorchScript ONNX exporter cannot export; the result is identical.
Input H and W must be multiples of 32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn

from depth_perception.models.registry import DepthModel, register_model

PAPER = (
    "P. Rajvanshi, V. Kumar: MultitaskNet: Joint Depth Estimation and Semantic Segmentation "
    "using Deep Convolutional Network"
)

INPUT_MULTIPLE = 32
# (convs, channels) of the VGG16 encoder stages 1..5.
ENCODER_STAGES: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
# Output channels of the decoder convs of stages 5..1 (input = 2x the encoder stage's
# channels: unpooled features + skip). Stage 1's last conv is the score layer (C outputs).
DECODER_STAGES: tuple[tuple[int, ...], ...] = (
    (1024, 1024, 512),
    (1024, 1024, 256),
    (512, 512, 128),
    (256, 64),
    (64,),
)
DROPOUT = 0.5
# Encoder pools after which dropout runs (1-based), and decoder stages (5..1) ending with it.
_ENCODER_DROPOUT_AFTER = (3, 4, 5)
_DECODER_DROPOUT_STAGES = (5, 4, 3)
# The depth output is clamped to [min/1000, max*1000] before exp: finite and > 0 always.
_LOG_DEPTH_MARGIN = math.log(1000.0)


def max_unpool2x2(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``F.max_unpool2d(x, indices, 2, 2)`` for the indices of a 2x2, stride-2 max-pool.

    Each pooled value goes back to the position of its window's maximum, the other three
    positions get 0. Written with a pixel shuffle so that it exports to ONNX (DepthToSpace) with
    dynamic H and W. Needs the pooled map's H and W to have been even (true for inputs that are
    multiples of 32).

    Args:
        x: ``(B, C, h, w)`` values to unpool.
        indices: ``(B, C, h, w)`` flat indices into the ``(2h, 2w)`` map, as returned by
            ``F.max_pool2d(..., kernel_size=2, stride=2, return_indices=True)``.

    Returns:
        ``(B, C, 2h, 2w)``.
    """
    width = 2 * indices.shape[-1]
    # Position of the maximum inside its 2x2 window: row and column parity of the flat index
    # (the window starts at an even row and column; W is even so col % 2 == index % 2).
    row_odd = torch.remainder(torch.div(indices, width, rounding_mode="floor"), 2)
    col_odd = torch.remainder(indices, 2)
    slot = row_odd * 2 + col_odd
    parts = [torch.where(slot == k, x, torch.zeros_like(x)) for k in range(4)]
    # (B, C, 4, h, w) -> (B, 4C, h, w); pixel_shuffle puts channel c*4 + 2*dr + dc at (dr, dc).
    stacked = torch.stack(parts, dim=2).flatten(1, 2)
    return F.pixel_shuffle(stacked, 2)


def _cbr(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _decoder(out_channels: int) -> nn.ModuleList:
    """Decoder stages 5..1; the last conv of stage 1 is the score layer (no BN/ReLU)."""
    stages = nn.ModuleList()
    for number, convs in zip((5, 4, 3, 2, 1), DECODER_STAGES, strict=True):
        channels = 2 * ENCODER_STAGES[number - 1][1]
        layers: list[nn.Module] = []
        for out in convs:
            layers += _cbr(channels, out)
            channels = out
        if number in _DECODER_DROPOUT_STAGES:
            layers.append(nn.Dropout(DROPOUT))
        if number == 1:
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        stages.append(nn.Sequential(*layers))
    return stages


class MultitaskNet(DepthModel):
    """VGG16-BN encoder, segmentation and depth decoders with memorised unpooling and skips.

    Output (eval): ``depth`` (B, 1, H, W) in metres and ``seg_logits`` (B, num_classes, H, W)
    (only ``depth`` when ``num_classes == 0``). Training mode adds ``log_depth``, the raw
    (unclamped) log-depth the loss compares with ``log`` of the ground truth.
    """

    def __init__(
        self, num_classes: int = 37, min_depth: float = 0.1, max_depth: float = 10.0
    ) -> None:
        """Build the network.

        Args:
            num_classes: Segmentation classes (37 for SUN RGB-D without void); 0 drops the
                segmentation decoder.
            min_depth: Smallest depth of the scene range, metres (> 0).
            max_depth: Largest depth, metres; with ``min_depth`` sets the initial output
                ``sqrt(min_depth * max_depth)`` and the output clamp.
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
        self.input_multiple = INPUT_MULTIPLE
        self.num_classes = num_classes
        self.class_names = tuple(f"class_{i}" for i in range(num_classes))
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

        self.encoder = nn.ModuleList()
        channels = 3
        for convs, out in ENCODER_STAGES:
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += _cbr(channels, out)
                channels = out
            self.encoder.append(nn.Sequential(*layers))
        self.encoder_dropout = nn.Dropout(DROPOUT)
        self.seg_decoder = _decoder(num_classes) if num_classes else None
        self.depth_decoder = _decoder(1)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper starts the encoder from ImageNet VGG16 (no download here: He init, as
        # torchvision's VGG); decoder convs keep PyTorch's default, as the public code does.
        for module in self.encoder.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        head = self.depth_decoder[-1][-1]
        nn.init.normal_(head.weight, std=1e-3)
        nn.init.constant_(head.bias, 0.5 * math.log(self.min_depth * self.max_depth))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.validate_input(x)
        skips: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        for number, stage in enumerate(self.encoder, start=1):
            skip = stage(x)
            x, index = F.max_pool2d(skip, kernel_size=2, stride=2, return_indices=True)
            if number in _ENCODER_DROPOUT_AFTER:
                x = self.encoder_dropout(x)
            skips.append(skip)
            indices.append(index)

        log_depth = self._decode(self.depth_decoder, x, skips, indices)
        low = math.log(self.min_depth) - _LOG_DEPTH_MARGIN
        high = math.log(self.max_depth) + _LOG_DEPTH_MARGIN
        out = {"depth": torch.exp(log_depth.clamp(low, high))}
        if self.seg_decoder is not None:
            out["seg_logits"] = self._decode(self.seg_decoder, x, skips, indices)
        if self.training:
            out["log_depth"] = log_depth
        return out

    @staticmethod
    def _decode(
        decoder: nn.ModuleList,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        indices: list[torch.Tensor],
    ) -> torch.Tensor:
        for stage, skip, index in zip(decoder, reversed(skips), reversed(indices), strict=True):
            x = stage(torch.cat([max_unpool2x2(x, index), skip], dim=1))
        return x


@register_model(
    "multitasknet",
    description="VGG16-BN encoder, two unpooling decoders with skips (depth + segmentation), "
    "~116.7M params, full-resolution output",
    paper=PAPER,
    tasks=("depth", "segmentation"),
    default_input_size=(224, 224),
    metric=True,
)
def multitasknet(
    num_classes: int = 37, min_depth: float = 0.1, max_depth: float = 10.0
) -> MultitaskNet:
    """Paper e's MultitaskNet; 37 SUN RGB-D classes (void is ignored) by default."""
    return MultitaskNet(num_classes, min_depth, max_depth)
