"""Tests of self-describing checkpoints and checkpoint -> ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from depth_perception.checkpoint import (
    FORMAT_VERSION,
    CheckpointMeta,
    DatasetRef,
    Provenance,
    checkpoint_paths,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from depth_perception.export import export_to_onnx_from_checkpoint, read_onnx_metadata
from depth_perception.models import build_model

torch.set_num_threads(2)

ARGS = {"num_classes": 3, "min_depth": 0.5, "max_depth": 10.0}
CLASSES = ["floor", "wall", "object"]


def make_model(name: str = "lightweight_s", **overrides) -> tuple[nn.Module, CheckpointMeta]:
    torch.manual_seed(0)
    args = {**ARGS, **overrides}
    model = build_model(name, **args)
    # non-default BN statistics, so that a checkpoint losing buffers would be noticed
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    model.eval()
    meta = CheckpointMeta.for_model(
        name,
        model,
        args,
        input_size=(128, 64),
        class_names=CLASSES[: args["num_classes"]],
        extra={"epoch": 3, "metrics": {"rmse": 0.5}, "command": "train.py --epochs 3"},
    )
    return model, meta


@pytest.fixture
def saved(tmp_path: Path) -> tuple[nn.Module, CheckpointMeta, Path]:
    model, meta = make_model()
    path = save_checkpoint(tmp_path / "best", model, meta)
    return model, meta, path


def edit_json(path: Path, **changes) -> None:
    meta_path = checkpoint_paths(path)[1]
    data = json.loads(meta_path.read_text())
    data.update(changes)
    meta_path.write_text(json.dumps(data))


def test_round_trip_rebuilds_same_model(saved: tuple, tmp_path: Path) -> None:
    model, meta, path = saved
    assert path == tmp_path / "best.safetensors"
    assert (tmp_path / "best.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.safetensors"]
    assert all((tmp_path / n).stat().st_mode & 0o444 == 0o444 for n in ("best.json", path.name))
    loaded, loaded_meta = load_model(tmp_path / "best")
    assert loaded_meta == meta
    assert loaded_meta.metric is True and loaded_meta.min_depth == 0.5
    assert loaded_meta.mean == [0.485, 0.456, 0.406]
    assert loaded.class_names == tuple(CLASSES)
    assert loaded.training is False
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        expected, actual = model(x), loaded(x)
    torch.testing.assert_close(actual["depth"], expected["depth"], rtol=0, atol=0)
    torch.testing.assert_close(actual["seg_logits"], expected["seg_logits"], rtol=0, atol=0)


def test_json_is_readable_metadata(saved: tuple, tmp_path: Path) -> None:
    data = json.loads((tmp_path / "best.json").read_text())
    assert data["model"] == "lightweight_s"
    assert data["model_args"] == ARGS
    assert (data["input_width"], data["input_height"]) == (128, 64)
    assert data["class_names"] == CLASSES
    assert data["format_version"] == FORMAT_VERSION
    assert data["extra"]["metrics"]["rmse"] == 0.5
    assert data["provenance"]["trained"] is None  # make_model does not say
    assert data["weights_file"] == "best.safetensors"
    assert len(data["weights_sha256"]) == 64


@pytest.mark.parametrize("form", ["best", "best.safetensors", "best.json"])
def test_any_path_form_loads(saved: tuple, tmp_path: Path, form: str) -> None:
    meta, state = load_checkpoint(tmp_path / form)
    assert meta.model == "lightweight_s"
    assert set(state) == set(saved[0].state_dict())
    assert all(t.device.type == "cpu" for t in state.values())


def test_directory_target_and_overwrite(tmp_path: Path) -> None:
    model, meta = make_model()
    path = save_checkpoint(tmp_path, model, meta)
    assert path == tmp_path / "lightweight_s.safetensors"
    with torch.no_grad():
        model.depth_heads[-1].bias.fill_(1.25)
    save_checkpoint(tmp_path, model, meta)
    _, state = load_checkpoint(path)
    assert state["depth_heads.1.bias"].item() == 1.25
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_wrappers_are_unwrapped(tmp_path: Path) -> None:
    model, meta = make_model()
    save_checkpoint(tmp_path / "wrapped", nn.DataParallel(model), meta)
    _, state = load_checkpoint(tmp_path / "wrapped")
    assert set(state) == set(model.state_dict())


def test_unserialisable_metadata_writes_nothing(tmp_path: Path) -> None:
    model, meta = make_model()
    meta.extra["bad"] = object()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "x", model, meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing", ["best.safetensors", "best.json"])
def test_missing_file_names_both(saved: tuple, tmp_path: Path, missing: str) -> None:
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_model(tmp_path / "best")
    assert "best.safetensors" in str(err.value) and "best.json" in str(err.value)


def test_corrupt_weights_detected_by_hash(saved: tuple, tmp_path: Path) -> None:
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"corrupt checkpoint .*SHA-256"):
        load_checkpoint(weights)


def test_corrupt_safetensors_without_hash(saved: tuple, tmp_path: Path) -> None:
    edit_json(tmp_path / "best", weights_sha256=None)
    (tmp_path / "best.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="corrupt checkpoint weights"):
        load_checkpoint(tmp_path / "best")


def test_corrupt_json(saved: tuple, tmp_path: Path) -> None:
    (tmp_path / "best.json").write_text('{"model": "lightweight_s", ')
    with pytest.raises(ValueError, match="corrupt checkpoint metadata"):
        load_checkpoint(tmp_path / "best")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mean": [0.5, 0.5]}, "mean and std"),
        ({"unknown_field": 1}, r"unknown keys \['unknown_field'\]"),
        ({"format_version": FORMAT_VERSION + 1}, "newer than this code supports"),
    ],
)
def test_invalid_metadata(saved: tuple, tmp_path: Path, changes: dict, message: str) -> None:
    edit_json(tmp_path / "best", **changes)
    with pytest.raises(ValueError, match=f"corrupt checkpoint metadata .*{message}"):
        load_checkpoint(tmp_path / "best")


def test_missing_metadata_key(saved: tuple, tmp_path: Path) -> None:
    meta_path = tmp_path / "best.json"
    data = json.loads(meta_path.read_text())
    del data["max_depth"]
    meta_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"missing keys \['max_depth'\]"):
        load_checkpoint(tmp_path / "best")


def test_wrong_number_of_classes(tmp_path: Path) -> None:
    model, meta = make_model("lightweight_xs", num_classes=19)
    meta.class_names = [f"c{i}" for i in range(19)]
    save_checkpoint(tmp_path / "city", model, meta)
    with pytest.raises(ValueError, match="checkpoint has 19 classes but model expects 13") as err:
        load_model(tmp_path / "city", num_classes=13)
    assert "seg_heads.0.weight: checkpoint (19, 32, 1, 1) vs model (13, 32, 1, 1)" in str(
        err.value
    )
    edit_json(tmp_path / "city", model_args={**ARGS, "num_classes": 13})
    with pytest.raises(ValueError, match="checkpoint has 19 classes but model expects 13"):
        load_model(tmp_path / "city")


def test_architecture_mismatch_names_keys(saved: tuple, tmp_path: Path) -> None:
    edit_json(tmp_path / "best", model="lightweight_xs")
    with pytest.raises(ValueError, match=r"unexpected keys: decoder\.1\."):
        load_model(tmp_path / "best")
    edit_json(tmp_path / "best", model="lightweight")
    with pytest.raises(ValueError, match=r"missing keys: decoder\.2\."):
        load_model(tmp_path / "best")


def test_unknown_model_in_checkpoint(saved: tuple, tmp_path: Path) -> None:
    edit_json(tmp_path / "best", model="no_such_model")
    with pytest.raises(ValueError, match="Unknown model 'no_such_model'"):
        load_model(tmp_path / "best")


def test_pretrained_encoder_path_is_not_replayed(tmp_path: Path) -> None:
    model, meta = make_model()
    meta.model_args["encoder_weights"] = str(tmp_path / "gone" / "imagenet.pth")
    save_checkpoint(tmp_path / "ft", model, meta)
    loaded, loaded_meta = load_model(tmp_path / "ft")
    assert loaded_meta.model_args["encoder_weights"].endswith("imagenet.pth")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_export_from_checkpoint_carries_metadata(saved: tuple, tmp_path: Path) -> None:
    _, meta, path = saved
    onnx_path = export_to_onnx_from_checkpoint(path, tmp_path / "onnx")
    assert onnx_path == tmp_path / "onnx" / "best.onnx"
    assert read_onnx_metadata(onnx_path) == meta


# --- provenance ---------------------------------------------------------------------------


def test_provenance_round_trips_typed(tmp_path: Path) -> None:
    model, meta = make_model()
    meta.provenance = Provenance(
        trained=True,
        recipe="tiny",
        datasets=(DatasetRef("synthetic", "indoor", "train"),),
        steps=16,
        epoch=2,
        train_seconds=3.5,
        stop_reason="epochs",
        metrics={"rmse": 0.25},
        parent="runs/a/final",
        created_by="depth-perception train",
        command="depth-perception train --config tiny.yaml",
        git_commit="0123abc",
    )
    save_checkpoint(tmp_path / "p", model, meta)
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["provenance"]["datasets"] == [
        {"name": "synthetic", "family": "indoor", "split": "train", "source": ""}
    ]
    loaded, _ = load_checkpoint(tmp_path / "p")
    assert loaded.provenance == meta.provenance
    assert isinstance(loaded.provenance.datasets[0], DatasetRef)


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        ({"trained": True, "epochs": 3}, r"provenance: unknown keys \['epochs'\]"),
        ({"trained": "yes"}, "provenance.trained must be true, false or null"),
        ({"datasets": [{"name": "kitti", "splits": "train"}]}, "provenance: .*splits"),
        ([1, 2], "provenance must be a JSON object"),
    ],
)
def test_invalid_provenance_is_a_clear_error(
    saved: tuple, tmp_path: Path, provenance: object, message: str
) -> None:
    edit_json(tmp_path / "best", provenance=provenance)
    with pytest.raises(ValueError, match=f"corrupt checkpoint metadata .*{message}"):
        load_checkpoint(tmp_path / "best")


def _write_v1(tmp_path: Path, name: str, extra: dict) -> Path:
    """A checkpoint in format 1's layout: no ``provenance``, flags in ``extra``."""
    model, meta = make_model()
    save_checkpoint(tmp_path / name, model, meta)
    meta_path = checkpoint_paths(tmp_path / name)[1]
    data = json.loads(meta_path.read_text())
    del data["provenance"]
    data["format_version"] = 1
    data["extra"] = extra
    meta_path.write_text(json.dumps(data))
    return tmp_path / name


V1_TRAINER_EXTRA = {
    "trained": False,  # what the format-1 trainer wrote into every checkpoint
    "recipe": "lightweight_synthetic_indoor",
    "epoch": 18,
    "global_step": 5991,
    "train_seconds": 3002.5,
    "command": "depth-perception train --config x.yaml",
    "dataset": {"name": "synthetic", "family": "indoor", "train_split": "train"},
    "metrics": {"rmse": 0.23},
    "stop_reason": "time_budget",
    "note": "kept",
}


def test_format_1_trainer_checkpoint_loads_as_trained(tmp_path: Path) -> None:
    path = _write_v1(tmp_path, "old_run", V1_TRAINER_EXTRA)
    model, meta = load_model(path)
    prov = meta.provenance
    assert meta.format_version == FORMAT_VERSION
    assert prov.trained is True and not prov.bundled
    assert prov.steps == 5991 and prov.epoch == 18 and prov.train_seconds == 3002.5
    assert prov.recipe == "lightweight_synthetic_indoor" and prov.stop_reason == "time_budget"
    assert prov.datasets == (DatasetRef("synthetic", "indoor", "train"),)
    assert prov.metrics == {"rmse": 0.23}
    assert prov.command == "depth-perception train --config x.yaml"
    assert meta.extra == {"note": "kept"}  # what provenance does not cover stays
    # Saved again, it is written in the current layout and reads back the same.
    save_checkpoint(tmp_path / "again", model, meta)
    assert load_checkpoint(tmp_path / "again")[0] == meta


def test_format_1_bundled_and_unflagged_checkpoints_load(tmp_path: Path) -> None:
    bundled = {
        **V1_TRAINER_EXTRA,
        "trained": True,
        "bundled_from": "runs/x/final",
        "bundle_command": "depth-perception bundle --checkpoint runs/x/final",
    }
    prov = load_checkpoint(_write_v1(tmp_path, "bundled", bundled))[0].provenance
    assert prov.trained is True and prov.bundled and prov.parent == "runs/x/final"
    assert prov.bundle_command.startswith("depth-perception bundle")
    assert prov.created_by == "depth-perception bundle"
    # No flag at all: not recorded (the node treats it as trained, as format 1 did).
    assert load_checkpoint(_write_v1(tmp_path, "bare", {}))[0].provenance == Provenance()
    # An explicit false with no recorded step is believed.
    untrained = load_checkpoint(_write_v1(tmp_path, "random", {"trained": False}))[0]
    assert untrained.provenance.trained is False
