"""``services/.../proxy`` and ``pods/.../proxy``: forward a request to a replica (of a Service, or one pod).

Endpoints are the pods the Service selects that have a ready replica server in ``ctx.replicas``.
NetworkPolicies apply with the API server as the source (``netpol.KUBE_APISERVER``) when the
gateway's NetworkPolicy evaluator is present. Failures are answered as kube-apiserver answers them:
404 ``services "x" not found`` (the store's own error), 503 ``no endpoints available for service "x"``
or an ``error trying to reach service`` message.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import aiohttp
from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.headers import HOP_BY_HOP
from rhaii_nb.twin.kube.paths import RequestInfo
from rhaii_nb.twin.kube.responses import service_unavailable

log = logging.getLogger(__name__)

# Besides the hop-by-hop headers: the caller's bearer token is for the API server, never for the pod,
# and aiohttp sets the length of what it forwards itself.
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "content-length"}
PROXY_TIMEOUT_SECONDS = 300
_round_robin = itertools.count()


def parse_service_ref(ref: str) -> tuple[str, str, str]:
    """``https:svc:8443`` → ``("https", "svc", "8443")``; scheme defaults to http, port to ``""``."""
    parts = ref.split(":")
    if len(parts) == 1:
        return "http", parts[0], ""
    if len(parts) == 2:
        if parts[0] in ("http", "https"):
            return parts[0], parts[1], ""
        return "http", parts[0], parts[1]
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return parts[0], parts[1], parts[2]
    raise ApiError(400, "BadRequest", f"invalid service request {ref}")


def _service_port(service: dict[str, Any], port: str) -> dict[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    if not port:
        if not ports:
            raise service_unavailable(f'no endpoints available for service "{service["metadata"]["name"]}"')
        return ports[0]
    for item in ports:
        if item.get("name") == port or str(item.get("port")) == port:
            return item
    raise service_unavailable(f'no endpoints available for service "{service["metadata"]["name"]}"')


def _target_port(pod: dict[str, Any], service_port: dict[str, Any]) -> int:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port.get("containerPort"))
    return int(service_port.get("port") or 0)


def _flow_check() -> Any:
    try:
        from rhaii_nb.twin.gateway import netpol
    except ModuleNotFoundError as exc:
        if exc.name not in ("rhaii_nb.twin.gateway", "rhaii_nb.twin.gateway.netpol"):
            raise
        return None
    return lambda ctx, pod, port: netpol.flow_allowed(ctx, netpol.KUBE_APISERVER, pod, port)


def pick_endpoint(
    ctx: Any, namespace: str, service: dict[str, Any], port: str
) -> tuple[Any, dict[str, Any], int]:
    """A ready, reachable replica behind the Service: ``(ReplicaInfo, pod, target port)``."""
    name = service["metadata"]["name"]
    service_port = _service_port(service, port)
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        raise service_unavailable(f'no endpoints available for service "{name}"')
    pods, _ = ctx.store.list(
        ctx.store.resource("", "v1", "pods"),
        namespace=namespace,
        label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items())),
    )
    candidates = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        replica = ctx.replicas.get(namespace, meta.get("name"))
        if replica is not None and replica.ready and not meta.get("deletionTimestamp"):
            candidates.append((replica, pod, _target_port(pod, service_port)))
    if not candidates:
        raise service_unavailable(f'no endpoints available for service "{name}"')
    check = _flow_check()
    if check is not None:
        allowed = [c for c in candidates if check(ctx, c[1], c[2])]
        if not allowed:
            pod_ip = (candidates[0][1].get("status") or {}).get("podIP") or candidates[0][0].host
            raise service_unavailable(
                f"error trying to reach service: dial tcp {pod_ip}:{candidates[0][2]}: i/o timeout"
            )
        candidates = allowed
    return candidates[next(_round_robin) % len(candidates)]


async def _session(request: web.Request) -> aiohttp.ClientSession:
    app = request.app
    session = app.get("proxy_session")
    if session is None or session.closed:
        # Bodies pass through untouched (no decompression): the client decodes what the replica sent.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_SECONDS), auto_decompress=False
        )
        app["proxy_session"] = session
    return session


async def proxy_to_service(ctx: Any, request: web.Request, info: RequestInfo) -> web.StreamResponse:
    """Forward the request to one endpoint of the Service and stream its answer back."""
    scheme, name, port = parse_service_ref(info.name or "")
    namespace = info.namespace or "default"
    service = ctx.store.get(ctx.store.resource("", "v1", "services"), name, namespace=namespace)
    replica, _pod, _port = pick_endpoint(ctx, namespace, service, port)
    return await _forward(ctx, request, scheme, replica, info.rest)


async def proxy_to_pod(ctx: Any, request: web.Request, info: RequestInfo) -> web.StreamResponse:
    """``pods/<[scheme:]name[:port]>/proxy/<path>``: forward to that pod's replica server.

    Like kube-apiserver it does not wait for readiness: a pod whose server is not running (not yet
    started, or not a workload pod) answers 503 with the API server's ``error trying to reach service``.
    """
    scheme, name, port = parse_service_ref(info.name or "")
    namespace = info.namespace or "default"
    pod = ctx.store.get(ctx.store.resource("", "v1", "pods"), name, namespace=namespace)
    replica = ctx.replicas.get(namespace, name)
    pod_ip = (pod.get("status") or {}).get("podIP") or "<none>"
    if replica is None:
        raise service_unavailable(
            f"error trying to reach service: dial tcp {pod_ip}:{port or 80}: connect: connection refused"
        )
    check = _flow_check()
    if check is not None and not check(ctx, pod, int(port) if port.isdigit() else replica.port):
        raise service_unavailable(f"error trying to reach service: dial tcp {pod_ip}:{port}: i/o timeout")
    return await _forward(ctx, request, scheme, replica, info.rest)


async def _forward(
    ctx: Any, request: web.Request, scheme: str, replica: Any, rest: str
) -> web.StreamResponse:
    """Send the request to ``replica`` and stream its answer back."""
    url = f"{scheme}://{replica.host}:{replica.port}{rest or '/'}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
    ssl_context = ctx.pki.client_ssl_context() if scheme == "https" and ctx.pki is not None else None
    session = await _session(request)
    body = await request.read()
    try:
        upstream = await session.request(
            request.method, url, params=request.query, headers=headers, data=body or None, ssl=ssl_context
        )
    except (aiohttp.ClientError, OSError) as exc:
        raise service_unavailable(f"error trying to reach service: {exc}") from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in NOT_FORWARDED:
                response.headers.add(key, value)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            log.info("service proxy stream to %s ended early: %s", url, exc)
        await response.write_eof()
    return response
