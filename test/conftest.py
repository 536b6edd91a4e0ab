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
# are marked by the rule below (model size) or named in KNOWN_SLOW.

# Like timm's CI, which skips models above a size: a test parametrised over a registered model
# with more parameters than this runs in the slow tier only.
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
    "test_msm.py": {
        "test_onnx_export_parity_at_two_sizes": "240.9 M parameters, two exports",
        "test_encoder_weights_load_from_a_local_file": "a VGG16 state dict",
    },
}
# Fixtures whose set-up is itself slow: every test using one is slow.
SLOW_FIXTURES: dict[str, str] = {"trained_run": "a training run through the CLI"}


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


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        f"slow: minutes on 2 CPU cores (models over {SLOW_MODEL_PARAMETERS:,} parameters, "
        "training runs in subprocesses, builds); left out of `make check`",
    )


def pytest_collection_modifyitems(config, items) -> None:
    import pytest

    counts = None
    for item in items:
        if "ros" in item.fixturenames and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)  # a `ros` fixture: real node processes
        if getattr(item, "callspec", None) is not None:
            if counts is None:
                counts = _model_parameter_counts()
            if _large_models(item, counts):
                item.add_marker(pytest.mark.slow)
        named = getattr(item, "originalname", item.name) in KNOWN_SLOW.get(item.path.name, {})
        if named or any(f in SLOW_FIXTURES for f in item.fixturenames):
            item.add_marker(pytest.mark.slow)
