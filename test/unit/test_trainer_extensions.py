"""Trainer features the model families rely on: objectives, poly LR, freezing, no-decay groups,
gradient accumulation and multi-stage recipes (real trainer, tiny synthetic data, one thread).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from depth_perception.checkpoint import load_model
from depth_perception.models import build_model
from training.config import config_from_dict, stage_config
from training.objectives import Terms, build_objective, objective_names, register_objective
from training.trainer import build_optimizer, freeze_parameters, lr_factor, train

TINY: dict[str, Any] = {
    "name": "tiny",
    "model": {"name": "lightweight"},
    "data": {
        "dataset": "synthetic",
        "family": "indoor",
        "width": 64,
        "height": 64,
        "train_length": 16,
        "val_length": 4,
        "num_workers": 0,
        "augment": False,
    },
    "optim": {"lr": 0.01, "scheduler": "constant"},
    "train": {
        "epochs": 1,
        "steps_per_epoch": 1,
        "batch_size": 4,
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "log_every_steps": 1,
        "image_every_steps": 0,
        "val_batches": 1,
    },
}


@register_objective("test_l1_frozen_bn")
def _l1_objective(cfg: Any, model: nn.Module) -> Any:
    """L1 on valid pixels with batch norm in eval mode, so batch composition cannot matter."""

    def objective(model: nn.Module, data: dict[str, Any]) -> tuple[dict, Terms]:
        model.eval()
        outputs = model(data["image"])
        valid = data["valid"]
        depth = nn.functional.interpolate(outputs["depth"], size=valid.shape[-2:])
        per_image = [
            (depth[i][valid[i]] - data["depth"][i][valid[i]]).abs().mean()
            for i in range(valid.shape[0])
        ]
        total = torch.stack(per_image).mean()
        return outputs, Terms(total, {"l1": float(total.detach())})

    return objective


def config(**sections: dict[str, Any]) -> Any:
    data = copy.deepcopy(TINY)
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return config_from_dict(data)


def test_registered_objectives_include_the_standard_ones_and_unknown_names_are_refused():
    assert {"multiscale", "multitask"} <= set(objective_names())
    with pytest.raises(ValueError, match=r"loss\.name must be one of"):
        config(loss={"name": "berhu2"})
    model = build_model("lightweight", num_classes=0)
    with pytest.raises(ValueError, match=r"not loss\.args"):
        build_objective(config(loss={"name": "multiscale", "args": {"x": 1}}), model)


def test_poly_schedule_follows_paper_b():
    cfg = config(optim={"scheduler": "poly", "poly_power": 0.9}, train={"epochs": 2})
    assert lr_factor(cfg, 0, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 5, 10) == pytest.approx((1 - 5 / 20) ** 0.9)
    assert lr_factor(cfg, 19, 10) == pytest.approx((1 / 20) ** 0.9)
    assert lr_factor(cfg, 25, 10) == 0.0


class _WithTaskWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1)
        self.log_vars = nn.Parameter(torch.zeros(2))

    def no_weight_decay_parameters(self) -> list[str]:
        return ["log_vars"]


def test_frozen_parameters_leave_the_optimiser_and_exempt_ones_get_no_weight_decay():
    model = _WithTaskWeights()
    assert freeze_parameters(model, ["body."]) == 2
    optimizer = build_optimizer(config(optim={"weight_decay": 0.1}), model)
    groups = [(g["weight_decay"], {id(p) for p in g["params"]}) for g in optimizer.param_groups]
    assert groups == [
        (0.1, {id(model.head.weight), id(model.head.bias)}),
        (0.0, {id(model.log_vars)}),
    ]
    with pytest.raises(ValueError, match="top-level modules are body, head, log_vars"):
        freeze_parameters(model, ["encoder."])
    freeze_parameters(model, ["head.", "log_vars"])
    with pytest.raises(ValueError, match="every parameter is frozen"):
        build_optimizer(config(), model)


def _weights_after_one_step(tmp_path: Path, name: str, batch: int, accumulate: int) -> dict:
    cfg = config(
        loss={"name": "test_l1_frozen_bn"},
        optim={"name": "sgd", "momentum": 0.0},
        train={"batch_size": batch, "accumulate_steps": accumulate},
    )
    result = train(cfg, tmp_path / name, show_progress=False)
    assert result.progress.global_step == 1
    model, _ = load_model(result.final_checkpoint)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_accumulated_micro_batches_equal_one_large_batch(tmp_path):
    whole = _weights_after_one_step(tmp_path, "whole", batch=4, accumulate=1)
    split = _weights_after_one_step(tmp_path, "split", batch=2, accumulate=2)
    initial = build_model("lightweight", num_classes=14, min_depth=0.5, max_depth=10.0)
    moved = 0
    for key, value in whole.items():
        torch.testing.assert_close(split[key], value, rtol=1e-5, atol=1e-6)
        if value.is_floating_point() and not torch.equal(value, initial.state_dict()[key]):
            moved += 1
    assert moved > 10  # the step really changed the weights


def test_two_stage_recipe_runs_both_stages_then_skips_them(tmp_path, capsys):
    stages = [
        {"name": "stage1", "set": {}},
        {"name": "stage2", "set": {"train.freeze": ["encoder."], "optim.lr": 0.05}},
    ]
    cfg = config(stages=stages)
    assert stage_config(cfg, 1).train.freeze == ["encoder."]
    assert stage_config(cfg, 1).optim.lr == 0.05 and stage_config(cfg, 0).optim.lr == 0.01
    run = tmp_path / "two"
    result = train(cfg, run, show_progress=False)
    assert result.final_checkpoint == run / "final.safetensors"
    first, _ = load_model(run / "stage1" / "final.safetensors")
    second, _ = load_model(run / "stage2" / "final.safetensors")
    top, _ = load_model(run / "final.safetensors")
    s1, s2, s_top = first.state_dict(), second.state_dict(), top.state_dict()
    encoder = [k for k in s1 if k.startswith("encoder.") and s1[k].is_floating_point()]
    decoder = [k for k in s1 if k.startswith("decoder.") and k.endswith("weight")]
    # Stage 2 started from stage 1's weights and did not train the frozen encoder ...
    assert all(torch.equal(s1[k], s2[k]) for k in encoder if "running" not in k)
    # ... but did train the rest; the run's final checkpoint is stage 2's.
    assert any(not torch.equal(s1[k], s2[k]) for k in decoder)
    assert all(torch.equal(s2[k], s_top[k]) for k in s2)
    assert (run / "metrics.json").is_file()
    capsys.readouterr()
    again = train(cfg, run, show_progress=False)
    out = capsys.readouterr().out
    assert out.count("already finished, skipped") == 2
    assert again.progress.finished


def test_stage_overrides_are_checked():
    with pytest.raises(ValueError, match="stage 'bad'"):
        stage_config(config(stages=[{"name": "bad", "set": {"optim.lr_rate": 1}}]), 0)
    with pytest.raises(ValueError, match="plain directory name"):
        config(stages=[{"name": "../x", "set": {}}])
    with pytest.raises(ValueError, match="unique"):
        config(stages=[{"name": "a", "set": {}}, {"name": "a", "set": {}}])


def test_random_crop_cuts_training_windows_and_is_checked():
    from training.data import SeededAugmentation, make_dataset, training_augmentations

    cfg = config(data={"width": 96, "height": 64, "random_crop": [64, 32]})
    data = make_dataset(cfg.data, "train", length=2)
    crops = SeededAugmentation(data, training_augmentations(cfg.data), seed=0)
    whole, cropped = data[0], crops[0]
    assert cropped.image.shape == (32, 64, 3) and whole.image.shape == (64, 96, 3)
    # The window is a piece of the whole frame, with the principal point moved with it.
    found = [
        (y, x)
        for y in range(33)
        for x in range(33)
        if np.array_equal(whole.depth[y : y + 32, x : x + 64], cropped.depth)
    ]
    assert found
    y0, x0 = found[0]
    assert cropped.intrinsics.cx == pytest.approx(whole.intrinsics.cx - x0)
    assert cropped.intrinsics.cy == pytest.approx(whole.intrinsics.cy - y0)
    with pytest.raises(ValueError, match="random_crop"):
        config(data={"width": 96, "height": 64, "random_crop": [128, 32]})


def test_random_scale_zooms_training_frames_with_the_lens_and_is_checked():
    from training.data import SeededAugmentation, make_dataset, training_augmentations

    cfg = config(data={"width": 96, "height": 64, "random_scale": [1.2, 1.5], "augment": False})
    data = make_dataset(cfg.data, "train", length=3)
    zoomed = SeededAugmentation(data, training_augmentations(cfg.data), seed=0)
    for index in range(3):
        whole, view = data[index], zoomed[index]
        assert view.image.shape == whole.image.shape == (64, 96, 3)
        factor = view.intrinsics.fx / whole.intrinsics.fx
        assert 1.2 - 0.02 <= factor <= 1.5 + 0.02  # rounding of the enlarged size
        assert view.intrinsics.fy / whole.intrinsics.fy == pytest.approx(factor, rel=0.03)
        # metric depth is resampled, not rescaled: every value is one of the frame's
        assert np.isin(view.depth[view.valid], whole.depth[whole.valid]).all()
    with pytest.raises(ValueError, match="random_scale"):
        config(data={"random_scale": [0.8, 1.2]})
    with pytest.raises(ValueError, match="random_scale"):
        config(data={"random_scale": [1.5, 1.2]})


def test_aspect_sizes_give_each_batch_one_unsqueezed_input_size_drawn_reproducibly():
    from training.data import BatchAspect, make_collate, make_dataset
    from training.data.augment import aspect_window

    assert aspect_window(256, 192, 16 / 9) == (256, 144)
    assert aspect_window(256, 192, 1.0) == (192, 192)
    assert aspect_window(256, 192, 4 / 3) == (256, 192)
    sizes = [[96, 64], [64, 64], [96, 32]]
    cfg = config(data={"width": 96, "height": 72, "aspect_sizes": sizes})
    data = make_dataset(cfg.data, "train", length=12)
    batcher = BatchAspect(make_collate((0.5,) * 3, (0.25,) * 3), sizes, seed=0)
    drawn = set()
    for start in range(0, 12, 2):
        samples = [data[start], data[start + 1]]
        batch = batcher(samples)
        (width, height), _ = batcher.size_for(samples)
        drawn.add((width, height))
        assert batch["image"].shape == (2, 3, height, width)
        assert batch["depth"].shape == (2, 1, height, width)
        assert batch["labels"].shape == (2, height, width)
        k = batch["K"]
        # the window has the input's aspect ratio: square pixels stay square
        assert torch.allclose(k[:, 0, 0], k[:, 1, 1], rtol=0.03)
        assert (k[:, 0, 0] >= data[start].intrinsics.fx * min(width / 96, height / 72) - 1).all()
        again = batcher(samples)  # the same batch draws the same size and windows
        assert torch.equal(again["image"], batch["image"])
    assert len(drawn) >= 2  # 6 batches, 3 sizes: drawn per batch, not once
    for bad in ([], [[96]], [[96, 0]], [[96.5, 64]]):
        with pytest.raises(ValueError, match="aspect_sizes"):
            config(data={"aspect_sizes": bad})


def test_training_with_aspect_sizes_runs_and_refuses_sizes_off_the_input_multiple(tmp_path):
    cfg = config(data={"aspect_sizes": [[96, 64], [64, 32]]})
    result = train(cfg, tmp_path / "aspect", show_progress=False)
    assert result.progress.global_step == 1
    # loaded larger than every aspect size: the windows are shrunk, never enlarged
    from training.trainer.loop import training_split

    loaded = config(data={"aspect_sizes": [[64, 64], [96, 64]], "train_load_size": [128, 96]})
    assert training_split(loaded)[0].image.shape == (96, 128, 3)
    assert training_split(cfg)[0].image.shape == (64, 64, 3)
    result = train(loaded, tmp_path / "loaded", show_progress=False)
    assert result.progress.global_step == 1
    with pytest.raises(ValueError, match=r"needs data\.aspect_sizes"):
        config(data={"train_load_size": [128, 96]})
    with pytest.raises(ValueError, match="train_load_size must be"):
        config(data={"aspect_sizes": [[64, 64]], "train_load_size": [128]})
    with pytest.raises(ValueError, match=r"not multiples of lightweight's input multiple 32"):
        train(config(data={"aspect_sizes": [[80, 64]]}), tmp_path / "odd", show_progress=False)


def test_a_run_saved_before_new_keys_existed_still_resumes(tmp_path):
    from training.config import config_to_dict
    from training.trainer.run_dir import check_resume_config

    cfg = config()
    saved = config_to_dict(cfg)
    for key in ("accumulate_steps", "freeze"):
        del saved["train"][key]  # a run written before these keys existed
    del saved["data"]["random_crop"]
    del saved["data"]["random_scale"]
    del saved["data"]["aspect_sizes"]
    del saved["data"]["train_load_size"]
    del saved["data"]["object_paste"]
    check_resume_config(cfg, saved, tmp_path)
    with pytest.raises(ValueError, match=r"train\.accumulate_steps: 1 -> 2"):
        check_resume_config(config(train={"accumulate_steps": 2}), saved, tmp_path)
