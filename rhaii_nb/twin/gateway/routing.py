"""What the inference gateway does with a request path, read from what is applied in the store.

Two questions, answered from the objects like Istio would from its config:

1. **Which route and backend?** (``match_route``) — HTTPRoutes whose ``parentRefs`` name the Gateway
   ``opendatahub/inference-gateway``; ``PathPrefix``/``Exact`` matches with Gateway API precedence
   (exact first, then the longest prefix, then the oldest route); the ``URLRewrite``
   ``ReplacePrefixMatch`` filter; the rule's first ``backendRef`` (an InferencePool or a Service).
   With KServe's route preset, ``/<ns>/<svc>/v1/completions`` (rule 0) and ``…/v1/chat/completions``
   (rule 1) go to the InferencePool, anything else under ``/<ns>/<svc>`` (rule 2) to the workload
   Service.

2. **Does the EPP pick the endpoint?** (``epp_routing``) — only for InferencePool backends, and only
   when everything the guide applies is in place. EnvoyFilters are recognised by their *patches*, not
   their names (a renamed copy works; a filter named like the guide's but patching something else
   does not). A filter counts when it lives in the gateway's namespace (``opendatahub``) or Istio's
   root namespace (``istio-system``) and its ``workloadSelector`` is absent or matches the gateway
   pod's labels; a patch counts when its ``context`` is ``GATEWAY`` or ``ANY`` (or unset). Required:

   - **ext_proc** — ``applyTo: HTTP_FILTER`` on sub-filter ``envoy.filters.http.ext_proc`` whose
     ``grpc_service.envoy_grpc.cluster_name`` is ``outbound|9002||<epp-service>.<ns>.svc.cluster.local``
     (guide: ``envoyfilter-ext-proc-tpu.yaml``, ``inference-pool-ext-proc-tpu-fix``);
   - **mTLS fix** — ``applyTo: CLUSTER`` on that cluster name with an ``UpstreamTlsContext``
     ``transport_socket`` (guide: ``envoyfilter-epp-mtls-fix-tpu.yaml``, ``epp-scheduler-mtls-fix-tpu``);
   - **body forwarding** — ``applyTo: HTTP_ROUTE`` on the route ``<route-ns>.<route-name>.<rule index>``
     of the matched rule with an ``ExtProcPerRoute`` whose ``request_body_mode`` sends the body
     (guide: ``envoyfilter-route-extproc-body.yaml``, ``inference-pool-route-body-forwarding-caching``);
   - the **EPP pod** (selected by the EPP Service, ``<svc>-epp-service``) Running and Ready, **with its
     Istio sidecar** (container ``istio-proxy``, the guide's step 6): the mTLS fix makes the gateway
     speak Istio mTLS to the EPP, which only the sidecar can terminate;
   - NetworkPolicies allowing the gateway pod to reach the EPP pod on 9002.

   When something is missing the ext_proc call fails, and the InferencePool's ``failureMode``
   decides (KServe's preset: ``FailOpen``): the request is served without the EPP, round-robin over
   the ready endpoints — the guide's "Cache Routing Not Working" symptom (all requests similar
   latency, no affinity). With ``FailClose`` the gateway answers 500 instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rhaii_nb import names
from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.gateway import netpol

if TYPE_CHECKING:  # pragma: no cover
    from rhaii_nb.twin.context import ReplicaInfo, TwinContext
    from rhaii_nb.twin.store import Store

ISTIO_ROOT_NAMESPACE = "istio-system"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
POOL_GROUPS = {"inference.networking.x-k8s.io": "v1alpha2", "inference.networking.k8s.io": "v1"}
BODY_MODES_THAT_SEND = {"BUFFERED", "STREAMED", "BUFFERED_PARTIAL", "FULL_DUPLEX_STREAMED"}
EPP_GRPC_PORT = 9002
SIDECAR_CONTAINER = "istio-proxy"
GUIDE_FILTERS = {
    "ext_proc": "inference-pool-ext-proc-tpu-fix (envoyfilter-ext-proc-tpu.yaml)",
    "mtls": "epp-scheduler-mtls-fix-tpu (envoyfilter-epp-mtls-fix-tpu.yaml)",
    "body": "inference-pool-route-body-forwarding-caching (envoyfilter-route-extproc-body.yaml)",
}


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` through nested mappings; None as soon as a level is missing."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def list_objects(
    store: Store, group: str, version: str, plural: str, namespace: str | None = None
) -> list[dict]:
    """Objects of a type, or none when the type (its CRD) is not installed."""
    try:
        rt = store.resource(group, version, plural)
        items, _ = store.list(rt, namespace=namespace)
    except (ApiError, KeyError, LookupError):
        return []
    return items


def get_object(store: Store, group: str, version: str, plural: str, name: str, namespace: str) -> dict | None:
    """One object, or None when it (or its type) does not exist."""
    try:
        return store.get(store.resource(group, version, plural), name, namespace=namespace)
    except (ApiError, KeyError, LookupError):
        return None


# --- 1. route matching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteMatch:
    """The HTTPRoute rule a request matched and where it goes."""

    route_namespace: str
    route_name: str
    rule_index: int
    upstream_path: str  # the path after URL rewrite (no query)
    backend_kind: str  # "InferencePool" | "Service"
    backend_group: str
    backend_name: str
    backend_namespace: str
    port: int

    @property
    def istio_route_name(self) -> str:
        """The Envoy route name Istio gives the rule: ``<namespace>.<route>.<index>``."""
        return f"{self.route_namespace}.{self.route_name}.{self.rule_index}"


def _bound_to_gateway(route: Mapping[str, Any]) -> bool:
    route_ns = route["metadata"].get("namespace")
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        if (ref.get("group") or GATEWAY_API_GROUP) != GATEWAY_API_GROUP or (
            ref.get("kind") or "Gateway"
        ) != "Gateway":
            continue
        if (
            ref.get("name") == names.GATEWAY_NAME
            and (ref.get("namespace") or route_ns) == names.GATEWAY_NAMESPACE
        ):
            return True
    return False


def _path_matches(kind: str, value: str, path: str) -> int | None:
    """Match strength (length of the matched prefix), or None."""
    if kind == "Exact":
        return len(value) if path == value else None
    if kind == "PathPrefix":
        prefix = value.rstrip("/") or "/"
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
            return len(prefix)
        return None
    return None  # RegularExpression is implementation-specific; the runbook does not use it


def _rewrite(path: str, prefix: str, rule: Mapping[str, Any]) -> str:
    for filt in rule.get("filters") or []:
        if filt.get("type") != "URLRewrite":
            continue
        rewrite = (filt.get("urlRewrite") or {}).get("path") or {}
        if rewrite.get("type") == "ReplacePrefixMatch":
            replacement = rewrite.get("replacePrefixMatch") or "/"
            rest = path[len(prefix.rstrip("/")) :] if prefix != "/" else path
            if not rest:
                return replacement
            return (replacement.rstrip("/") + rest) or "/"
        if rewrite.get("type") == "ReplaceFullPath":
            return rewrite.get("replaceFullPath") or "/"
    return path


def match_route(store: Store, path: str) -> RouteMatch | None:
    """The rule of an HTTPRoute bound to the inference gateway that serves ``path``, if any."""
    best: tuple[tuple[int, int, str], RouteMatch] | None = None
    for route in list_objects(store, GATEWAY_API_GROUP, "v1", "httproutes"):
        if not _bound_to_gateway(route):
            continue
        meta = route["metadata"]
        for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
            matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
            for m in matches:
                pm = m.get("path") or {"type": "PathPrefix", "value": "/"}
                kind, value = pm.get("type", "PathPrefix"), pm.get("value", "/")
                strength = _path_matches(kind, value, path)
                if strength is None:
                    continue
                backends = rule.get("backendRefs") or []
                if not backends:
                    continue
                backend = backends[0]
                rank = (1 if kind == "Exact" else 0, strength, "")
                candidate = RouteMatch(
                    route_namespace=meta["namespace"],
                    route_name=meta["name"],
                    rule_index=index,
                    upstream_path=_rewrite(path, value, rule),
                    backend_kind=backend.get("kind") or "Service",
                    backend_group=backend.get("group") or "",
                    backend_name=backend["name"],
                    backend_namespace=backend.get("namespace") or meta["namespace"],
                    port=int(backend.get("port") or 8000),
                )
                # Ties keep the oldest route (creationTimestamp, then name), as Gateway API orders them.
                age_key = f"{meta.get('creationTimestamp', '')}/{meta['namespace']}/{meta['name']}"
                if (
                    best is None
                    or rank[:2] > best[0][:2]
                    or (rank[:2] == best[0][:2] and age_key < best[0][2])
                ):
                    best = ((rank[0], rank[1], age_key), candidate)
    return best[1] if best else None


# --- backends --------------------------------------------------------------------------------------


@dataclass
class Backend:
    """The endpoints behind a route's backend, and the EPP if it is an InferencePool."""

    kind: str
    namespace: str
    name: str
    selector: dict[str, str]
    pool: dict | None = None
    epp_service: str | None = None
    failure_mode: str = "FailOpen"
    error: str | None = None  # why the backend cannot be resolved (Envoy answers 500)


def _selector_of_pool(pool: Mapping[str, Any]) -> dict[str, str]:
    selector = (pool.get("spec") or {}).get("selector") or {}
    if "matchLabels" in selector:  # inference.networking.k8s.io/v1
        return dict(selector.get("matchLabels") or {})
    return {k: v for k, v in selector.items() if isinstance(v, str)}  # v1alpha2: a plain label map


def resolve_backend(store: Store, match: RouteMatch) -> Backend:
    """Read the backend object (InferencePool or Service) and its endpoint selector."""
    ns, name = match.backend_namespace, match.backend_name
    if match.backend_kind == "InferencePool":
        version = POOL_GROUPS.get(match.backend_group or "inference.networking.x-k8s.io")
        pool = (
            get_object(store, match.backend_group, version, "inferencepools", name, ns) if version else None
        )
        if pool is None:
            return Backend("InferencePool", ns, name, {}, error=f"InferencePool {ns}/{name} not found")
        spec = pool.get("spec") or {}
        ext = spec.get("extensionRef") or spec.get("endpointPickerRef") or {}
        selector = _selector_of_pool(pool)
        if not selector and name.endswith("-inference-pool"):
            # KServe's preset leaves the selector empty and the controller fills the workload labels.
            svc = name[: -len("-inference-pool")]
            selector = dict(part.split("=", 1) for part in names.workload_selector(svc).split(","))
        return Backend(
            "InferencePool",
            ns,
            name,
            selector,
            pool=pool,
            epp_service=ext.get("name"),
            failure_mode=ext.get("failureMode") or "FailClose",
        )
    if match.backend_kind == "Service" and match.backend_group in ("", "core"):
        service = get_object(store, "", "v1", "services", name, ns)
        if service is None:
            return Backend("Service", ns, name, {}, error=f"Service {ns}/{name} not found")
        return Backend("Service", ns, name, dict((service.get("spec") or {}).get("selector") or {}))
    return Backend(match.backend_kind, ns, name, {}, error=f"unsupported backend kind {match.backend_kind}")


def ready_endpoints(ctx: TwinContext, backend: Backend) -> list[ReplicaInfo]:
    """Ready replicas whose pod labels match the backend's selector (none for an empty selector)."""
    if not backend.selector:
        return []
    return sorted(
        (
            r
            for r in ctx.replicas.all()
            if r.ready
            and r.namespace == backend.namespace
            and all(r.labels.get(k) == v for k, v in backend.selector.items())
        ),
        key=lambda r: r.pod_name,
    )


# --- 2. is the EPP in the path? ------------------------------------------------------------------


@dataclass
class EppRouting:
    """Whether the EPP picks the endpoint for a matched InferencePool rule, and why not."""

    active: bool
    missing: list[str] = field(default_factory=list)
    epp_pod: dict | None = None
    cluster_name: str = ""


def epp_cluster_name(epp_service: str, namespace: str, port: int = EPP_GRPC_PORT) -> str:
    """Istio's Envoy cluster name for the EPP's gRPC port."""
    return f"outbound|{port}||{epp_service}.{namespace}.svc.cluster.local"


def _gateway_filters(store: Store) -> list[dict]:
    labels = netpol.gateway_peer(store).labels or {}
    selected = []
    for ns in (names.GATEWAY_NAMESPACE, ISTIO_ROOT_NAMESPACE):
        for ef in list_objects(store, "networking.istio.io", "v1alpha3", "envoyfilters", ns):
            wanted = ((ef.get("spec") or {}).get("workloadSelector") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                selected.append(ef)
    return selected


def _patches(filters: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for ef in filters:
        for patch in (ef.get("spec") or {}).get("configPatches") or []:
            if (patch.get("match") or {}).get("context", "ANY") in ("GATEWAY", "ANY"):
                out.append((ef["metadata"]["name"], patch))
    return out


def _is_ext_proc_patch(patch: Mapping[str, Any], cluster: str) -> bool:
    if patch.get("applyTo") != "HTTP_FILTER":
        return False
    sub = dig(patch, "match", "listener", "filterChain", "filter", "subFilter", "name")
    if sub != "envoy.filters.http.ext_proc":
        return False
    target = dig(patch, "patch", "value", "typed_config", "grpc_service", "envoy_grpc", "cluster_name")
    return target == cluster


def _is_mtls_patch(patch: Mapping[str, Any], cluster: str) -> bool:
    if patch.get("applyTo") != "CLUSTER" or dig(patch, "match", "cluster", "name") != cluster:
        return False
    socket_type = dig(patch, "patch", "value", "transport_socket", "typed_config", "@type")
    return str(socket_type or "").endswith("UpstreamTlsContext")


def _is_body_patch(patch: Mapping[str, Any], route_name: str) -> bool:
    if patch.get("applyTo") != "HTTP_ROUTE":
        return False
    if dig(patch, "match", "routeConfiguration", "vhost", "route", "name") != route_name:
        return False
    per_filter = dig(patch, "patch", "value", "typed_per_filter_config", "envoy.filters.http.ext_proc")
    return dig(per_filter, "overrides", "processing_mode", "request_body_mode") in BODY_MODES_THAT_SEND


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Running with condition Ready=True."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """Whether Istio injected its proxy (a container, or a native sidecar init container)."""
    spec = pod.get("spec") or {}
    return any(
        c.get("name") == SIDECAR_CONTAINER
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
    )


def epp_pods(store: Store, backend: Backend) -> list[dict]:
    """Pods behind the pool's EPP Service (by its selector)."""
    if not backend.epp_service:
        return []
    service = get_object(store, "", "v1", "services", backend.epp_service, backend.namespace)
    selector = dict((service or {}).get("spec", {}).get("selector") or {})
    if not selector and backend.epp_service.endswith("-epp-service"):
        svc = backend.epp_service[: -len("-epp-service")]
        selector = dict(part.split("=", 1) for part in names.scheduler_selector(svc).split(","))
    pods = list_objects(store, "", "v1", "pods", backend.namespace)
    return [
        p for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
    ]


def epp_routing(ctx: TwinContext, match: RouteMatch, backend: Backend) -> EppRouting:
    """Whether the EPP is in the request path for this rule (see the module docstring for the rule)."""
    if backend.kind != "InferencePool" or not backend.epp_service:
        return EppRouting(False, ["the backend is not an InferencePool with an endpoint picker"])
    store = ctx.store
    cluster = epp_cluster_name(backend.epp_service, backend.namespace)
    patches = _patches(_gateway_filters(store))
    missing: list[str] = []
    if not any(_is_ext_proc_patch(p, cluster) for _, p in patches):
        missing.append(f"EnvoyFilter patching ext_proc to {cluster} (guide: {GUIDE_FILTERS['ext_proc']})")
    if not any(_is_mtls_patch(p, cluster) for _, p in patches):
        missing.append(f"EnvoyFilter giving {cluster} Istio mTLS (guide: {GUIDE_FILTERS['mtls']})")
    if not any(_is_body_patch(p, match.istio_route_name) for _, p in patches):
        missing.append(
            f"EnvoyFilter forwarding the request body on route {match.istio_route_name} "
            f"(guide: {GUIDE_FILTERS['body']})"
        )
    # During the step-6 rollout the old (sidecar-less) and new EPP pods are both around: prefer the new.
    ready = sorted((p for p in epp_pods(store, backend) if pod_ready(p)), key=lambda p: not has_sidecar(p))
    epp_pod = ready[0] if ready else None
    if epp_pod is None:
        missing.append(
            f"a Running and Ready EPP pod behind Service {backend.namespace}/{backend.epp_service}"
        )
    else:
        if not has_sidecar(epp_pod):
            missing.append(
                f"the Istio sidecar in EPP pod {epp_pod['metadata']['name']} "
                "(label sidecar.istio.io/inject=true on the EPP Deployment's pod template, guide step 6)"
            )
        verdict = netpol.flow_allowed(ctx, netpol.gateway_peer(store), epp_pod, EPP_GRPC_PORT)
        if not verdict.allowed:
            missing.append(
                f"a NetworkPolicy letting the gateway reach the EPP on {EPP_GRPC_PORT}: {verdict.reason}"
            )
    return EppRouting(not missing, missing, epp_pod, cluster)
