"""An in-process twin GKE for tests: a real Store, the GKE aiohttp server on a real port, a loop thread.

Sync clients (google-cloud-container, httpx, gcloud) run in the test thread; the twin runs on its own
event loop in a background thread, so they never block it. Store reads go through ``on_loop`` so they
happen on the loop that writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from rhaii_nb.twin.context import Clock, TwinContext
from rhaii_nb.twin.gke.cluster import state
from rhaii_nb.twin.gke.server import create_app
from rhaii_nb.twin.pki import Pki
from rhaii_nb.twin.store import Store

KUBE_URL = "https://127.0.0.1:16443"


class GkeTwin:
    """A running twin GKE server (``url``) over ``ctx``; records the Kubernetes API start/stop calls."""

    def __init__(self, home: Path, *, time_scale: float = 0.001, scenarios: frozenset[str] = frozenset()):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gke-twin", daemon=True)
        self._thread.start()
        self.kube_api_calls: list[str] = []
        self.ctx = TwinContext(
            store=Store(), home=home, clock=Clock(time_scale), scenarios=scenarios, pki=Pki(home)
        )
        self.ctx.endpoints["kubernetes"] = KUBE_URL
        self.ctx.start_kube_api = self._start_kube
        self.ctx.stop_kube_api = self._stop_kube
        self._runner: web.AppRunner | None = None
        self.url = self.run(self._serve())

    async def _start_kube(self) -> None:
        self.kube_api_calls.append("start")

    async def _stop_kube(self) -> None:
        self.kube_api_calls.append("stop")

    async def _serve(self) -> str:
        self._runner = web.AppRunner(create_app(self.ctx))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the twin's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Call ``fn()`` on the twin's loop (store access) and return its result."""

        async def call() -> Any:
            return fn()

        return self.run(call(), timeout)

    def nodes(self, selector: str | None = None) -> list[dict[str, Any]]:
        """Node objects in the store, optionally filtered by a label selector."""
        store = self.ctx.store
        return self.on_loop(lambda: store.list(store.resource("", "v1", "nodes"), label_selector=selector)[0])

    @property
    def gke(self) -> Any:
        """The GKE model (clusters, pools, operations, quota)."""
        return state(self.ctx)

    def close(self) -> None:
        """Stop the server and the loop."""
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
