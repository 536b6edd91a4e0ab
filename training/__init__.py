"""Offline training of the depth_perception models: data sets, losses, trainer (no ROS needed)."""
