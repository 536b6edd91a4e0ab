"""ONNX export of registered models, with a parity check against eager PyTorch.

Uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): the
``torch.export``-based one needs the ``onnxscript`` package, which the package does not depend
on, and the traced graphs of these convolutional models export cleanly with the legacy path.

The ONNX graph has one input ``image`` (float32, ``(B, 3, H, W)``, normalised) and the outputs
``depth`` (and ``seg_logits`` for multi-task models). Batch is always dynamic; H and W are
dynamic unless the model has a ``fixed_input_size``. When exported from a checkpoint the
checkpoint metadata is stored in the ONNX ``metadata_props`` under ``depth_perception``, so an
ONNX file also describes itself (see :func:`read_onnx_metadata`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from depth_perception.checkpoint import CheckpointMeta, load_model, unwrap_model
from depth_perception.models.registry import DEPTH_KEY, SEG_KEY, check_image_tensor

INPUT_NAME = "image"
METADATA_KEY = "depth_perception"


class _TupleOutput(nn.Module):
    """Returns the model's eval outputs as a tuple in a fixed key order for the exporter."""

    def __init__(self, model: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.keys = tuple(keys)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[k] for k in self.keys)


def _example_input(
    model: nn.Module, width: int, height: int, batch_size: int = 1, seed: int = 0
) -> torch.Tensor:
    device = next(iter(model.parameters()), torch.empty(0)).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, height, width, generator=generator).to(device)
    check_image_tensor(
        x,
        input_multiple=int(getattr(model, "input_multiple", 1)),
        fixed_input_size=getattr(model, "fixed_input_size", None),
        model_name=type(model).__name__,
    )
    return x


def _output_keys(model: nn.Module, x: torch.Tensor) -> list[str]:
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, dict) or DEPTH_KEY not in out:
        raise ValueError(f"{type(model).__name__} must return a dict with a 'depth' key")
    unexpected = sorted(set(out) - {DEPTH_KEY, SEG_KEY})
    if unexpected:
        raise ValueError(f"eval-mode outputs must be 'depth' and 'seg_logits', got {unexpected}")
    return [k for k in (DEPTH_KEY, SEG_KEY) if k in out]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_width: int,
    input_height: int,
    dynamic_size: bool = True,
    opset: int = 17,
    *,
    metadata: CheckpointMeta | None = None,
) -> Path:
    """Export ``model`` (in eval mode) to ONNX.

    Args:
        model: A registered model (DDP/compile wrappers are removed).
        path: Output ``.onnx`` file; parent directories are created.
        input_width: Width of the example input (multiple of ``model.input_multiple``).
        input_height: Height of the example input.
        dynamic_size: Make H and W dynamic axes (ignored for fixed-size models).
        opset: ONNX opset version.
        metadata: Stored as JSON in the ONNX ``metadata_props`` when given.

    Returns:
        The path written.

    Raises:
        ValueError: the size does not fit the model, or it breaks the output contract.
    """
    model = unwrap_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        x = _example_input(model, input_width, input_height)
        keys = _output_keys(model, x)
        dynamic = dynamic_size and getattr(model, "fixed_input_size", None) is None
        in_axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
        out_axes = {0: "batch", 2: "out_height", 3: "out_width"} if dynamic else {0: "batch"}
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter announces its deprecation on every call; it is chosen on
            # purpose (see module docstring).
            warnings.filterwarnings(
                "ignore", message=".*legacy TorchScript-based ONNX", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            torch.onnx.export(
                _TupleOutput(model, keys),
                (x,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=keys,
                dynamic_axes={INPUT_NAME: in_axes, **{k: out_axes for k in keys}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    if metadata is not None:
        _write_metadata(path, metadata)
    return path


def _write_metadata(path: Path, metadata: CheckpointMeta) -> None:
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata.to_dict(), sort_keys=True)
    onnx.save(proto, str(path))


def read_onnx_metadata(path: str | Path) -> CheckpointMeta | None:
    """The checkpoint metadata stored in an exported ONNX file, or None if it has none."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    value = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return None if value is None else CheckpointMeta.from_dict(json.loads(value))


def check_onnx_parity(
    model: nn.Module,
    onnx_path: str | Path,
    input_width: int,
    input_height: int,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    *,
    batch_size: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Compare ONNX Runtime (CPU) with eager PyTorch on one random normalised input.

    Args:
        model: The model that was exported (run in eval mode on CPU copies of the input).
        onnx_path: The exported file.
        input_width: Width of the test input; may differ from the export size if dynamic.
        input_height: Height of the test input.
        atol: Absolute tolerance of ``torch.testing.assert_close``.
        rtol: Relative tolerance.
        batch_size: Batch of the test input.
        seed: Seed of the random input.

    Returns:
        Maximum absolute difference per output name.

    Raises:
        AssertionError: an output differs beyond the tolerances (from ``assert_close``).
    """
    import onnxruntime as ort

    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    try:
        x = _example_input(model, input_width, input_height, batch_size, seed)
        with torch.no_grad():
            expected = {k: v.detach().float().cpu() for k, v in model(x).items()}
    finally:
        model.train(was_training)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, {INPUT_NAME: x.cpu().numpy()})
    if set(names) != set(expected):
        raise AssertionError(f"ONNX outputs {names} != PyTorch outputs {sorted(expected)}")
    diffs = {}
    for name, value in zip(names, results, strict=True):
        actual = torch.from_numpy(value)
        torch.testing.assert_close(
            actual, expected[name], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}"
        )
        diffs[name] = float((actual - expected[name]).abs().max())
    return diffs


def export_to_onnx_from_checkpoint(
    ckpt: str | Path,
    out: str | Path,
    input_width: int | None = None,
    input_height: int | None = None,
    dynamic_size: bool = True,
    opset: int = 17,
    check: bool = True,
) -> Path:
    """Export a checkpoint (see ``depth_perception.checkpoint``) to ONNX with its metadata.

    Args:
        ckpt: Checkpoint stem or either of its files.
        out: ``.onnx`` file, or a directory (file named after the checkpoint).
        input_width: Export width; defaults to the checkpoint's training width.
        input_height: Export height; defaults to the checkpoint's training height.
        dynamic_size: Make H and W dynamic.
        opset: ONNX opset version.
        check: Verify parity with PyTorch at the export size and, if dynamic, at another size.

    Returns:
        The ONNX path.
    """
    model, meta = load_model(ckpt)
    width = input_width if input_width is not None else meta.input_width
    height = input_height if input_height is not None else meta.input_height
    out = Path(out)
    if out.is_dir() or out.suffix != ".onnx":
        out = out / (Path(ckpt).name.removesuffix(".safetensors").removesuffix(".json") + ".onnx")
    export_onnx(model, out, width, height, dynamic_size, opset, metadata=meta)
    if check:
        check_onnx_parity(model, out, width, height)
        if dynamic_size and getattr(model, "fixed_input_size", None) is None:
            step = int(getattr(model, "input_multiple", 1))
            check_onnx_parity(model, out, width + step, height + step, batch_size=2)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m depth_perception.export CKPT OUT [--width W --height H] [--static]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="checkpoint stem, .safetensors or .json")
    parser.add_argument("out", help="output .onnx file or directory")
    parser.add_argument("--width", type=int, default=None, help="export width (default: ckpt)")
    parser.add_argument("--height", type=int, default=None, help="export height (default: ckpt)")
    parser.add_argument("--static", action="store_true", help="fixed H and W in the graph")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    args = parser.parse_args(argv)
    path = export_to_onnx_from_checkpoint(
        args.checkpoint,
        args.out,
        args.width,
        args.height,
        dynamic_size=not args.static,
        opset=args.opset,
        check=not args.no_check,
    )
    print(path)


if __name__ == "__main__":
    main()
