"""Installs depth_perception as an ament_python package (colcon) or into a plain venv (pip)."""

import sys
from glob import glob

from setuptools import Extension, find_packages, setup

PACKAGE = "depth_perception"

# The one-pass point-cloud writer (depth_perception/_cloud_kernel.c, plain CPython buffer
# protocol, no numpy headers). Optional: without a compiler or the Python headers the install
# still succeeds and depth_perception.pointcloud uses its numpy path (CLOUD_KERNEL = "numpy").
# No fast-math: the kernel must give the numpy path's bytes, NaN bits included.
CLOUD_KERNEL = Extension(
    f"{PACKAGE}._cloud_kernel",
    sources=[f"{PACKAGE}/_cloud_kernel.c"],
    extra_compile_args=[] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"],
    optional=True,
)

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Monocular metric depth, organized clouds and semantic segmentation for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    ext_modules=[CLOUD_KERNEL],
    # Bundled default weights travel inside the Python package, so `pip install` and
    # `colcon build` find them the same way (importlib.resources).
    package_data={
        # The .onnx beside the weights lets ONNX Runtime run them without torch.
        PACKAGE: ["weights/*.safetensors", "weights/*.json", "weights/*.md", "weights/*.onnx"],
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
    # What a CPU-only robot needs: the node, `infer` and `bag` on ONNX Runtime with the bundled
    # model or any checkpoint whose ONNX export exists (depth_perception.onnx_files). torch
    # (several GB with its CUDA libraries) is an extra.
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "onnxruntime",
        "tqdm",
    ],
    extras_require={
        # `depth-perception bag` (reads and writes rosbag2 without a ROS install).
        "bag": ["rosbags"],
        # The torch backend, TensorRT (through torch CUDA tensors), exporting the ONNX of a
        # checkpoint that has none yet, `export`, and everything that writes checkpoints.
        "torch": ["torch", "torchvision", "onnx", "safetensors"],
        # Training, evaluation and the data-set readers.
        "train": [
            "torch",
            "torchvision",
            "onnx",
            "safetensors",
            "tensorboard",
            "h5py",
            "scipy",
            "rosbags",
        ],
    },
    # A compiled extension cannot be imported from a zip.
    zip_safe=False,
    entry_points={
        "console_scripts": [
            f"mono_depth_node = {PACKAGE}.nodes.mono_depth_node:main",
            f"camera_source_node = {PACKAGE}.nodes.camera_source_node:main",
            f"depth-perception = {PACKAGE}.cli:main",
        ],
    },
)
