"""The Kubernetes API server of the twin: ``create_app(ctx)`` and ``KubeApiServer`` (HTTPS listener).

Authentication is a bearer token (``TwinHome.token()``, the one in the kubeconfig). As on a real
cluster with anonymous auth on, ``/healthz``, ``/livez``, ``/readyz`` and ``/version`` answer
anonymous requests; everything else answers 401 with a ``Status`` without the right token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.flaky import flaky_middleware
from rhaii_nb.twin.home import TwinHome
from rhaii_nb.twin.kube import admin, discovery, openapi
from rhaii_nb.twin.kube.handlers import ResourceHandlers
from rhaii_nb.twin.kube.responses import error_response, json_response, not_found, unauthorized

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": f"{openapi.KUBERNETES_VERSION}-gke.twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-02-12T00:00:00Z",
    "goVersion": "go1.22.12",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a Kubernetes ``Status`` response."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPNotFound:
        return error_response(not_found())
    except web.HTTPMethodNotAllowed:
        return error_response(
            ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        )
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("internal error serving %s %s", request.method, request.path)
        return error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))


def auth_middleware(token: str) -> Any:
    """Bearer-token authentication; the public health/version paths also answer anonymously."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is None:
            if request.path.rstrip("/").startswith(PUBLIC_PATHS):
                return await handler(request)
            raise unauthorized()
        if not hmac.compare_digest(header.strip().encode(), expected):
            raise unauthorized()
        return await handler(request)

    return middleware


async def version(request: web.Request) -> web.Response:
    """``/version``."""
    return json_response(VERSION_INFO)


async def health(request: web.Request) -> web.Response:
    """``/healthz``, ``/livez``, ``/readyz`` (and their ``/<check>`` sub-paths)."""
    if "verbose" in request.query:
        return web.Response(text="[+]ping ok\n[+]etcd ok\nhealthz check passed\n", content_type="text/plain")
    return web.Response(text="ok", content_type="text/plain")


def _types(request: web.Request) -> list[Any]:
    return list(request.app["ctx"].store.resource_types())


async def core_api(request: web.Request) -> web.Response:
    """``/api``."""
    return json_response(discovery.api_versions(request.host))


async def groups(request: web.Request) -> web.Response:
    """``/apis``."""
    return json_response(discovery.api_group_list(_types(request)))


async def openapi_v2(request: web.Request) -> web.Response:
    """``/openapi/v2`` is not served (clients use v3)."""
    raise not_found()


async def openapi_v3(request: web.Request) -> web.Response:
    """``/openapi/v3`` and ``/openapi/v3/<api|apis/group>/<version>``."""
    tail = request.match_info.get("tail", "").strip("/")
    types = _types(request)
    if not tail:
        return json_response(openapi.index_document(types))
    parts = tail.split("/")
    if parts[0] == "api" and len(parts) == 2:
        document = openapi.group_version_document(types, "", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        document = openapi.group_version_document(types, parts[1], parts[2])
    else:
        document = None
    if document is None:
        raise not_found()
    return json_response(document, headers={"Cache-Control": "public, immutable"})


def _discovery_document(request: web.Request) -> dict[str, Any] | None:
    """The discovery document of ``/api/v1``, ``/apis/<g>`` or ``/apis/<g>/<v>`` (None for other paths)."""
    parts = [p for p in request.path.split("/") if p]
    types = _types(request)
    if parts[0] == "api" and len(parts) == 2:
        return discovery.api_resource_list(types, "", parts[1]) or {}
    if parts[0] == "apis" and len(parts) == 2:
        return discovery.api_group(types, parts[1]) or {}
    if parts[0] == "apis" and len(parts) == 3:
        return discovery.api_resource_list(types, parts[1], parts[2]) or {}
    return None


def create_app(ctx: Any) -> web.Application:
    """The aiohttp application of the Kubernetes API over ``ctx.store``."""
    token = TwinHome(ctx.home).token()
    app = web.Application(
        middlewares=[status_errors, auth_middleware(token), flaky_middleware(ctx)],
        client_max_size=4 * 1024 * 1024,
    )
    app["ctx"] = ctx
    resources = ResourceHandlers(ctx)

    async def api_paths(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            document = _discovery_document(request)
            if document == {}:
                raise not_found()
            if document is not None:
                return json_response(document)
        return await resources.handle(request)

    async def close_proxy_session(app: web.Application) -> None:
        session = app.get("proxy_session")
        if session is not None:
            await session.close()

    app.on_cleanup.append(close_proxy_session)
    router = app.router
    for path in ("/version", "/version/"):
        router.add_get(path, version)
    for path in ("/healthz", "/livez", "/readyz"):
        router.add_get(path, health)
        router.add_get(path + "/{check:.*}", health)
    for path in ("/api", "/api/"):
        router.add_get(path, core_api)
    for path in ("/apis", "/apis/"):
        router.add_get(path, groups)
    router.add_get("/openapi/v2", openapi_v2)
    router.add_get("/openapi/v3", openapi_v3)
    router.add_get("/openapi/v3/{tail:.*}", openapi_v3)
    admin.add_routes(app)
    router.add_route("*", "/api/{tail:.+}", api_paths)
    router.add_route("*", "/apis/{tail:.+}", api_paths)
    return app


class KubeApiServer:
    """The HTTPS listener of the Kubernetes API on a fixed port; can be started and stopped repeatedly."""

    def __init__(self, ctx: Any, host: str, port: int) -> None:
        self.ctx = ctx
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the listener is up."""
        return self._runner is not None

    async def start(self) -> None:
        """Start listening (no-op when already listening)."""
        if self._runner is not None:
            return
        ssl_context = self.ctx.pki.server_ssl_context(["localhost"], ("127.0.0.1",))
        runner = web.AppRunner(create_app(self.ctx), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("Kubernetes API listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and close open connections (watches end)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("Kubernetes API on %s stopped", self.url)
