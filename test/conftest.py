"""Test-wide isolation: ROS traffic on a private domain and localhost, logs and caches in tmp."""

import os
import random
import tempfile

# Set before anything imports rclpy, so every node of the test run (and every child process,
# which inherits the environment) uses them.
_TMP = tempfile.mkdtemp(prefix="depth_perception_test_")
os.environ["ROS_LOG_DIR"] = os.path.join(_TMP, "ros_log")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["DEPTH_PERCEPTION_CACHE"] = os.path.join(_TMP, "cache")
