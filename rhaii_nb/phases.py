"""Which runbook phases are done, checked on the live cluster: ``require(session, "cluster")``.

Each notebook starts by requiring what the phases before it leave behind, so a notebook run out of
order stops at once with the notebook to run first ("run 01_cluster first") instead of failing
later with an API error. The checks read the real objects (GKE cluster, namespace, secrets, CRDs,
the LLMInferenceService, the EPP Deployment, the EnvoyFilters); nothing is remembered locally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rhaii_nb import names


class PhaseNotDone(RuntimeError):
    """A phase this notebook builds on has not been run (or its result is gone)."""


@dataclass(frozen=True)
class Phase:
    """A phase of the runbook: its key, the notebook that does it, and the check that it is done."""

    key: str
    notebook: str
    check: Callable[[Any, Any], str | None]  # (session, params) -> None when done, else what is missing
    needs: tuple[str, ...] = ()  # phases whose result this check reads


def _api_status(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def _cluster(session: Any, params: Any) -> str | None:
    from google.cloud import container_v1

    from rhaii_nb.cluster import get_node_pool

    cluster = session.get_cluster()
    if cluster is None:
        return f"cluster {params.cluster_name} does not exist"
    status = container_v1.Cluster.Status(cluster.status).name
    if status != "RUNNING":
        return f"cluster {params.cluster_name} is {status}, not RUNNING"
    pool = get_node_pool(session, params)
    if pool is None:
        return f"node pool {params.node_pool} does not exist"
    if container_v1.NodePool.Status(pool.status).name != "RUNNING":
        return f"node pool {params.node_pool} is {container_v1.NodePool.Status(pool.status).name}"
    return None


def _namespace(session: Any, params: Any) -> str | None:
    from kubernetes.client.exceptions import ApiException

    from rhaii_nb.schema_validation import HF_SECRET_NAME, PULL_SECRET_NAME

    try:
        session.core.read_namespace(params.namespace)
    except ApiException as exc:
        if _api_status(exc) == 404:
            return f"namespace {params.namespace} does not exist"
        raise
    missing = []
    for secret in (PULL_SECRET_NAME, HF_SECRET_NAME):
        try:
            session.core.read_namespaced_secret(secret, params.namespace)
        except ApiException as exc:
            if _api_status(exc) != 404:
                raise
            missing.append(secret)
    return f"secret(s) {', '.join(missing)} missing in {params.namespace}" if missing else None


def _operators(session: Any, params: Any) -> str | None:
    from kubernetes.client.exceptions import ApiException

    from rhaii_nb.service import crd_installed

    if not crd_installed(session):
        return "the LLMInferenceService CRD is not installed"
    try:
        session.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", names.GATEWAY_NAMESPACE, "gateways", names.GATEWAY_NAME
        )
    except ApiException as exc:
        if _api_status(exc) == 404:
            return f"gateway {names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME} does not exist"
        raise
    return None


def _service(session: Any, params: Any) -> str | None:
    from rhaii_nb.service import get_service, is_service_ready

    service = get_service(session, params)
    if service is None:
        return f"LLMInferenceService {params.namespace}/{params.service_name} does not exist"
    if not is_service_ready(service):
        return f"LLMInferenceService {params.service_name} is not Ready"
    return None


def _epp_sidecar(session: Any, params: Any) -> str | None:
    from rhaii_nb.routing import sidecar_enabled

    if not sidecar_enabled(session, params):
        return f"sidecar injection is not enabled on {names.scheduler_deployment(params.service_name)}"
    return None


def _envoyfilters(session: Any, params: Any) -> str | None:
    from rhaii_nb.routing import missing_envoyfilters

    missing = missing_envoyfilters(session, params)
    return f"EnvoyFilter(s) {', '.join(missing)} missing" if missing else None


PHASES: dict[str, Phase] = {
    p.key: p
    for p in (
        Phase("cluster", "01_cluster", _cluster),
        Phase("namespace", "02_namespace_secrets", _namespace, ("cluster",)),
        Phase("operators", "03_operators", _operators, ("cluster",)),
        Phase("service", "04_inference_service", _service, ("operators",)),
        Phase("epp_sidecar", "05_epp_sidecar", _epp_sidecar, ("service",)),
        Phase("envoyfilters", "06_envoyfilters", _envoyfilters, ("operators",)),
    )
}


def missing(session: Any, key: str, _seen: dict[str, str | None] | None = None) -> str | None:
    """What is missing for phase ``key`` or a phase it builds on (None when all are done)."""
    from rhaii_nb.session import ClusterNotReady

    if key not in PHASES:
        raise ValueError(f"unknown phase {key!r}; known: {', '.join(PHASES)}")
    seen = {} if _seen is None else _seen
    if key in seen:
        return seen[key]
    phase = PHASES[key]
    problem = next((p for need in phase.needs if (p := missing(session, need, seen)) is not None), None)
    if problem is None:
        try:
            problem = phase.check(session, session.params)
        except ClusterNotReady as exc:
            problem = str(exc)
    seen[key] = problem
    return problem


def state(session: Any, key: str) -> str:
    """``"done"`` or what is missing for phase ``key`` (a value a success criterion can compare)."""
    return missing(session, key) or "done"


def require(session: Any, *keys: str) -> None:
    """Raise :class:`PhaseNotDone` naming the notebook to run first when a required phase is not done."""
    seen: dict[str, str | None] = {}
    for key in keys:
        problem = missing(session, key, seen)
        if problem is not None:
            notebook = _first_undone(key, seen)
            raise PhaseNotDone(f"{problem}: run {notebook} first (phase '{key}' is not done).")


def _first_undone(key: str, seen: dict[str, str | None]) -> str:
    """The notebook of the earliest phase on ``key``'s path that is not done (from ``missing``'s results)."""
    for need in PHASES[key].needs:
        if seen.get(need) is not None:
            return _first_undone(need, seen)
    return PHASES[key].notebook


def status(session: Any) -> pd.DataFrame:
    """Every phase: notebook, done ✅/❌, and what is missing."""
    rows = []
    seen: dict[str, str | None] = {}
    for key, phase in PHASES.items():
        problem = missing(session, key, seen)
        rows.append(
            {
                "phase": key,
                "notebook": phase.notebook,
                "done": "✅" if problem is None else "❌",
                "missing": problem or "",
            }
        )
    return pd.DataFrame(rows, columns=["phase", "notebook", "done", "missing"])
