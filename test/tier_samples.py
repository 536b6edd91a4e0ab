"""Sample test code for test/unit/test_tiers.py: each function does, or names, what one rule of
the tiers in conftest.py looks for. Never collected (no ``test_`` prefix) and never called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from depth_perception.export import export_onnx
from depth_perception.models import build_model
from training.config import load_config

RECIPE = "training/configs/msm_synthetic_indoor.yaml"


def plain() -> None:
    assert sum([1, 2]) == 3


def spawns() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def _export(name: str, path: Path) -> Path:
    return export_onnx(build_model(name), path, 64, 32)


def exports_through_a_helper(tmp_path: Path) -> None:
    _export("lightweight_xs", tmp_path / "model.onnx")


def builds_a_large_model() -> None:
    build_model("msm")


def reads_a_large_model_s_recipe() -> None:
    load_config(RECIPE)


def reads_a_recipe_by_path(repo: Path) -> None:
    load_config(repo / "training/configs/msm_gradient_nyu.yaml")


def only_mentions_a_large_model() -> None:
    counts = {"msm": 1}  # a key, not a model being built
    assert counts["msm"] == 1


def spawning_fixture() -> str:
    return subprocess.check_output([sys.executable, "--version"], text=True)


def uses_a_spawning_fixture(spawning_fixture: str) -> None:
    assert spawning_fixture
