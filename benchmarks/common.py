"""What every benchmark shares: the figure row, percentiles, child processes, the results table."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    """One line of the results table: a measured value next to its target and its peer."""

    name: str
    measured: float | None  # None: could not be measured (``note`` says why)
    unit: str
    target: str = "—"  # human-readable target, "—" when the figure has none
    met: bool | None = None  # None: no target, or not measured
    peer: str = "—"  # the same figure for an established tool / baseline, as text
    note: str = ""
    digits: int = 1

    def measured_text(self) -> str:
        """The measured value with its unit, or why there is none."""
        if self.measured is None or (isinstance(self.measured, float) and math.isnan(self.measured)):
            return "not measured"
        return f"{self.measured:,.{self.digits}f} {self.unit}".strip()

    def status(self) -> str:
        """``met``, ``MISSED`` or ``—`` (no target / not measured)."""
        if self.met is None:
            return "—"
        return "met" if self.met else "MISSED"

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``latest.json``."""
        data = asdict(self)
        data["status"] = self.status()
        return data


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation (numpy's default); NaN when empty."""
    data = sorted(values)
    if not data:
        return math.nan
    position = (len(data) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def ms(seconds: float) -> float:
    """Seconds → milliseconds."""
    return seconds * 1000.0


class ChildProcess:
    """A Python module run as a child process that prints ``READY <text>`` once serving.

    The child serves until its stdin closes, so it never outlives the benchmark even when the
    benchmark is killed. ``ready`` is the text after ``READY``.
    """

    def __init__(self, module: str, *args: str, start_timeout_s: float = 60.0) -> None:
        self.module = module
        self.args = list(args)
        self.timeout = start_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.ready = ""

    def __enter__(self) -> ChildProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + self.timeout
        # readline blocks; the child prints READY quickly or exits, and both end the read.
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                self.ready = line[len("READY") :].strip()
                return self
            if not line and self.process.poll() is not None:
                break
        stderr = self.process.stderr.read() if self.process.stderr else ""
        self.__exit__()
        raise RuntimeError(
            f"{self.module} did not print READY within {self.timeout:.0f} s; its stderr:\n{stderr[-2000:]}"
        )

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default), from ``/proc/<pid>/status``."""
    path = Path(f"/proc/{pid or 'self'}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line in {path}")


def render_table(figures: Iterable[Figure]) -> str:
    """A Markdown table: figure | measured | target | status | peer."""
    lines = ["| figure | measured | target | status | peer |", "| --- | --- | --- | --- | --- |"]
    for f in figures:
        cells = [f.name, f.measured_text(), f.target, f.status(), f.peer]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)
