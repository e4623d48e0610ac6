"""The troubleshooting rules: what was seen (:class:`ClusterView`) → :class:`Finding`\\ s.

They cover the guide's troubleshooting section (only 1/3 or 2/3 replicas, cache routing not working,
NetworkPolicy blocking traffic, high latency despite caching) and the causes the twin can stage
(``rhaii_nb.scenarios``): a finding of such a cause carries the scenario's name and its cause text.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rhaii_nb import names
from rhaii_nb.diagnose.observe import ClusterView
from rhaii_nb.scenarios import SCENARIOS

SIDECAR = "istio-proxy"
# The guide's figures: a cache hit should take < 100 ms and P50 should stay under 200 ms; > 500 ms is "high".
HIGH_P50_S = 0.5
# XLA compilation of the model on a v6e host takes ~3 minutes; much longer means something slowed it.
SLOW_COMPILE_S = 400.0
COMPILE_DONE = re.compile(r"Compilation finished in ([\d.]+) \[secs\]")
COMPILING = re.compile(r"Compiling (?:the model|\S+) with different input shapes")
COMPILED = re.compile(r"Compiled the model with different input shapes")
HF_401 = re.compile(r"401 Client Error|Unauthorized for url|401 Unauthorized")
CONNECT_FAILURE = "reset reason: connection failure"
ENVOYFILTER_FILES = (
    "envoyfilter-epp-mtls-fix-tpu",
    "envoyfilter-ext-proc-tpu",
    "envoyfilter-route-extproc-body",
)
GUIDE_REPLICAS = "Only 1/3 or 2/3 Replicas Starting"
GUIDE_CACHE = "Cache Routing Not Working"
GUIDE_NETPOL = "NetworkPolicy Blocking Traffic"
GUIDE_LATENCY = "High Latency Despite Caching"


@dataclass
class Finding:
    """One problem: what you see, the likely cause, the fix, and what showed it."""

    key: str
    severity: str  # error | warning | info
    symptom: str
    cause: str
    fix: str
    evidence: list[str] = field(default_factory=list)
    fixable: bool = False  # diagnose(fix=True) can repair it safely
    scenario: str | None = None  # the twin scenario that stages this cause
    guide_case: str | None = None  # the guide's troubleshooting heading

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (tables, run records)."""
        return asdict(self)


def _scenario_finding(name: str, key: str, severity: str, evidence: list[str], **extra: Any) -> Finding:
    scenario = SCENARIOS[name]
    return Finding(
        key=key,
        severity=severity,
        symptom=extra.pop("symptom", scenario.symptom),
        cause=scenario.cause,
        fix=extra.pop("fix", scenario.fix),
        evidence=evidence,
        fixable=extra.pop("fixable", scenario.fixable),
        scenario=name,
        **extra,
    )


def _rule_no_cluster(params: Any, view: ClusterView) -> list[Finding]:
    if view.cluster_exists is not False:
        return []
    return [
        Finding(
            "no-cluster",
            "error",
            f"Cluster {params.cluster_name} does not exist.",
            "The cluster was not created yet, or was deleted.",
            "Run 01_cluster (rhaii_nb.cluster.create).",
        )
    ]


def _rule_quota(params: Any, view: ClusterView) -> list[Finding]:
    evidence = []
    short = view.quota_chips is not None and view.quota_chips < params.pool_chips
    if short:
        evidence.append(
            f"TPU v6e quota in {params.region}: {view.quota_chips} chips; the pool needs {params.pool_chips} "
            f"({params.num_nodes} × {params.chips_per_node})"
        )
    pool_message = (view.pool or {}).get("status_message", "")
    if re.search(r"quota", pool_message, re.IGNORECASE):
        evidence.append(f"node pool: {pool_message}")
    evidence += [
        f"event {e['reason']}: {e['message']}" for e in view.events_matching(r"quota|FailedScaleUp")
    ][-2:]
    if not evidence:
        return []
    fits = (view.quota_chips or 0) // max(1, params.chips_per_node)
    return [
        _scenario_finding(
            "quota-short",
            "quota",
            "error",
            evidence,
            symptom=f"The TPU quota holds {fits} node(s) of {params.machine_type}; {params.num_nodes} are "
            "needed, so replicas beyond that stay Pending (preflight's quota check fails).",
            fix=f"Request ≥ {params.pool_chips} chips of TPU v6e quota in {params.region} (IAM & Admin > "
            f"Quotas), or lower num_nodes and replicas to {fits}.",
            guide_case=GUIDE_REPLICAS,
        )
    ]


def _rule_no_service(params: Any, view: ClusterView) -> list[Finding]:
    if (
        view.service is not None
        or not view.cluster_exists
        or "LLMInferenceService and pods" in view.unreadable
    ):
        return []
    return [
        Finding(
            "no-service",
            "error",
            f"LLMInferenceService {params.namespace}/{params.service_name} does not exist.",
            "The inference service was not deployed (or was deleted).",
            "Run 04_inference_service.",
        )
    ]


def _rule_init_failing(params: Any, view: ClusterView) -> list[Finding]:
    """Init:Error / Init:CrashLoopBackOff: a 401 in the storage-initializer's log is a bad HF token."""
    # An init container that keeps failing is caught between attempts too (Init:0/1 with restarts).
    failing = [
        p
        for p in view.pods
        if p["stage"].startswith("Init:") and (re.search("Crash|Error", p["stage"]) or p["restarts"])
    ]
    for pod in failing:
        hits = [
            line for line in view.logs.get(f"{pod['name']}/storage-initializer", []) if HF_401.search(line)
        ]
        if hits:
            evidence = [
                f"{pod['name']}: {pod['stage']}, restarts {pod['restarts']}",
                f"storage-initializer: {hits[-1].strip()[:200]}",
            ]
            return [
                _scenario_finding("bad-hf-token", "hf-token", "error", evidence, guide_case=GUIDE_REPLICAS)
            ]
    if not failing:
        return []
    pod = failing[0]
    return [
        Finding(
            "init-failing",
            "error",
            f"{pod['name']} is {pod['stage']}.",
            "The storage-initializer cannot download the model.",
            f"Read its log: kubectl logs {pod['name']} -n {params.namespace} -c storage-initializer",
            [pod["waiting"], *view.logs.get(f"{pod['name']}/storage-initializer", [])[-2:]],
            guide_case=GUIDE_REPLICAS,
        )
    ]


def _compile_seconds(view: ClusterView) -> dict[str, float]:
    """Per pod, the longest 'Compilation finished in X [secs]' its main log shows."""
    times = {}
    for key, lines in view.logs.items():
        found = [float(m.group(1)) for line in lines if (m := COMPILE_DONE.search(line))]
        if found:
            times[key.split("/")[0]] = max(found)
    return times


def _rule_compile(params: Any, view: ClusterView) -> list[Finding]:
    """Running 0/1 with the log stopped at XLA compilation, or a compile far slower than usual."""
    for pod in view.pods:
        lines = view.logs.get(f"{pod['name']}/main", [])
        if pod["stage"] != "Running" or pod["ready"] or not lines:
            continue
        if any(COMPILING.search(line) for line in lines) and not any(COMPILED.search(line) for line in lines):
            evidence = [
                f"{pod['name']}: Running {pod['containers']}",
                f"last log line: {lines[-1].strip()[:160]}",
            ]
            symptom = f"{pod['name']} is Running but not Ready; its log stops at XLA compilation."
            return [
                _scenario_finding(
                    "slow-compile",
                    "compiling",
                    "warning",
                    evidence,
                    symptom=symptom,
                    guide_case=GUIDE_REPLICAS,
                )
            ]
    slow = {pod: secs for pod, secs in _compile_seconds(view).items() if secs > SLOW_COMPILE_S}
    if not slow:
        return []
    pod, secs = max(slow.items(), key=lambda item: item[1])
    return [
        _scenario_finding(
            "slow-compile",
            "compiling",
            "warning",
            [f"{pod}: 'Compilation finished in {secs:.0f} [secs]' (usual: about 150-200 s)"],
            symptom=f"XLA compilation took {secs / 60:.1f} min on {pod} (usually ~3 min): the replicas "
            "became Ready late.",
        )
    ]


def _rule_image_pull(params: Any, view: ClusterView) -> list[Finding]:
    pulling = [p for p in view.pods if "ImagePull" in p["stage"]]
    if not pulling:
        return []
    pod = pulling[0]
    return [
        Finding(
            "image-pull",
            "error",
            f"{pod['name']} is {pod['stage']}.",
            "The vLLM image cannot be pulled (registry.redhat.io pull secret missing or wrong).",
            "Re-create the pull secret from pull_secret_file (02_namespace_secrets) and restart the pods.",
            [pod["waiting"]],
            guide_case=GUIDE_REPLICAS,
        )
    ]


def _quota_short(params: Any, view: ClusterView) -> bool:
    return view.quota_chips is not None and view.quota_chips < params.pool_chips


def _rule_nodes(params: Any, view: ClusterView) -> list[Finding]:
    """Replicas missing because TPU nodes are missing: a node was lost, or the pool is too small."""
    ready, wanted, nodes = view.ready_replicas, params.replicas, len(view.tpu_nodes)
    pending = [p for p in view.pods if p["stage"] == "Pending" and not p["node"]]
    if view.service is None or (not pending and ready >= wanted) or nodes >= params.num_nodes:
        return []
    evidence = [f"{ready}/{wanted} replicas Ready; TPU nodes: {nodes} (pool wants {params.num_nodes})"]
    evidence += [f"{p['name']} Pending: {p['waiting']}" for p in pending][:2]
    lost = [f"{e['reason']}: {e['message']}" for e in view.events_matching(r"was lost|NodeLost")]
    pool_message = (view.pool or {}).get("status_message", "")
    if "lost" in pool_message:
        lost.append(f"node pool: {pool_message}")
    if lost:
        return [
            _scenario_finding(
                "node-loss",
                "node-lost",
                "error",
                evidence + lost[-2:],
                fix=f"Resize the node pool back to {params.num_nodes} nodes (gcloud container clusters "
                f"resize {params.cluster_name} --node-pool {params.node_pool} "
                f"--num-nodes {params.num_nodes}).",
                fixable=not _quota_short(params, view),
                guide_case=GUIDE_REPLICAS,
            )
        ]
    if _quota_short(params, view) or (view.pool or {}).get("status") == "PROVISIONING":
        return []  # the quota rule names it; a pool still provisioning is not too small
    return [
        Finding(
            "pool-too-small",
            "error",
            f"Only {ready}/{wanted} replicas Ready; the TPU pool has {nodes} node(s).",
            "The node pool has fewer nodes than replicas (one replica needs one TPU node).",
            f"Resize the node pool to {params.num_nodes} nodes (the quota allows it).",
            evidence,
            fixable=True,
            guide_case=GUIDE_REPLICAS,
        )
    ]


def _rule_replicas_short(params: Any, view: ClusterView, found: list[Finding]) -> list[Finding]:
    """The guide's first case when no specific cause was found: fewer replicas Ready than asked."""
    ready, wanted = view.ready_replicas, params.replicas
    if view.service is None or ready >= wanted or found or _quota_short(params, view):
        return []
    waiting = [f"{p['name']}: {p['stage']} {p['waiting']}".strip() for p in view.pods if not p["ready"]]
    return [
        Finding(
            "replicas-short",
            "error",
            f"Only {ready}/{wanted} replicas Ready (LLMInferenceService Ready={view.service_ready}).",
            "Replicas are still starting or cannot start; see the pods' stages.",
            "Wait for the start-up to finish (weights + XLA compile take minutes), or follow the "
            "pods' events.",
            [f"TPU nodes: {len(view.tpu_nodes)}", *waiting[:3]],
            guide_case=GUIDE_REPLICAS,
        )
    ]


def _rule_cache_routing(params: Any, view: ClusterView) -> list[Finding]:
    if view.service is None or "EnvoyFilters" in view.unreadable:
        return []
    findings = []
    missing = [n for n in view.expected_envoyfilters if n not in view.envoyfilters]
    cache = view.cache or {}
    spread = len(set(cache.get("replica_list", [])[1:]))
    if missing:
        evidence = [f"EnvoyFilters in {names.GATEWAY_NAMESPACE}: {', '.join(view.envoyfilters) or 'none'}"]
        evidence.append(f"missing: {', '.join(missing)}")
        if spread > 1:
            evidence.append(f"identical requests were served by {spread} different replicas")
        findings.append(
            _scenario_finding(
                "missing-envoyfilter",
                "envoyfilter-missing",
                "error",
                evidence,
                fix="Re-apply the three EnvoyFilters (06_envoyfilters, or kubectl apply -f "
                + " -f ".join(f"manifests/{n}.yaml" for n in ENVOYFILTER_FILES)
                + ").",
                guide_case=GUIDE_CACHE,
            )
        )
    for pod in view.epp_pods:
        if SIDECAR not in pod["containers"]:
            findings.append(
                Finding(
                    "epp-sidecar-missing",
                    "error",
                    "Requests are not routed by the EPP (no cache affinity).",
                    f"The EPP pod {pod['name']} has no Istio sidecar "
                    f"(containers: {', '.join(pod['containers'])}), so the gateway's mTLS call to it fails.",
                    "Enable sidecar injection on the EPP Deployment (05_epp_sidecar), then wait for "
                    "READY 2/2.",
                    [f"{pod['name']}: {pod['stage']}, containers {pod['containers']}"],
                    guide_case=GUIDE_CACHE,
                )
            )
            break
    if not view.epp_pods and "EPP pods" not in view.unreadable:
        findings.append(
            Finding(
                "epp-missing",
                "error",
                "No EPP scheduler pod: requests cannot be routed by prefix.",
                "The EPP (router-scheduler) Deployment has no pod.",
                "Check the LLMInferenceService's RouterReady condition and the scheduler "
                "Deployment's events.",
                [f"selector {names.scheduler_selector(params.service_name)} matches no pod"],
                guide_case=GUIDE_CACHE,
            )
        )
    return findings


def _rule_netpol(params: Any, view: ClusterView) -> list[Finding]:
    if "NetworkPolicies" in view.unreadable or view.service is None:
        return []
    missing = [n for n in view.expected_networkpolicies if n not in view.networkpolicies]
    gateway = view.gateway or {}
    blocked = gateway.get("status") == 503 and CONNECT_FAILURE in str(gateway.get("summary", ""))
    policies_in_use = bool(view.networkpolicies) or params.apply_network_policies
    if not missing and not blocked:
        return []
    if not policies_in_use and not blocked:
        return []
    evidence = [f"NetworkPolicies in {params.namespace}: {', '.join(view.networkpolicies) or 'none'}"]
    if missing:
        evidence.append(f"missing: {', '.join(missing)}")
    if blocked:
        evidence.append(f"gateway answered {gateway.get('summary', '')[:160]}")
    severity = "error" if blocked or "allow-gateway-to-vllm" in missing else "warning"
    return [
        _scenario_finding(
            "netpol-blocks-gateway",
            "netpol-missing",
            severity,
            evidence,
            symptom="The gateway answers 503 (connection failure): inference requests do not reach vLLM."
            if blocked
            else f"NetworkPolicies missing: {', '.join(missing)} (traffic may be blocked).",
            fix="Apply the four NetworkPolicies (07_network_policies, or "
            "kubectl apply -f manifests/networkpolicies/).",
            guide_case=GUIDE_NETPOL,
        )
    ]


def _rule_gateway(params: Any, view: ClusterView, found: list[Finding]) -> list[Finding]:
    gateway = view.gateway
    if gateway is None or gateway.get("ok") or found:
        return []
    return [
        Finding(
            "gateway-error",
            "error",
            f"A completion through the gateway failed: {gateway.get('summary', '')[:160]}",
            "The gateway cannot reach a ready replica.",
            "Check the HTTPRoute and InferencePool (LLMInferenceService RouterReady) and the pods.",
            [f"status {gateway.get('status')}"],
        )
    ]


def _rule_latency(params: Any, view: ClusterView) -> list[Finding]:
    cache = view.cache
    if not cache:
        return []
    p50 = cache.get("latency_p50_s")
    if p50 is None or math.isnan(p50) or p50 <= HIGH_P50_S:
        return []
    return [
        Finding(
            "high-latency",
            "warning",
            f"P50 latency of identical requests through the gateway is {p50 * 1000:.0f} ms "
            "(expected < 200 ms).",
            "Request prefixes vary too much, a cold replica, or network congestion.",
            "Keep a long shared prefix at the start of prompts; warm the replicas; check pod resource "
            "usage (kubectl top pods) and, for debugging, remove --disable-log-requests to see the prompts.",
            [
                f"hit rate after the first request: {cache.get('hit_rate_after_first')}",
                f"replicas used: {cache.get('replicas')}",
            ],
            guide_case=GUIDE_LATENCY,
        )
    ]


def _rule_retries(params: Any, view: ClusterView) -> list[Finding]:
    if not view.retries:
        return []
    total = sum(view.retries.values())
    return [
        _scenario_finding(
            "api-flaky",
            "transient-api-errors",
            "info",
            [f"{total} transient API error(s) retried while diagnosing: {view.retries}"],
            symptom=f"{total} Kubernetes/GKE API call(s) answered 429/5xx and were retried.",
        )
    ]


def _rule_unreadable(params: Any, view: ClusterView) -> list[Finding]:
    return [
        Finding(
            f"unreadable-{part.split()[0].lower()}",
            "info",
            f"Could not look at {part}.",
            detail,
            "See the error; the other findings still stand.",
        )
        for part, detail in view.unreadable.items()
        if part != "TPU quota" or view.cluster_exists is False
    ]


def findings_of(params: Any, view: ClusterView) -> list[Finding]:
    """Apply every rule to what was seen; errors first."""
    replicas: list[Finding] = []
    for rule in (_rule_no_service, _rule_init_failing, _rule_compile, _rule_image_pull, _rule_nodes):
        replicas += rule(params, view)
    found = _rule_no_cluster(params, view) + _rule_quota(params, view) + replicas
    found += _rule_replicas_short(params, view, [f for f in replicas if f.severity != "info"])
    found += _rule_cache_routing(params, view) + _rule_netpol(params, view)
    found += _rule_gateway(params, view, [f for f in found if f.severity == "error"])
    found += _rule_latency(params, view)
    found += _rule_retries(params, view)
    found += _rule_unreadable(params, view)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order.get(f.severity, 3))
