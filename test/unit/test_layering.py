"""The layering of ARCHITECTURE.md, enforced: the core imports neither ROS nor ``training``.

Each check runs in a fresh interpreter whose meta path refuses (and records) every import of
``rclpy``, the ROS message packages and ``training``, then imports every module of the core:
all of ``depth_perception`` except ``depth_perception.nodes`` (the ROS adapters). Lazy imports
inside functions (e.g. the bench's ROS runs, the CLI's training subcommands) are not executed,
so they stay allowed; only what importing a module pulls in counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "depth_perception"

# Top-level packages the core must not import: ROS 2 itself, its message packages, training.
BLOCKED = (
    "rclpy",
    "rosidl_runtime_py",
    "builtin_interfaces",
    "diagnostic_msgs",
    "lifecycle_msgs",
    "rcl_interfaces",
    "sensor_msgs",
    "std_msgs",
    "training",
)
# The ROS layer: nodes that convert messages and call the core.
ADAPTERS = ("depth_perception.nodes",)

_CHILD = r"""
import importlib, importlib.abc, json, sys

blocked = set(json.loads(sys.argv[1]))
modules = json.loads(sys.argv[2])
attempts = []


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            attempts.append((current, name))
            raise ImportError(f"{name} is blocked: the core must not import it")
        return None


current = "<start>"
sys.meta_path.insert(0, Blocker())
failures = {}
for module in modules:
    current = module
    try:
        importlib.import_module(module)
    except Exception as error:
        failures[module] = f"{type(error).__name__}: {error}"
print(json.dumps({"failures": failures, "attempts": attempts}))
"""


def core_modules() -> list[str]:
    """Every module of depth_perception outside the adapters, found on disk (not imported)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        elif parts[-1] == "__main__":
            continue  # a package's command line: importing it runs it
        name = ".".join(parts)
        if not any(name == a or name.startswith(a + ".") for a in ADAPTERS):
            names.append(name)
    return names


def _import_blocked(modules: list[str]) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(BLOCKED), json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_core_imports_without_ros_or_training():
    modules = core_modules()
    # The modules that make the core: a walk that missed them would prove nothing.
    for expected in (
        "depth_perception.frame_pipeline",
        "depth_perception.predictor",
        "depth_perception.pointcloud",
        "depth_perception.runtime",
        "depth_perception.models.registry",
        "depth_perception.backends.selection",
        "depth_perception.apps.bag_tool",
        "depth_perception.cli",
    ):
        assert expected in modules, expected
    result = _import_blocked(modules)
    assert result["failures"] == {}, result
    assert result["attempts"] == [], result


@pytest.mark.parametrize("module", ["depth_perception.nodes.conversions"])
def test_the_blocker_catches_a_module_that_imports_ros(module):
    # The control: an adapter does import ROS messages, and the same check reports it.
    result = _import_blocked([module])
    assert module in result["failures"]
    assert any(importer == module for importer, _ in result["attempts"])
