"""What one training step of a recipe costs, for several variants of it side by side.

Paper c's second argument for a frozen encoder is that it "does not require back propagation".
This tool measures that per variant (each a list of ``--set`` overrides of one recipe), on one
fixed real batch of the recipe's training data, so data loading is left out:

* parameters: in the model, with ``requires_grad``, in the optimiser, and given a ``.grad`` by a
  backward pass (a frozen layer must have none);
* memory: gradient bytes, Adam state bytes, activation bytes autograd keeps for the backward
  pass (counted with ``torch.autograd.graph.saved_tensors_hooks``, parameters excluded,
  storages counted once), and the peak resident memory of a fresh process running the steps
  (``peak_rss_training_mb``: how far the steps raised it above the model build's high-water
  mark; on CPU the build's transients can hide the steps entirely, so trust the exact counts);
* time: forward + loss and backward + optimiser step, median over ``--rounds`` steps; the
  variants take turns step by step, so a load change on a shared machine hits all of them.

Run: ``python -m training.tools.train_cost --config RECIPE --variant "NAME=key=value,key=value"
... --json OUT``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MB = 1024.0**2


@dataclass
class Variant:
    """A named list of ``--set`` overrides of the recipe."""

    name: str
    overrides: list[str]


def parse_variant(text: str) -> Variant:
    """``"NAME=key=value,key=value"`` (or ``"NAME="`` for the recipe as it is) -> Variant."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: expected NAME=key=value[,key=value...] or NAME="
        )
    overrides = [item.strip() for item in rest.split(",") if item.strip()]
    for item in overrides:
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"variant {name!r}: override {item!r} lacks '='")
    return Variant(name.strip(), overrides)


class _Setup:
    """Model, optimiser, objective and one batch of a recipe variant, built like the trainer."""

    def __init__(self, config: str, variant: Variant, batch_size: int | None) -> None:
        from depth_perception.models import get_model_info
        from training.config import load_config
        from training.data.base import class_names_of
        from training.data.registry import data_depth_range, make_dataset
        from training.data.sample import make_collate
        from training.objectives import build_objective
        from training.trainer import build_optimizer, build_training_model, seed_everything

        cfg = load_config(config, variant.overrides)
        if batch_size is not None:
            cfg.train.batch_size = int(batch_size)
        seed_everything(cfg.train.seed)
        data = make_dataset(cfg.data, cfg.data.train_split, length=cfg.train.batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the frozen-random-encoder warning
            self.model, _ = build_training_model(
                cfg, class_names_of(data), data_depth_range(cfg.data)
            )
        self.model.train()
        self.optimizer = build_optimizer(cfg, self.model)
        self.objective = build_objective(cfg, self.model)
        info = get_model_info(cfg.model.name)
        collate = make_collate(
            info.mean, info.std, getattr(self.objective, "needs_raw_images", False)
        )
        self.batch = collate([data[i] for i in range(cfg.train.batch_size)])
        self.input = f"{cfg.data.width}x{cfg.data.height}"
        self.batch_size = cfg.train.batch_size

    def step(self, count_saved: bool = False) -> dict[str, float]:
        """One optimiser step; times of its two halves, and saved-activation bytes if asked."""
        saved: dict[int, int] = {}
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in params:
                saved[ptr] = storage.nbytes()
            return t

        self.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        if count_saved:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                _, terms = self.objective(self.model, self.batch)
        else:
            _, terms = self.objective(self.model, self.batch)
        t1 = time.perf_counter()
        terms.total.backward()
        self.optimizer.step()
        t2 = time.perf_counter()
        out = {"forward_s": t1 - t0, "backward_step_s": t2 - t1}
        if count_saved:
            out["saved_activations_mb"] = sum(saved.values()) / MB
        return out

    def counts(self) -> dict[str, Any]:
        """Parameter counts and gradient / optimiser-state memory (call after a step)."""
        params = list(self.model.parameters())
        in_optimiser = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        state_bytes = sum(
            v.numel() * v.element_size()
            for s in self.optimizer.state.values()
            for v in s.values()
            if isinstance(v, torch.Tensor) and v.dim() > 0
        )
        named = dict(self.model.named_parameters())
        groups: dict[str, dict[str, int]] = {}
        for name, p in named.items():
            top = name.split(".")[0]
            g = groups.setdefault(top, {"params": 0, "requires_grad": 0, "with_grad": 0})
            g["params"] += p.numel()
            g["requires_grad"] += p.numel() if p.requires_grad else 0
            g["with_grad"] += p.numel() if p.grad is not None else 0
        return {
            "params": sum(p.numel() for p in params),
            "params_requires_grad": sum(p.numel() for p in params if p.requires_grad),
            "params_in_optimiser": sum(p.numel() for p in params if id(p) in in_optimiser),
            "params_with_grad": sum(p.numel() for p in params if p.grad is not None),
            "grad_mb": sum(
                p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None
            )
            / MB,
            "optimiser_state_mb": state_bytes / MB,
            "by_module": groups,
        }


def _peak_rss_child(config: str, variant: Variant, batch_size: int | None, steps: int) -> dict:
    """Peak RSS of a fresh process that builds the variant and runs ``steps`` steps."""
    spec = json.dumps(
        {
            "config": config,
            "name": variant.name,
            "overrides": variant.overrides,
            "batch_size": batch_size,
            "steps": steps,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "training.tools.train_cost", "--child", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peak-memory child of {variant.name!r} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(spec_text: str) -> int:
    spec = json.loads(spec_text)
    torch.set_num_threads(1)
    setup = _Setup(spec["config"], Variant(spec["name"], spec["overrides"]), spec["batch_size"])
    built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    for _ in range(int(spec["steps"])):
        setup.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "rss_after_build_mb": built,
                "peak_rss_mb": peak,
                "peak_rss_training_mb": peak - built,
            }
        )
    )
    return 0


def measure(
    config: str,
    variants: Sequence[Variant],
    rounds: int = 5,
    warmup: int = 1,
    batch_size: int | None = None,
    threads: int = 1,
    rss_steps: int = 2,
) -> list[dict[str, Any]]:
    """Counts, memory and median step times of every variant (see the module docstring)."""
    if rounds < 1 or warmup < 0:
        raise ValueError("need rounds >= 1 and warmup >= 0")
    torch.set_num_threads(threads)
    setups = [_Setup(config, v, batch_size) for v in variants]
    results: list[dict[str, Any]] = []
    for v, s in zip(variants, setups, strict=True):
        first = s.step(count_saved=True)
        results.append(
            {
                "variant": v.name,
                "overrides": v.overrides,
                "input": s.input,
                "batch_size": s.batch_size,
                "saved_activations_mb": first["saved_activations_mb"],
                **s.counts(),
            }
        )
    for _ in range(max(0, warmup - 1)):
        for s in setups:
            s.step()
    times: list[list[dict[str, float]]] = [[] for _ in setups]
    for _ in range(rounds):
        for k, s in enumerate(setups):
            times[k].append(s.step())
    for k, r in enumerate(results):
        fwd = [t["forward_s"] for t in times[k]]
        bwd = [t["backward_step_s"] for t in times[k]]
        tot = [a + b for a, b in zip(fwd, bwd, strict=True)]
        r.update(
            {
                "forward_s": float(np.median(fwd)),
                "backward_step_s": float(np.median(bwd)),
                "step_s": float(np.median(tot)),
                "images_per_s": r["batch_size"] / float(np.median(tot)),
                "step_s_all": [round(t, 4) for t in tot],
            }
        )
    del setups
    for v, r in zip(variants, results, strict=True):
        if rss_steps > 0:
            r.update(_peak_rss_child(config, v, batch_size, rss_steps))
    return results


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the main figures."""
    lines = [
        "| variant | params trained / total (M) | with grad (M) | grads + Adam (MB) | "
        "saved activations (MB) | peak RSS (MB) | forward (s) | backward + step (s) "
        "| images/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rss = r.get("peak_rss_mb", float("nan"))
        lines.append(
            f"| {r['variant']} | {r['params_in_optimiser'] / 1e6:.1f} / {r['params'] / 1e6:.1f} "
            f"| {r['params_with_grad'] / 1e6:.1f} | {r['grad_mb'] + r['optimiser_state_mb']:.0f} "
            f"| {r['saved_activations_mb']:.0f} | {rss:.0f} "
            f"| {r['forward_s']:.2f} | {r['backward_step_s']:.2f} | {r['images_per_s']:.2f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m training.tools.train_cost",
        description="Parameters, gradient/activation memory and step time of recipe variants.",
    )
    p.add_argument("--config", help="recipe (path or name in training/configs)")
    p.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        help='"NAME=key=value,key=value" (--set overrides); repeat; "NAME=" as is',
    )
    p.add_argument("--rounds", type=int, default=5, help="timed steps per variant (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    p.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--rss-steps",
        type=int,
        default=2,
        help="steps of the fresh process measuring peak memory (0: skip)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.child:
        return _child(args.child)
    if not args.config or not args.variant:
        raise SystemExit("train_cost: need --config and at least one --variant")
    results = measure(
        args.config,
        args.variant,
        args.rounds,
        args.warmup,
        args.batch_size,
        args.threads,
        args.rss_steps,
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
