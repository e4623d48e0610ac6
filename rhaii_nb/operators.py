"""The RHAII operators (cert-manager, Istio, KServe, LeaderWorkerSet) and the inference gateway.

On GKE they are installed with ``opendatahub-io/rhaii-on-xks`` (``make deploy-all`` then
``scripts/setup-gateway.sh``), outside this runbook; :func:`install` checks they are there and, if
not, says how to install them. On the twin, :func:`install` asks the twin to install them (the
twin's stand-in for the same charts). :func:`wait_ready` then checks what the guide's
``verify-deployment.sh --operators-only`` checks — each component's pods Running and Ready — plus
the LLMInferenceService CRD and the gateway's address.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rhaii_nb import names
from rhaii_nb.display import Live, elapsed
from rhaii_nb.pods import WaitTimeout, is_ready
from rhaii_nb.polling import poll_interval

XKS_REPO = "https://github.com/opendatahub-io/rhaii-on-xks"


@dataclass(frozen=True)
class Component:
    """One operator component and how ``verify-deployment.sh`` finds its pods."""

    name: str
    namespace: str
    selector: str


COMPONENTS = (
    Component("cert-manager", "cert-manager", "app.kubernetes.io/instance=cert-manager"),
    Component("istiod", "istio-system", "app=istiod"),
    Component("KServe controller", names.GATEWAY_NAMESPACE, "control-plane=kserve-controller-manager"),
    Component("LeaderWorkerSet", "openshift-lws-operator", "name=openshift-lws-operator"),
)


class OperatorsMissing(RuntimeError):
    """The operators are not installed in a GKE cluster (the runbook does not install them there)."""


def install(session: Any, params: Any) -> pd.DataFrame:
    """Install the operators (twin) or check they are installed (GKE); the status table."""
    from rhaii_nb.service import crd_installed

    if params.target == "local":
        session.twin.admin("POST", "/twin/v1/install-operators", timeout=120).raise_for_status()
    elif not crd_installed(session):
        raise OperatorsMissing(
            "The RHAII operators are not installed in this cluster (no LLMInferenceService CRD). Fix: "
            f"install them with {XKS_REPO} — `make deploy-all` then `./scripts/setup-gateway.sh` — "
            "and run this notebook again."
        )
    return status(session)


def _component_row(session: Any, component: Component) -> dict[str, Any]:
    pods = session.api_client.sanitize_for_serialization(
        session.core.list_namespaced_pod(component.namespace, label_selector=component.selector)
    ).get("items", [])
    ready = sum(is_ready(p) for p in pods)
    return {
        "component": component.name,
        "namespace": component.namespace,
        "pods ready": f"{ready}/{len(pods)}",
        "ok": bool(pods) and ready == len(pods),
    }


def _gateway_row(session: Any) -> dict[str, Any]:
    from rhaii_nb.session import ClusterNotReady

    where = f"{names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME}"
    try:
        address = session.gateway_url(refresh=True)
    except ClusterNotReady as exc:
        return {
            "component": "inference gateway",
            "namespace": names.GATEWAY_NAMESPACE,
            "pods ready": str(exc),
            "ok": False,
        }
    return {
        "component": "inference gateway",
        "namespace": names.GATEWAY_NAMESPACE,
        "pods ready": f"{where} at {address}",
        "ok": True,
    }


def status(session: Any) -> pd.DataFrame:
    """One row per component (pods ready), the LLMInferenceService CRD and the gateway address."""
    from rhaii_nb.service import CRD_NAME, crd_installed

    rows = [_component_row(session, c) for c in COMPONENTS]
    crd = crd_installed(session)
    rows.append(
        {
            "component": f"CRD {CRD_NAME}",
            "namespace": "",
            "pods ready": "installed" if crd else "missing",
            "ok": crd,
        }
    )
    rows.append(_gateway_row(session))
    table = pd.DataFrame(rows, columns=["component", "namespace", "pods ready", "ok"])
    table["ok"] = table["ok"].map({True: "✅", False: "❌"})
    return table


def wait_ready(session: Any, params: Any, *, timeout: float | None = None, show: bool = True) -> pd.DataFrame:
    """Wait until every component is ready and the gateway has an address; the status table.

    Raises :class:`~rhaii_nb.pods.WaitTimeout` naming the components that are not ready.
    """
    timeout = timeout if timeout is not None else params.wait_s("operators_timeout_s")
    started = time.monotonic()
    live = Live(enabled=show, min_interval_s=5.0)
    try:
        while True:
            table = status(session)
            waiting = table[table["ok"] != "✅"]
            took = elapsed(time.monotonic() - started)
            live.update(f"operators: {len(table) - len(waiting)}/{len(table)} ready · {took}")
            if waiting.empty:
                return table
            if time.monotonic() - started >= timeout:
                break
            time.sleep(poll_interval(params, 2.0))
    finally:
        live.close()
    detail = "; ".join(f"{row['component']}: {row['pods ready']}" for _, row in waiting.iterrows())
    raise WaitTimeout(f"Timed out after {elapsed(timeout)} waiting for the operators: {detail}")
