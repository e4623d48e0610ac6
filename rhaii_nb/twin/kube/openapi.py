"""A minimal OpenAPI v3 index: just what kubectl reads before ``create``/``apply``/``patch``.

kubectl (``--validate=strict``, its default) asks the OpenAPI v3 document of the object's
group/version whether the PATCH operation of its kind takes the ``fieldValidation`` query
parameter. When it does, kubectl skips client-side schema validation and lets the server validate
(``?fieldValidation=Strict``), which the store does with the real schemas. Without any OpenAPI
document kubectl refuses to create objects ("failed to download openapi"), so this module serves
one path entry per kind with that parameter, and no schemas (``kubectl explain`` is not supported).
The PATCH operations deliberately list no strategic-merge request body: kubectl then computes
client-side-apply patches from its compiled-in types, as it does for any server without schemas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rhaii_nb.twin.resources import ResourceType

KUBERNETES_VERSION = "v1.31.6"
_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation_id(rt: ResourceType) -> str:
    group = "".join(part.capitalize() for part in rt.group.split(".")[:1]) if rt.group else "Core"
    scope = "Namespaced" if rt.namespaced else ""
    return f"patch{group}{rt.version.capitalize()}{scope}{rt.kind}"


def _paths_for(rt: ResourceType) -> dict[str, Any]:
    prefix = "/" + _gv_path(rt.group, rt.version)
    if rt.namespaced:
        prefix += "/namespaces/{namespace}"
    patch = {
        "operationId": _operation_id(rt),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMS
        ],
        "responses": {"200": {"description": "OK"}},
    }
    return {f"{prefix}/{rt.plural}/{{name}}": {"patch": patch}}


def _group_versions(types: list[ResourceType]) -> dict[tuple[str, str], list[ResourceType]]:
    found: dict[tuple[str, str], list[ResourceType]] = {}
    for rt in types:
        if "patch" in rt.verbs:
            found.setdefault((rt.group, rt.version), []).append(rt)
    return found


def group_version_document(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group/version, or None when not served."""
    selected = _group_versions(types).get((group, version))
    if not selected:
        return None
    paths: dict[str, Any] = {}
    for rt in sorted(selected, key=lambda t: t.plural):
        paths.update(_paths_for(rt))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def index_document(types: list[ResourceType]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group/version, its URL carrying a hash of its content."""
    paths = {}
    for group, version in sorted(_group_versions(types)):
        document = group_version_document(types, group, version)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
