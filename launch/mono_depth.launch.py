"""Launch mono_depth (and optionally a camera source and RViz) with the shared-memory profile.

    ros2 launch depth_perception mono_depth.launch.py
    ros2 launch depth_perception mono_depth.launch.py camera_source:=synthetic use_rviz:=true
    ros2 launch depth_perception mono_depth.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, LaunchConfigurationNotEquals
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("depth_perception")
    arguments = [
        DeclareLaunchArgument(
            "model", default_value="lightweight", description="Registered model name"
        ),
        DeclareLaunchArgument(
            "weights",
            default_value="",
            description="Checkpoint .safetensors; empty = bundled default",
        ),
        DeclareLaunchArgument(
            "backend", default_value="auto", description="auto, onnxruntime, torch or tensorrt"
        ),
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="Namespace of the nodes and their output topics",
        ),
        DeclareLaunchArgument(
            "image", default_value="image", description="Input image topic (rectified)"
        ),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="Input camera_info topic"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "mono_depth.yaml"),
            description="Parameters file of mono_depth",
        ),
        DeclareLaunchArgument(
            "use_rviz",
            default_value="false",
            description="Start RViz with the package's display config",
        ),
        DeclareLaunchArgument(
            "camera_source",
            default_value="none",
            description="Also start camera_source_node: none, synthetic, video, images or v4l2",
        ),
        DeclareLaunchArgument(
            "source_path",
            default_value="",
            description="Video file or image folder for camera_source",
        ),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=os.path.join(share, "config", "fastdds_shm.xml"),
            description="Fast DDS profile with a large shared-memory segment for big messages",
        ),
    ]
    namespace = LaunchConfiguration("namespace")
    remappings = [
        ("image", LaunchConfiguration("image")),
        ("camera_info", LaunchConfiguration("camera_info")),
    ]
    mono_depth = Node(
        package="depth_perception",
        executable="mono_depth_node",
        name="mono_depth",
        namespace=namespace,
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": LaunchConfiguration("model"),
                "weights": LaunchConfiguration("weights"),
                "backend": LaunchConfiguration("backend"),
            },
        ],
        remappings=remappings,
    )
    camera_source = Node(
        package="depth_perception",
        executable="camera_source_node",
        name="camera_source",
        namespace=namespace,
        output="screen",
        parameters=[
            {
                "source": LaunchConfiguration("camera_source"),
                "path": LaunchConfiguration("source_path"),
            }
        ],
        remappings=remappings,
        condition=LaunchConfigurationNotEquals("camera_source", "none"),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=namespace,
        arguments=["-d", os.path.join(share, "rviz", "depth_perception.rviz")],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription(
        [
            *arguments,
            # Every process started here uses the profile (large images over shared memory).
            SetEnvironmentVariable(
                "FASTRTPS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")
            ),
            camera_source,
            mono_depth,
            rviz,
        ]
    )
