"""ObjectPaste: an object of one frame pasted in front of another, geometrically consistent."""

from __future__ import annotations

import numpy as np
import pytest

from depth_perception.camera import CameraIntrinsics
from training.data.augment import ObjectPaste, thing_class_ids
from training.data.sample import Sample

CLASSES = ("wall", "floor", "chair", "table")


def _frame(
    depth: float, label: int, colour: int, square: tuple[int, int, int, float] | None
) -> Sample:
    """A 40x32 frame of one depth and class, with an optional (x, y, size, depth) square."""
    h, w = 32, 40
    image = np.full((h, w, 3), colour, np.uint8)
    depth_map = np.full((h, w), depth, np.float32)
    labels = np.full((h, w), label, np.uint8)
    if square is not None:
        x, y, size, square_depth = square
        image[y : y + size, x : x + size] = 200
        depth_map[y : y + size, x : x + size] = square_depth
        labels[y : y + size, x : x + size] = 2  # chair
    k = CameraIntrinsics(fx=30.0, fy=30.0, cx=19.5, cy=15.5, width=w, height=h)
    return Sample.build(image, k, depth=depth_map, labels=labels)


def _identity(samples: list[Sample]) -> list[Sample]:
    return samples


def test_thing_classes_leave_out_the_surfaces_of_the_room():
    assert thing_class_ids(CLASSES) == [2, 3]
    assert thing_class_ids(("wall", "floor", "ceiling")) == []


def test_a_pasted_object_stands_in_front_of_what_it_covers_with_its_own_labels():
    target = _frame(3.0, 0, 50, None)
    donor = _frame(5.0, 1, 90, (10, 8, 10, 4.0))
    paste = ObjectPaste(_identity, thing_class_ids(CLASSES), probability=1.0, seed=0)
    out = paste([target, donor])
    pasted = out[0]
    region = np.zeros((32, 40), bool)
    region[8:18, 10:20] = True
    # the object's pixels, classes and a depth nearer than the wall at 3 m it covers
    assert np.array_equal(pasted.image[region], donor.image[region])
    assert (pasted.labels[region] == 2).all()
    scale = pasted.depth[region] / 4.0
    assert np.allclose(scale, scale[0])  # one scale for the whole object: the same shape
    assert 0.5 * 3.0 / 4.0 - 1e-6 <= scale[0] <= 0.95 * 3.0 / 4.0 + 1e-6
    assert pasted.valid[region].all()
    # the rest of the frame is the target's, untouched; the inputs were not modified
    assert np.array_equal(pasted.image[~region], target.image[~region])
    assert np.array_equal(pasted.depth[~region], target.depth[~region])
    assert (target.depth == 3.0).all() and (target.labels == 0).all()
    assert (target.image == 50).all() and target.valid.all()
    # the donor got the target's nothing: the target has no object class to give
    assert out[1] is donor
    # reproducible: the same batch gives the same paste
    again = paste([target, donor])[0]
    assert np.array_equal(again.depth, pasted.depth)


def test_nothing_is_pasted_when_it_cannot_be_done_consistently():
    target = _frame(3.0, 0, 50, None)
    donor = _frame(5.0, 1, 90, (10, 8, 10, 4.0))
    things = thing_class_ids(CLASSES)
    # off; a single frame; no object classes at all
    assert ObjectPaste(_identity, things, 0.0, seed=0)([target, donor])[0] is target
    assert ObjectPaste(_identity, things, 1.0, seed=0)([target])[0] is target
    assert ObjectPaste(_identity, [], 1.0, seed=0)([target, donor])[0] is target
    # objects too small or too large for the area range
    tiny = _frame(5.0, 1, 90, (10, 8, 2, 4.0))
    assert ObjectPaste(_identity, things, 1.0, seed=0)([target, tiny])[0] is target
    huge = _frame(5.0, 1, 90, (0, 0, 30, 4.0))  # 900 of 1280 pixels, over the 25 %
    assert ObjectPaste(_identity, things, 1.0, seed=0)([target, huge])[0] is target
    # a sequence frame (neighbours for photometric losses) keeps its pixels
    sequence = _frame(3.0, 0, 50, None)
    sequence.neighbours.append(sequence.image.copy())
    assert ObjectPaste(_identity, things, 1.0, seed=0)([sequence, donor])[0] is sequence
    # an object that would come nearer than min_depth
    near_target = _frame(0.3, 0, 50, None)  # in front of it: below 0.3 m
    assert ObjectPaste(_identity, things, 1.0, seed=0)([near_target, donor])[0] is near_target
    # mostly over pixels without depth: nothing says how near it must be
    holes = _frame(3.0, 0, 50, None)
    holes.depth[:, :] = 0.0
    holes.valid[:, :] = False
    assert ObjectPaste(_identity, things, 1.0, seed=0)([holes, donor])[0] is holes
    # 15 of the 100 covered pixels without depth: skipped; 5 of them: pasted, and there the
    # object brings its depth
    for missing, pasted in ((15, False), (5, True)):
        holed = _frame(3.0, 0, 50, None)
        rows, cols = np.nonzero(np.pad(np.ones((10, 10), bool), ((8, 14), (10, 20))))
        holed.valid[rows[:missing], cols[:missing]] = False
        holed.depth[rows[:missing], cols[:missing]] = 0.0
        result = ObjectPaste(_identity, things, 1.0, seed=0)([holed, donor])[0]
        assert (result is not holed) == pasted
        if pasted:
            assert result.valid[8:18, 10:20].all() and (result.depth[8:18, 10:20] < 3.0).all()
    # frames of another size
    other = Sample.build(
        np.zeros((16, 20, 3), np.uint8),
        CameraIntrinsics(fx=15.0, fy=15.0, cx=9.5, cy=7.5, width=20, height=16),
        depth=np.ones((16, 20), np.float32),
        labels=np.zeros((16, 20), np.uint8),
    )
    assert ObjectPaste(_identity, things, 1.0, seed=0)([other, donor])[0] is other


def test_the_paste_is_checked_and_runs_in_training(tmp_path, monkeypatch):
    from training.config import config_from_dict
    from training.trainer import train

    def config(data: dict) -> object:
        return config_from_dict(
            {
                "name": "paste",
                "model": {"name": "lightweight"},
                "data": {"width": 64, "height": 64, "train_length": 8, "val_length": 2, **data},
                "optim": {"lr": 0.01, "scheduler": "constant"},
                "train": {
                    "epochs": 1,
                    "steps_per_epoch": 1,
                    "batch_size": 4,
                    "device": "cpu",
                    "threads": 1,
                    "image_every_steps": 0,
                    "val_batches": 1,
                },
            }
        )

    with pytest.raises(ValueError, match="probability"):
        ObjectPaste(_identity, [2], 1.5, seed=0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"data\.object_paste must be in \[0, 1\]"):
            config(data={"object_paste": bad})
    for bad in (True,):  # the typed config's own check
        with pytest.raises(ValueError, match=r"data\.object_paste: expected a number"):
            config(data={"object_paste": bad})
    # The trainer pastes inside BatchAspect: each call sees the frames of one aspect size.
    seen: list[tuple[set, int]] = []
    original = ObjectPaste.paste

    def recording(self: ObjectPaste, samples: list[Sample]) -> list[Sample]:
        out = original(self, samples)
        changed = sum(a is not b for a, b in zip(out, samples, strict=True))
        seen.append(({(s.width, s.height) for s in samples}, changed))
        return out

    monkeypatch.setattr(ObjectPaste, "paste", recording)
    # loaded at 64x64, none of the aspect sizes: a paste outside BatchAspect would see 64x64
    cfg = config(data={"object_paste": 1.0, "aspect_sizes": [[64, 32], [32, 32]]})
    result = train(cfg, tmp_path / "paste", show_progress=False)
    assert result.progress.global_step == 1
    assert seen, "training never called ObjectPaste"
    for sizes, _ in seen:
        assert len(sizes) == 1 and sizes <= {(64, 32), (32, 32)}, seen
    assert sum(changed for _, changed in seen) > 0, seen


def test_pixels_of_the_object_without_depth_are_pasted_without_depth():
    target = _frame(3.0, 0, 50, None)
    donor = _frame(5.0, 1, 90, (10, 8, 10, 4.0))
    donor.valid[12, 12:16] = False  # a sensor's hole in the object
    donor.depth[12, 12:16] = 0.0
    pasted = ObjectPaste(_identity, thing_class_ids(CLASSES), 1.0, seed=0)([target, donor])[0]
    assert (pasted.labels[8:18, 10:20] == 2).all() and (pasted.image[12, 12:16] == 200).all()
    assert not pasted.valid[12, 12:16].any() and (pasted.depth[12, 12:16] == 0.0).all()
    assert pasted.valid[8:12, 10:20].all() and (pasted.depth[8:12, 10:20] < 3.0).all()
