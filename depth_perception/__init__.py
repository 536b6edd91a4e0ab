"""Monocular depth and semantic segmentation for ROS 2.

The package is layered: a pure core (``camera``, ``models``, ``predictor``, ``backends``,
``pointcloud``, ``visualize``, ``metrics``, ``synthetic``) that never imports rclpy, thin ROS 2
nodes in ``depth_perception.nodes`` and small command-line entry points.
"""

__version__ = "0.1.0"
