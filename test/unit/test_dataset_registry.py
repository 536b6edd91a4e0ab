"""The one data set table: every loader can be named by a recipe and built the same way."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

import training.data as data
from training.config import DataConfig
from training.data import fixtures as fx
from training.data.base import SampleDataset
from training.data.registry import DATASET_SPECS, DatasetSpec, _index, get_dataset_spec


def test_every_entry_is_a_sample_loader_exported_by_class_name() -> None:
    assert len({s.name for s in DATASET_SPECS}) == len(DATASET_SPECS)
    for spec in DATASET_SPECS:
        cls = spec.load_class()
        assert issubclass(cls, SampleDataset), spec.name
        params = inspect.signature(cls).parameters
        assert "transform" in params, spec.name
        # training.data exports the same class under its own name: no second table.
        assert getattr(data, spec.class_name) is cls
        assert spec.name in data.DATASETS
    assert "rosbag" in data.DATASETS  # recordings are selectable by a recipe


def test_unknown_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"(?s)unknown data set 'nyu'.*nyu_depth_v2"):
        get_dataset_spec("nyu")
    with pytest.raises(ValueError, match=r"unknown data set"):
        data.make_dataset(DataConfig(dataset="nyu"), "train")
    twice = DatasetSpec("x", "training.data.synthetic:SyntheticDataset", "a", rendered=True)
    with pytest.raises(ValueError, match="registered twice"):
        _index([twice, twice])
    with pytest.raises(AttributeError):
        data.NoSuchDataset  # noqa: B018


def test_make_dataset_builds_a_rosbag_from_recipe_fields(tmp_path: Path) -> None:
    bag = fx.write_rosbag_fixture(tmp_path / "bag", depth_encoding="32FC1")
    cfg = DataConfig(
        dataset="rosbag",
        root=str(bag.path),
        width=16,
        height=12,
        options={"rgb_topic": bag.topics["rgb"], "depth_topic": bag.topics["depth"]},
    )
    ds = data.make_dataset(cfg, "train")
    assert len(ds) == 3 and len(data.make_dataset(cfg, "val")) == 1  # last 10 %, at least 1
    s = ds[1]
    assert s.image.shape == (12, 16, 3)
    # Resized to the input size with nearest depth; the intrinsics follow the resize.
    assert s.intrinsics == bag.intrinsics.scaled(16, 12)
    np.testing.assert_allclose(s.depth[5, 7], bag.depth_m[1][11, 15], rtol=1e-6)
    assert data.make_dataset(cfg, "train", length=2).class_names == ()
    with pytest.raises(ValueError, match="split must be"):
        data.make_dataset(cfg, "test")
    bad = DataConfig(dataset="rosbag", root=str(bag.path), options={"rgb_topics": "/x"})
    with pytest.raises(ValueError, match=r"does not take \['rgb_topics'\].*rgb_topic"):
        data.make_dataset(bad, "train")


def test_the_command_line_reads_the_table_without_importing_torch() -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    code = (
        "import sys\n"
        "from training.tools.cli_args import DATASET_CHOICES\n"
        "from training.data.registry import DATASETS\n"
        "assert DATASET_CHOICES is DATASETS, DATASET_CHOICES\n"
        "heavy = sorted({'torch', 'cv2', 'h5py', 'scipy', 'rosbags'} & set(sys.modules))\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo, env=env
    ).stdout
    assert out.strip() == "[]"
