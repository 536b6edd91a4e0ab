"""The model and loss a recipe trains, built from the registry and the data set's facts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from depth_perception.checkpoint import checkpoint_paths, load_model, read_metadata_file
from depth_perception.models import build_model, get_model_info
from training.config import ExperimentConfig
from training.objectives import build_objective
from training.objectives.losses import MultiScaleDepthSegLoss, MultitaskLoss
from training.trainer.optim import freeze_parameters

# Model arguments that belong to the weights rather than to the recipe: a fine-tune from a
# checkpoint keeps them unless its recipe sets them (the focal exponent is fitted to the
# weights, ``training.tools.focal_calibration``; its targets use the same factor).
_CARRIED_FROM_INIT = ("focal_exponent",)


def build_training_model(
    cfg: ExperimentConfig, class_names: Sequence[str], depth_range: tuple[float, float] | None
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the configured model, filling ``num_classes`` and the depth range from the data.

    Returns:
        ``(model, model_args)``; ``model_args`` are what the checkpoint records.
    """
    info = get_model_info(cfg.model.name)
    defaults = info.default_args()
    args = dict(cfg.model.args)
    if "num_classes" in defaults and "num_classes" not in args:
        args["num_classes"] = len(class_names)
    if depth_range is not None:
        if "min_depth" in defaults and "min_depth" not in args:
            args["min_depth"] = float(depth_range[0])
        if "max_depth" in defaults and "max_depth" not in args:
            args["max_depth"] = float(depth_range[1])
    if cfg.model.init_checkpoint:
        init_meta, _ = read_metadata_file(checkpoint_paths(cfg.model.init_checkpoint)[1])
        for key in _CARRIED_FROM_INIT:
            if key in defaults and key not in args and key in init_meta.model_args:
                args[key] = init_meta.model_args[key]
    model = build_model(cfg.model.name, **args)
    n_classes = int(getattr(model, "num_classes", 0))
    if n_classes and class_names:
        if n_classes != len(class_names):
            raise ValueError(
                f"model.args.num_classes={n_classes} but the data set has {len(class_names)} "
                f"classes ({', '.join(class_names)}); drop model.args.num_classes or fix it"
            )
        model.class_names = tuple(class_names)
    if cfg.model.init_checkpoint:
        init, _ = load_model(cfg.model.init_checkpoint, **args)
        model.load_state_dict(init.state_dict(), strict=True)
    freeze_parameters(model, cfg.train.freeze)
    return model, args


def build_loss(cfg: ExperimentConfig, model: nn.Module) -> MultiScaleDepthSegLoss | MultitaskLoss:
    """The supervised loss of the ``multiscale`` / ``multitask`` objectives (for tools and tests).

    Raises:
        ValueError: ``loss.name`` is another objective (use ``training.objectives``).
    """
    objective = build_objective(cfg, model)
    loss = getattr(objective, "loss", None)
    if loss is None:
        raise ValueError(f"objective {cfg.loss.name!r} is not a plain supervised loss")
    return loss
