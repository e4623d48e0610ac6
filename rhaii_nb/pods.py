"""Pod lifecycle tracking: stages as ``kubectl get pods`` names them, a live table, waits that explain.

:func:`pod_stage`, :func:`ready_containers` and :func:`restarts` are kubectl's STATUS, READY and
RESTARTS columns, computed by :func:`rhaii_nb.podstatus.kubectl_columns` (kubectl's ``printPod``
ported branch for branch; the twin's server-side printer uses the same function).

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
from rhaii_nb.podstatus import KubectlColumns as KubectlColumns  # re-exported for callers of pods
from rhaii_nb.podstatus import human_duration, kubectl_columns, parse_time

Pod = dict[str, Any]


class WaitTimeout(TimeoutError):
    """A wait ran out of time; the message says what was still missing and shows recent events."""


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
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def human_age(since: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """kubectl's AGE (apimachinery ``HumanDuration``): ``45s``, ``3m12s``, ``125m``, ``3h1m``, ``3d``.

    A start slightly in the future (clock skew with the cluster) reads ``0s``, not kubectl's ``<invalid>``.
    """
    if since is None:
        return "<unknown>"
    return human_duration(max(((now or dt.datetime.now(dt.UTC)) - since).total_seconds(), 0))


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


def _stages_before_first_sight(pod: Pod, label: str, node: str, now: dt.datetime) -> list[Transition]:
    """Stages a pod went through before the tracker first saw it, from the pod's own timestamps.

    A watch started after the apply misses the short ``Pending`` stage; the pod's creation time and
    its ``PodScheduled`` condition say when it was Pending and when it was bound, as ``kubectl
    describe`` would show. Nothing is invented beyond what those timestamps record.
    """
    if label == "Pending":
        return []
    name = pod["metadata"]["name"]
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    scheduled = next(
        (
            parse_time(c.get("lastTransitionTime"))
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "True"
        ),
        None,
    )
    if created is None:
        return []
    stages = [Transition(name, "Pending", min(created, now), "")]
    init_count = len((pod.get("spec") or {}).get("initContainers") or [])
    after_binding = f"Init:0/{init_count}" if init_count else "ContainerCreating"
    if scheduled is not None and label != after_binding:
        stages.append(Transition(name, after_binding, min(max(scheduled, created), now), node))
    elif scheduled is not None:
        # The first stage seen is the one binding starts: it began at the binding, not at first sight.
        stages.append(Transition(name, label, min(max(scheduled, created), now), node))
    return stages


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
        node = (pod.get("spec") or {}).get("nodeName") or ""
        last = next((t for t in reversed(self.transitions) if t.pod == name), None)
        if last is None:
            self.transitions.extend(_stages_before_first_sight(pod, label, node, now))
            last = next((t for t in reversed(self.transitions) if t.pod == name), None)
        if last is None or last.stage != label:
            self.transitions.append(Transition(name, label, now, node))

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
