"""kubectl's pod columns as pure functions over a pod dict: READY, STATUS, RESTARTS, ages.

:func:`kubectl_columns` is ``printPod`` from kubernetes ``pkg/printers/internalversion/printers.go``
ported branch for branch (``Init:N/M``, ``Init:CrashLoopBackOff``, ``PodInitializing``,
``ContainerCreating``, ``Running``, ``Completed``, ``Error``, ``Terminating``, ``NotReady``...), and
:func:`human_duration` is apimachinery's ``HumanDuration``. No dependencies, so both the notebook side
(:mod:`rhaii_nb.pods`) and the twin's server-side printer (:mod:`rhaii_nb.twin.kube.printers`) use
the one copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Pod = dict[str, Any]


@dataclass(frozen=True)
class KubectlColumns:
    """What ``kubectl get pods`` shows for a pod: READY (ready/total), STATUS, RESTARTS (+ last restart)."""

    ready: int
    total: int
    status: str
    restarts: int
    last_restart: dt.datetime | None = None


def parse_time(value: str | dt.datetime | None) -> dt.datetime | None:
    """An RFC 3339 timestamp (``2024-01-01T00:00:00Z``, optional fraction) as a datetime; None if absent."""
    if isinstance(value, dt.datetime):
        return value
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``: ``45s``, ``3m12s``, ``125m``, ``3h1m``..."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def restartable_init_container(container: dict[str, Any] | None) -> bool:
    """A sidecar init container (``restartPolicy: Always``): counted as a container, not as init."""
    return bool(container) and container.get("restartPolicy") == "Always"


def condition_true(status: dict[str, Any], kind: str) -> bool:
    """The pod status has condition ``kind`` with status ``"True"``."""
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _later(current: dt.datetime | None, candidate: str | dt.datetime | None) -> dt.datetime | None:
    when = parse_time(candidate)
    if when is None:
        return current
    return when if current is None or when > current else current


def _last_finished(container: dict[str, Any]) -> str | dt.datetime | None:
    """When the container's previous run ended (``lastState.terminated.finishedAt``)."""
    return ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")


def kubectl_columns(pod: Pod) -> KubectlColumns:
    """READY, STATUS, RESTARTS and the last restart's time, computed as kubectl's ``printPod`` does."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    init_count = len(spec.get("initContainers") or [])
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs.values() if restartable_init_container(c)
    )
    ready = restarts = sidecar_restarts = 0
    last_restart: dt.datetime | None = None
    last_sidecar_restart: dt.datetime | None = None
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        count = int(container.get("restartCount") or 0)
        restarts += count
        last_restart = _later(last_restart, _last_finished(container))
        sidecar = restartable_init_container(init_specs.get(container.get("name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, _last_finished(container))
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
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
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{init_count}"
        initializing = True
        break

    if not initializing or condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            last_restart = _later(last_restart, _last_finished(container))
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
            reason = "Running" if condition_true(status, "Ready") else "NotReady"

    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return KubectlColumns(ready, total, reason, restarts, last_restart)
