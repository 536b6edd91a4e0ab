"""Procedural synthetic worlds with exact metric depth and semantic labels (pure core).

``SyntheticWorld`` renders an ``indoor`` room or a ``road`` town along a smooth camera loop;
frames carry RGB, z-depth, class labels, intrinsics and the camera pose. See ``world`` for the
conventions and ``classes`` for the label sets (NYU-40 / SUN-37 style indoor, Cityscapes road).
``make_world(..., domain="randomized")`` builds the domain-randomised world of ``randomized``
(varied spaces, materials, lights and cameras, for transfer to real images).
"""

from depth_perception.synthetic.classes import (
    FAMILIES,
    IGNORE_LABEL,
    INDOOR_CLASSES,
    INDOOR_PALETTE,
    INDOOR_TO_NYU40,
    INDOOR_TO_SUN37,
    ROAD_CLASSES,
    ROAD_PALETTE,
    classes_for,
    colorize_labels,
)
from depth_perception.synthetic.randomized import (
    DOMAINS,
    RandomizedWorld,
    benchmark_domains,
    depth_range_for,
    make_world,
)
from depth_perception.synthetic.world import (
    DEPTH_RANGES,
    SyntheticFrame,
    SyntheticWorld,
    benchmark_renderer,
)

__all__ = [
    "DEPTH_RANGES",
    "DOMAINS",
    "FAMILIES",
    "IGNORE_LABEL",
    "INDOOR_CLASSES",
    "INDOOR_PALETTE",
    "INDOOR_TO_NYU40",
    "INDOOR_TO_SUN37",
    "ROAD_CLASSES",
    "ROAD_PALETTE",
    "RandomizedWorld",
    "SyntheticFrame",
    "SyntheticWorld",
    "benchmark_domains",
    "benchmark_renderer",
    "classes_for",
    "colorize_labels",
    "depth_range_for",
    "make_world",
]
