"""Pod lifecycle tracking: stages as ``kubectl get pods`` names them, a live table, waits that explain.

:func:`pod_stage` is kubectl's STATUS column (``printPod`` in kubernetes
``pkg/printers/internalversion/printers.go``) ported line by line: ``Init:N/M``,
``Init:CrashLoopBackOff``, ``PodInitializing``, ``ContainerCreating``, ``Running``, ``Completed``,
``Error``, ``Terminating``, ``NotReady``...

:class:`PodTracker` lists then watches pods (``kubernetes.watch.Watch`` resuming from the last
resourceVersion, re-listing on 410 Gone), records every stage transition with its time (a DataFrame
for the timeline chart) and renders the table live. :meth:`PodTracker.wait_for` stops when a
condition holds, or raises :class:`WaitTimeout` saying what was still missing plus the recent events.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb.display import Live, elapsed

Pod = dict[str, Any]


class WaitTimeout(TimeoutError):
    """A wait ran out of time; the message says what was still missing and shows recent events."""


# --- kubectl's STATUS column --------------------------------------------------------------------


def _restartable(container: dict[str, Any] | None) -> bool:
    """A sidecar init container (``restartPolicy: Always``)."""
    return bool(container) and container.get("restartPolicy") == "Always"


def _condition_true(pod: Pod, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@dataclass(frozen=True)
class KubectlColumns:
    """What ``kubectl get pods`` shows for a pod: READY (ready/total), STATUS, RESTARTS."""

    ready: int
    total: int
    status: str
    restarts: int


def kubectl_columns(pod: Pod) -> KubectlColumns:
    """READY, STATUS and RESTARTS computed as kubectl's ``printPod`` does, branch for branch."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    metadata = pod.get("metadata") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    init_count = len(spec.get("initContainers") or [])
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if _restartable(c))
    ready = restarts = sidecar_restarts = 0
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        sidecar = _restartable(init_specs.get(container.get("name")))
        restarts += int(container.get("restartCount") or 0)
        if sidecar:
            sidecar_restarts += int(container.get("restartCount") or 0)
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if sidecar and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
            else:
                reason = "Init:" + terminated["reason"]
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{init_count}"
        initializing = True
        break

    if not initializing or _condition_true(pod, "Initialized"):
        restarts = sidecar_restarts
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(pod, "Ready") else "NotReady"

    if metadata.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif metadata.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return KubectlColumns(ready, total, reason, restarts)


def pod_stage(pod: Pod) -> str:
    """The pod's STATUS exactly as ``kubectl get pods`` prints it."""
    return kubectl_columns(pod).status


def ready_containers(pod: Pod) -> tuple[int, int]:
    """(ready, total): kubectl's READY column (sidecar init containers included)."""
    columns = kubectl_columns(pod)
    return columns.ready, columns.total


def restarts(pod: Pod) -> int:
    """kubectl's RESTARTS count (init containers while initializing, else the containers + sidecars)."""
    return kubectl_columns(pod).restarts


def _created(pod: Pod) -> dt.datetime | None:
    stamp = (pod.get("metadata") or {}).get("creationTimestamp")
    if isinstance(stamp, dt.datetime):
        return stamp
    if isinstance(stamp, str) and stamp:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return None


def human_age(since: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """kubectl-style age: ``45s``, ``3m12s``, ``2h5m``, ``3d``."""
    if since is None:
        return "<unknown>"
    seconds = int(((now or dt.datetime.now(dt.UTC)) - since).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def pod_row(pod: Pod) -> dict[str, Any]:
    """One row of the live table: pod, node, stage, ready, restarts, age."""
    ready, total = ready_containers(pod)
    return {
        "pod": pod["metadata"]["name"],
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "stage": pod_stage(pod),
        "ready": f"{ready}/{total}",
        "restarts": restarts(pod),
        "age": human_age(_created(pod)),
    }


def pods_table(pods: list[Pod]) -> pd.DataFrame:
    """The ``kubectl get pods -o wide``-like table of ``pods`` (sorted by name)."""
    rows = [pod_row(p) for p in sorted(pods, key=lambda p: p["metadata"]["name"])]
    return pd.DataFrame(rows, columns=["pod", "node", "stage", "ready", "restarts", "age"])


def is_ready(pod: Pod) -> bool:
    """All containers ready and the pod not terminating."""
    ready, total = ready_containers(pod)
    return total > 0 and ready == total and not (pod.get("metadata") or {}).get("deletionTimestamp")


# --- conditions ---------------------------------------------------------------------------------


@dataclass
class Condition:
    """A named test over the current pods; ``missing(pods)`` says what is not there yet."""

    description: str
    test: Callable[[list[Pod]], bool]
    missing: Callable[[list[Pod]], str]


def all_ready(count: int) -> Condition:
    """At least ``count`` pods, all of them Ready (like the guide's "3 pods Running 1/1")."""

    def test(pods: list[Pod]) -> bool:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) >= count and sum(is_ready(p) for p in live) >= count

    def missing(pods: list[Pod]) -> str:
        ready = [p for p in pods if is_ready(p)]
        waiting = [f"{p['metadata']['name']} {pod_stage(p)}" for p in pods if not is_ready(p)]
        text = f"{len(ready)}/{count} pods ready"
        return text + (f"; not ready: {', '.join(waiting)}" if waiting else "")

    return Condition(f"{count} pods ready", test, missing)


def all_gone() -> Condition:
    """No pod left (after a delete or scale to zero)."""
    return Condition(
        "no pods left",
        lambda pods: not pods,
        lambda pods: f"{len(pods)} pods still present: " + ", ".join(p["metadata"]["name"] for p in pods),
    )


# --- tracking -----------------------------------------------------------------------------------


@dataclass
class Transition:
    """A pod entered ``stage`` at ``at`` (UTC)."""

    pod: str
    stage: str
    at: dt.datetime
    node: str = ""


@dataclass
class PodTracker:
    """Watches the pods matching ``label_selector`` in ``namespace``; records stage transitions."""

    session: Any
    namespace: str
    label_selector: str = ""
    show: bool = True
    pods: dict[str, Pod] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    resource_version: str | None = None
    relists: int = 0

    # -- listing and watching -------------------------------------------------------------------

    def _list(self) -> None:
        core = self.session.core
        answer = core.list_namespaced_pod(self.namespace, label_selector=self.label_selector or None)
        raw = self.session.api_client.sanitize_for_serialization(answer)
        self.resource_version = raw["metadata"].get("resourceVersion")
        current = {p["metadata"]["name"]: p for p in raw.get("items", [])}
        for name in list(self.pods):
            if name not in current:
                self._observe("DELETED", self.pods[name])
        for pod in current.values():
            self._observe("MODIFIED", pod)

    def _observe(self, kind: str, pod: Pod) -> None:
        name = pod["metadata"]["name"]
        now = dt.datetime.now(dt.UTC)
        if kind == "DELETED":
            self.pods.pop(name, None)
            self.transitions.append(
                Transition(name, "Deleted", now, (pod.get("spec") or {}).get("nodeName") or "")
            )
            return
        self.pods[name] = pod
        stage = pod_stage(pod)
        ready, total = ready_containers(pod)
        label = f"{stage} {ready}/{total}" if stage == "Running" else stage
        last = next((t for t in reversed(self.transitions) if t.pod == name), None)
        if last is None or last.stage != label:
            self.transitions.append(
                Transition(name, label, now, (pod.get("spec") or {}).get("nodeName") or "")
            )

    def snapshot(self) -> list[Pod]:
        """The pods as last seen."""
        return list(self.pods.values())

    def table(self) -> pd.DataFrame:
        """The live table (pod, node, stage, ready, restarts, age)."""
        return pods_table(self.snapshot())

    def timeline(self) -> pd.DataFrame:
        """Stage transitions as intervals: columns pod, stage, start, end (end NaT while current)."""
        rows = []
        by_pod: dict[str, list[Transition]] = {}
        for item in self.transitions:
            by_pod.setdefault(item.pod, []).append(item)
        for pod, items in by_pod.items():
            for current, following in zip(items, [*items[1:], None], strict=True):
                if current.stage == "Deleted":
                    continue
                end = following.at if following is not None else pd.NaT
                rows.append(
                    {
                        "pod": pod,
                        "stage": current.stage,
                        "start": current.at,
                        "end": end,
                        "node": current.node,
                    }
                )
        return pd.DataFrame(rows, columns=["pod", "stage", "start", "end", "node"])

    def wait_for(self, condition: Condition, timeout: float, *, what: str = "") -> pd.DataFrame:
        """Watch until ``condition`` holds; return the final table. Raises :class:`WaitTimeout`.

        The message of the timeout names what was still missing and lists the recent events.
        """
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        started = time.monotonic()
        deadline = started + timeout
        live = Live(enabled=self.show)
        self._list()
        try:
            while True:
                self._render(live, condition, started)
                if condition.test(self.snapshot()):
                    return self.table()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                stream = watch.Watch()
                try:
                    for event in stream.stream(
                        self.session.core.list_namespaced_pod,
                        self.namespace,
                        label_selector=self.label_selector or None,
                        resource_version=self.resource_version,
                        timeout_seconds=max(1, min(int(remaining) + 1, 30)),
                        _request_timeout=min(remaining, 30) + 10,
                    ):
                        pod = event["raw_object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=pod.get("code", 500), reason=pod.get("message", ""))
                        if event["type"] == "BOOKMARK":
                            self.resource_version = pod["metadata"].get("resourceVersion")
                            continue
                        self.resource_version = (
                            pod["metadata"].get("resourceVersion") or self.resource_version
                        )
                        self._observe(event["type"], pod)
                        self._render(live, condition, started)
                        if condition.test(self.snapshot()) or time.monotonic() >= deadline:
                            stream.stop()
                except ApiException as exc:
                    if exc.status != 410:
                        raise
                    self.relists += 1  # our resourceVersion is too old: list again, then watch on
                    self._list()
                except _timeout_errors():
                    pass  # the server ended a quiet watch: resume from the last resourceVersion
        finally:
            live.close()
        missing = condition.missing(self.snapshot())
        raise WaitTimeout(
            f"Timed out after {elapsed(timeout)} waiting for {what or condition.description} in namespace "
            f"{self.namespace}: {missing}.\nRecent events:\n"
            + format_events(recent_events(self.session, self.namespace))
        )

    def _render(self, live: Live, condition: Condition, started: float) -> None:
        took = elapsed(time.monotonic() - started)
        header = f"{condition.description} — {condition.missing(self.snapshot())} — {took}"
        if live._kernel:
            live.update(self.table().style.set_caption(header))
        else:
            live.update(header)


def _timeout_errors() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError, TimeoutError)


def watch_pods(
    session: Any,
    params: Any,
    condition: Condition | None = None,
    timeout: float | None = None,
    *,
    label_selector: str | None = None,
    show: bool = True,
) -> PodTracker:
    """Track the service's workload pods until ``condition`` (default: ``replicas`` ready) holds."""
    from rhaii_nb import names

    tracker = PodTracker(
        session, params.namespace, label_selector or names.workload_selector(params.service_name), show=show
    )
    tracker.wait_for(condition or all_ready(params.replicas), timeout or params.wait_s("ready_timeout_s"))
    return tracker


# --- events -------------------------------------------------------------------------------------


def recent_events(
    session: Any, namespace: str, involving: set[str] | None = None, limit: int = 10
) -> pd.DataFrame:
    """The namespace's latest events (optionally only about the named objects), newest last."""
    raw = session.api_client.sanitize_for_serialization(session.core.list_namespaced_event(namespace))
    rows = []
    for event in raw.get("items", []):
        obj = event.get("involvedObject") or {}
        if involving and obj.get("name") not in involving:
            continue
        stamp = (
            event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
        )
        rows.append(
            {
                "time": stamp or "",
                "type": event.get("type", ""),
                "reason": event.get("reason", ""),
                "object": f"{obj.get('kind', '')}/{obj.get('name', '')}",
                "message": event.get("message", ""),
            }
        )
    frame = pd.DataFrame(rows, columns=["time", "type", "reason", "object", "message"])
    return frame.sort_values("time").tail(limit).reset_index(drop=True)


def format_events(events: pd.DataFrame) -> str:
    """Events as indented lines for an error message (``(none)`` when empty)."""
    if events.empty:
        return "  (none)"
    return "\n".join(f"  {r.time} {r.type} {r.reason} {r.object}: {r.message}" for r in events.itertuples())
