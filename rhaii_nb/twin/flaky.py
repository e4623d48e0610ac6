"""Scenario ``api-flaky``: a deterministic share of API calls fail with 500 or 429 + ``Retry-After``.

The same aiohttp middleware serves the Kubernetes API (Kubernetes ``Status`` bodies) and the GKE
API (which passes its own ``error_body`` for Google-shaped errors). The choice of which request
fails comes from a seeded random generator, so a run with the same requests fails the same ones.
Watches, log follows, health checks and the twin's admin paths are never failed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

FLAKY_SCENARIO = "api-flaky"
FAILURE_RATE = 0.08
DEFAULT_SEED = 20240611
RETRY_AFTER_SECONDS = 1
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/livez", "/twin/")

ErrorBody = Callable[[int, str], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kubernetes_status_body(code: int, message: str) -> dict[str, Any]:
    """A Kubernetes ``Status`` for an injected 429 or 500."""
    reason = "TooManyRequests" if code == 429 else "InternalError"
    details: dict[str, Any] = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
    if code != 429:
        details["causes"] = [{"message": message}]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def _is_streaming(request: web.Request) -> bool:
    query = request.query
    if query.get("watch", "").lower() in ("1", "true") or "/watch/" in request.path:
        return True
    return request.path.endswith("/log") and query.get("follow", "").lower() in ("1", "true")


def flaky_middleware(
    ctx: Any,
    error_body: ErrorBody = kubernetes_status_body,
    seed: int = DEFAULT_SEED,
    rate: float = FAILURE_RATE,
):
    """Build the middleware; it is inert unless ``ctx.scenario("api-flaky")`` is on (checked per request)."""
    rng = random.Random(seed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            not ctx.scenario(FLAKY_SCENARIO)
            or request.path.startswith(EXEMPT_PREFIXES)
            or _is_streaming(request)
        ):
            return await handler(request)
        draw = rng.random()
        if draw >= rate:
            return await handler(request)
        # The lower half of the failing band answers 429, the upper half 500.
        if draw < rate / 2:
            code, message = (
                429,
                "the server has received too many requests and has asked us to try again later",
            )
        else:
            code, message = 500, "Internal error occurred: transient failure injected by the twin (api-flaky)"
        return web.json_response(
            error_body(code, message), status=code, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    return middleware
