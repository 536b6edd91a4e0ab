"""Unit tests of the model registry and the shared input check (no model forward passes)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from depth_perception.models import (
    IMAGENET_MEAN,
    ModelRegistry,
    build_model,
    check_image_tensor,
    get_model_info,
    list_models,
    register_model,
)

META = {
    "description": "test model",
    "paper": "none",
    "tasks": ("depth",),
    "default_input_size": (64, 32),
    "metric": True,
}


class _Tiny(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1)


@pytest.fixture
def registry() -> ModelRegistry:
    # A private registry so these tests never add names that the contract test would pick up.
    reg = ModelRegistry()

    @reg.register("zeta", **META)
    def zeta(channels: int = 4) -> nn.Module:
        return _Tiny(channels)

    @reg.register("alpha", **META, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    def alpha() -> nn.Module:
        return _Tiny(2)

    return reg


def test_names_sorted_and_build_passes_kwargs(registry: ModelRegistry) -> None:
    assert registry.names() == ["alpha", "zeta"]
    assert registry.build("zeta").conv.out_channels == 4
    assert registry.build("zeta", channels=7).conv.out_channels == 7
    assert "zeta" in registry and "nope" not in registry


def test_decorator_returns_builder_unchanged(registry: ModelRegistry) -> None:
    assert registry.info("zeta").builder().conv.out_channels == 4


def test_duplicate_name_raises(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register("zeta", **META)
    assert registry.names() == ["alpha", "zeta"]


def test_unknown_name_lists_available(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError) as err:
        registry.build("x")
    assert str(err.value) == "Unknown model 'x'. Available models: alpha, zeta"
    with pytest.raises(ValueError, match="Available models: alpha, zeta"):
        registry.info("x")


def test_unknown_argument_is_value_error_listing_accepted(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="Accepted arguments: channels"):
        registry.build("zeta", chanels=3)


def test_builder_must_return_module() -> None:
    reg = ModelRegistry()

    @reg.register("bad", **META)
    def bad() -> nn.Module:
        return "not a module"  # type: ignore[return-value]

    with pytest.raises(TypeError, match=r"not an nn\.Module"):
        reg.build("bad")


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("Bad-Name", {}, "lower-case"),
        ("", {}, "lower-case"),
        ("ok", {"tasks": ("segmentation",)}, "must include 'depth'"),
        ("ok", {"default_input_size": (0, 32)}, "default_input_size"),
        ("ok", {"std": (0.0, 1.0, 1.0)}, "std > 0"),
        ("ok", {"mean": (0.5, 0.5)}, "3 values"),
    ],
)
def test_invalid_registration(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelRegistry().register(name, **{**META, **overrides})


def test_model_info_fields_and_frozen(registry: ModelRegistry) -> None:
    info = registry.info("alpha")
    assert info.name == "alpha"
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.25, 0.25, 0.25)
    assert info.default_input_size == (64, 32)
    assert info.metric is True and info.tasks == ("depth",)
    assert registry.info("zeta").mean == IMAGENET_MEAN
    assert registry.info("zeta").default_args() == {"channels": 4}
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]


def test_global_registry_has_paper_d_models() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"lightweight", "lightweight_m", "lightweight_s", "lightweight_xs"} <= set(names)
    info = get_model_info("lightweight")
    assert info.default_input_size == (1056, 320)
    assert info.tasks == ("depth", "segmentation")
    assert info.metric is True
    assert info.default_args()["num_classes"] == 19
    assert info.default_args()["min_depth"] == 4.0 and info.default_args()["max_depth"] == 80.0


def test_global_build_unknown_and_duplicate() -> None:
    with pytest.raises(
        ValueError, match=r"Unknown model 'nope'\. Available models: .*lightweight"
    ):
        build_model("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_model("lightweight", **META)
    assert get_model_info("lightweight").default_input_size == (1056, 320)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(3, 64, 64), r"4-D .* x\.unsqueeze\(0\)"),
        (torch.zeros(1, 64, 64, 3), r"permute\(0, 3, 1, 2\)"),
        (torch.zeros(1, 1, 64, 64), "3 colour channels"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float tensor"),
        (torch.zeros(1, 3, 375, 1242), r"multiples of 32, got 1242x375 .* e\.g\. 1248x384"),
    ],
)
def test_check_image_tensor_messages(tensor: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_image_tensor(tensor, input_multiple=32)


def test_check_image_tensor_fixed_size_and_type() -> None:
    check_image_tensor(torch.zeros(2, 3, 64, 96), input_multiple=32)
    check_image_tensor(torch.zeros(1, 3, 228, 304), input_multiple=32, fixed_input_size=(304, 228))
    with pytest.raises(ValueError, match="only accepts 304x228"):
        check_image_tensor(
            torch.zeros(1, 3, 224, 304), input_multiple=1, fixed_input_size=(304, 228)
        )
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        check_image_tensor([[1.0]], input_multiple=1)
