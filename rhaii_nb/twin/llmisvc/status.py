"""LLMInferenceService status as KServe computes it (``llm_inference_service_lifecycle.go``).

Dependent conditions: ``MainWorkloadReady`` (from the vLLM Deployment's ``Available`` condition),
aggregated into ``WorkloadsReady``; ``SchedulerWorkloadReady``, ``InferencePoolReady``,
``HTTPRoutesReady`` and ``GatewaysReady``, aggregated into ``RouterReady``. ``Ready`` is True only
when ``WorkloadsReady`` and ``RouterReady`` are, and otherwise takes the reason and message of the
first one that is not (knative's living condition set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rhaii_nb.twin.controllers._kube import now_rfc3339


@dataclass
class Observed:
    """What the controller read back from the cluster for one service."""

    workload: dict[str, Any] | None
    scheduler: dict[str, Any] | None = None
    pool: dict[str, Any] | None = None
    route: dict[str, Any] | None = None
    gateway: dict[str, Any] | None = None
    gateway_key: str = ""
    managed_scheduler: bool = False
    managed_route: bool = False


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    if not ok:
        entry["reason"] = reason
        if message:
            entry["message"] = message
    return entry


def deployment_condition(kind: str, deployment: dict[str, Any] | None) -> dict[str, Any]:
    """``propagateDeploymentStatus``: the Deployment's ``Available`` condition, else Progressing."""
    if deployment is None:
        return _condition(kind, False, "Progressing", "")
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Available":
            ok = condition.get("status") == "True"
            return _condition(kind, ok, condition.get("reason", ""), condition.get("message", ""))
    return _condition(kind, False, "Progressing", "")


def _status_condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def route_condition(route: dict[str, Any] | None) -> dict[str, Any]:
    """``HTTPRoutesReady``: every parent has Accepted and ResolvedRefs True."""
    if route is None:
        return _condition("HTTPRoutesReady", False, "HTTPRouteNotFound", "HTTPRoute not created yet")
    name = f"{route['metadata']['namespace']}/{route['metadata']['name']}"
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return _condition(
            "HTTPRoutesReady", False, "HTTPRouteNotReady", f"HTTPRoute {name} has no parent status yet"
        )
    for parent in parents:
        for kind in ("Accepted", "ResolvedRefs"):
            found = next((c for c in parent.get("conditions") or [] if c.get("type") == kind), None)
            if found is None or found.get("status") != "True":
                why = (found or {}).get("message") or f"{kind} is not True"
                return _condition("HTTPRoutesReady", False, "HTTPRouteNotReady", f"HTTPRoute {name}: {why}")
    return _condition("HTTPRoutesReady", True)


def gateway_condition(gateway: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """``GatewaysReady``: the parent Gateway is Programmed."""
    if gateway is None:
        return _condition("GatewaysReady", False, "GatewayNotFound", f"Gateway {key} not found")
    programmed = _status_condition(gateway, "Programmed")
    if programmed is None or programmed.get("status") != "True":
        why = (programmed or {}).get("message") or "not programmed yet"
        return _condition("GatewaysReady", False, "GatewayNotReady", f"Gateway {key} is not ready: {why}")
    return _condition("GatewaysReady", True)


def _aggregate(kind: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    failed = next((c for c in parts if c["status"] != "True"), None)
    if failed is None:
        return _condition(kind, True)
    return _condition(kind, False, failed.get("reason", ""), failed.get("message", ""))


def conditions(observed: Observed) -> list[dict[str, Any]]:
    """Every condition of the service (without transition times)."""
    main = deployment_condition("MainWorkloadReady", observed.workload)
    workloads = _aggregate("WorkloadsReady", [main])
    router_parts: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = [main]
    if observed.managed_scheduler:
        scheduler = deployment_condition("SchedulerWorkloadReady", observed.scheduler)
        pool = (
            _condition("InferencePoolReady", True)
            if observed.pool is not None
            else _condition(
                "InferencePoolReady", False, "InferencePoolNotFound", "InferencePool not created yet"
            )
        )
        router_parts += [scheduler, pool]
    if observed.managed_route:
        router_parts += [
            gateway_condition(observed.gateway, observed.gateway_key),
            route_condition(observed.route),
        ]
    extra += router_parts
    router = _aggregate("RouterReady", router_parts)
    ready = _aggregate("Ready", [workloads, router])
    presets = _condition("PresetsCombined", True)
    return sorted([*extra, workloads, router, presets, ready], key=lambda c: c["type"])


def with_transition_times(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep ``lastTransitionTime`` of conditions whose status did not change."""
    previous = {c.get("type"): c for c in old}
    stamped = []
    for condition in new:
        before = previous.get(condition["type"])
        same = before is not None and before.get("status") == condition["status"]
        stamped.append(
            {**condition, "lastTransitionTime": before.get("lastTransitionTime") if same else now_rfc3339()}
        )
    return stamped


def gateway_url(
    gateway: dict[str, Any] | None, namespace: str, name: str, scheme: str = "https"
) -> str | None:
    """``<urlScheme>://<first gateway address>/<ns>/<name>`` (EA1's ``urlScheme`` is https)."""
    addresses = ((gateway or {}).get("status") or {}).get("addresses") or []
    if not addresses:
        return None
    return f"{scheme}://{addresses[0]['value']}/{namespace}/{name}"


def same_conditions(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal apart from transition times."""

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in items]

    return strip(a) == strip(b)
