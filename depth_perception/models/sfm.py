"""Self-supervised depth from video: SfMLearner and paper a's depth-gradient variant.

``sfm`` follows Zhou et al.'s SfMLearner (CVPR 2017) as in its PyTorch reference
(ClementPinard/SfmLearner-Pytorch):

* depth network DispNetS: an encoder of seven stages (stride-2 ``k x k`` conv + ``k x k`` conv,
  ReLU, no BatchNorm; kernels 7, 5, 3, 3, 3, 3, 3; 32, 64, 128, 256, 512, 512, 512 channels) and
  a decoder of seven transposed-conv stages (512, 512, 256, 128, 64, 32, 16 channels), each
  concatenating the encoder feature of its resolution. The last four stages predict a
  disparity ``10 * sigmoid(conv) + 0.01`` at 1/8, 1/4, 1/2 and full resolution; each
  prediction's sigmoid (in [0, 1]; the reference feeds the disparity itself, which at up to 10
  saturates the finer heads at initialisation and pins depth to its floor) is upsampled and fed
  to the next stage. ``depth = 1 / disparity`` lies in [0.0999, 100];
  it is relative (up to scale): the photometric loss fixes no unit.
* pose/explainability network PoseExpNet (``model.pose_net``, used only in training): the
  target and its N source frames stacked on the channels, seven stride-2 convs (16 ... 256
  channels), a 1x1 conv averaged over the image giving 6 numbers per source (translation,
  Euler angles; scaled by 0.01), and an upsampling branch giving one explainability mask per
  source at each of the four depth scales (sigmoid).

``sfm_gradient`` is paper a's (Takamine & Endo) unsupervised architecture on the same base: a
common encoder (DispNetS's) feeds a depth decoder and a depth-gradient decoder (same shape,
2 outputs per scale: the ``[-1, 0, 1]`` x and y gradients of the depth, linear), and a
multiple-input refinement decoder of the same size takes the encoder skips plus, at each of
its four prediction scales, the depth decoder's disparity and the gradient decoder's
gradients, and predicts the refined disparity. Trained in two stages (paper sec. IV-B): stage 1
the encoder, depth and gradient decoders with the SfM losses + Eq. 1 (build with
``refine=False``: the refinement decoder is skipped and frozen); stage 2 the refinement decoder
alone (encoder and both decoders frozen) with the SfM losses on the refined depth.

Forward contract: ``forward(image)`` in eval mode returns ``{"depth"}`` at the input resolution
(``sfm_gradient``: the refined depth, or the depth decoder's with ``refine=False``), so an ONNX
export holds the depth network only. Training mode adds the per-scale lists (coarse to fine)
``disp_scales`` / ``depth_scales`` (and for ``sfm_gradient`` ``initial_disp_scales``,
``initial_depth_scales``, ``grad_scales``). ``forward(image, neighbours)`` with the source
frames ``(B, N, 3, H, W)`` also runs the pose network and adds ``poses`` ``(B, N, 6)`` and
``exp_masks`` (per scale ``(B, N, h, w)``, when explainability is on); the objective calls it
so through a DistributedDataParallel wrapper, which then sees every trained parameter.

Input H and W must be multiples of 32 (the four prediction scales and the masks line up
exactly); the deeper stages round up and are cropped as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import nn

from depth_perception.models.registry import DepthModel, register_model

PAPER_SFM = (
    "T. Zhou, M. Brown, N. Snavely, D. G. Lowe: Unsupervised Learning of Depth and Ego-Motion "
    "from Video (SfMLearner)"
)
PAPER_GRADIENT = (
    "M. Takamine, S. Endo: Monocular Depth Estimation with a Multi-task and Multiple-input "
    "Architecture Using Depth Gradient (unsupervised variant on SfMLearner)"
)

INPUT_MULTIPLE = 32
# Disparity = ALPHA * sigmoid + BETA (SfMLearner): depth in [1 / (ALPHA + BETA), 1 / BETA].
DISP_ALPHA = 10.0
DISP_BETA = 0.01
# DispNetS: encoder (channels, kernel) per stage and decoder channels per stage (7 .. 1).
ENCODER_STAGES: tuple[tuple[int, int], ...] = (
    (32, 7),
    (64, 5),
    (128, 3),
    (256, 3),
    (512, 3),
    (512, 3),
    (512, 3),
)
DECODER_CHANNELS: tuple[int, ...] = (512, 512, 256, 128, 64, 32, 16)
NUM_SCALES = 4  # predictions of decoder stages 4..1 (1/8, 1/4, 1/2, 1 of the input)
# PoseExpNet: encoder channels (kernels 7, 5, then 3) and mask-branch up-convolution channels.
POSE_CHANNELS: tuple[int, ...] = (16, 32, 64, 128, 256, 256, 256)
POSE_KERNELS: tuple[int, ...] = (7, 5, 3, 3, 3, 3, 3)
MASK_UPCONV_CHANNELS: tuple[int, ...] = (256, 128, 64, 32, 16)
POSE_SCALE = 0.01  # SfMLearner scales the raw pose output so that the first steps move little


def _scaled(channels: int, width_mult: float) -> int:
    return max(4, round(channels * width_mult))


def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # Up-sampled maps are at least as large as the skip (stride-2 convs round up); cut to fit.
    return x[:, :, : ref.shape[2], : ref.shape[3]]


def _downsample_conv(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    pad = (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=pad),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, kernel, padding=pad),
        nn.ReLU(inplace=True),
    )


def _conv_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))


def _upconv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
        nn.ReLU(inplace=True),
    )


def _init_weights(module: nn.Module, heads: Sequence[nn.Module] = ()) -> None:
    """He (Kaiming) init for the ReLU layers, Xavier for the linear prediction heads.

    SfMLearner-Pytorch inits every layer Xavier-uniform. Without BatchNorm, Xavier halves the
    activations' scale at each ReLU layer: the pose network's last features are ~0.005 at
    init, so its Euler angles move ~1e-5 rad per Adam step and the ~0.09 rad between frames
    takes ~10^4 steps, which the reference's 150k iterations can afford and a CPU run cannot.
    He init keeps the scale through the depth (the reason it exists); biases start at zero.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for head in heads:
        for m in head.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)


def disparity_to_depth(disp: torch.Tensor) -> torch.Tensor:
    """``1 / disparity`` (the models' disparity is >= 0.01, so this is finite)."""
    return 1.0 / disp


class DispEncoder(nn.Module):
    """DispNetS encoder: seven stride-2 stages; returns every stage's output, finest first."""

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        self.channels = tuple(_scaled(c, width_mult) for c, _ in ENCODER_STAGES)
        layers = []
        in_ch = 3
        for out_ch, (_, kernel) in zip(self.channels, ENCODER_STAGES, strict=True):
            layers.append(_downsample_conv(in_ch, out_ch, kernel))
            in_ch = out_ch
        self.stages = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class DispDecoder(nn.Module):
    """DispNetS decoder with a configurable head, optionally taking extra per-scale inputs.

    Stage k (7 .. 1) up-convolves the previous stage, concatenates the encoder feature of its
    resolution (none at full resolution) and, at the four prediction stages 4 .. 1, the
    upsampled prediction of the previous stage (from stage 3 on; its sigmoid for disparity)
    and ``extra_channels`` extra maps of that scale, then runs a 3x3 conv; prediction stages
    end in a 3x3 conv head.

    Args:
        encoder_channels: Channels of the encoder's seven stages, finest first.
        out_channels: Channels of each prediction (1 disparity, 2 gradients).
        disparity: True: head output ``10 * sigmoid + 0.01`` (disparity); False: linear.
        extra_channels: Channels of the extra maps given at each prediction scale.
        width_mult: Channel multiplier of the decoder stages.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        out_channels: int = 1,
        disparity: bool = True,
        extra_channels: int = 0,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        enc = list(encoder_channels)
        dec = [_scaled(c, width_mult) for c in DECODER_CHANNELS]
        self.out_channels = out_channels
        self.disparity = disparity
        self.extra_channels = extra_channels
        self.upconvs = nn.ModuleList()
        self.iconvs = nn.ModuleList()
        self.heads = nn.ModuleList()
        previous = enc[-1]
        for index, channels in enumerate(dec):
            stage = 7 - index  # 7 .. 1
            skip = enc[stage - 2] if stage >= 2 else 0
            inputs = channels + skip
            if stage <= NUM_SCALES:
                inputs += extra_channels + (out_channels if stage < NUM_SCALES else 0)
                self.heads.append(nn.Conv2d(channels, out_channels, 3, padding=1))
            self.upconvs.append(_upconv(previous, channels))
            self.iconvs.append(_conv_relu(inputs, channels))
            previous = channels
        _init_weights(self, self.heads)

    def forward(
        self,
        features: Sequence[torch.Tensor],
        image: torch.Tensor,
        extras: Sequence[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Predictions at 1/8, 1/4, 1/2 and 1 of the input (coarse to fine).

        Args:
            features: The encoder's outputs, finest first.
            image: The network input (only its size is used).
            extras: ``extra_channels``-channel maps at the four prediction scales, coarse to
                fine (required when ``extra_channels > 0``).
        """
        if self.extra_channels and (extras is None or len(extras) != NUM_SCALES):
            raise ValueError(f"this decoder needs {NUM_SCALES} extra maps, one per scale")
        x = features[-1]
        predictions: list[torch.Tensor] = []
        cascade: torch.Tensor | None = None
        for index, (upconv, iconv) in enumerate(zip(self.upconvs, self.iconvs, strict=True)):
            stage = 7 - index
            ref = features[stage - 2] if stage >= 2 else image
            x = _crop_like(upconv(x), ref)
            parts = [x] if stage < 2 else [x, ref]
            if stage <= NUM_SCALES:
                if cascade is not None:
                    up = F.interpolate(
                        cascade, scale_factor=2.0, mode="bilinear", align_corners=False
                    )
                    parts.append(_crop_like(up, ref))
                if self.extra_channels:
                    parts.append(extras[NUM_SCALES - stage])  # type: ignore[index]
            x = iconv(torch.cat(parts, dim=1))
            if stage <= NUM_SCALES:
                head = self.heads[NUM_SCALES - stage](x)
                if self.disparity:
                    # The next stage gets the sigmoid in [0, 1], not the disparity in
                    # [0.01, 10]: fed at that size (the reference's choice) it outweighs the
                    # freshly initialised features and saturates the finer heads' sigmoids
                    # from the first step (depth pinned at its 0.1 floor, zero gradient).
                    cascade = torch.sigmoid(head)
                    head = DISP_ALPHA * cascade + DISP_BETA
                else:
                    cascade = head
                predictions.append(head)
        return predictions


class PoseExpNet(nn.Module):
    """SfMLearner's pose and explainability network (training only).

    Args:
        num_sources: Source frames N per target.
        explainability: Predict explainability masks.

    ``forward(target, sources)`` with ``target`` ``(B, 3, H, W)`` and ``sources``
    ``(B, N, 3, H, W)`` (normalised images) returns ``(poses, masks)``: ``poses`` ``(B, N, 6)``
    = translation and Euler angles (x, y, z) of the transform from the target camera to each
    source camera (see :func:`pose_vec_to_mat`); ``masks`` the explainability per scale
    ``(B, N, h, w)`` at 1/8, 1/4, 1/2 and 1 (coarse to fine), or None.
    """

    def __init__(self, num_sources: int = 2, explainability: bool = True) -> None:
        super().__init__()
        if isinstance(num_sources, bool) or not isinstance(num_sources, int) or num_sources < 1:
            raise ValueError(f"num_sources must be an int >= 1, got {num_sources!r}")
        self.num_sources = num_sources
        self.explainability = bool(explainability)
        convs = []
        in_ch = 3 * (1 + num_sources)
        for out_ch, kernel in zip(POSE_CHANNELS, POSE_KERNELS, strict=True):
            convs.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=(kernel - 1) // 2),
                    nn.ReLU(inplace=True),
                )
            )
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.pose_pred = nn.Conv2d(POSE_CHANNELS[-1], 6 * num_sources, 1)
        if self.explainability:
            ups = []
            in_ch = POSE_CHANNELS[4]
            for out_ch in MASK_UPCONV_CHANNELS:
                ups.append(
                    nn.Sequential(
                        nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1),
                        nn.ReLU(inplace=True),
                    )
                )
                in_ch = out_ch
            self.upconvs = nn.ModuleList(ups)
            # masks 4, 3, 2, 1 (1/8 .. full resolution) from up-conv outputs 2 .. 5
            self.mask_preds = nn.ModuleList(
                nn.Conv2d(c, num_sources, 3, padding=1) for c in MASK_UPCONV_CHANNELS[1:]
            )
        _init_weights(self, [self.pose_pred, *getattr(self, "mask_preds", ())])

    def forward(
        self, target: torch.Tensor, sources: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if sources.dim() != 5 or sources.shape[1] != self.num_sources:
            raise ValueError(
                f"the pose network takes {self.num_sources} source frames as (B, N, 3, H, W), "
                f"got {tuple(sources.shape)}; set model.args.num_sources to the number of "
                "neighbours (data.options.frame_offsets)"
            )
        if sources.shape[0] != target.shape[0] or sources.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"sources {tuple(sources.shape)} do not match the target {tuple(target.shape)}"
            )
        x = torch.cat([target, sources.flatten(1, 2)], dim=1)
        features = []
        out = x
        for conv in self.convs:
            out = conv(out)
            features.append(out)
        pose = self.pose_pred(features[-1]).mean(dim=(2, 3))
        pose = POSE_SCALE * pose.view(pose.shape[0], self.num_sources, 6)
        if not self.explainability:
            return pose, None
        # up-conv 5 .. 1, each cut to the encoder map one level finer (the input at the end)
        refs = [features[3], features[2], features[1], features[0], x]
        up = features[4]
        ups = []
        for upconv, ref in zip(self.upconvs, refs, strict=True):
            up = _crop_like(upconv(up), ref)
            ups.append(up)
        masks = [torch.sigmoid(pred(u)) for pred, u in zip(self.mask_preds, ups[1:], strict=True)]
        return pose, masks


def euler_to_mat(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``Rx @ Ry @ Rz`` from Euler angles ``(..., 3)`` = (x, y, z) radians.

    The convention of SfMLearner's ``euler2mat``.
    """
    x, y, z = angles.unbind(-1)
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rz = torch.stack([cz, -sz, zeros, sz, cz, zeros, zeros, zeros, ones], -1)
    ry = torch.stack([cy, zeros, sy, zeros, ones, zeros, -sy, zeros, cy], -1)
    rx = torch.stack([ones, zeros, zeros, zeros, cx, -sx, zeros, sx, cx], -1)
    shape = (*angles.shape[:-1], 3, 3)
    return rx.view(shape) @ ry.view(shape) @ rz.view(shape)


def pose_vec_to_mat(vec: torch.Tensor) -> torch.Tensor:
    """4x4 rigid transforms from ``(..., 6)`` pose vectors ``(tx, ty, tz, rx, ry, rz)``.

    The transform maps a point in the target camera's frame into the source camera's
    (``X_src = R X_tgt + t``), the convention of the data sets' ``poses``.
    """
    if vec.shape[-1] != 6:
        raise ValueError(f"pose vectors must have 6 values in the last dim, got {vec.shape}")
    rot = euler_to_mat(vec[..., 3:])
    top = torch.cat([rot, vec[..., :3, None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


class _SfmBase(DepthModel):
    """Shared attributes and the pose network of the two models."""

    def _setup(self, num_sources: int, explainability: bool, width_mult: float) -> None:
        if not (isinstance(width_mult, (int, float)) and 0 < width_mult <= 4):
            raise ValueError(f"width_mult must be in (0, 4], got {width_mult!r}")
        self.input_multiple = INPUT_MULTIPLE
        self.num_classes = 0
        self.class_names = ()
        self.min_depth = 1.0 / (DISP_ALPHA + DISP_BETA)
        self.max_depth = 1.0 / DISP_BETA
        self.width_mult = float(width_mult)
        self.pose_net = PoseExpNet(num_sources, explainability)

    @property
    def num_sources(self) -> int:
        return self.pose_net.num_sources

    def _add_pose(
        self, out: dict[str, torch.Tensor | list[torch.Tensor]], x: torch.Tensor, nbs: torch.Tensor
    ) -> None:
        poses, masks = self.pose_net(x, nbs)
        out["poses"] = poses
        if masks is not None:
            out["exp_masks"] = masks


class SfmLearnerNet(_SfmBase):
    """DispNetS depth network + PoseExpNet (``pose_net``, training only); see module docstring.

    Args:
        num_sources: Source frames per target for the pose network (2: previous and next).
        explainability: Predict explainability masks.
        width_mult: Channel multiplier of the depth network (1.0 = the paper's; smaller for
            CPU-sized experiments).
    """

    def __init__(
        self, num_sources: int = 2, explainability: bool = True, width_mult: float = 1.0
    ) -> None:
        super().__init__()
        self._setup(num_sources, explainability, width_mult)
        self.encoder = DispEncoder(width_mult)
        self.decoder = DispDecoder(self.encoder.channels, 1, True, 0, width_mult)
        _init_weights(self.encoder)

    def forward(
        self, x: torch.Tensor, neighbours: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        self.validate_input(x)
        disps = self.decoder(self.encoder(x), x)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "depth": disparity_to_depth(disps[-1])
        }
        if self.training:
            out["disp_scales"] = disps
            out["depth_scales"] = [disparity_to_depth(d) for d in disps]
        if neighbours is not None:
            self._add_pose(out, x, neighbours)
        return out


def refinement_inputs(disp: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The refinement decoder's extra input at one scale: ``(s, tanh(G_x / D), tanh(G_y / D))``.

    ``s = (disp - 0.01) / 10`` is the depth decoder's sigmoid, in [0, 1] like the decoder's
    own cascaded predictions (a disparity of up to 10 would outweigh the features). The
    gradient decoder predicts gradients of the (relative, unit-free) depth ``D``; divided by
    ``D`` they become scale-free (about ``grad log D``), and ``tanh`` bounds the jumps at
    occlusion boundaries so that the conv layers see inputs of a fixed range.
    """
    unit = (disp - DISP_BETA) / DISP_ALPHA
    return torch.cat([unit, torch.tanh(grad * disp)], dim=1)


class SfmGradientNet(_SfmBase):
    """Paper a's unsupervised model: common encoder, depth, gradient and refinement decoders.

    Args:
        num_sources: Source frames per target for the pose network.
        explainability: Predict explainability masks.
        width_mult: Channel multiplier of the depth network.
        refine: Run the refinement decoder (stage 2 and inference). False (stage 1): it is
            skipped, its parameters are frozen, and the depth decoder's depth is the output.
    """

    def __init__(
        self,
        num_sources: int = 2,
        explainability: bool = True,
        width_mult: float = 1.0,
        refine: bool = True,
    ) -> None:
        super().__init__()
        self._setup(num_sources, explainability, width_mult)
        self.refine = bool(refine)
        self.encoder = DispEncoder(width_mult)
        enc = self.encoder.channels
        self.depth_decoder = DispDecoder(enc, 1, True, 0, width_mult)
        self.grad_decoder = DispDecoder(enc, 2, False, 0, width_mult)
        self.refine_decoder = DispDecoder(enc, 1, True, 3, width_mult)
        _init_weights(self.encoder)
        if not self.refine:
            # Stage 1: the refinement decoder gets no gradient; leaving it out of the
            # optimiser also keeps DistributedDataParallel from waiting for its gradients.
            self.refine_decoder.requires_grad_(False)

    def forward(
        self, x: torch.Tensor, neighbours: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        self.validate_input(x)
        features = self.encoder(x)
        initial = self.depth_decoder(features, x)
        need_grads = self.training or self.refine
        grads = self.grad_decoder(features, x) if need_grads else []
        if self.refine:
            extras = [refinement_inputs(d, g) for d, g in zip(initial, grads, strict=True)]
            disps = self.refine_decoder(features, x, extras)
        else:
            disps = initial
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "depth": disparity_to_depth(disps[-1])
        }
        if self.training:
            out["disp_scales"] = disps
            out["depth_scales"] = [disparity_to_depth(d) for d in disps]
            out["initial_disp_scales"] = initial
            out["initial_depth_scales"] = [disparity_to_depth(d) for d in initial]
            out["grad_scales"] = grads
        if neighbours is not None:
            self._add_pose(out, x, neighbours)
        return out


_COMMON = {
    "tasks": ("depth",),
    "default_input_size": (416, 128),
    "metric": False,
    # SfMLearner normalises images to [-1, 1].
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
}


@register_model(
    "sfm",
    description="SfMLearner: DispNetS relative depth (~33M params, full resolution) trained "
    "self-supervised from video with a pose/explainability net (training only)",
    paper=PAPER_SFM,
    **_COMMON,
)
def sfm(
    num_sources: int = 2, explainability: bool = True, width_mult: float = 1.0
) -> SfmLearnerNet:
    """SfMLearner's DispNetS + PoseExpNet; depth is relative (median-scaled in evaluation)."""
    return SfmLearnerNet(num_sources, explainability, width_mult)


@register_model(
    "sfm_gradient",
    description="paper a's unsupervised model: shared DispNetS encoder, depth + depth-gradient "
    "decoders and a multiple-input refinement decoder; relative depth",
    paper=PAPER_GRADIENT,
    **_COMMON,
)
def sfm_gradient(
    num_sources: int = 2,
    explainability: bool = True,
    width_mult: float = 1.0,
    refine: bool = True,
) -> SfmGradientNet:
    """Paper a's two-stage model; ``refine=False`` for stage 1 (see :class:`SfmGradientNet`)."""
    return SfmGradientNet(num_sources, explainability, width_mult, refine)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def depth_network_parameters(model: nn.Module) -> int:
    """Parameters of the inference network (everything but ``pose_net``)."""
    pose = getattr(model, "pose_net", None)
    return _count(model) - (_count(pose) if pose is not None else 0)


__all__ = [
    "DispDecoder",
    "DispEncoder",
    "PoseExpNet",
    "SfmGradientNet",
    "SfmLearnerNet",
    "depth_network_parameters",
    "disparity_to_depth",
    "euler_to_mat",
    "pose_vec_to_mat",
    "refinement_inputs",
]
