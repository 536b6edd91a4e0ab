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
        "use_sim_time",
        "use_respawn",
        "respawn_delay",
        "log_level",
        "image_transport",
        "depth_encoding",
        "publish_scan",
        "scan_frame_id",
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


def _parameter_dicts(tree: ast.AST) -> list[dict[str, str]]:
    """Every Node's inline parameter dicts, as {name: unparsed value}."""
    found = []
    for call in _calls(tree, "Node"):
        parameters = _keywords(call).get("parameters")
        entries = {}
        for element in getattr(parameters, "elts", []):
            if isinstance(element, ast.Dict):
                for key, value in zip(element.keys, element.values, strict=True):
                    entries[key.value] = ast.unparse(value)
            elif isinstance(element, ast.Name):
                entries[element.id] = element.id
        found.append(entries)
    return found


def _executable(call: ast.Call) -> str:
    return getattr(_keywords(call).get("executable"), "value", "")


def test_every_node_gets_use_sim_time_log_level_and_mono_depth_respawns():
    for path in (LAUNCH, REPO / "launch" / "nav2_depth.launch.py"):
        tree = ast.parse(path.read_text())
        nodes = _calls(tree, "Node")
        assert nodes
        for call, parameters in zip(nodes, _parameter_dicts(tree), strict=True):
            where = f"{path.name}: {_executable(call)}"
            text = ast.unparse(call)
            assert "use_sim_time" in " ".join(parameters) + " ".join(parameters.values()), where
            assert "log_level" in text or "log_arguments" in text, where
    tree = ast.parse(LAUNCH.read_text())
    mono = next(c for c in _calls(tree, "Node") if _executable(c) == "mono_depth_node")
    keywords = _keywords(mono)
    assert ast.unparse(keywords["respawn"]) == "respawn"
    assert ast.unparse(keywords["respawn_delay"]) == "respawn_delay"
    source = LAUNCH.read_text()
    assert 'float(LaunchConfiguration("respawn_delay").perform(context))' in source
    (parameters,) = [
        p
        for c, p in zip(_calls(tree, "Node"), _parameter_dicts(tree), strict=True)
        if _executable(c) == "mono_depth_node"
    ]
    # The new switches reach the node under the node's own parameter names.
    from depth_perception.config import PARAMETERS_BY_NAME

    for name in ("image_transport", "depth_encoding", "publish_scan", "scan_frame_id"):
        assert parameters[name] == f"LaunchConfiguration('{name}')"
        assert name in PARAMETERS_BY_NAME
    # compressed input: <image>/compressed follows the image remapping.
    assert '("image/compressed", [LaunchConfiguration("image"), "/compressed"])' in source


def test_nav2_launch_passes_the_switches_on():
    path = REPO / "launch" / "nav2_depth.launch.py"
    tree = ast.parse(path.read_text())
    declared = {call.args[0].value for call in _calls(tree, "DeclareLaunchArgument")}
    include = _calls(tree, "IncludeLaunchDescription")[0]
    passed = ast.unparse(include)
    mono_arguments = {
        call.args[0].value
        for call in _calls(ast.parse(LAUNCH.read_text()), "DeclareLaunchArgument")
    }
    for name in (
        "use_sim_time",
        "use_respawn",
        "respawn_delay",
        "log_level",
        "image_transport",
        "depth_encoding",
        "publish_scan",
    ):
        assert name in declared and f"'{name}': LaunchConfiguration('{name}')" in passed, name
        assert name in mono_arguments
    for call in _calls(tree, "DeclareLaunchArgument"):
        description = _keywords(call).get("description")
        assert description is not None and ast.unparse(description).strip("'\" "), call.args[
            0
        ].value
