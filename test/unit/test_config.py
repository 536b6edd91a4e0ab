"""The typed configuration: defaults, validation with reasons, YAML loading."""

from pathlib import Path

import pytest

from depth_perception.config import PARAMETERS, PerceptionConfig, load_config, validate_value

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_match_the_specs():
    config = PerceptionConfig()
    for spec in PARAMETERS:
        assert getattr(config, spec.name) == spec.default, spec.name


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("backend", "cudnn", "must be one of"),
        ("device", "gpu0", "not valid"),
        ("points_stride", 0, ">= 1"),
        ("overlay_alpha", 1.5, "<= 1.0"),
        ("publish_points", 1, "must be bool"),
        ("fallback_hfov_deg", 180.0, "<= 179.0"),
        ("no_such_parameter", 1, "unknown parameter"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(name, value, reason):
    with pytest.raises(ValueError, match=reason):
        validate_value(name, value)


def test_cross_field_checks():
    with pytest.raises(ValueError, match="min_depth"):
        PerceptionConfig(min_depth=5.0, max_depth=2.0)
    with pytest.raises(ValueError, match="both input_width and input_height"):
        PerceptionConfig(input_width=320)
    assert PerceptionConfig(device="cuda:1").device == "cuda:1"
    assert PerceptionConfig().replace(points_stride=4).points_stride == 4


def test_shipped_params_file_loads_and_equals_the_defaults():
    config = load_config(REPO / "config" / "mono_depth.yaml")
    assert config == PerceptionConfig()


def test_unknown_keys_in_yaml_are_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("mono_depth:\n  ros__parameters:\n    modle: lightweight\n")
    with pytest.raises(ValueError, match="modle"):
        load_config(path)
