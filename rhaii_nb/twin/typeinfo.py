"""How an object's fields merge: granular or atomic maps, atomic / set / keyed lists.

Server-side apply and strategic merge patch both need it. For builtin kinds it comes from a small
table of the real ``patchStrategy``/``patchMergeKey`` and ``listType``/``listMapKeys`` markers; for
custom resources from the CRD schema's ``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``
and ``x-kubernetes-map-type`` (lists without a list type are atomic, as on the real server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TypeNode:
    """Merge behaviour of one field's value and, through ``field``/``item``, of its children."""

    fields: dict[str, TypeNode] = field(default_factory=dict)
    values: TypeNode | None = None  # every map value's type (additionalProperties)
    atomic_map: bool = False
    list_type: str = "atomic"  # atomic | set | map
    keys: tuple[str, ...] = ()  # list map keys (SSA)
    smp_key: str | None = None  # strategic merge key (may differ from keys: ports by containerPort)
    smp_merge_primitives: bool = False  # strategic "merge" of a primitive list (finalizers)
    items: TypeNode | None = None
    schema: dict[str, Any] | None = None  # lazily expanded CRD schema

    def field(self, name: str) -> TypeNode:
        """The type of the field ``name`` of this map (untyped if unknown)."""
        if self.schema is not None:
            return _from_schema_field(self, name)
        node = self.fields.get(name)
        if node is not None:
            return node
        return self.values or UNTYPED

    def item(self) -> TypeNode:
        """The type of this list's items."""
        if self.items is None and self.schema is not None:
            items = self.schema.get("items")
            self.items = from_schema(items) if isinstance(items, dict) else UNTYPED
        return self.items or UNTYPED


UNTYPED = TypeNode()


def _from_schema_field(node: TypeNode, name: str) -> TypeNode:
    cached = node.fields.get(name)
    if cached is not None:
        return cached
    schema = node.schema or {}
    sub = (schema.get("properties") or {}).get(name)
    if sub is None and isinstance(schema.get("additionalProperties"), dict):
        sub = schema["additionalProperties"]
    result = from_schema(sub) if sub is not None else UNTYPED
    node.fields[name] = result
    return result


def from_schema(schema: dict[str, Any] | None) -> TypeNode:
    """TypeNode of a CRD structural schema (children expanded on demand)."""
    if not schema:
        return UNTYPED
    node = TypeNode(schema=schema)
    node.atomic_map = schema.get("x-kubernetes-map-type") == "atomic"
    if schema.get("type") == "array":
        node.list_type = schema.get("x-kubernetes-list-type", "atomic")
        node.keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        node.smp_key = node.keys[0] if node.keys else None
    return node


def _keyed(keys: tuple[str, ...], items: TypeNode | None = None, smp_key: str | None = None) -> TypeNode:
    return TypeNode(list_type="map", keys=keys, smp_key=smp_key or keys[0], items=items)


def _map(**fields: TypeNode) -> TypeNode:
    return TypeNode(fields=dict(fields))


ATOMIC_MAP = TypeNode(atomic_map=True)
STRING_SET = TypeNode(list_type="set", smp_merge_primitives=True)
CONDITIONS = _keyed(("type",))

CONTAINER = _map(
    ports=_keyed(("containerPort", "protocol"), smp_key="containerPort"),
    env=_keyed(("name",)),
    volumeMounts=_keyed(("mountPath",)),
    volumeDevices=_keyed(("devicePath",)),
    resizePolicy=_keyed(("resourceName",)),
)
POD_SPEC = _map(
    containers=_keyed(("name",), CONTAINER),
    initContainers=_keyed(("name",), CONTAINER),
    ephemeralContainers=_keyed(("name",), CONTAINER),
    volumes=_keyed(("name",)),
    imagePullSecrets=_keyed(("name",)),
    hostAliases=_keyed(("ip",)),
    topologySpreadConstraints=_keyed(("topologyKey", "whenUnsatisfiable"), smp_key="topologyKey"),
    schedulingGates=_keyed(("name",)),
    resourceClaims=_keyed(("name",)),
)
OBJECT_META = _map(finalizers=STRING_SET, ownerReferences=_keyed(("uid",)))
POD_TEMPLATE = _map(metadata=OBJECT_META, spec=POD_SPEC)
POD_STATUS = _map(
    conditions=CONDITIONS,
    podIPs=_keyed(("ip",)),
    hostIPs=_keyed(("ip",)),
)
WORKLOAD = _map(
    metadata=OBJECT_META,
    spec=_map(selector=ATOMIC_MAP, template=POD_TEMPLATE),
    status=_map(conditions=CONDITIONS),
)

BUILTIN_TYPES: dict[str, TypeNode] = {
    "/pods": _map(metadata=OBJECT_META, spec=POD_SPEC, status=POD_STATUS),
    "apps/deployments": WORKLOAD,
    "apps/replicasets": WORKLOAD,
    "/services": _map(
        metadata=OBJECT_META,
        spec=_map(ports=_keyed(("port", "protocol"), smp_key="port"), selector=ATOMIC_MAP),
        status=_map(conditions=CONDITIONS),
    ),
    "/nodes": _map(
        metadata=OBJECT_META,
        spec=_map(podCIDRs=STRING_SET),
        status=_map(conditions=CONDITIONS, addresses=_keyed(("type",))),
    ),
    "/namespaces": _map(metadata=OBJECT_META, status=_map(conditions=CONDITIONS)),
    "networking.k8s.io/networkpolicies": _map(metadata=OBJECT_META, spec=_map(podSelector=ATOMIC_MAP)),
    "apiextensions.k8s.io/customresourcedefinitions": _map(
        metadata=OBJECT_META, status=_map(conditions=CONDITIONS)
    ),
}
DEFAULT_TYPE = _map(metadata=OBJECT_META)


def type_for(storage: str, schema: dict[str, Any] | None) -> TypeNode:
    """Root TypeNode of a resource: the CRD schema's, or the builtin table's."""
    if schema is not None:
        root = from_schema(schema)
        root.fields["metadata"] = OBJECT_META
        return root
    return BUILTIN_TYPES.get(storage, DEFAULT_TYPE)
