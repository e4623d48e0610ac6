"""Resource types the twin's API serves: the ``ResourceType`` record and the builtin table.

Custom resources are not listed here: they appear when a CustomResourceDefinition object is created
(see ``resource_types_from_crd``), exactly as on a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(eq=False)
class ResourceType:
    """One served resource of one group/version, as discovery describes it.

    ``storage`` names the data this type reads and writes: types that share it (core ``events`` and
    ``events.k8s.io`` events, or the served versions of one CRD) see the same objects.
    """

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    schema: dict[str, Any] | None = None  # openAPIV3Schema of this version (CRDs only)
    tracks_generation: bool = False  # metadata.generation is set and bumped on spec changes
    crd_name: str | None = None  # the CRD that registered this type
    storage_version: bool = True  # the CRD version objects are stored in
    printer_columns: tuple[dict[str, Any], ...] = ()  # CRD additionalPrinterColumns
    scale: dict[str, Any] | None = None  # CRD scale subresource paths
    selectable_fields: tuple[str, ...] = ()  # extra field selectors (CRD selectableFields)
    storage_override: str | None = field(default=None, repr=False)

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        """Kind of the list object, e.g. ``PodList``."""
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``plural`` or ``plural.group`` as error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Kind`` or ``Kind.group`` as 422 Invalid messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def storage(self) -> str:
        """Key of the object collection this type reads and writes."""
        return self.storage_override or f"{self.group}/{self.plural}"

    def has_subresource(self, name: str) -> bool:
        """Whether the type serves ``<plural>/<name>``."""
        return name in self.subresources

    def __repr__(self) -> str:
        return f"ResourceType({self.api_version}, {self.plural})"


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType(group, version, plural, kind, kind.lower(), namespaced, **kw)


def builtin_resource_types() -> list[ResourceType]:
    """The builtin resource types, fresh instances (one table per store)."""
    all_ = ("all",)
    return [
        _rt(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            subresources=("status", "finalize"),
        ),
        _rt("", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status", "proxy")),
        _rt(
            "",
            "v1",
            "pods",
            "Pod",
            True,
            short_names=("po",),
            categories=all_,
            subresources=("status", "log", "binding", "eviction", "exec", "portforward", "proxy"),
        ),
        _rt(
            "",
            "v1",
            "services",
            "Service",
            True,
            short_names=("svc",),
            categories=all_,
            subresources=("status", "proxy"),
        ),
        _rt("", "v1", "secrets", "Secret", True),
        _rt("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        _rt("", "v1", "events", "Event", True, short_names=("ev",), storage_override="events"),
        _rt("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        _rt("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
        _rt(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=all_,
            subresources=("status", "scale"),
            tracks_generation=True,
        ),
        _rt(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            True,
            short_names=("rs",),
            categories=all_,
            subresources=("status", "scale"),
            tracks_generation=True,
        ),
        _rt("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",), storage_override="events"),
        _rt(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            True,
            short_names=("netpol",),
            tracks_generation=True,
        ),
        _rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            subresources=("status",),
            tracks_generation=True,
        ),
        _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _rt(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=("create",),
        ),
    ]


def resource_types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes a CustomResourceDefinition serves (one per served version)."""
    spec = crd["spec"]
    names = spec["names"]
    group = spec["group"]
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subres = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        selectable = tuple(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or [])
        out.append(
            ResourceType(
                group=group,
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(k for k in ("status", "scale") if k in subres),
                schema=schema,
                tracks_generation=True,
                crd_name=crd["metadata"]["name"],
                storage_version=bool(version.get("storage", False)),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                scale=subres.get("scale"),
                selectable_fields=selectable,
            )
        )
    return out


# Field selectors the real API server accepts per resource (besides metadata.name/namespace).
FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "/pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "/secrets": ("type",),
    "/namespaces": ("status.phase",),
    "/nodes": ("spec.unschedulable",),
    "apps/replicasets": ("status.replicas",),
}
