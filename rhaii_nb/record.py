"""Records a notebook leaves for its run report: criteria, figures, metrics, costs.

A notebook executed by the runner gets the environment variable ``RHAII_NB_RECORD`` naming a JSON
Lines file; each ``record(...)`` appends one line. Run interactively (JupyterLab), there is no such
variable and records stay in memory (``recorded()``), so cells behave the same either way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RECORD_ENV = "RHAII_NB_RECORD"

_memory: list[dict[str, Any]] = []


def record(kind: str, name: str, data: Any) -> dict[str, Any]:
    """Append one record (``kind`` such as "criterion", "figure", "metric", "cost") and return it."""
    entry = {"kind": kind, "name": name, "time": time.time(), "data": _jsonable(data)}
    _memory.append(entry)
    path = os.environ.get(RECORD_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
    return entry


def figure(fig: Any, name: str | None = None) -> Any:
    """Record a plotly figure for the run report (title, trace count, points) and return it unchanged,
    so ``record.figure(plots.some_chart(...))`` as a cell's last line both shows and records it."""
    layout_title = getattr(getattr(fig.layout, "title", None), "text", None)
    title = name or layout_title or "figure"
    traces = list(fig.data)
    points = sum(max(_length(getattr(t, "x", None)), _length(getattr(t, "y", None))) for t in traces)
    record("figure", title, {"title": layout_title, "traces": len(traces), "points": points})
    return fig


def recorded(kind: str | None = None) -> list[dict[str, Any]]:
    """Records made in this process, optionally of one kind only."""
    return [entry for entry in _memory if kind is None or entry["kind"] == kind]


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a records file written by ``record``; a missing file means no records."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entries.append(json.loads(line))
    return entries


def _length(values: Any) -> int:
    return 0 if values is None else len(values)


def _jsonable(data: Any) -> Any:
    """Round-trip through JSON so records never hold live objects."""
    return json.loads(json.dumps(data, default=str))
