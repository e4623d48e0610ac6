"""``python -m benchmarks``: every benchmark in one run, one table, one JSON.

Runs the load generator, routing, twin-scale, runbook and calibration benchmarks in turn, prints a
Markdown table (figure | measured | target | status | peer) and writes everything measured to
``benchmarks/results/latest.json`` (git-ignored). A part that crashes is reported in the table as not
measured, with the error, and the others still run. Exit status 0 unless a part crashed: a missed
target is a finding, printed as ``MISSED``, not a failure of the run.

    python -m benchmarks                 # all parts (under 10 minutes on 2 cores)
    python -m benchmarks loadgen routing # some parts
    python -m benchmarks --quick         # fewer levels and shorter runs, for a smoke check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import RESULTS, Figure, render_table


def _calibration(quick: bool = False) -> dict[str, Any]:
    from benchmarks import calibration

    result = calibration.run()
    result["figures"] = [
        Figure(
            f"calibration: {row['check']} ({row['path']})",
            row["measured"],
            row["unit"],
            row["reference"],
            row["ok"],
            digits=1,
        )
        for row in result["rows"]
    ]
    return result


def _part(name: str) -> Callable[[bool], dict[str, Any]]:
    def run(quick: bool) -> dict[str, Any]:
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        return module.run(quick=quick)

    return run


PARTS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "loadgen": _part("loadgen"),
    "routing": _part("routing"),
    "twin_scale": _part("twin_scale"),
    "runbook": _part("runbook"),
    "calibration": _calibration,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Figure):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts; print the table; write ``latest.json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer levels, shorter runs (smoke check)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    selected = args.parts or list(PARTS)
    started = time.monotonic()
    results: dict[str, Any] = {}
    figures: list[Figure] = []
    crashed = False
    for name in selected:
        part_started = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            result = PARTS[name](args.quick)
        except Exception as exc:  # one broken part must not hide the others' figures
            crashed = True
            result = {
                "figures": [Figure(f"{name}: crashed", None, "", note=f"{type(exc).__name__}: {exc}")],
                "traceback": traceback.format_exc(),
            }
            print(result["traceback"], flush=True)
        result["duration_s"] = time.monotonic() - part_started
        print(f"== {name}: {result['duration_s']:.0f} s", flush=True)
        results[name] = result
        figures += result["figures"]
    total = time.monotonic() - started
    table = render_table(figures)
    print()
    print(table)
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    print(f"\nTotal: {total:.0f} s on {os.cpu_count()} cores ({platform.python_version()}).")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": total,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "figures": [f.to_json() for f in figures],
        "table": table,
        "parts": _jsonable(results),
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    print(f"Written: {out}")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
