"""Training pipeline end to end: config, train -> eval -> export, crash + resume, teacher, bundle.

Runs the real trainer on tiny synthetic data (64x64 images, a few dozen steps, one thread).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from depth_perception import cli
from depth_perception.checkpoint import DatasetRef, load_checkpoint, load_model
from depth_perception.config import PerceptionConfig
from depth_perception.runtime import load_pipeline
from training.config import CONFIG_DIR, config_from_dict, load_config, save_config
from training.tools.teacher import DepthCorrectionLUT
from training.trainer import STATE_FILE, ResumableSampler, train
from training.trainer.state import load_train_state

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "name": "tiny",
    "model": {"name": "lightweight"},
    "data": {
        "dataset": "synthetic",
        "family": "indoor",
        "width": 64,
        "height": 64,
        "train_length": 32,
        "val_length": 8,
        "num_workers": 0,
    },
    "optim": {"lr": 0.002, "warmup_steps": 2},
    "train": {
        "epochs": 2,
        "batch_size": 4,
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "checkpoint_every_steps": 3,
        "log_every_steps": 1,
        "image_every_steps": 4,
        "val_batches": 2,
    },
    "eval": {"mae_bin_size": 1.0},
}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _write_config(path: Path, **sections) -> Path:
    data = json.loads(json.dumps(TINY))
    for section, values in sections.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run through the CLI, shared by the tests that need a checkpoint."""
    tmp = tmp_path_factory.mktemp("run")
    config = _write_config(tmp / "tiny.yaml")
    run_dir = tmp / "run"
    threads = torch.get_num_threads()
    try:
        rc = cli.main(
            [
                "train",
                "--config",
                str(config),
                "--run-dir",
                str(run_dir),
                "--no-progress",
                "--set",
                "optim.lr=0.003",
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return run_dir


# ---------------------------------------------------------------------------------------------
# configuration


def test_every_recipe_loads():
    recipes = sorted(CONFIG_DIR.glob("*.yaml"))
    assert {p.stem for p in recipes} >= {
        "lightweight_kitti",
        "lightweight_synthetic_cpu",
        "lightweight_synthetic_indoor",
        "lightweight_synthetic_road",
    }
    for path in recipes:
        cfg = load_config(path)
        assert cfg.name == path.stem
    paper = load_config("lightweight_kitti")
    assert (paper.optim.lr, paper.optim.lr_decay, paper.train.batch_size) == (0.01, 0.9, 8)
    assert (paper.loss.depth_weight, paper.loss.seg_weight) == (0.25, 0.75)
    assert paper.model.args["min_depth"] == 4.0 and paper.model.args["max_depth"] == 80.0


def test_overrides_are_typed_and_checked(tmp_path):
    path = _write_config(tmp_path / "c.yaml")
    cfg = load_config(
        path,
        [
            "optim.lr=1e-4",
            "train.epochs=3",
            "model.args.num_classes=14",
            "train.max_minutes=null",
            "optim.betas=[0.8, 0.9]",
        ],
    )
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and cfg.model.args == {"num_classes": 14}
    assert cfg.optim.betas == (0.8, 0.9)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['lr_rate'\]"):
        load_config(path, ["optim.lr_rate=0.1"])
    with pytest.raises(ValueError, match=r"train\.epochs: expected an integer"):
        load_config(path, ["train.epochs=two"])
    with pytest.raises(ValueError, match=r"optim\.name must be one of"):
        load_config(path, ["optim.name=rmsprop"])
    with pytest.raises(ValueError, match=r"section\.key=value"):
        load_config(path, ["optim.lr"])
    # The resolved config round-trips through YAML.
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


def test_resumable_sampler_skip_continues_the_same_order():
    data = list(range(20))
    full = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    full.set_epoch(2)
    order = list(full)
    resumed = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    resumed.set_epoch(2)
    resumed.set_skip(8)
    assert list(resumed) == order[8:] and len(resumed) == 12
    other_epoch = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != order


# ---------------------------------------------------------------------------------------------
# train -> eval -> export


def test_train_writes_a_complete_run(trained_run):
    run = trained_run
    for name in ("config.yaml", STATE_FILE, "curves.png", "metrics.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    model, meta = load_model(run / "final")
    assert not model.training
    assert meta.model == "lightweight"
    assert (meta.input_width, meta.input_height) == (64, 64)
    assert (meta.min_depth, meta.max_depth) == (0.5, 10.0)  # from the indoor family
    assert len(meta.class_names) == 14 and meta.class_names[0] == "wall"
    assert meta.provenance.steps == 16 and meta.provenance.stop_reason == "epochs"
    assert meta.provenance.command.startswith("depth-perception train --config ")
    assert "optim.lr=0.003" in meta.provenance.command
    assert set(meta.provenance.metrics) >= {"abs_rel", "rmse", "a1", "miou"}
    assert load_config(run / "config.yaml").optim.lr == pytest.approx(0.003)
    state = load_train_state(run / STATE_FILE)
    assert state.progress.finished and state.progress.global_step == 16
    losses = [h["loss"] for h in state.progress.history if "loss" in h]
    assert len(losses) == 16 and all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < np.mean(losses[:4])  # it learns something
    lrs = [h["lr"] for h in state.progress.history if "lr" in h]
    assert lrs[0] == pytest.approx(0.003 / 2)  # warm-up step 1 of 2
    assert lrs[-1] == pytest.approx(0.003 * 0.9)  # second epoch: decayed by 10 %
    curves = (run / "curves.png").read_bytes()
    assert curves[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_runs_checkpoints_are_trained_and_the_node_says_so(trained_run):
    # Bug (b) of issue 15: the trainer marked its own checkpoints untrained, so the README's
    # workflow (train, then weights:=.../best.safetensors) made the node warn "UNTRAINED".
    for name in ("last", "best", "final"):
        meta, _ = load_checkpoint(trained_run / name)
        prov = meta.provenance
        assert prov.trained is True and not prov.bundled, name
        assert prov.created_by == "depth-perception train" and prov.recipe == "tiny"
        assert prov.datasets == (DatasetRef("synthetic", "indoor", "train"),)
        assert prov.steps == 16 and prov.parent == ""
        if shutil.which("git") and (REPO / ".git").exists():
            assert prov.git_commit, "a run inside a git checkout records its commit"
    loaded = load_pipeline(
        PerceptionConfig(weights=str(trained_run / "best.safetensors"), backend="torch")
    )
    try:
        assert loaded.description.trained
        assert loaded.diagnostic_values()["weights_trained"] is True
        assert not [w for w in loaded.warnings if "UNTRAINED" in w], loaded.warnings
    finally:
        loaded.close()


def test_eval_cli_prints_the_metrics_table(trained_run, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    rc = cli.main(
        [
            "eval",
            "--checkpoint",
            str(trained_run / "final.safetensors"),
            "--dataset",
            "synthetic",
            "--split",
            "val",
            "--length",
            "8",
            "--mae-bin-size",
            "1",
            "--json",
            str(out_json),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if "abs_rel" in line).split()
    assert header == [
        "abs_rel",
        "sq_rel",
        "rmse",
        "rmse_log",
        "log10",
        "silog",
        "a1",
        "a2",
        "a3",
        "miou",
    ]
    assert "MAE per depth bin" in text
    data = json.loads(out_json.read_text())
    assert data["num_images"] == 8 and not data["median_scaling"]
    assert 0.0 <= data["metrics"]["a1"] <= 1.0 and data["metrics"]["rmse"] > 0
    # Same data, same protocol as the validation at the end of training.
    final = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert data["metrics"]["rmse"] == pytest.approx(final["rmse"], rel=1e-5)


def test_export_cli_writes_a_checked_onnx(trained_run, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    rc = cli.main(
        ["export", "--checkpoint", str(trained_run / "final"), "--output", str(onnx_path)]
    )
    assert rc == 0 and onnx_path.is_file()
    assert "parity check passed" in capsys.readouterr().out
    from depth_perception.export import read_onnx_metadata

    meta = read_onnx_metadata(onnx_path)
    assert meta.model == "lightweight" and meta.input_width == 64
    try:
        import tensorrt  # noqa: F401

        has_trt = torch.cuda.is_available()
    except ImportError:
        has_trt = False
    if not has_trt:
        rc = cli.main(
            [
                "export",
                "--checkpoint",
                str(trained_run / "final"),
                "--output",
                str(onnx_path),
                "--tensorrt",
                "--no-check",
            ]
        )
        assert rc == 3
        assert "no TensorRT engine built" in capsys.readouterr().out


def test_cli_reports_config_errors_without_traceback(capsys):
    assert cli.main(["train", "--config", "no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "depth-perception train: error: no config file no_such_recipe" in err
    assert "lightweight_synthetic_cpu" in err  # lists the recipes


def test_help_of_every_subcommand(capsys):
    for command in ("train", "eval", "export", "teacher", "bundle", "adapt"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        assert "usage: depth-perception " + command in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# crash and resume


def _kill_after_first_checkpoint(config: Path, run_dir: Path) -> int:
    env = _env_with_repo()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "depth_perception.cli",
            "train",
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state = run_dir / STATE_FILE
    deadline = time.monotonic() + 120
    try:
        while not state.exists():
            if proc.poll() is not None:
                raise AssertionError(f"training exited early: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint within 120 s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    return proc.returncode


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = _write_config(tmp_path / "c.yaml", train={"epochs": 3, "checkpoint_every_steps": 2})
    crashed = tmp_path / "crashed"
    assert _kill_after_first_checkpoint(config, crashed) == -signal.SIGKILL
    state = load_train_state(crashed / STATE_FILE)  # the state survived intact
    assert not state.progress.finished
    assert 0 < state.progress.global_step < 24 and state.progress.step_in_epoch > 0
    killed_at = state.progress.global_step

    cfg = load_config(config)
    resumed = train(cfg, crashed, show_progress=False)
    reference = train(cfg, tmp_path / "reference", show_progress=False)
    assert resumed.progress.global_step == reference.progress.global_step == 24
    assert resumed.progress.finished and resumed.progress.epoch == 3

    def losses(progress):
        return [(h["step"], h["loss"]) for h in progress.history if "loss" in h]

    # Same steps, same data order, same optimiser state: the loss curve is identical, also
    # after the step where the first process was killed.
    assert [s for s, _ in losses(resumed.progress)] == list(range(1, 25))
    assert losses(resumed.progress) == losses(reference.progress)
    assert len(losses(resumed.progress)) > killed_at
    _, a = load_checkpoint(crashed / "final")
    _, b = load_checkpoint(tmp_path / "reference" / "final")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # Every file of the crashed run is readable; no temporary file is left.
    for stem in ("last", "best", "final"):
        load_checkpoint(crashed / stem)
    assert not list(crashed.glob(".*.tmp"))


def _env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_ddp_two_cpu_processes_under_torchrun(tmp_path):
    config = _write_config(tmp_path / "c.yaml")
    run_dir = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "depth_perception.cli",
            "train",
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        cwd=REPO,
        env=_env_with_repo(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batch 4 x 2" in proc.stdout
    # Each rank reads half of the 32 samples: 4 steps of 2 x 4 per epoch.
    meta, _ = load_checkpoint(run_dir / "final")
    assert meta.provenance.steps == 8
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0 only
    assert "Grad strides" not in proc.stderr


def test_time_budget_stops_cleanly_with_a_final_checkpoint(tmp_path):
    cfg = config_from_dict({**TINY, "train": {**TINY["train"], "max_minutes": 1e-6}})
    result = train(cfg, tmp_path / "budget", show_progress=False)
    assert result.progress.stop_reason == "time_budget" and result.progress.finished
    assert result.progress.global_step == 1
    meta, _ = load_checkpoint(tmp_path / "budget" / "final")
    assert meta.provenance.stop_reason == "time_budget" and "rmse" in meta.provenance.metrics
    # Running it again does not train further; with a larger budget it continues.
    again = train(cfg, tmp_path / "budget", show_progress=False)
    assert again.progress.global_step == 1
    cfg.train.max_minutes = None
    more = train(cfg, tmp_path / "budget", show_progress=False)
    assert more.progress.global_step == 16 and more.progress.stop_reason == "epochs"


def test_existing_run_with_another_model_is_refused(trained_run, tmp_path):
    cfg = load_config(trained_run / "config.yaml", ["model.args.decoder_blocks=3"])
    with pytest.raises(ValueError, match="different 'model' section"):
        train(cfg, trained_run, show_progress=False)


# ---------------------------------------------------------------------------------------------
# teacher labels and the correction table


def test_lut_removes_a_known_distance_bias():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 40.0, size=(200, 300))
    teacher = 1.1 * gt + 0.3  # over-estimates, more with distance (like the paper's Fig. 2)
    sparse = rng.random(gt.shape) < 0.05  # LiDAR-like sparse ground truth
    lut = DepthCorrectionLUT.fit(teacher, np.where(sparse, gt, 0.0), bin_size=1.0)
    # Mean error per 1 m teacher bin: gt - teacher = -(0.1 t + 0.3) / 1.1, linear in t, so the
    # bin mean equals it at the bin's mean teacher depth.
    assert lut.filled.sum() == 44  # teacher depths 1.4..44.3 m
    depths = lut.bin_depths[lut.filled]
    np.testing.assert_allclose(lut.mean_error[lut.filled], -(0.1 * depths + 0.3) / 1.1, atol=1e-9)
    assert np.all(np.abs(depths - lut.bin_centres[lut.filled]) < 0.5)
    corrected = lut.apply(teacher)
    inner = (gt > 2.0) & (gt < 35.0)
    assert np.abs(teacher - gt)[inner].mean() > 1.0
    assert np.abs(corrected - gt)[inner].max() < 1e-6 + 1e-3
    assert lut.apply(np.array([0.0, np.nan])).tolist()[0] == 0.0  # invalid stays invalid
    again = DepthCorrectionLUT.from_dict(json.loads(json.dumps(lut.to_dict())))
    np.testing.assert_allclose(again.apply(teacher), corrected)


def test_teacher_cli_writes_pseudo_labels_that_train(trained_run, tmp_path):
    out = tmp_path / "pseudo"
    rc = cli.main(
        [
            "teacher",
            "--checkpoint",
            str(trained_run / "final"),
            "--output",
            str(out),
            "--split",
            "train",
            "--length",
            "8",
            "--fit-lut",
        ]
    )
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 8 and manifest["lut"] == "lut.json"
    with np.load(out / "000003.npz") as data:
        assert data["depth"].shape == (64, 64) and data["labels"].dtype == np.uint8
        assert (data["depth"] > 0).all() and data["labels"].max() < 14
        assert "depth_teacher" in data
    cfg = config_from_dict(
        {
            **TINY,
            "data": {**TINY["data"], "train_length": 8, "pseudo_labels": str(out)},
            "train": {**TINY["train"], "epochs": 1},
        }
    )
    result = train(cfg, tmp_path / "student", show_progress=False)
    assert result.progress.global_step == 2


def test_bundle_marks_weights_trained(trained_run, tmp_path, capsys):
    stem = tmp_path / "weights" / "lightweight"
    rc = cli.main(["bundle", "--checkpoint", str(trained_run / "final"), "--output", str(stem)])
    assert rc == 0
    meta, _ = load_checkpoint(stem)
    assert meta.provenance.trained is True and meta.provenance.bundled
    assert meta.provenance.metrics["rmse"] > 0
    assert meta.provenance.command.startswith("depth-perception train")
    assert meta.provenance.bundle_command.startswith("depth-perception bundle --checkpoint")
    assert "| rmse |" in stem.with_suffix(".md").read_text()
    # The parity-checked ONNX export beside the weights: ONNX Runtime runs them without torch.
    from depth_perception.checkpoint_meta import read_checkpoint_meta
    from depth_perception.onnx_files import find_onnx

    info = read_checkpoint_meta(stem)
    onnx = find_onnx(info, info.meta.input_width, info.meta.input_height)
    assert onnx is not None and onnx.parent == stem.parent
    assert "ONNX Runtime vs torch, largest difference" in capsys.readouterr().out
