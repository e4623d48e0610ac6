"""The twin's kube-scheduler: binds Pending pods to nodes, or says why none fits.

Filters run in the default scheduler's order and the first failing one gives the node's reason:
``NodeUnschedulable``, ``TaintToleration`` (NoSchedule/NoExecute), ``NodeAffinity`` (nodeSelector and
required node affinity), ``NodeResourcesFit`` (cpu, memory, extended resources such as
``google.com/tpu``, summed over the node's non-terminated pods). A pod no node fits stays Pending with
``PodScheduled=False`` (reason ``Unschedulable``) and a ``FailedScheduling`` Warning event worded as
kube-scheduler words it, e.g.::

    0/3 nodes are available: 3 Insufficient google.com/tpu. preemption: 0/3 nodes are available:
    3 No preemption victims found for incoming pod.

Unschedulable pods are retried when nodes or pods change, and every five (scaled) minutes as
kube-scheduler flushes its unschedulable queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rhaii_nb.twin.controllers._kube import Kube, now_rfc3339

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
# kube-scheduler moves unschedulable pods back to the active queue after this long (real seconds).
UNSCHEDULABLE_FLUSH_S = 300.0

# Reasons whose nodes preemption cannot help (UnschedulableAndUnresolvable in kube-scheduler).
_UNRESOLVABLE_PREFIXES = (
    "node(s) didn't match",
    "node(s) had untolerated taint",
    "node(s) were unschedulable",
)


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``4``, ``500Mi``, ``256m``) as a number."""
    from kubernetes.utils.quantity import parse_quantity as _parse  # heavy import: only when scheduling

    return Decimal(_parse(value))


def _container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    # Requests default to limits for a resource that only has a limit (as the API server defaults).
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: parse_quantity(value) for name, value in merged.items()}


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """Effective resource requests of a pod: containers + sidecars, or the largest init container."""
    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(_container_requests(container))
    init_peak: Counter[str] = Counter()
    sidecars: Counter[str] = Counter()
    for init in spec.get("initContainers") or []:
        requests = _container_requests(init)
        if init.get("restartPolicy") == "Always":
            sidecars.update(requests)
            total.update(requests)
        else:
            for name, value in requests.items():
                init_peak[name] = max(init_peak[name], value + sidecars[name])
    for name, value in init_peak.items():
        total[name] = max(total[name], value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] += parse_quantity(value)
    return dict(total)


def _node_ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _node_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    taints = list((node.get("spec") or {}).get("taints") or [])
    # The node lifecycle controller taints nodes that are not Ready; do the same if nobody did.
    if not _node_ready(node) and not any(t.get("key") == "node.kubernetes.io/not-ready" for t in taints):
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    return taints


def _tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if operator == "Exists":
        return key == "" or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The first NoSchedule/NoExecute taint of the node that the pod does not tolerate."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in _node_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _match_expression(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    present = key in labels
    value = labels.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        try:
            number, bound = int(value), int(values[0])
        except (TypeError, ValueError, IndexError):
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def matches_node_affinity(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether the node satisfies the pod's nodeSelector and required node affinity."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if not required:
        return True
    node_name = (node.get("metadata") or {}).get("name")
    for term in required:  # terms are ORed, expressions within a term ANDed
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            continue
        if all(_match_expression(e, labels) for e in expressions) and all(
            _match_expression(f, {"metadata.name": node_name}) for f in fields
        ):
            return True
    return False


def node_allocatable(node: dict[str, Any]) -> dict[str, Decimal]:
    """What the node offers to pods (``status.allocatable``, else ``status.capacity``)."""
    status = node.get("status") or {}
    offered = status.get("allocatable") or status.get("capacity") or {}
    return {name: parse_quantity(value) for name, value in offered.items()}


def is_terminated(pod: dict[str, Any]) -> bool:
    """Whether the pod no longer holds resources (Succeeded or Failed)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def insufficient_resources(
    requests: dict[str, Decimal], allocatable: dict[str, Decimal], used: dict[str, Decimal]
) -> list[str]:
    """``Insufficient <resource>`` for each requested resource the node cannot fit, sorted."""
    reasons = []
    for name, wanted in sorted(requests.items()):
        if wanted <= 0:
            continue
        if wanted + used.get(name, Decimal(0)) > allocatable.get(name, Decimal(0)):
            reasons.append(f"Insufficient {name}")
    if requests.get("pods") is None and used.get("pods", Decimal(0)) + 1 > allocatable.get(
        "pods", Decimal(110)
    ):
        reasons.append("Too many pods")
    return reasons


def node_reasons(
    pod: dict[str, Any], node: dict[str, Any], requests: dict[str, Decimal], used: dict[str, Decimal]
) -> list[str]:
    """Why the pod cannot go to the node (empty when it fits), from the first failing filter."""
    if (node.get("spec") or {}).get("unschedulable"):
        return ["node(s) were unschedulable"]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"]
    if not matches_node_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    return insufficient_resources(requests, node_allocatable(node), used)


def fit_error_message(node_count: int, reasons_by_node: dict[str, list[str]]) -> str:
    """kube-scheduler's ``FitError`` text, including the preemption post-filter's summary."""
    if node_count == 0:
        return "no nodes available to schedule pods"
    histogram: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for reasons in reasons_by_node.values():
        histogram.update(reasons)
        if any(reason.startswith(_UNRESOLVABLE_PREFIXES) for reason in reasons):
            preemption["Preemption is not helpful for scheduling"] += 1
        else:
            preemption["No preemption victims found for incoming pod"] += 1
    head = f"0/{node_count} nodes are available"
    filters = ", ".join(sorted(f"{count} {reason}" for reason, count in histogram.items()))
    victims = ", ".join(sorted(f"{count} {reason}" for reason, count in preemption.items()))
    return f"{head}: {filters}. preemption: {head}: {victims}."


@dataclass
class Decision:
    """Where a pod goes (``node``) or why it cannot go anywhere (``message``)."""

    node: str | None
    message: str = ""


def _used_by_node(pods: Iterable[dict[str, Any]]) -> dict[str, Counter[str]]:
    used: dict[str, Counter[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or is_terminated(pod):
            continue
        counter = used.setdefault(node, Counter())
        counter.update(pod_requests(pod))
        counter["pods"] += 1
    return used


def decide(pod: dict[str, Any], nodes: list[dict[str, Any]], used: dict[str, Counter[str]]) -> Decision:
    """Pick the feasible node with the most free capacity (ties: by name), or explain the failure."""
    requests = pod_requests(pod)
    reasons_by_node: dict[str, list[str]] = {}
    feasible: list[tuple[Decimal, str]] = []
    for node in nodes:
        name = node["metadata"]["name"]
        node_used = used.get(name, Counter())
        reasons = node_reasons(pod, node, requests, node_used)
        if reasons:
            reasons_by_node[name] = reasons
            continue
        allocatable = node_allocatable(node)
        # LeastAllocated score: mean free fraction of cpu and memory after placing the pod.
        score = Decimal(0)
        for resource in ("cpu", "memory"):
            offered = allocatable.get(resource) or Decimal(1)
            score += (
                offered - node_used.get(resource, Decimal(0)) - requests.get(resource, Decimal(0))
            ) / offered
        feasible.append((-score, name))
    if feasible:
        return Decision(min(feasible)[1])
    return Decision(None, fit_error_message(len(nodes), reasons_by_node))


class Scheduler:
    """Watches pods and nodes through the store and binds what can be bound."""

    def __init__(self, kube: Kube, clock: Any) -> None:
        self.kube = kube
        self.clock = clock
        self._wake = asyncio.Event()
        # Per pod uid: (message last reported, cluster change counter at that time).
        self._reported: dict[str, tuple[str, int]] = {}
        self._changes = 0

    def on_write(self, event: Any, rt: Any) -> None:
        """Store callback: note changes that can make a Pending pod schedulable."""
        if rt.group != "" or rt.plural not in ("pods", "nodes"):
            return
        obj = event.object
        if rt.plural == "nodes":
            self._changes += 1
            self._wake.set()
            return
        spec = obj.get("spec") or {}
        if event.type == "DELETED" or is_terminated(obj):
            self._changes += 1
            self._wake.set()
        elif not spec.get("nodeName"):
            self._wake.set()

    def pending(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Pods waiting for this scheduler, oldest first."""
        waiting = [
            pod
            for pod in pods
            if not (pod.get("spec") or {}).get("nodeName")
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not is_terminated(pod)
        ]
        return sorted(
            waiting, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
        )

    def schedule_once(self, *, flush: bool = False) -> int:
        """One scheduling pass over every Pending pod; returns how many were bound."""
        # Read-only views (no deep copy of every pod on every pass): the pass only reads them.
        pods = self.kube.list("pods", read_only=True)
        nodes = sorted(self.kube.list("nodes", read_only=True), key=lambda n: n["metadata"]["name"])
        used = _used_by_node(pods)
        bound = 0
        for pod in self.pending(pods):
            decision = decide(pod, nodes, used)
            if decision.node is not None:
                if self._bind(pod, decision.node):
                    used.setdefault(decision.node, Counter()).update(pod_requests(pod))
                    used[decision.node]["pods"] += 1
                    bound += 1
            else:
                self._report_unschedulable(pod, decision.message, flush)
        return bound

    def _bind(self, pod: dict[str, Any], node: str) -> bool:
        meta = pod["metadata"]
        if not self.kube.bind_pod(meta["namespace"], meta["name"], node, SCHEDULER_NAME):
            return False
        self._reported.pop(meta["uid"], None)
        self.kube.event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            "Normal",
            SCHEDULER_NAME,
        )
        return True

    def _report_unschedulable(self, pod: dict[str, Any], message: str, flush: bool) -> None:
        meta = pod["metadata"]
        previous = self._reported.get(meta["uid"])
        if previous is not None and previous == (message, self._changes) and not flush:
            return
        self._reported[meta["uid"]] = (message, self._changes)
        self.kube.set_pod_condition(
            meta["namespace"],
            meta["name"],
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message},
            SCHEDULER_NAME,
        )
        self.kube.event(pod, "FailedScheduling", message, "Warning", SCHEDULER_NAME)

    async def run(self) -> None:
        """Schedule whenever something changes, and flush unschedulable pods periodically."""
        self.kube.subscribe(self.on_write)
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self.clock.scaled(UNSCHEDULABLE_FLUSH_S)
        while True:
            timeout = max(0.0, next_flush - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.01)):
                    await self._wake.wait()
            self._wake.clear()
            flush = loop.time() >= next_flush
            if flush:
                next_flush = loop.time() + max(self.clock.scaled(UNSCHEDULABLE_FLUSH_S), 0.5)
            try:
                self.schedule_once(flush=flush)
            except Exception:  # keep scheduling: one bad object must not stop the cluster
                log.exception("scheduling pass failed")
            await asyncio.sleep(0)


async def run(ctx: Any) -> None:
    """Controller entry point (started by the twin daemon)."""
    await Scheduler(Kube(ctx.store), ctx.clock).run()


__all__ = ["Decision", "Scheduler", "decide", "fit_error_message", "now_rfc3339", "pod_requests", "run"]
