"""``depth-perception export``: checkpoint -> ONNX (parity-checked) [-> TensorRT engine].

The ONNX graph has dynamic batch and, where the model allows (no ``fixed_input_size``),
dynamic H and W; it carries the checkpoint metadata (``depth_perception.export``). The parity
check runs ONNX Runtime against eager PyTorch at the export size and at a second size. With
``--tensorrt`` an engine is built next to the ONNX file when TensorRT (and CUDA) are available,
otherwise the command says so and exits with status 3 (the ONNX file is still written).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

EXIT_NO_TENSORRT = 3


def build_tensorrt_engine(
    onnx_path: Path,
    width: int,
    height: int,
    precision: str = "fp16",
    *,
    max_batch: int = 1,
    calibration_dir: str = "",
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    class_names: Sequence[str] = (),
) -> Path:
    """Build a TensorRT engine for ``onnx_path`` at ``width`` x ``height``.

    INT8 engines are calibrated on ``calibration_dir`` (or synthetic frames of the checkpoint's
    scene family), preprocessed with the checkpoint's normalisation.

    Returns:
        The engine file ``<onnx stem>.plan`` beside the ONNX file.

    Raises:
        depth_perception.backends.base.BackendUnavailableError: no TensorRT or no CUDA.
    """
    from depth_perception.backends.calibration import families_for_classes
    from depth_perception.backends.selection import BackendOptions
    from depth_perception.backends.tensorrt_backend import TensorRTBackend

    calibration = None
    if precision == "int8":
        # The node's own options object: the engine exported here and the one the node would
        # build calibrate on the same images, so they share the calibration cache.
        options = BackendOptions(
            precision=precision,
            max_batch=max_batch,
            calibration_dir=calibration_dir,
            mean=tuple(mean),
            std=tuple(std),
            calibration_families=families_for_classes(tuple(class_names)),
        )
        calibration = options.calibration_source((width, height))
    cache = onnx_path.parent / ".engine_cache"
    backend = TensorRTBackend(
        onnx_path,
        width,
        height,
        cache,
        precision=precision,
        max_batch=max_batch,
        calibration=calibration,
    )
    target = onnx_path.with_suffix(".plan")
    shutil.copyfile(backend.engine_path, target)
    return target


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception export``: export a checkpoint to ONNX, optionally TensorRT."""
    from training.tools.cli_args import add_export_arguments

    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="depth-perception export", description=main.__doc__)
        add_export_arguments(parser)
        args = parser.parse_args(args)

    from depth_perception.checkpoint import load_checkpoint
    from depth_perception.export import export_to_onnx_from_checkpoint

    output = Path(args.output)
    if output.suffix != ".onnx":
        raise SystemExit(f"--output must be a .onnx file, got {output}")
    meta, _ = load_checkpoint(args.checkpoint)
    width = args.width or meta.input_width
    height = args.height or meta.input_height
    path = export_to_onnx_from_checkpoint(
        args.checkpoint,
        output,
        width,
        height,
        dynamic_size=not args.static,
        opset=args.opset,
        check=not args.no_check,
    )
    checked = "skipped" if args.no_check else "passed"
    shape = f"{width}x{height}" + ("" if args.static else " (H and W dynamic where allowed)")
    print(f"wrote {path}: {meta.model}, example input {shape}, parity check {checked}")
    if not args.tensorrt:
        return 0
    from depth_perception.backends.base import BackendUnavailableError

    try:
        engine = build_tensorrt_engine(
            path,
            width,
            height,
            args.precision,
            max_batch=args.max_batch,
            calibration_dir=args.calibration_dir,
            mean=meta.mean,
            std=meta.std,
            class_names=meta.class_names,
        )
    except BackendUnavailableError as exc:
        print(
            f"no TensorRT engine built: {exc}. The ONNX file is ready; build the engine on the "
            f"target machine with `depth-perception export ... --tensorrt` there, or "
            f"`trtexec --onnx={path} --saveEngine={path.with_suffix('.plan')}"
            f"{' --fp16' if args.precision == 'fp16' else ''}` (the node also builds and caches "
            "one itself with backend:=tensorrt)."
        )
        return EXIT_NO_TENSORRT
    print(f"wrote {engine} (TensorRT {args.precision}, {width}x{height})")
    return 0
