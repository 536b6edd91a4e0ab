"""Test-wide isolation: ROS traffic on a private domain and localhost, logs and caches in tmp."""

import functools
import os
import random
import tempfile
from pathlib import Path

# Set before anything imports rclpy, so every node of the test run (and every child process,
# which inherits the environment) uses them.
_TMP = tempfile.mkdtemp(prefix="depth_perception_test_")
os.environ["ROS_LOG_DIR"] = os.path.join(_TMP, "ros_log")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["DEPTH_PERCEPTION_CACHE"] = os.path.join(_TMP, "cache")


# ---------------------------------------------------------------------------------------------
# Test tiers. `make check` runs `-m "not slow and not integration"` (under a minute on 2 cores);
# `make test` and CI run everything. `integration`: every test in test/integration/ (real
# nodes in separate processes, end-to-end tools, packaging, launch files) and any test with a
# `ros` fixture (ROS 2 node processes). `slow` ones are marked by the rules below, in this
# order, each with its reason as the marker's `reason`:
#   1. a test parametrised over registered models runs in the fast tier for the smallest one
#      only (every edit still runs the model contract once, `make test` runs all models);
#   2. every test of a module named after a model family (test_<prefix>.py) whose registered
#      models all have more than SLOW_MODEL_PARAMETERS parameters, like timm's CI size cap;
#   3. code (the test's, its fixtures', the module helpers' it calls) that names such a large
#      model, starts a process or exports ONNX (SLOW_CODE); one ONNX export stays fast: the
#      contract's, of the smallest model (rule 1 keeps it);
#   4. fixtures whose set-up is slow (SLOW_FIXTURES) and tests named in KNOWN_SLOW.

SLOW_MODEL_PARAMETERS = 5_000_000

# Patterns of slow work in a test's code (the reason -> a regular expression).
SLOW_CODE: dict[str, str] = {
    # a Python start-up imports torch (seconds) before it does anything
    "starts a process": r"\bsubprocess\b|\bsys\.executable\b|\bmultiprocessing\b|\btorchrun\b",
    # tracing a model and checking the graph in ONNX Runtime: seconds per export
    "exports ONNX": (
        r"\b(export_onnx|export_to_onnx_from_checkpoint|export_to_cache|bundle_onnx)\("
    ),
}

# Tests slow for another reason: file name -> test name -> why. Names, not marks in the files,
# so that the tiers can be read (and changed) in one place.
KNOWN_SLOW: dict[str, dict[str, str]] = {
    "test_int8_study.py": {
        "test_quantized_bundled_model_is_int8_and_close_to_float": "two int8 calibrations",
    },
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
    "test_lightweight.py": {
        "test_paper_scales_at_1056x320": "the paper's full resolution",
        "test_detached_decoders_reuse_l_weights": "builds and runs four models",
    },
    "test_sfm_losses.py": {
        "test_sfm_checkpoint_terms": "SfM objective over held-out sequences",
        "test_gradient_stage_follows_the_checkpoint": "SfM objective over held-out sequences",
    },
    "test_trainer_extensions.py": {
        "test_accumulated_micro_batches_equal_one_large_batch": "two training steps compared",
        "test_two_stage_recipe_runs_both_stages_then_skips_them": "a two-stage training run",
    },
    "test_synthetic_randomized.py": {
        "test_same_seed_gives_identical_arrays_and_other_seeds_differ": "renders 8 worlds",
        "test_depth_stays_in_the_nominal_range": "renders 12 frames of every fixture world",
    },
    "test_synthetic.py": {
        "test_depth_within_family_range": "renders 12 frames of 3-6 worlds",
    },
    "test_predictor_backends.py": {
        "test_load_pipeline_end_to_end_on_cpu": "exports the model to ONNX",
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

_TEST_DIR = os.path.dirname(os.path.abspath(__file__))
INTEGRATION_DIR = Path(_TEST_DIR) / "integration"


def _model_parameter_counts() -> dict[str, int]:
    """Parameters of every registered model with its default arguments, counted on the meta
    device (no memory, no initialisation: ~0.1 s per model); counted once per session."""
    return dict(_counted_parameters())


@functools.cache
def _counted_parameters() -> dict[str, int]:
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


def _models_of(item, counts: dict[str, int]) -> list[str]:
    """Registered model names among ``item``'s parameter values."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    return [v for v in callspec.params.values() if isinstance(v, str) and v in counts]


def _large_models(item, counts: dict[str, int]) -> list[str]:
    """Registered models above the threshold among ``item``'s parameter values."""
    return [m for m in _models_of(item, counts) if counts[m] > SLOW_MODEL_PARAMETERS]


def _large_families(counts: dict[str, int]) -> set[str]:
    """Module names ``test_<prefix>.py`` whose models (names starting with prefix) are large."""
    prefixes = {name[:end] for name in counts for end in range(2, len(name) + 1)}
    return {
        f"test_{prefix}.py"
        for prefix in prefixes
        if all(c > SLOW_MODEL_PARAMETERS for n, c in counts.items() if n.startswith(prefix))
    }


def _is_test_code(obj) -> bool:
    """A function or class defined in a file under test/ (not pytest's, not the project's)."""
    import inspect

    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    try:
        return os.path.abspath(inspect.getsourcefile(obj) or "").startswith(_TEST_DIR + os.sep)
    except TypeError:
        return False


def _code_of(roots: list, _cache: dict = {}) -> tuple[str, set[str]]:  # noqa: B006 (a cache)
    """The source of ``roots`` and of the test code they name (helpers, classes), and the
    strings they pass to calls (``build_model("msm")``) or take from module constants
    (``RECIPE``): what the SLOW_CODE patterns and the large model names are looked for in."""
    import ast
    import inspect
    import textwrap

    sources, strings, seen, todo = [], set(), set(), list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or not _is_test_code(obj):
            continue
        seen.add(id(obj))
        if id(obj) not in _cache:
            try:
                source = textwrap.dedent(inspect.getsource(obj))
            except (OSError, TypeError):
                source = ""
            tree = ast.parse(source)
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            args = [
                a
                for n in ast.walk(tree)
                if isinstance(n, ast.Call)
                for a in [*n.args, *(k.value for k in n.keywords)]
            ]
            passed = {a.value for a in args if isinstance(a, ast.Constant)}
            # a recipe path names its model wherever it is written (REPO / "training/...")
            texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
            passed |= {s for s in texts if isinstance(s, str) and "configs/" in s}
            _cache[id(obj)] = (source, names, passed)
        source, names, passed = _cache[id(obj)]
        sources.append(source)
        strings |= {s for s in passed if isinstance(s, str)}
        scope = getattr(obj, "__globals__", None) or vars(inspect.getmodule(obj))
        for name in names:
            value = scope.get(name)
            if isinstance(value, str):
                strings.add(value)  # a module constant, used in a call or in a list for one
            elif value is not None:
                todo.append(value)
    return "\n".join(sources), strings


def _names_a_large_model(strings: set[str], large: list[str]) -> list[str]:
    """Large models named by ``strings``: the name itself or its recipe (configs/<name>_*)."""
    import re

    return sorted(
        name
        for name in large
        if any(s == name or re.search(rf"configs/{name}_\w*\.yaml$", s) for s in strings)
    )


def _fixture_functions(item) -> list:
    """The functions of the fixtures ``item`` uses (directly or through other fixtures)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [d.func for defs in info.name2fixturedefs.values() for d in defs]


def slow_reasons(item, counts: dict[str, int], large_families: set[str]) -> list[str]:
    """Why ``item`` belongs to the slow tier (empty: it is fast), by the rules above."""
    import re

    reasons = []
    models = _models_of(item, counts)
    smallest = min(counts, key=counts.get)
    if any(m != smallest for m in models):
        reasons.append(f"a model other than the smallest ({smallest})")
    if item.path.name in large_families:
        reasons.append(f"a family of models over {SLOW_MODEL_PARAMETERS:,} parameters")
    function = getattr(item, "function", None)
    if function is not None:
        text, strings = _code_of([function, *_fixture_functions(item)])
        for reason, pattern in SLOW_CODE.items():
            if reason == "exports ONNX" and models == [smallest]:
                continue  # the contract's one export of the smallest model stays fast
            if re.search(pattern, text):
                reasons.append(reason)
        large = [n for n, c in counts.items() if c > SLOW_MODEL_PARAMETERS]
        named = _names_a_large_model(strings, large)
        if named:
            reasons.append(f"builds a large model ({', '.join(sorted(named))})")
    reasons += [SLOW_FIXTURES[f] for f in item.fixturenames if f in SLOW_FIXTURES]
    known = KNOWN_SLOW.get(item.path.name, {}).get(getattr(item, "originalname", item.name))
    if known:
        reasons.append(known)
    return reasons


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "slow(reason): minutes on 2 CPU cores all together (large models, other processes, "
        "ONNX exports, training runs); left out of `make check`, rules in test/conftest.py",
    )


def pytest_collection_modifyitems(config, items) -> None:
    import pytest

    counts = _model_parameter_counts()
    large_families = _large_families(counts)
    for item in items:
        if item.get_closest_marker("integration") is None and (
            "ros" in item.fixturenames  # real node processes
            or INTEGRATION_DIR in item.path.parents  # end to end: tools, packaging, launch
        ):
            item.add_marker(pytest.mark.integration)
        reasons = slow_reasons(item, counts, large_families)
        if reasons:
            item.add_marker(pytest.mark.slow(reason="; ".join(reasons)))
