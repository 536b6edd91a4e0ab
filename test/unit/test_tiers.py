"""The rules of test/conftest.py that sort tests into tiers (fast, slow, integration), and the
layout (test/unit, test/contract, test/integration) they rely on."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import conftest
import pytest

TEST_DIR = Path(__file__).resolve().parents[1]


def test_parameter_counts_on_the_meta_device_match_the_model_zoo():
    counts = conftest._model_parameter_counts()
    # The README's model zoo: lightweight 0.326 M, msm 240.9 M, multitasknet 116.7 M.
    assert counts["lightweight"] == pytest.approx(0.326e6, rel=0.01)
    assert counts["msm"] == pytest.approx(240.9e6, rel=0.01)
    assert counts["multitasknet"] == pytest.approx(116.7e6, rel=0.01)
    fast = sorted(n for n, c in counts.items() if c <= conftest.SLOW_MODEL_PARAMETERS)
    assert fast == ["lightweight", "lightweight_m", "lightweight_s", "lightweight_xs"]


class _Item:
    def __init__(self, **params):
        self.callspec = type("Callspec", (), {"params": params})()


def test_only_large_registered_models_among_the_parameters_count():
    counts = {"small": 1_000, "big": 50_000_000}
    assert conftest._large_models(_Item(name="big", size=3), counts) == ["big"]
    assert conftest._large_models(_Item(name="small"), counts) == []
    assert conftest._large_models(_Item(mode="big_but_not_a_model"), counts) == []
    plain = type("Plain", (), {})()  # not parametrised
    assert conftest._large_models(plain, counts) == []


def test_modules_named_after_large_families_are_slow():
    counts = {"msm": 9e6, "msm_gradient": 9e6, "lightweight": 1e3, "lightweight_s": 1e3}
    families = conftest._large_families(counts)
    assert {"test_msm.py", "test_msm_gradient.py"} <= families
    assert "test_lightweight.py" not in families and "test_lightweight_s.py" not in families
    assert "test_model_contract.py" not in families
    real = conftest._large_families(conftest._model_parameter_counts())
    assert {"test_msm.py", "test_sfm.py", "test_multidepth.py", "test_densedepth.py"} <= real
    assert "test_multitasknet.py" in real and "test_sfm_losses.py" not in real


def test_every_test_named_slow_exists():
    # A renamed test would otherwise drop silently into the fast tier.
    here = TEST_DIR
    for file_name, tests in conftest.KNOWN_SLOW.items():
        (path,) = here.rglob(file_name)  # one file of that name, wherever the tiers put it
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert set(tests) <= defined, (file_name, sorted(set(tests) - defined))
    for fixture in conftest.SLOW_FIXTURES:
        assert any(
            f"def {fixture}(" in path.read_text(encoding="utf-8") for path in here.rglob("*.py")
        ), fixture


# Counts as the registry would give them: the smallest model, a small one and a large one.
COUNTS = {"lightweight_xs": 1_000, "lightweight": 300_000, "msm": 240_000_000}


def _stub(function, *, file="test_anything.py", params=None, fixtures=()):
    """What slow_reasons reads of a pytest item, for a function of tier_samples.py."""
    item = SimpleNamespace(
        function=function,
        path=TEST_DIR / "unit" / file,
        name=function.__name__,
        originalname=function.__name__,
        fixturenames=[f.__name__ for f in fixtures],
        _fixtureinfo=SimpleNamespace(
            name2fixturedefs={f.__name__: [SimpleNamespace(func=f)] for f in fixtures}
        ),
    )
    if params is not None:
        item.callspec = SimpleNamespace(params=params)
    return item


def _reasons(item, families=frozenset()):
    return conftest.slow_reasons(item, COUNTS, set(families))


def test_code_that_starts_a_process_or_exports_onnx_is_slow():
    samples = importlib.import_module("tier_samples")
    assert _reasons(_stub(samples.plain)) == []
    assert _reasons(_stub(samples.spawns)) == ["starts a process"]
    # through a helper of the module, and through a fixture
    assert _reasons(_stub(samples.exports_through_a_helper)) == ["exports ONNX"]
    fixture_user = _stub(samples.uses_a_spawning_fixture, fixtures=[samples.spawning_fixture])
    assert _reasons(fixture_user) == ["starts a process"]


def test_only_the_smallest_model_of_a_parametrised_test_is_fast():
    samples = importlib.import_module("tier_samples")
    # the contract's one ONNX export: the smallest model's stays in the fast tier
    smallest = _stub(samples.exports_through_a_helper, params={"named_model": "lightweight_xs"})
    assert _reasons(smallest) == []
    other = _stub(samples.exports_through_a_helper, params={"named_model": "lightweight"})
    assert _reasons(other) == ["a model other than the smallest (lightweight_xs)", "exports ONNX"]
    not_a_model = _stub(samples.plain, params={"mode": "lightweight_but_not_a_model", "size": 3})
    assert _reasons(not_a_model) == []


def test_code_that_builds_a_large_model_is_slow():
    samples = importlib.import_module("tier_samples")
    large = ["builds a large model (msm)"]
    assert _reasons(_stub(samples.builds_a_large_model)) == large
    assert _reasons(_stub(samples.reads_a_large_model_s_recipe)) == large  # a module constant
    assert _reasons(_stub(samples.reads_a_recipe_by_path)) == large
    assert _reasons(_stub(samples.only_mentions_a_large_model)) == []


def test_families_fixtures_and_named_tests_are_slow():
    samples = importlib.import_module("tier_samples")
    family = _stub(samples.plain, file="test_msm.py")
    assert _reasons(family, {"test_msm.py"}) == [
        f"a family of models over {conftest.SLOW_MODEL_PARAMETERS:,} parameters"
    ]
    onnx_path = SimpleNamespace(__name__="onnx_path")  # not test code: only its name counts
    assert _reasons(_stub(samples.plain, fixtures=[onnx_path])) == ["ONNX export"]
    named = _stub(samples.plain, file="test_packaging.py")
    named.originalname = "test_pip_install_into_a_prefix"
    assert _reasons(named) == ["pip install"]


def test_every_test_module_is_in_a_tier_directory_and_ros_tests_are_integration():
    kinds = {path.parent.name for path in TEST_DIR.rglob("test_*.py")}
    assert kinds == {"unit", "contract", "integration"}, kinds
    assert conftest.INTEGRATION_DIR == TEST_DIR / "integration"
    for path in TEST_DIR.rglob("test_*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^(import|from) ros_harness\b|^def ros\(", text, re.MULTILINE):
            assert path.parent.name == "integration", path  # starts nodes: not in `make check`
