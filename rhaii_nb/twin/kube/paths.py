"""Parse resource URLs the way kube-apiserver's ``RequestInfoFactory`` does.

``/api/v1/namespaces/ns/pods/name/log``, ``/apis/apps/v1/deployments`` (all namespaces),
``/api/v1/watch/namespaces/ns/pods`` (legacy watch), ``/api/v1/namespaces/ns/services/
https:svc:8443/proxy/v1/models`` (``rest`` keeps what follows the subresource).
"""

from __future__ import annotations

from dataclasses import dataclass

# Subresources of a namespace object itself (``namespaces/<ns>/status``), not a namespaced resource.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class RequestInfo:
    """What a resource request addresses."""

    group: str
    version: str
    resource: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    rest: str = ""  # for proxy: the path after ``.../proxy`` (with its leading slash, may be empty)
    legacy_watch: bool = False  # ``/watch/`` path prefix


def parse_resource_path(path: str) -> RequestInfo | None:
    """The request info of a resource path, or None when the path names no resource."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "":
        return None
    parts = parts[1:]
    if parts[0] == "api" and len(parts) >= 3:
        group, version, parts = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, parts = parts[1], parts[2], parts[3:]
    else:
        return None
    # A trailing slash on a collection or object path is tolerated (``/api/v1/pods/``).
    while len(parts) > 1 and parts[-1] == "" and "proxy" not in parts[:-1]:
        parts = parts[:-1]
    if not parts or not parts[0]:
        return None
    legacy_watch = parts[0] == "watch"
    if legacy_watch:
        parts = parts[1:]
        if not parts:
            return None
    namespace = None
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
        else:
            # The namespace object itself (or its status/finalize subresource).
            subresource = parts[2] if len(parts) > 2 else None
            if len(parts) > 3:
                return None
            return RequestInfo(group, version, "namespaces", None, namespace, subresource, "", legacy_watch)
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else None
    rest = ""
    if len(parts) > 3:
        if subresource != "proxy":
            return None
        rest = "/" + "/".join(parts[3:])
    if name == "" or subresource == "":
        return None
    return RequestInfo(group, version, resource, namespace, name, subresource, rest, legacy_watch)
