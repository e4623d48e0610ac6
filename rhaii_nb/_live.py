"""A line or table that updates in place in Jupyter and prints plain lines headless (private helper).

In a kernel (notebook, papermill) it uses one ``IPython.display`` handle and ``update()``, so a saved
notebook keeps only the final state; elsewhere it prints a line when the text changes, at most every
``min_interval_s`` seconds, plus the final state.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def in_kernel() -> bool:
    """Whether we run inside an IPython kernel (a notebook or papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class Live:
    """One updatable output: ``update(text_or_dataframe)``, then ``close()`` to print the final state."""

    def __init__(self, *, enabled: bool = True, min_interval_s: float = 5.0, stream: Any = None) -> None:
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self.stream = stream or sys.stdout
        self._handle: Any = None
        self._last_text = ""
        self._last_print = 0.0
        self._pending: Any = None
        self._kernel = in_kernel()

    def update(self, content: Any) -> None:
        """Show ``content`` (str or pandas DataFrame) in place of the previous one."""
        if not self.enabled:
            return
        if self._kernel:
            from IPython.display import display

            shown = content if not isinstance(content, str) else _Text(content)
            if self._handle is None:
                self._handle = display(shown, display_id=True)
            else:
                self._handle.update(shown)
            return
        text = content if isinstance(content, str) else content.to_string()
        self._pending = text
        now = time.monotonic()
        if text != self._last_text and now - self._last_print >= self.min_interval_s:
            self._emit(text, now)

    def close(self) -> None:
        """Print the last state if it was not printed yet (headless)."""
        if (
            self.enabled
            and not self._kernel
            and self._pending is not None
            and self._pending != self._last_text
        ):
            self._emit(self._pending, time.monotonic())

    def _emit(self, text: str, now: float) -> None:
        print(text, file=self.stream, flush=True)
        self._last_text, self._last_print = text, now

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Text:
    """Plain text with a ``text/plain`` repr (so a display handle can update it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def elapsed(seconds: float) -> str:
    """``1m 05s`` style duration for progress lines."""
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
