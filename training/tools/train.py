"""``depth-perception train``: train a recipe, resuming its run directory if it has one.

``depth-perception train --config training/configs/<recipe>.yaml [--set k=v ...] [--run-dir D]``
calls :func:`main`, which calls ``training.trainer.train`` (or ``benchmark`` with
``--benchmark SECONDS``). Multi-GPU: ``torchrun --nproc_per_node N -m training.tools.train
--config ...``; ``train.batch_size`` is per process.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from training.config import load_config
from training.trainer.benchmark import benchmark
from training.trainer.loop import train
from training.trainer.run_dir import CONFIG_FILE


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """``depth-perception train``: train a recipe, resuming its run directory if it has one."""
    from training.tools.cli_args import add_train_arguments

    argv = None
    if not isinstance(args, argparse.Namespace):
        argv = list(sys.argv[1:] if args is None else args)
        parser = argparse.ArgumentParser(prog="depth-perception train", description=main.__doc__)
        add_train_arguments(parser)
        args = parser.parse_args(argv)
    config_path = args.config
    run_dir = args.run_dir
    if args.resume is not None:
        run_dir = run_dir or args.resume
        if config_path is None:
            config_path = str(Path(args.resume) / CONFIG_FILE)
    if config_path is None:
        raise SystemExit("depth-perception train: --config (or --resume DIR) is required")
    cfg = load_config(config_path, args.set or [])
    if args.benchmark:
        figures = benchmark(cfg, args.benchmark)
        print(
            f"[benchmark] {cfg.model.name} {figures['input']} batch {figures['batch_size']} on "
            f"{figures['device']} ({figures['threads']} threads), {figures['steps']} steps in "
            f"{figures['seconds']:.1f} s: {figures['images_per_s']:.2f} images/s "
            f"(compute only {figures['compute_images_per_s']:.2f} images/s, waiting for data "
            f"{100 * figures['data_wait_fraction']:.0f} % of the time)"
        )
        return 0
    if run_dir is None:
        run_dir = str(Path("runs") / cfg.name)
    if argv is None:
        # The depth-perception CLI stores its argv (["train", ...]) on the namespace.
        argv = list(getattr(args, "argv", None) or sys.argv[1:])[1:]
    command = "depth-perception train " + " ".join(shlex.quote(a) for a in argv)
    try:
        result = train(
            cfg,
            run_dir,
            resume=True,
            restart=args.restart,
            command=command,
            show_progress=False if args.no_progress else None,
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result.progress.finished:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
