"""DenseNet-201 transfer-learning depth network (paper c: Bharadwaj et al.).

As the paper describes it (an Alhashim & Wonka style encoder-decoder):

* Encoder: torchvision DenseNet-201 ``features`` (classification layer removed; 1920 channels
  at stride 32, 18.09M parameters), ImageNet-pretrained in the paper and **frozen**: its
  parameters get no gradient and, while frozen, it runs under ``torch.no_grad`` with its
  BatchNorm layers in eval mode, so training spends neither gradient memory nor backward time on
  it (the paper's reason for fast convergence).
* Decoder: four blocks of ``2x nearest upsampling - conv 3x3 - BN - ReLU - conv 3x3 - BN - ReLU``
  and a last block ``2x nearest upsampling - conv 3x3 - BN - ReLU - conv 3x3``, with channels
  1920 -> 1024 -> 1024 -> 512 -> 512 -> 256 -> 256 -> 128 -> 128 -> 64 -> 1 (no skip
  connections: the paper lists none). Five 2x upsamplings undo the encoder's stride 32, so the
  output has the input's resolution. Every decoder conv's weights are drawn from
  ``N(0, 1 / sqrt(5 * in_channels))`` (the paper's standard deviation), biases 0.
* Output: depth in metres, linear (the paper trains the raw output with an L1 loss against
  depth in 0-10 m). ``depth`` is that output clamped to ``[min_depth, max_depth]`` so it is
  finite and positive; the unclamped value is the training-mode output ``depth_raw`` that the
  ``l1`` objective uses (the clamp would cut the gradient).

ImageNet weights are never downloaded: pass a local torchvision ``densenet201`` state dict as
``encoder_weights``. A frozen, randomly initialised encoder is of little use, so building one
without weights warns. Input H and W must be multiples of 32.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.models import densenet201

from depth_perception.models.registry import (
    DepthModel,
    load_encoder_state,
    read_state_dict,
    register_model,
)

PAPER = (
    "R. Bharadwaj, R. Gutmann, I. Moothart, C. Reinertson: Fast-Converging Depth Estimation "
    "using Transfer Learning"
)

INPUT_MULTIPLE = 32
ENCODER_CHANNELS = 1920
# Output channels of the two convs of each decoder block (the last block's second conv is the
# 1-channel output layer without BN/ReLU).
DECODER_BLOCKS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (512, 512),
    (256, 256),
    (128, 128),
    (64, 1),
)
# Old torchvision DenseNet checkpoints name layers "norm.1"/"conv.2"; the current modules use
# "norm1"/"conv2" (torchvision's own loader rewrites the keys with this pattern).
_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def paper_init_(conv: nn.Conv2d) -> None:
    """Paper c's initialisation: weights ~ N(0, 1 / sqrt(5 * in_channels)), bias 0."""
    nn.init.normal_(conv.weight, mean=0.0, std=1.0 / math.sqrt(5.0 * conv.in_channels))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _decoder() -> nn.Sequential:
    blocks: list[nn.Module] = []
    channels = ENCODER_CHANNELS
    for index, (mid, out) in enumerate(DECODER_BLOCKS):
        last = index == len(DECODER_BLOCKS) - 1
        layers: list[nn.Module] = [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out, 3, padding=1),
        ]
        if not last:
            layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        blocks.append(nn.Sequential(*layers))
        channels = out
    return nn.Sequential(*blocks)


class DenseDepth201(DepthModel):
    """Frozen DenseNet-201 encoder and a five-block upsampling decoder to full resolution.

    Output (eval): ``depth`` (B, 1, H, W) in metres within ``[min_depth, max_depth]``.
    Training mode adds ``depth_raw``, the decoder's unclamped output.
    """

    def __init__(
        self,
        min_depth: float = 0.1,
        max_depth: float = 10.0,
        encoder_weights: str | Path | None = None,
        freeze_encoder: bool = True,
    ) -> None:
        """Build the network.

        Args:
            min_depth: Lower clamp of the output, metres (> 0 so depth stays positive).
            max_depth: Upper clamp (paper: NYU's 10 m).
            encoder_weights: Local path to an ImageNet state dict of torchvision's
                ``densenet201`` (``.pth`` loaded without pickle, or ``.safetensors``).
            freeze_encoder: Keep the encoder fixed (paper); False fine-tunes it.
        """
        super().__init__()
        if not (
            math.isfinite(min_depth) and math.isfinite(max_depth) and 0 < min_depth < max_depth
        ):
            raise ValueError(
                f"need 0 < min_depth < max_depth (finite), got {min_depth}, {max_depth}"
            )
        self.input_multiple = INPUT_MULTIPLE
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.freeze_encoder = bool(freeze_encoder)

        self.encoder = densenet201(weights=None).features
        self.decoder = _decoder()
        for module in self.decoder.modules():
            if isinstance(module, nn.Conv2d):
                paper_init_(module)

        if encoder_weights is not None:
            self.load_encoder_weights(encoder_weights)
        elif self.freeze_encoder:
            warnings.warn(
                "densedepth201: the encoder is frozen but has no ImageNet weights "
                "(encoder_weights=None), so only the decoder learns, on top of random "
                "features. Pass model.args.encoder_weights=<local torchvision densenet201 "
                "state dict> (paper), or set freeze_encoder: false to train it from scratch.",
                UserWarning,
                stacklevel=2,
            )
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> DenseDepth201:
        """Set the training mode; a frozen encoder stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def load_encoder_weights(self, path: str | Path) -> None:
        """Load ImageNet weights of torchvision's ``densenet201`` into the encoder.

        Accepts a full-model state dict (``features.*`` and ``classifier.*``) or one of
        ``features`` only, with current or old-style (``norm.1``) layer names.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file cannot be read without pickle, or its tensors do not fit.
        """
        state = read_state_dict(path)
        wanted = {}
        for key, value in state.items():
            if key.startswith("classifier."):
                continue
            match = _OLD_KEY.match(key)
            if match:
                key = match.group(1) + match.group(2)
            wanted[key.removeprefix("features.")] = value
        load_encoder_state(self.encoder, wanted, path, "a torchvision densenet201 state dict")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.validate_input(x)
        if self.freeze_encoder:
            # No graph through the fixed encoder: no activation memory, no backward pass.
            with torch.no_grad():
                features = self.encoder(x)
        else:
            features = self.encoder(x)
        raw = self.decoder(features)
        out = {"depth": raw.clamp(self.min_depth, self.max_depth)}
        if self.training:
            out["depth_raw"] = raw
        return out


@register_model(
    "densedepth201",
    description="frozen DenseNet-201 encoder (18.1M) with a 5-block nearest-upsampling "
    "decoder, L1 on metric depth, full-resolution output",
    paper=PAPER,
    tasks=("depth",),
    default_input_size=(640, 480),
    metric=True,
)
def densedepth201(
    min_depth: float = 0.1,
    max_depth: float = 10.0,
    encoder_weights: str | None = None,
    freeze_encoder: bool = True,
) -> DenseDepth201:
    """Paper c's model (NYU Depth v2, 640x480, depth 0-10 m)."""
    return DenseDepth201(min_depth, max_depth, encoder_weights, freeze_encoder)
