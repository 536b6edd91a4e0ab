"""mono_depth feeding a Nav2 costmap: camera -> depth -> obstacle cloud -> voxel layer.

    ros2 launch depth_perception nav2_depth.launch.py camera_source:=synthetic
    ros2 launch depth_perception nav2_depth.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info camera_frame:=camera_color_optical_frame \
        publish_odom_tf:=false

Starts mono_depth (through mono_depth.launch.py, in the namespace `camera`, with
config/nav2_mono_depth.yaml: the obstacle cloud /camera/obstacles/points without floor and
ceiling, and the virtual laser scan /camera/scan in camera_link), the static TF
base_link -> camera_link -> <camera_frame>, the standalone Nav2 costmap
(config/nav2_costmap.yaml) and a lifecycle manager that brings the costmap up. With a real
robot, set publish_odom_tf:=false (odometry publishes odom -> base_link) and camera_frame to
the frame_id of your camera's images; in the costmap file, sensor_frame must match it.
Every node gets use_sim_time and log_level (bag playback: use_sim_time:=true).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("depth_perception")
    arguments = [
        DeclareLaunchArgument(
            "namespace",
            default_value="camera",
            description="Namespace of mono_depth: the cloud is <namespace>/points",
        ),
        DeclareLaunchArgument(
            "image", default_value="image", description="Input image topic (rectified)"
        ),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="Input camera_info topic"
        ),
        DeclareLaunchArgument(
            "camera_source",
            default_value="none",
            description="Also start camera_source_node: none, synthetic, video, images or v4l2",
        ),
        DeclareLaunchArgument(
            "model", default_value="lightweight", description="Registered model name"
        ),
        DeclareLaunchArgument(
            "weights", default_value="", description="Checkpoint .safetensors; empty = bundled"
        ),
        DeclareLaunchArgument(
            "backend", default_value="auto", description="auto, onnxruntime, torch or tensorrt"
        ),
        DeclareLaunchArgument(
            "costmap_params",
            default_value=os.path.join(share, "config", "nav2_costmap.yaml"),
            description="Parameters of the Nav2 costmap (observation source on the cloud)",
        ),
        DeclareLaunchArgument(
            "mono_depth_params",
            default_value=os.path.join(share, "config", "nav2_mono_depth.yaml"),
            description="Parameters of mono_depth for navigation (obstacle_exclude_classes, "
            "cloud stride, scan band)",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Every node follows /clock (bag playback, simulation)",
        ),
        DeclareLaunchArgument(
            "use_respawn",
            default_value="false",
            description="Restart mono_depth and the camera source when they exit",
        ),
        DeclareLaunchArgument(
            "respawn_delay",
            default_value="2.0",
            description="Seconds before a respawn (with use_respawn)",
        ),
        DeclareLaunchArgument(
            "log_level",
            default_value="info",
            description="Log level of every node: debug, info, warn, error or fatal",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="raw",
            description="raw (sensor_msgs/Image) or compressed (<image>/compressed)",
        ),
        DeclareLaunchArgument(
            "depth_encoding",
            default_value="32FC1",
            description="depth/image as 32FC1 metres or 16UC1 millimetres (REP 118)",
        ),
        DeclareLaunchArgument(
            "publish_scan",
            default_value="true",
            description="Publish <namespace>/scan (sensor_msgs/LaserScan) for 2-D layers",
        ),
        DeclareLaunchArgument(
            "camera_frame",
            default_value="camera_optical_frame",
            description="frame_id of the images (REP 103 optical frame): the cloud's frame",
        ),
        DeclareLaunchArgument(
            "camera_x", default_value="0.1", description="Camera position on base_link (m)"
        ),
        DeclareLaunchArgument("camera_y", default_value="0.0", description="(m)"),
        DeclareLaunchArgument("camera_z", default_value="0.3", description="(m)"),
        DeclareLaunchArgument(
            "publish_odom_tf",
            default_value="true",
            description="Publish a static odom -> base_link (only without real odometry)",
        ),
    ]
    mono_depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "mono_depth.launch.py")),
        launch_arguments={
            "namespace": LaunchConfiguration("namespace"),
            "image": LaunchConfiguration("image"),
            "camera_info": LaunchConfiguration("camera_info"),
            "camera_source": LaunchConfiguration("camera_source"),
            "model": LaunchConfiguration("model"),
            "weights": LaunchConfiguration("weights"),
            "backend": LaunchConfiguration("backend"),
            "params_file": LaunchConfiguration("mono_depth_params"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "use_respawn": LaunchConfiguration("use_respawn"),
            "respawn_delay": LaunchConfiguration("respawn_delay"),
            "log_level": LaunchConfiguration("log_level"),
            "image_transport": LaunchConfiguration("image_transport"),
            "depth_encoding": LaunchConfiguration("depth_encoding"),
            "publish_scan": LaunchConfiguration("publish_scan"),
            # The scan lies in camera_link, which the mount TF below publishes.
            "scan_frame_id": "camera_link",
        }.items(),
    )
    use_sim_time = {"use_sim_time": LaunchConfiguration("use_sim_time")}
    log_arguments = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]
    # base_link -> camera_link: where the camera sits (x forward, z up, REP 103 body frame).
    camera_mount = Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name="camera_mount_tf",
        arguments=[
            "--x",
            LaunchConfiguration("camera_x"),
            "--y",
            LaunchConfiguration("camera_y"),
            "--z",
            LaunchConfiguration("camera_z"),
            "--frame-id",
            "base_link",
            "--child-frame-id",
            "camera_link",
            *log_arguments,
        ],
        parameters=[use_sim_time],
    )
    # camera_link -> optical frame: the fixed REP 103 rotation (z forward, x right, y down).
    optical = Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name="camera_optical_tf",
        arguments=[
            "--qx",
            "-0.5",
            "--qy",
            "0.5",
            "--qz",
            "-0.5",
            "--qw",
            "0.5",
            "--frame-id",
            "camera_link",
            "--child-frame-id",
            LaunchConfiguration("camera_frame"),
            *log_arguments,
        ],
        parameters=[use_sim_time],
    )
    odom = Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name="odom_tf",
        arguments=["--frame-id", "odom", "--child-frame-id", "base_link", *log_arguments],
        parameters=[use_sim_time],
        condition=IfCondition(LaunchConfiguration("publish_odom_tf")),
    )
    costmap = Node(
        package="nav2_costmap_2d",
        executable="nav2_costmap_2d",
        name="costmap",
        namespace="costmap",
        output="screen",
        arguments=log_arguments,
        # After the file: the launch argument wins over the file's use_sim_time.
        parameters=[LaunchConfiguration("costmap_params"), use_sim_time],
    )
    lifecycle = Node(
        package="nav2_lifecycle_manager",
        executable="lifecycle_manager",
        name="lifecycle_manager_costmap",
        output="screen",
        arguments=log_arguments,
        parameters=[{"autostart": True, "node_names": ["costmap/costmap"]}, use_sim_time],
    )
    return LaunchDescription(
        [*arguments, mono_depth, camera_mount, optical, odom, costmap, lifecycle]
    )
