"""Legacy discovery documents (``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``).

Built fresh from ``store.resource_types()`` on every request, so a CRD's kinds appear as soon as it
is registered. Aggregated discovery (``apidiscovery.k8s.io/v2``) is not served: clients that ask
for it get plain JSON, which client-go and the python client treat as the legacy documents.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from rhaii_nb.twin.resources import ResourceType

_SUBRESOURCE_KINDS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    # subresource: (group, version, kind or None for the parent's, verbs)
    "status": ("", "", None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "log": ("", "", "Pod", ("get",)),
    "binding": ("", "", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "exec": ("", "", "PodExecOptions", ("create", "get")),
    "portforward": ("", "", "PodPortForwardOptions", ("create", "get")),
    "finalize": ("", "", "Namespace", ("update",)),
}
_PROXY_KINDS = {"pods": "PodProxyOptions", "services": "ServiceProxyOptions", "nodes": "NodeProxyOptions"}
_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """Sort key of Kubernetes version priority: v1 > v1beta2 > v1beta1 > v1alpha1 > other (by name)."""
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = int(match.group(1)), match.group(2), int(match.group(3) or 0)
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -major, -minor, version)


def _subresource_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    if sub == "proxy":
        group, version, kind = "", "", _PROXY_KINDS.get(rt.plural, "ProxyOptions")
        verbs: tuple[str, ...] = ("create", "delete", "get", "patch", "update")
    else:
        group, version, kind, verbs = _SUBRESOURCE_KINDS.get(sub, ("", "", None, ("get",)))
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
    }
    if group:
        entry["group"] = group
        entry["version"] = version
    entry["kind"] = kind or rt.kind
    entry["verbs"] = list(verbs)
    return entry


def resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    """The APIResource entries of one type: the resource and each of its subresources."""
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return [entry] + [_subresource_entry(rt, sub) for sub in rt.subresources]


def _versions_by_group(types: list[ResourceType]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for rt in types:
        found[rt.group].add(rt.version)
    return {group: sorted(versions, key=version_priority) for group, versions in found.items()}


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(types: list[ResourceType]) -> dict[str, Any]:
    """``/apis``: every named group with its versions, preferred first."""
    groups = _versions_by_group(types)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, groups[g]) for g in sorted(groups) if g],
    }


def api_group(types: list[ResourceType], group: str) -> dict[str, Any] | None:
    """``/apis/<group>``, or None when the group is not served."""
    versions = _versions_by_group(types).get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """``/api/v1`` or ``/apis/<group>/<version>``, or None when that group/version is not served."""
    selected = [rt for rt in types if rt.group == group and rt.version == version]
    if not selected:
        return None
    resources: list[dict[str, Any]] = []
    for rt in sorted(selected, key=lambda t: t.plural):
        resources.extend(resource_entries(rt))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
