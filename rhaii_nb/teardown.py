"""Teardown: delete what the runbook created, newest first, then (only when confirmed) the cluster.

:func:`delete_workload` removes the NetworkPolicies, the EnvoyFilters, the LLMInferenceService (and
waits for its vLLM pods to go, which frees the TPUs), the two secrets and the namespace — by the
names the runbook's manifests give them, so nothing else in the cluster is touched. The operators
stay (they belong to the cluster, and go with it). :func:`delete_cluster` deletes the GKE cluster
through the GKE API only when ``confirm_delete`` is true in the params and the cluster carries the
runbook's label; otherwise it keeps it and says how to delete it.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from rhaii_nb.display import Live, elapsed
from rhaii_nb.pods import WaitTimeout

COLUMNS = ["kind", "namespace", "name", "outcome", "seconds"]


def _workload_objects(params: Any) -> list[dict[str, Any]]:
    """Everything the runbook applies in the workload's and gateway's namespaces, in apply order."""
    from rhaii_nb.manifests import manifests_for
    from rhaii_nb.schema_validation import HF_SECRET_NAME, PULL_SECRET_NAME

    groups = ["namespace"]
    secrets = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "namespace": params.namespace}}
        for n in (PULL_SECRET_NAME, HF_SECRET_NAME)
    ]
    applied = manifests_for(params, "inference-service", "envoyfilters", "networkpolicies").objects
    return manifests_for(params, *groups).objects + secrets + applied


def _delete_and_wait(dyn: Any, obj: dict[str, Any], timeout: float) -> str:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    meta = obj["metadata"]
    try:
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    except ResourceNotFoundError:
        return "absent (kind not installed)"
    kwargs = {"name": meta["name"]}
    if meta.get("namespace") and resource.namespaced:
        kwargs["namespace"] = meta["namespace"]
    try:
        resource.delete(**kwargs, propagation_policy="Foreground")
    except NotFoundError:
        return "absent"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resource.get(**kwargs)
        except NotFoundError:
            return "deleted"
        time.sleep(0.5)
    raise WaitTimeout(
        f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']} still exists {elapsed(timeout)} after its "
        "deletion (a finalizer is waiting); check `kubectl get` on it and its events"
    )


def delete_workload(
    session: Any, params: Any, *, timeout: float | None = None, show: bool = True
) -> pd.DataFrame:
    """Delete the runbook's objects newest first; one row per object (deleted / absent).

    ``show``: one line, updated in place, names the object being deleted and the time so far.
    """
    if session.get_cluster() is None:
        return pd.DataFrame(
            [
                {
                    "kind": "cluster",
                    "namespace": "",
                    "name": params.cluster_name,
                    "outcome": "absent",
                    "seconds": 0,
                }
            ],
            columns=COLUMNS,
        )
    timeout = timeout if timeout is not None else params.wait_s("rollout_timeout_s")
    rows = []
    objects = list(reversed(_workload_objects(params)))
    begun = time.monotonic()
    with Live(enabled=show, min_interval_s=5.0) as live:
        for index, obj in enumerate(objects, start=1):
            meta = obj["metadata"]
            live.update(
                f"deleting {obj['kind']} {meta['name']} ({index}/{len(objects)}) · "
                f"{elapsed(time.monotonic() - begun)}"
            )
            started = time.monotonic()
            outcome = _delete_and_wait(session.dynamic, obj, timeout)
            rows.append(
                {
                    "kind": obj["kind"],
                    "namespace": meta.get("namespace", ""),
                    "name": meta["name"],
                    "outcome": outcome,
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
        live.update(f"deleted or absent: {len(objects)} objects in {elapsed(time.monotonic() - begun)}")
    return pd.DataFrame(rows, columns=COLUMNS)


def delete_cluster(session: Any, params: Any, *, show: bool = True) -> pd.DataFrame:
    """Delete the cluster when ``params.confirm_delete`` is true; otherwise keep it and say how."""
    from rhaii_nb import cluster

    if not params.confirm_delete:
        exists = session.get_cluster() is not None
        note = (
            "kept: set confirm_delete: true in the params (or -p confirm_delete=true) to delete it"
            if exists
            else "absent"
        )
        return pd.DataFrame(
            [{"step": "delete cluster", "target": params.cluster_name, "action": note, "seconds": 0.0}]
        )
    step = cluster.delete(session, params, confirm=True, show=show)
    return pd.DataFrame(
        [{"step": step.step, "target": step.target, "action": step.action, "seconds": step.seconds}]
    )


def leftovers(session: Any, params: Any) -> list[str]:
    """What the runbook created that still exists (empty after a complete teardown)."""
    if session.get_cluster() is not None:
        if params.confirm_delete:
            return [f"cluster {params.cluster_name}"]
        return [
            f"{obj['kind']} {obj['metadata']['name']}"
            for obj in _workload_objects(params)
            if _exists(session.dynamic, obj)
        ]
    return []


def _exists(dyn: Any, obj: dict[str, Any]) -> bool:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    meta = obj["metadata"]
    try:
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        kwargs = {"name": meta["name"]}
        if meta.get("namespace") and resource.namespaced:
            kwargs["namespace"] = meta["namespace"]
        resource.get(**kwargs)
        return True
    except (NotFoundError, ResourceNotFoundError):
        return False
