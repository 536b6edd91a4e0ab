"""Launch mono_depth (and optionally a camera source and RViz) with the shared-memory profile.

    ros2 launch depth_perception mono_depth.launch.py
    ros2 launch depth_perception mono_depth.launch.py camera_source:=synthetic use_rviz:=true
    ros2 launch depth_perception mono_depth.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info image_transport:=compressed
    ros2 launch depth_perception mono_depth.launch.py use_sim_time:=true   # bag playback

Every node started here gets ``use_sim_time`` and ``log_level``; mono_depth respawns after
``respawn_delay`` seconds when ``use_respawn`` is true (as nav2_bringup's nodes do). Node
parameters not given here come from ``params_file`` (``obstacle_exclude_classes`` is a list:
set it there, e.g. config/nav2_mono_depth.yaml).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
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
            "use_sim_time",
            default_value="false",
            description="Every node follows /clock (bag playback, simulation) instead of the "
            "wall clock",
        ),
        DeclareLaunchArgument(
            "use_respawn",
            default_value="false",
            description="Restart mono_depth (and camera_source) when it exits",
        ),
        DeclareLaunchArgument(
            "respawn_delay",
            default_value="2.0",
            description="Seconds to wait before a respawn (with use_respawn)",
        ),
        DeclareLaunchArgument(
            "log_level",
            default_value="info",
            description="Log level of every node: debug, info, warn, error or fatal",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="raw",
            description="raw: sensor_msgs/Image on <image>; compressed: "
            "sensor_msgs/CompressedImage (jpeg/png) on <image>/compressed",
        ),
        DeclareLaunchArgument(
            "depth_encoding",
            default_value="32FC1",
            description="depth/image as 32FC1 (metres, NaN = no estimate) or 16UC1 "
            "(millimetres, 0 = no estimate, REP 118)",
        ),
        DeclareLaunchArgument(
            "publish_scan",
            default_value="true",
            description="Publish the virtual laser scan on <namespace>/scan (computed only "
            "while subscribed)",
        ),
        DeclareLaunchArgument(
            "scan_frame_id",
            default_value="camera_link",
            description="frame_id of scan: the camera's REP 103 body frame (x forward, y left, "
            "z up) at its optical centre",
        ),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=os.path.join(share, "config", "fastdds_shm.xml"),
            description="Fast DDS profile with a large shared-memory segment for big messages",
        ),
    ]
    return LaunchDescription(
        [
            *arguments,
            # Every process started here uses the profile (large images over shared memory).
            SetEnvironmentVariable(
                "FASTRTPS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")
            ),
            # respawn_delay must reach launch as a float: the nodes are made once the
            # arguments are known.
            OpaqueFunction(function=_nodes),
        ]
    )


def _nodes(context) -> list:
    share = get_package_share_directory("depth_perception")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    respawn = LaunchConfiguration("use_respawn").perform(context).lower() == "true"
    respawn_delay = float(LaunchConfiguration("respawn_delay").perform(context))
    log_arguments = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]
    remappings = [
        ("image", LaunchConfiguration("image")),
        ("camera_info", LaunchConfiguration("camera_info")),
        # image_transport: compressed subscribes to <image>/compressed.
        ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
    ]
    mono_depth = Node(
        package="depth_perception",
        executable="mono_depth_node",
        name="mono_depth",
        namespace=namespace,
        output="screen",
        respawn=respawn,
        respawn_delay=respawn_delay,
        arguments=log_arguments,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_sim_time": use_sim_time,
                "model": LaunchConfiguration("model"),
                "weights": LaunchConfiguration("weights"),
                "backend": LaunchConfiguration("backend"),
                "image_transport": LaunchConfiguration("image_transport"),
                "depth_encoding": LaunchConfiguration("depth_encoding"),
                "publish_scan": LaunchConfiguration("publish_scan"),
                "scan_frame_id": LaunchConfiguration("scan_frame_id"),
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
        respawn=respawn,
        respawn_delay=respawn_delay,
        arguments=log_arguments,
        parameters=[
            {
                "use_sim_time": use_sim_time,
                "source": LaunchConfiguration("camera_source"),
                "path": LaunchConfiguration("source_path"),
            }
        ],
        remappings=remappings[:2],
        condition=LaunchConfigurationNotEquals("camera_source", "none"),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=namespace,
        arguments=[
            "-d",
            os.path.join(share, "rviz", "depth_perception.rviz"),
            *log_arguments,
        ],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return [camera_source, mono_depth, rviz]
