"""Where a checkpoint's ONNX export lives, so that ONNX Runtime starts without torch.

An export is named by a key over everything that decides its graph and weights: the content
hash of the ``.safetensors`` file, the model name and arguments from the checkpoint's metadata,
the network input size and this package's export format (:data:`EXPORT_FORMAT`). The file
``<model>-<W>x<H>-<key>.onnx`` is looked for in two places:

* beside the weights: the bundled default ships its export there (``depth-perception
  bundle`` writes it with :func:`write_beside_weights`, after a parity check against torch);
* in the cache (``$DEPTH_PERCEPTION_CACHE``, else ``~/.cache/depth_perception``, in ``onnx/``):
  any other checkpoint is exported there once (:func:`export_to_cache`, needs torch) and later
  starts load it without torch.

Exports have dynamic H and W (where the model allows): the size in the name is the one the
file was traced and parity-checked at; ONNX Runtime runs it at every camera's input size
(``DepthPredictor.input_size_for``). A stale file (other weights, other size) has another
key, so it is never picked up. Finding a file needs the standard library only; exporting
imports torch (``depth_perception.export``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from depth_perception.checkpoint_meta import CheckpointInfo, read_checkpoint_meta

if TYPE_CHECKING:
    from torch import nn

# Bump when the exporter's graph for the same weights changes (opset, output layout, axes):
# exports made by an older version then get another key and are made again.
# 2: dynamic H and W (format 1 fixed them), so one file serves every camera's aspect ratio.
EXPORT_FORMAT = 2
ONNX_SUFFIX = ".onnx"
# Beside a multi-task export, the same graph cut down to image -> depth (``depth_only_path``).
DEPTH_ONLY_SUFFIX = ".depth.onnx"


def cache_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are kept between runs."""
    explicit = os.environ.get("DEPTH_PERCEPTION_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "depth_perception"


def onnx_key(info: CheckpointInfo, width: int, height: int) -> str:
    """The 24-hex-digit key of the export of ``info``'s weights at ``width`` x ``height``."""
    key = {
        "export_format": EXPORT_FORMAT,
        "model": info.meta.model,
        "model_args": info.meta.model_args,
        "size": [int(width), int(height)],
        "weights_sha256": info.weights_sha256,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def onnx_file_name(info: CheckpointInfo, width: int, height: int) -> str:
    """``<model>-<W>x<H>-<key>.onnx``."""
    return f"{info.meta.model}-{width}x{height}-{onnx_key(info, width, height)}{ONNX_SUFFIX}"


def beside_weights_path(info: CheckpointInfo, width: int, height: int) -> Path:
    """The export's path next to the checkpoint's ``.safetensors`` file."""
    return info.weights_path.parent / onnx_file_name(info, width, height)


def cached_path(info: CheckpointInfo, width: int, height: int) -> Path:
    """The export's path in the cache directory."""
    return cache_dir() / "onnx" / onnx_file_name(info, width, height)


def find_onnx(info: CheckpointInfo, width: int, height: int) -> Path | None:
    """The existing export for these weights and size (beside them, else cached), or None."""
    for path in (beside_weights_path(info, width, height), cached_path(info, width, height)):
        if path.is_file():
            return path
    return None


def depth_only_path(export: str | Path) -> Path:
    """The depth-only sibling of an export: ``<name>.depth.onnx`` beside ``<name>.onnx``.

    It holds the export's graph cut down to what the ``depth`` output needs (no segmentation
    head); ONNX Runtime runs it for frames whose class ids nobody takes
    (``OnnxRuntimeBackend.infer_depth``).
    """
    export = Path(export)
    return export.with_name(export.name.removesuffix(ONNX_SUFFIX) + DEPTH_ONLY_SUFFIX)


def write_depth_only(export: str | Path) -> Path | None:
    """Write the depth-only sibling of a multi-task export (needs the ``onnx`` package).

    The same nodes and weights as ``export`` up to ``depth`` (``onnx.utils.extract_model``);
    written under a temporary name and renamed. Returns None, writing nothing, when the export
    has no other output than ``depth``.
    """
    import onnx
    import onnx.utils

    from depth_perception.export import DEPTH_KEY, INPUT_NAME

    export = Path(export)
    graph = onnx.load(str(export), load_external_data=False).graph
    outputs = [output.name for output in graph.output]
    if outputs == [DEPTH_KEY] or DEPTH_KEY not in outputs:
        return None
    path = depth_only_path(export)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=ONNX_SUFFIX)
    os.close(fd)
    try:
        onnx.utils.extract_model(str(export), tmp, [INPUT_NAME], [DEPTH_KEY])
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def compare_depth_only(export: str | Path, width: int, height: int) -> float:
    """Largest difference of the depth-only sibling's ``depth`` from the export's (ONNX Runtime,
    one random input at ``width`` x ``height``).

    Raises:
        AssertionError: they differ by more than 1e-5 (the same nodes should agree exactly).
    """
    import numpy as np
    import onnxruntime as ort

    batch = np.random.default_rng(0).normal(size=(1, 3, height, width)).astype(np.float32)
    depths = []
    for path in (Path(export), depth_only_path(export)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        depths.append(session.run(["depth"], {name: batch})[0])
    difference = float(np.abs(depths[0] - depths[1]).max())
    if not difference <= 1e-5:
        raise AssertionError(
            f"the depth-only graph's depth differs from the export's by {difference}"
        )
    return difference


def _export_atomically(
    model: nn.Module, info: CheckpointInfo, path: Path, width: int, height: int
) -> Path:
    from depth_perception.export import export_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    # Exported under a temporary name and renamed: a node starting at the same time (one per
    # camera group) sees no file or a complete one, never a half-written export.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=ONNX_SUFFIX)
    os.close(fd)
    try:
        # Dynamic height and width (unless the model has one size): the predictor gives each
        # camera an input of its own aspect ratio. ONNX Runtime ran the bundled model as fast
        # dynamic as static (256x192, 1 thread: 5.73 vs 5.71 ms, medians of 7 interleaved runs,
        # 2026-12-04). The batch axis is dynamic too: a multi-camera node sends one image per
        # camera in one batch.
        export_onnx(model, tmp, width, height, dynamic_size=True, metadata=info.meta)
        os.chmod(tmp, 0o644)
        # The sibling first: whoever sees the export sees its depth-only graph complete too.
        depth_only = write_depth_only(tmp)
        if depth_only is not None:
            os.replace(depth_only, depth_only_path(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        depth_only_path(tmp).unlink(missing_ok=True)
        raise
    return path


def export_to_cache(model: nn.Module, info: CheckpointInfo, width: int, height: int) -> Path:
    """Export ``model`` (the network of ``info``'s weights) into the cache; returns the path."""
    return _export_atomically(model, info, cached_path(info, width, height), width, height)


def write_beside_weights(
    model: nn.Module, info: CheckpointInfo, width: int, height: int
) -> tuple[Path, dict[str, float]]:
    """Export ``model`` next to its weights, check it against torch, drop stale exports.

    Used by ``depth-perception bundle``, so the bundled default runs on ONNX Runtime without
    torch. Exports in that directory that belong to none of its checkpoints (earlier weights
    of a re-bundled model) are removed: they could never be picked up again.

    Returns:
        The written path and the parity check's largest absolute difference per output.

    Raises:
        AssertionError: ONNX Runtime and torch disagree beyond the export tolerances (the file
            is removed again).
    """
    from depth_perception.export import check_onnx_parity

    path = _export_atomically(model, info, beside_weights_path(info, width, height), width, height)
    try:
        diffs = check_onnx_parity(model, path, width, height)
        sibling = depth_only_path(path)
        if sibling.is_file():
            diffs["depth-only graph vs export"] = compare_depth_only(path, width, height)
    except BaseException:
        path.unlink(missing_ok=True)
        depth_only_path(path).unlink(missing_ok=True)
        raise
    for stale in stale_exports(path.parent):
        stale.unlink()
    return path, diffs


def stale_exports(directory: str | Path) -> list[Path]:
    """Exports in ``directory`` whose key matches none of the checkpoints there, at any size.

    A file's name gives its model and size; it is kept when some checkpoint of that model in
    the directory has that key at that size (several checkpoints, e.g. ``best`` and ``last``,
    share a run directory). Checkpoints that cannot be read keep every export.
    """
    pattern = re.compile(
        r"^(?P<model>.+)-(?P<w>\d+)x(?P<h>\d+)-(?P<key>[0-9a-f]{24})(\.depth)?\.onnx$"
    )
    exports = []
    for path in sorted(Path(directory).glob(f"*{ONNX_SUFFIX}")):
        match = pattern.match(path.name)
        if match:
            exports.append((path, match))
    if not exports:
        return []
    infos = []
    for weights in sorted(Path(directory).glob("*.safetensors")):
        try:
            infos.append(read_checkpoint_meta(weights))
        except (OSError, ValueError):
            return []  # unsure what belongs to what: remove nothing
    stale = []
    for path, match in exports:
        width, height = int(match["w"]), int(match["h"])
        owners = [
            info
            for info in infos
            if info.meta.model == match["model"] and onnx_key(info, width, height) == match["key"]
        ]
        if not owners:
            stale.append(path)
    return stale
