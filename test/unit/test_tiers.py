"""The rule of test/conftest.py that puts tests of large models into the slow tier."""

from __future__ import annotations

import ast
from pathlib import Path

import conftest
import pytest


def test_parameter_counts_on_the_meta_device_match_the_model_zoo():
    counts = conftest._model_parameter_counts()
    # The README's model zoo: lightweight 0.318 M, msm 240.9 M, multitasknet 116.7 M.
    assert counts["lightweight"] == pytest.approx(0.318e6, rel=0.01)
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
    here = Path(__file__).resolve().parents[1]  # test/
    for file_name, tests in conftest.KNOWN_SLOW.items():
        (path,) = here.rglob(file_name)  # one file of that name, wherever the tiers put it
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert set(tests) <= defined, (file_name, sorted(set(tests) - defined))
    for fixture in conftest.SLOW_FIXTURES:
        assert any(
            f"def {fixture}(" in path.read_text(encoding="utf-8") for path in here.rglob("*.py")
        ), fixture
