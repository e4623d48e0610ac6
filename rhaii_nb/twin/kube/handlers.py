"""Resource verbs over the store: get, list (+ Table, limit/continue), watch, create, update, patch,
delete and deletecollection, plus dispatch of subresources."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube import bodies, subresources
from rhaii_nb.twin.kube.paths import RequestInfo, parse_resource_path
from rhaii_nb.twin.kube.responses import bad_request, json_response, not_found, status_body
from rhaii_nb.twin.kube.tables import include_object_policy, to_table, wants_table
from rhaii_nb.twin.kube.watch import serve_watch
from rhaii_nb.twin.resources import ResourceType

PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
# Kinds whose DELETE answers with the deleted object; the others answer a Success Status.
RETURNS_DELETED_OBJECT = {"/pods", "/namespaces", "apiextensions.k8s.io/customresourcedefinitions"}


def flag(value: str | None) -> bool:
    """A boolean query parameter (``true``/``1``)."""
    return (value or "").lower() in ("1", "true", "yes")


def int_param(query: Any, name: str) -> int | None:
    """An integer query parameter, 400 when malformed."""
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{value}": must be an integer') from None


def dry_run(query: Any) -> bool:
    """``?dryRun=All`` → True; any other value is rejected as the server does."""
    values = query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise ApiError(
                400, "BadRequest", f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


def field_manager(query: Any, default: str | None = None) -> str | None:
    """``?fieldManager=``, checked for length as the server does."""
    manager = query.get("fieldManager") or default
    if manager and len(manager) > 128:
        raise bad_request(f"fieldManager: Too long: may not be more than 128 bytes, found {len(manager)}")
    return manager


def field_validation(query: Any) -> str:
    """``?fieldValidation=``: Strict, Warn or Ignore (Warn when absent, as the server defaults)."""
    value = query.get("fieldValidation") or "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"'
        )
    return value


def user_agent_manager(request: web.Request) -> str:
    """The default field manager: the user agent's program name (``kubectl``, ``OpenAPI-Generator``)."""
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def write_options(request: web.Request) -> dict[str, Any]:
    """The store options of a create or update: ``fieldManager`` (default: the user agent) and ``dryRun``."""
    return {
        "field_manager": field_manager(request.query, user_agent_manager(request)),
        "dry_run": dry_run(request.query),
    }


def selector_options(query: Any) -> dict[str, str | None]:
    """The store options of a collection read or delete: ``labelSelector`` and ``fieldSelector``."""
    return {
        "label_selector": query.get("labelSelector") or None,
        "field_selector": query.get("fieldSelector") or None,
    }


def deletion_options(options: dict[str, Any]) -> dict[str, Any]:
    """The store options of a delete, from validated DeleteOptions (see :func:`delete_options`)."""
    return {
        "propagation": options.get("propagationPolicy") or "Background",
        "grace_seconds": options.get("gracePeriodSeconds"),
        "dry_run": options.get("dryRun") == ["All"],
    }


def lookup(store: Any, info: RequestInfo) -> ResourceType:
    """The served resource type of a request, 404 when none."""
    try:
        rt = store.resource(info.group, info.version, info.resource)
    except (KeyError, ApiError):
        raise not_found() from None
    if rt is None:
        raise not_found()
    if not rt.namespaced and info.namespace is not None:
        raise not_found()
    return rt


def warning_headers(warnings: list[str]) -> dict[str, str] | None:
    """``Warning: 299 - "..."`` headers (kubectl prints them as ``Warning: ...``)."""
    if not warnings:
        return None
    return {"Warning": ", ".join('299 - "' + w.replace('"', "'") + '"' for w in warnings)}


class ResourceHandlers:
    """HTTP verbs on ``/api/...`` and ``/apis/...`` resource paths."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    @property
    def store(self) -> Any:
        """The twin's object store."""
        return self.ctx.store

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route one resource request by path and method."""
        info = parse_resource_path(request.path)
        if info is None:
            raise not_found()
        rt = lookup(self.store, info)
        if rt.namespaced and info.namespace is None and info.name is not None:
            raise not_found()
        if info.subresource is not None:
            return await subresources.handle(self.ctx, request, rt, info)
        if info.legacy_watch or (request.method == "GET" and flag(request.query.get("watch"))):
            return await self.watch(request, rt, info)
        method = request.method
        if info.name is None:
            verbs = {"GET": self.list, "POST": self.create, "DELETE": self.delete_collection}
        else:
            verbs = {"GET": self.get, "PUT": self.update, "PATCH": self.patch, "DELETE": self.delete}
        handler = verbs.get(method)
        if handler is None:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        return await handler(request, rt, info)

    def _check_verb(self, rt: ResourceType, verb: str) -> None:
        if verb not in rt.verbs:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )

    # ---- reads ---------------------------------------------------------------------------------

    async def get(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """GET one object (as a Table when asked)."""
        self._check_verb(rt, "get")
        obj = self.store.get(rt, info.name, namespace=info.namespace)
        if wants_table(request.headers.get("Accept")):
            policy = include_object_policy(request.query.get("includeObject"))
            rv = (obj.get("metadata") or {}).get("resourceVersion", "")
            return json_response(to_table(rt, [obj], {"resourceVersion": rv}, policy))
        return json_response(obj)

    async def list(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """GET a collection (one namespace or all), filtered, paginated, as a List or a Table."""
        self._check_verb(rt, "list")
        query = request.query
        result = self.store.list(
            rt,
            namespace=info.namespace,
            **selector_options(query),
            limit=int_param(query, "limit"),
            continue_token=query.get("continue") or None,
        )
        metadata: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
            if result.remaining is not None:
                metadata["remainingItemCount"] = result.remaining
        if wants_table(request.headers.get("Accept")):
            policy = include_object_policy(query.get("includeObject"))
            return json_response(to_table(rt, result.items, metadata, policy))
        return json_response(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": result.items}
        )

    async def watch(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.StreamResponse:
        """A watch on a collection, or on one object (legacy ``/watch/.../name``)."""
        self._check_verb(rt, "watch")
        query = request.query
        field_selector = query.get("fieldSelector") or ""
        if info.name is not None:
            by_name = f"metadata.name={info.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        table = wants_table(request.headers.get("Accept"))
        return await serve_watch(
            request,
            self.store,
            rt,
            namespace=info.namespace,
            resource_version=query.get("resourceVersion"),
            label_selector=query.get("labelSelector"),
            field_selector=field_selector,
            timeout_seconds=int_param(query, "timeoutSeconds"),
            bookmarks=flag(query.get("allowWatchBookmarks")),
            table_policy=include_object_policy(query.get("includeObject")) if table else None,
        )

    # ---- writes --------------------------------------------------------------------------------

    async def create(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """POST: create an object (``dryRun``, ``fieldManager``, ``fieldValidation``)."""
        self._check_verb(rt, "create")
        if rt.namespaced and info.namespace is None:
            raise not_found()
        body = await bodies.read_object(request)
        warnings: list[str] = []
        created = self.store.create(
            rt,
            body,
            namespace=info.namespace,
            **write_options(request),
            field_validation=field_validation(request.query),
            warnings=warnings,
        )
        return json_response(created, status=201, headers=warning_headers(warnings))

    async def update(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """PUT: replace an object (409 on a stale resourceVersion; creates it when absent, as PUT may)."""
        self._check_verb(rt, "update")
        body = await bodies.read_object(request)
        warnings: list[str] = []
        updated = self.store.update(
            rt,
            body,
            namespace=info.namespace,
            name=info.name,
            **write_options(request),
            field_validation=field_validation(request.query),
            warnings=warnings,
        )
        return json_response(updated, headers=warning_headers(warnings))

    async def patch(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """PATCH: merge, strategic, JSON or server-side apply (which creates a missing object)."""
        self._check_verb(rt, "patch")
        result, created, warnings = await patch_object(self.ctx, request, rt, info, subresource=None)
        return json_response(result, status=201 if created else 200, headers=warning_headers(warnings))

    async def delete(self, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
        """DELETE one object with DeleteOptions (body or query)."""
        self._check_verb(rt, "delete")
        options = await delete_options(request)
        current = self.store.get(rt, info.name, namespace=info.namespace)
        result = self.store.delete(
            rt,
            info.name,
            namespace=info.namespace,
            preconditions=options.get("preconditions"),
            **deletion_options(options),
        )
        return self._deleted_response(rt, info, result, current)

    def _deleted_response(
        self, rt: ResourceType, info: RequestInfo, result: dict[str, Any], current: dict[str, Any]
    ) -> web.Response:
        try:
            still_there = self.store.get(rt, info.name, namespace=info.namespace)
        except ApiError:
            still_there = None
        if still_there is not None:
            return json_response(result or still_there, status=202)
        if rt.crd_name is not None or f"{rt.group}/{rt.plural}" in RETURNS_DELETED_OBJECT:
            return json_response(result or current)
        meta = current.get("metadata") or {}
        details: dict[str, Any] = {"name": info.name}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
        details["uid"] = meta.get("uid")
        return json_response(status_body(200, "", "", details, success=True))

    async def delete_collection(
        self, request: web.Request, rt: ResourceType, info: RequestInfo
    ) -> web.Response:
        """DELETE a collection: every object matching the selectors; answers the list of deleted objects."""
        self._check_verb(rt, "deletecollection")
        options = await delete_options(request)
        deleted = self.store.delete_collection(
            rt, namespace=info.namespace, **selector_options(request.query), **deletion_options(options)
        )
        metadata = {"resourceVersion": self.store.resource_version}
        return json_response(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": deleted}
        )


async def patch_object(
    ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo, subresource: str | None
) -> tuple[dict[str, Any], bool, list[str]]:
    """Apply a PATCH request to an object (or its status); returns ``(object, created, warnings)``."""
    query = request.query
    patch_type, patch = await bodies.read_patch(request)
    manager = field_manager(query, None if patch_type == "apply" else user_agent_manager(request))
    force = flag(query.get("force"))
    if patch_type != "apply" and "force" in query:
        raise bad_request("force: Forbidden: may not be specified for non-apply patch")
    existed = patch_type != "apply" or ctx.store.exists(rt, info.name, namespace=info.namespace)
    warnings: list[str] = []
    result = ctx.store.patch(
        rt,
        info.name,
        patch,
        patch_type,
        namespace=info.namespace,
        subresource=subresource,
        field_manager=manager,
        force=force,
        dry_run=dry_run(query),
        field_validation=query.get("fieldValidation") and field_validation(query),
        warnings=warnings,
    )
    return result, not existed, warnings


async def delete_options(request: web.Request) -> dict[str, Any]:
    """DeleteOptions from the body, overridden by query parameters, validated."""
    body = await bodies.read_optional_json(request)
    options = {k: v for k, v in body.items() if k not in ("kind", "apiVersion")}
    query = request.query
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int_param(query, "gracePeriodSeconds")
    if "orphanDependents" in query:
        options["orphanDependents"] = flag(query["orphanDependents"])
    if query.getall("dryRun", []):
        dry_run(query)
        options["dryRun"] = ["All"]
    if options.get("orphanDependents") is not None and "propagationPolicy" not in options:
        options["propagationPolicy"] = "Orphan" if options["orphanDependents"] else "Background"
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise ApiError(
            422,
            "Invalid",
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
            'supported values: "Foreground", "Background", "Orphan", "nil"',
        )
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        raise bad_request(f"gracePeriodSeconds: Invalid value: {grace}: must be >= 0")
    return options
