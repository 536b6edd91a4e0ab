"""Thin ROS 2 nodes over the core: they convert messages and call it."""
