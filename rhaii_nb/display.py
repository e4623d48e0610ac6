"""Presenter-friendly output: tables and progress that update in place in Jupyter, plain lines headless.

In a kernel (JupyterLab, papermill) ``show_table`` renders HTML and ``live_line`` keeps one output
that ``update()`` replaces (``IPython.display`` with a ``display_id``), so a saved notebook holds only
the final state. Anywhere else they print plain text: a table as text, a progress line each time it
changes (at most every ``min_interval_s``) and the final state. Every string passes through
``rhaii_nb.redact`` first.

Verbose mode (params ``verbose: true``; ``connect()`` calls ``set_verbose``) brings the detail back
for troubleshooting: every change of a live line is also printed as its own timestamped line, and
``detail(text)`` messages, silent otherwise, are shown.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

import pandas as pd

from rhaii_nb.redact import redact

_verbose = False


def set_verbose(on: bool) -> None:
    """Switch verbose mode on or off for this process (a kernel: the notebook's run)."""
    global _verbose
    _verbose = bool(on)


def is_verbose() -> bool:
    """Whether verbose mode is on."""
    return _verbose


def detail(text: str, *, stream: Any = None) -> None:
    """A troubleshooting message: printed (redacted, timestamped) only in verbose mode."""
    if _verbose:
        print(f"{time.strftime('%H:%M:%S')} {redact(text)}", file=stream or sys.stdout, flush=True)


def in_kernel() -> bool:
    """Whether we run inside an IPython kernel (a notebook or papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def show_table(table: Any, title: str | None = None, *, stream: Any = None) -> None:
    """Show a DataFrame (or Styler) as HTML in a kernel, as aligned text elsewhere."""
    if in_kernel():
        from IPython.display import HTML, display

        html = table.to_html() if hasattr(table, "to_html") else str(table)
        heading = f"<h4>{_escape(redact(title))}</h4>" if title else ""
        display(HTML(heading + redact(html)))
        return
    out = stream or sys.stdout
    if title:
        print(redact(title), file=out)
    print(redact(_as_text(table)), file=out, flush=True)


def show_text(text: str, *, stream: Any = None) -> None:
    """Print one message (redacted); in a kernel too, as plain output."""
    print(redact(text), file=stream or sys.stdout, flush=True)


class Live:
    """One output that updates in place: ``update(text_or_dataframe)``, then ``close()``.

    Headless, a text is printed when it changed and ``min_interval_s`` has passed since the last
    print; ``close()`` prints the final state if it was not printed yet. In verbose mode every change
    is also printed at once as a timestamped line (the history the in-place output hides).
    """

    def __init__(self, *, enabled: bool = True, min_interval_s: float = 5.0, stream: Any = None) -> None:
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self.stream = stream or sys.stdout
        self._handle: Any = None
        self._last_text = ""
        self._last_print = float("-inf")
        self._pending: str | None = None
        self._kernel = in_kernel()

    def update(self, content: Any) -> None:
        """Show ``content`` (str, DataFrame or Styler) in place of the previous one."""
        if not self.enabled:
            return
        if self._kernel:
            self._update_kernel(content)
            if _verbose:
                self._history(content)
            return
        text = redact(content if isinstance(content, str) else _as_text(content))
        self._pending = text
        now = time.monotonic()
        if text != self._last_text and (_verbose or now - self._last_print >= self.min_interval_s):
            self._emit(text, now)

    def _history(self, content: Any) -> None:
        """Verbose, in a kernel: each change also as a plain line below the in-place output."""
        text = redact(content if isinstance(content, str) else _as_text(content))
        if text != self._last_text:
            self._last_text = text
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def close(self) -> None:
        """Print the last state if it was not printed yet (headless)."""
        if (
            self.enabled
            and not self._kernel
            and self._pending is not None
            and self._pending != self._last_text
        ):
            self._emit(self._pending, time.monotonic())

    def _update_kernel(self, content: Any) -> None:
        from IPython.display import HTML, display

        if isinstance(content, str):
            shown: Any = _Text(redact(content))
        else:
            shown = HTML(redact(content.to_html()))
        if self._handle is None:
            self._handle = display(shown, display_id=True)
        else:
            self._handle.update(shown)

    def _emit(self, text: str, now: float) -> None:
        print(text, file=self.stream, flush=True)
        self._last_text, self._last_print = text, now

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def live_line(*, enabled: bool = True, min_interval_s: float = 5.0, stream: Any = None) -> Live:
    """A progress line (or table) that updates in place; use as a context manager."""
    return Live(enabled=enabled, min_interval_s=min_interval_s, stream=stream)


def elapsed(seconds: float) -> str:
    """``1m 05s`` style duration for progress lines."""
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class _Text:
    """Plain text with a ``text/plain`` repr, so a display handle can update it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _as_text(content: Any) -> str:
    if isinstance(content, pd.DataFrame):
        return content.to_string(index=False)
    data = getattr(content, "data", None)  # a pandas Styler
    if isinstance(data, pd.DataFrame):
        return data.to_string(index=False)
    return str(content)


def _escape(text: str) -> str:
    return html.escape(text)
