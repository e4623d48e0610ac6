"""The benchmarks' own tools (never the benchmarks themselves, which live in benchmarks/ and time things).

Checks that the fixed-delay server answers the helpers' client like vLLM (JSON and SSE) and never
early, that percentiles and capacity selection follow their definitions, and that the runbook split
reads papermill's metadata. No timed assertion beyond "not earlier than the fixed delay".
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import nbformat
import pytest

# benchmarks/ is a top-level folder of the checkout, not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ChildProcess, Figure, percentile, render_table
from benchmarks.loadgen import ToolRun, capacity_of
from benchmarks.runbook import notebook_split
from rhaii_nb import measure


@pytest.mark.timeout(60)
def test_fixed_delay_server_answers_the_helpers_client_after_the_delay() -> None:
    with ChildProcess("benchmarks.fixed_server") as server:
        base = f"http://127.0.0.1:{server.ready}/d/30"
        for stream in (True, False):
            result = measure.load(base, ["hello"], requests=4, concurrency=2, stream=stream)
            summary = result.summary()
            assert summary["failed"] == 0, summary["errors"]
            assert (result.df["completion_tokens"] == 1).all()
            assert (result.df["latency_s"] >= 0.030).all()  # a sleep never ends early


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([0.0, 10.0], 90) == 9.0
    assert math.isnan(percentile([], 50))


def test_capacity_is_the_best_rate_within_the_timing_budget() -> None:
    runs = [
        ToolRun("t", 1, 100, 500.0, 1.0, 3.0),
        ToolRun("t", 2, 100, 900.0, 1.9, 4.0),
        ToolRun("t", 4, 100, 1500.0, 2.6, 9.0),  # faster but its p50 left the 2 ms budget
        ToolRun("t", 8, 0, 0.0, 0.0, 0.0, failure="boom"),
    ]
    assert capacity_of(runs) == (900.0, 2)
    assert capacity_of(runs[2:]) == (0.0, None)


def test_figure_status_and_table() -> None:
    missed = Figure("overhead", 3.5, "ms", "≤ 2 ms", False, "hey 1 ms")
    unmeasured = Figure("pods", None, "s", note="kubectl missing")
    table = render_table([missed, unmeasured])
    assert "| overhead | 3.5 ms | ≤ 2 ms | MISSED | hey 1 ms |" in table
    assert "| pods | not measured | — | — | — |" in table


def test_runbook_split_reads_papermill_metadata(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {
        "start_time": "2026-01-01T00:00:00.000000",
        "end_time": "2026-01-01T00:00:10.000000",
        "duration": 10.0,
    }
    for start, end in (("00:00:02", "00:00:05"), ("00:00:05", "00:00:09")):
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["papermill"] = {
            "start_time": f"2026-01-01T{start}.000000",
            "end_time": f"2026-01-01T{end}.000000",
            "duration": 3.0 if start == "00:00:02" else 4.0,
        }
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_markdown_cell("# not code"))
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    split = notebook_split(path)
    assert split == {"papermill_s": 10.0, "work_s": 7.0, "kernel_s": 3.0, "cells": 2}
