"""Pod log buffers: tail/since/timestamps, the previous instance, bounds, and followers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rhaii_nb.twin.podlogs import PodLogs, format_timestamp


def test_read_tail_since_timestamps_and_bound() -> None:
    logs = PodLogs(max_lines=3)
    for index, ts in enumerate([100.0, 200.0, 300.0, 400.0]):
        logs.append("ns", "p", "c", f"line {index}\n", ts=ts)
    assert logs.read("ns", "p", "c") == ["line 1", "line 2", "line 3"]  # bounded to 3, newline stripped
    assert logs.read("ns", "p", "c", tail_lines=1) == ["line 3"]
    assert logs.read("ns", "p", "c", tail_lines=0) == []
    logs._now = lambda: 410.0
    assert logs.read("ns", "p", "c", since_seconds=150) == ["line 2", "line 3"]
    assert logs.read("ns", "p", "c", tail_lines=1, timestamps=True) == [f"{format_timestamp(400.0)} line 3"]
    assert format_timestamp(1.5) == "1970-01-01T00:00:01.500000000Z"
    assert logs.read("ns", "other", "c") == []


def test_restart_keeps_the_previous_instance() -> None:
    logs = PodLogs()
    logs.append("ns", "p", "c", "first run")
    logs.restart("ns", "p", "c")
    logs.append("ns", "p", "c", "second run")
    assert logs.read("ns", "p", "c") == ["second run"]
    assert logs.read("ns", "p", "c", previous=True) == ["first run"]
    assert logs.has_previous("ns", "p", "c") and not logs.has_previous("ns", "p", "x")


@pytest.mark.timeout(30)
def test_follow_yields_new_lines_until_terminated_or_cleared() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        logs = PodLogs()
        logs.append("ns", "p", "c", "old 1")
        logs.append("ns", "p", "c", "old 2")
        got: list[str] = []
        cleared: list[str] = []

        async def follow(target: list[str], container: str) -> None:
            async for line in logs.follow("ns", "p", container, tail_lines=1):
                target.append(line)

        first = asyncio.create_task(follow(got, "c"))
        second = asyncio.create_task(follow(cleared, "d"))
        await asyncio.sleep(0.05)
        logs.append("ns", "p", "c", "new 1")
        logs.append("ns", "p", "c", "new 2")
        logs.append("ns", "p", "d", "only line")
        await asyncio.sleep(0.05)
        logs.terminate("ns", "p", "c")
        await asyncio.wait_for(first, 10)
        logs.clear("ns", "p")
        await asyncio.wait_for(second, 10)
        return got, cleared

    got, cleared = asyncio.run(scenario())
    assert got == ["old 2", "new 1", "new 2"]
    assert cleared == ["only line"]


@pytest.mark.timeout(30)
def test_follow_stops_when_the_stop_predicate_says_so() -> None:
    async def scenario() -> list[str]:
        logs = PodLogs()
        logs.append("ns", "p", "c", "only")
        gone = False
        follower = asyncio.create_task(_collect(logs.follow("ns", "p", "c", stop=lambda: gone)))
        await asyncio.sleep(0.05)
        gone = True
        return await asyncio.wait_for(follower, 10)

    assert asyncio.run(scenario()) == ["only"]


async def _collect(iterator: AsyncIterator[str]) -> list[str]:
    return [line async for line in iterator]
