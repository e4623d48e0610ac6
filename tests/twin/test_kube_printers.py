"""Server-side printing: kubectl's pod STATUS/READY logic, ages, CRD printer columns, discovery paths."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rhaii_nb.podstatus import human_duration, kubectl_columns
from rhaii_nb.twin.kube.paths import parse_resource_path
from rhaii_nb.twin.kube.printers import custom_printer, printer_for
from rhaii_nb.twin.kube.tables import to_table, wants_table
from rhaii_nb.twin.resources import builtin_resource_types, resource_types_from_crd

AGO = "2024-01-01T00:00:00Z"  # for fields whose age the test does not read


def minutes_ago(minutes: int) -> str:
    """An RFC 3339 timestamp ``minutes`` ago (ages of 10+ minutes print as whole minutes)."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes, seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    phase: str = "Pending",
    init: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod with one ``main`` container, optional init containers and statuses."""
    spec_init = init_specs if init_specs is not None else [{"name": s["name"]} for s in init or []]
    obj: dict[str, Any] = {
        "metadata": {"name": "p", "creationTimestamp": AGO},
        "spec": {"initContainers": spec_init, "containers": [{"name": "main"}]},
        "status": {"phase": phase, "conditions": conditions or []},
    }
    if init is not None:
        obj["status"]["initContainerStatuses"] = init
    if containers is not None:
        obj["status"]["containerStatuses"] = containers
    if deleting:
        obj["metadata"]["deletionTimestamp"] = AGO
    return obj


def state(kind: str, **fields: Any) -> dict[str, Any]:
    """A container state ``{kind: fields}``."""
    return {kind: fields}


MAIN_WAITING_INIT = {
    "name": "main",
    "ready": False,
    "restartCount": 0,
    "state": state("waiting", reason="PodInitializing"),
}
INIT_DONE = {
    "name": "init",
    "ready": True,
    "restartCount": 0,
    "state": state("terminated", exitCode=0, reason="Completed"),
}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod(), ("Pending", 0, 1, 0)),
        (
            pod(
                init=[{"name": "init", "restartCount": 0, "state": state("running")}],
                containers=[MAIN_WAITING_INIT],
            ),
            ("Init:0/1", 0, 1, 0),
        ),
        (pod(init=[INIT_DONE], containers=[MAIN_WAITING_INIT]), ("PodInitializing", 0, 1, 0)),
        (
            pod(
                init=[
                    {"name": "init", "restartCount": 4, "state": state("waiting", reason="CrashLoopBackOff")}
                ],
                containers=[MAIN_WAITING_INIT],
            ),
            ("Init:CrashLoopBackOff", 0, 1, 4),
        ),
        (
            pod(
                "Running",
                containers=[
                    {
                        "name": "main",
                        "restartCount": 3,
                        "state": state("waiting", reason="CrashLoopBackOff"),
                        "lastState": state("terminated", exitCode=1, finishedAt=AGO),
                    }
                ],
            ),
            ("CrashLoopBackOff", 0, 1, 3),
        ),
        (
            pod("Running", containers=[{"name": "main", "ready": False, "state": state("running")}]),
            ("Running", 0, 1, 0),
        ),
        (
            pod("Running", containers=[{"name": "main", "ready": True, "state": state("running")}]),
            ("Running", 1, 1, 0),
        ),
        (
            pod(
                "Running",
                containers=[{"name": "main", "ready": True, "state": state("running")}],
                deleting=True,
            ),
            ("Terminating", 1, 1, 0),
        ),
        (
            pod(
                "Succeeded",
                containers=[{"name": "main", "state": state("terminated", exitCode=0, reason="Completed")}],
            ),
            ("Completed", 0, 1, 0),
        ),
        (
            pod(
                "Running",
                init=[{"name": "istio-proxy", "ready": True, "started": True, "state": state("running")}],
                init_specs=[{"name": "istio-proxy", "restartPolicy": "Always"}],
                containers=[{"name": "main", "ready": True, "state": state("running")}],
                conditions=[{"type": "Initialized", "status": "True"}],
            ),
            ("Running", 2, 2, 0),
        ),
    ],
    ids=[
        "pending",
        "init-running",
        "pod-initializing",
        "init-crashloop",
        "crashloop",
        "running-not-ready",
        "running-ready",
        "terminating",
        "completed",
        "native-sidecar",
    ],
)
def test_pod_status_matches_kubectl(obj: dict[str, Any], expected: tuple[str, int, int, int]) -> None:
    columns = kubectl_columns(obj)
    assert (columns.status, columns.ready, columns.total, columns.restarts) == expected


def test_pod_row_shows_restarts_with_age_of_last_restart() -> None:
    crashing = pod(
        "Running",
        containers=[
            {
                "name": "main",
                "restartCount": 2,
                "state": state("waiting", reason="CrashLoopBackOff"),
                "lastState": state("terminated", exitCode=1, finishedAt=minutes_ago(12)),
            }
        ],
    )
    crashing["metadata"]["creationTimestamp"] = minutes_ago(40)
    pods = next(rt for rt in builtin_resource_types() if rt.plural == "pods")
    columns, row = printer_for(pods)
    cells = dict(zip([c["name"] for c in columns], row(crashing), strict=True))
    assert cells["Ready"] == "0/1" and cells["Status"] == "CrashLoopBackOff"
    assert cells["Restarts"] == "2 (12m ago)" and cells["Age"] == "40m"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (9 * 86400, "9d"),
    ],
)
def test_human_duration_is_kubectls(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_crd_printer_columns_evaluate_jsonpath() -> None:
    crd = {
        "metadata": {"name": "llminferenceservices.serving.kserve.io"},
        "spec": {
            "group": "serving.kserve.io",
            "names": {"plural": "llminferenceservices", "kind": "LLMInferenceService"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
                        },
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }
    rt = resource_types_from_crd(crd)[0]
    columns, row = custom_printer(rt)
    assert [c["name"] for c in columns] == ["Name", "Ready", "Replicas", "Age"]
    obj = {
        "metadata": {"name": "qwen", "creationTimestamp": minutes_ago(15)},
        "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
    }
    assert row(obj) == ["qwen", "True", 3, "15m"]
    assert row({"metadata": {"name": "new"}, "spec": {}}) == ["new", None, None, None]
    table = to_table(rt, [obj], {"resourceVersion": "7"}, "PartialObjectMetadata")
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def test_table_requested_only_by_the_table_accept_header() -> None:
    assert wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not wants_table("application/json")
    assert not wants_table("application/vnd.kubernetes.protobuf")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/pods", ("", "v1", "pods", None, None, None, "")),
        ("/api/v1/namespaces/ns1", ("", "v1", "namespaces", None, "ns1", None, "")),
        ("/api/v1/namespaces/ns1/status", ("", "v1", "namespaces", None, "ns1", "status", "")),
        ("/api/v1/namespaces/ns1/pods/p/log", ("", "v1", "pods", "ns1", "p", "log", "")),
        (
            "/apis/apps/v1/namespaces/ns1/deployments/d/scale",
            ("apps", "v1", "deployments", "ns1", "d", "scale", ""),
        ),
        (
            "/api/v1/namespaces/ns1/services/https:svc:8000/proxy/v1/models",
            ("", "v1", "services", "ns1", "https:svc:8000", "proxy", "/v1/models"),
        ),
    ],
)
def test_resource_paths_parse_like_request_info(path: str, expected: tuple) -> None:
    info = parse_resource_path(path)
    assert info is not None
    assert (
        info.group,
        info.version,
        info.resource,
        info.namespace,
        info.name,
        info.subresource,
        info.rest,
    ) == expected


def test_legacy_watch_path_and_non_resource_paths() -> None:
    info = parse_resource_path("/api/v1/watch/namespaces/ns1/pods")
    assert info is not None and info.legacy_watch and info.namespace == "ns1" and info.resource == "pods"
    assert parse_resource_path("/api") is None
    assert parse_resource_path("/apis/apps") is None
