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
        node_ref(node["metadata"]["name"]),
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
    record_event(
        ctx, node_ref(name), "NodeReady", f"Node {name} status is now: NodeReady", "Normal", "kubelet"
    )
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
            {"kind": "Pod", "apiVersion": "v1", "metadata": meta},
            "NodeLost" if "lost" in reason else "Evicted",
            f"Node {name} {reason}: pod deleted",
            "Warning",
            "node-controller",
        )
    try:
        store.delete(_nodes_rt(store), name)
    except Exception:
        log.debug("remove_node: node %s already gone", name)
    record_event(
        ctx,
        node_ref(name),
        "RemovingNode",
        f"Node {name} event: Removing Node {name} from Controller ({reason})",
        "Normal",
        "node-controller",
    )
    return evicted


def record_event(
    ctx: Any,
    involved: dict[str, Any],
    reason: str,
    message: str,
    kind_of_event: str = "Normal",
    component: str = "gke",
) -> None:
    """Write a core/v1 Event about ``involved`` (best effort: an event never fails the caller)."""
    try:
        ctx.store.record_event(involved, reason, message, kind_of_event, component)
    except Exception:
        log.debug("event %s not recorded", reason, exc_info=True)


def node_ref(name: str) -> dict[str, Any]:
    """The ``involvedObject`` shape of a Node for events."""
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "uid": name}}


def wipe(ctx: Any) -> None:
    """Empty the cluster: every object goes (custom resources with their CRDs), only the namespaces a new
    cluster starts with remain. Deletions go through the store, so controllers see them."""
    from rhaii_nb.twin.store import BOOTSTRAP_NAMESPACES

    store = ctx.store
    crd_rt = store.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    ns_rt = store.resource("", "v1", "namespaces")
    crds, namespaces = [], []
    for rt, obj in list(store.all_objects()):
        meta = obj["metadata"]
        if rt.storage == crd_rt.storage:
            crds.append(meta["name"])
            continue
        if rt.storage == ns_rt.storage:
            namespaces.append(meta["name"])
            continue
        _force_delete(store, rt, meta)
    for name in crds:
        try:
            store.unregister_crd(name)
        except Exception:
            log.debug("wipe: CRD %s already gone", name)
    for name in namespaces:
        if name in BOOTSTRAP_NAMESPACES:
            continue
        try:
            store.delete(ns_rt, name)
            store.finalize_namespace(name)
        except Exception:
            log.debug("wipe: namespace %s already gone", name)


def _force_delete(store: Any, rt: Any, meta: dict[str, Any]) -> None:
    name, namespace = meta["name"], meta.get("namespace")
    try:
        if meta.get("finalizers"):
            store.patch(
                rt,
                name,
                {"metadata": {"finalizers": None}},
                "merge",
                namespace=namespace,
                field_manager=FIELD_MANAGER,
            )
        store.delete(rt, name, namespace=namespace, grace_seconds=0)
    except Exception:
        log.debug("wipe: %s %s/%s already gone", rt.plural, namespace, name)
