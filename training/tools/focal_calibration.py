"""Fit a checkpoint's ``focal_exponent`` on synthetic frames of many focal lengths.

A model with a ``canonical_focal_px`` predicts the depth a camera with that focal length would
see, and the predictor multiplies it by ``(fx / canonical_focal_px) ** focal_exponent`` for the
actual camera (``depth_perception.camera.focal_scale``). With the exponent at 1 that assumes
the network follows the focal length exactly. It cannot see the focal length, only the image,
and on frames of other lenses it regresses part of the way to the lenses it saw most: the
bundled weights read a 41 deg lens ~11 % long and a 95 deg lens ~8 % short on their own
synthetic world. Per image, with ``r = median(true / network output)`` over valid pixels and
``f = fx / canonical_focal_px`` (network-input pixels), this tool fits
``log r = c + exponent * log f`` by least squares over a split whose focal lengths vary (the
randomised world draws 40-100 deg per scene) and writes a copy of the checkpoint with that
exponent in its model arguments; the weights are the same bytes. ``c`` (a scale error that
does not depend on the lens) is reported, not applied. The fit and its command are kept in the
checkpoint's ``extra["focal_calibration"]``.

Run: ``python -m training.tools.focal_calibration --config training/configs/<recipe>.yaml
--checkpoint CKPT --output STEM`` (the recipe's ``data`` section names the split: its
``val_split`` at ``val_length`` frames, network input size ``width`` x ``height``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Pixels nearer than this are left out of the per-image ratios: the renderer's and the
# model's smallest depths (0.1-0.15 m) are where both are clipped.
_MIN_DEPTH_M = 0.2


@dataclasses.dataclass(frozen=True)
class FocalFit:
    """``log(true / output) = intercept + exponent * log(fx / canonical_focal_px)``.

    Attributes:
        exponent: The fitted ``focal_exponent``.
        exponent_se: Its standard error (ordinary least squares).
        intercept: ``c``, the lens-independent log scale error (not applied).
        images: Images in the fit.
        focal_ratio_range: Smallest and largest ``fx / canonical_focal_px`` seen.
        residual_sd: Standard deviation of the per-image log ratios after the fit.
        spread_before: The same with the exponent at 1 and no intercept (as the model ran).
    """

    exponent: float
    exponent_se: float
    intercept: float
    images: int
    focal_ratio_range: tuple[float, float]
    residual_sd: float
    spread_before: float

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["focal_ratio_range"] = list(self.focal_ratio_range)
        return data


def fit_focal_exponent(log_ratio: np.ndarray, log_focal: np.ndarray) -> FocalFit:
    """Least-squares fit of ``log_ratio = c + exponent * log_focal`` (one value per image).

    Args:
        log_ratio: ``log(median(true / network output))`` per image.
        log_focal: ``log(fx / canonical_focal_px)`` per image.

    Raises:
        ValueError: fewer than 3 images, or every image at one focal length.
    """
    y = np.asarray(log_ratio, dtype=np.float64)
    x = np.asarray(log_focal, dtype=np.float64)
    if y.shape != x.shape or y.size < 3:
        raise ValueError(f"need >= 3 images with one ratio and focal each, got {y.size}")
    if float(np.ptp(x)) < 1e-6:
        raise ValueError("every image has the same focal length: the exponent is not defined")
    design = np.stack([np.ones_like(x), x], axis=1)
    (intercept, exponent), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ np.array([intercept, exponent])
    dof = max(y.size - 2, 1)
    se = math.sqrt(float(residual @ residual) / dof / float(((x - x.mean()) ** 2).sum()))
    return FocalFit(
        exponent=float(exponent),
        exponent_se=se,
        intercept=float(intercept),
        images=int(y.size),
        focal_ratio_range=(float(np.exp(x.min())), float(np.exp(x.max()))),
        residual_sd=float(residual.std()),
        spread_before=float(np.sqrt(np.mean((y - x) ** 2))),
    )


def image_log_ratios(
    model: torch.nn.Module, loader: Any, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Per image of ``loader``'s batches: ``log(median(true / output))`` and
    ``log(fx / canonical_focal_px)``, the network's raw canonical-focal output."""
    from training.evaluation import predict_batch

    focal = getattr(model, "canonical_focal_px", None)
    if focal is None:
        raise ValueError("the model has no canonical_focal_px: there is no focal factor to fit")
    ratios: list[float] = []
    focals: list[float] = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            true = batch["depth"][:, 0].numpy()
            output, _ = predict_batch(model, batch["image"].to(device), true.shape[-2:])
            output = output[:, 0].float().cpu().numpy()
            valid = batch["valid"][:, 0].numpy().astype(bool) & (true > _MIN_DEPTH_M)
            for i in range(true.shape[0]):
                if valid[i].sum() < 16:
                    continue
                ratios.append(float(np.log(np.median(true[i][valid[i]] / output[i][valid[i]]))))
                focals.append(float(np.log(float(batch["K"][i, 0, 0]) / focal)))
    return np.array(ratios), np.array(focals)


def calibrate(
    checkpoint: str | Path, config_path: str | Path, *, length: int | None = None
) -> tuple[FocalFit, Any, torch.nn.Module]:
    """Fit the exponent of ``checkpoint`` on the ``val_split`` of ``config_path``'s data.

    Returns:
        ``(fit, metadata, model)``: the checkpoint's metadata and model (same weights) with
        ``focal_exponent`` set, ready for ``save_checkpoint``.
    """
    from depth_perception.checkpoint import load_model
    from training.config import load_config
    from training.data import make_collate, make_dataset

    cfg = load_config(config_path)
    model, meta = load_model(checkpoint)
    frames = length if length is not None else cfg.data.val_length
    dataset = make_dataset(cfg.data, cfg.data.val_split, length=frames)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, collate_fn=make_collate(meta.mean, meta.std)
    )
    fit = fit_focal_exponent(*image_log_ratios(model, loader))
    if not 0 < fit.exponent <= 2:
        raise ValueError(f"the fitted exponent {fit.exponent:.3f} is outside (0, 2]: not used")
    exponent = round(fit.exponent, 4)
    model.focal_exponent = exponent
    args = {**meta.model_args, "focal_exponent": exponent}
    split = {"config": str(config_path), "split": cfg.data.val_split, "frames": frames}
    extra = {**meta.extra, "focal_calibration": {**fit.to_dict(), **split}}
    return fit, dataclasses.replace(meta, model_args=args, extra=extra), model


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.focal_calibration",
        description="fit a checkpoint's focal_exponent on synthetic frames of many lenses",
    )
    parser.add_argument("--config", required=True, help="recipe whose data section has the split")
    parser.add_argument("--checkpoint", required=True, help="checkpoint to calibrate (stem)")
    parser.add_argument("--length", type=int, default=None, help="frames (default val_length)")
    parser.add_argument("--output", help="write the calibrated checkpoint to this stem")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from depth_perception.checkpoint import save_checkpoint

    fit, meta, model = calibrate(args.checkpoint, args.config, length=args.length)
    low, high = fit.focal_ratio_range
    print(
        f"focal_exponent {fit.exponent:.4f} +- {fit.exponent_se:.4f} over {fit.images} images "
        f"(fx / canonical {low:.2f}..{high:.2f}); lens-independent log scale {fit.intercept:+.4f} "
        f"(not applied); per-image log-ratio spread {fit.spread_before:.4f} at exponent 1, "
        f"{fit.residual_sd:.4f} after the fit"
    )
    if args.output:
        given = list(argv) if argv is not None else sys.argv[1:]
        command = shlex.join(["python", "-m", "training.tools.focal_calibration", *given])
        meta.extra["focal_calibration"]["command"] = command
        path = save_checkpoint(args.output, model, meta)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
