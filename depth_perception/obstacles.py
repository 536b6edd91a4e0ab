"""Pixels that are not obstacles, by class: the ``obstacle_exclude_classes`` of a checkpoint.

A multi-task model labels every pixel. The classes a robot may drive over or never hits (floor
and ceiling indoors; road, sidewalk, terrain and sky outdoors) are taken out of the obstacle
cloud and do not stop a beam of the virtual laser scan. Monocular depth of a floor is never
exactly planar, so a height filter alone marks phantom obstacles wherever the estimate dips.

Class names are those of the checkpoint's class table; an unknown name is refused with the
list of valid ones. Imports no rclpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def exclusion_ids(names: Sequence[str], class_names: Sequence[str]) -> tuple[int, ...]:
    """The class ids of ``names`` in the checkpoint's table ``class_names``.

    Raises:
        ValueError: a name that is not in the table (the message lists the valid names), or
            names given for a depth-only model, which has no classes.
    """
    names = list(names)
    if not names:
        return ()
    if not class_names:
        raise ValueError(
            f"obstacle_exclude_classes {names} needs a multi-task model: this checkpoint has "
            "no segmentation classes (use an empty list)"
        )
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise ValueError(
            f"obstacle_exclude_classes: unknown classes {unknown}; this checkpoint's classes "
            f"are: {', '.join(class_names)}"
        )
    return tuple(sorted({list(class_names).index(name) for name in names}))


def exclusion_table(ids: Sequence[int]) -> np.ndarray:
    """A (256,) float32 look-up table: NaN at the excluded ids, 0 elsewhere.

    ``depth + table[labels]`` is the depth with the excluded pixels NaN: one gather and one add
    per pixel, without branches (a boolean mask with ``copyto(where=)`` costs twice as much at
    640x480), whatever the number of classes. The unlabelled id 255 is never excluded: no
    class, so no reason to drop its depth.
    """
    table = np.zeros(256, dtype=np.float32)
    for class_id in ids:
        if not 0 <= int(class_id) < 255:
            raise ValueError(f"class id {class_id} is outside 0..254")
        table[int(class_id)] = np.nan
    return table


def mask_excluded(
    depth: np.ndarray,
    labels: np.ndarray,
    table: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``depth`` with every pixel of an excluded class set to NaN (no estimate: not an obstacle).

    Args:
        depth: (H, W) float32 metres, NaN where unknown.
        labels: (H, W) uint8 class ids.
        table: :func:`exclusion_table` of the excluded ids.
        out: (H, W) float32 to write into (a reused buffer), else a new array.

    Raises:
        ValueError: shapes that differ.
    """
    if depth.shape != labels.shape:
        raise ValueError(f"depth {depth.shape} and labels {labels.shape} differ in shape")
    if out is None:
        out = np.empty(depth.shape, np.float32)
    # mode="clip" (a no-op: uint8 ids always index the 256 entries) writes straight into
    # out; the default mode="raise" goes through a temporary copy of the whole frame.
    np.take(table, labels, out=out, mode="clip")
    np.add(depth, out, out=out)
    return out
