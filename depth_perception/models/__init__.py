"""Depth models and the registry that names them.

Adding a model takes one module in this package with one ``@register_model`` builder: every
public module here (name not starting with ``_``) is imported below, which runs its decorators.
Such modules must import only the core dependencies (torch, torchvision, numpy) at top level.

Usage::

    from depth_perception.models import build_model, list_models
    model = build_model("lightweight", num_classes=13, min_depth=0.5, max_depth=10.0)
"""

from __future__ import annotations

import importlib
import pkgutil

from depth_perception.models.registry import (
    DEPTH_KEY,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SEG_KEY,
    DepthModel,
    ModelInfo,
    ModelRegistry,
    build_model,
    check_image_tensor,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "DEPTH_KEY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SEG_KEY",
    "DepthModel",
    "ModelInfo",
    "ModelRegistry",
    "build_model",
    "check_image_tensor",
    "get_model_info",
    "list_models",
    "register_model",
]


def _import_model_modules() -> None:
    # Sorted so that registration order (and any duplicate-name error) is reproducible.
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_") or module.name == "registry":
            continue
        importlib.import_module(f"{__name__}.{module.name}")


_import_model_modules()
