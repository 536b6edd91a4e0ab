"""Photographs and ground truth that ship inside the scikit-image wheel, found on disk.

scikit-image installs a few real photographs (``coffee.png``, ``astronaut.png``,
``chelsea.png``, ...) and the left image and ground-truth disparity of the Middlebury 2014
*Motorcycle* scene (``motorcycle_left.png``, ``motorcycle_disp.npz``) in ``skimage/data``. They
are read from the installed package directory, so nothing downloads and skimage itself is not
imported. Imports no rclpy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from depth_perception.camera import CameraIntrinsics, depth_from_disparity

SKIMAGE_REQUIREMENT = "scikit-image==0.26.0"
# Real photographs of scikit-image's data directory, in the order the panels show them.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "motorcycle_left.png",
    "coffee.png",
    "astronaut.png",
    "chelsea.png",
    "rocket.jpg",
)


# Calibration of scikit-image's Motorcycle (skimage.data.stereo_motorcycle's docstring: the
# Middlebury 2014 values divided by its down-sampling factor 4).
MOTORCYCLE_FOCAL = 994.978  # px
MOTORCYCLE_CX = 311.193  # px
MOTORCYCLE_CY = 254.877  # px
MOTORCYCLE_DOFFS = 31.086  # px
MOTORCYCLE_BASELINE_MM = 193.001


def skimage_data_file(name: str) -> Path:
    """The path of ``name`` in the installed scikit-image's ``data`` directory.

    Raises:
        FileNotFoundError: scikit-image is not installed, or its wheel lacks the file.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"scikit-image is not installed; pip install {SKIMAGE_REQUIREMENT} (it is pinned in "
            ".ci/requirements.txt) to get its bundled photographs"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this scikit-image does not ship {name!r} in its wheel "
            f"(install {SKIMAGE_REQUIREMENT})"
        )
    return path


def read_skimage_photo(name: str) -> np.ndarray:
    """One of scikit-image's photographs as HxWx3 uint8 RGB (grey images are expanded).

    Raises:
        FileNotFoundError: as :func:`skimage_data_file`.
        ValueError: the file is not an 8-bit image.
    """
    path = skimage_data_file(name)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ValueError(f"{path} is not an 8-bit image")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def motorcycle_ground_truth() -> tuple[np.ndarray, CameraIntrinsics]:
    """Ground-truth depth of scikit-image's Middlebury *Motorcycle* and the left camera.

    Returns:
        (500x741 float32 depth in metres, 0 where unknown: the file marks those pixels +inf
        although the docstring says NaN; the intrinsics of ``motorcycle_left.png``).

    Raises:
        FileNotFoundError: as :func:`skimage_data_file`.
        ValueError: the disparity file is unreadable.
    """
    path = skimage_data_file("motorcycle_disp.npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            disparity = archive[archive.files[0]]
    except (OSError, ValueError, IndexError) as err:
        raise ValueError(f"cannot read the disparity {path}: {err}") from err
    if disparity.ndim != 2:
        raise ValueError(f"{path} holds a {disparity.shape} array, expected a 2-D disparity")
    depth = depth_from_disparity(
        disparity, MOTORCYCLE_FOCAL, MOTORCYCLE_BASELINE_MM / 1000.0, MOTORCYCLE_DOFFS
    )
    h, w = depth.shape
    intrinsics = CameraIntrinsics(
        MOTORCYCLE_FOCAL, MOTORCYCLE_FOCAL, MOTORCYCLE_CX, MOTORCYCLE_CY, w, h
    )
    return depth, intrinsics
