"""Replica servers on a background event-loop thread, for notebooks, benchmarks and tests.

Synchronous code (a notebook cell, ``rhaii_nb.measure``) can then talk to them over real sockets::

    with BackgroundReplicas("cpu-test", count=3) as replicas:
        measure.cache_test(replicas.urls[0])
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from rhaii_nb.twin.inference.profiles import Profile
from rhaii_nb.twin.inference.server import ReplicaServer

T = TypeVar("T")


class BackgroundReplicas:
    """``count`` replica servers (names ``replica-0``...) served from one daemon thread's event loop."""

    def __init__(
        self,
        profile: Profile | str = "cpu-test",
        count: int = 1,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        start_timeout_s: float = 30.0,
        **app_options: Any,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self._profile = profile
        self._count = count
        self._host = host
        self._ssl = ssl_context
        self._timeout = start_timeout_s
        self._options = app_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.servers: list[ReplicaServer] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the replicas' loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("BackgroundReplicas not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s or self._timeout)

    def start(self) -> BackgroundReplicas:
        """Start the loop thread and the servers."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rhaii-replicas", daemon=True)
        self._thread.start()
        for index in range(self._count):
            options = {"replica_name": f"replica-{index}", "seed": index, **self._options}
            server = ReplicaServer(self._profile, **options)
            self.call(server.start(self._host, 0, ssl_context=self._ssl))
            self.servers.append(server)
        return self

    def stop(self) -> None:
        """Stop the servers and the loop thread."""
        if self._loop is None:
            return
        for server in self.servers:
            self.call(server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(self._timeout)
        self._loop.close()
        self._loop = None

    @property
    def urls(self) -> list[str]:
        """Base URLs of the replicas."""
        return [server.base_url for server in self.servers]

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Replica name → ``/metrics`` URL."""
        return {server.state.replica_name: f"{server.base_url}/metrics" for server in self.servers}

    def __enter__(self) -> BackgroundReplicas:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
