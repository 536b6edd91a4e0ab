"""The standard ROS 2 launch file, checked statically (launch and launch_ros are not on PyPI)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "mono_depth.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name
    ]


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {keyword.arg: keyword.value for keyword in call.keywords}


def test_every_argument_has_a_description_and_the_issue_names_are_there():
    tree = ast.parse(LAUNCH.read_text())
    names = set()
    for call in _calls(tree, "DeclareLaunchArgument"):
        names.add(call.args[0].value)
        description = _keywords(call).get("description")
        assert isinstance(description, ast.Constant) and description.value.strip()
    assert {
        "model",
        "weights",
        "backend",
        "namespace",
        "image",
        "camera_info",
        "params_file",
        "use_rviz",
        "camera_source",
    } <= names


def test_nodes_exist_and_share_files_are_the_installed_ones():
    source = LAUNCH.read_text()
    tree = ast.parse(source)
    executables = {
        _keywords(call)["executable"].value
        for call in _calls(tree, "Node")
        if isinstance(_keywords(call).get("executable"), ast.Constant)
    }
    setup = (REPO / "setup.py").read_text()
    for executable in executables - {"rviz2"}:
        assert f"{executable} = " in setup, executable
    assert {"mono_depth_node", "camera_source_node", "rviz2"} <= executables
    # Profile, params and RViz config come from the package's share directory, all of which
    # setup.py installs.
    for relative in (
        '"config", "fastdds_shm.xml"',
        '"config", "mono_depth.yaml"',
        '"rviz", "depth_perception.rviz"',
    ):
        assert relative in source, relative
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" in source
    for path in ("config/fastdds_shm.xml", "config/mono_depth.yaml", "rviz/depth_perception.rviz"):
        assert (REPO / path).is_file()
