"""``rhaii-nb params check FILE…`` and ``rhaii-nb params show FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rhaii_nb.params import ParamsError, load_params


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``params`` command group to the CLI."""
    parser = subparsers.add_parser("params", help="check or show run parameters files")
    group = parser.add_subparsers(dest="params_command", metavar="SUBCOMMAND")

    check = group.add_parser("check", help="validate params files; exit 1 listing every problem")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(handler=check_files)

    show = group.add_parser("show", help="print resolved values (secrets as present/absent only)")
    show.add_argument("file", type=Path, metavar="FILE")
    show.set_defaults(handler=show_file)

    parser.set_defaults(handler=lambda args: _usage(parser))


def check_files(args: argparse.Namespace) -> int:
    """Validate each file; print ✅ or ❌ with its problems; 1 when any file fails."""
    failed = 0
    for path in args.files:
        try:
            load_params(path)
        except ParamsError as exc:
            failed += 1
            print(f"❌ {exc}")
        else:
            print(f"✅ {path}: valid")
    if len(args.files) > 1:
        print(f"{len(args.files) - failed} of {len(args.files)} params files valid")
    return 1 if failed else 0


def show_file(args: argparse.Namespace) -> int:
    """Print every resolved value of one params file, derived ones after; 1 when it is invalid."""
    try:
        params = load_params(args.file)
    except ParamsError as exc:
        print(f"❌ {exc}")
        return 1
    data = params.resolved()
    derived = data.pop("derived")
    print(f"# {args.file} (target {params.target})")
    _print_block(data)
    print("# derived")
    _print_block(derived)
    return 0


def _print_block(values: dict[str, Any]) -> None:
    width = max(len(key) for key in values)
    for key, value in values.items():
        print(f"{key:<{width}}  {_fmt(value)}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
