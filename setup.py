"""Installs depth_perception as an ament_python package (colcon) or into a plain venv (pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "depth_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Monocular metric depth, organized clouds and semantic segmentation for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    # Bundled default weights travel inside the Python package, so `pip install` and
    # `colcon build` find them the same way (importlib.resources).
    package_data={
        PACKAGE: ["weights/*.safetensors", "weights/*.json", "weights/*.md"],
        "training": ["configs/*.yaml", "data/*.yaml"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        # The bundled weights also sit in share/ for ROS tools that look there; the node
        # loads the copy inside the Python package.
        (f"share/{PACKAGE}/weights", glob(f"{PACKAGE}/weights/*")),
    ],
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "safetensors",
        "onnxruntime",
        "torch",
        "torchvision",
        "onnx",
    ],
    zip_safe=True,
    entry_points={
        "console_scripts": [
            f"mono_depth_node = {PACKAGE}.nodes.mono_depth_node:main",
            f"camera_source_node = {PACKAGE}.nodes.camera_source_node:main",
            f"depth-perception = {PACKAGE}.cli:main",
        ],
    },
)
