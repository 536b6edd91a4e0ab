"""What an int8 ONNX model of a checkpoint costs in depth quality, and what it saves in time.

Issue 16 left one lever on the node's CPU per frame: the network, ~9 of the depth-only
frame's ~13 ms. An int8 model for ONNX Runtime (static quantize-dequantize, QDQ) measured ~15 %
less network time, but was not pursued before its depth cost had been measured on a real image.
This study measures both, side by side in one run:

* **fp32**: the checkpoint's own ONNX export (the file the node loads);
* **int8 (synthetic calib)**: ``onnxruntime.quantization.quantize_static`` of that file, QDQ,
  per-channel int8 weights, uint8 activations, ranges calibrated (MinMax) on the frames the
  TensorRT INT8 path uses when no ``int8_calibration_dir`` is given
  (``depth_perception.backends.calibration.CalibrationSource``);
* **int8 (photo calib)**: the same, calibrated on scikit-image's bundled photographs other than
  the scored Motorcycle scene (so the test image never sets a range);
* **int8 (synth, fp32 heads)**: synthetic calibration, the prediction heads (the last Conv before
  each output and what follows it: the log-depth affine, clip and exp) left in float.

Each model is scored with the protocols of ``depth-perception eval``: the zero-shot benchmark on
``middlebury_skimage`` (``training.tools.zero_shot``) and the synthetic held-out test split
(AbsRel, delta1, mIoU; ``training.evaluation.evaluate``). Its network time is the median of
interleaved rounds (fp32, int8, int8, ... in turn) through the node's ``OnnxRuntimeBackend``
(1 and 2 intra-op threads, spinning off as in the node), so the VM's drift hits every model
alike. Nothing is shipped by this tool: it prints the table (``--json`` keeps it).

Run: ``python -m training.tools.int8_study --out runs/int8_study [--test-length 256]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SKIMAGE_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "brick.png",
    "gravel.png",
    "grass.png",
    "color.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
)


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` interface the evaluators call.

    ``forward`` returns the export's outputs by name as CPU tensors; the attributes the
    evaluators read from a model (``canonical_focal_px``, ``focal_exponent``, ``max_depth``) are
    copied from the torch model the export was made from.
    """

    def __init__(self, onnx_path: Path, reference: nn.Module, threads: int = 2) -> None:
        super().__init__()
        from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend

        self.backend = OnnxRuntimeBackend(onnx_path, num_threads=threads, spinning=False)
        for name in ("canonical_focal_px", "focal_exponent", "max_depth"):
            if hasattr(reference, name):
                setattr(self, name, getattr(reference, name))

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        # The export has a fixed batch of one (the node's); larger batches go image by image.
        outs = [self.backend.infer(array[i : i + 1]) for i in range(array.shape[0])]
        return {k: torch.from_numpy(np.concatenate([o[k] for o in outs])) for k in outs[0]}


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over preprocessed network inputs."""

    def __init__(self, input_name: str, batches: Iterator[np.ndarray]) -> None:
        self.input_name = input_name
        self._batches = batches

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}


def photo_calibration_dir(out: Path) -> Path:
    """A folder of scikit-image's bundled photographs, Motorcycle left out (it is scored)."""
    import shutil

    import skimage

    source = Path(skimage.__file__).parent / "data"
    folder = out / "photo_calibration"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE_PHOTOS:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
    return folder


def output_heads(onnx_path: Path) -> list[str]:
    """Names of the nodes from each graph output back to (and with) the Conv that feeds it.

    These are the prediction heads: the depth head's convolution and its log-depth affine,
    clip and exp; the segmentation head's convolution. Quantizing the log-depth output to 256
    levels is what the exp turns into a relative depth error everywhere.
    """
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    heads: list[str] = []
    for output in graph.output:
        pending = [output.name]
        while pending:
            node = producer.get(pending.pop())
            if node is None or node.name in heads:
                continue
            heads.append(node.name)
            if node.op_type != "Conv":
                pending.extend(name for name in node.input if name in producer)
    return heads


def quantize(fp32: Path, out: Path, source: Any, fp32_heads: bool = False) -> Path:
    """Static QDQ int8 model of ``fp32`` calibrated on ``source``'s batches (batch of 1).

    ``fp32_heads`` keeps :func:`output_heads` in float (their inputs still arrive int8).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    input_name = onnx.load(str(fp32)).graph.input[0].name
    quantize_static(
        str(prepared),
        str(out),
        _Reader(input_name, source.batches(1)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=output_heads(prepared) if fp32_heads else [],
    )
    prepared.unlink(missing_ok=True)
    return out


def time_networks(
    paths: dict[str, Path], shape: tuple[int, ...], threads: int, seconds: float
) -> dict[str, float]:
    """Median ms per inference of each model, called in turn (``bench``'s interleaved timer)."""
    from depth_perception.apps.bench import time_interleaved
    from depth_perception.backends.onnxruntime_backend import OnnxRuntimeBackend

    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    calls = {}
    for name, path in paths.items():
        backend = OnnxRuntimeBackend(path, num_threads=threads, spinning=False)
        calls[name] = lambda backend=backend: backend.infer(batch)
    return time_interleaved(calls, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.int8_study", description=__doc__
    )
    parser.add_argument("--checkpoint", default=None, help="default: the bundled default weights")
    parser.add_argument("--out", type=Path, default=Path("runs/int8_study"))
    parser.add_argument("--calib-frames", type=int, default=64, help="synthetic frames")
    parser.add_argument("--test-length", type=int, default=256, help="synthetic test frames")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per model and threads")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from torch.utils.data import DataLoader

    from depth_perception.backends.calibration import CalibrationSource, families_for_classes
    from depth_perception.checkpoint import load_model
    from depth_perception.checkpoint_meta import read_checkpoint_meta
    from depth_perception.onnx_files import find_onnx
    from training.config import DataConfig
    from training.data import get_dataset_spec, make_collate, make_dataset
    from training.evaluation import evaluate
    from training.tools.evaluate import default_checkpoint
    from training.tools.zero_shot import baselines, format_table, model_entry, run_benchmark

    torch.set_num_threads(2)
    checkpoint = args.checkpoint or default_checkpoint()
    model, meta = load_model(checkpoint, device="cpu")
    model.eval()
    info = read_checkpoint_meta(checkpoint)
    width, height = meta.input_width, meta.input_height
    fp32 = find_onnx(info, width, height)
    if fp32 is None:
        raise SystemExit(f"int8_study: no ONNX export of {checkpoint} at {width}x{height}")
    args.out.mkdir(parents=True, exist_ok=True)
    mean, std = tuple(meta.mean), tuple(meta.std)
    synthetic = CalibrationSource(
        width,
        height,
        mean,
        std,
        families=families_for_classes(meta.class_names),
        num_images=args.calib_frames,
    )
    photos = CalibrationSource(
        width,
        height,
        mean,
        std,
        folder=str(photo_calibration_dir(args.out)),
        num_images=len(SKIMAGE_PHOTOS),
    )
    paths = {"fp32": fp32}
    variants = (
        ("int8 synthetic calib", synthetic, False),
        ("int8 photo calib", photos, False),
        ("int8 synth, fp32 heads", synthetic, True),
    )
    for name, source, fp32_heads in variants:
        start = time.perf_counter()
        target = args.out / f"{name.replace(' ', '_').replace(',', '')}.onnx"
        paths[name] = quantize(fp32, target, source, fp32_heads=fp32_heads)
        print(
            f"[int8_study] {name}: {source.describe()}, {time.perf_counter() - start:.0f} s, "
            f"{os.path.getsize(target) / 1e6:.2f} MB (fp32 {os.path.getsize(fp32) / 1e6:.2f} MB)",
            flush=True,
        )

    modules = {name: OnnxModule(path, model) for name, path in paths.items()}
    torch_label = f"torch {meta.model}"
    entries = [model_entry(model, meta, torch_label)]
    for name, module in modules.items():
        entries.append(model_entry(module, meta, name))  # type: ignore[arg-type]
    entries += baselines()
    dataset = get_dataset_spec("middlebury_skimage").load_class()()
    zero_shot = run_benchmark(dataset, entries)
    print("zero-shot on middlebury_skimage (Motorcycle):")
    print(format_table(zero_shot))

    data_cfg = DataConfig(
        dataset="synthetic",
        family=families_for_classes(meta.class_names)[0],
        width=width,
        height=height,
        val_split="test",
        val_length=args.test_length,
        augment=False,
    )
    loader = DataLoader(
        make_dataset(data_cfg, "test", length=args.test_length),
        batch_size=8,
        shuffle=False,
        num_workers=0,
        collate_fn=make_collate(meta.mean, meta.std),
    )
    synthetic_rows: dict[str, dict[str, float]] = {}
    candidates: list[tuple[str, nn.Module]] = [(torch_label, model), *modules.items()]
    for name, module in candidates:
        result = evaluate(
            module,
            loader,
            num_classes=len(meta.class_names),
            metric=meta.metric,
            max_depth=meta.max_depth,
            show_progress=False,
        )
        synthetic_rows[name] = {
            "abs_rel": float(result.depth["abs_rel"]),
            "a1": float(result.depth["a1"]),
            "miou": float(result.miou) if result.miou is not None else float("nan"),
        }
    print(f"synthetic test ({args.test_length} frames):")
    print(f"{'model':<24} {'AbsRel':>7} {'d1':>6} {'mIoU':>6}")
    for name, row in synthetic_rows.items():
        print(f"{name:<24} {row['abs_rel']:7.3f} {row['a1']:6.3f} {row['miou']:6.3f}")

    shape = (1, 3, height, width)
    load = os.getloadavg()[0]
    timing = {threads: time_networks(paths, shape, threads, args.seconds) for threads in (1, 2)}
    load_after = os.getloadavg()[0]
    print(
        f"network ms per inference (median of interleaved calls, {args.seconds:g} s per model, "
        f"spinning off; load {load:.2f} -> {load_after:.2f}):"
    )
    for name in paths:
        cells = "  ".join(
            f"{t} thread(s) {timing[t][name]:5.2f} ({timing[t][name] / timing[t]['fp32']:.2f}x)"
            for t in timing
        )
        print(f"{name:<24} {cells}")

    if args.json:
        payload = {
            "checkpoint": str(checkpoint),
            "zero_shot": zero_shot["rows"],
            "synthetic_test": synthetic_rows,
            "network_ms": {str(t): v for t, v in timing.items()},
            "load": [load, load_after],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
