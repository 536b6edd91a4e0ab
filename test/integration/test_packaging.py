"""The two install paths: colcon (ROS layout, ament index) and pip into a plain prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from depth_perception import pointcloud

REPO = Path(__file__).resolve().parents[2]
EXECUTABLES = ("mono_depth_node", "camera_source_node", "depth-perception")
SHARE_FILES = (
    "package.xml",
    "launch/mono_depth.launch.py",
    "config/mono_depth.yaml",
    "config/fastdds_shm.xml",
    "rviz/depth_perception.rviz",
)


# The optional C cloud kernel: an install must build it wherever this environment could (it
# has it), and the installed package must then use it.
KERNEL_BUILT_HERE = pointcloud._cloud_kernel is not None


def _check_cloud_kernel(installed: Path, env: dict[str, str], cwd: Path) -> None:
    if not KERNEL_BUILT_HERE:
        return
    assert len(list(installed.glob("_cloud_kernel*.so"))) == 1, sorted(installed.iterdir())
    kernel = subprocess.run(
        [sys.executable, "-c", "from depth_perception import pointcloud as p; print(p.__file__);"
         "print(p.CLOUD_KERNEL, p.CLOUD_KERNEL_REASON)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()  # fmt: skip
    assert kernel[0].startswith(str(installed)) and kernel[1] == "c ", kernel


def _site_packages(prefix: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return prefix / "lib" / version / "site-packages"


# colcon lives in the venv beside this interpreter even when the venv is not on PATH (make).
_BESIDE = Path(sys.executable).parent / "colcon"
COLCON = str(_BESIDE) if _BESIDE.is_file() else shutil.which("colcon")


@pytest.mark.skipif(COLCON is None, reason="colcon is not installed")
def test_colcon_build_gives_the_ros_layout(tmp_path):
    subprocess.run(
        [
            COLCON,
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            str(REPO),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    prefix = tmp_path / "install" / "depth_perception"
    for executable in EXECUTABLES:
        path = prefix / "lib" / "depth_perception" / executable
        assert path.is_file() and os.access(path, os.X_OK), path
    assert (prefix / "share/ament_index/resource_index/packages/depth_perception").is_file()
    for relative in SHARE_FILES:
        assert (prefix / "share" / "depth_perception" / relative).is_file(), relative
    # The installed package finds its share directory through the ament index.
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(_site_packages(prefix)))
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from depth_perception.apps.processes import share_path;"
            "import depth_perception; print(share_path('config/fastdds_shm.xml'));"
            "print(depth_perception.__file__)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found[0].startswith(str(prefix / "share")), found
    assert found[1].startswith(str(prefix)), found
    _check_cloud_kernel(_site_packages(prefix) / "depth_perception", env, tmp_path)


def test_pip_install_into_a_prefix(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            # Without it pip uninstalls the venv's own (editable) install of the package first.
            "--ignore-installed",
            "--prefix",
            str(tmp_path / "prefix"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    prefix = tmp_path / "prefix"
    for executable in EXECUTABLES:
        assert (prefix / "bin" / executable).is_file(), executable
    for relative in SHARE_FILES:
        assert (prefix / "share" / "depth_perception" / relative).is_file(), relative
    installed = _site_packages(prefix) / "depth_perception"
    assert (installed / "nodes" / "mono_depth_node.py").is_file()
    # The node loads the bundled weights from inside the Python package.
    assert (installed / "weights" / "lightweight.safetensors").is_file()
    assert (installed / "weights" / "lightweight.json").is_file()
    # ... and its ONNX export, which ONNX Runtime runs without torch.
    # (and the depth-only graph of it, for frames whose class ids nobody takes)
    exports = sorted(path.name for path in (installed / "weights").glob("lightweight-*.onnx"))
    assert len(exports) == 2 and exports[0].endswith(".depth.onnx"), exports
    env = dict(os.environ, PYTHONPATH=str(_site_packages(prefix)))
    _check_cloud_kernel(installed, env, tmp_path)
