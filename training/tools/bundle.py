"""``depth-perception bundle``: make a trained checkpoint the package's default weights.

Copies a checkpoint (normally a run's ``final``) to ``depth_perception/weights/<model>``
(``.safetensors`` + ``.json``, where ``depth_perception.runtime.bundled_weights`` finds it)
with its provenance marked ``trained`` and ``bundled``, its validation (or given) metrics, the
exact training and bundle commands, and writes a short model card ``<model>.md`` beside it, and
the network's ONNX export (checked against torch), so the bundled default runs on ONNX Runtime
without torch (``depth_perception.onnx_files``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def default_bundle_stem(model: str) -> Path:
    """``depth_perception/weights/<model>`` inside the package (source tree or install)."""
    import depth_perception

    return Path(depth_perception.__file__).resolve().parent / "weights" / model


def _model_card(meta: Any, metrics: Mapping[str, float], note: str) -> str:
    prov = meta.provenance
    datasets = [dataclasses.asdict(d) for d in prov.datasets]
    lines = [
        f"# Bundled weights: `{meta.model}`",
        "",
        f"- model arguments: `{json.dumps(meta.model_args, sort_keys=True)}`",
        f"- input: {meta.input_width}x{meta.input_height}, mean {meta.mean}, std {meta.std}",
        f"- depth range: {meta.min_depth:g}..{meta.max_depth:g} m "
        f"({'metric' if meta.metric else 'relative'})",
        f"- classes ({len(meta.class_names)}): {', '.join(meta.class_names) or 'none'}",
        f"- trained on: {json.dumps(datasets, sort_keys=True)}",
        f"- steps: {prov.steps}, epochs: {prov.epoch}, "
        f"training time: {prov.train_seconds} s ({prov.stop_reason})",
        f"- command: `{prov.command}`",
        f"- source commit: {prov.git_commit or 'unknown'}",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, (int, float))]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def bundle_checkpoint(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    metrics: Mapping[str, float] | None = None,
    note: str = "",
    bundle_command: str = "",
) -> Path:
    """Copy ``checkpoint`` to ``output`` marked as trained default weights.

    Args:
        checkpoint: A trained checkpoint (stem or file).
        output: Output stem; default ``depth_perception/weights/<model>``.
        metrics: Metrics to record; default the checkpoint's ``provenance.metrics``.
        note: Free text for the model card.
        bundle_command: This command line, recorded beside the training command.

    Returns:
        The written ``.safetensors`` path.

    Raises:
        ValueError: the checkpoint carries no metrics and none are given.
    """
    from depth_perception.checkpoint import checkpoint_paths, load_model, save_checkpoint

    model, meta = load_model(checkpoint)
    chosen = dict(metrics if metrics is not None else meta.provenance.metrics)
    if not chosen:
        raise ValueError(
            f"{checkpoint} records no metrics (use the run's `final` checkpoint, or pass "
            "--metrics-json from `depth-perception eval --json`)"
        )
    if "encoder_weights" in meta.model_args:
        # A path on the training machine; the bundled weights already include the encoder.
        meta.model_args["encoder_weights"] = None
    meta.provenance = dataclasses.replace(
        meta.provenance,
        trained=True,
        bundled=True,
        metrics=chosen,
        parent=str(checkpoint),
        created_by="depth-perception bundle",
        bundle_command=bundle_command,
    )
    stem = Path(output) if output is not None else default_bundle_stem(meta.model)
    weights = save_checkpoint(stem, model, meta)
    card = checkpoint_paths(stem)[0].with_suffix(".md")
    card.write_text(_model_card(meta, chosen, note), encoding="utf-8")
    bundle_onnx(weights, model)
    return weights


def bundle_onnx(checkpoint: str | Path, model: Any = None) -> Path:
    """Write the ONNX export of a checkpoint beside its weights, at the checkpoint's input size.

    Checked for parity with torch (``depth_perception.export.check_onnx_parity``); exports of
    earlier weights of the same model beside it are removed.

    Args:
        checkpoint: The checkpoint (stem or file), e.g. the bundled ``weights/lightweight``.
        model: Its network, if already loaded (else rebuilt from the checkpoint).

    Returns:
        The path of the ``.onnx`` file.
    """
    from depth_perception.checkpoint import load_model
    from depth_perception.checkpoint_meta import read_checkpoint_meta
    from depth_perception.onnx_files import write_beside_weights

    info = read_checkpoint_meta(checkpoint)
    if model is None:
        model = load_model(checkpoint)[0]
    path, diffs = write_beside_weights(model, info, info.meta.input_width, info.meta.input_height)
    worst = ", ".join(f"{name} {value:.2g}" for name, value in diffs.items())
    print(f"wrote {path} (ONNX Runtime vs torch, largest difference: {worst})")
    return path


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception bundle``: copy a trained checkpoint into the package."""
    from training.tools.cli_args import add_bundle_arguments

    argv = None
    if not isinstance(args, argparse.Namespace):
        argv = list(sys.argv[1:] if args is None else args)
        parser = argparse.ArgumentParser(prog="depth-perception bundle", description=main.__doc__)
        add_bundle_arguments(parser)
        args = parser.parse_args(argv)
    if argv is None:
        argv = list(getattr(args, "argv", None) or sys.argv[1:])[1:]
    if args.onnx_only:
        bundle_onnx(args.checkpoint)
        return 0
    metrics = None
    if args.metrics_json:
        data = json.loads(Path(args.metrics_json).read_text(encoding="utf-8"))
        metrics = data.get("metrics", data)
    path = bundle_checkpoint(
        args.checkpoint,
        args.output,
        metrics=metrics,
        note=args.note,
        bundle_command="depth-perception bundle " + " ".join(shlex.quote(a) for a in argv),
    )
    print(f"wrote {path} (+ .json, .md)")
    return 0
