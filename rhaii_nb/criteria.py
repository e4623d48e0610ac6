"""Success criteria: named measurements against thresholds, shown as a ✅/❌ table, recorded, enforced.

    criteria.check([
        Criterion("replicas ready", measured=3, op=">=", target=3),
        Criterion("cache-hit speed-up", measured=41.2, op=">=", target=20, unit="%"),
    ])

``check`` displays the table, records each criterion for the run report (``rhaii_nb.record``: the
JSON Lines file named by ``RHAII_NB_RECORD``, else in memory) and raises ``CriteriaFailed`` — which
fails a papermill run — naming every unmet criterion with its measured value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rhaii_nb import record as run_record
from rhaii_nb.display import show_table

PASS, FAIL, SKIP = "✅", "❌", "⏭"
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda measured, target: measured in target,
}
OP_WORDS = {
    ">=": "at least",
    ">": "more than",
    "<=": "at most",
    "<": "less than",
    "==": "",
    "!=": "not",
    "in": "one of",
}


@dataclass
class Criterion:
    """One success criterion: ``measured`` ``op`` ``target`` (e.g. 3 >= 3)."""

    name: str
    measured: Any
    op: str
    target: Any
    unit: str = ""
    note: str = ""
    skip: str = ""  # a reason: the criterion does not apply to this run (shown ⏭, never fails it)

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(
                f"criterion {self.name!r}: unknown comparator {self.op!r}; use one of {', '.join(OPERATORS)}"
            )

    @property
    def skipped(self) -> bool:
        """Whether the criterion does not apply to this run (``skip`` gives the reason)."""
        return bool(self.skip)

    @property
    def passed(self) -> bool:
        """Whether the measured value meets the target; a missing or NaN measurement never does."""
        if self.skipped:
            return False
        if self.measured is None or (isinstance(self.measured, float) and math.isnan(self.measured)):
            return False
        try:
            return bool(OPERATORS[self.op](self.measured, self.target))
        except TypeError:
            return False

    @property
    def expected(self) -> str:
        """The threshold in words, e.g. ``at least 3`` or ``== True``."""
        word = OP_WORDS[self.op] or "=="
        return f"{word} {_fmt(self.target)}{self.unit}".strip()

    def describe(self) -> str:
        """``name = measured (needs expected)`` for failure messages."""
        measured = "not measured" if self.measured is None else f"{_fmt(self.measured)}{self.unit}"
        return f"{self.name} = {measured} (needs {self.expected})"


class CriteriaFailed(AssertionError):
    """At least one success criterion is unmet; ``failed`` holds them, ``table`` the whole check."""

    def __init__(
        self, failed: list[Criterion], total: int, table: pd.DataFrame, title: str | None = None
    ) -> None:
        self.failed = failed
        self.table = table
        where = f" in {title}" if title else ""
        lines = "\n".join(f"- {c.describe()}" + (f" — {c.note}" if c.note else "") for c in failed)
        super().__init__(f"{len(failed)} of {total} success criteria unmet{where}:\n{lines}")


@dataclass
class CheckResult:
    """The outcome of ``check``: the criteria and their table."""

    criteria: list[Criterion]
    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        """Whether every criterion that applies passed."""
        return not self.failed

    @property
    def failed(self) -> list[Criterion]:
        """The unmet criteria (skipped ones are not unmet)."""
        return [c for c in self.criteria if not c.passed and not c.skipped]

    def _repr_html_(self) -> str:
        return styled(self.table).to_html()


def table(criteria: Iterable[Criterion]) -> pd.DataFrame:
    """One row per criterion: result, criterion, measured, expected, note."""
    rows = [
        {
            "result": SKIP if c.skipped else (PASS if c.passed else FAIL),
            "criterion": c.name,
            "measured": "not measured" if c.measured is None else f"{_fmt(c.measured)}{c.unit}",
            "expected": c.expected,
            "note": f"skipped: {c.skip}" if c.skipped else c.note,
        }
        for c in criteria
    ]
    return pd.DataFrame(rows, columns=["result", "criterion", "measured", "expected", "note"])


def styled(frame: pd.DataFrame) -> Any:
    """The criteria table as a pandas Styler: green rows pass, red rows fail."""

    def colour(row: pd.Series) -> list[str]:
        background = {PASS: "#e6f4ea", SKIP: "#f1f3f4"}.get(row["result"], "#fce8e6")
        return [f"background-color: {background}"] * len(row)

    return frame.style.apply(colour, axis=1).hide(axis="index")


def check(
    criteria: Iterable[Criterion],
    *,
    title: str | None = None,
    show: bool = True,
    record: bool = True,
    raise_on_failure: bool = True,
) -> CheckResult:
    """Evaluate, display and record the criteria; raise ``CriteriaFailed`` when any is unmet."""
    items = list(criteria)
    if not items:
        raise ValueError("check() needs at least one criterion")
    frame = table(items)
    if show:
        show_table(styled(frame), title or "Success criteria")
    if record:
        for c in items:
            run_record.record(
                "criterion",
                c.name,
                {
                    "title": title,
                    "measured": c.measured,
                    "op": c.op,
                    "target": c.target,
                    "unit": c.unit,
                    "passed": None if c.skipped else c.passed,
                    "skipped": c.skipped,
                    "note": f"skipped: {c.skip}" if c.skipped else c.note,
                },
            )
    result = CheckResult(items, frame)
    if raise_on_failure and not result.passed:
        raise CriteriaFailed(result.failed, len(items), frame, title)
    return result


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
