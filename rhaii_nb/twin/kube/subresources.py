"""Subresources: ``status``, ``scale`` (autoscaling/v1 Scale), ``pods/log``, ``pods/eviction``,
``pods/binding``, ``services/proxy``, ``pods/proxy`` and ``namespaces/finalize``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube import bodies
from rhaii_nb.twin.kube.paths import RequestInfo
from rhaii_nb.twin.kube.responses import bad_request, json_response, not_found, status_body
from rhaii_nb.twin.resources import ResourceType

METHOD_NOT_ALLOWED = "the server does not allow this method on the requested resource"


def _not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", METHOD_NOT_ALLOWED)


async def handle(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.StreamResponse:
    """Dispatch ``<resource>/<name>/<subresource>``; 404 for subresources the type does not serve."""
    sub = info.subresource
    if sub not in rt.subresources or info.name is None:
        raise not_found()
    if sub == "status":
        return await _status(ctx, request, rt, info)
    if sub == "scale":
        return await _scale(ctx, request, rt, info)
    if sub == "log":
        from rhaii_nb.twin.kube.logs import serve_log

        if request.method != "GET":
            raise _not_allowed()
        return await serve_log(ctx, request, rt, info)
    if sub == "eviction":
        return await _eviction(ctx, request, rt, info)
    if sub == "binding":
        return await _binding(ctx, request, rt, info)
    if sub == "finalize":
        return await _finalize(ctx, request, rt, info)
    if sub == "proxy" and rt.plural == "services":
        from rhaii_nb.twin.kube.proxy import proxy_to_service

        return await proxy_to_service(ctx, request, info)
    if sub == "proxy" and rt.plural == "pods":
        from rhaii_nb.twin.kube.proxy import proxy_to_pod

        return await proxy_to_pod(ctx, request, info)
    raise not_found()


def _put(
    ctx: Any,
    request: web.Request,
    rt: ResourceType,
    info: RequestInfo,
    body: dict[str, Any],
    subresource: str,
) -> web.Response:
    """Write ``body`` to the object's ``status`` or ``scale`` subresource; answer the stored result."""
    from rhaii_nb.twin.kube.handlers import write_options

    updated = ctx.store.update(
        rt, body, subresource=subresource, namespace=info.namespace, name=info.name, **write_options(request)
    )
    return json_response(updated)


async def _status(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
    from rhaii_nb.twin.kube.handlers import patch_object, warning_headers

    store = ctx.store
    if request.method == "GET":
        return json_response(store.get(rt, info.name, namespace=info.namespace))
    if request.method == "PUT":
        return _put(ctx, request, rt, info, await bodies.read_object(request), "status")
    if request.method == "PATCH":
        result, _, warnings = await patch_object(ctx, request, rt, info, subresource="status")
        return json_response(result, headers=warning_headers(warnings))
    raise _not_allowed()


async def _scale(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
    from rhaii_nb.twin import patching

    store = ctx.store
    scale = store.get_scale(rt, info.name, namespace=info.namespace)
    if request.method == "GET":
        return json_response(scale)
    if request.method == "PUT":
        new_scale = await bodies.read_object(request)
        if new_scale.get("kind", "Scale") != "Scale":
            raise bad_request(
                f"the kind in the data ({new_scale.get('kind')}) does not match the expected kind (Scale)"
            )
    elif request.method == "PATCH":
        patch_type, patch = await bodies.read_patch(request)
        # Scale has no list fields: strategic merge and apply reduce to a merge of spec.replicas.
        new_scale = (
            patching.json_patch(scale, patch) if patch_type == "json" else patching.merge_patch(scale, patch)
        )
    else:
        raise _not_allowed()
    return _put(ctx, request, rt, info, new_scale, "scale")


async def _eviction(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
    if request.method != "POST":
        raise _not_allowed()
    body = await bodies.read_optional_json(request)
    if body.get("apiVersion", "policy/v1") not in ("policy/v1", "policy/v1beta1"):
        raise bad_request(
            f"the API version in the data ({body['apiVersion']}) does not match the expected API version "
            "(policy/v1)"
        )
    if (body.get("metadata") or {}).get("name", info.name) != info.name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    ctx.store.delete(
        rt,
        info.name,
        namespace=info.namespace,
        propagation=options.get("propagationPolicy") or "Background",
        grace_seconds=options.get("gracePeriodSeconds"),
    )
    return json_response(status_body(201, "", "", None, success=True), status=201)


async def _binding(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
    if request.method != "POST":
        raise _not_allowed()
    body = await bodies.read_optional_json(request)
    node = (body.get("target") or {}).get("name")
    if not node:
        raise ApiError(
            422,
            "Invalid",
            f'Binding "{info.name}" is invalid: target.name: Required value',
            {"name": info.name, "kind": "Binding"},
        )
    ctx.store.bind_pod(info.name, info.namespace or "default", node)
    return json_response(status_body(201, "", "", None, success=True), status=201)


async def _finalize(ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo) -> web.Response:
    if request.method != "PUT":
        raise _not_allowed()
    body = await bodies.read_object(request)
    updated = ctx.store.update(rt, body, subresource="finalize", field_manager="kubectl", name=info.name)
    return json_response(updated)
