"""Typed training configuration: dataclasses loaded from YAML, overridable from the CLI.

A recipe is a YAML file (``training/configs/<recipe>.yaml``) whose top-level sections match the
fields of :class:`ExperimentConfig`; anything it leaves out keeps the dataclass default.
``--set section.key=value`` overrides one entry (the value is parsed as YAML, so ``0.001``,
``null``, ``[320, 256]`` and ``true`` have their usual types). Unknown keys and wrongly typed
values raise ValueError naming the key and the accepted ones, so a typo never silently trains
with a default. The resolved configuration is written beside every run
(``<run_dir>/config.yaml``) and can be loaded back as a recipe.

Example::

    cfg = load_config("training/configs/lightweight_synthetic_cpu.yaml",
                      overrides=["optim.lr=0.001", "train.epochs=2"])
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class ModelConfig:
    """Which registered model to train.

    Attributes:
        name: Registry name (``depth-perception models`` lists them).
        args: Keyword arguments of ``build_model``. ``num_classes`` defaults to the data set's
            class count, ``min_depth``/``max_depth`` to its depth range, when the builder
            accepts them and they are not given.
        init_checkpoint: Optional checkpoint whose weights initialise the model (fine-tuning);
            loaded strictly, without pickle.
    """

    name: str = "lightweight"
    args: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None


@dataclass
class DataConfig:
    """Training and validation data.

    Attributes:
        dataset: Data set name understood by ``training.data`` (``synthetic``, ...).
        family: Scene family of the synthetic data set (``indoor`` or ``road``).
        root: Directory of an on-disk data set (unused by ``synthetic``).
        width: Network input width (multiple of the model's ``input_multiple``).
        height: Network input height.
        train_split: Split name used for training.
        val_split: Split name used for validation during training.
        train_length: Training samples per pass (procedural data sets; None: their default).
        val_length: Validation samples (None: the data set's default).
        num_workers: DataLoader worker processes (0: load in the main process).
        augment: Random flips / colour jitter on the training split.
        random_crop: ``[width, height]`` of a random window cut from each training image
            (loaded at ``width`` x ``height``); validation and inference see whole frames
            (paper b trains on 128x128 / 256x256 crops). None: no crop.
        random_scale: ``[low, high]`` (1 <= low <= high): each training image is enlarged by
            a factor drawn log-uniformly from it and a random ``width`` x ``height`` window of
            it is kept, the intrinsics following (a longer lens, another framing of the same
            scene). None: the frames as rendered or loaded.
        aspect_sizes: ``[[width, height], ...]`` network input sizes of other aspect ratios
            (multiples of the model's ``input_multiple``): each training batch is brought to
            one of them, drawn per batch, each image keeping the largest window of its aspect
            ratio at a random position (``training.data.augment.BatchAspect``), so the network
            learns the unsqueezed inputs of cameras that are not 4:3. Validation stays at
            ``width`` x ``height``. None: every batch at ``width`` x ``height``.
        train_load_size: ``[width, height]`` the training split is loaded (rendered) at before
            ``aspect_sizes`` cut and resize it; larger than every aspect size, every window is
            shrunk (sharp, as a camera's images reach the network) rather than enlarged.
            Needs ``aspect_sizes``. None: ``width`` x ``height``.
        object_paste: Chance (0-1) that a training frame gets an object of another frame of
            its batch pasted in front of it, its depth scaled to stand nearer than what it
            covers (``training.data.augment.ObjectPaste``); 0: off.
        pseudo_labels: Directory written by ``depth-perception teacher`` (same data set, split
            and size); its dense depth and labels replace the training split's ground truth.
        options: Further keyword arguments of the data set constructor.
    """

    dataset: str = "synthetic"
    family: str = "indoor"
    root: str | None = None
    width: int = 320
    height: int = 256
    train_split: str = "train"
    val_split: str = "val"
    train_length: int | None = None
    val_length: int | None = 64
    num_workers: int = 0
    augment: bool = True
    random_crop: list[int] | None = None
    random_scale: list[float] | None = None
    aspect_sizes: list[list[int]] | None = None
    train_load_size: list[int] | None = None
    object_paste: float = 0.0
    pseudo_labels: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    """Which loss trains the model, and its settings; see ``training.objectives.losses``.

    Attributes:
        name: ``multiscale`` (paper d's multi-scale BerHu + CE, works for every model) or
            ``multitask`` (paper e's ``seg_lambda * CE + (1 - seg_lambda) * L_depth`` with the
            scale-invariant log-depth loss and its gradient term, single-scale models).
        depth_weight: Weight of the log-space BerHu depth loss at each scale (paper 0.25).
        seg_weight: Weight of the cross-entropy at each scale (paper 0.75).
        berhu_c_ratio: BerHu threshold as a fraction of the batch's largest residual (0.2).
        ignore_index: Label id the cross-entropy skips.
        depth_downsample: ``min`` (validity-aware min-pool) or ``nearest`` for the ground
            truth of the coarse scales.
        seg_lambda: ``multitask`` only: weight of the cross-entropy, the depth loss gets
            ``1 - seg_lambda`` (paper e: 0.5).
        args: Settings of the other objectives (``training.objectives``), which check them.
    """

    name: str = "multiscale"
    depth_weight: float = 0.25
    seg_weight: float = 0.75
    berhu_c_ratio: float = 0.2
    ignore_index: int = 255
    depth_downsample: str = "min"
    seg_lambda: float = 0.5
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: ``adam``, ``adamw`` or ``sgd``.
        lr: Initial learning rate.
        weight_decay: L2 / decoupled weight decay.
        betas: Adam betas.
        momentum: SGD momentum.
        scheduler: ``exponential`` (lr * lr_decay^epoch, paper d: 10 %/epoch -> 0.9),
            ``cosine`` (to 0 over all steps), ``poly`` (``(1 - step / steps) ** poly_power``,
            paper b) or ``constant``.
        poly_power: Exponent of the ``poly`` schedule (paper b: 0.9).
        lr_decay: Per-epoch factor of the exponential schedule.
        warmup_steps: Linear warm-up from 0 over this many steps (0: none).
        grad_clip_norm: Clip the global gradient norm to this (None: no clipping).
    """

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    scheduler: str = "exponential"
    lr_decay: float = 0.9
    poly_power: float = 0.9
    warmup_steps: int = 0
    grad_clip_norm: float | None = None


@dataclass
class TrainConfig:
    """Loop, logging and checkpointing.

    Attributes:
        epochs: Number of epochs.
        steps_per_epoch: Optimiser steps per epoch (None: one pass over the training set;
            larger than one pass is an error).
        batch_size: Samples per step and process (DDP: per GPU).
        seed: Seed of the model initialisation, data order and augmentation.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        deterministic: Ask PyTorch for deterministic kernels (slower on GPU).
        max_minutes: Stop cleanly after this much training time (summed over resumes), writing
            the final checkpoint; None: no budget.
        checkpoint_every_steps: Write the ``last`` checkpoint every N steps (and every epoch).
        log_every_steps: TensorBoard scalars every N steps.
        image_every_steps: TensorBoard image panel every N steps (0: only at validation).
        eval_every_epochs: Validate every N epochs (and always after the last one).
        val_batches: Cap on validation batches during training (None: the whole split).
        best_metric: Validation metric (lower is better) that selects the ``best`` checkpoint.
        threads: torch CPU threads (None: PyTorch's default).
        accumulate_steps: Micro-batches of ``batch_size`` whose gradients are summed before
            each optimiser step (effective batch ``batch_size * accumulate_steps``; paper c:
            8 x 8); ``steps_per_epoch`` counts optimiser steps.
        freeze: Parameter-name prefixes (as in ``named_parameters()``) that are not trained:
            no gradient, not in the optimiser.
    """

    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    max_minutes: float | None = None
    checkpoint_every_steps: int = 200
    log_every_steps: int = 10
    image_every_steps: int = 200
    eval_every_epochs: int = 1
    val_batches: int | None = None
    best_metric: str = "abs_rel"
    threads: int | None = None
    accumulate_steps: int = 1
    freeze: list[str] = field(default_factory=list)


@dataclass
class EvalConfig:
    """Evaluation protocol (used during training and by ``depth-perception eval``).

    Attributes:
        min_depth: Lower depth cap in metres (None: the model's ``min_depth``).
        max_depth: Upper depth cap (None: the model's ``max_depth``).
        crop: None, ``garg``, ``eigen`` (KITTI) or ``nyu_eigen``.
        median_scaling: Per-image median scaling; None: only for relative (non-metric) models.
        mae_bin_size: Width in metres of the MAE-per-depth bins (0: not computed).
    """

    min_depth: float | None = None
    max_depth: float | None = None
    crop: str | None = None
    median_scaling: bool | None = None
    mae_bin_size: float = 0.0


@dataclass
class StageConfig:
    """One stage of a multi-stage recipe (paper a's two-stage training).

    Attributes:
        name: Stage name; the stage runs in ``<run-dir>/<name>``.
        set: ``dotted.key: value`` overrides applied to the recipe for this stage, as
            ``--set`` would (e.g. ``{"train.freeze": ["scale1."], "loss.args.stage": 2}``).
    """

    name: str = ""
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """A whole training recipe.

    Attributes:
        name: Recipe name (used in logs).
        description: One line about the recipe.
        model: What to train.
        data: On what.
        loss: With which loss.
        optim: With which optimiser.
        train: How long, how logged and checkpointed.
        eval: How it is evaluated.
        stages: Multi-stage training: each stage trains the recipe with its overrides, starting
            from the previous stage's final weights (empty: one stage).
    """

    name: str = "experiment"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: list[StageConfig] = field(default_factory=list)

    def validate(self) -> None:
        """Cross-field checks; ValueError saying what to change."""
        choices = {
            "optim.name": (self.optim.name, ("adam", "adamw", "sgd")),
            "optim.scheduler": (
                self.optim.scheduler,
                ("exponential", "cosine", "poly", "constant"),
            ),
            "loss.depth_downsample": (self.loss.depth_downsample, ("min", "nearest")),
            "eval.crop": (self.eval.crop, (None, "garg", "eigen", "nyu_eigen")),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        positive = {
            "data.width": self.data.width,
            "data.height": self.data.height,
            "train.epochs": self.train.epochs,
            "train.batch_size": self.train.batch_size,
            "train.checkpoint_every_steps": self.train.checkpoint_every_steps,
            "train.log_every_steps": self.train.log_every_steps,
            "train.eval_every_epochs": self.train.eval_every_epochs,
            "optim.lr": self.optim.lr,
            "optim.poly_power": self.optim.poly_power,
            "train.accumulate_steps": self.train.accumulate_steps,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"{key} must be > 0, got {value}")
        optional_positive = {
            "train.steps_per_epoch": self.train.steps_per_epoch,
            "train.max_minutes": self.train.max_minutes,
            "train.val_batches": self.train.val_batches,
            "data.train_length": self.data.train_length,
            "data.val_length": self.data.val_length,
            "optim.grad_clip_norm": self.optim.grad_clip_norm,
            "train.threads": self.train.threads,
        }
        for key, value in optional_positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"{key} must be > 0 or null, got {value}")
        nonneg = {
            "data.num_workers": self.data.num_workers,
            "optim.weight_decay": self.optim.weight_decay,
            "optim.warmup_steps": self.optim.warmup_steps,
            "train.image_every_steps": self.train.image_every_steps,
            "eval.mae_bin_size": self.eval.mae_bin_size,
            "train.seed": self.train.seed,
        }
        for key, value in nonneg.items():
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if not 0 <= self.loss.seg_lambda <= 1:
            raise ValueError(f"loss.seg_lambda must be in [0, 1], got {self.loss.seg_lambda}")
        crop = self.data.random_crop
        if crop is not None and not (
            len(crop) == 2 and 0 < crop[0] <= self.data.width and 0 < crop[1] <= self.data.height
        ):
            raise ValueError(
                f"data.random_crop must be [width, height] within data.width x data.height "
                f"({self.data.width}x{self.data.height}), got {crop}"
            )
        scale = self.data.random_scale
        if scale is not None and not (len(scale) == 2 and 1.0 <= scale[0] <= scale[1]):
            raise ValueError(
                f"data.random_scale must be [low, high] with 1 <= low <= high, got {scale}"
            )
        sizes = self.data.aspect_sizes
        if sizes is not None and not (
            sizes
            and all(
                isinstance(size, list | tuple)
                and len(size) == 2
                and all(isinstance(v, int) and v > 0 for v in size)
                for size in sizes
            )
        ):
            raise ValueError(
                f"data.aspect_sizes must be a non-empty list of [width, height] of positive "
                f"integers, got {sizes}"
            )
        load = self.data.train_load_size
        if load is not None:
            if not (len(load) == 2 and all(isinstance(v, int) and v >= 8 for v in load)):
                raise ValueError(
                    f"data.train_load_size must be [width, height] of integers >= 8, got {load}"
                )
            if not sizes or self.data.random_scale or self.data.random_crop:
                raise ValueError(
                    "data.train_load_size needs data.aspect_sizes (which bring each batch to a "
                    "network input size) and neither data.random_scale nor data.random_crop"
                )
        if not 0.0 <= self.data.object_paste <= 1.0:
            raise ValueError(f"data.object_paste must be in [0, 1], got {self.data.object_paste}")
        if not 0 < self.optim.lr_decay <= 1:
            raise ValueError(f"optim.lr_decay must be in (0, 1], got {self.optim.lr_decay}")
        from training.objectives import objective_names

        if self.loss.name not in objective_names():
            raise ValueError(
                f"loss.name must be one of {objective_names()}, got {self.loss.name!r}"
            )
        names = [stage.name for stage in self.stages]
        for stage in self.stages:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", stage.name) or stage.name in (".", ".."):
                raise ValueError(
                    f"stages: name {stage.name!r} must be a plain directory name (letters, "
                    "digits, '_', '-', '.')"
                )
            if "stages" in {key.split(".")[0] for key in stage.set}:
                raise ValueError(f"stage {stage.name!r}: a stage cannot set 'stages'")
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be unique, got {names}")


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass conversion with type checks


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting where lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else f"{key}: got {value!r}, want {tp}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _from_dict(tp, value, key)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"{key}: expected {len(args)} values, got {list(value)}")
            return tuple(
                _coerce(v, a, f"{key}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        seq = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if (origin is tuple or tp is tuple) else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key}: expected a string, got {value!r} (quote it in YAML)")
    raise ValueError(f"{key}: unsupported annotation {_type_name(tp)}")


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f" in {prefix!r}" if prefix else ""
        raise ValueError(f"unknown config key(s) {unknown}{where}; valid keys: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in data:
            key = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _coerce(data[name], hints[name], key)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested plain data."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a config must be a mapping at the top level, got {type(data).__name__}")
    cfg = _from_dict(ExperimentConfig, data)
    cfg.validate()
    return cfg


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Nested plain data (lists, dicts, scalars) of ``cfg``; YAML- and JSON-serialisable."""
    return _plain(cfg)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to nested config data (a modified deep copy).

    The value is parsed with ``yaml.safe_load``. Intermediate mappings are created for free-form
    sections such as ``model.args``; unknown keys are caught later by :func:`config_from_dict`.

    Raises:
        ValueError: an override is not ``dotted.key=value``.
    """
    out = _plain(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(
                f"override {item!r} must look like section.key=value, e.g. optim.lr=0.001"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        _set_dotted(out, key, value, item)
    return out


def _set_dotted(out: dict[str, Any], key: str, value: Any, item: str) -> None:
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"override {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = _plain(value)


def stage_config(cfg: ExperimentConfig, index: int) -> ExperimentConfig:
    """The recipe of stage ``index`` of ``cfg``: its overrides applied, without ``stages``.

    Raises:
        IndexError: no such stage. ValueError: an override makes an invalid config.
    """
    stage = cfg.stages[index]
    data = config_to_dict(cfg)
    data.pop("stages")
    for key, value in stage.set.items():
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"stage {stage.name!r}: {key!r} is not a dotted config key")
        _set_dotted(data, key, value, f"{key}={value!r}")
    try:
        return config_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"stage {stage.name!r}: {exc}") from exc


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or a recipe name looked up in ``training/configs``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    recipes = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(
        f"no config file {path} and no recipe of that name; recipes: {recipes}"
    )


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load a recipe with ``yaml.safe_load``, apply overrides, check types and values.

    Args:
        path: YAML file or recipe name; None starts from the dataclass defaults.
        overrides: ``section.key=value`` strings applied after the file.

    Raises:
        FileNotFoundError: no such file or recipe.
        ValueError: bad YAML, unknown keys, wrong types or invalid values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        resolved = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(resolved.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{resolved}: invalid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{resolved}: the top level must be a mapping of sections")
        data = loaded or {}
    try:
        return config_from_dict(apply_overrides(data, overrides))
    except ValueError as exc:
        where = f" ({path})" if path is not None else ""
        raise ValueError(f"invalid training config{where}: {exc}") from exc


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (loadable again with :func:`load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
