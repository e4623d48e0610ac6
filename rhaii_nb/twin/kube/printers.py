"""Server-side printing: the columns kube-apiserver's printers produce for ``kubectl get``.

Ports of ``pkg/printers/internalversion/printers.go`` for the kinds the runbook shows (the pod
READY/STATUS/RESTARTS logic, which trainees read, is :func:`rhaii_nb.podstatus.kubectl_columns`,
shared with the notebook side), and of the apiextensions table convertor for custom resources
(``additionalPrinterColumns`` evaluated as JSONPath).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from rhaii_nb.podstatus import condition_true, human_duration, kubectl_columns, parse_time
from rhaii_nb.twin.resources import ResourceType

Column = dict[str, Any]
Printer = Callable[[dict[str, Any]], list[Any]]


def age(timestamp: str | None) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return human_duration((dt.datetime.now(dt.UTC) - when).total_seconds())


def column(
    name: str, type_: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> Column:
    """A ``TableColumnDefinition``."""
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


NAME_COLUMN = column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE_COLUMN = column("Age", description="CreationTimestamp of the object.")


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _created(obj: dict[str, Any]) -> str:
    return age(_meta(obj).get("creationTimestamp"))


# ---- pods -------------------------------------------------------------------------------------


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    columns = kubectl_columns(pod)
    restarts_cell = str(columns.restarts)
    if columns.restarts and columns.last_restart is not None:
        since = (dt.datetime.now(dt.UTC) - columns.last_restart).total_seconds()
        restarts_cell = f"{columns.restarts} ({human_duration(since)} ago)"
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    if gates:
        passing = sum(1 for gate in gates if condition_true(status, gate.get("conditionType", "")))
        gates_cell = f"{passing}/{len(gates)}"
    else:
        gates_cell = "<none>"
    return [
        _meta(pod).get("name"),
        f"{columns.ready}/{columns.total}",
        columns.status,
        restarts_cell,
        _created(pod),
        (ips[0].get("ip") if ips else status.get("podIP")) or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


POD_COLUMNS = [
    NAME_COLUMN,
    column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    column("Status", description="The aggregate status of the containers in this pod."),
    column("Restarts", description="The number of times the containers in this pod have been restarted."),
    AGE_COLUMN,
    column("IP", priority=1, description="IP address allocated to the pod."),
    column("Node", priority=1, description="Name of the node the pod is assigned to."),
    column("Nominated Node", priority=1, description="Name of the node where the pod is nominated."),
    column("Readiness Gates", priority=1, description="Pod readiness gates."),
]


# ---- other builtins ---------------------------------------------------------------------------


def _node_row(node: dict[str, Any]) -> list[Any]:
    status, spec, meta = node.get("status") or {}, node.get("spec") or {}, _meta(node)
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if not ready:
        state = "Unknown"
    else:
        state = {"True": "Ready", "False": "NotReady"}.get(ready[0].get("status"), "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = set()
    for key, value in (meta.get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key.split("/", 1)[1])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        meta.get("name"),
        state,
        ",".join(sorted(r for r in roles if r)) or "<none>",
        _created(node),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODE_COLUMNS = [
    NAME_COLUMN,
    column("Status", description="The status of the node"),
    column("Roles", description="The roles of the node"),
    AGE_COLUMN,
    column("Version", description="Kubelet Version reported by the node."),
    column("Internal-IP", priority=1, description="List of internal IPs for the node."),
    column("External-IP", priority=1, description="List of external IPs for the node."),
    column("OS-Image", priority=1, description="OS image reported by the node."),
    column("Kernel-Version", priority=1, description="Kernel version reported by the node."),
    column("Container-Runtime", priority=1, description="Container runtime reported by the node."),
]


def _containers_images(spec: dict[str, Any]) -> tuple[str, str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector_string(selector: dict[str, Any] | None) -> str:
    from rhaii_nb.twin.selectors import label_selector_string

    text = label_selector_string(selector) if selector else ""
    return text or "<none>"


def _deployment_row(obj: dict[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers_images(spec)
    return [
        _meta(obj).get("name"),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _created(obj),
        containers,
        images,
        _selector_string(spec.get("selector")),
    ]


DEPLOYMENT_COLUMNS = [
    NAME_COLUMN,
    column("Ready", description="Number of the pod with ready state"),
    column("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment."),
    column("Available", "integer", "Total number of available pods (ready for at least minReadySeconds)."),
    AGE_COLUMN,
    column("Containers", priority=1, description="Names of each container in the template."),
    column("Images", priority=1, description="Images referenced by each container in the template."),
    column("Selector", priority=1, description="Label selector for pods."),
]


def _replicaset_row(obj: dict[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _containers_images(spec)
    return [
        _meta(obj).get("name"),
        int(spec.get("replicas", 1) or 0),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        _created(obj),
        containers,
        images,
        _selector_string(spec.get("selector")),
    ]


REPLICASET_COLUMNS = [
    NAME_COLUMN,
    column("Desired", "integer", "Number of desired pods."),
    column("Current", "integer", "Number of actual replicas."),
    column("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE_COLUMN,
    column("Containers", priority=1, description="Names of each container in the template."),
    column("Images", priority=1, description="Images referenced by each container in the template."),
    column("Selector", priority=1, description="Label selector for pods."),
]


def _service_row(obj: dict[str, Any]) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    svc_type = spec.get("type") or "ClusterIP"
    external = "<none>"
    if svc_type == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        external = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress) or "<pending>"
    elif svc_type == "ExternalName":
        external = spec.get("externalName") or "<none>"
    elif spec.get("externalIPs"):
        external = ",".join(spec["externalIPs"])
    ports = []
    for port in spec.get("ports") or []:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol') or 'TCP'}")
    selector = spec.get("selector") or {}
    return [
        _meta(obj).get("name"),
        svc_type,
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _created(obj),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


SERVICE_COLUMNS = [
    NAME_COLUMN,
    column("Type", description="The type of the service."),
    column("Cluster-IP", description="The IP address of the service."),
    column("External-IP", description="The external IP address of the service."),
    column("Port(s)", description="The ports of the service."),
    AGE_COLUMN,
    column("Selector", priority=1, description="The selector of the service."),
]


def _event_row(obj: dict[str, Any]) -> list[Any]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    series = obj.get("series") or {}
    last = obj.get("lastTimestamp") or series.get("lastObservedTime") or obj.get("eventTime")
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    source = obj.get("source") or {}
    source_text = (
        source.get("component") or obj.get("reportingController") or obj.get("reportingComponent") or ""
    )
    if source.get("host"):
        source_text += f", {source['host']}"
    return [
        age(last),
        obj.get("type") or "",
        obj.get("reason") or "",
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath") or "",
        source_text,
        obj.get("message") or obj.get("note") or "",
        age(first),
        int(obj.get("count") or series.get("count") or 1),
        _meta(obj).get("name"),
    ]


EVENT_COLUMNS = [
    column("Last Seen", description="Time when last event occurred"),
    column("Type", description="Type of this event."),
    column("Reason", description="Reason of this event."),
    column("Object", description="The object that this event is about."),
    column("Subobject", priority=1, description="The subobject that this event is about."),
    column("Source", priority=1, description="The source of this event."),
    column("Message", description="A human-readable description of the status of this operation."),
    column("First Seen", priority=1, description="Time when first event occurred"),
    column("Count", "integer", priority=1, description="Number of times this event has occurred."),
    column("Name", priority=1, fmt="name", description="Name of the event."),
]


def _simple(*cells: Callable[[dict[str, Any]], Any]) -> Printer:
    def row(obj: dict[str, Any]) -> list[Any]:
        return [_meta(obj).get("name"), *(cell(obj) for cell in cells)]

    return row


BUILTIN_PRINTERS: dict[str, tuple[list[Column], Printer]] = {
    "/pods": (POD_COLUMNS, _pod_row),
    "/nodes": (NODE_COLUMNS, _node_row),
    "apps/deployments": (DEPLOYMENT_COLUMNS, _deployment_row),
    "apps/replicasets": (REPLICASET_COLUMNS, _replicaset_row),
    "/services": (SERVICE_COLUMNS, _service_row),
    "/events": (EVENT_COLUMNS, _event_row),
    "events.k8s.io/events": (EVENT_COLUMNS, _event_row),
    "/namespaces": (
        [NAME_COLUMN, column("Status", description="The status of the namespace"), AGE_COLUMN],
        _simple(lambda o: (o.get("status") or {}).get("phase") or "Active", _created),
    ),
    "/secrets": (
        [NAME_COLUMN, column("Type"), column("Data", "string"), AGE_COLUMN],
        _simple(lambda o: o.get("type") or "Opaque", lambda o: len(o.get("data") or {}), _created),
    ),
    "/configmaps": (
        [NAME_COLUMN, column("Data", "string"), AGE_COLUMN],
        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), _created),
    ),
    "/serviceaccounts": (
        [NAME_COLUMN, column("Secrets", "string"), AGE_COLUMN],
        _simple(lambda o: len(o.get("secrets") or []), _created),
    ),
    "networking.k8s.io/networkpolicies": (
        [NAME_COLUMN, column("Pod-Selector", description="Pods the policy applies to."), AGE_COLUMN],
        _simple(lambda o: _selector_string((o.get("spec") or {}).get("podSelector")), _created),
    ),
    "apiextensions.k8s.io/customresourcedefinitions": (
        [NAME_COLUMN, column("Created At", "date", "Time the CRD was created.")],
        _simple(lambda o: _meta(o).get("creationTimestamp")),
    ),
}


# ---- custom resources -------------------------------------------------------------------------


def _custom_cell(type_: str, value: Any) -> Any:
    if type_ == "date":
        return age(value) if isinstance(value, str) else None
    if type_ == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if type_ == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if type_ == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _jsonpath_value(expression: str, obj: dict[str, Any]) -> Any:
    from jsonpath_ng.ext import parse

    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    try:
        matches = parse("$" + text if text.startswith((".", "[")) else text).find(obj)
    except Exception:  # a column path the parser rejects prints an empty cell, as kubectl's does
        return None
    return matches[0].value if matches else None


def custom_printer(rt: ResourceType) -> tuple[list[Column], Printer]:
    """Columns of a CRD kind: NAME + ``additionalPrinterColumns`` (NAME + AGE when it has none)."""
    specs = list(rt.printer_columns)
    if not specs:
        return [NAME_COLUMN, AGE_COLUMN], _simple(_created)
    columns = [NAME_COLUMN] + [
        column(
            spec.get("name", ""),
            spec.get("type", "string"),
            spec.get("description", ""),
            int(spec.get("priority") or 0),
            spec.get("format", ""),
        )
        for spec in specs
    ]

    def row(obj: dict[str, Any]) -> list[Any]:
        cells: list[Any] = [_meta(obj).get("name")]
        for spec in specs:
            value = _jsonpath_value(spec.get("jsonPath", ""), obj)
            cells.append(None if value is None else _custom_cell(spec.get("type", "string"), value))
        return cells

    return columns, row


def printer_for(rt: ResourceType) -> tuple[list[Column], Printer]:
    """The columns and row function ``kubectl get`` shows for a resource type."""
    builtin = BUILTIN_PRINTERS.get(f"{rt.group}/{rt.plural}")
    if builtin is not None and rt.crd_name is None:
        return builtin
    if rt.crd_name is not None:
        return custom_printer(rt)
    return [NAME_COLUMN, AGE_COLUMN], _simple(_created)
