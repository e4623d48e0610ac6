"""The twin's Google APIs on one plain-HTTP server: GKE (container v1), Cloud Quotas, Resource Manager.

Contract for clients (``rhaii_nb/gcp.py``, gcloud, tests) — one base URL ``B`` (``endpoints.json``
key ``gke``, e.g. ``http://127.0.0.1:PORT``) replaces every Google host below; paths are Google's:

container.googleapis.com (GKE v1), both ``locations/{l}`` and legacy ``zones/{z}`` forms:
  ``/v1/projects/{p}/locations/{l}/clusters[/{c}]`` GET (list/get), POST (create), DELETE;
  ``.../clusters/{c}/nodePools[/{np}]`` GET, POST, DELETE; ``.../nodePools/{np}:setSize`` POST
  (legacy ``.../nodePools/{np}/setSize``); ``/v1/projects/{p}/locations/{l}/operations[/{op}]`` GET;
  ``/v1/projects/{p}/locations/{l}/serverConfig`` GET (legacy ``.../zones/{z}/serverconfig``).
cloudquotas.googleapis.com (Cloud Quotas v1):
  ``/v1/projects/{p}/locations/global/services/{svc}/quotaInfos[/{id}]`` GET — TPU v6e chips per region
  are ``TPUS-PER-TPU-FAMILY-per-project-region`` with dimensions ``region`` and ``tpu_family: CT6E``.
cloudresourcemanager.googleapis.com: ``/v3/projects/{p}:testIamPermissions`` and
  ``/v1/projects/{p}:testIamPermissions`` POST (every requested permission is granted);
  ``/v3/projects/{p}`` and ``/v1/projects/{p}`` GET.
serviceusage.googleapis.com: ``/v1/projects/{p}/services/{svc}`` GET (every API is ENABLED).
compute.googleapis.com: ``/compute/v1/projects/{p}/zones/{z}/machineTypes/{mt}`` GET (404 when the
  zone does not offer the machine type).
twin admin (not Google): ``/twin/v1/tpu-quota`` GET, PUT ``{"region": R, "chips": N}``; ``/healthz``.

- google-cloud-container: ``ClusterManagerClient(transport="rest", credentials=AnonymousCredentials(),
  client_options={"api_endpoint": B})``. Quotas/IAM: plain REST (httpx) at ``B``.
- gcloud: ``CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER=B/`` and, because ``clusters create`` first
  checks that the container API is enabled, ``CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE=B/``;
  with ``CLOUDSDK_CONFIG`` in a temporary directory holding ``auth/disable_credentials true`` and
  ``core/project``. See ``gcloud_env()``.
- Auth: any bearer token or none is accepted (the twin's identity owns any project).
- Errors: ``{"error": {"code", "message", "status"}}``; 404 NOT_FOUND, 409 ALREADY_EXISTS,
  400 INVALID_ARGUMENT / FAILED_PRECONDITION. Mutating calls answer an ``Operation`` that goes
  RUNNING → DONE; poll ``operations/{name}``. Container v1 has no server-side wait.
- Scenario ``api-flaky``: ``rhaii_nb.twin.flaky.flaky_middleware`` with Google-shaped bodies.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from rhaii_nb.gcp_catalog import load_catalog
from rhaii_nb.twin.gke import iam
from rhaii_nb.twin.gke.cluster import MASTER_VERSION, GkeState, state
from rhaii_nb.twin.gke.errors import GoogleError, error_body, invalid_argument, not_found

log = logging.getLogger(__name__)

Handler = Callable[[GkeState, web.Request, dict[str, str], dict[str, Any]], Awaitable[Any]]
_SEG = r"[^/:]+"
# Both GKE path styles: locations/{l} and the legacy zones/{l}.
_LOC = rf"/v1/projects/(?P<p>{_SEG})/(?:locations|zones)/(?P<l>{_SEG})"
_CLUSTER = rf"{_LOC}/clusters/(?P<c>{_SEG})"
_POOL = rf"{_CLUSTER}/nodePools/(?P<np>{_SEG})"


def _op(op: Any) -> dict[str, Any]:
    return op.to_json()


async def _list_clusters(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    clusters = gke.list_clusters(m["p"], m["l"])
    return {"clusters": [c.to_json() for c in clusters]} if clusters else {}


async def _create_cluster(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return _op(gke.create_cluster(m["p"], m["l"], body))


async def _get_cluster(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return gke.cluster(m["p"], m["l"], m["c"]).to_json()


async def _delete_cluster(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return _op(gke.delete_cluster(m["p"], m["l"], m["c"]))


async def _list_pools(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    cluster = gke.cluster(m["p"], m["l"], m["c"])
    return {
        "nodePools": [
            p.to_json(cluster.project, cluster.location, cluster.name) for p in cluster.pools.values()
        ]
    }


async def _create_pool(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return _op(gke.create_node_pool(m["p"], m["l"], m["c"], body))


async def _get_pool(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    cluster = gke.cluster(m["p"], m["l"], m["c"])
    return cluster.pool(m["np"]).to_json(cluster.project, cluster.location, cluster.name)


async def _delete_pool(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return _op(gke.delete_node_pool(m["p"], m["l"], m["c"], m["np"]))


async def _set_size(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return _op(gke.set_node_pool_size(m["p"], m["l"], m["c"], m["np"], body))


async def _list_ops(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return {"operations": [op.to_json() for op in gke.operations.list(m["p"], m["l"])]}


async def _get_op(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return gke.operations.get(m["p"], m["l"], m["op"]).to_json()


async def _server_config(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    gke._zone(m["l"])  # 404 for an unknown location, as GKE answers
    return {
        "defaultClusterVersion": MASTER_VERSION,
        "validNodeVersions": [MASTER_VERSION],
        "defaultImageType": "COS_CONTAINERD",
        "validImageTypes": ["COS_CONTAINERD", "UBUNTU_CONTAINERD"],
        "validMasterVersions": [MASTER_VERSION],
        "channels": [
            {"channel": "REGULAR", "defaultVersion": MASTER_VERSION, "validVersions": [MASTER_VERSION]}
        ],
    }


async def _quota_infos(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    if m["svc"] != "compute.googleapis.com":
        return {}
    infos = gke.quota.quota_infos(m["p"])
    size = int(req.query.get("pageSize") or 100)
    start = int(req.query.get("pageToken") or 0)
    page: dict[str, Any] = {"quotaInfos": infos[start : start + size]}
    if start + size < len(infos):
        page["nextPageToken"] = str(start + size)
    return page


async def _quota_info(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return gke.quota.quota_info(m["p"], m["svc"], m["id"])


async def _test_iam(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return iam.test_iam_permissions(body)


async def _project_v1(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return iam.project_v1(m["p"])


async def _project_v3(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return iam.project_v3(m["p"])


async def _service(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return iam.service_v1(m["p"], m["svc"])


async def _machine_type(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    catalog = load_catalog()
    machine = catalog.machine_type(m["mt"])
    if machine is None or not catalog.offers(m["z"], m["mt"]):
        raise not_found(
            f"The resource 'projects/{m['p']}/zones/{m['z']}/machineTypes/{m['mt']}' was not found"
        )
    return {
        "kind": "compute#machineType",
        "name": machine.name,
        "description": f"{machine.vcpus} vCPUs, {machine.memory_gib:g} GB RAM"
        + (f", {machine.chips} TPU v6e chips" if machine.chips else ""),
        "guestCpus": machine.vcpus,
        "memoryMb": int(machine.memory_gib * 1024),
        "zone": m["z"],
        "isSharedCpu": False,
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{m['p']}/zones/{m['z']}/machineTypes/{machine.name}",
    }


async def _get_tpu_quota(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return {region: gke.quota.limit(region) for region in gke.quota.tpu_regions()}


async def _put_tpu_quota(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    try:
        gke.quota.set_limit(str(body.get("region", "")), int(body.get("chips", -1)))
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f'{exc}; send {{"region": "europe-west4", "chips": 16}}') from None
    return await _get_tpu_quota(gke, req, m, body)


async def _healthz(gke: GkeState, req: web.Request, m: dict[str, str], body: dict[str, Any]) -> Any:
    return {"status": "ok"}


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", rf"{_LOC}/clusters", _list_clusters),
    ("POST", rf"{_LOC}/clusters", _create_cluster),
    ("GET", _CLUSTER, _get_cluster),
    ("DELETE", _CLUSTER, _delete_cluster),
    ("GET", rf"{_CLUSTER}/nodePools", _list_pools),
    ("POST", rf"{_CLUSTER}/nodePools", _create_pool),
    ("GET", _POOL, _get_pool),
    ("DELETE", _POOL, _delete_pool),
    ("POST", rf"{_POOL}(?::setSize|/setSize)", _set_size),
    ("GET", rf"{_LOC}/operations", _list_ops),
    ("GET", rf"{_LOC}/operations/(?P<op>{_SEG})", _get_op),
    ("GET", rf"{_LOC}/(?:serverConfig|serverconfig)", _server_config),
    (
        "GET",
        rf"/v1/projects/(?P<p>{_SEG})/locations/global/services/(?P<svc>{_SEG})/quotaInfos",
        _quota_infos,
    ),
    (
        "GET",
        rf"/v1/projects/(?P<p>{_SEG})/locations/global/services/(?P<svc>{_SEG})/quotaInfos/(?P<id>{_SEG})",
        _quota_info,
    ),
    ("POST", rf"/v[13]/projects/(?P<p>{_SEG}):testIamPermissions", _test_iam),
    ("GET", rf"/v1/projects/(?P<p>{_SEG})", _project_v1),
    ("GET", rf"/v3/projects/(?P<p>{_SEG})", _project_v3),
    ("GET", rf"/v1/projects/(?P<p>{_SEG})/services/(?P<svc>{_SEG})", _service),
    (
        "GET",
        rf"/compute/v1/projects/(?P<p>{_SEG})/zones/(?P<z>{_SEG})/machineTypes/(?P<mt>{_SEG})",
        _machine_type,
    ),
    ("GET", r"/twin/v1/tpu-quota", _get_tpu_quota),
    ("PUT", r"/twin/v1/tpu-quota", _put_tpu_quota),
    ("GET", r"/healthz", _healthz),
]
_COMPILED = [(method, re.compile(pattern + r"/?$"), handler) for method, pattern, handler in ROUTES]


def _match(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    allowed = False
    for route_method, pattern, handler in _COMPILED:
        found = pattern.match(path)
        if found is None:
            continue
        if route_method == method:
            return handler, found.groupdict()
        allowed = True
    if allowed:
        raise GoogleError(405, f"Method {method} is not allowed on {path}.", "UNIMPLEMENTED")
    raise not_found(f"The twin's Google APIs do not serve {method} {path}.")


async def _read_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise invalid_argument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise invalid_argument("Invalid JSON payload received. Expected an object.")
    return body


def create_app(ctx: Any) -> web.Application:
    """The aiohttp application serving the twin's Google APIs (see the module docstring)."""
    gke = state(ctx)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        try:
            handler, match = _match(request.method, request.path)
            body = await _read_body(request) if request.method in ("POST", "PUT", "PATCH") else {}
            result = await handler(gke, request, match, body)
        except GoogleError as exc:
            return web.json_response(exc.body(), status=exc.code)
        return web.json_response(result)

    middlewares = []
    try:
        from rhaii_nb.twin.flaky import flaky_middleware

        middlewares.append(flaky_middleware(ctx, error_body=lambda code, message: error_body(code, message)))
    except ModuleNotFoundError as exc:  # pragma: no cover - flaky.py is part of the twin
        if exc.name != "rhaii_nb.twin.flaky":
            raise
    app = web.Application(middlewares=middlewares)
    app.router.add_route("*", "/{tail:.*}", dispatch)

    async def on_startup(_app: web.Application) -> None:
        await gke.resume()

    async def on_cleanup(_app: web.Application) -> None:
        await gke.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def gcloud_env(base_url: str, config_dir: Path | str, project: str = "twin-project") -> dict[str, str]:
    """Environment variables making ``gcloud container`` talk to the twin, offline, without credentials.

    Writes a gcloud configuration into ``config_dir`` (``CLOUDSDK_CONFIG``) with credentials
    disabled and the project set; merge the result into ``os.environ`` for the subprocess.
    """
    config_dir = Path(config_dir)
    configurations = config_dir / "configurations"
    configurations.mkdir(parents=True, exist_ok=True)
    (config_dir / "active_config").write_text("default")
    (configurations / "config_default").write_text(
        "[core]\n"
        f"project = {project}\n"
        "disable_usage_reporting = true\n"
        "should_prompt_to_enable_api = false\n"
        "[auth]\n"
        "disable_credentials = true\n"
        "[component_manager]\n"
        "disable_update_check = true\n"
    )
    base = base_url.rstrip("/") + "/"
    return {
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER": base,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE": base,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": base,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_PROJECT": project,
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(config_dir),
    }
