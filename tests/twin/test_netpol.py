"""NetworkPolicy semantics (twin/gateway/netpol.py) against the real store, with the guide's four policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.gateway import netpol
from rhaii_nb.twin.gateway.netpol import KUBE_APISERVER, PeerRef, allowed, evaluate
from rhaii_nb.twin.store import Store

DATA = Path(__file__).parent / "data" / "gateway"
NS = "rhaii-inference"
WORKLOAD_LABELS = {
    "app.kubernetes.io/name": "qwen-3b-tpu-svc",
    "app.kubernetes.io/part-of": "llminferenceservice",
    "kserve.io/component": "workload",
}
EPP_LABELS = {
    "app.kubernetes.io/component": "llminferenceservice-router-scheduler",
    "app.kubernetes.io/name": "qwen-3b-tpu-svc",
    "app.kubernetes.io/part-of": "llminferenceservice",
}
GATEWAY = netpol.gateway_peer()
POLICIES = {
    doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((DATA / "networkpolicies.yaml").read_text())
}

NETPOL = ("networking.k8s.io", "v1", "networkpolicies")


def pod(
    name: str, labels: dict[str, str], namespace: str = NS, ports: list[dict] | None = None
) -> dict[str, Any]:
    """A pod object as the evaluator reads it."""
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "ports": ports or []}]},
    }


VLLM = pod("qwen-3b-tpu-svc-kserve-abc12", WORKLOAD_LABELS, ports=[{"name": "https", "containerPort": 8000}])
EPP = pod(
    "qwen-3b-tpu-svc-kserve-router-scheduler-xyz", EPP_LABELS, ports=[{"name": "grpc", "containerPort": 9002}]
)


@pytest.fixture
def store() -> Store:
    """A store with the namespaces the runbook uses."""
    s = Store()
    rt = s.resource("", "v1", "namespaces")
    for name in (NS, "opendatahub", "istio-system", "kube-system", "monitoring", "other"):
        try:
            s.create(rt, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except ApiError as exc:
            if exc.code != 409:
                raise
    return s


def apply(store: Store, *policies: dict[str, Any]) -> None:
    """Create policies in the store."""
    rt = store.resource(*NETPOL)
    for policy in policies:
        store.create(rt, policy, namespace=policy["metadata"].get("namespace", NS))


def policy(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    """A NetworkPolicy object."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_no_policy_means_everything_is_allowed(store: Store) -> None:
    assert allowed(store, GATEWAY, VLLM, 8000)
    assert allowed(store, KUBE_APISERVER, VLLM, 8000)
    assert allowed(store, netpol.EXTERNAL_CLIENT, VLLM, 1234)


def test_the_guides_four_policies_allow_exactly_the_runbooks_flows(store: Store) -> None:
    apply(store, *POLICIES.values())
    epp_src = netpol.epp_peer(EPP)
    # The runbook's flows.
    assert allowed(store, GATEWAY, VLLM, 8000)  # inference through the gateway
    assert allowed(store, GATEWAY, EPP, 9002)  # ext_proc to the EPP
    assert allowed(store, epp_src, VLLM, 8000)  # EPP scrapes vLLM metrics
    assert allowed(store, KUBE_APISERVER, VLLM, 8000)  # API service proxy (konnectivity pod)
    assert allowed(store, PeerRef("default", {"run": "test-curl"}), VLLM, 8000)
    # The guide's step-9 `kubectl run test-curl -n rhaii-inference` is refused once step 8 is applied:
    # allow-istio-control-plane selects every pod there for Egress and only admits istio-system.
    verdict = evaluate(store, PeerRef(NS, {"run": "test-curl"}), VLLM, 8000)
    assert not verdict and "egress" in verdict.reason and "allow-istio-control-plane" in verdict.reason
    assert allowed(store, PeerRef("istio-system", {"app": "istiod"}), VLLM, 15012)
    # Everything else is refused.
    assert not allowed(store, GATEWAY, VLLM, 8080)
    assert not allowed(store, GATEWAY, VLLM, 8000, "UDP")
    assert not allowed(store, netpol.EXTERNAL_CLIENT, VLLM, 8000)  # no ipBlock admits outsiders
    assert not allowed(store, PeerRef("other", {"app": "x"}), EPP, 9002)  # only the gateway reaches ext_proc
    assert not allowed(store, epp_src, VLLM, 9000)  # EPP egress is limited to 8000
    assert allowed(store, PeerRef("monitoring", {"app": "prometheus"}), EPP, 9090)
    assert not allowed(store, PeerRef("monitoring", {"app": "prometheus"}), EPP, 9002)


def test_minus_allow_gateway_to_vllm_the_gateway_is_refused(store: Store) -> None:
    apply(store, *(p for name, p in POLICIES.items() if name != "allow-gateway-to-vllm"))
    verdict = evaluate(store, GATEWAY, VLLM, 8000)
    assert not verdict
    assert "allow-istio-control-plane" in verdict.reason  # the policy that isolates the vLLM pods
    assert not allowed(store, KUBE_APISERVER, VLLM, 8000)
    assert allowed(store, GATEWAY, EPP, 9002)  # the EPP's own policy still admits the gateway


def test_enforcement_off_allows_all(store: Store) -> None:
    apply(store, *(p for name, p in POLICIES.items() if name != "allow-gateway-to-vllm"))
    assert allowed(store, GATEWAY, VLLM, 8000, enforced=False)


def test_policy_types_default_and_egress_only_policies(store: Store) -> None:
    # An egress-only policy does not isolate the selected pods for ingress.
    apply(store, policy("egress-only", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert allowed(store, GATEWAY, VLLM, 8000)
    assert not allowed(store, PeerRef(NS, {"any": "pod"}), pod("x", {}, "other"), 80)  # egress denied
    # Without policyTypes a policy with only ingress rules is Ingress-only.
    apply(store, policy("deny-in", {"podSelector": {"matchLabels": {"kserve.io/component": "workload"}}}))
    assert not allowed(store, GATEWAY, VLLM, 8000)


def test_peer_forms_namespace_pod_and_both(store: Store) -> None:
    apply(
        store,
        policy(
            "peers",
            {
                "podSelector": {"matchLabels": {"kserve.io/component": "workload"}},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]},  # same namespace only
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                                }
                            }
                        ]
                    },
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/metadata.name",
                                            "operator": "In",
                                            "values": ["other"],
                                        }
                                    ]
                                },
                                "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                            }
                        ]
                    },
                ],
            },
        ),
    )
    assert allowed(store, PeerRef(NS, {"role": "client"}), VLLM, 8000)
    assert not allowed(store, PeerRef("other", {"role": "client"}), VLLM, 8000)  # podSelector alone = own ns
    assert allowed(store, PeerRef("monitoring", {}), VLLM, 8000)
    assert allowed(store, PeerRef("other", {"tier": "web"}), VLLM, 8000)  # both must match
    assert not allowed(store, PeerRef("other", {"role": "x"}), VLLM, 8000)
    assert not allowed(store, PeerRef("kube-system", {"tier": "web"}), VLLM, 8000)


def test_namespace_labels_come_from_the_namespace_object(store: Store) -> None:
    rt = store.resource("", "v1", "namespaces")
    ns = store.get(rt, "monitoring")
    ns["metadata"].setdefault("labels", {})["team"] = "obs"
    store.update(rt, ns)
    apply(
        store,
        policy(
            "by-team",
            {
                "podSelector": {},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}],
            },
        ),
    )
    assert allowed(store, PeerRef("monitoring", {}), VLLM, 8000)
    assert not allowed(store, PeerRef("kube-system", {}), VLLM, 8000)


def test_ports_named_ranges_and_ip_blocks(store: Store) -> None:
    apply(
        store,
        policy(
            "ports",
            {
                "podSelector": {},
                "ingress": [
                    {"ports": [{"port": "https"}]},  # named: resolves to the pod's containerPort 8000
                    {"ports": [{"port": 9000, "endPort": 9010}]},
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}}]},
                ],
            },
        ),
    )
    anyone = PeerRef("other", {"x": "y"})
    assert allowed(store, anyone, VLLM, 8000)
    assert not allowed(store, anyone, EPP, 8000)  # EPP has no port named https
    assert allowed(store, anyone, EPP, 9005)
    assert not allowed(store, anyone, EPP, 9011)
    assert allowed(store, PeerRef(None, None, "10.1.2.3"), EPP, 1)
    assert not allowed(store, PeerRef(None, None, "10.9.2.3"), EPP, 1)
    assert not allowed(store, PeerRef(None, None, "192.168.0.1"), EPP, 1)


def test_bad_input_is_named() -> None:
    with pytest.raises(TypeError, match="PeerRef"):
        evaluate(Store(), ("ns", {}), VLLM, 8000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator"):
        netpol.selector_matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {})
