"""The `cloudedge` command: one subcommand per module in cloudedge/commands/.

Each module there defines ``register(subparsers)``, which adds its subparser and sets
``func`` (called with the parsed args; returns an exit code). Every command accepts
``--json`` for machine-readable output.
"""
import argparse
import importlib
import sys

# subcommand modules, in the order `cloudedge --help` lists them
COMMAND_MODULES = ["flops", "timing", "serve_cloud", "serve_edge", "client", "demo", "experiment",
                   "train_cloud", "init_edge", "update", "simulate", "reproduce"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cloudedge",
        description="Cloud-edge collaboration for cognitive services (Ding et al., 2022) on tinycnn.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"cloudedge.commands.{name}").register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        # bad input, missing data, a refused package: a message, not a traceback
        print(f"cloudedge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
