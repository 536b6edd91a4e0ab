"""Test-wide isolation: ROS traffic on a private domain and localhost, logs and caches in tmp."""

import os
import random
import tempfile

# Set before anything imports rclpy, so every node of the test run (and every child process,
# which inherits the environment) uses them.
_TMP = tempfile.mkdtemp(prefix="depth_perception_test_")
os.environ["ROS_LOG_DIR"] = os.path.join(_TMP, "ros_log")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["DEPTH_PERCEPTION_CACHE"] = os.path.join(_TMP, "cache")


# ---------------------------------------------------------------------------------------------
# Test tiers. `make check` runs `-m "not slow and not integration"` (under a minute on 2 cores);
# `make test` and CI run everything. `integration` tests start ROS 2 node processes; `slow` ones
# are marked by the rules below (model size) or named in KNOWN_SLOW / SLOW_FIXTURES.

# Like timm's CI, which skips models above a size: a test parametrised over a registered model
# with more parameters than this runs in the slow tier only, and so does every test of a module
# named after a model family (test_<prefix>.py) whose registered models are all that large.
SLOW_MODEL_PARAMETERS = 5_000_000

# Tests slow for another reason than a large model: file name -> test name -> why. Names,
# not marks in the files, so that the tiers can be read (and changed) in one place.
KNOWN_SLOW: dict[str, dict[str, str]] = {
    "test_trainer.py": {
        "test_ddp_two_cpu_processes_under_torchrun": "2 training processes",
        "test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run": "3 runs, one killed",
        "test_time_budget_stops_cleanly_with_a_final_checkpoint": "a training run",
    },
    "test_multitasknet.py": {
        "test_two_training_steps_on_the_synthetic_recipe": "116.7 M parameters at 224x224",
        "test_forward_full_resolution_positive_depth_and_log_depth_in_training": "116.7 M",
        "test_parameter_count_matches_the_reference_code": "builds 116.7 M parameters",
    },
    # ONNX export traces the model (seconds each); the fast tier keeps one export through the
    # node's loader (test_predictor_backends.py::test_load_pipeline_end_to_end_on_cpu).
    "test_model_contract.py": {"test_onnx_export_parity": "ONNX export of every model"},
    "test_lightweight.py": {
        "test_onnx_parity_with_non_trivial_heads": "ONNX export",
        "test_paper_scales_at_1056x320": "the paper's full resolution",
        "test_detached_decoders_reuse_l_weights": "builds and runs four models",
    },
    "test_checkpoint.py": {"test_export_from_checkpoint_carries_metadata": "ONNX export"},
    "test_predictor_backends.py": {"test_onnxruntime_matches_torch": "ONNX export"},
    "test_sfm_losses.py": {
        "test_sfm_checkpoint_terms": "SfM objective over held-out sequences",
        "test_gradient_stage_follows_the_checkpoint": "SfM objective over held-out sequences",
    },
    "test_infer_tool.py": {
        "test_infer_writes_panels_depth_files_and_video": "encodes a video",
    },
    "test_packaging.py": {
        "test_pip_install_into_a_prefix": "pip install",
        "test_colcon_build_gives_the_ros_layout": "colcon build",
    },
}
# Fixtures whose set-up is itself slow: every test using one is slow.
SLOW_FIXTURES: dict[str, str] = {
    "trained_run": "a training run through the CLI",
    "onnx_path": "ONNX export",
    "ort_pipeline": "ONNX export",
}


def _model_parameter_counts() -> dict[str, int]:
    """Parameters of every registered model with its default arguments, counted on the meta
    device (no memory, no initialisation: ~0.1 s per model)."""
    import warnings

    import torch

    from depth_perception.models import build_model, list_models

    counts = {}
    for name in list_models():
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # e.g. densedepth201's "no ImageNet weights"
            model = build_model(name)
        counts[name] = sum(p.numel() for p in model.parameters())
    return counts


def _large_models(item, counts: dict[str, int]) -> list[str]:
    """Registered models above the threshold among ``item``'s parameter values."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    return [
        value
        for value in callspec.params.values()
        if isinstance(value, str) and counts.get(value, 0) > SLOW_MODEL_PARAMETERS
    ]


def _large_families(counts: dict[str, int]) -> set[str]:
    """Module names ``test_<prefix>.py`` whose models (names starting with prefix) are large."""
    prefixes = {name[:end] for name in counts for end in range(2, len(name) + 1)}
    return {
        f"test_{prefix}.py"
        for prefix in prefixes
        if all(c > SLOW_MODEL_PARAMETERS for n, c in counts.items() if n.startswith(prefix))
    }


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        f"slow: minutes on 2 CPU cores (models over {SLOW_MODEL_PARAMETERS:,} parameters, "
        "training runs in subprocesses, builds); left out of `make check`",
    )


def pytest_collection_modifyitems(config, items) -> None:
    import pytest

    counts = _model_parameter_counts()
    large_families = _large_families(counts)
    for item in items:
        if "ros" in item.fixturenames and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)  # a `ros` fixture: real node processes
        if item.path.name in large_families or _large_models(item, counts):
            item.add_marker(pytest.mark.slow)
        named = getattr(item, "originalname", item.name) in KNOWN_SLOW.get(item.path.name, {})
        if named or any(f in SLOW_FIXTURES for f in item.fixturenames):
            item.add_marker(pytest.mark.slow)
