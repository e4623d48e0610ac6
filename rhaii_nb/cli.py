"""The ``rhaii-nb`` command: a thin shell over the package's functions.

Each subcommand lives in its own ``*_cli`` module exposing ``register(subparsers)``; the handler it
registers returns the process exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# One module per subcommand group, in the order `rhaii-nb --help` lists them.
SUBCOMMAND_MODULES = [
    "rhaii_nb.params_cli",
    "rhaii_nb.twin_cli",
    "rhaii_nb.run_cli",
    "rhaii_nb.lab_cli",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rhaii-nb",
        description="Run the RHAII on GKE TPU runbook notebooks, on real GKE or on the local twin.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        # A subcommand group not written yet is simply absent from --help.
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
