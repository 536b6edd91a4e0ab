"""Starting the package's nodes as separate processes with the right ROS environment.

Used by the demo, the benchmark and the integration tests: every process gets the shared-memory
Fast DDS profile, an isolated log directory and (optionally) its own domain id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "depth_perception"


def share_path(relative: str) -> Path:
    """A file of the package's share directory (installed), else of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        candidate = Path(get_package_share_directory(PACKAGE)) / relative
        if candidate.exists():
            return candidate
    except Exception:  # not installed as a ROS package: fall through to the source tree
        pass
    candidate = Path(sys.prefix) / "share" / PACKAGE / relative
    if candidate.exists():
        return candidate
    candidate = Path(__file__).resolve().parents[2] / relative
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"cannot find {relative} in the {PACKAGE} share directory")


def ros_environment(domain_id: int | None = None, log_dir: str | None = None) -> dict[str, str]:
    """The current environment plus the package's Fast DDS profile and isolation settings."""
    env = dict(os.environ)
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(share_path("config/fastdds_shm.xml"))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_LOG_DIR"] = log_dir or env.get("ROS_LOG_DIR") or tempfile.mkdtemp(prefix="ros_log_")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def apply_ros_environment(env: dict[str, str]) -> None:
    """Make this process use ``env``'s ROS settings (call before rclpy.init)."""
    for key in (
        "FASTRTPS_DEFAULT_PROFILES_FILE",
        "RMW_IMPLEMENTATION",
        "ROS_AUTOMATIC_DISCOVERY_RANGE",
        "ROS_DOMAIN_ID",
        "ROS_LOG_DIR",
    ):
        if key in env:
            os.environ[key] = env[key]


def format_parameter(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Quoted so ROS keeps "" and numeric-looking strings as strings.
        return '"' + value + '"' if value == "" or value.replace(".", "").isdigit() else value
    return str(value)


def start_node(
    module: str,
    env: dict[str, str],
    parameters: dict[str, object] | None = None,
    remappings: dict[str, str] | None = None,
    namespace: str = "",
    log_path: Path | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen:
    """Start ``python -m depth_perception.nodes.<module>`` with ROS arguments.

    ``python -m`` puts the working directory first on ``sys.path``: ``cwd`` (a checkout's root)
    therefore decides whose ``depth_perception`` the node runs, even before ``PYTHONPATH``.
    """
    command = [sys.executable, "-m", f"{PACKAGE}.nodes.{module}", "--ros-args"]
    for name, value in (parameters or {}).items():
        command += ["-p", f"{name}:={format_parameter(value)}"]
    for old, new in (remappings or {}).items():
        command += ["-r", f"{old}:={new}"]
    if namespace:
        command += ["-r", f"__ns:={namespace}"]
    output = open(log_path, "w") if log_path is not None else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=cwd)


def stop_processes(processes: list[subprocess.Popen], timeout: float = 10.0) -> list[int]:
    """SIGINT each process (a clean rclpy shutdown), SIGKILL what does not exit in time."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes
