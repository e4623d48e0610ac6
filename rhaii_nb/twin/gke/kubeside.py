"""What GKE does inside the cluster's Kubernetes API: register nodes, mark them Ready, drain and remove
them (evicting their pods), record events, and empty the cluster when it is deleted.

Everything goes through the twin's ``Store`` with the field manager ``gke-node-controller``, the
same way GKE's node controllers write through the Kubernetes API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rhaii_nb.twin.gke import nodes
from rhaii_nb.twin.gke.operations import rfc3339

log = logging.getLogger(__name__)

FIELD_MANAGER = nodes.FIELD_MANAGER


def now_k8s() -> str:
    """Kubernetes timestamp (seconds precision, ``Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _nodes_rt(store: Any) -> Any:
    return store.resource("", "v1", "nodes")


def _pods_rt(store: Any) -> Any:
    return store.resource("", "v1", "pods")


def register_node(ctx: Any, node: dict[str, Any]) -> None:
    """Create the Node object (NotReady)."""
    ctx.store.create(_nodes_rt(ctx.store), node, field_manager=FIELD_MANAGER)
    record_event(
        ctx,
        node["metadata"]["name"],
        "RegisteredNode",
        f"Node {node['metadata']['name']} event: Registered Node {node['metadata']['name']} in Controller",
        "Normal",
        "node-controller",
    )


def mark_ready(ctx: Any, name: str) -> bool:
    """Turn a registered node Ready (False if it is gone meanwhile)."""
    store = ctx.store
    rt = _nodes_rt(store)
    try:
        node = store.get(rt, name)
    except Exception:  # deleted while booting (resize down, pool or cluster delete)
        return False
    spec_patch, status_patch = nodes.ready_patch(node, now_k8s())
    store.patch(rt, name, spec_patch, "merge", field_manager=FIELD_MANAGER)
    store.patch(rt, name, status_patch, "merge", subresource="status", field_manager="kubelet")
    record_event(ctx, name, "NodeReady", f"Node {name} status is now: NodeReady", "Normal", "kubelet")
    return True


def cordon(ctx: Any, name: str) -> None:
    """Mark a node unschedulable (the first step of a drain)."""
    try:
        ctx.store.patch(
            _nodes_rt(ctx.store),
            name,
            {"spec": {"unschedulable": True}},
            "merge",
            field_manager=FIELD_MANAGER,
        )
    except Exception:
        log.debug("cordon: node %s already gone", name)


def pods_on(ctx: Any, name: str) -> list[dict[str, Any]]:
    """Pods bound to node ``name``."""
    pods, _ = ctx.store.list(_pods_rt(ctx.store))
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]


def remove_node(ctx: Any, name: str, reason: str) -> list[str]:
    """Delete the node and the pods bound to it (``namespace/name`` of each evicted pod).

    The pods' controllers re-create them; the new pods are Pending until a node fits.
    """
    store = ctx.store
    evicted = []
    for pod in pods_on(ctx, name):
        meta = pod["metadata"]
        try:
            store.delete(_pods_rt(store), meta["name"], namespace=meta.get("namespace"), grace_seconds=0)
        except Exception:  # already gone
            continue
        evicted.append(f"{meta.get('namespace')}/{meta['name']}")
        record_event(
            ctx,
            meta["name"],
            "NodeNotReady" if "lost" in reason else "Evicted",
            f"Node {name} {reason}: pod deleted",
            "Warning",
            "node-controller",
            kind="Pod",
            namespace=meta.get("namespace") or "default",
        )
    try:
        store.delete(_nodes_rt(store), name)
    except Exception:
        log.debug("remove_node: node %s already gone", name)
    record_event(
        ctx,
        name,
        "RemovingNode",
        f"Node {name} event: Removing Node {name} from Controller ({reason})",
        "Normal",
        "node-controller",
    )
    return evicted


def record_event(
    ctx: Any,
    name: str,
    reason: str,
    message: str,
    kind_of_event: str = "Normal",
    component: str = "gke",
    *,
    kind: str = "Node",
    namespace: str = "default",
) -> None:
    """Write a core/v1 Event about an object (best effort: an event never fails the caller)."""
    store = ctx.store
    stamp = now_k8s()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {"kind": kind, "name": name, "apiVersion": "v1"}
        | ({"namespace": namespace} if kind != "Node" else {}),
        "reason": reason,
        "message": message,
        "type": kind_of_event,
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": None,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    try:
        store.create(
            store.resource("", "v1", "events"), event, namespace=namespace, field_manager=FIELD_MANAGER
        )
    except Exception:
        log.debug("event %s on %s not recorded", reason, name, exc_info=True)


def wipe(ctx: Any) -> None:
    """Empty the cluster's store: a deleted cluster's objects do not survive into the next one."""
    store = ctx.store
    clear = getattr(store, "clear", None) or getattr(store, "reset", None)
    if clear is not None:
        clear()
        return
    log.warning("store has no clear(); deleting objects one by one")
    for rt in list(store.resource_types()):
        if "delete" not in rt.verbs:
            continue
        try:
            objects, _ = store.list(rt)
        except Exception:
            continue
        for obj in objects:
            meta = obj.get("metadata", {})
            try:
                store.delete(rt, meta["name"], namespace=meta.get("namespace"), grace_seconds=0)
            except Exception:
                continue


__all__ = [
    "cordon",
    "mark_ready",
    "now_k8s",
    "pods_on",
    "record_event",
    "register_node",
    "remove_node",
    "rfc3339",
    "wipe",
]
