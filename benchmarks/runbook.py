"""The whole runbook headless on the twin: wall time per notebook, kernel start-up vs work.

Runs ``rhaii_nb.runner.run_runbook`` (what ``make demo`` / ``rhaii-nb run`` do) into a temporary run
directory, then reads the executed notebooks' papermill metadata:

- *work* — the sum of the cells' ``metadata.papermill.duration``;
- *kernel* — from the notebook's ``metadata.papermill.start_time`` to its first cell's start (the
  kernel starting) plus from its last cell's end to the notebook's end (the kernel shutting down);
- *other* — the rest of the runner's time for that notebook (papermill reading, parameter
  injection, writing the executed notebook, records).

``python -m benchmarks.runbook [PARAMS]`` runs this part alone (default ``params/ci.yaml``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from benchmarks.common import ROOT, Figure

DEFAULT_PARAMS = ROOT / "params" / "ci.yaml"
WALL_TARGET_S = 300.0


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def notebook_split(path: Path) -> dict[str, float]:
    """Seconds of kernel start/stop, of cell work, and papermill's total, from an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("papermill", {})
    start, end = _time(meta.get("start_time")), _time(meta.get("end_time"))
    cells = [c.metadata.get("papermill", {}) for c in nb.cells if c.cell_type == "code"]
    ran = [c for c in cells if c.get("start_time") and c.get("end_time")]
    work = sum(float(c.get("duration") or 0.0) for c in ran)
    kernel = 0.0
    if start and ran:
        kernel += (_time(ran[0]["start_time"]) - start).total_seconds()
    if end and ran:
        kernel += max(0.0, (end - _time(ran[-1]["end_time"])).total_seconds())
    total = float(meta.get("duration") or 0.0)
    return {"papermill_s": total, "work_s": work, "kernel_s": kernel, "cells": len(ran)}


def run(quick: bool = False, params_file: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Run the runbook into a temporary directory; per-notebook split and figures."""
    from rhaii_nb.runner import RunOptions, discover_notebooks, run_runbook

    if not discover_notebooks():
        note = "no notebooks in notebooks/ yet"
        return {"figures": [Figure("runbook wall time on the twin", None, "s", note=note)], "notebooks": []}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rhaii-bench-run-") as tmp:
        started = time.monotonic()
        summary = run_runbook(
            RunOptions(params_file=params_file, output=Path(tmp) / "run", progress=False), echo=lines.append
        )
        wall = time.monotonic() - started
        notebooks = []
        for result in summary.notebooks:
            executed = summary.run_dir / "notebooks" / f"{result.name}.ipynb"
            split = notebook_split(executed) if executed.exists() else {}
            notebooks.append(
                {
                    "name": result.name,
                    "status": result.status,
                    "runner_s": result.duration_s,
                    **split,
                    "other_s": result.duration_s - split.get("work_s", 0.0) - split.get("kernel_s", 0.0),
                    "error": result.error,
                }
            )
    return {
        "figures": figures(notebooks, wall, summary.ok, params_file),
        "notebooks": notebooks,
        "wall_s": wall,
        "ok": summary.ok,
        "params": str(params_file.relative_to(ROOT) if params_file.is_relative_to(ROOT) else params_file),
        "failure": summary.failure_message() or None,
    }


def figures(notebooks: list[dict[str, Any]], wall: float, ok: bool, params_file: Path) -> list[Figure]:
    """Whole-run wall time, the kernel/work shares, and one row per notebook."""
    kernel = sum(n.get("kernel_s", 0.0) for n in notebooks)
    work = sum(n.get("work_s", 0.0) for n in notebooks)
    failed = next((n for n in notebooks if n["status"] == "failed"), None)
    note = "" if ok else f"run failed in {failed['name']}" if failed else "run incomplete"
    out = [
        Figure(
            f"runbook wall time on the twin ({params_file.name}, {len(notebooks)} notebooks)",
            wall,
            "s",
            f"≤ {WALL_TARGET_S:.0f} s, all passed",
            ok and wall <= WALL_TARGET_S,
            f"passed {sum(n['status'] == 'passed' for n in notebooks)} of {len(notebooks)}",
            note=note,
        ),
        Figure(
            "share of runbook time starting/stopping kernels",
            kernel / wall * 100 if wall else None,
            "%",
            peer=f"kernels {kernel:.1f} s; cells {work:.1f} s; other {wall - kernel - work:.1f} s",
        ),
    ]
    for n in notebooks:
        out.append(
            Figure(
                f"  {n['name']}",
                n["runner_s"],
                "s",
                peer=f"kernel {n.get('kernel_s', 0):.1f} s, cells {n.get('work_s', 0):.1f} s ({n['status']})",
            )
        )
    return out


def main() -> int:
    """Run this benchmark alone and print its rows."""
    from benchmarks.common import render_table

    params = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_PARAMS
    result = run(params_file=params)
    print(render_table(result["figures"]))
    if result.get("failure"):
        print(result["failure"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
