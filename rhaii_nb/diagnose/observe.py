"""What ``diagnose`` looks at: :func:`inspect` gathers it into a :class:`ClusterView`.

Each part (quota, node pool, nodes, service and pods, events, EnvoyFilters, NetworkPolicies, EPP
pods, logs, one request and a short cache test through the gateway) is read on its own: a part that
cannot be read is noted in ``view.unreadable`` and the others still count.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb import names

TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_RESOURCE = "google.com/tpu"
ENVOYFILTER_GVR = ("networking.istio.io", "v1alpha3", "envoyfilters")
LOG_LINES = 60
API_STACKS = ("kubernetes", "google")  # retry counters of the Kubernetes and Google API clients


@dataclass
class ClusterView:
    """Everything :func:`inspect` saw; ``unreadable`` names the parts it could not look at."""

    cluster_exists: bool | None = None
    quota_chips: int | None = None  # None = unlimited or unknown (see ``unreadable``)
    pool: dict[str, Any] | None = None  # status, status_message of the TPU node pool
    tpu_nodes: list[dict[str, Any]] = field(default_factory=list)  # name, ready, chips
    service: dict[str, Any] | None = None
    service_ready: bool = False
    conditions: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)  # name, stage, ready, node, restarts, waiting
    events: list[dict[str, Any]] = field(default_factory=list)  # namespace + default (nodes)
    envoyfilters: list[str] = field(default_factory=list)
    expected_envoyfilters: list[str] = field(default_factory=list)
    epp_pods: list[dict[str, Any]] = field(default_factory=list)  # name, containers, ready
    networkpolicies: list[str] = field(default_factory=list)
    expected_networkpolicies: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # "pod/container" -> last lines
    gateway: dict[str, Any] | None = None  # one completion through the gateway
    cache: dict[str, Any] | None = None  # the short cache test's summary
    retries: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def ready_replicas(self) -> int:
        """Workload pods Ready."""
        return sum(1 for p in self.pods if p["ready"])

    def tables(self) -> dict[str, pd.DataFrame]:
        """What was seen, as small tables: vLLM pods, TPU nodes, routing objects, unreadable parts."""
        routing = [
            {"kind": kind, "name": name, "present": name in present}
            for kind, expected, present in (
                ("EnvoyFilter", self.expected_envoyfilters, self.envoyfilters),
                ("NetworkPolicy", self.expected_networkpolicies, self.networkpolicies),
            )
            for name in dict.fromkeys([*expected, *present])
        ]
        routing += [
            {"kind": "EPP pod", "name": p["name"], "present": f"{p['stage']}, containers {p['containers']}"}
            for p in self.epp_pods
        ]
        return {
            "vLLM pods": pd.DataFrame(
                self.pods, columns=["name", "stage", "containers", "ready", "node", "restarts", "waiting"]
            ),
            "TPU nodes": pd.DataFrame(self.tpu_nodes, columns=["name", "ready", "chips"]),
            "routing objects": pd.DataFrame(routing, columns=["kind", "name", "present"]),
            "not readable": pd.DataFrame(
                [{"part": k, "error": v} for k, v in self.unreadable.items()], columns=["part", "error"]
            ),
        }

    def show(self) -> None:
        """Display :meth:`tables`, one titled table each (in a notebook or a terminal)."""
        from rhaii_nb.display import show_table

        for title, table in self.tables().items():
            show_table(table, title)

    def events_matching(self, pattern: str) -> list[dict[str, Any]]:
        """Events whose reason or message matches ``pattern`` (case-insensitive)."""
        rx = re.compile(pattern, re.IGNORECASE)
        return [e for e in self.events if rx.search(f"{e.get('reason', '')} {e.get('message', '')}")]


def _plain(session: Any, answer: Any) -> dict[str, Any]:
    return session.api_client.sanitize_for_serialization(answer)


def _guarded(view: ClusterView, part: str, read: Callable[[], None]) -> None:
    """Run one inspection step; note it as unreadable instead of failing the whole look."""
    try:
        read()
    except Exception as exc:
        view.unreadable[part] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _waiting_reason(pod: dict[str, Any]) -> str:
    """Why a pod waits: the scheduler's message, or the first waiting container's reason and message."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting:
                return f"{cs.get('name')}: {waiting.get('reason', '')} {waiting.get('message', '')}".strip()
    return ""


def _read_service_and_pods(session: Any, params: Any, view: ClusterView) -> None:
    from rhaii_nb import pods as pod_helpers
    from rhaii_nb import service

    view.service = service.get_service(session, params)
    view.conditions = service.conditions(view.service).to_dict("records")
    view.service_ready = service.is_service_ready(view.service)
    for pod in service.workload_pods(session, params):
        columns = pod_helpers.kubectl_columns(pod)
        view.pods.append(
            {
                "name": pod["metadata"]["name"],
                "stage": columns.status,
                "ready": pod_helpers.is_ready(pod),
                "containers": f"{columns.ready}/{columns.total}",
                "node": (pod.get("spec") or {}).get("nodeName") or "",
                "restarts": columns.restarts,
                "waiting": _waiting_reason(pod),
                "image": next(
                    (c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []), ""
                ),
            }
        )


def _read_events(session: Any, params: Any, view: ClusterView) -> None:
    for namespace in dict.fromkeys([params.namespace, "default"]):
        items = _plain(session, session.core.list_namespaced_event(namespace)).get("items", [])
        for event in items:
            obj = event.get("involvedObject") or {}
            view.events.append(
                {
                    "time": event.get("lastTimestamp")
                    or event.get("eventTime")
                    or (event.get("metadata") or {}).get("creationTimestamp")
                    or "",
                    "type": event.get("type", ""),
                    "reason": event.get("reason", ""),
                    "object": f"{obj.get('kind', '')}/{obj.get('name', '')}",
                    "message": event.get("message", ""),
                    "count": event.get("count") or 1,
                }
            )
    view.events.sort(key=lambda e: str(e["time"]))


def _read_nodes(session: Any, params: Any, view: ClusterView) -> None:
    items = _plain(session, session.core.list_node(label_selector=TPU_LABEL)).get("items", [])
    for node in items:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        capacity = ((node.get("status") or {}).get("capacity") or {}).get(TPU_RESOURCE, "0")
        view.tpu_nodes.append({"name": node["metadata"]["name"], "ready": ready, "chips": int(capacity or 0)})


def _read_pool(session: Any, params: Any, view: ClusterView) -> None:
    from google.cloud import container_v1

    from rhaii_nb import cluster

    pool = cluster.get_node_pool(session, params)
    if pool is None:
        view.pool = None
        return
    view.pool = {
        "name": pool.name,
        "status": container_v1.NodePool.Status(pool.status).name,
        "status_message": pool.status_message or "",
        "conditions": [c.message for c in pool.conditions],
    }


def _read_quota(session: Any, params: Any, view: ClusterView) -> None:
    from rhaii_nb.preflight import tpu_quota_chips

    view.quota_chips = tpu_quota_chips(session, params)


def _custom_names(session: Any, group: str, version: str, namespace: str, plural: str) -> list[str]:
    from kubernetes.client.exceptions import ApiException

    try:
        answer = session.custom.list_namespaced_custom_object(group, version, namespace, plural)
    except ApiException as exc:
        if exc.status == 404:  # the kind is not installed: none present
            return []
        raise
    return sorted(item["metadata"]["name"] for item in answer.get("items", []))


def _expected(group: str) -> list[str]:
    from rhaii_nb.manifests import load_manifests

    return [m.obj["metadata"]["name"] for m in load_manifests(group).items]


def _read_routing_objects(session: Any, params: Any, view: ClusterView) -> None:
    view.expected_envoyfilters = _expected("envoyfilters")
    view.envoyfilters = _custom_names(
        session, *ENVOYFILTER_GVR[:2], names.GATEWAY_NAMESPACE, ENVOYFILTER_GVR[2]
    )


def _read_netpols(session: Any, params: Any, view: ClusterView) -> None:
    view.expected_networkpolicies = _expected("networkpolicies")
    answer = session.networking.list_namespaced_network_policy(params.namespace)
    view.networkpolicies = sorted(item.metadata.name for item in answer.items)


def _read_epp(session: Any, params: Any, view: ClusterView) -> None:
    from rhaii_nb import pods as pod_helpers

    answer = session.core.list_namespaced_pod(
        params.namespace, label_selector=names.scheduler_selector(params.service_name)
    )
    for pod in _plain(session, answer).get("items", []):
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        spec = pod.get("spec") or {}
        containers = [c["name"] for c in spec.get("containers") or []]
        containers += [
            c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
        ]
        view.epp_pods.append(
            {
                "name": pod["metadata"]["name"],
                "containers": containers,
                "ready": pod_helpers.is_ready(pod),
                "stage": pod_helpers.pod_stage(pod),
            }
        )


def _read_logs(session: Any, params: Any, view: ClusterView) -> None:
    from rhaii_nb.logs import tail

    for pod in view.pods:
        if pod["node"] == "":
            continue  # never started: no logs
        stage = pod["stage"]
        containers = ["storage-initializer"] if stage.startswith("Init:") else ["main"]
        for container in containers:
            lines: list[str] = []
            # A crash-looping container may be between attempts: its crashed run's log tells why.
            for previous in (True, False) if pod["restarts"] else (False,):
                with contextlib.suppress(Exception):  # a container that has not started has no log yet
                    lines += tail(
                        session,
                        pod["name"],
                        params.namespace,
                        container=container,
                        lines=LOG_LINES,
                        previous=previous,
                    )
            view.logs[f"{pod['name']}/{container}"] = lines


def _one_request(base_url: str, model: str, timeout: float) -> dict[str, Any]:
    """One completion with no retries: what a client sees (a retry would hide a 503)."""
    from rhaii_nb import measure

    row = measure.load(
        base_url, ["Say hello."], model=model, requests=1, stream=False, max_tokens=5, timeout_s=timeout
    ).df.iloc[0]
    return {"status": int(row["status"]), "ok": row["error"] is None, "summary": row["error"] or "200 OK"}


def _read_behaviour(session: Any, params: Any, view: ClusterView) -> None:
    """One completion through the gateway, then (if it answered) a short same-prefix cache test."""
    from rhaii_nb import measure

    base_url, timeout = session.service_base_url(), params.request_timeout_s
    model = params.served_model_name
    view.gateway = _one_request(base_url, model, timeout)
    if view.gateway["status"] == 404:  # served under the path name (no --served-model-name)
        model = measure.DEFAULT_MODEL
        view.gateway = _one_request(base_url, model, timeout)
    if not view.gateway["ok"]:
        return
    test = measure.cache_test(base_url, model, requests=6, max_tokens=5, timeout_s=timeout)
    summary = test.summary()
    ok = test.df[test.df["error"].isna()]
    summary["latency_p50_s"] = float(ok["latency_s"].median()) if len(ok) else float("nan")
    summary["replica_list"] = [r for r in test.df["replica"].tolist() if r]
    view.cache = summary


def inspect(session: Any, params: Any, *, behaviour: bool = True) -> ClusterView:
    """Look at everything the troubleshooting rules need; parts that cannot be read are noted."""
    from rhaii_nb.retry import STATS

    retries_before = dict(STATS.counts)
    view = ClusterView()
    _guarded(view, "TPU quota", lambda: _read_quota(session, params, view))
    try:
        view.cluster_exists = session.get_cluster() is not None
    except Exception as exc:
        view.unreadable["cluster"] = f"{type(exc).__name__}: {exc}"
    if view.cluster_exists:
        _guarded(view, "node pool", lambda: _read_pool(session, params, view))
        _guarded(view, "TPU nodes", lambda: _read_nodes(session, params, view))
        _guarded(view, "LLMInferenceService and pods", lambda: _read_service_and_pods(session, params, view))
        _guarded(view, "events", lambda: _read_events(session, params, view))
        _guarded(view, "EnvoyFilters", lambda: _read_routing_objects(session, params, view))
        _guarded(view, "NetworkPolicies", lambda: _read_netpols(session, params, view))
        _guarded(view, "EPP pods", lambda: _read_epp(session, params, view))
        _guarded(view, "logs", lambda: _read_logs(session, params, view))
        if behaviour and view.service is not None:
            _guarded(view, "gateway", lambda: _read_behaviour(session, params, view))
    view.retries = {
        k: v - retries_before.get(k, 0)
        for k, v in STATS.counts.items()
        if k in API_STACKS and v > retries_before.get(k, 0)
    }
    return view


# --- rules --------------------------------------------------------------------------------------------
