"""Semantic classes and colour palettes of the two synthetic scene families.

``indoor``: 14 classes in the order of the NYU-40 labelling (Silberman et al. 2012, as
re-labelled by Gupta et al. 2013), keeping the common structural and furniture classes. The
first 37 NYU-40 classes are also the SUN RGB-D 37 classes with the same ids, so the mapping
holds for both. Our id -> NYU-40 id (1-based) / SUN-37 id:

====  ==========  =======================  ===========================
 id   name        NYU-40                   SUN-37
====  ==========  =======================  ===========================
  0   wall        1 wall                   1 wall
  1   floor       2 floor (+20 floor mat)  2 floor (+20 floor_mat)
  2   cabinet     3 cabinet (+17 dresser)  3 cabinet (+17 dresser)
  3   bed         4 bed                    4 bed
  4   chair       5 chair                  5 chair
  5   sofa        6 sofa                   6 sofa
  6   table       7 table (+14 desk)       7 table (+14 desk)
  7   door        8 door                   8 door
  8   window      9 window                 9 window
  9   bookshelf   10 bookshelf (+15)       10 bookshelf (+15 shelves)
 10   picture     11 picture               11 picture
 11   ceiling     22 ceiling               22 ceiling
 12   lamp        35 lamp                  35 lamp
 13   object      40 otherprop             29 box (nearest SUN-37 class)
====  ==========  =======================  ===========================

The indoor palette is the NYU-40 colour map of the ScanNet benchmark scripts, indexed by the
NYU-40 id above, so renders compare directly with published NYU / ScanNet visualisations.

``road``: the 19 Cityscapes *train ids* exactly, with the official Cityscapes colours
(cityscapesscripts/helpers/labels.py).

In both families 255 means "unlabelled / ignore", as in Cityscapes training.
"""

from __future__ import annotations

import numpy as np

from depth_perception.classes import (  # noqa: F401 - IGNORE_LABEL re-exported for users
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_LABEL,
)

INDOOR_CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "ceiling",
    "lamp",
    "object",
)

# NYU-40 id (1-based) of each indoor class, in INDOOR_CLASSES order.
INDOOR_TO_NYU40: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 35, 40)
# SUN RGB-D 37 id (1-based) of each indoor class ("object" -> 29 box).
INDOOR_TO_SUN37: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 35, 29)

INDOOR_PALETTE: np.ndarray = np.array(
    [
        (174, 199, 232),  # wall
        (152, 223, 138),  # floor
        (31, 119, 180),  # cabinet
        (255, 187, 120),  # bed
        (188, 189, 34),  # chair
        (140, 86, 75),  # sofa
        (255, 152, 150),  # table
        (214, 39, 40),  # door
        (197, 176, 213),  # window
        (148, 103, 189),  # bookshelf
        (196, 156, 148),  # picture
        (78, 71, 183),  # ceiling
        (96, 207, 209),  # lamp
        (100, 85, 144),  # object (otherprop)
    ],
    dtype=np.uint8,
)

ROAD_CLASSES: tuple[str, ...] = CITYSCAPES_CLASSES

ROAD_PALETTE: np.ndarray = CITYSCAPES_PALETTE

FAMILIES: tuple[str, ...] = ("indoor", "road")


def _ids(names: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


# Name -> id lookups used by the scene generators (read-only by convention).
INDOOR_ID: dict[str, int] = _ids(INDOOR_CLASSES)
ROAD_ID: dict[str, int] = _ids(ROAD_CLASSES)


def check_family(family: str) -> str:
    """Return ``family`` if it is a known scene family, else raise ValueError listing them."""
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


def classes_for(family: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and the matching uint8 Nx3 RGB palette of a scene family.

    Args:
        family: ``"indoor"`` or ``"road"``.

    Returns:
        ``(names, palette)``; ``palette[i]`` is the colour of class id ``i``.

    Raises:
        ValueError: for an unknown family.
    """
    check_family(family)
    if family == "indoor":
        return INDOOR_CLASSES, INDOOR_PALETTE
    return ROAD_CLASSES, ROAD_PALETTE


def colorize_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map an HxW uint8 label image to HxWx3 RGB; 255 (ignore) and unknown ids become black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette
    return lut[np.asarray(labels, dtype=np.uint8)]
