"""A checkpoint's metadata and the content hash of its weights, read without torch.

The ONNX Runtime path needs only what a checkpoint says about itself (input size,
normalisation, classes, depth range, metric, provenance; the ``.json`` beside the weights) and
a key that names its weights (the SHA-256 of the ``.safetensors`` file), never the tensors. This
module reads both with the standard library, so a node, ``infer`` or ``bag`` on the ONNX
Runtime path starts without importing torch (see ``depth_perception.onnx_files``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from depth_perception.checkpoint import CheckpointMeta, checkpoint_paths, read_metadata_file

# Large enough to keep the hash at disk speed, small enough not to matter for the RSS.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointInfo:
    """What the runtime knows about a checkpoint before (or instead of) loading its tensors.

    Attributes:
        meta: The checkpoint's metadata.
        weights_path: The ``.safetensors`` file.
        weights_sha256: SHA-256 (hex) of the weights file's content, as found on disk.
    """

    meta: CheckpointMeta
    weights_path: Path
    weights_sha256: str

    @property
    def trained(self) -> bool:
        """Whether the weights may be trained: False only where they are known not to be."""
        return self.meta.provenance.trained is not False  # None: not recorded


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's content, read in chunks (no copy of the file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint_meta(path: str | Path) -> CheckpointInfo:
    """Read and check a checkpoint's metadata and hash its weights, without loading them.

    The same checks as ``depth_perception.checkpoint.load_checkpoint`` makes before it parses
    the tensors: both files exist, the JSON is complete and not newer than this code, and the
    weights file's SHA-256 is the one the JSON recorded.

    Args:
        path: The stem or either file of the checkpoint.

    Returns:
        The metadata, the weights path and the weights' content hash.

    Raises:
        FileNotFoundError: a file is missing (the message names both).
        ValueError: ``corrupt checkpoint ...`` when the metadata cannot be parsed or is
            incomplete, or the weights do not match the recorded hash.
    """
    weights_path, meta_path = checkpoint_paths(path)
    missing = [p for p in (weights_path, meta_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"checkpoint needs both {weights_path} and {meta_path}; missing: "
            + ", ".join(str(p) for p in missing)
        )
    meta, expected_hash = read_metadata_file(meta_path)
    actual_hash = file_sha256(weights_path)
    if expected_hash is not None and actual_hash != expected_hash:
        raise ValueError(
            f"corrupt checkpoint {weights_path}: its SHA-256 does not match the one recorded in "
            f"{meta_path} (file damaged, or weights and metadata from different saves)"
        )
    return CheckpointInfo(meta, weights_path, actual_hash)
