"""``rhaii-nb run``: execute the runbook notebooks headless (a thin shell over ``runner.run_runbook``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the runbook notebooks headless with papermill",
        description="Execute the notebooks in order into runs/<timestamp>/ (or --output), stop at the "
        "first failure, and write summary.json and an HTML report (index.html).",
    )
    parser.add_argument("--params", type=Path, help="params YAML (default: params/local.yaml)")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter; the value is read as YAML (repeatable)",
    )
    parser.add_argument("--from", dest="from_notebook", metavar="NN", help="start at this notebook (e.g. 04)")
    parser.add_argument("--only", metavar="NN,…", help="run only these notebooks (comma-separated)")
    parser.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a failed run from where it stopped"
    )
    parser.add_argument("--output", type=Path, metavar="DIR", help="run directory (default runs/<timestamp>)")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a twin failure scenario for training (repeatable)",
    )
    parser.add_argument("--keep-twin", action="store_true", help="leave the local twin running after success")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.set_defaults(handler=_run)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["replicas=2", "scenario=[a, b]"]`` → ``{"replicas": 2, "scenario": ["a", "b"]}``."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"-p expects KEY=VALUE, got {pair!r} (example: -p replicas=2)")
        overrides[key.strip()] = yaml.safe_load(value) if value else ""
    return overrides


def _run(args: argparse.Namespace) -> int:
    from rhaii_nb.runner import RunnerError, RunOptions, run_runbook

    options = RunOptions(
        params_file=args.params,
        overrides=parse_overrides(args.param),
        from_notebook=args.from_notebook,
        only=[item.strip() for item in (args.only or "").split(",") if item.strip()],
        resume=args.resume,
        output=args.output,
        scenarios=args.scenario,
        keep_twin=args.keep_twin,
        progress=not args.no_progress,
    )
    try:
        summary = run_runbook(options)
    except RunnerError as exc:
        print(f"error: {exc}")
        return 2
    except ValueError as exc:  # invalid params: the message lists every problem and its fix
        print(exc)
        return 2
    return 0 if summary.ok else 1
