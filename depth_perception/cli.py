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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``depth-perception`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
