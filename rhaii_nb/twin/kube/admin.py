"""The twin's own admin paths on the Kubernetes API server (bearer token required, like the API).

- ``GET /twin/v1/scenarios`` → ``{"scenarios": [...]}``; ``PUT`` the same shape to switch failure
  scenarios at runtime (unknown names → 400 listing the known ones).
- ``POST /twin/v1/install-operators`` → runs ``rhaii_nb.twin.operators.install(ctx)`` inside the
  daemon (KServe, Istio, Gateway API CRDs and webhooks); 501 while that module is not there.
- ``POST /twin/v1/test/append-log`` ``{"namespace", "pod", "container", "lines": [...],
  "terminate": false}`` → appends to ``ctx.logs`` (for tests of ``logs -f`` without a kubelet).
"""

from __future__ import annotations

import inspect
import logging

from aiohttp import web

from rhaii_nb.scenarios import SCENARIOS
from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.home import TwinHome
from rhaii_nb.twin.kube import bodies
from rhaii_nb.twin.kube.responses import bad_request, json_response

log = logging.getLogger(__name__)


async def get_scenarios(request: web.Request) -> web.Response:
    """The scenarios switched on."""
    ctx = request.app["ctx"]
    return json_response({"scenarios": sorted(ctx.scenarios)})


async def put_scenarios(request: web.Request) -> web.Response:
    """Replace the set of scenarios switched on (and record it in endpoints.json)."""
    ctx = request.app["ctx"]
    body = await bodies.read_optional_json(request)
    wanted = body.get("scenarios")
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise bad_request('body must be {"scenarios": [names...]}')
    unknown = sorted(set(wanted) - set(SCENARIOS))
    if unknown:
        raise bad_request(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(SCENARIOS))}")
    ctx.scenarios = frozenset(wanted)
    home = TwinHome(ctx.home)
    endpoints = home.read_endpoints()
    if endpoints is not None:
        endpoints["scenarios"] = sorted(ctx.scenarios)
        home.write_endpoints(endpoints)
    log.info("scenarios now: %s", ", ".join(sorted(ctx.scenarios)) or "(none)")
    return json_response({"scenarios": sorted(ctx.scenarios)})


async def install_operators(request: web.Request) -> web.Response:
    """Run the operators' install inside the daemon."""
    ctx = request.app["ctx"]
    try:
        from rhaii_nb.twin import operators
    except ModuleNotFoundError as exc:
        if exc.name != "rhaii_nb.twin.operators":
            raise
        raise ApiError(
            501, "NotImplemented", "this twin has no operators module (rhaii_nb.twin.operators)"
        ) from None
    result = operators.install(ctx)
    if inspect.isawaitable(result):
        result = await result
    return json_response({"installed": result if isinstance(result, list | dict | str) else True})


async def append_log(request: web.Request) -> web.Response:
    """Append lines to a container's log (test helper)."""
    ctx = request.app["ctx"]
    body = await bodies.read_optional_json(request)
    try:
        namespace, pod, container = body["namespace"], body["pod"], body["container"]
    except KeyError as exc:
        raise bad_request(f"missing field {exc.args[0]}") from None
    lines = body.get("lines") or []
    if not isinstance(lines, list):
        raise bad_request("lines must be a list of strings")
    for line in lines:
        ctx.logs.append(namespace, pod, container, str(line))
    if body.get("terminate"):
        ctx.logs.terminate(namespace, pod, container)
    return json_response({"appended": len(lines)})


def add_routes(app: web.Application) -> None:
    """Register the admin paths."""
    app.router.add_get("/twin/v1/scenarios", get_scenarios)
    app.router.add_put("/twin/v1/scenarios", put_scenarios)
    app.router.add_post("/twin/v1/install-operators", install_operators)
    app.router.add_post("/twin/v1/test/append-log", append_log)
