"""Endpoint choice of the API server's service proxy: ready replicas only, NetworkPolicies enforced
with the API server (konnectivity agent in kube-system) as the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhaii_nb.twin.context import ReplicaInfo, TwinContext
from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube.proxy import parse_service_ref, pick_endpoint
from rhaii_nb.twin.store import Store

LABELS = {"app.kubernetes.io/name": "demo", "kserve.io/component": "workload"}


def _context(tmp_path: Path, enforced: bool) -> TwinContext:
    store = Store()
    ctx = TwinContext(store=store, home=tmp_path, cluster={"networkPolicyEnforced": enforced})
    store.create(store.resource("", "v1", "namespaces"), {"metadata": {"name": "demo"}})
    pods = store.resource("", "v1", "pods")
    for name in ("demo-0", "demo-1"):
        spec = {
            "containers": [
                {"name": "main", "image": "vllm", "ports": [{"name": "https", "containerPort": 8000}]}
            ]
        }
        store.create(pods, {"metadata": {"name": name, "labels": LABELS}, "spec": spec}, namespace="demo")
    ports = [{"name": "https", "port": 8000, "targetPort": "https"}]
    store.create(
        store.resource("", "v1", "services"),
        {"metadata": {"name": "demo-svc"}, "spec": {"selector": LABELS, "ports": ports}},
        namespace="demo",
    )
    return ctx


def _service(ctx: TwinContext) -> dict:
    return ctx.store.get(ctx.store.resource("", "v1", "services"), "demo-svc", namespace="demo")


def test_only_ready_replicas_are_endpoints(tmp_path: Path) -> None:
    ctx = _context(tmp_path, enforced=True)
    with pytest.raises(ApiError, match='no endpoints available for service "demo-svc"'):
        pick_endpoint(ctx, "demo", _service(ctx), "8000")
    ctx.replicas.put(ReplicaInfo("demo", "demo-0", "u0", LABELS, "127.0.0.1", 1, ready=False))
    ctx.replicas.put(ReplicaInfo("demo", "demo-1", "u1", LABELS, "127.0.0.1", 2, ready=True))
    chosen = {pick_endpoint(ctx, "demo", _service(ctx), "https")[0].pod_name for _ in range(4)}
    assert chosen == {"demo-1"}
    assert pick_endpoint(ctx, "demo", _service(ctx), "")[2] == 8000  # named targetPort resolved


def test_network_policy_blocks_the_api_server_only_when_enforced(tmp_path: Path) -> None:
    deny_all = {"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    for enforced in (True, False):
        ctx = _context(tmp_path, enforced)
        ctx.store.create(
            ctx.store.resource("networking.k8s.io", "v1", "networkpolicies"), deny_all, namespace="demo"
        )
        ctx.replicas.put(ReplicaInfo("demo", "demo-0", "u0", LABELS, "127.0.0.1", 1, ready=True))
        if enforced:
            with pytest.raises(
                ApiError, match=r"error trying to reach service: dial tcp .*:8000: i/o timeout"
            ):
                pick_endpoint(ctx, "demo", _service(ctx), "8000")
        else:
            assert pick_endpoint(ctx, "demo", _service(ctx), "8000")[0].pod_name == "demo-0"


def test_allow_from_all_namespaces_admits_the_api_server(tmp_path: Path) -> None:
    ctx = _context(tmp_path, enforced=True)
    policies = ctx.store.resource("networking.k8s.io", "v1", "networkpolicies")
    deny_all = {"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    ctx.store.create(policies, deny_all, namespace="demo")
    allow = {
        "metadata": {"name": "allow-cluster"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {}}]}]},
    }
    ctx.store.create(policies, allow, namespace="demo")
    ctx.replicas.put(ReplicaInfo("demo", "demo-0", "u0", LABELS, "127.0.0.1", 1, ready=True))
    assert pick_endpoint(ctx, "demo", _service(ctx), "8000")[0].pod_name == "demo-0"


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("svc", ("http", "svc", "")),
        ("svc:80", ("http", "svc", "80")),
        ("https:svc:8443", ("https", "svc", "8443")),
    ],
)
def test_service_reference_forms(ref: str, parsed: tuple[str, str, str]) -> None:
    assert parse_service_ref(ref) == parsed
