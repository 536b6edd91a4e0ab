"""Arguments of the training subcommands of ``depth-perception`` (argparse only).

Kept free of torch and every other heavy import so that ``depth-perception --help`` stays
fast: the handlers in ``depth_perception.cli`` import the training modules only when run.
"""

from __future__ import annotations

import argparse

from training.data.registry import DATASETS as DATASET_CHOICES  # the one table; no torch


def parse_options(items: list[str]) -> dict:
    """``KEY=VALUE`` strings (values parsed as YAML) to a dict."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--option {item!r} must look like KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception train``."""
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help="recipe YAML, or a recipe name from training/configs (e.g. "
        "lightweight_synthetic_cpu)",
    )
    parser.add_argument(
        "--set",
        "-s",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry, e.g. --set optim.lr=0.001 --set train.epochs=2 "
        "(value parsed as YAML; repeatable)",
    )
    parser.add_argument(
        "--run-dir",
        default=None,
        help="output directory (default runs/<recipe name>); a run already there is resumed",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="resume the run in DIR (its config.yaml is used unless --config is given)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start over even if the run directory holds a run (overwrites its checkpoints)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--benchmark",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="only measure training throughput (images/s) for SECONDS; writes nothing",
    )


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception eval``."""
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint (.safetensors or stem; default: the bundled default weights)",
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        choices=DATASET_CHOICES,
        help="middlebury (with --root) and middlebury_skimage run the zero-shot real-image "
        "benchmark: the model beside a row prior and a constant, at the images' resolution",
    )
    parser.add_argument(
        "--family",
        default=None,
        choices=("indoor", "road"),
        help="synthetic scene family (default: the one whose classes the checkpoint has)",
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--root", default=None, help="root directory of an on-disk data set")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument of an on-disk data set, e.g. --option splits_path=splits.mat "
        "(value parsed as YAML; repeatable)",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=64,
        help="evaluate the first N samples (default 64; the synthetic test split has 8000)",
    )
    parser.add_argument("--width", type=int, default=None, help="input width (default: ckpt)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: ckpt)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--min-depth", type=float, default=None, help="lower depth cap in m (default 1e-3)"
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=None,
        help="upper depth cap in m (default: the checkpoint's max_depth)",
    )
    parser.add_argument(
        "--crop",
        default=None,
        choices=("garg", "eigen", "nyu_eigen"),
        help="standard evaluation crop",
    )
    parser.add_argument(
        "--median-scaling",
        default="auto",
        choices=("auto", "on", "off"),
        help="per-image median scaling (auto: only for relative-depth models)",
    )
    parser.add_argument(
        "--mae-bin-size",
        type=float,
        default=0.0,
        metavar="M",
        help="also print the MAE per depth bin of this width, e.g. 1.0",
    )
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument(
        "--views",
        action="store_true",
        help="zero-shot sets: also score each image mirrored and with 3 %% cut off each edge, "
        "and print every figure's mean and range over those views",
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the metrics")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception export``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.safetensors or stem)")
    parser.add_argument("--output", "-o", required=True, help="output .onnx file")
    parser.add_argument("--width", type=int, default=None, help="export width (default: ckpt)")
    parser.add_argument("--height", type=int, default=None, help="export height (default: ckpt)")
    parser.add_argument(
        "--static",
        action="store_true",
        help="fixed H and W in the graph (default dynamic where the model allows)",
    )
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument(
        "--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check"
    )
    parser.add_argument(
        "--tensorrt",
        action="store_true",
        help="also build a TensorRT engine (<output>.plan) when TensorRT is importable",
    )
    parser.add_argument(
        "--precision",
        default="fp16",
        choices=("fp32", "fp16", "int8"),
        help="TensorRT engine precision (int8 is calibrated, see --calibration-dir)",
    )
    parser.add_argument(
        "--calibration-dir",
        default="",
        help="INT8: folder of sample camera images (default: synthetic frames of the model's "
        "scene family)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=1, help="TensorRT: largest batch (number of cameras)"
    )


def add_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception teacher``."""
    parser.add_argument("--checkpoint", required=True, help="teacher checkpoint")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_CHOICES)
    parser.add_argument("--family", default="indoor", choices=("indoor", "road"))
    parser.add_argument("--root", default=None, help="root directory of an on-disk data set")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument of an on-disk data set, e.g. --option splits_path=splits.mat "
        "(value parsed as YAML; repeatable)",
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--length", type=int, default=None, help="first N samples only")
    parser.add_argument("--width", type=int, default=None, help="input width (default: ckpt)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: ckpt)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--format",
        default="npz",
        choices=("npz", "png"),
        help="npz (float32 depth + uint8 labels) or PNG (uint16 depth*256 + uint8 labels)",
    )
    parser.add_argument(
        "--fit-lut",
        action="store_true",
        help="fit the per-distance correction table against the data set's "
        "ground truth, write lut.json and store corrected depth",
    )
    parser.add_argument("--bin-size", type=float, default=1.0, help="LUT bin width in m")


def add_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception bundle``."""
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint (final/best)")
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        help="output stem (default depth_perception/weights/<model>): writes <stem>.safetensors,"
        " <stem>.json and <stem>.md",
    )
    parser.add_argument(
        "--metrics-json",
        default=None,
        help="metrics from `depth-perception eval --json` to record instead of "
        "the checkpoint's validation metrics",
    )
    parser.add_argument("--note", default="", help="free text recorded in the model card")
    parser.add_argument(
        "--onnx-only",
        action="store_true",
        help="only (re)write the parity-checked ONNX export beside --checkpoint's weights, at "
        "its input size, leaving weights and metadata alone (the bundled default, or any "
        "checkpoint a robot without torch should run on ONNX Runtime)",
    )


def add_adapt_arguments(parser: argparse.ArgumentParser) -> None:
    """``depth-perception adapt``."""
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or MCAP) with images, TF")
    parser.add_argument("--image-topic", required=True, help="Image or CompressedImage topic")
    parser.add_argument(
        "--camera-info-topic", default=None, help="its CameraInfo (default: the bag's only one)"
    )
    parser.add_argument("--odom-frame", default="odom", help="odometry frame (default odom)")
    parser.add_argument(
        "--base-frame", default="base_link", help="robot body frame (default base_link)"
    )
    parser.add_argument(
        "--camera-frame", default=None, help="camera optical frame (default: images' frame_id)"
    )
    parser.add_argument(
        "--weights",
        default="depth_perception/weights/lightweight",
        help="starting checkpoint (default: the bundled lightweight weights)",
    )
    parser.add_argument("--out", required=True, help="adapted checkpoint to write (stem)")
    parser.add_argument(
        "--run-dir", default=None, help="training run directory (default OUT_run beside OUT)"
    )
    parser.add_argument(
        "--recipe",
        default="lightweight_adapt_rosbag",
        help="recipe whose loss, optimiser and triplet settings are used",
    )
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    parser.add_argument(
        "--anchor-weight",
        type=float,
        default=0.0,
        help="weight of agreement with the starting depth (default 0: none)",
    )
    parser.add_argument(
        "--min-translation", type=float, default=0.05, help="least camera motion, m (0.05)"
    )
    parser.add_argument(
        "--max-rotation", type=float, default=15.0, help="largest rotation, degrees (15)"
    )
    parser.add_argument("--width", type=int, default=None, help="input width (default START's)")
    parser.add_argument("--height", type=int, default=None, help="input height")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop training after this long"
    )
    parser.add_argument("--score-frames", type=int, default=16, help="triplets scored (16)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--restart", action="store_true", help="start the run directory over")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
