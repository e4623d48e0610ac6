"""Container log lines of the twin's pods: written by the kubelet, served by ``pods/log``.

Each container keeps a bounded ring of ``(timestamp, line)`` for its current instance and one for
its previous instance (``kubectl logs --previous`` after a restart). Followers wait on an
``asyncio.Condition`` and stop when the container terminates, the pod's logs are cleared, or the
caller's ``stop`` predicate says so (e.g. the pod was deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

MAX_LINES_PER_CONTAINER = 5000
# How often a follower re-checks its stop predicate when no line arrives.
FOLLOW_POLL_SECONDS = 0.5


def format_timestamp(ts: float) -> str:
    """RFC 3339 with nanoseconds, as the kubelet prefixes lines with ``timestamps=true``."""
    whole = dt.datetime.fromtimestamp(int(ts), dt.UTC)
    nanos = round((ts - int(ts)) * 1e9)
    nanos = min(nanos, 999_999_999)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass
class _ContainerLog:
    current: deque[tuple[float, str]]
    previous: deque[tuple[float, str]]
    terminated: bool = False
    # Bumped on every append/terminate so followers can tell "new lines" from "nothing new".
    seq: int = 0
    condition: asyncio.Condition | None = field(default=None, repr=False)


class PodLogs:
    """Per-container log lines of every pod, bounded to ``max_lines`` per container instance."""

    def __init__(
        self, max_lines: int = MAX_LINES_PER_CONTAINER, now: Callable[[], float] = time.time
    ) -> None:
        self.max_lines = max_lines
        self._now = now
        self._logs: dict[tuple[str, str, str], _ContainerLog] = {}
        self._notifications: set[asyncio.Task] = set()  # keeps wake-up tasks alive until they ran

    def _entry(self, namespace: str, pod: str, container: str) -> _ContainerLog:
        key = (namespace, pod, container)
        entry = self._logs.get(key)
        if entry is None:
            entry = _ContainerLog(deque(maxlen=self.max_lines), deque(maxlen=self.max_lines))
            self._logs[key] = entry
        return entry

    def _wake(self, entry: _ContainerLog) -> None:
        if entry.condition is None:
            return
        condition = entry.condition

        async def notify() -> None:
            async with condition:
                condition.notify_all()

        with contextlib.suppress(RuntimeError):  # no loop running: nobody can be following
            task = asyncio.get_running_loop().create_task(notify())
            self._notifications.add(task)
            task.add_done_callback(self._notifications.discard)

    def append(self, namespace: str, pod: str, container: str, line: str, ts: float | None = None) -> None:
        """Add one line (without trailing newline) to a container's current log."""
        entry = self._entry(namespace, pod, container)
        entry.terminated = False
        entry.current.append((self._now() if ts is None else ts, line.rstrip("\n")))
        entry.seq += 1
        self._wake(entry)

    def terminate(self, namespace: str, pod: str, container: str) -> None:
        """Mark a container's current instance as terminated: followers finish after its last line."""
        entry = self._entry(namespace, pod, container)
        entry.terminated = True
        self._wake(entry)

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """A container restarted: its current lines become the previous instance's."""
        entry = self._entry(namespace, pod, container)
        entry.previous = entry.current
        entry.current = deque(maxlen=self.max_lines)
        entry.terminated = False
        self._wake(entry)

    def clear(self, namespace: str, pod: str) -> None:
        """Forget every container log of a pod (the pod is gone); followers finish."""
        for key in [k for k in self._logs if k[0] == namespace and k[1] == pod]:
            entry = self._logs.pop(key)
            entry.terminated = True
            self._wake(entry)

    def has_logs(self, namespace: str, pod: str, container: str) -> bool:
        """Whether the container has written anything (current or previous instance)."""
        entry = self._logs.get((namespace, pod, container))
        return bool(entry and (entry.current or entry.previous))

    def has_previous(self, namespace: str, pod: str, container: str) -> bool:
        """Whether a previous (restarted) instance of the container left lines."""
        entry = self._logs.get((namespace, pod, container))
        return bool(entry and entry.previous)

    @staticmethod
    def _select(
        lines: list[tuple[float, str]], tail_lines: int | None, since_seconds: float | None, now: float
    ) -> list[tuple[float, str]]:
        if since_seconds is not None:
            lines = [item for item in lines if item[0] >= now - since_seconds]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        return lines

    @staticmethod
    def _render(item: tuple[float, str], timestamps: bool) -> str:
        return f"{format_timestamp(item[0])} {item[1]}" if timestamps else item[1]

    def read(
        self,
        namespace: str,
        pod: str,
        container: str,
        tail_lines: int | None = None,
        since_seconds: float | None = None,
        timestamps: bool = False,
        previous: bool = False,
    ) -> list[str]:
        """The container's lines, optionally the last ``tail_lines`` / those of the last ``since_seconds``."""
        entry = self._logs.get((namespace, pod, container))
        if entry is None:
            return []
        source = list(entry.previous if previous else entry.current)
        selected = self._select(source, tail_lines, since_seconds, self._now())
        return [self._render(item, timestamps) for item in selected]

    async def follow(
        self,
        namespace: str,
        pod: str,
        container: str,
        tail_lines: int | None = None,
        since_seconds: float | None = None,
        timestamps: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> AsyncIterator[str]:
        """Yield the selected existing lines, then each new line, until the container terminates,
        the pod's logs are cleared, or ``stop()`` returns true."""
        entry = self._entry(namespace, pod, container)
        if entry.condition is None:
            entry.condition = asyncio.Condition()
        condition = entry.condition
        for item in self._select(list(entry.current), tail_lines, since_seconds, self._now()):
            yield self._render(item, timestamps)
        seen = entry.seq
        while True:
            if self._logs.get((namespace, pod, container)) is not entry:
                return  # cleared
            if entry.seq > seen:
                # Lines seq (seen, entry.seq] are the newest ones of ``current`` (minus evicted ones).
                fresh = min(entry.seq - seen, len(entry.current))
                items = list(entry.current)[len(entry.current) - fresh :]
                seen = entry.seq
                for item in items:
                    yield self._render(item, timestamps)
                continue
            if entry.terminated or (stop is not None and stop()):
                return
            async with condition:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(condition.wait(), FOLLOW_POLL_SECONDS)
