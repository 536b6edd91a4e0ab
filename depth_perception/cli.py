"""``depth-perception``: the package's command-line tool (demo, models, and more subcommands)."""

from __future__ import annotations

import argparse
import sys


def _cmd_models(args: argparse.Namespace) -> int:
    from depth_perception.models import get_model_info, list_models
    from depth_perception.runtime import bundled_weights

    print(f"{'model':16s} {'tasks':22s} {'depth':9s} {'input':10s} bundled  paper")
    for name in list_models():
        info = get_model_info(name)
        size = f"{info.default_input_size[0]}x{info.default_input_size[1]}"
        kind = "metric" if info.metric else "relative"
        bundled = "yes" if bundled_weights(name) else "no"
        print(
            f"{name:16s} {'+'.join(info.tasks):22s} {kind:9s} {size:10s} {bundled:8s} {info.paper}"
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from depth_perception.apps.demo import run_demo

    return run_demo(args)


def _training_module(name: str):
    # The training subpackage sits beside depth_perception in the source tree and is installed
    # with it; the core never imports it, only these handlers do, lazily.
    import importlib

    try:
        return importlib.import_module(f"training.tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "training":
            raise SystemExit(
                "depth-perception: the training subpackage is not installed; run from the "
                "source tree or install the package with pip install -e ."
            ) from exc
        raise


def _run_training_command(module: str, args: argparse.Namespace) -> int:
    try:
        return _training_module(module).main(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        # Configuration and data errors carry a message saying what to change: show it
        # without a traceback, like argparse does for bad arguments.
        print(f"depth-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _cmd_train(args: argparse.Namespace) -> int:
    return _run_training_command("train", args)


def _cmd_eval(args: argparse.Namespace) -> int:
    return _run_training_command("evaluate", args)


def _cmd_export(args: argparse.Namespace) -> int:
    return _run_training_command("export", args)


def _cmd_teacher(args: argparse.Namespace) -> int:
    return _run_training_command("teacher", args)


def _cmd_bundle(args: argparse.Namespace) -> int:
    return _run_training_command("bundle", args)


def _add_training_commands(commands: argparse._SubParsersAction) -> None:
    try:
        from training.tools import cli_args  # argparse only: keeps --help fast
    except ModuleNotFoundError:
        return  # installed without the training subpackage: no training commands
    specs = (
        (
            "train",
            "train a recipe (training/configs/*.yaml); resumes its run directory",
            cli_args.add_train_arguments,
            _cmd_train,
        ),
        (
            "eval",
            "evaluate a checkpoint on a data set and print the metrics table",
            cli_args.add_eval_arguments,
            _cmd_eval,
        ),
        (
            "export",
            "export a checkpoint to ONNX (parity-checked), optionally TensorRT",
            cli_args.add_export_arguments,
            _cmd_export,
        ),
        (
            "teacher",
            "write a teacher model's pseudo-labels; fit the depth correction table",
            cli_args.add_teacher_arguments,
            _cmd_teacher,
        ),
        (
            "bundle",
            "copy a trained checkpoint into the package as its default weights",
            cli_args.add_bundle_arguments,
            _cmd_bundle,
        ),
    )
    for name, help_text, add_arguments, handler in specs:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(handler=handler)


def _cmd_bench(args: argparse.Namespace) -> int:
    from depth_perception.apps.bench import run_bench

    return run_bench(args)


def _run_tool(main, args: argparse.Namespace) -> int:
    try:
        return main(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"depth-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _cmd_bag(args: argparse.Namespace) -> int:
    from depth_perception.apps.bag_tool import main as bag_main

    return _run_tool(bag_main, args)


def _cmd_infer(args: argparse.Namespace) -> int:
    from depth_perception.apps.infer_tool import main as infer_main

    return _run_tool(infer_main, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depth-perception",
        description="Monocular depth and segmentation for ROS 2: demo, training and tools.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the registered models")
    models.set_defaults(handler=_cmd_models)
    demo = commands.add_parser(
        "demo", help="run the synthetic camera and mono_depth over ROS 2 and report"
    )
    from depth_perception.apps.demo import add_arguments

    add_arguments(demo)
    demo.set_defaults(handler=_cmd_demo)
    bench = commands.add_parser(
        "bench", help="model-only, per-stage and end-to-end ROS 2 speed, side by side"
    )
    from depth_perception.apps.bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(handler=_cmd_bench)
    bag = commands.add_parser(
        "bag", help="run the model over a rosbag2 and write a new bag with the node's outputs"
    )
    from depth_perception.apps.bag_tool import add_arguments as add_bag_arguments

    add_bag_arguments(bag)
    bag.set_defaults(handler=_cmd_bag)
    infer = commands.add_parser(
        "infer", help="images, folders or videos in; depth/segmentation panels and depth files out"
    )
    from depth_perception.apps.infer_tool import add_arguments as add_infer_arguments

    add_infer_arguments(infer)
    infer.set_defaults(handler=_cmd_infer)
    _add_training_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``depth-perception`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded by `train` in its checkpoints
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
