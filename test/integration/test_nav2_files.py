"""The Nav2 example (config/nav2_costmap.yaml, launch/nav2_depth.launch.py) matches the node.

launch / launch_ros cannot be installed here, so the launch file is checked with ``ast``:
its arguments, the nodes it starts and the frames and files they use.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

from depth_perception.camera import CameraIntrinsics
from depth_perception.config import load_config
from depth_perception.obstacles import exclusion_ids
from depth_perception.pointcloud import FLOAT32, UINT32, OrganizedCloudBuilder

ROOT = Path(__file__).resolve().parents[2]
COSTMAP_FILE = ROOT / "config" / "nav2_costmap.yaml"
LAUNCH_FILE = ROOT / "launch" / "nav2_depth.launch.py"
NODE_FILE = ROOT / "depth_perception" / "nodes" / "mono_depth_node.py"
SOURCE_NODE_FILE = ROOT / "depth_perception" / "nodes" / "camera_source_node.py"


def _costmap_params() -> dict:
    document = yaml.safe_load(COSTMAP_FILE.read_text())
    return document["costmap"]["costmap"]["ros__parameters"]


def _node_output_topics() -> dict[str, str]:
    """The node's publishers as declared in on_configure: {key: (type, relative topic)}."""
    tree = ast.parse(NODE_FILE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "points" for k in node.keys
        ):
            return {
                k.value: v.elts[1].value
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(v, ast.Tuple)
            }
    raise AssertionError("no outputs dict with 'points' in mono_depth_node.py")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == name
    ]


def _keywords(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords}


def _launch_arguments(tree: ast.AST) -> dict[str, str]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        kw = _keywords(call)
        default = kw.get("default_value")
        out[call.args[0].value] = default.value if isinstance(default, ast.Constant) else default
    return out


def _camera_source_default_frame() -> str:
    tree = ast.parse(SOURCE_NODE_FILE.read_text())
    for call in _calls(tree, "declare"):
        if (
            call.args
            and isinstance(call.args[0], ast.Constant)
            and call.args[0].value == "frame_id"
        ):
            return call.args[1].value
    raise AssertionError("camera_source_node declares no frame_id")


def _source(params: dict) -> dict:
    layer = params["voxel_layer"]
    sources = layer["observation_sources"].split()
    clouds = [layer[s] for s in sources if layer[s]["data_type"] == "PointCloud2"]
    assert len(clouds) == 1
    return clouds[0]


def test_observation_source_reads_the_nodes_cloud():
    tree = ast.parse(LAUNCH_FILE.read_text())
    arguments = _launch_arguments(tree)
    outputs = _node_output_topics()
    source = _source(_costmap_params())
    # <launch namespace>/<node's obstacle cloud topic>, absolute: the cloud without the floor.
    assert outputs["obstacles"] == "obstacles/points"
    assert (
        source["topic"]
        == f"/{arguments['namespace']}/{outputs['obstacles']}"
        == "/camera/obstacles/points"
    )
    # ...which the node publishes only with classes to exclude: the launch's params file has
    # them, and they are classes of the default model's checkpoint.
    assert "nav2_mono_depth.yaml" in ast.unparse(arguments["mono_depth_params"])
    nav = load_config(ROOT / "config" / "nav2_mono_depth.yaml")
    assert nav.obstacle_exclude_classes == ("floor", "ceiling")
    assert arguments["model"] == "lightweight"
    bundled = json.loads((ROOT / "depth_perception" / "weights" / "lightweight.json").read_text())
    exclusion_ids(nav.obstacle_exclude_classes, bundled["class_names"])  # raises if unknown
    text = COSTMAP_FILE.read_text()
    assert "Why obstacles/points and not points" in text


def test_frames_agree_between_camera_launch_and_costmap():
    params = _costmap_params()
    source = _source(params)
    tree = ast.parse(LAUNCH_FILE.read_text())
    arguments = _launch_arguments(tree)
    # The cloud's frame_id is the image's: camera_source's default frame, which the launch
    # file's optical TF publishes and the costmap's sensor_frame names.
    frame = _camera_source_default_frame()
    assert source["sensor_frame"] == arguments["camera_frame"] == frame
    tf_frames = []
    for call in _calls(tree, "Node"):
        kw = _keywords(call)
        if getattr(kw.get("executable"), "value", "") != "static_transform_publisher":
            continue
        args = kw["arguments"].elts
        pairs = {
            args[i].value: args[i + 1]
            for i in range(0, len(args) - 1)
            if isinstance(args[i], ast.Constant)
        }
        parent = pairs["--frame-id"].value
        child = pairs["--child-frame-id"]
        child = child.value if isinstance(child, ast.Constant) else "camera_frame"
        tf_frames.append((parent, child))
    # odom -> base_link -> camera_link -> <camera_frame>: a chain from the costmap's frames.
    assert ("odom", "base_link") in tf_frames
    assert ("base_link", "camera_link") in tf_frames
    assert ("camera_link", "camera_frame") in tf_frames
    assert params["global_frame"] == "odom" and params["robot_base_frame"] == "base_link"


def test_launch_file_structure():
    text = LAUNCH_FILE.read_text()
    tree = ast.parse(text)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions
    arguments = _launch_arguments(tree)
    assert {"namespace", "image", "camera_info", "costmap_params", "camera_frame"} <= set(
        arguments
    )
    assert "nav2_costmap.yaml" in ast.unparse(arguments["costmap_params"])
    assert "mono_depth.launch.py" in text
    packages = {
        _keywords(c)["package"].value for c in _calls(tree, "Node") if "package" in _keywords(c)
    }
    assert {"nav2_costmap_2d", "nav2_lifecycle_manager", "tf2_ros"} <= packages
    # The lifecycle manager must manage the costmap node by its full name.
    costmap = next(
        c for c in _calls(tree, "Node") if _keywords(c)["package"].value == "nav2_costmap_2d"
    )
    kw = _keywords(costmap)
    full_name = f"{kw['namespace'].value}/{kw['name'].value}"
    assert f'"{full_name}"' in text.split("lifecycle_manager")[-1]
    # The params file keys are that full name.
    assert full_name.split("/") == ["costmap", "costmap"]


def test_costmap_settings_are_consistent():
    params = _costmap_params()
    source = _source(params)
    layer = params["voxel_layer"]
    assert layer["plugin"] == "nav2_costmap_2d::VoxelLayer"
    assert "voxel_layer" in params["plugins"]
    assert source["marking"] is True and source["clearing"] is True
    assert 0 <= source["min_obstacle_height"] < source["max_obstacle_height"]
    assert source["max_obstacle_height"] <= layer["z_voxels"] * layer["z_resolution"] + 1e-9
    assert 0 < source["obstacle_max_range"] <= source["raytrace_max_range"]
    assert source["obstacle_min_range"] < source["obstacle_max_range"]
    assert source["expected_update_rate"] > 0
    # The node publishes NaN for unknown depth, never Inf.
    assert source["inf_is_valid"] is False


def test_cloud_fields_are_what_the_layers_read():
    # Voxel/obstacle layers read float32 x, y, z; a semantic layer reads the uint32 label.
    builder = OrganizedCloudBuilder(
        CameraIntrinsics.from_hfov(8, 6, 70.0), with_rgb=True, with_label=True
    )
    fields = {f.name: (f.offset, f.datatype, f.count) for f in builder.fields}
    assert fields["x"] == (0, FLOAT32, 1)
    assert fields["y"] == (4, FLOAT32, 1)
    assert fields["z"] == (8, FLOAT32, 1)
    assert fields["label"][1:] == (UINT32, 1)
    text = COSTMAP_FILE.read_text()
    assert "label (uint32" in text and "NaN" in text
