"""One name -> builder registry for every depth model, and the forward contract they share.

The ROS node's ``model`` parameter, the training CLI and the exporter all resolve names here, so a
model added with :func:`register_model` is usable everywhere without touching another file.

Forward contract (checked for every registered model by ``test/contract/test_model_contract.py``):

* input: float tensor ``(B, 3, H, W)``, normalised with the model's mean/std; ``H`` and ``W``
  multiples of ``model.input_multiple`` (or exactly ``model.fixed_input_size`` when set);
* output: a dict with exactly the keys ``{"depth"}`` or ``{"depth", "seg_logits"}`` in eval mode;
  ``depth`` is ``(B, 1, h, w)`` in metres, finite and strictly positive; ``seg_logits`` is
  ``(B, num_classes, h, w)``. Extra keys (per-scale outputs for the losses) only in training mode;
* no state stored on the module during forward (breaks export and multi-threaded executors).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Keys every model returns in eval mode; training mode may add more.
DEPTH_KEY = "depth"
SEG_KEY = "seg_logits"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])


def _is_exporting() -> bool:
    # torch.compiler.is_exporting appeared in PyTorch 2.x; older versions have no torch.export.
    is_exporting = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    return bool(is_exporting()) if is_exporting is not None else False


class DepthModel(nn.Module):
    """Base class carrying the attributes of the forward contract.

    Subclasses set these in ``__init__`` and call :meth:`validate_input` at the top of
    ``forward``.

    Attributes:
        input_multiple: H and W of the input must be multiples of this (the encoder's stride).
        num_classes: Segmentation classes; 0 when the model predicts depth only.
        class_names: Optional names of the segmentation classes (``len == num_classes``).
        min_depth: Smallest depth in metres the model is meant to predict.
        max_depth: Largest depth in metres the model is meant to predict.
        fixed_input_size: ``(width, height)`` when the model only accepts one size (e.g. it
            has fully connected layers), else None; exporters make H and W dynamic only if None.
    """

    input_multiple: int = 1
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    min_depth: float = 0.0
    max_depth: float = float("inf")
    fixed_input_size: tuple[int, int] | None = None

    def validate_input(self, x: torch.Tensor) -> None:
        """Raise ValueError, saying how to fix it, when ``x`` breaks the input contract.

        Skipped while tracing or exporting: the exporter validates its example size itself,
        checks on traced shapes only emit TracerWarnings, and under ``torch.export`` they would
        add guards that conflict with dynamic H and W.
        """
        if torch.jit.is_tracing() or _is_exporting():
            return
        check_image_tensor(
            x,
            input_multiple=self.input_multiple,
            fixed_input_size=self.fixed_input_size,
            model_name=type(self).__name__,
        )


def check_image_tensor(
    x: Any,
    *,
    input_multiple: int,
    fixed_input_size: tuple[int, int] | None = None,
    model_name: str = "model",
) -> None:
    """Check that ``x`` is a normalised float ``(B, 3, H, W)`` batch a model can take.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: wrong rank, channel count, dtype or spatial size; the message says how to
            fix it.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model_name} expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(
            f"{model_name} expects a float tensor normalised with the model's mean/std, got "
            f"dtype {x.dtype}; convert with x.float() / 255 and normalise first"
        )
    if x.dim() != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(
            f"{model_name} expects a 4-D (B, 3, H, W) tensor, got shape {tuple(x.shape)}{hint}"
        )
    if x.shape[1] != 3:
        hint = (
            " (the tensor looks channels-last; use x.permute(0, 3, 1, 2))"
            if x.shape[-1] == 3
            else ""
        )
        raise ValueError(
            f"{model_name} expects 3 colour channels in dim 1, got shape {tuple(x.shape)}{hint}"
        )
    height, width = int(x.shape[2]), int(x.shape[3])
    if fixed_input_size is not None:
        if (width, height) != tuple(fixed_input_size):
            fw, fh = fixed_input_size
            raise ValueError(
                f"{model_name} only accepts {fw}x{fh} (W x H) inputs, got {width}x{height}; "
                f"resize the image to {fw}x{fh}"
            )
        return
    if height % input_multiple or width % input_multiple:
        m = input_multiple
        up_w, up_h = -(-width // m) * m, -(-height // m) * m
        raise ValueError(
            f"{model_name} needs H and W to be multiples of {m}, got {width}x{height} (W x H); "
            f"resize or pad the image to e.g. {up_w}x{up_h}"
        )


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it.

    Attributes:
        name: Registry name (what ``build_model`` and the ROS ``model`` parameter take).
        builder: Function returning the ``nn.Module``; its keyword defaults are the model's
            default arguments.
        description: One line for ``--help`` texts and logs.
        paper: Citation of the paper the model follows.
        tasks: What it predicts, always including ``"depth"`` (e.g. ``("depth",
            "segmentation")``).
        default_input_size: ``(width, height)`` the paper trains at.
        mean: Per-channel normalisation mean (RGB, for images scaled to [0, 1]).
        std: Per-channel normalisation std.
        metric: True when the output depth is in metres (not only up to scale).
        legacy_args: Optional ``(model_args, tensor names) -> model_args``: the arguments a
            checkpoint written before an argument existed implies (it recorded only the
            arguments of its time; its tensor names tell which architecture it holds).
    """

    name: str
    builder: Callable[..., nn.Module]
    description: str
    paper: str
    tasks: tuple[str, ...]
    default_input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    metric: bool
    legacy_args: Callable[[dict[str, Any], Collection[str]], dict[str, Any]] | None = None

    def default_args(self) -> dict[str, Any]:
        """Keyword arguments of the builder that have defaults, with those defaults."""
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


class ModelRegistry:
    """Maps model names to builders. The package uses the one module-level instance."""

    def __init__(self) -> None:
        self._models: dict[str, ModelInfo] = {}

    def register(
        self,
        name: str,
        *,
        description: str,
        paper: str,
        tasks: Sequence[str],
        default_input_size: tuple[int, int],
        metric: bool,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        legacy_args: Callable[[dict[str, Any], Collection[str]], dict[str, Any]] | None = None,
    ) -> Callable[[BuilderT], BuilderT]:
        """Decorator registering a builder function under ``name``; see :func:`register_model`."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"model name {name!r} must be lower-case letters, digits and underscores, "
                "starting with a letter"
            )
        if name in self._models:
            raise ValueError(f"model {name!r} is already registered")
        tasks_t = tuple(tasks)
        if "depth" not in tasks_t:
            raise ValueError(f"model {name!r}: tasks must include 'depth', got {tasks_t}")
        size = tuple(int(v) for v in default_input_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(
                f"model {name!r}: default_input_size must be (width, height) > 0, "
                f"got {default_input_size}"
            )
        mean_t = tuple(float(v) for v in mean)
        std_t = tuple(float(v) for v in std)
        if len(mean_t) != 3 or len(std_t) != 3 or min(std_t) <= 0:
            raise ValueError(
                f"model {name!r}: mean and std need 3 values each, std > 0; got {mean}, {std}"
            )

        def decorator(builder: BuilderT) -> BuilderT:
            if not callable(builder):
                raise TypeError(f"model {name!r}: builder must be callable")
            # Checked again here so that a decorator created twice for one name still fails.
            if name in self._models:
                raise ValueError(f"model {name!r} is already registered")
            self._models[name] = ModelInfo(
                name=name,
                builder=builder,
                description=description,
                paper=paper,
                tasks=tasks_t,
                default_input_size=(size[0], size[1]),
                mean=(mean_t[0], mean_t[1], mean_t[2]),
                std=(std_t[0], std_t[1], std_t[2]),
                metric=bool(metric),
                legacy_args=legacy_args,
            )
            return builder

        return decorator

    def info(self, name: str) -> ModelInfo:
        """The :class:`ModelInfo` of ``name``; ValueError listing the choices if unknown."""
        try:
            return self._models[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"Unknown model {name!r}. Available models: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._models)

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        """Build ``name`` with ``kwargs`` overriding the builder's defaults."""
        info = self.info(name)
        signature = inspect.signature(info.builder)
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            accepted = ", ".join(signature.parameters)
            raise ValueError(
                f"model {name!r} does not accept arguments {sorted(kwargs)}: {exc}. "
                f"Accepted arguments: {accepted}"
            ) from None
        model = info.builder(**kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"builder of model {name!r} returned {type(model).__name__}, not an nn.Module"
            )
        return model

    def __contains__(self, name: object) -> bool:
        return name in self._models


_REGISTRY = ModelRegistry()


def register_model(
    name: str,
    *,
    description: str,
    paper: str,
    tasks: Sequence[str],
    default_input_size: tuple[int, int],
    metric: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    legacy_args: Callable[[dict[str, Any], Collection[str]], dict[str, Any]] | None = None,
) -> Callable[[BuilderT], BuilderT]:
    """Register a builder function in the package's model registry.

    Example::

        @register_model("tiny", description="...", paper="...", tasks=("depth",),
                        default_input_size=(640, 480), metric=True)
        def tiny(min_depth: float = 0.5, max_depth: float = 10.0) -> nn.Module: ...

    Args:
        name: Unique lower-case name.
        description: One-line description.
        paper: Citation of the paper the model follows.
        tasks: What the model predicts; must include ``"depth"``.
        default_input_size: ``(width, height)`` used when nothing else is configured.
        metric: True when the model predicts metric depth.
        mean: Normalisation mean (RGB, images in [0, 1]).
        std: Normalisation std.
        legacy_args: See :class:`ModelInfo` (for models whose arguments grew).

    Raises:
        ValueError: the name is taken or invalid, or the metadata is inconsistent.
    """
    return _REGISTRY.register(
        name,
        description=description,
        paper=paper,
        tasks=tasks,
        default_input_size=default_input_size,
        metric=metric,
        mean=mean,
        std=std,
        legacy_args=legacy_args,
    )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override the builder's defaults.

    Raises:
        ValueError: unknown name (the message lists the available ones) or unknown argument.
    """
    return _REGISTRY.build(name, **kwargs)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return _REGISTRY.names()


def get_model_info(name: str) -> ModelInfo:
    """Metadata of the registered model ``name``.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    return _REGISTRY.info(name)


# ---------------------------------------------------------------------------------------------
# local ImageNet encoder weights (nothing is ever downloaded)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a torch file read with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be read without pickle or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read encoder weights {path} (no pickle): {exc}") from exc
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict")
    return dict(state)


def load_encoder_state(
    module: nn.Module, wanted: Mapping[str, torch.Tensor], source: str | Path, what: str
) -> None:
    """Load ``wanted`` into ``module`` after checking that it is exactly the module's state.

    BatchNorm's ``num_batches_tracked`` may be absent (older files); anything else missing,
    extra or of another shape raises ValueError naming ``what`` the file should have been.
    """
    own = module.state_dict()
    missing = sorted(k for k in set(own) - set(wanted) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(wanted) - set(own))
    bad_shapes = [
        f"{k}: file {tuple(wanted[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in wanted and wanted[k].shape != own[k].shape
    ]
    if missing or unexpected or bad_shapes:
        raise ValueError(
            f"{source} is not {what}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}, shape mismatches {bad_shapes[:5]}"
        )
    module.load_state_dict(dict(wanted), strict=True)
