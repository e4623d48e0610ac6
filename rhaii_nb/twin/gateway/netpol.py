"""Kubernetes NetworkPolicy semantics for the flows the twin carries.

A connection from ``src`` to ``dst_pod:port`` is allowed iff

- **egress** (only when the source is a pod): no policy in the source's namespace selects the
  source pod with ``Egress`` in its policy types, or at least one such policy has an egress rule
  whose ``to`` peers match the destination pod and whose ``ports`` match the port; and
- **ingress**: no policy in the destination's namespace selects the destination pod with
  ``Ingress`` in its policy types, or at least one such policy has an ingress rule whose ``from``
  peers match the source and whose ``ports`` match.

Details as in the Kubernetes API: ``policyTypes`` defaults to ``[Ingress]`` plus ``Egress`` when
the policy has egress rules; an absent or empty ``from``/``to`` list matches every peer, an absent
or empty ``ports`` list every port; a peer with only ``podSelector`` means pods of the policy's own
namespace; ``namespaceSelector`` + ``podSelector`` in one peer means both must match; ``ipBlock``
matches only by IP (so never a pod source of the twin, whose pods have no IP unless given); named
ports resolve against the destination pod's container ports; ``endPort`` makes a range.

Sources are ``PeerRef(namespace, labels, ip)``: ``labels=None`` is a non-pod source that only
``ipBlock`` peers can match. The flows of the twin:

- ``gateway_peer()``: the Istio ingress gateway pod of ``opendatahub/inference-gateway`` → replicas :8000
  (and → EPP :9002 for ext_proc);
- ``epp_peer(pod)``: the EPP pod → replicas :8000 (metrics scrape);
- ``KUBE_APISERVER``: the Kubernetes API's service proxy → pods. On GKE the control plane reaches
  pods through the ``konnectivity-agent`` pods in ``kube-system``, so that is the source policies
  see (a peer ``namespaceSelector: {}`` + ``podSelector: {}`` admits it).

Enforcement is a property of the cluster (GKE needs Dataplane V2 or network-policy enforcement):
``flow_allowed(ctx, ...)`` reads ``ctx.cluster.get("networkPolicyEnforced", True)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from rhaii_nb import names
from rhaii_nb.twin.errors import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from rhaii_nb.twin.context import TwinContext
    from rhaii_nb.twin.store import Store

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
GATEWAY_POD_LABELS = {
    "gateway.networking.k8s.io/gateway-name": names.GATEWAY_NAME,
    "serving.kserve.io/gateway": "kserve-ingress-gateway",
    "istio.io/gateway-name": names.GATEWAY_NAME,
}


class PeerRef(NamedTuple):
    """The source of a connection: a pod (namespace + labels) or a non-pod (labels None, maybe an IP)."""

    namespace: str | None
    labels: Mapping[str, str] | None
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        """Whether the source is a pod (pod selectors can match it)."""
        return self.labels is not None and self.namespace is not None


KUBE_APISERVER = PeerRef("kube-system", {"k8s-app": "konnectivity-agent"})
EXTERNAL_CLIENT = PeerRef(None, None, "203.0.113.10")  # a client outside the cluster (TEST-NET-3)


def gateway_peer(store: Store | None = None) -> PeerRef:
    """The ingress gateway pod as a source (labels from its pod in the store when there is one)."""
    if store is not None:
        selector = f"gateway.networking.k8s.io/gateway-name={names.GATEWAY_NAME}"
        try:
            pods, _ = store.list(_pods(store), namespace=names.GATEWAY_NAMESPACE, label_selector=selector)
        except ApiError:
            pods = []
        if pods:
            return PeerRef(names.GATEWAY_NAMESPACE, dict(pods[0]["metadata"].get("labels") or {}))
    return PeerRef(names.GATEWAY_NAMESPACE, dict(GATEWAY_POD_LABELS))


def epp_peer(pod: Mapping[str, Any]) -> PeerRef:
    """An EPP (or any) pod object as a source."""
    meta = pod.get("metadata") or {}
    return PeerRef(
        meta.get("namespace"), dict(meta.get("labels") or {}), (pod.get("status") or {}).get("podIP")
    )


@dataclass(frozen=True)
class Verdict:
    """Whether a flow is allowed, and which side decided."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def allowed(
    store: Store,
    src: PeerRef,
    dst_pod: Mapping[str, Any],
    port: int,
    protocol: str = "TCP",
    *,
    enforced: bool = True,
) -> bool:
    """Whether NetworkPolicies let ``src`` open ``protocol/port`` on ``dst_pod``."""
    return evaluate(store, src, dst_pod, port, protocol, enforced=enforced).allowed


def flow_allowed(
    ctx: TwinContext, src: PeerRef, dst_pod: Mapping[str, Any], port: int, protocol: str = "TCP"
) -> Verdict:
    """``evaluate`` with enforcement taken from the cluster (``networkPolicyEnforced``, default on)."""
    enforced = bool((ctx.cluster or {}).get("networkPolicyEnforced", True))
    return evaluate(ctx.store, src, dst_pod, port, protocol, enforced=enforced)


def evaluate(
    store: Store,
    src: PeerRef,
    dst_pod: Mapping[str, Any],
    port: int,
    protocol: str = "TCP",
    *,
    enforced: bool = True,
) -> Verdict:
    """Decide a flow and say why (names the policies that isolate the pod when it is refused)."""
    if not isinstance(src, PeerRef):
        raise TypeError(f"src must be a netpol.PeerRef, got {type(src).__name__}")
    if not enforced:
        return Verdict(True, "network policy enforcement is off in this cluster")
    protocol = protocol.upper()
    dst_meta = dst_pod.get("metadata") or {}
    dst_ns = dst_meta.get("namespace")
    dst_name = dst_meta.get("name", "?")
    if not dst_ns:
        raise ValueError("dst_pod has no metadata.namespace")
    lookup = _Lookup(store)

    if src.is_pod:
        egress = [p for p in lookup.policies(src.namespace) if _selects(p, src.labels, "Egress")]
        if egress and not any(
            _rule_allows(rule, "to", p, lookup, _dst_as_peer(dst_pod), dst_pod, port, protocol)
            for p in egress
            for rule in (p.get("spec") or {}).get("egress") or []
        ):
            return Verdict(False, f"egress from {src.namespace} pod denied by {_names(egress)}")

    ingress = [p for p in lookup.policies(dst_ns) if _selects(p, dst_meta.get("labels") or {}, "Ingress")]
    if ingress and not any(
        _rule_allows(rule, "from", p, lookup, src, dst_pod, port, protocol)
        for p in ingress
        for rule in (p.get("spec") or {}).get("ingress") or []
    ):
        return Verdict(
            False,
            f"ingress to {dst_ns}/{dst_name} port {port}/{protocol} denied; isolated by {_names(ingress)}",
        )
    return Verdict(True, "allowed")


def _names(policies: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(p["metadata"]["name"] for p in policies))


def _dst_as_peer(pod: Mapping[str, Any]) -> PeerRef:
    meta = pod.get("metadata") or {}
    return PeerRef(
        meta.get("namespace"), dict(meta.get("labels") or {}), (pod.get("status") or {}).get("podIP")
    )


class _Lookup:
    """Policies and namespace labels read from the store once per evaluation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._policies: dict[str, list[dict[str, Any]]] = {}
        self._ns_labels: dict[str, dict[str, str]] = {}

    def policies(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            return []
        if namespace not in self._policies:
            rt = self.store.resource("networking.k8s.io", "v1", "networkpolicies")
            try:
                items, _ = self.store.list(rt, namespace=namespace)
            except ApiError:
                items = []
            self._policies[namespace] = items
        return self._policies[namespace]

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        if namespace not in self._ns_labels:
            labels: dict[str, str] = {}
            try:
                ns = self.store.get(self.store.resource("", "v1", "namespaces"), namespace)
                labels = dict((ns.get("metadata") or {}).get("labels") or {})
            except ApiError:
                pass
            labels.setdefault(NAMESPACE_NAME_LABEL, namespace)  # the API server always sets it
            self._ns_labels[namespace] = labels
        return self._ns_labels[namespace]


def _policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _selects(policy: Mapping[str, Any], labels: Mapping[str, str], direction: str) -> bool:
    spec = policy.get("spec") or {}
    return direction in _policy_types(policy) and selector_matches(spec.get("podSelector") or {}, labels)


def _rule_allows(
    rule: Mapping[str, Any],
    peers_key: str,
    policy: Mapping[str, Any],
    lookup: _Lookup,
    peer: PeerRef,
    dst_pod: Mapping[str, Any],
    port: int,
    protocol: str,
) -> bool:
    peers = rule.get(peers_key) or []
    if peers and not any(_peer_matches(p, policy, lookup, peer) for p in peers):
        return False
    ports = rule.get("ports") or []
    return not ports or any(_port_matches(p, dst_pod, port, protocol) for p in ports)


def _peer_matches(
    peer_spec: Mapping[str, Any], policy: Mapping[str, Any], lookup: _Lookup, peer: PeerRef
) -> bool:
    if "ipBlock" in peer_spec and peer_spec["ipBlock"] is not None:
        return _ip_in_block(peer.ip, peer_spec["ipBlock"])
    pod_sel = peer_spec.get("podSelector")
    ns_sel = peer_spec.get("namespaceSelector")
    if not peer.is_pod:
        return False
    if ns_sel is None:
        if peer.namespace != policy["metadata"].get("namespace"):
            return False
    elif not selector_matches(ns_sel, lookup.namespace_labels(peer.namespace)):
        return False
    return pod_sel is None or selector_matches(pod_sel, peer.labels or {})


def _ip_in_block(ip: str | None, block: Mapping[str, Any]) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    cidr = ipaddress.ip_network(block["cidr"], strict=False)
    if addr.version != cidr.version or addr not in cidr:
        return False
    for excluded in block.get("except") or []:
        net = ipaddress.ip_network(excluded, strict=False)
        if addr.version == net.version and addr in net:
            return False
    return True


def _port_matches(spec: Mapping[str, Any], dst_pod: Mapping[str, Any], port: int, protocol: str) -> bool:
    if (spec.get("protocol") or "TCP").upper() != protocol:
        return False
    wanted = spec.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str) and not wanted.isdigit():
        return any(
            cp.get("name") == wanted
            and int(cp.get("containerPort", -1)) == port
            and (cp.get("protocol") or "TCP").upper() == protocol
            for cp in _container_ports(dst_pod)
        )
    low = int(wanted)
    high = int(spec.get("endPort") or low)
    return low <= port <= high


def _container_ports(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    return [p for c in containers for p in c.get("ports") or []]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes ``LabelSelector`` semantics (matchLabels AND matchExpressions; ``{}`` matches all)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown label selector operator {op!r} (use In, NotIn, Exists, DoesNotExist)")
        if not ok:
            return False
    return True


def _pods(store: Store) -> Any:
    return store.resource("", "v1", "pods")
