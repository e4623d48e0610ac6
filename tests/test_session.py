"""connect()/Session and retries: the three HTTP stacks retry 429/5xx (honouring Retry-After), never 4xx.

The retry tests drive the real clients (kubernetes ApiClient, google-cloud-container REST, httpx)
against a real aiohttp server that fails requests with the twin's own ``api-flaky`` middleware.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1

from rhaii_nb.retry import STATS, AsyncRetryTransport, Backoff, RetryTransport, google_retry, urllib3_retry
from rhaii_nb.twin.flaky import flaky_middleware

# The test server fails 35 % of calls at random: 8 attempts still lose a request once in ~4,400
# (0.35**8), which a 20-request test meets in CI; 16 attempts make that one in ~20 million.
FAST = Backoff(base_s=0.01, cap_s=0.05, max_attempts=16, max_total_s=20)


@dataclass
class _Ctx:
    """The part of TwinContext the flaky middleware reads."""

    scenarios: frozenset[str] = frozenset({"api-flaky"})

    def scenario(self, name: str) -> bool:
        return name in self.scenarios


@dataclass
class Server:
    """A real HTTP server in a thread; records every request it answers (path, time, status)."""

    url: str = ""
    hits: list[tuple[str, float, int]] = field(default_factory=list)


def _app(server: Server, rate: float) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        server.hits.append((request.path, time.monotonic(), response.status))
        return response

    async def namespace(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "forbidden":
            return web.json_response({"kind": "Status", "code": 403, "reason": "Forbidden"}, status=403)
        return web.json_response({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    async def cluster(request: web.Request) -> web.Response:
        if request.match_info["c"] == "missing":
            return web.json_response(
                {"error": {"code": 404, "message": "nope", "status": "NOT_FOUND"}}, status=404
            )
        return web.json_response(
            {"name": request.match_info["c"], "status": "RUNNING", "endpoint": "10.0.0.1"}
        )

    once: dict[str, int] = {}

    async def slow_down_once(request: web.Request) -> web.Response:
        once["n"] = once.get("n", 0) + 1
        if once["n"] == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({"ok": True})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[record, flaky_middleware(_Ctx(), seed=7, rate=rate)])
    app.router.add_get("/api/v1/namespaces/{name}", namespace)
    app.router.add_get("/v1/projects/{p}/locations/{l}/clusters/{c}", cluster)
    app.router.add_get("/twin/once", slow_down_once)  # /twin/ paths are exempt from api-flaky
    app.router.add_get("/echo", echo)
    return app


@pytest.fixture(scope="module")
def flaky_server() -> Iterator[Server]:
    """A server failing ~35% of calls with 429/500 + Retry-After: 1 (the twin's api-flaky middleware)."""
    server = Server()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: web.AppRunner | None = None

    async def start() -> None:
        nonlocal runner
        runner = web.AppRunner(_app(server, rate=0.35))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10), "test server did not start"
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _failures(server: Server, prefix: str) -> int:
    return sum(1 for path, _, status in server.hits if path.startswith(prefix) and status in (429, 500))


@pytest.mark.timeout(60)
def test_kubernetes_client_retries_429_and_500(flaky_server: Server) -> None:
    from kubernetes import client

    cfg = client.Configuration(host=flaky_server.url)
    cfg.retries = urllib3_retry(FAST)
    core = client.CoreV1Api(client.ApiClient(cfg))
    before = STATS.counts.get("kubernetes", 0)
    names = [core.read_namespace(f"ns-{i}").metadata.name for i in range(25)]
    assert names == [f"ns-{i}" for i in range(25)]
    injected = _failures(flaky_server, "/api/v1/namespaces/ns-")
    assert injected > 0, "the flaky middleware failed nothing: the test proves nothing"
    assert STATS.counts.get("kubernetes", 0) - before == injected


@pytest.mark.timeout(60)
def test_kubernetes_client_never_retries_other_4xx(flaky_server: Server) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    cfg = client.Configuration(host=flaky_server.url)
    cfg.retries = urllib3_retry(FAST)
    core = client.CoreV1Api(client.ApiClient(cfg))
    for _ in range(5):
        with pytest.raises(ApiException) as info:
            core.read_namespace("forbidden")
        assert info.value.status in (403, 429, 500)
        if info.value.status == 403:
            break
    answered_403 = [h for h in flaky_server.hits if h[0] == "/api/v1/namespaces/forbidden" and h[2] == 403]
    assert len(answered_403) == 1, "a 403 must be answered once, never retried"


@pytest.mark.timeout(60)
def test_gke_client_retries_transient_errors_not_404(flaky_server: Server) -> None:
    gke = container_v1.ClusterManagerClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options=ClientOptions(api_endpoint=flaky_server.url),
    )
    retry = google_retry(FAST)
    for i in range(20):
        cluster = gke.get_cluster(name=f"projects/p/locations/z/clusters/c{i}", retry=retry)
        assert cluster.name == f"c{i}" and cluster.endpoint == "10.0.0.1"
    assert _failures(flaky_server, "/v1/projects/p/locations/z/clusters/c") > 0
    hits_before = len([h for h in flaky_server.hits if h[0].endswith("/missing") and h[2] == 404])
    for _ in range(6):  # some attempts may draw a transient failure first; a 404 is final
        with pytest.raises(gexc.NotFound):
            gke.get_cluster(name="projects/p/locations/z/clusters/missing", retry=retry)
    answered_404 = len([h for h in flaky_server.hits if h[0].endswith("/missing") and h[2] == 404])
    assert answered_404 - hits_before == 6


@pytest.mark.timeout(60)
def test_httpx_transport_retries_and_honours_retry_after(flaky_server: Server) -> None:
    with httpx.Client(transport=RetryTransport(policy=FAST)) as client:
        assert all(client.get(f"{flaky_server.url}/echo").json() == {"ok": True} for _ in range(20))
        assert _failures(flaky_server, "/echo") > 0
        # Retry-After: 1 with a policy capped at 5 s: the second attempt comes at least 1 s later
        patient = RetryTransport(policy=Backoff(base_s=0.01, cap_s=5, max_attempts=3))
        with httpx.Client(transport=patient) as slow_client:
            assert slow_client.get(f"{flaky_server.url}/twin/once").status_code == 200
    attempts = [t for path, t, _ in flaky_server.hits if path == "/twin/once"]
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.95


@pytest.mark.timeout(60)
def test_async_httpx_transport_retries_5xx_and_passes_4xx_through(flaky_server: Server) -> None:
    async def run() -> tuple[list[int], int]:
        async with httpx.AsyncClient(transport=AsyncRetryTransport(policy=FAST)) as client:
            echoes = [(await client.get(f"{flaky_server.url}/echo")).status_code for _ in range(20)]
            forbidden = await client.get(f"{flaky_server.url}/api/v1/namespaces/forbidden")
            return echoes, forbidden.status_code

    failures_before = _failures(flaky_server, "/echo")
    hits_before = len([h for h in flaky_server.hits if h[0].endswith("/forbidden") and h[2] == 403])
    echoes, forbidden = asyncio.run(run())
    assert echoes == [200] * 20 and _failures(flaky_server, "/echo") > failures_before
    assert forbidden == 403
    answered_403 = len([h for h in flaky_server.hits if h[0].endswith("/forbidden") and h[2] == 403])
    assert answered_403 - hits_before == 1  # a 4xx other than 429 is answered, never retried


def test_backoff_grows_caps_and_obeys_retry_after() -> None:
    policy = Backoff(base_s=1, cap_s=8, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert policy.delay(1, retry_after=3) == 3
    assert policy.delay(1, retry_after=60) == 8
    jittered = Backoff(base_s=1, cap_s=8)
    assert all(2 <= jittered.delay(3) <= 4 for _ in range(50))


@pytest.mark.timeout(180)
def test_connect_on_a_flaky_twin_absorbs_transient_errors(tmp_path) -> None:
    """Scenario api-flaky: preflight, cluster creation and Kubernetes reads all succeed through retries."""
    from helpers_session import start_twin

    from rhaii_nb import cluster, preflight
    from rhaii_nb.session import connect, forget_sessions

    handle, session, params = start_twin(tmp_path / "twin", scenario=["api-flaky"])
    try:
        assert connect(params) is session, "connect must be re-entrant"
        before = STATS.total
        table = preflight.run(session, params, include_tools=False)
        assert table.ok, table.df.to_string()
        cluster.create(session, params, show=False)
        for _ in range(30):
            assert len(session.core.list_node().items) >= 3
        assert STATS.total > before, "api-flaky injected no error the helpers had to retry"
        assert session.retries == STATS.counts
    finally:
        forget_sessions()
        handle.stop()
