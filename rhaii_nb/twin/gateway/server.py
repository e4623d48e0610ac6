"""The twin's inference gateway: Istio ingress (plain HTTP) + EnvoyFilters + the EPP, over real sockets.

``create_app(ctx)`` serves ``/<namespace>/<service>/v1/...`` the way the guide's Gateway does:

- the path is matched against the HTTPRoutes bound to ``opendatahub/inference-gateway``
  (``routing.match_route``); no match → 404 with an empty body, like Envoy;
- the rule's backend (InferencePool or Service) gives the ready replicas (``ctx.replicas``); none →
  503 ``no healthy upstream``;
- for InferencePool rules with everything of the guide's steps 6–7 applied (``routing.epp_routing``)
  the EPP scheduler picks the replica (prefix index + load from ``/metrics`` scraped in the
  background); otherwise round-robin (the pool's ``FailOpen``), or 500 for ``FailClose``;
- NetworkPolicies are checked for the gateway pod → replica connection; a refused connection is
  retried on another endpoint (Istio's default: 2 retries on connect failure) and, when every
  attempt is refused, answered with Envoy's 503
  ``upstream connect error or disconnect/reset before headers. reset reason: connection failure``;
- the upstream is HTTPS verified with the twin CA; the response is streamed through chunk by
  chunk (SSE is not buffered).

Response headers added: ``x-rhaii-replica`` (pod that served), ``x-gateway-destination-endpoint``
(``<podIP>:<port>`` as the EPP names it), ``server: istio-envoy``, ``x-envoy-upstream-service-time``
and, twin-only, ``x-rhaii-routing: cache-aware|round-robin`` (no such header exists on GKE).

Routing follows what is applied: what the gateway derives from the store (route, backend, whether
the EPP is in the path, NetworkPolicy verdicts) is kept only while the store's resourceVersion stays
the same (``RoutingMemo``), so deleting or re-applying an EnvoyFilter changes the very next request,
and a request between two writes costs no store reads (each read copies objects: a few ms per
request, more than the rest of the gateway). To compare policies without touching the cluster, use
``rhaii_nb.twin.gateway.scheduler`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from rhaii_nb.twin.context import ReplicaInfo, TwinContext
from rhaii_nb.twin.gateway import netpol, routing
from rhaii_nb.twin.gateway.loads import SCRAPE_INTERVAL_S, scrape_load
from rhaii_nb.twin.gateway.scheduler import RoundRobinPicker, Scheduler, SchedulerConfig
from rhaii_nb.twin.gateway.scorers import EndpointLoad
from rhaii_nb.twin.headers import HOP_BY_HOP

log = logging.getLogger("rhaii_nb.twin.gateway")

NO_ROUTE_STATUS = 404
NO_HEALTHY_UPSTREAM = "no healthy upstream"
CONNECT_FAILURE = (
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
)
MAX_ATTEMPTS = 3  # Istio's default retry policy: 2 retries on connect-failure
EPP_IDLE_AFTER_S = 30.0  # stop scraping for a pool that has seen no request for this long
CONNECT_TIMEOUT_S = 10.0  # Istio's default connect timeout
REPLICA_PORT = 8000  # vLLM's container port, as NetworkPolicies see the EPP's scrape


@dataclass
class EppInstance:
    """The in-memory state of one running EPP (one per InferencePool): scheduler, index, loads."""

    pool_key: tuple[str, str]
    epp_uid: str
    scheduler: Scheduler
    backend: routing.Backend
    epp_pod: dict
    loads: dict[str, EndpointLoad] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)


def epp_config_from_pod(pod: dict) -> SchedulerConfig:
    """The scheduler config from the EPP container's ``--config-text`` argument, else RHAII's default."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        args = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        if len(args) == 1 and " " in args[0]:
            args = shlex.split(args[0])
        for i, arg in enumerate(args):
            text = None
            if arg == "--config-text" and i + 1 < len(args):
                text = args[i + 1]
            elif arg.startswith("--config-text="):
                text = arg.split("=", 1)[1]
            if text:
                try:
                    return SchedulerConfig.from_endpoint_picker_config(text)
                except (ValueError, TypeError, AttributeError) as exc:
                    log.warning(
                        "EPP %s: unusable --config-text (%s); using RHAII defaults", _pod_name(pod), exc
                    )
    return SchedulerConfig()


def request_prompt(body: bytes) -> tuple[str, str]:
    """``(prompt text, model)`` of a completions or chat request body ('' when not JSON)."""
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    model = str(doc.get("model") or "")
    if "messages" in doc and isinstance(doc["messages"], list):
        parts = []
        for message in doc["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return "\n".join(parts), model
    prompt = doc.get("prompt")
    if isinstance(prompt, str):
        return prompt, model
    if isinstance(prompt, list):
        return " ".join(p if isinstance(p, str) else json.dumps(p) for p in prompt), model
    return "", model


def _pod_name(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("name", "?")


class RoutingMemo:
    """Answers derived from the store, reused until the next write.

    Keyed by the store's resourceVersion (every committed write moves it) and the cluster's
    ``networkPolicyEnforced``; the replica registry is not part of any memoised answer.
    """

    MAX_ENTRIES = 4096  # arbitrary request paths must not grow it without bound between writes

    def __init__(self, ctx: TwinContext) -> None:
        self.ctx = ctx
        self._version: tuple[str, bool] | None = None
        self._values: dict[tuple, Any] = {}

    def get(self, key: tuple, compute: Any) -> Any:
        """``compute()``'s value for ``key``, computed once per store version."""
        version = (
            self.ctx.store.resource_version,
            bool((self.ctx.cluster or {}).get("networkPolicyEnforced", True)),
        )
        if version != self._version or len(self._values) >= self.MAX_ENTRIES:
            self._values.clear()
            self._version = version
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = compute()
            return value


class GatewayState:
    """Everything the gateway keeps between requests: HTTP client, pickers, EPP instances."""

    def __init__(
        self, ctx: TwinContext, *, seed: int = 0, scrape_interval: float = SCRAPE_INTERVAL_S
    ) -> None:
        self.ctx = ctx
        self.seed = seed
        self.scrape_interval = scrape_interval
        self.session: aiohttp.ClientSession | None = None
        self.round_robin: dict[tuple[str, str, str], RoundRobinPicker] = {}
        self.epps: dict[tuple[str, str], EppInstance] = {}
        self._modes: dict[tuple[str, str, int], str] = {}
        self._scraper: asyncio.Task | None = None
        self._ssl: ssl.SSLContext | None = None
        self.memo = RoutingMemo(ctx)

    async def start(self, _app: web.Application) -> None:
        """Open the upstream client and start the EPP's metrics scraper."""
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._scraper = asyncio.create_task(self._scrape_loop(), name="gateway-epp-scraper")

    async def close(self, _app: web.Application) -> None:
        """Stop the scraper and close the upstream client."""
        if self._scraper:
            self._scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scraper
        if self.session:
            await self.session.close()

    def ssl_for(self, info: ReplicaInfo) -> ssl.SSLContext | bool:
        """TLS settings for a replica: verify against the twin CA for HTTPS."""
        if not info.base_url.startswith("https://"):
            return False
        if self._ssl is None:
            if self.ctx.pki is None:
                raise RuntimeError("the twin context has no PKI: cannot verify replica certificates")
            self._ssl = self.ctx.pki.client_ssl_context()
        return self._ssl

    def epp_instance(self, backend: routing.Backend, epp_pod: dict) -> EppInstance:
        """The running EPP for a pool; a new (empty) one when the EPP pod changed (its memory is lost)."""
        key = (backend.namespace, backend.name)
        uid = (epp_pod.get("metadata") or {}).get("uid") or _pod_name(epp_pod)
        inst = self.epps.get(key)
        if inst is None or inst.epp_uid != uid:
            inst = EppInstance(
                key, uid, Scheduler(epp_config_from_pod(epp_pod), seed=self.seed), backend, epp_pod
            )
            self.epps[key] = inst
        inst.backend, inst.epp_pod, inst.last_used = backend, epp_pod, time.monotonic()
        return inst

    def note_mode(self, match: routing.RouteMatch, mode: str, missing: list[str]) -> None:
        """Log when a route's routing mode changes (and what is missing for cache-aware routing)."""
        key = (match.route_namespace, match.route_name, match.rule_index)
        if self._modes.get(key) != mode:
            self._modes[key] = mode
            detail = "; missing: " + "; ".join(missing) if missing else ""
            log.info("route %s: %s routing%s", match.istio_route_name, mode, detail)

    async def _scrape_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.scrape_once(spread_s=self.scrape_interval)
            except asyncio.CancelledError:
                raise
            except Exception:  # the scraper must survive anything a half-built cluster throws at it
                log.exception("EPP metrics scrape failed")
            await asyncio.sleep(max(0.0, started + self.scrape_interval - loop.time()))

    async def scrape_once(self, spread_s: float = 0.0) -> None:
        """One scrape of every active EPP's endpoints (what the EPP may reach under NetworkPolicies).

        The scrapes start ``spread_s / n`` apart instead of all at once: with many replicas a burst
        of scrapes holds the event loop for milliseconds, and every request in flight waits for it.
        Each endpoint's load is updated as soon as its own scrape lands."""
        if self.session is None:
            return
        now = time.monotonic()
        jobs: list[tuple[EppInstance, ReplicaInfo]] = []
        live = {(r.namespace, r.pod_name) for r in self.ctx.replicas.all()}
        for inst in list(self.epps.values()):
            for name in inst.scheduler.index.endpoints():
                if (inst.backend.namespace, name) not in live:
                    inst.scheduler.forget(name)  # the pod is gone, and its KV cache with it
                    inst.loads.pop(name, None)
            if now - inst.last_used > EPP_IDLE_AFTER_S:
                continue
            peer = netpol.epp_peer(inst.epp_pod)
            targets = [
                r
                for r in routing.ready_endpoints(self.ctx, inst.backend)
                if self.flow_allowed(peer, r, REPLICA_PORT).allowed
            ]
            wanted = {r.pod_name for r in targets}
            for name in [n for n in inst.loads if n not in wanted]:
                del inst.loads[name]  # gone, unready or no longer reachable: scorers see it idle
            jobs += [(inst, r) for r in targets]
        if not jobs:
            return
        gap = spread_s / len(jobs)
        await asyncio.gather(
            *(self._scrape_into(inst, info, index * gap) for index, (inst, info) in enumerate(jobs))
        )

    async def _scrape_into(self, inst: EppInstance, info: ReplicaInfo, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        assert self.session is not None
        load = await scrape_load(self.session, info.base_url, self.ssl_for(info))
        if load is None:
            inst.loads.pop(info.pod_name, None)
        else:
            inst.loads[info.pod_name] = load

    def pod_of(self, info: ReplicaInfo) -> dict:
        """The replica's pod object from the store (or its identity, if the store has none); read-only."""
        pod = self.memo.get(
            ("pod", info.namespace, info.pod_name),
            lambda: routing.get_object(self.ctx.store, "", "v1", "pods", info.pod_name, info.namespace),
        )
        if pod is not None:
            return pod
        return {"metadata": {"name": info.pod_name, "namespace": info.namespace, "labels": dict(info.labels)}}

    def flow_allowed(self, src: netpol.PeerRef, info: ReplicaInfo, port: int) -> netpol.Verdict:
        """NetworkPolicies' verdict on ``src`` → the replica's pod on ``port``."""
        labels = tuple(sorted((src.labels or {}).items()))
        key = ("flow", src.namespace, labels, src.ip, info.namespace, info.pod_name, port)
        return self.memo.get(key, lambda: netpol.flow_allowed(self.ctx, src, self.pod_of(info), port))

    def gateway_peer(self) -> netpol.PeerRef:
        """The gateway pod as a NetworkPolicy source."""
        return self.memo.get(("gateway-peer",), lambda: netpol.gateway_peer(self.ctx.store))


STATE_KEY = web.AppKey("rhaii_gateway_state", GatewayState)


def create_app(
    ctx: TwinContext, *, seed: int = 0, scrape_interval: float = SCRAPE_INTERVAL_S
) -> web.Application:
    """The gateway's aiohttp application (the daemon serves it over plain HTTP)."""
    app = web.Application(client_max_size=64 * 1024**2)
    state = GatewayState(ctx, seed=seed, scrape_interval=scrape_interval)
    app[STATE_KEY] = state
    app.on_startup.append(state.start)
    app.on_cleanup.append(state.close)
    app.router.add_get("/healthz", _healthz)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    return app


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _envoy_reply(status: int, text: str = "", extra: dict[str, str] | None = None) -> web.Response:
    headers = {"server": "istio-envoy", **(extra or {})}
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


async def _proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ctx = state.ctx
    memo = state.memo
    match = memo.get(("route", request.path), lambda: routing.match_route(ctx.store, request.path))
    if match is None:
        return web.Response(status=NO_ROUTE_STATUS, headers={"server": "istio-envoy"})
    backend = memo.get(("backend", match), lambda: routing.resolve_backend(ctx.store, match))
    if backend.error:
        log.warning("route %s: %s", match.istio_route_name, backend.error)
        return _envoy_reply(500)
    body = await request.read()
    endpoints = routing.ready_endpoints(ctx, backend)

    mode, missing, first = "round-robin", [], None
    if backend.kind == "InferencePool":
        epp = memo.get(("epp", match), lambda: routing.epp_routing(ctx, match, backend))
        missing = epp.missing
        if epp.active and endpoints and epp.epp_pod is not None:
            inst = state.epp_instance(backend, epp.epp_pod)
            prompt, model = request_prompt(body)
            names_ = [r.pod_name for r in endpoints]
            first = inst.scheduler.pick(prompt, names_, inst.loads, model=model)
            mode = "cache-aware"
        elif not epp.active and backend.failure_mode == "FailClose":
            state.note_mode(match, "refused (ext_proc failed, FailClose)", missing)
            return _envoy_reply(500)
    state.note_mode(match, mode, missing)
    if not endpoints:
        return _envoy_reply(503, NO_HEALTHY_UPSTREAM)

    rr_key = (backend.kind, backend.namespace, backend.name)
    picker = state.round_robin.setdefault(rr_key, RoundRobinPicker())
    by_name = {r.pod_name: r for r in endpoints}
    if first is None:
        first = picker.pick("", list(by_name))
    order = [first] + [n for n in sorted(by_name) if n != first]
    for name in order[:MAX_ATTEMPTS]:
        info = by_name[name]
        if not info.ready:  # left the pool while we were choosing
            continue
        verdict = state.flow_allowed(state.gateway_peer(), info, match.port)
        if not verdict.allowed:
            log.info("gateway -> %s/%s:%d refused: %s", info.namespace, name, match.port, verdict.reason)
            continue
        response = await _forward(request, state, match, info, state.pod_of(info), body, mode)
        if response is not None:
            return response
    return _envoy_reply(503, CONNECT_FAILURE)


def _destination(info: ReplicaInfo, pod: dict, port: int) -> str:
    ip = (pod.get("status") or {}).get("podIP")
    return f"{ip}:{port}" if ip else f"{info.host}:{info.port}"


async def _forward(
    request: web.Request,
    state: GatewayState,
    match: routing.RouteMatch,
    info: ReplicaInfo,
    pod: dict,
    body: bytes,
    mode: str,
) -> web.StreamResponse | None:
    """Send the request to one replica and stream the answer back; None on connect failure."""
    assert state.session is not None
    destination = _destination(info, pod, match.port)
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
    )
    headers["x-forwarded-proto"] = "http"
    headers["x-gateway-destination-endpoint"] = destination
    if match.upstream_path != request.path:
        headers["x-envoy-original-path"] = request.path_qs
    if request.remote:
        headers["x-forwarded-for"] = request.remote
    url = info.base_url + match.upstream_path + (f"?{request.query_string}" if request.query_string else "")
    started = time.monotonic()
    try:
        upstream = await state.session.request(
            request.method,
            url,
            headers=headers,
            data=body if body else None,
            ssl=state.ssl_for(info),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
        )
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        log.info("gateway -> %s failed before headers: %s", info.pod_name, exc)
        return None
    try:
        out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP and key.lower() != "server":
                out.headers.add(key, value)
        out.headers["server"] = "istio-envoy"
        out.headers["x-envoy-upstream-service-time"] = str(int((time.monotonic() - started) * 1000))
        out.headers["x-rhaii-replica"] = info.pod_name
        out.headers["x-gateway-destination-endpoint"] = destination
        out.headers["x-rhaii-routing"] = mode
        await out.prepare(request)
        async for chunk in upstream.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
    except aiohttp.ClientPayloadError as exc:
        # The replica went away mid-body: reset the client's connection like Envoy does.
        upstream.close()
        log.info("gateway <- %s reset mid-response: %s", info.pod_name, exc)
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError(f"upstream {info.pod_name} reset mid-response") from exc
    except BaseException:  # client went away (cancellation) or a write failed: drop the upstream too
        upstream.close()
        raise
    upstream.release()
    return out


def describe_routing(ctx: TwinContext, path: str) -> dict[str, Any]:
    """What the gateway would do with ``path`` now: route, backend, endpoints, EPP and why (diagnosis)."""
    match = routing.match_route(ctx.store, path)
    if match is None:
        return {"route": None}
    backend = routing.resolve_backend(ctx.store, match)
    info: dict[str, Any] = {
        "route": match.istio_route_name,
        "upstream_path": match.upstream_path,
        "backend": f"{backend.kind}/{backend.namespace}/{backend.name}",
        "backend_error": backend.error,
        "endpoints": [r.pod_name for r in routing.ready_endpoints(ctx, backend)] if not backend.error else [],
    }
    if backend.kind == "InferencePool" and not backend.error:
        epp = routing.epp_routing(ctx, match, backend)
        info["mode"] = "cache-aware" if epp.active else "round-robin"
        info["missing"] = epp.missing
        info["failure_mode"] = backend.failure_mode
    else:
        info["mode"] = "round-robin"
        info["missing"] = []
    return info
