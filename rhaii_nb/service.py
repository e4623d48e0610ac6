"""LLMInferenceService-level helpers: wait until Ready, replicas ready, a status table.

``wait_ready`` watches the ``llminferenceservices.serving.kserve.io`` object (the real CRD name — the
guide's preflight checks a wrong one) until its ``Ready`` condition is True **and** the workload
pods ready equal ``params.replicas``; meanwhile it shows the pods' live table; on timeout it names
the unmet conditions, the pods' stages and the recent events.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from rhaii_nb import names
from rhaii_nb.display import Live, elapsed
from rhaii_nb.pods import PodTracker, WaitTimeout, format_events, is_ready, pods_table, recent_events
from rhaii_nb.polling import poll_interval

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1alpha1", "llminferenceservices"
CRD_NAME = f"{PLURAL}.{GROUP}"


def get_service(session: Any, params: Any) -> dict[str, Any] | None:
    """The LLMInferenceService object, or None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return session.custom.get_namespaced_custom_object(
            GROUP, VERSION, params.namespace, PLURAL, params.service_name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def conditions(service: dict[str, Any] | None) -> pd.DataFrame:
    """The service's status conditions (type, status, reason, message)."""
    rows = [
        {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
        for c in ((service or {}).get("status") or {}).get("conditions") or []
    ]
    return pd.DataFrame(rows, columns=["type", "status", "reason", "message"])


def is_service_ready(service: dict[str, Any] | None) -> bool:
    """Whether the ``Ready`` condition is True."""
    frame = conditions(service)
    return bool(((frame["type"] == "Ready") & (frame["status"] == "True")).any())


def workload_pods(session: Any, params: Any) -> list[dict[str, Any]]:
    """The service's vLLM pods (as plain dicts)."""
    answer = session.core.list_namespaced_pod(
        params.namespace, label_selector=names.workload_selector(params.service_name)
    )
    return session.api_client.sanitize_for_serialization(answer).get("items", [])


def replicas_ready(session: Any, params: Any) -> int:
    """How many workload pods are Ready."""
    return sum(is_ready(p) for p in workload_pods(session, params))


def status_table(session: Any, params: Any) -> pd.DataFrame:
    """One-look summary: service Ready, replicas ready/wanted, each condition, the URL status reports."""
    service = get_service(session, params)
    ready = replicas_ready(session, params) if service is not None else 0
    rows = [
        {"item": "LLMInferenceService", "value": params.service_name if service else "not found"},
        {"item": "Ready", "value": "True" if is_service_ready(service) else "False"},
        {"item": "replicas ready", "value": f"{ready}/{params.replicas}"},
        {"item": "url", "value": ((service or {}).get("status") or {}).get("url", "")},
    ]
    rows += [
        {"item": f"condition {c.type}", "value": f"{c.status} {c.reason} {c.message}".strip()}
        for c in conditions(service).itertuples()
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def wait_ready(session: Any, params: Any, timeout: float | None = None, *, show: bool = True) -> pd.DataFrame:
    """Wait for Ready=True and ``params.replicas`` workload pods ready; returns the pods table.

    Raises :class:`~rhaii_nb.pods.WaitTimeout` naming what was missing, the pods' stages and the
    recent events.
    """
    timeout = timeout if timeout is not None else params.wait_s("ready_timeout_s")
    started = time.monotonic()
    deadline = started + timeout
    tracker = PodTracker(session, params.namespace, names.workload_selector(params.service_name), show=False)
    live = Live(enabled=show, min_interval_s=5.0)
    service: dict[str, Any] | None = None
    try:
        while True:
            service = get_service(session, params)
            tracker._list()
            ready = sum(is_ready(p) for p in tracker.snapshot())
            line = (
                f"{params.service_name}: Ready={is_service_ready(service)}"
                f" · replicas ready {ready}/{params.replicas}"
                f" · {elapsed(time.monotonic() - started)}"
            )
            live.update(line if not live._kernel else tracker.table().style.set_caption(line))
            if is_service_ready(service) and ready >= params.replicas:
                return tracker.table()
            if time.monotonic() >= deadline:
                break
            time.sleep(min(poll_interval(params, 2.0), max(0.1, deadline - time.monotonic())))
    finally:
        live.close()
    problems = []
    if service is None:
        problems.append(f"LLMInferenceService {params.namespace}/{params.service_name} does not exist")
    elif not is_service_ready(service):
        unmet = conditions(service)
        unmet = unmet[unmet["status"] != "True"]
        problems.append(
            "Ready is not True"
            + (
                ": "
                + "; ".join(f"{c.type}={c.status} {c.reason} {c.message}".strip() for c in unmet.itertuples())
                if not unmet.empty
                else ""
            )
        )
    ready = sum(is_ready(p) for p in tracker.snapshot())
    if ready < params.replicas:
        problems.append(f"{ready}/{params.replicas} replicas ready")
    pods = pods_table(tracker.snapshot())
    raise WaitTimeout(
        f"Timed out after {elapsed(timeout)} waiting for {params.service_name} to be ready: "
        f"{'; '.join(problems)}.\n"
        f"Pods:\n{pods.to_string(index=False) if not pods.empty else '  (none)'}\n"
        f"Recent events:\n{format_events(recent_events(session, params.namespace))}"
    )


def crd_installed(session: Any) -> bool:
    """Whether the LLMInferenceService CRD (``llminferenceservices.serving.kserve.io``) exists."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.ApiextensionsV1Api(session.api_client).read_custom_resource_definition(CRD_NAME)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
